/*
 * jsonl2mp.c - bench-jsonl2mp < in.jsonl > out.mpf: the same commands in msgpack.
 *
 * Each non-blank line becomes one frame: a 4-byte big-endian length, then the
 * msgpack encoding of the JSON value (maps keep their key order; integers stay
 * integers, reals become float64). A line that is not JSON is copied as it is,
 * so it stays MALFORMED. `marketd --input-format msgpack` reads these frames.
 */
#include <jansson.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void pack(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_foreach((json_t *)j, k, v) {
            msgpack_pack_str(pk, strlen(k));
            msgpack_pack_str_body(pk, k, strlen(k));
            pack(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v) pack(pk, v);
        break;
    }
    case JSON_STRING:
        msgpack_pack_str(pk, json_string_length(j));
        msgpack_pack_str_body(pk, json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    default:
        msgpack_pack_nil(pk);
        break;
    }
}

static void frame(const void *p, size_t n)
{
    unsigned char h[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                          (unsigned char)(n >> 8), (unsigned char)n};
    fwrite(h, 1, 4, stdout);
    fwrite(p, 1, n, stdout);
}

int main(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        if (len == 0)
            continue;
        json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_PRESERVE_ORDER, NULL);
        if (j == NULL) {
            frame(line, len);
            continue;
        }
        msgpack_sbuffer_clear(&sb);
        pack(&pk, j);
        json_decref(j);
        frame(sb.data, sb.size);
    }
    free(line);
    msgpack_sbuffer_destroy(&sb);
    return fflush(stdout) == 0 ? 0 : 1;
}
