/*
 * json_check.c - bench-json-check DIR: checks, over every event of the store
 * in DIR, that md_event_json_append (the outbox's fast path) writes exactly
 * what json_dumpb(md_event_to_json(), JSON_COMPACT) writes. Run by
 * tests/unit/bench_smoke.sh on the benchmark's generated mix and the demo day.
 * Prints "events=N diffs=D" and the first differences; exit 1 on any.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_store.h"

typedef struct check {
    size_t n, bad;
    md_buf_t out;
} check_t;

static md_err_t compare(const md_event_t *ev, const void *body, size_t blen, void *ctx,
                        md_error_t *err)
{
    check_t *c = ctx;
    (void)body, (void)blen, (void)err;
    md_buf_reset(&c->out);
    md_err_t rc = md_event_json_append(ev, &c->out);
    json_t *j = md_event_to_json(ev, NULL, 0);
    char *d = j ? json_dumps(j, JSON_COMPACT) : NULL;
    bool same = (rc == MD_OK) == (d != NULL) &&
                (d == NULL || (strlen(d) == c->out.len && memcmp(d, c->out.p, c->out.len) == 0));
    if (!same && c->bad++ < 3)
        printf("seq %llu:\n  jansson %s\n  fast    %.*s\n", (unsigned long long)ev->seq,
               d ? d : "(error)", (int)c->out.len, (const char *)c->out.p);
    c->n++;
    free(d);
    json_decref(j);
    return MD_OK;
}

int main(int argc, char **argv)
{
    md_error_t err = {0};
    md_store_t *s = NULL;
    md_txn_t *t = NULL;
    md_store_opts_t ro = {.read_only = true};
    check_t c = {0};
    if (argc != 2) {
        fprintf(stderr, "usage: bench-json-check DIR\n");
        return 2;
    }
    md_buf_init(&c.out);
    int rc = md_store_open(argv[1], &ro, &s, &err) != MD_OK ||
             md_store_read(s, &t, &err) != MD_OK ||
             md_txn_scan(t, 1, 0, compare, &c, &err) != MD_OK;
    if (rc)
        fprintf(stderr, "bench-json-check: %s\n", err.msg);
    else
        printf("events=%zu diffs=%zu\n", c.n, c.bad);
    md_txn_end(t);
    md_store_free(s);
    md_buf_release(&c.out);
    return rc || c.bad ? 1 : 0;
}
