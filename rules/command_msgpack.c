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
    return json_stringn_nocheck(s->ptr, s->size);
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
        json_array_append_new(arr, v);
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

json_t *md__msgpack_to_json(const void *buf, size_t len, char *why, size_t cap)
{
    msgpack_unpacked u;
    size_t off = 0;
    json_t *out = NULL;
    msgpack_unpacked_init(&u);
    msgpack_unpack_return rc = msgpack_unpack_next(&u, buf, len, &off);
    if (rc != MSGPACK_UNPACK_SUCCESS)
        fail(why, cap, "not a complete msgpack value");
    else if (off != len)
        fail(why, cap, "trailing bytes after the msgpack value");
    else
        out = to_json(&u.data, why, cap);
    msgpack_unpacked_destroy(&u);
    return out;
}

md_decode_status_t md_command_decode_msgpack(const void *buf, size_t len,
                                             const md_decode_opts_t *opts,
                                             md_command_t *out)
{
    char why[160];
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
