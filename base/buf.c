/*
 * buf.c - md_buf_t, the growable byte buffer (see md_base.h).
 */
#include <stdlib.h>
#include <string.h>

#include "md_base.h"

void md_buf_init(md_buf_t *b)
{
    b->p = NULL;
    b->len = b->cap = 0;
}

void md_buf_release(md_buf_t *b)
{
    free(b->p);
    md_buf_init(b);
}

void md_buf_reset(md_buf_t *b)
{
    b->len = 0;
}

unsigned char *md_buf_reserve(md_buf_t *b, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        b->p = md_realloc(b->p, cap);
        b->cap = cap;
    }
    return b->p + b->len;
}

size_t md_str_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}
