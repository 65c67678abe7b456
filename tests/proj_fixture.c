/*
 * proj_fixture.c - see proj_fixture.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "proj_fixture.h"

static void must(md_err_t rc, const md_error_t *err, const char *what)
{
    if (rc != MD_OK) {
        fprintf(stderr, "proj fixture: %s: %s\n", what, err->msg);
        abort();
    }
}

proj_fx_t *proj_fx_new(bool attach)
{
    proj_fx_t *f = md_calloc(1, sizeof *f);
    md_store_opts_t so = {.nosync = true};
    md_engine_opts_t eo = {.clock = MD_CLOCK_COMMAND};
    md_error_t err = {0};
    f->dir = md_test_tmpdir();
    must(md_store_open(f->dir, &so, &f->store, &err), &err, "store");
    must(md_engine_new(f->store, &eo, &f->eng, &err), &err, "engine");
    if (attach) {
        must(md_proj_open(f->store, &f->proj, &err), &err, "projections");
        must(md_engine_add_hook(f->eng, md_proj_event_hook, f->proj, &err), &err, "attach");
        must(md_engine_add_batch_hooks(f->eng, md_proj_batch_begin, md_proj_batch_end, f->proj,
                                       &err),
             &err, "attach batches");
    }
    return f;
}

void proj_fx_free(proj_fx_t *f)
{
    if (f == NULL)
        return;
    md_engine_free(f->eng);
    md_proj_free(f->proj);
    md_store_free(f->store);
    md_test_rmdir(f->dir);
    free(f);
}

md_err_t proj_fx_run(proj_fx_t *f, const char *const *lines, size_t n)
{
    md_input_t *in = md_calloc(n ? n : 1, sizeof *in);
    md_error_t err = {0};
    for (size_t i = 0; i < n; i++)
        in[i] = (md_input_t){.bytes = lines[i], .len = strlen(lines[i]), .partition = -1};
    md_err_t rc = md_engine_process(f->eng, in, n, 0, NULL, &err);
    if (rc != MD_OK)
        fprintf(stderr, "proj fixture: process: %s\n", err.msg);
    free(in);
    return rc;
}

/* Runs and frees the @p n lines held; returns how many ran, or -1. */
static long flush_lines(proj_fx_t *f, char **lines, size_t n)
{
    md_err_t rc = n ? proj_fx_run(f, (const char *const *)lines, n) : MD_OK;
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    return rc == MD_OK ? (long)n : -1;
}

long proj_fx_run_file(proj_fx_t *f, const char *path, size_t batch, size_t max)
{
    FILE *fp = fopen(path, "r");
    char **lines = md_calloc(batch, sizeof *lines), *line = NULL;
    size_t n = 0, cap = 0;
    long total = 0, ran;
    ssize_t len;
    if (fp == NULL) {
        free(lines);
        return -1;
    }
    size_t seen = 0;
    while (total >= 0 && (!max || seen < max) && (len = getline(&line, &cap, fp)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len == 0)
            continue;
        lines[n++] = md_strdup(line);
        seen++;
        if (n == batch) {
            ran = flush_lines(f, lines, n);
            total = ran < 0 ? -1 : total + ran;
            n = 0;
        }
    }
    ran = flush_lines(f, lines, n);
    total = ran < 0 || total < 0 ? -1 : total + ran;
    free(line);
    free(lines);
    fclose(fp);
    return total;
}

json_t *proj_fx_get(proj_fx_t *f, const char *kind, const char *id)
{
    md_txn_t *t = NULL;
    json_t *j = NULL;
    md_error_t err = {0};
    must(md_store_read(f->store, &t, &err), &err, "read");
    md_err_t rc = md_proj_get(f->proj, t, kind, id, 0, &j, &err);
    md_txn_end(t);
    if (rc != MD_OK && rc != MD_ENOTFOUND)
        must(rc, &err, "get");
    return rc == MD_OK ? j : NULL;
}

long long proj_fx_int(proj_fx_t *f, const char *kind, const char *id, const char *field)
{
    json_t *j = proj_fx_get(f, kind, id);
    long long v = j ? (long long)json_integer_value(json_object_get(j, field)) : -1;
    json_decref(j);
    return v;
}

const char *proj_fx_str(proj_fx_t *f, const char *kind, const char *id, const char *field)
{
    static char buf[512];
    json_t *j = proj_fx_get(f, kind, id);
    const char *s = j ? json_string_value(json_object_get(j, field)) : NULL;
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    json_decref(j);
    return buf;
}

typedef struct collect {
    char *ids;
    size_t cap, n;
    const char *action, *role;
} collect_t;

static md_err_t collect_order(json_t *row, void *ctx, md_error_t *err)
{
    collect_t *c = ctx;
    (void)err;
    if (c->ids) {
        size_t len = strlen(c->ids);
        snprintf(c->ids + len, c->cap - len, "%s%s", len ? "," : "",
                 json_string_value(json_object_get(row, "order_id")));
    }
    c->n++;
    return MD_OK;
}

size_t proj_fx_orders(proj_fx_t *f, const md_proj_order_filter_t *flt, char *ids, size_t cap)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    md_proj_page_t page = {0};
    collect_t c = {ids, cap, 0, NULL, NULL};
    if (ids)
        ids[0] = '\0';
    must(md_store_read(f->store, &t, &err), &err, "read");
    must(md_proj_orders(f->proj, t, flt, &page, collect_order, &c, &err), &err, "orders");
    md_txn_end(t);
    return c.n;
}

static md_err_t collect_audit(json_t *row, void *ctx, md_error_t *err)
{
    collect_t *c = ctx;
    const char *a = json_string_value(json_object_get(row, "action"));
    const char *r = json_string_value(json_object_get(row, "role"));
    (void)err;
    if ((!c->action || (a && strncmp(a, c->action, strlen(c->action)) == 0)) &&
        (!c->role || (r && strcmp(r, c->role) == 0)))
        c->n++;
    return MD_OK;
}

size_t proj_fx_audit(proj_fx_t *f, const md_proj_audit_filter_t *flt, const char *action,
                     const char *role)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    md_proj_page_t page = {0};
    collect_t c = {NULL, 0, 0, action, role};
    must(md_store_read(f->store, &t, &err), &err, "read");
    must(md_proj_audit(f->proj, t, flt, &page, collect_audit, &c, &err), &err, "audit");
    md_txn_end(t);
    return c.n;
}

md_err_t proj_fx_verify(proj_fx_t *f, md_proj_report_t *rep)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    md_proj_report_t *r = rep ? rep : md_calloc(1, sizeof *r);
    must(md_store_read(f->store, &t, &err), &err, "read");
    md_err_t rc = md_proj_verify(f->proj, t, NULL, NULL, r, &err);
    if (rc != MD_OK && rc != MD_ECORRUPT)
        must(rc, &err, "verify");
    if (rc != MD_OK)
        fprintf(stderr, "proj fixture: verify: %s\n", err.msg);
    md_txn_end(t);
    if (rep == NULL)
        free(r);
    return rc;
}

void proj_fx_digest(proj_fx_t *f, md_proj_digest_t *d, uint64_t *head)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    must(md_store_read(f->store, &t, &err), &err, "read");
    must(md_proj_digest(f->proj, t, d, &err), &err, "digest");
    must(md_txn_head(t, head, NULL, &err), &err, "head");
    md_txn_end(t);
}

void proj_fx_dir_digest(const char *dir, md_proj_digest_t *d)
{
    md_store_t *s = NULL;
    md_proj_t *p = NULL;
    md_txn_t *t = NULL;
    md_error_t err = {0};
    must(md_store_open(dir, NULL, &s, &err), &err, "open replayed store");
    must(md_proj_open(s, &p, &err), &err, "open replayed projections");
    must(md_store_read(s, &t, &err), &err, "read");
    must(md_proj_digest(p, t, d, &err), &err, "digest");
    md_txn_end(t);
    md_proj_free(p);
    md_store_free(s);
}

const char *proj_fx_demo_path(void)
{
    static const char *const candidates[] = {"demo/demo-day.jsonl", "../demo/demo-day.jsonl",
                                             "../../demo/demo-day.jsonl"};
    for (size_t i = 0; i < sizeof candidates / sizeof candidates[0]; i++)
        if (access(candidates[i], R_OK) == 0)
            return candidates[i];
    return candidates[0];
}

size_t proj_fx_demo_lines(char **lines, size_t max)
{
    FILE *fp = fopen(proj_fx_demo_path(), "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    ssize_t len;
    if (fp == NULL) {
        fprintf(stderr, "proj fixture: %s: cannot open\n", proj_fx_demo_path());
        abort();
    }
    while (n < max && (len = getline(&line, &cap, fp)) > 0) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0])
            lines[n++] = md_strdup(line);
    }
    free(line);
    fclose(fp);
    return n;
}

uint64_t proj_fx_head(proj_fx_t *f)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t head = 0;
    must(md_store_read(f->store, &t, &err), &err, "read");
    must(md_txn_head(t, &head, NULL, &err), &err, "head");
    md_txn_end(t);
    return head;
}
