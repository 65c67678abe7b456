/*
 * command_decode.c - decoding of the command envelope and its data fields
 * (docs/rules-reference.md "Command envelope", "Order of checks" step 1, "Fine points").
 *
 * The JSON text is parsed by jansson with JSON_REJECT_DUPLICATES; the msgpack
 * form is converted to the same jansson value first (command_msgpack.c), so
 * both go through md__decode_root() and cannot drift apart.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"

/* Envelope keys, in envelope order (the order in which errors are reported). */
static const char *const envelope_keys[] = {
    "command_id", "type", "actor", "issued_at", "expected_version", "correlation_id", "data", NULL};

void md__sha256(const void *buf, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    if (EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}

static md_decode_status_t malformed(md_command_t *c, const char *why)
{
    c->status = MD_DECODE_MALFORMED;
    c->command_id[0] = '\0';
    snprintf(c->detail, sizeof c->detail, "%s", why);
    return c->status;
}

/* Copies s into out[cap], truncated (messages only). */
static void copy_msg(char *out, size_t cap, const char *s)
{
    size_t n = strlen(s);
    if (n >= cap)
        n = cap - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

static md_decode_status_t reject(md_command_t *c, const char *code, const char *msg)
{
    c->status = MD_DECODE_REJECTED;
    c->reject_code = code;
    copy_msg(c->reject_msg, sizeof c->reject_msg, msg);
    copy_msg(c->detail, sizeof c->detail, msg);
    return c->status;
}

/* Copies s into the arena (NUL-terminated); the schema's limits guarantee
 * that every command fits (checked by test_command). */
void md__arena_put(md_command_t *c, md_cval_t *v, const char *s, size_t len)
{
    if (c->arena_len + len + 1 > sizeof c->arena)
        len = 0; /* unreachable with the schema's limits */
    v->off = (uint16_t)c->arena_len;
    v->len = (uint16_t)len;
    memcpy(c->arena + c->arena_len, s, len);
    c->arena[c->arena_len + len] = '\0';
    c->arena_len += len + 1;
}

/* ---- one field ------------------------------------------------------------ */

static bool take_text(const md_fspec_t *f, const char *s, size_t n, char *why, size_t cap)
{
    if (n < 1 || (int64_t)n > f->max) {
        snprintf(why, cap, "expected 1..%lld bytes of text", (long long)f->max);
        return false;
    }
    if (f->pattern != NULL && !f->pattern(s, n)) {
        snprintf(why, cap, "not a valid %s", f->name);
        return false;
    }
    return true;
}

static bool take_hex(const char *s, size_t n, char *out, char *why, size_t cap)
{
    for (size_t i = 0; i < n && n == 64; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            break;
        out[i] = ch;
        if (i == 63)
            return true;
    }
    snprintf(why, cap, "expected 64 hex digits");
    return false;
}

static bool take_enum(const md_fspec_t *f, const char *s, md_cval_t *v, char *why, size_t cap)
{
    for (int i = 0; f->enums[i] != NULL; i++) {
        if (strcmp(f->enums[i], s) == 0) {
            v->i = i;
            return true;
        }
    }
    size_t k = (size_t)snprintf(why, cap, "expected one of");
    for (int i = 0; f->enums[i] != NULL && k < cap; i++)
        k += (size_t)snprintf(why + k, cap - k, "%s %s", i ? "," : "", f->enums[i]);
    return false;
}

/* A string-typed field (ID, TEXT, HEX64, TIME, ENUM) into v. */
static bool take_string(const md_fspec_t *f, json_t *j, md_command_t *c, md_cval_t *v, char *why,
                        size_t cap)
{
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    char hex[64];
    switch (f->type) {
    case MD_FT_ID:
        if (!md_valid_id(s, n))
            return snprintf(why, cap, "expected an id (1..64 bytes of [A-Za-z0-9._:-])"), false;
        if (f->pattern != NULL && !f->pattern(s, n))
            return snprintf(why, cap, "'%s' is reserved", s), false;
        break;
    case MD_FT_TEXT:
        if (!take_text(f, s, n, why, cap))
            return false;
        break;
    case MD_FT_HEX64:
        if (!take_hex(s, n, hex, why, cap))
            return false;
        s = hex;
        break;
    case MD_FT_TIME:
        if (!md_parse_time(s, n, &v->i))
            return snprintf(why, cap, "expected a time YYYY-MM-DDTHH:MM:SS[.fff]Z"), false;
        return true;
    case MD_FT_ENUM:
        if (!take_enum(f, s, v, why, cap))
            return false;
        break;
    default: return false;
    }
    md__arena_put(c, v, s, n);
    return true;
}

static bool take_int(const md_fspec_t *f, json_t *j, md_cval_t *v, char *why, size_t cap)
{
    if (!json_is_integer(j) || json_integer_value(j) < f->min || json_integer_value(j) > f->max) {
        snprintf(why, cap, "expected an integer in %lld..%lld", (long long)f->min,
                 (long long)f->max);
        return false;
    }
    v->i = json_integer_value(j);
    return true;
}

static const char *type_word(md_ftype_t t)
{
    static const char *const words[] = {"an id",         "a text", "an integer", "a boolean",
                                        "64 hex digits", "a time", "a string",   "an array"};
    return words[t];
}

static bool take_field(const md_fspec_t *f, json_t *j, md_command_t *c, md_cval_t *v, char *why,
                       size_t cap)
{
    v->present = true;
    if (f->type == MD_FT_INT)
        return take_int(f, j, v, why, cap);
    if (f->type == MD_FT_EVIDENCE)
        return md__take_evidence(j, c, v, why, cap);
    if (f->type == MD_FT_BOOL) {
        if (!json_is_boolean(j))
            return snprintf(why, cap, "expected a boolean"), false;
        v->i = json_is_true(j);
        return true;
    }
    if (!json_is_string(j)) {
        snprintf(why, cap, "expected %s", type_word(f->type));
        return false;
    }
    return take_string(f, j, c, v, why, cap);
}

/* ---- data ------------------------------------------------------------------- */

static bool spec_has(const md_cmd_spec_t *s, const char *key)
{
    for (size_t i = 0; i < s->nfields; i++) {
        if (strcmp(s->fields[i].name, key) == 0)
            return true;
    }
    return false;
}

/* Declared fields in order, then unknown keys, then cross-field checks. */
static md_decode_status_t decode_data(json_t *data, md_command_t *c)
{
    const md_cmd_spec_t *s = c->spec;
    char why[160], msg[240];
    for (size_t i = 0; i < s->nfields; i++) {
        const md_fspec_t *f = &s->fields[i];
        json_t *j = json_object_get(data, f->name);
        if (j == NULL && (f->required || !f->has_default)) {
            if (!f->required)
                continue;
            snprintf(msg, sizeof msg, "data.%s: required", f->name);
            return reject(c, "INVALID_FIELD", msg);
        }
        if (j == NULL) {
            c->v[i].present = true;
            c->v[i].i = f->def;
            continue;
        }
        if (!take_field(f, j, c, &c->v[i], why, sizeof why)) {
            snprintf(msg, sizeof msg, "data.%s: %s", f->name, why);
            return reject(c, "INVALID_FIELD", msg);
        }
    }
    const char *key;
    json_t *val;
    json_object_foreach (data, key, val) {
        if (!spec_has(s, key)) {
            snprintf(msg, sizeof msg, "data.%.64s: unknown field", key);
            return reject(c, "INVALID_FIELD", msg);
        }
    }
    if (s->xcheck != NULL && s->xcheck(c, msg, sizeof msg) != NULL)
        return reject(c, "INVALID_FIELD", msg);
    c->status = MD_DECODE_OK;
    return c->status;
}

/* ---- envelope ----------------------------------------------------------------- */

static bool env_actor(json_t *j, md_command_t *c)
{
    const char *s = json_string_value(j);
    if (s == NULL || !md_valid_id(s, json_string_length(j)))
        return false;
    memcpy(c->actor, s, json_string_length(j) + 1);
    c->has_actor = true;
    return true;
}

static bool env_issued_at(json_t *j, md_command_t *c)
{
    const char *s = json_string_value(j);
    if (s == NULL || !md_parse_time(s, json_string_length(j), &c->issued_at))
        return false;
    c->has_issued_at = true;
    return true;
}

static bool env_expected_version(json_t *j, md_command_t *c)
{
    if (!json_is_integer(j) || json_integer_value(j) < 0)
        return false;
    c->expected_version = json_integer_value(j);
    c->has_expected_version = true;
    return true;
}

static bool env_correlation_id(json_t *j, md_command_t *c)
{
    const char *s = json_string_value(j);
    size_t n = json_string_length(j);
    if (s == NULL || n < 1 || n > MD_COMMAND_ID_MAX)
        return false;
    memcpy(c->correlation_id, s, n + 1);
    c->has_correlation_id = true;
    return true;
}

static bool env_data(json_t *j, md_command_t *c)
{
    (void)c;
    return json_is_object(j);
}

typedef struct env_field {
    const char *name;
    bool (*parse)(json_t *j, md_command_t *c);
    const char *expect;
} env_field_t;

/* The envelope after command_id and type, in envelope order. */
static const env_field_t env_fields[] = {
    {"actor", env_actor, "expected a member id (1..64 bytes of [A-Za-z0-9._:-])"},
    {"issued_at", env_issued_at, "expected a time YYYY-MM-DDTHH:MM:SS[.fff]Z"},
    {"expected_version", env_expected_version, "expected an integer >= 0"},
    {"correlation_id", env_correlation_id, "expected a text of 1..128 bytes"},
    {"data", env_data, "expected an object"},
};

bool md_envelope_field(size_t i, const char **name, const char **expect)
{
    if (i >= sizeof env_fields / sizeof env_fields[0])
        return false;
    *name = env_fields[i].name;
    *expect = env_fields[i].expect;
    return true;
}

static bool env_required(const char *name, const md_decode_opts_t *o)
{
    return strcmp(name, "actor") == 0 || strcmp(name, "data") == 0 ||
           (strcmp(name, "issued_at") == 0 && o != NULL && o->require_issued_at);
}

/*
 * Parses every envelope field (so that actor and issued_at are known even
 * when the command is rejected) and writes the first error, in envelope
 * order, into msg. Returns whether the envelope is valid.
 */
static bool decode_envelope(json_t *root, const md_decode_opts_t *o, md_command_t *c, char *msg,
                            size_t cap)
{
    bool ok = true;
    for (size_t i = 0; i < sizeof env_fields / sizeof env_fields[0]; i++) {
        const env_field_t *f = &env_fields[i];
        json_t *j = json_object_get(root, f->name);
        bool good = j != NULL ? f->parse(j, c) : !env_required(f->name, o);
        if (!good && ok)
            snprintf(msg, cap, "%s: %s", f->name, j != NULL ? f->expect : "required");
        ok = ok && good;
    }
    const char *key;
    json_t *val;
    json_object_foreach (root, key, val) {
        bool known = false;
        for (size_t i = 0; envelope_keys[i] != NULL; i++)
            known = known || strcmp(envelope_keys[i], key) == 0;
        if (!known && ok) {
            snprintf(msg, cap, "%.64s: unknown envelope field", key);
            ok = false;
        }
    }
    return ok;
}

/* Keeps a printable, truncated copy of an unknown type name for messages. */
static void unknown_type(md_command_t *c, json_t *type)
{
    char name[41] = "";
    const char *s = json_string_value(type);
    char msg[120];
    if (s != NULL) {
        size_t i = 0;
        for (; s[i] != '\0' && i + 1 < sizeof name; i++)
            name[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
        name[i] = '\0';
        snprintf(msg, sizeof msg, "type: unknown command type '%s'", name);
    } else {
        snprintf(msg, sizeof msg, "type: missing or not a string");
    }
    reject(c, "UNKNOWN_COMMAND", msg);
}

md_decode_status_t md__decode_root(json_t *root, const md_decode_opts_t *o, md_command_t *c)
{
    char msg[240];
    if (!json_is_object(root))
        return malformed(c, "not an object");
    json_t *id = json_object_get(root, "command_id");
    size_t n = json_string_length(id);
    if (!json_is_string(id) || n < 1 || n > MD_COMMAND_ID_MAX)
        return malformed(c, "command_id: not a string of 1..128 bytes");
    if (strncmp(json_string_value(id), MD_TIMER_CMDID_PREFIX, strlen(MD_TIMER_CMDID_PREFIX)) == 0)
        return malformed(c, "command_id: the prefix timer: is reserved for timers");
    memcpy(c->command_id, json_string_value(id), n + 1);
    json_t *type = json_object_get(root, "type");
    if (json_is_string(type))
        c->spec = md_cmd_spec_find(json_string_value(type), json_string_length(type));
    bool env_ok = decode_envelope(root, o, c, msg, sizeof msg);
    if (c->spec == NULL) {
        unknown_type(c, type);
        return c->status;
    }
    if (!env_ok)
        return reject(c, "INVALID_FIELD", msg);
    return decode_data(json_object_get(root, "data"), c);
}

md_decode_status_t md_command_decode_json(const void *buf, size_t len, const md_decode_opts_t *opts,
                                          md_command_t *out)
{
    json_error_t jerr;
    memset(out, 0, offsetof(md_command_t, arena));
    out->arena_len = 0;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    md_decode_status_t st =
        root == NULL ? malformed(out, jerr.text) : md__decode_root(root, opts, out);
    json_decref(root);
    if (st == MD_DECODE_MALFORMED)
        md__sha256(buf, len, out->sha256);
    return st;
}
