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

/*
 * A packer of md__pack_init gets the header and the body in one append, with
 * the bytes msgpack_pack_str writes (fixstr, str8, str16, str32 by length;
 * test_base compares them): msgpack-c calls the write callback for each, and
 * event bodies are mostly short strings (~4% of the writer's instructions went
 * to those calls). Any other packer goes through msgpack-c.
 */
void md__pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    if (pk->callback != md_buf_write) {
        msgpack_pack_str(pk, n);
        msgpack_pack_str_body(pk, s, n);
        return;
    }
    md_buf_t *out = pk->data;
    unsigned char *w = md_buf_reserve(out, n + 5);
    size_t h = 1;
    if (n < 32) {
        w[0] = (unsigned char)(0xa0 | n);
    } else if (n < 256) {
        w[0] = 0xd9, w[1] = (unsigned char)n, h = 2;
    } else if (n < 65536) {
        w[0] = 0xda, w[1] = (unsigned char)(n >> 8), w[2] = (unsigned char)n, h = 3;
    } else {
        w[0] = 0xdb, h = 5;
        for (int i = 0; i < 4; i++)
            w[1 + i] = (unsigned char)((uint32_t)n >> (24 - 8 * i));
    }
    if (n)
        memcpy(w + h, s, n);
    out->len += h + n;
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
