/*
 * bulk.c - bulk mode: how replays apply events without touching LMDB until
 * their writes can be made sorted. The loads and stores every projection
 * calls (md__pj_load, md__pj_put, md__pj_save, md__pj_del, md__pj_put_new)
 * are here because they choose between the live path and bulk mode.
 *
 * Replays (rebuild, verify, replay, catch-up) apply every event in one write
 * transaction in bulk mode, where nothing reaches LMDB while the events are
 * applied:
 *
 *  - md__pj_put, md__pj_save and md__pj_del of a database the apply code has
 *    not read (md__pj_load) so far in this replay are appended to the log
 *    (index databases are only ever written: p_order_idx, p_account_idx);
 *  - the first md__pj_load of a database moves its logged operations into a
 *    write-back cache keyed by (database, key); from then on its puts and
 *    deletes update the cache and md__pj_load reads the cache first. A delete
 *    removes the entry when the database was empty at the start and has not
 *    been written since (p->complete: nothing of it is in LMDB, so a miss is
 *    an absent key, without a look-up); otherwise it is a tombstone, and a
 *    miss reads LMDB;
 *  - md__pj_put_new appends to the spill (insert-only databases: audit).
 *
 * Each is written sorted by key through one cursor per database: the keys
 * after the database's last key with MDB_APPEND (all of them when it is
 * empty), the others in place; of the operations on one key the last one
 * counts, as it does on the live path. The spill is written every
 * PJ_SPILL_EVENTS events (or beyond p->spill_max bytes); the cache and the log
 * at the end (or beyond p->bulk_max bytes together, after which misses read
 * LMDB). All of it happens in the caller's write transaction, so readers see
 * the old projections until it commits.
 *
 * Invariants it keeps:
 *  - a database is either logged or cached (p->cached), never both: the first
 *    md__pj_load of it moves its logged operations to the cache in the order
 *    they were made, and marks them dead in the log (PJ_DEAD);
 *  - a load sees every earlier put and delete of the replay: the spill is
 *    written before a database with entries in it is read (p->spilled), the
 *    cache is read before LMDB, and a complete database's miss is an absent
 *    key;
 *  - the spill is written at epoch boundaries (PJ_SPILL_EVENTS is a multiple
 *    of the epoch), so its epoch-led keys follow those written before;
 *  - a helper's handle (p->emit) never writes: its batches go to the writer,
 *    so it cannot flush early and fails with MD_ENOMEM when it outgrows
 *    p->bulk_max;
 *  - leaving bulk mode frees everything it held, written or not.
 * Single-threaded per handle: a parallel replay gives each thread its own
 * handle (rebuild.c); the writer's last log may be sorted on a thread of its
 * own, which touches only that log and a scratch of its own ("the last log").
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bulk.h"
#include "epoch.h"

_Static_assert(PJ_SPILL_EVENTS % (1u << PJ_EPOCH_BITS) == 0,
               "the spill is written at epoch boundaries");
_Static_assert(PJ_LIVE_BULK_MAX / 16 < ((size_t)2 << 20) && PJ_LIVE_BULK_MAX >= 4 * CACHE_CHUNK_MIN,
               "an engine batch's cache chunks stay off huge pages and leave room");

/* ---- the log and the spill ------------------------------------------------------------- */

static void ent_append(md_buf_t *b, pj_db_t db, const void *key, size_t klen, const void *val,
                       uint32_t vlen)
{
    size_t vn = vlen == PJ_TOMB ? 0 : vlen;
    unsigned char *w = md_buf_reserve(b, 7 + klen + vn);
    w[0] = (unsigned char)db;
    w[1] = (unsigned char)(klen >> 8), w[2] = (unsigned char)klen;
    w[3] = (unsigned char)(vlen >> 24), w[4] = (unsigned char)(vlen >> 16);
    w[5] = (unsigned char)(vlen >> 8), w[6] = (unsigned char)vlen;
    memcpy(w + 7, key, klen);
    if (vn)
        memcpy(w + 7 + klen, val, vn);
    b->len += 7 + klen + vn;
}

/* The apply code reads @p db from now on: its logged operations go to the cache. */
static void to_cache(md_proj_t *p, pj_db_t db)
{
    unsigned char *end = p->log.p + p->log.len;
    for (unsigned char *e = p->log.p; e < end; e = (unsigned char *)ent_next(e)) {
        if (e[0] != db)
            continue;
        size_t kl = ent_klen(e);
        md__pj_cache_op(p, pj_hash(db, e + 7, kl), db, e + 7, kl, e + 7 + kl, ent_vlen(e));
        e[0] = PJ_DEAD;
    }
    p->cached[db] = true;
}

/* A put or delete (@p vlen PJ_TOMB) in bulk mode. */
static void bulk_op(md_proj_t *p, pj_db_t db, const void *key, size_t klen, const void *val,
                    uint32_t vlen)
{
    if (!p->cached[db]) {
        ent_append(&p->log, db, key, klen, val, vlen);
        return;
    }
    md__pj_cache_op(p, pj_hash(db, key, klen), db, key, klen, val, vlen);
}

static md_err_t spill_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err);

/* ---- loads and stores -------------------------------------------------------------- */

md_err_t md__pj_load(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const pj_layout_t *l,
                     void *rec, bool *found)
{
    md_proj_t *p = c->p;
    if (p->bulk) {
        md_err_t rc = p->spilled[db] ? spill_flush(p, c->txn, c->err) : MD_OK;
        if (rc != MD_OK)
            return rc;
        if (!p->cached[db])
            to_cache(p, db);
        const pj_cent_t *e = md__pj_cache_get(p, pj_hash(db, key, klen), db, key, klen);
        if (e != NULL || p->complete[db]) {
            *found = e != NULL && e->vlen != PJ_TOMB;
            if (!*found) {
                memset(rec, 0, l->size);
                *(int64_t *)rec = l->fmt;
                return MD_OK;
            }
            if (md__pj_unpack(l, e->b + klen, e->vlen, rec) != 0)
                return md_error_set(c->err, MD_ECORRUPT,
                                    "projection record '%.*s' has another layout",
                                    (int)(klen > 80 ? 80 : klen), (const char *)key);
            return MD_OK;
        }
    }
    if (p->cmp) /* compared, not written: LMDB does not hold what was flushed */
        md__pj_cmp_unsure(p->cmp);
    return md__pj_read(c->txn, p->dbi[db], key, klen, l, rec, found, c->err);
}

md_err_t md__pj_put(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (klen == 0 || klen > PJ_KEY_MAX)
        return md_error_set(c->err, MD_EINVAL, "projection key of %zu bytes", klen);
    if (c->p->bulk && vlen < PJ_TOMB) {
        bulk_op(c->p, db, key, klen, val, (uint32_t)vlen);
        return MD_OK;
    }
    return md_store_err(mdb_put(c->txn, c->p->dbi[db], &k, &v, 0), c->err, "projection put");
}

md_err_t md__pj_save(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const pj_layout_t *l,
                     const void *rec)
{
    md__pj_pack(l, rec, &c->p->rec);
    return md__pj_put(c, db, key, klen, c->p->rec.p, c->p->rec.len);
}

md_err_t md__pj_del(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen)
{
    md_proj_t *p = c->p;
    if (p->bulk && klen > 0 && klen <= PJ_KEY_MAX) {
        bulk_op(p, db, key, klen, NULL, PJ_TOMB);
        return MD_OK;
    }
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(c->txn, p->dbi[db], &k, NULL);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, c->err, "projection delete");
}

md_err_t md__pj_put_new(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                        size_t vlen)
{
    md_proj_t *p = c->p;
    if (!p->bulk || vlen >= PJ_TOMB)
        return md__pj_put(c, db, key, klen, val, vlen);
    if (klen == 0 || klen > PJ_KEY_MAX)
        return md_error_set(c->err, MD_EINVAL, "projection key of %zu bytes", klen);
    ent_append(&p->spill, db, key, klen, val, (uint32_t)vlen);
    p->spilled[db] = true;
    return MD_OK;
}

/* ---- batches: sorted writes, written here or handed to the writer ---- */

static pj_batch_t *batch_new(void)
{
    pj_batch_t *b = md_calloc(1, sizeof *b);
    md_buf_init(&b->data);
    md_buf_init(&b->items);
    return b;
}

void md__pj_batch_clear(pj_batch_t *b)
{
    md__pj_cache_free(b->cache);
    b->cache = NULL;
    b->unsorted = false;
    md_buf_reset(&b->data);
    md_buf_reset(&b->items);
}

void md__pj_batch_free(pj_batch_t *b)
{
    if (b == NULL)
        return;
    md__pj_cache_free(b->cache);
    md_buf_release(&b->data);
    md_buf_release(&b->items);
    free(b);
}

/* An empty batch: one the writer is done with, or a new one. */
static pj_batch_t *batch_take(md_proj_t *p)
{
    pj_batch_t *b = p->emit ? p->spare(p->emit_ctx) : p->own;
    if (b == NULL)
        b = batch_new();
    if (!p->emit)
        p->own = b;
    return b;
}

/* Writes @p b, or hands it to the writer (a helper's handle). */
static md_err_t batch_done(md_proj_t *p, MDB_txn *txn, pj_batch_t *b, md_error_t *err)
{
    if (p->emit)
        return p->emit(p->emit_ctx, b, err);
    md_err_t rc = md__pj_batch_write(p, txn, b, err);
    md__pj_batch_clear(b);
    return rc;
}

/* Writes the operations in @p src (the log or the spill) and empties it. */
static md_err_t buf_flush(md_proj_t *p, MDB_txn *txn, md_buf_t *src, md_error_t *err)
{
    if (src->len == 0)
        return MD_OK;
    pj_batch_t *b = batch_take(p);
    md_buf_t t = b->data; /* src keeps the batch's (empty) buffer: its memory is reused */
    b->data = *src;
    *src = t;
    md_buf_reset(src);
    b->unsorted = p->emit != NULL; /* a helper's: lane_emit (rebuild.c) sorts it or leaves it */
    if (!b->unsorted)
        md__pj_log_sort(&p->sort, &b->data, &b->items, b->at);
    return batch_done(p, txn, b, err);
}

static md_err_t spill_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    memset(p->spilled, 0, sizeof p->spilled);
    return buf_flush(p, txn, &p->spill, err);
}

static md_err_t cache_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    if (p->cache == NULL || p->cache->n == 0)
        return MD_OK;
    pj_batch_t *b = batch_take(p);
    b->cache = p->cache;
    p->cache = NULL;
    md__pj_cache_sort(p, b->cache, &b->items, b->at);
    return batch_done(p, txn, b, err);
}

/* Writes the cache and the log (the cache first: it is freed before the log's
 * items are made). */
static md_err_t held_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    md_err_t rc = cache_flush(p, txn, err);
    return rc == MD_OK ? buf_flush(p, txn, &p->log, err) : rc;
}

/* ---- the last log, sorted beside the cache's write ----
 * At the end of a two-lane replay the writer's log holds every write of its
 * index databases (58 MB in a rebuild of 1.22M events), and the helper has
 * usually finished by then (it may still be handing over its last batches),
 * so a core is free. rebuild.c then sets p->aside_min, and a log of at least
 * that many bytes, and at most ASIDE_LOG_MAX, is sorted on a thread of its own
 * with a scratch of its own (md__pj_log_sort touches nothing else) while the
 * writer sorts and writes the cache (0.15 s of a 2.6 s rebuild); the writes
 * stay in the same order (the cache's, then the log's). The log's items are
 * then made while the cache is still held, which costs memory (+27 MiB at the
 * peak of that rebuild): ASIDE_LOG_MAX bounds it. A log outside the bounds is
 * written by held_flush as before; one whose thread cannot start is sorted
 * here, after the cache's write. */
#define ASIDE_LOG_MAX ((size_t)64 << 20)

typedef struct log_aside {
    struct pj_sort *sort; /* its scratch */
    pj_batch_t *b;        /* the log, moved here; sorted into b->items */
    pthread_t th;
} log_aside_t;

static void *aside_sort(void *arg)
{
    log_aside_t *a = arg;
    md__pj_log_sort(&a->sort, &a->b->data, &a->b->items, a->b->at);
    return NULL;
}

static md_err_t aside_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    log_aside_t *a = md_calloc(1, sizeof *a);
    a->b = batch_new();
    a->b->data = p->log; /* the log moves to the batch (its buffer was empty) */
    md_buf_init(&p->log);
    bool threaded = pthread_create(&a->th, NULL, aside_sort, a) == 0;
    md_err_t rc = cache_flush(p, txn, err);
    if (threaded)
        pthread_join(a->th, NULL);
    else if (rc == MD_OK)
        aside_sort(a);
    if (rc == MD_OK)
        rc = md__pj_batch_write(p, txn, a->b, err);
    p->asides += rc == MD_OK;
    md__pj_batch_free(a->b);
    md__pj_sort_free(a->sort);
    free(a);
    return rc;
}

/* The held writes at the end of bulk mode. */
static md_err_t end_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    if (p->emit == NULL && p->aside_min && p->log.len >= p->aside_min &&
        p->log.len <= ASIDE_LOG_MAX)
        return aside_flush(p, txn, err);
    return held_flush(p, txn, err);
}

void md__pj_bulk_release(md_proj_t *p)
{
    md__pj_cache_free(p->cache);
    p->cache = NULL;
    md__pj_sort_free(p->sort);
    p->sort = NULL;
    md__pj_batch_free(p->own);
    p->own = NULL;
    md_buf_release(&p->spill);
    md_buf_release(&p->log);
}

md_err_t md__pj_bulk_begin(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    md__pj_bulk_release(p);
    if (p->bulk_max == 0)
        p->bulk_max = PJ_BULK_MAX;
    if (p->spill_max == 0)
        p->spill_max = PJ_SPILL_MAX;
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, p->dbi[i], &st);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, "projection stat");
        p->complete[i] = st.ms_entries == 0;
        p->cached[i] = p->spilled[i] = false;
    }
    p->bulk = true;
    return MD_OK;
}

void md__pj_bulk_follow(md_proj_t *hp, const md_proj_t *p)
{
    md__pj_bulk_release(hp);
    hp->bulk_max = p->bulk_max;
    hp->spill_max = p->spill_max;
    memcpy(hp->complete, p->complete, sizeof hp->complete);
    memset(hp->cached, 0, sizeof hp->cached);
    memset(hp->spilled, 0, sizeof hp->spilled);
    hp->bulk = true;
}

md_err_t md__pj_bulk_step(md_proj_t *p, MDB_txn *txn, uint64_t seq, md_error_t *err)
{
    md_err_t rc = MD_OK;
    if ((seq + 1) % PJ_SPILL_EVENTS == 0 || p->spill.len > p->spill_max)
        rc = spill_flush(p, txn, err);
    if (rc == MD_OK && (p->cache ? p->cache->bytes : 0) + p->log.len > p->bulk_max) {
        if (p->emit) /* a helper reads nothing back from LMDB: it cannot write early */
            return md_error_set(err, MD_ENOMEM, "parallel replay: records outgrow %zu bytes",
                                p->bulk_max);
        rc = held_flush(p, txn, err);
    }
    return rc;
}

md_err_t md__pj_bulk_end(md_proj_t *p, MDB_txn *txn, bool write, md_error_t *err)
{
    md_err_t rc = MD_OK;
    if (write)
        rc = end_flush(p, txn, err);
    if (write && rc == MD_OK)
        rc = spill_flush(p, txn, err);
    md__pj_bulk_release(p);
    p->bulk = false;
    return rc;
}
