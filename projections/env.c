/*
 * env.c - the projections' own environment (<data_dir>/proj): opening it
 * beside the event log, migrating a store of the old layout, the projector's
 * step (md_proj_advance), bounded waits for a watermark, and the snapshot a
 * query reads when it is handed a transaction of the log.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pj.h"

#define WAIT_POLL_MS 2 /* md_proj_wait: how often the watermark is read */

md_store_t *md_proj_store(md_proj_t *p)
{
    return p->store;
}

bool md_proj_split(const md_proj_t *p)
{
    return p->evlog != p->store;
}

uint64_t md_proj_caught_up(const md_proj_t *p, uint64_t *from_seq)
{
    if (from_seq)
        *from_seq = p->caught_up_from;
    return p->caught_up_to;
}

md_err_t md__pj_snapshot(md_proj_t *p, md_txn_t **t, md_txn_t **own, md_txn_t **events,
                         md_error_t *err)
{
    *own = NULL;
    *events = NULL;
    if (p == NULL || t == NULL || *t == NULL)
        return md_error_set(err, MD_EINVAL, "projection query: no handle or transaction");
    if (p->evlog == p->store) {
        *events = *t;
        return MD_OK;
    }
    if (md_txn_store(*t) == p->store)
        return MD_OK;
    *events = *t; /* a snapshot of the log */
    if (p->pinned) {
        *t = p->pinned;
        return MD_OK;
    }
    md_err_t rc = md_store_read(p->store, own, err);
    if (rc == MD_OK)
        *t = *own;
    return rc;
}

md_err_t md_proj_pin(md_proj_t *p, md_error_t *err)
{
    if (p->evlog == p->store)
        return MD_OK;
    md_txn_end(p->pinned);
    p->pinned = NULL;
    return md_store_read(p->store, &p->pinned, err);
}

/* ---- migration from the old layout -------------------------------------------------- */

/* The databases of layout format 6 and before, inside the log's environment. */
static const char *const old_dbs[] = {
    "p_orders",      "p_order_idx", "p_accounts", "p_account_idx", "p_audit",
    "p_audit_actor", "p_sales",     "p_records",  "p_rejections",  "p_meta",
};

static md_err_t drop_old_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof old_dbs / sizeof old_dbs[0]; i++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(md_txn_mdb(t), old_dbs[i], 0, &dbi);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc == MDB_SUCCESS)
            rc = mdb_drop(md_txn_mdb(t), dbi, 1);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, old_dbs[i]);
    }
    return MD_OK;
}

/* Whether the log's environment still holds the old layout's p_meta. */
static bool has_old_layout(md_store_t *log)
{
    md_txn_t *t = NULL;
    MDB_dbi dbi;
    bool found = false;
    if (md_store_read(log, &t, NULL) == MD_OK)
        found = mdb_dbi_open(md_txn_mdb(t), "p_meta", 0, &dbi) == MDB_SUCCESS;
    md_txn_end(t);
    return found;
}

/* Once the projections were rebuilt in their own environment, the old ones
 * (if any) are dropped from the log's: nothing reads them any more. */
static md_err_t drop_old_layout(md_store_t *log, md_error_t *err)
{
    if (!has_old_layout(log))
        return MD_OK;
    md_err_t rc = md_store_write(log, drop_old_fn, NULL, err);
    if (rc == MD_OK)
        fprintf(stderr, "marketd: projections migrated to their own environment (proj/); "
                        "the old p_* databases of the event log were dropped\n");
    return rc;
}

/* ---- opening ------------------------------------------------------------------------ */

md_err_t md_proj_open_dir(md_store_t *log, const char *data_dir, const md_store_opts_t *so,
                          md_proj_t **out, md_error_t *err)
{
    char dir[4096], file[4200];
    md_store_opts_t o = {.nosync = so && so->nosync, .read_only = so && so->read_only};
    md_store_t *env = NULL;
    if (log == NULL || data_dir == NULL || out == NULL)
        return md_error_set(err, MD_EINVAL, "md_proj_open_dir: no store or directory");
    if ((size_t)snprintf(dir, sizeof dir, "%s/proj", data_dir) >= sizeof dir)
        return md_error_set(err, MD_EINVAL, "data directory '%.64s...' too long", data_dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    if (o.read_only && access(file, F_OK) != 0)
        return md_proj_open(log, out, err); /* one environment (or not migrated yet) */
    md_err_t rc = md_store_open(dir, &o, &env, err);
    if (rc == MD_OK)
        rc = md__pj_open(log, env, out, err);
    if (rc != MD_OK) {
        md_store_free(env);
        return rc;
    }
    (*out)->own_env = env;
    if (!o.read_only && (rc = drop_old_layout(log, err)) != MD_OK) {
        md_proj_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- the projector's step ------------------------------------------------------------ */

typedef struct advance {
    md_proj_t *p;
    md_txn_t *src; /* a snapshot of the log */
    uint64_t head, max, seq;
} advance_t;

static md_err_t advance_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    advance_t *a = ctx;
    md_err_t rc = md_proj_batch_begin(t, a->p, err);
    uint64_t from = a->p->batch_meta + 1, to = a->head;
    if (a->max && to >= from && to - from + 1 > a->max)
        to = from + a->max - 1;
    for (uint64_t s = from; rc == MD_OK && s <= to; s++) {
        md_event_t ev;
        rc = md_txn_event(a->src, s, &ev, NULL, NULL, err);
        if (rc == MD_ENOTFOUND)
            rc = md_error_set(err, MD_ECORRUPT, "event %llu missing from the log",
                              (unsigned long long)s);
        if (rc == MD_OK)
            rc = md_proj_apply(a->p, t, &ev, err);
    }
    if (rc == MD_OK)
        rc = md_proj_batch_end(t, a->p, err);
    a->seq = rc == MD_OK && to >= from ? to : a->p->batch_meta;
    return rc;
}

/* The watermark, read in a snapshot of its own. */
static md_err_t watermark(md_proj_t *p, uint64_t *seq, md_error_t *err)
{
    md_txn_t *t = NULL;
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc == MD_OK)
        rc = md_proj_seq(p, t, seq, err);
    md_txn_end(t);
    return rc;
}

md_err_t md_proj_advance(md_proj_t *p, uint64_t max_events, uint64_t *seq, uint64_t *head,
                         uint64_t *outbox_next, md_error_t *err)
{
    advance_t a = {.p = p, .max = max_events};
    uint64_t onext = 0;
    if (p == NULL || p->evlog == p->store)
        return md_error_set(err, MD_EINVAL,
                            "md_proj_advance: projections share the log's "
                            "environment");
    md_err_t rc = watermark(p, &a.seq, err);
    if (rc == MD_OK)
        rc = md_store_read(p->evlog, &a.src, err);
    if (rc == MD_OK)
        rc = md_txn_head(a.src, &a.head, NULL, err);
    if (rc == MD_OK)
        rc = md_txn_outbox_next(a.src, &onext, err);
    if (rc == MD_OK && a.head > a.seq)
        rc = md_store_write(p->store, advance_fn, &a, err);
    md_txn_end(a.src);
    if (rc != MD_OK)
        return rc;
    if (seq)
        *seq = a.seq;
    if (head)
        *head = a.head;
    if (outbox_next)
        *outbox_next = onext;
    return MD_OK;
}

/* ---- waiting for a watermark ------------------------------------------------------------ */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

md_err_t md_proj_wait(md_proj_t *p, uint64_t seq, long timeout_ms, uint64_t *reached,
                      md_error_t *err)
{
    int64_t deadline = md_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t w = 0;
        md_err_t rc = watermark(p, &w, err);
        if (reached)
            *reached = w;
        if (rc != MD_OK || w >= seq)
            return rc;
        if (md_mono_ms() >= deadline)
            return md_error_set(err, MD_ETIMEDOUT,
                                "projections are at seq %llu, not yet at %llu (waited %ld ms)",
                                (unsigned long long)w, (unsigned long long)seq, timeout_ms);
        sleep_ms(WAIT_POLL_MS);
    }
}
