/*
 * offline.c - `marketd --input`: the same engine and batching as the Kafka
 * mode, fed from JSON lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"
#include "md_log.h"
#include "md_offline.h"
#include "md_proj.h"
#include "md_projector.h"

#define DEFAULT_BATCH 1000

typedef struct batch {
    md_buf_t text; /* the lines of the batch, back to back */
    size_t *starts, *lens;
    md_input_t *in;
    size_t n, cap;
    bool msgpack; /* the messages are msgpack */
} batch_t;

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
        b->in[i] = (md_input_t){.bytes = b->text.p + b->starts[i],
                                .len = b->lens[i],
                                .msgpack = b->msgpack,
                                .partition = -1};
}

static void batch_release(batch_t *b)
{
    md_buf_release(&b->text);
    free(b->starts);
    free(b->lens);
    free(b->in);
}

static md_err_t flush_batch(md_engine_t *eng, batch_t *b, FILE *out, md_buf_t *res, md_error_t *err)
{
    if (b->n == 0)
        return MD_OK;
    batch_seal(b);
    md_buf_reset(res);
    md_err_t rc = md_engine_process(eng, b->in, b->n, md_wall_ms(), res, err);
    if (rc != MD_OK)
        return rc;
    if (fwrite(res->p, 1, res->len, out) != res->len || fflush(out) != 0)
        return md_error_set(err, MD_EIO, "write results: %s", strerror(errno));
    b->n = 0;
    md_buf_reset(&b->text);
    return MD_OK;
}

/* Reads the next JSON line (without its newline) into *buf; blank lines are
 * skipped. Returns 1, 0 at the end of input, -1 on a read error. */
static int next_line(FILE *in, char **buf, size_t *cap, size_t *len)
{
    ssize_t n;
    while ((n = getline(buf, cap, in)) >= 0) {
        *len = (size_t)n;
        if (*len && (*buf)[*len - 1] == '\n')
            (*len)--;
        if (!is_blank(*buf, *len))
            return 1;
    }
    return ferror(in) ? -1 : 0;
}

/* Reads the next msgpack frame (4-byte big-endian length, then the bytes).
 * A truncated frame is a read error. */
static int next_frame(FILE *in, char **buf, size_t *cap, size_t *len)
{
    unsigned char h[4];
    size_t got = fread(h, 1, 4, in);
    if (got == 0 && !ferror(in))
        return 0;
    if (got != 4)
        return -1;
    *len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
    if (*len + 1 > *cap) {
        *cap = *len + 1;
        *buf = md_realloc(*buf, *cap);
    }
    return fread(*buf, 1, *len, in) == *len ? 1 : -1;
}

static md_err_t run_input(md_engine_t *eng, FILE *in, FILE *out, size_t batch_max, bool msgpack,
                          md_error_t *err)
{
    batch_t b = {.msgpack = msgpack};
    md_buf_t res;
    char *line = NULL;
    size_t cap = 0, len = 0;
    int got = 0;
    md_err_t rc = MD_OK;
    md_buf_init(&b.text);
    md_buf_init(&res);
    while (rc == MD_OK && (got = msgpack ? next_frame(in, &line, &cap, &len)
                                         : next_line(in, &line, &cap, &len)) > 0) {
        batch_add(&b, line, len);
        if (b.n >= batch_max)
            rc = flush_batch(eng, &b, out, &res, err);
    }
    if (rc == MD_OK && got < 0)
        rc = md_error_set(err, MD_EIO, "read input: %s",
                          ferror(in) ? strerror(errno) : "truncated msgpack frame");
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
                (unsigned long long)s->batches, secs, secs > 0 ? (double)s->commands / secs : 0.0);
}

/* Waits for the projector to apply the log up to its head. */
static md_err_t wait_projections(md_store_t *store, md_projector_t *pr, md_error_t *err)
{
    md_txn_t *t = NULL;
    uint64_t head = 0;
    md_err_t rc = md_store_read(store, &t, err);
    if (rc == MD_OK)
        rc = md_txn_head(t, &head, NULL, err);
    md_txn_end(t);
    return rc == MD_OK ? md_projector_wait(pr, head, -1, err) : rc;
}

/* The projector with offline mode's transaction size unless one is set. */
static md_err_t start_projector(md_proj_t *proj, const md_projector_opts_t *set,
                                md_projector_t **out, md_error_t *err)
{
    md_projector_opts_t po = *set;
    if (po.max_events == 0)
        po.max_events = MD_OFFLINE_PROJ_MAX_EVENTS;
    return md_projector_start(proj, &po, out, err);
}

md_err_t md_offline_run(const md_offline_opts_t *o, md_error_t *err)
{
    md_store_opts_t so = {.nosync = o->nosync, .lock = true}; /* one writer per directory */
    md_store_t *store = NULL;
    md_engine_t *eng = NULL;
    md_proj_t *proj = NULL;
    md_projector_t *projector = NULL;
    FILE *in = NULL, *out = NULL;
    const char *res = o->results ? o->results : "-";
    double t0 = md_mono_s();
    if (o->engine.clock == MD_CLOCK_LOG) /* a file has no log timestamps */
        return md_error_set(err, MD_ECONFIG, "clock = log needs Kafka; offline, use command");
    md_err_t rc = md_store_open(o->data_dir, &so, &store, err);
    if (rc == MD_OK)
        md_log_store_converted(store);
    if (rc == MD_OK)
        rc = md_engine_new(store, &o->engine, &eng, err);
    if (rc == MD_OK) /* their own environment, applied by the projector thread */
        rc = md_proj_open_dir(store, o->data_dir, &so, &proj, err);
    if (rc == MD_OK)
        rc = start_projector(proj, &o->projector, &projector, err);
    if (rc != MD_OK)
        goto done;
    md_engine_set_commit_hook(eng, md_projector_kick, projector);
    in = strcmp(o->input, "-") == 0 ? stdin : fopen(o->input, "r");
    out = strcmp(res, "-") == 0 ? stdout : fopen(res, "w");
    if (in == NULL || out == NULL) {
        rc = md_error_set(err, MD_EIO, "open '%s': %s", in ? res : o->input, strerror(errno));
        goto done;
    }
    rc = run_input(eng, in, out, o->batch_max ? o->batch_max : DEFAULT_BATCH, o->msgpack, err);
    if (rc == MD_OK) /* the projections show every event before the exit */
        rc = wait_projections(store, projector, err);
    if (rc == MD_OK && !o->quiet)
        summary(md_engine_stats(eng), md_mono_s() - t0);
done:
    if (in && in != stdin)
        fclose(in);
    if (out && out != stdout && fclose(out) != 0 && rc == MD_OK)
        rc = md_error_set(err, MD_EIO, "close '%s': %s", res, strerror(errno));
    md_engine_free(eng);
    md_projector_free(projector);
    md_proj_free(proj);
    md_store_free(store);
    return rc;
}
