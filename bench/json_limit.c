/*
 * json_limit.c - bench-json-limit FILE: the unavoidable cost of JSON input.
 *
 * Reads FILE (JSON lines) into memory, then parses every non-blank line with
 * json_loadb(JSON_REJECT_DUPLICATES) and frees it, as the command decoder
 * must at the least. Prints "lines=N seconds=S per_s=R" on stdout; the
 * read is not timed.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench-json-limit FILE\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf == NULL || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "bench-json-limit: cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);
    buf[size] = '\n';
    unsigned long n = 0, bad = 0;
    double t0 = md_mono_s();
    for (char *p = buf, *end = buf + size; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p) + 1);
        size_t len = (size_t)(nl - p);
        if (len > 0) {
            json_error_t e;
            json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &e);
            if (j == NULL)
                bad++;
            json_decref(j);
            n++;
        }
        p = nl + 1;
    }
    double secs = md_mono_s() - t0;
    printf("lines=%lu invalid=%lu seconds=%.3f per_s=%.0f\n", n, bad, secs, n / secs);
    free(buf);
    return 0;
}
