/*
 * verify.c - recomputes the hash chain of a store (marketctl verify).
 *
 * The stream index is checked from the index's side first: one pass over its
 * chunks (in key order, sequential pages) notes, for each seq of a window,
 * the chunk key and place of the first entry holding it (LMDB's pointers stay
 * valid for the read transaction). An event whose noted chunk and place are
 * its own stream and version holds; any other event is looked up in the
 * index (and fails, or passes, with the same message): a look-up per event
 * was half of the walk.
 */
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* Seqs whose index keys are noted at a time (11 bytes each): a longer log
 * takes one more pass over the index per window. */
#define INDEX_WINDOW ((uint64_t)1 << 22)

typedef struct chain_walk {
    uint64_t expect;                 /* the next seq we must see */
    unsigned char prev[MD_HASH_LEN]; /* hash of the previous event */
    uint64_t total;
    uint64_t *bad_seq;
    md_progress_fn progress;
    void *pctx;
    md_txn_t *txn;
    uint64_t lo, n;            /* the window: seqs [lo, lo + n) */
    const unsigned char **key; /* key[seq - lo]: the chunk key holding seq, or NULL */
    uint16_t *klen;
    uint8_t *slot; /* slot[seq - lo]: seq's place in that chunk */
} chain_walk_t;

static md_err_t bad(chain_walk_t *w, uint64_t seq, md_error_t *err, const char *what)
{
    if (w->bad_seq)
        *w->bad_seq = seq;
    return md_error_set(err, MD_ECORRUPT, "seq %llu: %s", (unsigned long long)seq, what);
}

/* Notes the chunk keys and places holding the seqs of [w->lo, w->lo + w->n). */
static md_err_t index_window(chain_walk_t *w, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    memset(w->key, 0, w->n * sizeof *w->key);
    int rc = mdb_cursor_open(md_txn_mdb(w->txn), md_txn_dbi(w->txn, MD_DB_STREAMS), &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "cursor stream index");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (!chunk_sound(&v) || k.mv_size > UINT16_MAX)
            continue;
        for (size_t j = 0; j < v.mv_size / 8; j++) {
            uint64_t i = get_be64((const unsigned char *)v.mv_data + 8 * j) - w->lo;
            if (i < w->n && w->key[i] == NULL) {
                w->key[i] = k.mv_data;
                w->klen[i] = (uint16_t)k.mv_size;
                w->slot[i] = (uint8_t)j;
            }
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "scan stream index");
}

/* The stream index must hold this seq at (stream, version)'s place. */
static md_err_t check_index(chain_walk_t *w, const md_event_t *ev, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 5];
    if (ev->version == 0 || (ev->version - 1) / MD_STREAM_CHUNK > UINT32_MAX)
        return bad(w, ev->seq, err, "stream index entry missing");
    size_t klen = md_stream_chunk_key(k, ev->stream, (ev->version - 1) / MD_STREAM_CHUNK);
    size_t slot = (size_t)((ev->version - 1) % MD_STREAM_CHUNK);
    uint64_t at = ev->seq - w->lo;
    if (at < w->n && w->key[at] && w->klen[at] == klen && w->slot[at] == slot &&
        memcmp(w->key[at], k, klen) == 0)
        return MD_OK; /* the chunk of this key holds it here */
    MDB_val key = {klen, k}, val;
    int rc = mdb_get(md_txn_mdb(w->txn), md_txn_dbi(w->txn, MD_DB_STREAMS), &key, &val);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, err, "get stream index");
    if (rc == MDB_NOTFOUND || !chunk_sound(&val) || val.mv_size < 8 * (slot + 1))
        return bad(w, ev->seq, err, "stream index entry missing");
    uint64_t seq = get_be64((const unsigned char *)val.mv_data + 8 * slot);
    return seq == ev->seq ? MD_OK : bad(w, ev->seq, err, "stream index points elsewhere");
}

static md_err_t verify_one(const md_event_t *ev, const void *body, size_t len, void *ctx,
                           md_error_t *err)
{
    chain_walk_t *w = ctx;
    unsigned char h[MD_HASH_LEN];
    if (ev->seq != w->expect)
        return bad(w, w->expect, err, "event missing (gap in seq)");
    if (memcmp(ev->prev_hash, w->prev, MD_HASH_LEN) != 0)
        return bad(w, ev->seq, err, "prev_hash differs from the previous event's hash");
    md_chain_hash(w->prev, body, len, h);
    if (memcmp(h, ev->hash, MD_HASH_LEN) != 0)
        return bad(w, ev->seq, err, "hash differs from SHA-256(prev_hash || body)");
    md_err_t rc = check_index(w, ev, err);
    if (rc != MD_OK)
        return rc;
    memcpy(w->prev, h, MD_HASH_LEN);
    w->expect++;
    if (w->progress && (ev->seq & 0xffff) == 0)
        w->progress(ev->seq, w->total, w->pctx);
    return MD_OK;
}

md_err_t md_txn_verify_chain(md_txn_t *t, uint64_t *count, uint64_t *bad_seq,
                             md_progress_fn progress, void *pctx, md_error_t *err)
{
    chain_walk_t w = {
        .expect = 1, .bad_seq = bad_seq, .progress = progress, .pctx = pctx, .txn = t};
    unsigned char head[MD_HASH_LEN];
    memset(w.prev, 0, MD_HASH_LEN);
    md_err_t rc = t->write ? md__si_flush(t, err) : MD_OK; /* this txn's appends too */
    if (rc == MD_OK)
        rc = md_txn_head(t, &w.total, head, err);
    if (rc != MD_OK)
        return rc;
    md_error_t scan_err = {0};
    uint64_t before;
    w.n = w.total < INDEX_WINDOW ? w.total + 1 : INDEX_WINDOW;
    w.key = md_malloc(w.n * sizeof *w.key);
    w.klen = md_malloc(w.n * sizeof *w.klen);
    w.slot = md_malloc(w.n * sizeof *w.slot);
    do { /* a window at a time; records beyond the head are walked too (and fail) */
        before = w.lo = w.expect;
        rc = index_window(&w, &scan_err);
        if (rc == MD_OK)
            rc = md_txn_scan(t, w.lo, w.n, verify_one, &w, &scan_err);
    } while (rc == MD_OK && w.expect - before == w.n);
    free(w.key);
    free(w.klen);
    free(w.slot);
    if (rc == MD_ECORRUPT && bad_seq && *bad_seq == 0)
        *bad_seq = w.expect; /* an undecodable record */
    if (rc != MD_OK)
        return md_error_set(err, rc, "%s", scan_err.msg);
    if (count)
        *count = w.expect - 1;
    if (w.expect - 1 != w.total || memcmp(head, w.prev, MD_HASH_LEN) != 0)
        return bad(&w, w.expect - 1 < w.total ? w.expect : w.total, err,
                   "chain head in metadata does not match the last event");
    if (progress)
        progress(w.total, w.total, pctx);
    return MD_OK;
}
