/*
 * lmdb_limit.c - bench-lmdb-limit SRC_DIR DST_DIR [BATCH] [--no-sync]
 *
 * The cost of the event store alone: the events of SRC_DIR (a store written
 * by marketd) are loaded into memory, then appended to a fresh store in
 * DST_DIR with md_store_write + md_txn_append, BATCH commands' events per
 * write transaction (a command = a run of events with the same command_id,
 * as the engine appends them), synced like marketd. No rules, no state, no
 * outcomes, no projections, no outbox: what is left is encoding the body,
 * the SHA-256 chain, the events and stream-index puts and the commit.
 * Prints "events=E commands=C batches=B seconds=S events_per_s=R
 * commands_per_s=R" on stdout; loading is not timed.
 *
 *   bench-lmdb-limit --scan DIR [UNTIL]
 *
 * The floor of rebuild, replay and verify: reads and decodes every event (or
 * those up to seq UNTIL) with md_txn_scan, doing nothing with them. Prints
 * "events=E seconds=S events_per_s=R".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"
#include "md_store.h"

typedef struct rec {
    int64_t recorded_at;
    uint32_t off, data_len; /* into the text arena: 4 strings, then data */
    uint8_t sl, tl, cl, al, has_cmd, has_actor, new_cmd;
} rec_t;

typedef struct load {
    rec_t *r;
    size_t n, cap;
    md_buf_t text;
    char last_cmd[MD_CMDID_MAX + 2];
    size_t commands;
} load_t;

static md_err_t keep(const md_event_t *ev, const void *body, size_t blen, void *ctx,
                     md_error_t *err)
{
    load_t *l = ctx;
    (void)body, (void)blen, (void)err;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 65536;
        l->r = md_realloc(l->r, l->cap * sizeof *l->r);
    }
    rec_t *r = &l->r[l->n++];
    r->recorded_at = ev->recorded_at;
    r->off = (uint32_t)l->text.len;
    r->sl = (uint8_t)strlen(ev->stream);
    r->tl = (uint8_t)strlen(ev->type);
    r->cl = (uint8_t)strlen(ev->command_id);
    r->al = (uint8_t)strlen(ev->actor);
    r->has_cmd = ev->has_command_id;
    r->has_actor = ev->has_actor;
    r->data_len = (uint32_t)ev->data_len;
    /* A new command starts where the command_id changes (MALFORMED: always). */
    r->new_cmd = !ev->has_command_id || strcmp(ev->command_id, l->last_cmd) != 0;
    snprintf(l->last_cmd, sizeof l->last_cmd, "%s", ev->has_command_id ? ev->command_id : "");
    l->commands += r->new_cmd;
    md_buf_append(&l->text, ev->stream, r->sl);
    md_buf_append(&l->text, ev->type, r->tl);
    md_buf_append(&l->text, ev->command_id, r->cl);
    md_buf_append(&l->text, ev->actor, r->al);
    md_buf_append(&l->text, ev->data, ev->data_len);
    return MD_OK;
}

typedef struct writer {
    load_t *l;
    size_t from, to;
} writer_t;

static void take(char *dst, const unsigned char **p, size_t n)
{
    memcpy(dst, *p, n);
    dst[n] = 0;
    *p += n;
}

static md_err_t write_batch(md_txn_t *t, void *ctx, md_error_t *err)
{
    writer_t *w = ctx;
    for (size_t i = w->from; i < w->to; i++) {
        const rec_t *r = &w->l->r[i];
        const unsigned char *p = w->l->text.p + r->off;
        md_event_t ev;
        memset(&ev, 0, offsetof(md_event_t, data));
        take(ev.stream, &p, r->sl);
        take(ev.type, &p, r->tl);
        take(ev.command_id, &p, r->cl);
        take(ev.actor, &p, r->al);
        ev.has_command_id = r->has_cmd;
        ev.has_actor = r->has_actor;
        ev.recorded_at = r->recorded_at;
        ev.data = p;
        ev.data_len = r->data_len;
        md_err_t rc = md_txn_append(t, &ev, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

static md_err_t nothing(const md_event_t *ev, const void *body, size_t blen, void *ctx,
                        md_error_t *err)
{
    (void)ev, (void)body, (void)blen, (void)err;
    ++*(size_t *)ctx;
    return MD_OK;
}

static int scan(const char *dir, uint64_t until)
{
    md_error_t err = {0};
    md_store_t *s = NULL;
    md_txn_t *t = NULL;
    md_store_opts_t ro = {.read_only = true};
    size_t n = 0;
    double t0 = md_mono_s();
    if (md_store_open(dir, &ro, &s, &err) != MD_OK || md_store_read(s, &t, &err) != MD_OK ||
        md_txn_scan(t, 1, until, nothing, &n, &err) != MD_OK) {
        fprintf(stderr, "bench-lmdb-limit: %s\n", err.msg);
        md_txn_end(t);
        md_store_free(s);
        return 1;
    }
    md_txn_end(t);
    md_store_free(s);
    double secs = md_mono_s() - t0;
    printf("events=%zu seconds=%.3f events_per_s=%.0f\n", n, secs, n / secs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--scan") == 0)
        return scan(argv[2], argc > 3 ? strtoull(argv[3], NULL, 10) : 0);
    md_error_t err = {0};
    md_store_t *src = NULL, *dst = NULL;
    md_txn_t *t = NULL;
    load_t l = {0};
    bool nosync = argc > 4 && strcmp(argv[4], "--no-sync") == 0;
    size_t batch = argc > 3 ? strtoul(argv[3], NULL, 10) : 1000;
    if (argc < 3 || batch == 0) {
        fprintf(stderr, "usage: bench-lmdb-limit SRC_DIR DST_DIR [BATCH] [--no-sync]\n");
        return 2;
    }
    md_buf_init(&l.text);
    md_store_opts_t ro = {.read_only = true}, wo = {.nosync = nosync};
    if (md_store_open(argv[1], &ro, &src, &err) != MD_OK || md_store_read(src, &t, &err) != MD_OK ||
        md_txn_scan(t, 1, 0, keep, &l, &err) != MD_OK)
        goto fail;
    md_txn_end(t);
    t = NULL;
    md_store_free(src);
    src = NULL;
    if (md_store_open(argv[2], &wo, &dst, &err) != MD_OK)
        goto fail;
    size_t batches = 0;
    double t0 = md_mono_s();
    for (size_t i = 0; i < l.n;) {
        writer_t w = {&l, i, i};
        size_t cmds = 0;
        while (w.to < l.n && !(l.r[w.to].new_cmd && cmds == batch)) {
            cmds += l.r[w.to].new_cmd;
            w.to++;
        }
        if (md_store_write(dst, write_batch, &w, &err) != MD_OK)
            goto fail;
        batches++;
        i = w.to;
    }
    double secs = md_mono_s() - t0;
    /* Bytes written through write/pwrite/writev so far: the store's pages. */
    unsigned long long wchar = 0;
    FILE *io = fopen("/proc/self/io", "r");
    if (io) {
        char line[128];
        while (fgets(line, sizeof line, io))
            if (sscanf(line, "wchar: %llu", &wchar) == 1)
                break;
        fclose(io);
    }
    printf("events=%zu commands=%zu batches=%zu seconds=%.3f events_per_s=%.0f "
           "commands_per_s=%.0f wchar=%llu\n",
           l.n, l.commands, batches, secs, l.n / secs, l.commands / secs, wchar);
    md_store_free(dst);
    free(l.r);
    md_buf_release(&l.text);
    return 0;
fail:
    fprintf(stderr, "bench-lmdb-limit: %s\n", err.msg);
    md_txn_end(t);
    md_store_free(src);
    md_store_free(dst);
    return 1;
}
