/*
 * command_evidence.c - the `evidence` field of FileComplaint and SubmitDefense
 * (rules.md "Complaints and arbitration", Fine points): 1..10 items, each
 * exactly {sha256 (64 hex), name (text 1..200), bytes (1..10^10)}, no hash
 * twice. Kept as the canonical msgpack array the events carry (map keys
 * sorted: bytes, name, sha256; hashes lower-cased), so the rules copy it into
 * ComplaintFiled / DefenseSubmitted as it is. The ledger keeps no files.
 */
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#include "decode.h"

#define EVIDENCE_MAX MD_EVIDENCE_MAX
#define NAME_MAX_BYTES MD_EVIDENCE_NAME_MAX
#define BYTES_MAX MD_EVIDENCE_BYTES_MAX

typedef struct item {
    char sha[65];
    const char *name;
    size_t name_len;
    int64_t bytes;
} item_t;

static bool bad(char *why, size_t cap, size_t i, const char *key, const char *what)
{
    snprintf(why, cap, "item %zu, %s: %s", i, key, what);
    return false;
}

static bool lower_hex64(const char *s, size_t n, char out[65])
{
    if (n != 64)
        return false;
    for (size_t i = 0; i < 64; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'F')
            ch = (char)(ch - 'A' + 'a');
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        out[i] = ch;
    }
    out[64] = '\0';
    return true;
}

/* One item: exactly the three keys, each valid. */
static bool take_item(json_t *o, size_t i, item_t *it, char *why, size_t cap)
{
    if (!json_is_object(o))
        return bad(why, cap, i, "item", "expected an object");
    json_t *sha = json_object_get(o, "sha256"), *name = json_object_get(o, "name");
    json_t *bytes = json_object_get(o, "bytes");
    if (!json_is_string(sha) ||
        !lower_hex64(json_string_value(sha), json_string_length(sha), it->sha))
        return bad(why, cap, i, "sha256", sha ? "expected 64 hex digits" : "required");
    size_t n = json_string_length(name);
    if (!json_is_string(name) || n < 1 || n > NAME_MAX_BYTES)
        return bad(why, cap, i, "name", name ? "expected 1..200 bytes of text" : "required");
    if (!json_is_integer(bytes) || json_integer_value(bytes) < 1 ||
        json_integer_value(bytes) > BYTES_MAX)
        return bad(why, cap, i, "bytes",
                   bytes ? "expected an integer in 1..10000000000" : "required");
    const char *key;
    json_t *val;
    json_object_foreach (o, key, val) {
        if (strcmp(key, "sha256") && strcmp(key, "name") && strcmp(key, "bytes"))
            return bad(why, cap, i, key, "unknown field");
    }
    it->name = json_string_value(name);
    it->name_len = n;
    it->bytes = json_integer_value(bytes);
    return true;
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

bool md__take_evidence(json_t *j, md_command_t *c, md_cval_t *v, char *why, size_t cap)
{
    item_t items[EVIDENCE_MAX];
    size_t n = json_array_size(j);
    if (!json_is_array(j) || n < 1 || n > EVIDENCE_MAX) {
        snprintf(why, cap, "expected an array of 1..10 items");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!take_item(json_array_get(j, i), i, &items[i], why, cap))
            return false;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(items[k].sha, items[i].sha) == 0)
                return bad(why, cap, i, "sha256", "listed twice");
        }
    }
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 3);
        pack_str(&pk, "bytes", 5);
        msgpack_pack_int64(&pk, items[i].bytes);
        pack_str(&pk, "name", 4);
        pack_str(&pk, items[i].name, items[i].name_len);
        pack_str(&pk, "sha256", 6);
        pack_str(&pk, items[i].sha, 64);
    }
    md__arena_put(c, v, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return true;
}
