/*
 * command_msgpack.c - the msgpack form of the command envelope. The map is
 * converted to the jansson value the JSON text would have produced, refusing
 * what jansson would refuse (duplicate keys, invalid UTF-8, NUL in strings,
 * integers beyond int64, NaN) and what JSON cannot express (non-string keys,
 * bin and ext values), so both forms share one decoder.
 */
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_error.h"

#include "decode.h"

static json_t *to_json(const msgpack_object *o, char *why, size_t cap);

static json_t *fail(char *why, size_t cap, const char *msg)
{
    snprintf(why, cap, "%s", msg);
    return NULL;
}

static json_t *str_to_json(const msgpack_object_str *s, char *why, size_t cap)
{
    if (!md_valid_utf8(s->ptr, s->size))
        return fail(why, cap, "string is not valid UTF-8 or holds NUL");
    /* msgpack-c gives an empty string a NULL pointer, and jansson returns NULL
     * for a NULL pointer: without the "" an empty string made the whole command
     * MALFORMED with no reason (found by tests/fuzz), where JSON's "" gets the
     * field's own INVALID_FIELD. */
    return json_stringn_nocheck(s->size ? s->ptr : "", s->size);
}

static json_t *array_to_json(const msgpack_object_array *a, char *why, size_t cap)
{
    json_t *arr = json_array();
    for (uint32_t i = 0; i < a->size; i++) {
        json_t *v = to_json(&a->ptr[i], why, cap);
        if (v == NULL) {
            json_decref(arr);
            return NULL;
        }
        md_json_append(arr, v);
    }
    return arr;
}

/* Adds one key/value pair; false on a bad or duplicate key or value. */
static bool map_add(json_t *obj, const msgpack_object_kv *kv, char *why, size_t cap)
{
    if (kv->key.type != MSGPACK_OBJECT_STR) {
        fail(why, cap, "map key is not a string");
        return false;
    }
    const msgpack_object_str *k = &kv->key.via.str;
    if (!md_valid_utf8(k->ptr, k->size)) {
        fail(why, cap, "map key is not valid UTF-8 or holds NUL");
        return false;
    }
    char *key = md_strndup(k->ptr, k->size);
    bool ok = json_object_get(obj, key) == NULL;
    if (!ok)
        fail(why, cap, "duplicate map key");
    json_t *v = ok ? to_json(&kv->val, why, cap) : NULL;
    ok = v != NULL && json_object_set_new_nocheck(obj, key, v) == 0;
    free(key);
    return ok;
}

static json_t *map_to_json(const msgpack_object_map *m, char *why, size_t cap)
{
    json_t *obj = json_object();
    for (uint32_t i = 0; i < m->size; i++) {
        if (!map_add(obj, &m->ptr[i], why, cap)) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

static json_t *to_json(const msgpack_object *o, char *why, size_t cap)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return json_null();
    case MSGPACK_OBJECT_BOOLEAN: return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            return fail(why, cap, "integer beyond 64-bit range");
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64))
            return fail(why, cap, "NaN or infinite number");
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR: return str_to_json(&o->via.str, why, cap);
    case MSGPACK_OBJECT_ARRAY: return array_to_json(&o->via.array, why, cap);
    case MSGPACK_OBJECT_MAP: return map_to_json(&o->via.map, why, cap);
    default: return fail(why, cap, "bin or ext value has no JSON equivalent");
    }
}

static uint64_t be_n(const unsigned char *p, size_t w)
{
    uint64_t v = 0;
    for (size_t i = 0; i < w; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * Whether buf[0..len) starts with one complete msgpack value, walked without
 * allocating. msgpack-c allocates room for a container's claimed element
 * count before it reads any element, so five bytes claiming 2^32 elements
 * asked malloc for 96 GiB (found by tests/fuzz). Here every value still owed
 * must fit in the bytes left (each takes one at least), so a message that
 * passes makes msgpack-c allocate in proportion to its size.
 */
static bool complete_value(const unsigned char *p, size_t len)
{
    const unsigned char *end = p + len;
    uint64_t owed = 1;
    while (owed > 0) {
        if (p >= end)
            return false;
        unsigned c = *p++;
        uint64_t skip = 0, items = 0;
        size_t w = 0;
        owed--;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
            ; /* fixint, nil, bool */
        else if (c <= 0x8f)
            items = 2 * (uint64_t)(c & 0x0f); /* fixmap */
        else if (c <= 0x9f)
            items = c & 0x0f; /* fixarray */
        else if (c <= 0xbf)
            skip = c & 0x1f; /* fixstr */
        else if (c == 0xca || c == 0xcb)
            skip = c == 0xca ? 4 : 8; /* float32/64 */
        else if (c >= 0xcc && c <= 0xd3)
            skip = (uint64_t)1 << ((c - 0xcc) & 3); /* (u)int8..64 */
        else if (c >= 0xd4 && c <= 0xd8)
            skip = 1 + ((uint64_t)1 << (c - 0xd4)); /* fixext */
        else if (c >= 0xc4 && c <= 0xc9)
            w = (size_t)1 << ((c - 0xc4) % 3); /* bin, ext 8/16/32 */
        else if (c >= 0xd9 && c <= 0xdb)
            w = (size_t)1 << (c - 0xd9); /* str 8/16/32 */
        else if (c >= 0xdc && c <= 0xdf)
            w = c & 1 ? 4 : 2; /* array, map 16/32 */
        else
            return false; /* 0xc1: never used */
        if (w) {
            if ((size_t)(end - p) < w)
                return false;
            uint64_t n = be_n(p, w);
            p += w;
            if (c >= 0xdc)
                items = c >= 0xde ? 2 * n : n;
            else
                skip = n + (c >= 0xc7 && c <= 0xc9 ? 1 : 0);
        }
        if (skip > (uint64_t)(end - p))
            return false;
        p += skip;
        owed += items;
        if (owed > (uint64_t)(end - p))
            return false;
    }
    return true;
}

json_t *md__msgpack_to_json(const void *buf, size_t len, char *why, size_t cap)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *out = NULL;
    if (!complete_value(buf, len))
        return fail(why, cap, "not a complete msgpack value");
    msgpack_unpacked_init(&u);
    msgpack_unpack_return rc = msgpack_unpack_next(&u, buf, len, &off);
    /* Name the failure: msgpack-c reports nesting deeper than its fixed stack
     * (MSGPACK_EMBED_STACK_SIZE, 32 levels) as NOMEM, which a dead-letter
     * reader would otherwise see as "not a complete msgpack value". */
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        fail(why, cap, "msgpack value nested too deeply (more than 32 levels)");
    else if (rc != MSGPACK_UNPACK_SUCCESS)
        fail(why, cap, "not a complete msgpack value");
    else if (off != len)
        fail(why, cap, "trailing bytes after the msgpack value");
    else
        out = to_json(&u.data, why, cap);
    msgpack_unpacked_destroy(&u);
    return out;
}

md_decode_status_t md_command_decode_msgpack(const void *buf, size_t len,
                                             const md_decode_opts_t *opts, md_command_t *out)
{
    char why[160] = "msgpack value has no JSON equivalent"; /* never an empty reason */
    memset(out, 0, offsetof(md_command_t, arena));
    out->arena_len = 0;
    json_t *root = md__msgpack_to_json(buf, len, why, sizeof why);
    md_decode_status_t st;
    if (root == NULL) {
        out->status = st = MD_DECODE_MALFORMED;
        snprintf(out->detail, sizeof out->detail, "%s", why);
    } else {
        st = md__decode_root(root, opts, out);
    }
    json_decref(root);
    if (st == MD_DECODE_MALFORMED)
        md__sha256(buf, len, out->sha256);
    return st;
}
