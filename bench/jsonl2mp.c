/*
 * jsonl2mp.c - bench-jsonl2mp < in.jsonl > out.mpf: the same commands in msgpack.
 *
 * Each non-blank line becomes one frame: a 4-byte big-endian length, then the
 * msgpack encoding of the JSON value (md_json_to_msgpack: maps keep their key
 * order; integers stay integers, reals become float64). A line that is not
 * JSON is copied as it is, so it stays MALFORMED. `marketd --input-format msgpack` reads these frames.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_base.h"

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
    md_buf_t mp;
    md_buf_init(&mp);
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
        md_buf_reset(&mp);
        md_json_to_msgpack(j, &mp);
        json_decref(j);
        frame(mp.p, mp.len);
    }
    free(line);
    md_buf_release(&mp);
    return fflush(stdout) == 0 ? 0 : 1;
}
