/*
 * offline.c - `marketd --input`: the same engine and batching as the Kafka
 * mode, fed from JSON lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_log.h"
#include "md_offline.h"

#define DEFAULT_BATCH 1000

typedef struct batch {
    md_buf_t text;        /* the lines of the batch, back to back */
    size_t *starts, *lens;
    md_input_t *in;
    size_t n, cap;
} batch_t;

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' &&
            s[i] != '\v')
            return false;
    return true;
}

static void batch_add(batch_t *b, const char *line, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 256;
        b->starts = md_realloc(b->starts, b->cap * sizeof *b->starts);
        b->lens = md_realloc(b->lens, b->cap * sizeof *b->lens);
        b->in = md_realloc(b->in, b->cap * sizeof *b->in);
    }
    b->starts[b->n] = b->text.len;
    b->lens[b->n] = len;
    md_buf_append(&b->text, line, len);
    b->n++;
}

/* Points the inputs at the lines (the text buffer no longer moves). */
static void batch_seal(batch_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        b->in[i] = (md_input_t){.bytes = b->text.p + b->starts[i], .len = b->lens[i],
                                .partition = -1};
}

static void batch_release(batch_t *b)
{
    md_buf_release(&b->text);
    free(b->starts);
    free(b->lens);
    free(b->in);
}

static md_err_t flush_batch(md_engine_t *eng, batch_t *b, FILE *out, md_buf_t *res,
                            md_error_t *err)
{
    if (b->n == 0)
        return MD_OK;
    batch_seal(b);
    md_buf_reset(res);
    md_err_t rc = md_engine_process(eng, b->in, b->n, wall_ms(), res, err);
    if (rc != MD_OK)
        return rc;
    if (fwrite(res->p, 1, res->len, out) != res->len || fflush(out) != 0)
        return md_error_set(err, MD_EIO, "write results: %s", strerror(errno));
    b->n = 0;
    md_buf_reset(&b->text);
    return MD_OK;
}

static md_err_t run_lines(md_engine_t *eng, FILE *in, FILE *out, size_t batch_max,
                          md_error_t *err)
{
    batch_t b = {0};
    md_buf_t res;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    md_err_t rc = MD_OK;
    md_buf_init(&b.text);
    md_buf_init(&res);
    while (rc == MD_OK && (n = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n')
            len--;
        if (is_blank(line, len))
            continue;
        batch_add(&b, line, len);
        if (b.n >= batch_max)
            rc = flush_batch(eng, &b, out, &res, err);
    }
    if (rc == MD_OK && ferror(in))
        rc = md_error_set(err, MD_EIO, "read input: %s", strerror(errno));
    if (rc == MD_OK)
        rc = flush_batch(eng, &b, out, &res, err);
    free(line);
    md_buf_release(&res);
    batch_release(&b);
    return rc;
}

static void summary(const md_engine_stats_t *s, double secs)
{
    md_log_info("input done",
                "commands=%llu accepted=%llu rejected=%llu duplicates=%llu malformed=%llu "
                "events=%llu batches=%llu seconds=%.3f commands_per_s=%.0f",
                (unsigned long long)s->commands, (unsigned long long)s->accepted,
                (unsigned long long)s->rejected, (unsigned long long)s->duplicates,
                (unsigned long long)s->malformed, (unsigned long long)s->events,
                (unsigned long long)s->batches, secs,
                secs > 0 ? (double)s->commands / secs : 0.0);
}

md_err_t md_offline_run(const md_offline_opts_t *o, md_error_t *err)
{
    md_store_opts_t so = {.nosync = o->nosync};
    md_store_t *store = NULL;
    md_engine_t *eng = NULL;
    FILE *in = NULL, *out = NULL;
    const char *res = o->results ? o->results : "-";
    double t0 = mono_s();
    md_err_t rc = md_store_open(o->data_dir, &so, &store, err);
    if (rc == MD_OK)
        rc = md_engine_new(store, &o->engine, &eng, err);
    if (rc != MD_OK)
        goto done;
    in = strcmp(o->input, "-") == 0 ? stdin : fopen(o->input, "r");
    out = strcmp(res, "-") == 0 ? stdout : fopen(res, "w");
    if (in == NULL || out == NULL) {
        rc = md_error_set(err, MD_EIO, "open '%s': %s", in ? res : o->input, strerror(errno));
        goto done;
    }
    rc = run_lines(eng, in, out, o->batch_max ? o->batch_max : DEFAULT_BATCH, err);
    if (rc == MD_OK && !o->quiet)
        summary(md_engine_stats(eng), mono_s() - t0);
done:
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0 && rc == MD_OK)
        rc = md_error_set(err, MD_EIO, "close '%s': %s", res, strerror(errno));
    md_engine_destroy(eng);
    md_store_close(store);
    return rc;
}
