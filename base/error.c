/*
 * error.c - md_error_t handling, md_strerror and the abort-on-OOM allocators,
 * which jansson uses too (set before main: one out-of-memory policy).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_base.h"

static const struct {
    md_err_t code;
    const char *text;
} md_err_texts[] = {
    {MD_OK, "success"},
    {MD_EINVAL, "invalid argument or input"},
    {MD_ENOMEM, "out of memory"},
    {MD_ESTORE, "store error"},
    {MD_EMAPFULL, "store map full"},
    {MD_ECODEC, "encoding error"},
    {MD_ENOTFOUND, "not found"},
    {MD_ECORRUPT, "corrupt data"},
    {MD_EIO, "input/output error"},
    {MD_EKAFKA, "kafka error"},
    {MD_ECONFIG, "configuration error"},
    {MD_EEXIST, "already exists"},
    {MD_ESTOP, "stopped"},
    {MD_EVERSION, "incompatible store format"},
    {MD_ETIMEDOUT, "timed out"},
};

const char *md_strerror(md_err_t code)
{
    for (size_t i = 0; i < sizeof md_err_texts / sizeof md_err_texts[0]; i++)
        if (md_err_texts[i].code == code)
            return md_err_texts[i].text;
    return "unknown error";
}

md_err_t md_error_set(md_error_t *e, md_err_t code, const char *fmt, ...)
{
    if (e == NULL || e->code != MD_OK)
        return code; /* first error wins */
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return code;
}

void md_error_clear(md_error_t *e)
{
    if (e == NULL)
        return;
    e->code = MD_OK;
    e->msg[0] = '\0';
}

static void *md_oom(size_t n)
{
    fprintf(stderr, "marketd: out of memory allocating %zu bytes\n", n);
    abort();
}

void *md_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    /* cppcheck-suppress memleak ; md_oom aborts, so p is never dropped */
    return p ? p : md_oom(n);
}

void *md_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    /* cppcheck-suppress memleak ; md_oom aborts, so p is never dropped */
    return p ? p : md_oom(count * n);
}

void *md_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    /* cppcheck-suppress memleak ; md_oom aborts, so q is never dropped */
    return q ? q : md_oom(n);
}

char *md_strndup(const char *s, size_t n)
{
    char *p = md_malloc(n + 1);
    /* msgpack-c gives an empty string a NULL pointer, and memcpy(p, NULL, 0)
     * is undefined behaviour (found by tests/fuzz: an empty map key). */
    if (n)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *md_strdup(const char *s)
{
    return md_strndup(s, strlen(s));
}

/* jansson allocates through md_malloc: out of memory aborts there too, instead
 * of coming back as a NULL value that each caller would have to tell apart
 * from bad input. Set before main (and before any thread), once. */
__attribute__((constructor)) static void md_json_alloc_init(void)
{
    json_set_alloc_funcs(md_malloc, free);
}
