/*
 * pack.c - msgpack-c packing into an md_buf_t, and the one JSON -> msgpack
 * packer (market-load, bench-jsonl2mp and the fuzz targets use it).
 */
#include <jansson.h>
#include <msgpack.h>
#include <string.h>

#include "md_base.h"

static int md_buf_write(void *data, const char *p, size_t n)
{
    md_buf_append(data, p, n);
    return 0;
}

void md__pack_init(msgpack_packer *pk, md_buf_t *out)
{
    msgpack_packer_init(pk, out, md_buf_write);
}

void md__pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* The packer writes into an md_buf_t, which cannot fail (it aborts on out of
 * memory), so the msgpack_pack_* results are always 0. */
static void pack_json(msgpack_packer *pk, const json_t *j)
{
    const char *k;
    json_t *v;
    size_t i;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach ((json_t *)j, k, v) {
            md__pack_str(pk, k, strlen(k)); /* keys hold no NUL: no JSON_ALLOW_NUL */
            pack_json(pk, v);
        }
        break;
    case JSON_ARRAY:
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach (j, i, v)
            pack_json(pk, v);
        break;
    case JSON_STRING: md__pack_str(pk, json_string_value(j), json_string_length(j)); break;
    case JSON_INTEGER: msgpack_pack_int64(pk, json_integer_value(j)); break;
    case JSON_REAL: msgpack_pack_double(pk, json_real_value(j)); break;
    case JSON_TRUE: msgpack_pack_true(pk); break;
    case JSON_FALSE: msgpack_pack_false(pk); break;
    case JSON_NULL: msgpack_pack_nil(pk); break;
    }
}

void md_json_to_msgpack(const json_t *j, md_buf_t *out)
{
    msgpack_packer pk;
    md__pack_init(&pk, out);
    pack_json(&pk, j);
}
