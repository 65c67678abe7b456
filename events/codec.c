/*
 * codec.c - the canonical event body, the SHA-256 hash chain and JSON views.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_event.h"
#include "mp.h"
#include "pack.h"

/* The eight body keys, in the order the contract fixes. */
static const char *const body_keys[8] = {"seq",         "stream",     "version", "type",
                                         "recorded_at", "command_id", "actor",   "data"};

static void pack_key(msgpack_packer *pk, int i)
{
    md__pack_str(pk, body_keys[i], strlen(body_keys[i]));
}

static void pack_opt_str(msgpack_packer *pk, bool has, const char *s)
{
    if (has)
        md__pack_str(pk, s, strlen(s));
    else
        msgpack_pack_nil(pk);
}

static int canonical_value(md_mp_t *m, int depth);

/* A map is canonical when its keys are strings in strictly increasing bytewise
 * order and every value is canonical too. */
static int canonical_map(md_mp_t *m, int depth)
{
    uint32_t n;
    const char *prev = NULL;
    uint32_t prev_len = 0;
    if (depth > 32 || md__mp_map(m, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        if (md__mp_str(m, &k, &kl))
            return -1;
        if (prev) {
            int c = memcmp(prev, k, prev_len < kl ? prev_len : kl);
            if (c > 0 || (c == 0 && prev_len >= kl))
                return -1;
        }
        prev = k, prev_len = kl;
        if (canonical_value(m, depth + 1))
            return -1;
    }
    return 0;
}

static int canonical_value(md_mp_t *m, int depth)
{
    uint32_t n;
    switch (md__mp_peek(m)) {
    case MD_MP_MAP: return canonical_map(m, depth);
    case MD_MP_ARRAY:
        if (depth > 32 || md__mp_array(m, &n))
            return -1;
        for (uint32_t i = 0; i < n; i++)
            if (canonical_value(m, depth + 1))
                return -1;
        return 0;
    default: return md__mp_skip(m);
    }
}

static md_err_t check_data(const void *data, size_t len, md_error_t *err)
{
    md_mp_t m;
    md__mp_init(&m, data, len);
    if (data == NULL || canonical_map(&m, 0) || m.p != m.end)
        return md_error_set(err, MD_EINVAL, "event data is not a canonical msgpack map");
    return MD_OK;
}

md_err_t md_event_body(const md_event_t *ev, md_buf_t *out, md_error_t *err)
{
    md_err_t rc = check_data(ev->data, ev->data_len, err);
    if (rc != MD_OK)
        return rc;
    msgpack_packer pk;
    md__pack_init(&pk, out);
    msgpack_pack_map(&pk, 8);
    pack_key(&pk, 0), msgpack_pack_uint64(&pk, ev->seq);
    pack_key(&pk, 1), md__pack_str(&pk, ev->stream, strlen(ev->stream));
    pack_key(&pk, 2), msgpack_pack_uint64(&pk, ev->version);
    pack_key(&pk, 3), md__pack_str(&pk, ev->type, strlen(ev->type));
    pack_key(&pk, 4), msgpack_pack_int64(&pk, ev->recorded_at);
    pack_key(&pk, 5), pack_opt_str(&pk, ev->has_command_id, ev->command_id);
    pack_key(&pk, 6), pack_opt_str(&pk, ev->has_actor, ev->actor);
    pack_key(&pk, 7), md_buf_append(out, ev->data, ev->data_len);
    return MD_OK;
}

/* SHA-256 is fetched once for the process, and each thread keeps one digest
 * context: allocating a context and an implicit fetch per hash cost about a
 * microsecond per event (perf, bench/). Still thread-safe and reentrant. */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Frees a thread's context when the thread ends (a _Thread_local pointer
 * alone leaked one context per finished thread: LeakSanitizer, test_store's
 * reader threads under `make asan`). */
static pthread_key_t sha256_key;

static void sha256_ctx_free(void *ctx)
{
    EVP_MD_CTX_free(ctx);
}

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (pthread_key_create(&sha256_key, sha256_ctx_free) != 0)
        sha256_md = NULL; /* reported as a SHA-256 failure below */
}

static void chain_hash_fail(void)
{
    fprintf(stderr, "marketd: SHA-256 failed\n");
    abort();
}

void md_chain_hash(const unsigned char prev[MD_HASH_LEN], const void *body, size_t len,
                   unsigned char out[MD_HASH_LEN])
{
    static _Thread_local EVP_MD_CTX *ctx;
    unsigned int n = 0;
    pthread_once(&sha256_once, sha256_fetch);
    if (ctx == NULL && sha256_md != NULL && (ctx = EVP_MD_CTX_new()) != NULL)
        pthread_setspecific(sha256_key, ctx);
    if (ctx == NULL || sha256_md == NULL || !EVP_DigestInit_ex2(ctx, sha256_md, NULL) ||
        !EVP_DigestUpdate(ctx, prev, MD_HASH_LEN) || !EVP_DigestUpdate(ctx, body, len) ||
        !EVP_DigestFinal_ex(ctx, out, &n) || n != MD_HASH_LEN)
        chain_hash_fail();
}

/* Reads the key at position i of the body and checks its name. */
static int body_key(md_mp_t *m, int i)
{
    const char *k;
    uint32_t kl;
    return md__mp_str(m, &k, &kl) || kl != strlen(body_keys[i]) || memcmp(k, body_keys[i], kl) != 0
               ? -1
               : 0;
}

static int read_text(md_mp_t *m, char *out, size_t cap)
{
    const char *s;
    uint32_t n;
    /* The fields are C strings: a NUL inside would silently cut them short,
     * so that the record no longer says what its body says (found by
     * tests/fuzz: a stream starting with NUL decoded as ""). */
    if (md__mp_str(m, &s, &n) || n == 0 || n >= cap || memchr(s, 0, n) != NULL)
        return -1;
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int read_opt_text(md_mp_t *m, bool *has, char *out, size_t cap)
{
    *has = md__mp_nil(m) != 0;
    if (!*has) {
        out[0] = '\0';
        return 0;
    }
    return read_text(m, out, cap);
}

md_err_t md_event_decode_body(const void *body, size_t len, md_event_t *ev, md_error_t *err)
{
    md_mp_t m;
    uint32_t n;
    int64_t at;
    md__mp_init(&m, body, len);
    if (md__mp_map(&m, &n) || n != 8)
        return md_error_set(err, MD_ECODEC, "event body is not a map of 8 keys");
    if (body_key(&m, 0) || md__mp_uint(&m, &ev->seq) || body_key(&m, 1) ||
        read_text(&m, ev->stream, sizeof ev->stream) || body_key(&m, 2) ||
        md__mp_uint(&m, &ev->version) || body_key(&m, 3) ||
        read_text(&m, ev->type, sizeof ev->type) || body_key(&m, 4) || md__mp_int(&m, &at) ||
        body_key(&m, 5) ||
        read_opt_text(&m, &ev->has_command_id, ev->command_id, sizeof ev->command_id) ||
        body_key(&m, 6) || read_opt_text(&m, &ev->has_actor, ev->actor, sizeof ev->actor) ||
        body_key(&m, 7))
        return md_error_set(err, MD_ECODEC,
                            "event body fields are missing, misordered or mistyped");
    ev->recorded_at = at;
    ev->data = m.p;
    if (canonical_map(&m, 0) || m.p != m.end)
        return md_error_set(err, MD_ECODEC, "event data is not a canonical map");
    ev->data_len = (size_t)(m.p - ev->data);
    return MD_OK;
}

void md_hex(const unsigned char *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void md_base64(const unsigned char *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        out[o++] = i + 1 < n ? a[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? a[v & 63] : '=';
    }
    out[o] = '\0';
}

static json_t *mp_to_json(md_mp_t *m, int depth);

static json_t *mp_map_to_json(md_mp_t *m, int depth)
{
    uint32_t n;
    if (md__mp_map(m, &n))
        return NULL;
    json_t *obj = json_object();
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        json_t *v = NULL;
        if (md__mp_str(m, &k, &kl) || (v = mp_to_json(m, depth + 1)) == NULL) {
            json_decref(obj);
            return NULL;
        }
        char *key = md_strndup(k, kl);
        int rc = json_object_set_new(obj, key, v);
        free(key);
        if (rc) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *mp_array_to_json(md_mp_t *m, int depth)
{
    uint32_t n;
    if (md__mp_array(m, &n))
        return NULL;
    json_t *arr = json_array();
    for (uint32_t i = 0; i < n; i++) {
        json_t *v = mp_to_json(m, depth + 1);
        if (v == NULL || json_array_append_new(arr, v)) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static json_t *mp_bin_to_json(md_mp_t *m)
{
    const unsigned char *b;
    uint32_t n;
    if (md__mp_bin(m, &b, &n))
        return NULL;
    char *s = md_malloc(4 * ((size_t)n / 3 + 1) + 1);
    md_base64(b, n, s);
    json_t *v = json_string(s);
    free(s);
    return v;
}

static json_t *mp_to_json(md_mp_t *m, int depth)
{
    const char *s;
    uint32_t n;
    int64_t i;
    uint64_t u;
    bool b;
    double d;
    if (depth > 32)
        return NULL;
    switch (md__mp_peek(m)) {
    case MD_MP_NIL: return md__mp_nil(m) ? NULL : json_null();
    case MD_MP_BOOL: return md__mp_bool(m, &b) ? NULL : json_boolean(b);
    case MD_MP_INT:
        if (md__mp_int(m, &i) == 0)
            return json_integer(i);
        return md__mp_uint(m, &u) ? NULL : json_real((double)u);
    case MD_MP_FLOAT: return md__mp_double(m, &d) ? NULL : json_real(d);
    case MD_MP_STR: return md__mp_str(m, &s, &n) ? NULL : json_stringn(s, n);
    case MD_MP_BIN: return mp_bin_to_json(m);
    case MD_MP_ARRAY: return mp_array_to_json(m, depth);
    case MD_MP_MAP: return mp_map_to_json(m, depth);
    default: return NULL;
    }
}

json_t *md_msgpack_to_json(const void *p, size_t len)
{
    md_mp_t m;
    md__mp_init(&m, p, len);
    json_t *v = mp_to_json(&m, 0);
    if (v && m.p != m.end) {
        json_decref(v);
        return NULL;
    }
    return v;
}

static json_t *opt_string(bool has, const char *s)
{
    return has ? json_string(s) : json_null();
}

static void add_chain_fields(json_t *o, const md_event_t *ev, const void *body, size_t len)
{
    char hex[2 * MD_HASH_LEN + 1];
    char *b64 = md_malloc(4 * (len / 3 + 1) + 1);
    md_base64(body, len, b64);
    md_json_set(o, "body", json_string(b64));
    free(b64);
    md_hex(ev->prev_hash, MD_HASH_LEN, hex);
    md_json_set(o, "prev_hash", json_string(hex));
    md_hex(ev->hash, MD_HASH_LEN, hex);
    md_json_set(o, "hash", json_string(hex));
}

json_t *md_event_to_json(const md_event_t *ev, const void *body, size_t body_len)
{
    json_t *data = md_msgpack_to_json(ev->data, ev->data_len);
    if (data == NULL)
        return NULL;
    json_t *o = json_object();
    md_json_set(o, "seq", json_integer((json_int_t)ev->seq));
    md_json_set(o, "stream", json_string(ev->stream));
    md_json_set(o, "version", json_integer((json_int_t)ev->version));
    md_json_set(o, "type", json_string(ev->type));
    md_json_set(o, "recorded_at", json_integer(ev->recorded_at));
    md_json_set(o, "command_id", opt_string(ev->has_command_id, ev->command_id));
    md_json_set(o, "actor", opt_string(ev->has_actor, ev->actor));
    md_json_set(o, "data", data);
    if (body)
        add_chain_fields(o, ev, body, body_len);
    return o;
}

/* ---- the event as a JSON line without jansson (the outbox) -------------------- */

/*
 * md_event_json_append writes what json_dumpb(md_event_to_json(ev), JSON_COMPACT)
 * writes, byte for byte, without building a json_t tree: the daemon does this
 * for every event it queues for the events topic, and the tree cost ~8% of the
 * writer's time in Kafka mode (perf, docs/performance.md). Values the fast path
 * does not cover (floats, integers above INT64_MAX, bin, strings jansson would
 * refuse) take the jansson path, so both always agree.
 */

int md_json_put_str(md_buf_t *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    unsigned char *w = md_buf_reserve(o, 6 * n + 2), *start = w;
    *w++ = '"';
    for (size_t i = 0; i < n;) {
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *w++ = c; /* printable ASCII, the usual: as is (md_utf8_len says 1) */
            i++;
            continue;
        }
        size_t k = md_utf8_len(p + i, n - i);
        if (k == 0)
            return -1;
        if (k > 1 || (c >= 0x20 && c != '"' && c != '\\')) {
            memcpy(w, p + i, k);
            w += k;
            i += k;
            continue;
        }
        *w++ = '\\';
        switch (c) {
        case '"': *w++ = '"'; break;
        case '\\': *w++ = '\\'; break;
        case '\b': *w++ = 'b'; break;
        case '\f': *w++ = 'f'; break;
        case '\n': *w++ = 'n'; break;
        case '\r': *w++ = 'r'; break;
        case '\t': *w++ = 't'; break;
        default:
            memcpy(w, "u00", 3);
            w[3] = (unsigned char)hex[c >> 4];
            w[4] = (unsigned char)hex[c & 15];
            w += 5;
        }
        i++;
    }
    *w++ = '"';
    o->len += (size_t)(w - start);
    return 0;
}

static void json_lit(md_buf_t *o, const char *s)
{
    md_buf_append(o, s, strlen(s));
}

static void json_int(md_buf_t *o, int64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%" JSON_INTEGER_FORMAT, (json_int_t)v);
    md_buf_append(o, d, (size_t)n);
}

static int mp_json_fast(md_mp_t *m, md_buf_t *o, int depth)
{
    const char *s;
    uint32_t n, len;
    int64_t i;
    bool b;
    if (depth > 32)
        return -1;
    switch (md__mp_peek(m)) {
    case MD_MP_NIL: json_lit(o, "null"); return md__mp_nil(m);
    case MD_MP_BOOL:
        if (md__mp_bool(m, &b))
            return -1;
        json_lit(o, b ? "true" : "false");
        return 0;
    case MD_MP_INT:
        if (md__mp_int(m, &i))
            return -1; /* above INT64_MAX: a real, the general path */
        json_int(o, i);
        return 0;
    case MD_MP_STR: return md__mp_str(m, &s, &n) ? -1 : md_json_put_str(o, s, n);
    case MD_MP_ARRAY:
        if (md__mp_array(m, &n))
            return -1;
        md_buf_append(o, "[", 1);
        for (uint32_t k = 0; k < n; k++) {
            if (k)
                md_buf_append(o, ",", 1);
            if (mp_json_fast(m, o, depth + 1))
                return -1;
        }
        md_buf_append(o, "]", 1);
        return 0;
    case MD_MP_MAP:
        if (md__mp_map(m, &n))
            return -1;
        md_buf_append(o, "{", 1);
        for (uint32_t k = 0; k < n; k++) {
            if (k)
                md_buf_append(o, ",", 1);
            if (md__mp_str(m, &s, &len) || md_json_put_str(o, s, len))
                return -1;
            md_buf_append(o, ":", 1);
            if (mp_json_fast(m, o, depth + 1))
                return -1;
        }
        md_buf_append(o, "}", 1);
        return 0;
    default: return -1; /* floats, bin: the general path */
    }
}

/* ,"key": then a string, or null when absent. */
static int json_opt(md_buf_t *o, const char *key, bool has, const char *s)
{
    json_lit(o, key);
    if (!has) {
        json_lit(o, "null");
        return 0;
    }
    return md_json_put_str(o, s, strlen(s));
}

md_err_t md_event_json_append(const md_event_t *ev, md_buf_t *out)
{
    size_t start = out->len;
    md_mp_t m;
    json_lit(out, "{\"seq\":");
    json_int(out, (int64_t)ev->seq);
    if (json_opt(out, ",\"stream\":", true, ev->stream))
        goto slow;
    json_lit(out, ",\"version\":");
    json_int(out, (int64_t)ev->version);
    if (json_opt(out, ",\"type\":", true, ev->type))
        goto slow;
    json_lit(out, ",\"recorded_at\":");
    json_int(out, ev->recorded_at);
    if (json_opt(out, ",\"command_id\":", ev->has_command_id, ev->command_id) ||
        json_opt(out, ",\"actor\":", ev->has_actor, ev->actor))
        goto slow;
    json_lit(out, ",\"data\":");
    md__mp_init(&m, ev->data, ev->data_len);
    if (mp_json_fast(&m, out, 0) || m.p != m.end)
        goto slow;
    md_buf_append(out, "}", 1);
    return MD_OK;
slow:
    out->len = start;
    json_t *j = md_event_to_json(ev, NULL, 0);
    if (j == NULL)
        return MD_ECODEC;
    size_t n = json_dumpb(j, NULL, 0, JSON_COMPACT);
    json_dumpb(j, (char *)md_buf_reserve(out, n), n, JSON_COMPACT);
    out->len += n;
    json_decref(j);
    return MD_OK;
}
