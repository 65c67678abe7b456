/*
 * rebuild.c - replaying the event log into projections: catch-up at open,
 * `rebuild` (drop and recompute in place), digests, `verify` (live versus a
 * rebuild in a temporary environment) and point-in-time `replay`.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pj.h"

#define PROGRESS_EVERY 0xffff

/* A replay of events from @p src into the projections of @p p over @p dst. */
typedef struct walk {
    md_proj_t *p;
    md_txn_t *src;            /* where the events are read */
    md_txn_t *dst;            /* the write transaction being filled */
    bool copy;                /* also append each event to dst (replay) */
    uint64_t from, until, n, total;
    md_progress_fn progress;
    void *pctx;
} walk_t;

static md_err_t copy_event(walk_t *w, const md_event_t *ev, md_event_t *out, md_error_t *err)
{
    *out = *ev;
    md_err_t rc = md_txn_append(w->dst, out, err);
    if (rc == MD_OK && (out->seq != ev->seq || memcmp(out->hash, ev->hash, MD_HASH_LEN) != 0))
        rc = md_error_set(err, MD_ECORRUPT, "seq %llu: re-appended event differs (hash)",
                          (unsigned long long)ev->seq);
    return rc;
}

static md_err_t walk_one(const md_event_t *ev, const void *body, size_t len, void *ctx,
                         md_error_t *err)
{
    walk_t *w = ctx;
    md_event_t copy;
    (void)body, (void)len;
    if (w->until && ev->seq > w->until)
        return MD_ESTOP;
    md_err_t rc = w->copy ? copy_event(w, ev, &copy, err) : MD_OK;
    if (rc == MD_OK)
        rc = md__pj_apply_one(w->p, w->dst, w->copy ? &copy : ev, err);
    if (rc == MD_OK && (++w->n & PROGRESS_EVERY) == 0 && w->progress)
        w->progress(w->n, w->total, w->pctx);
    return rc;
}

static md_err_t drop_all(md_proj_t *p, md_txn_t *t, md_error_t *err)
{
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        int rc = mdb_drop(md_txn_mdb(t), p->dbi[i], 0);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, md__pj_db_name((pj_db_t)i));
    }
    return MD_OK;
}

/* The write function of rebuild, catch-up, verify and replay. */
static md_err_t walk_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    walk_t *w = ctx;
    md_err_t rc = MD_OK;
    w->dst = t;
    w->n = 0;
    if (w->src == NULL)
        w->src = t;
    if (w->from == 1 && !w->copy)
        rc = drop_all(w->p, t, err);
    md__pj_bulk(w->p, true, w->from == 1);
    if (rc == MD_OK)
        rc = md_txn_scan(w->src, w->from, 0, walk_one, w, err);
    if (rc == MD_OK)
        rc = md__pj_bulk_flush(w->p, md_txn_mdb(t), err);
    md__pj_bulk(w->p, false, false);
    if (rc == MD_OK)
        rc = md__pj_meta_set(w->p, t, w->from - 1 + w->n, err);
    if (rc == MD_OK && w->progress)
        w->progress(w->n, w->total, w->pctx);
    if (w->src == t)
        w->src = NULL; /* a retried transaction must read its own snapshot */
    return rc;
}

md_err_t md_proj_rebuild(md_proj_t *p, md_progress_fn progress, void *pctx, uint64_t *events,
                         md_error_t *err)
{
    md_txn_t *t = NULL;
    walk_t w = {.p = p, .from = 1, .progress = progress, .pctx = pctx};
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc == MD_OK)
        rc = md_txn_head(t, &w.total, NULL, err);
    md_txn_end(t); /* a writer must not hold a read transaction (map growth) */
    if (rc == MD_OK)
        rc = md_store_write(p->store, walk_fn, &w, err);
    if (rc == MD_OK && events)
        *events = w.n;
    return rc;
}

md_err_t md__pj_catch_up(md_proj_t *p, md_error_t *err)
{
    md_txn_t *t = NULL;
    uint64_t head = 0, seq = 0, fmt = 0;
    MDB_val k = {6, (void *)"format"}, v;
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc != MD_OK)
        return rc;
    rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK)
        rc = md_proj_seq(p, t, &seq, err);
    int mrc = mdb_get(md_txn_mdb(t), p->dbi[PJ_DB_META], &k, &v);
    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        fmt = md__pj_get_be64(v.mv_data);
    md_txn_end(t);
    if (rc != MD_OK || (seq == head && (fmt == PJ_FORMAT || head == 0)))
        return rc; /* up to date (another layout format is rebuilt below) */
    /* Read-only: report lagging projections but let readers use what is there. */
    walk_t w = {.p = p, .from = fmt == PJ_FORMAT && seq < head ? seq + 1 : 1, .total = head};
    md_error_t e = {0};
    rc = md_store_write(p->store, walk_fn, &w, &e);
    if (rc == MD_EINVAL) /* read-only store */
        return MD_OK;
    return rc == MD_OK ? MD_OK : md_error_set(err, rc, "projection catch-up: %s", e.msg);
}

/* ---- digests ---------------------------------------------------------------------- */

static void be32(unsigned char *b, size_t v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

static md_err_t digest_db(MDB_txn *txn, MDB_dbi dbi, EVP_MD_CTX *h, uint64_t *entries,
                          md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char len[4];
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "digest cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        be32(len, k.mv_size);
        EVP_DigestUpdate(h, len, 4);
        EVP_DigestUpdate(h, k.mv_data, k.mv_size);
        be32(len, v.mv_size);
        EVP_DigestUpdate(h, len, 4);
        EVP_DigestUpdate(h, v.mv_data, v.mv_size);
        (*entries)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "digest scan");
}

md_err_t md_proj_digest(md_proj_t *p, md_txn_t *t, md_proj_digest_t *out, md_error_t *err)
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    md_err_t rc = MD_OK;
    if (h == NULL) {
        fprintf(stderr, "marketd: out of memory (EVP_MD_CTX_new)\n");
        abort();
    }
    memset(out, 0, sizeof *out);
    for (int i = 0; i < MD_PROJ_COUNT_ && rc == MD_OK; i++) {
        pj_db_t dbs[2];
        size_t n = md__pj_proj_dbs((md_proj_id_t)i, dbs);
        unsigned int len = 0;
        EVP_DigestInit_ex(h, EVP_sha256(), NULL);
        for (size_t j = 0; j < n && rc == MD_OK; j++)
            rc = digest_db(md_txn_mdb(t), p->dbi[dbs[j]], h, &out->entries[i], err);
        EVP_DigestFinal_ex(h, out->sha[i], &len);
    }
    EVP_MD_CTX_free(h);
    return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

/* Printable form of a key: bytes 0x20..0x7e as they are ('\\' doubled), others \xHH. */
static void printable(const MDB_val *k, char *out, size_t cap)
{
    const unsigned char *b = k->mv_data;
    size_t o = 0;
    for (size_t i = 0; i < k->mv_size && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
    }
    out[o] = '\0';
}

static int key_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* Finds the first key whose presence or value differs between two databases. */
static bool first_diff(MDB_txn *ta, MDB_dbi da, MDB_txn *tb, MDB_dbi db, char *out, size_t cap)
{
    MDB_cursor *ca = NULL, *cb = NULL;
    MDB_val ka, va, kb, vb;
    bool found = false;
    if (mdb_cursor_open(ta, da, &ca) != MDB_SUCCESS || mdb_cursor_open(tb, db, &cb) != MDB_SUCCESS) {
        mdb_cursor_close(ca);
        return false;
    }
    int ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST), rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
    while (!found && (ra == MDB_SUCCESS || rb == MDB_SUCCESS)) {
        int c = ra != MDB_SUCCESS ? 1 : rb != MDB_SUCCESS ? -1 : key_cmp(&ka, &kb);
        if (c != 0 || va.mv_size != vb.mv_size || memcmp(va.mv_data, vb.mv_data, va.mv_size)) {
            printable(c <= 0 ? &ka : &kb, out, cap);
            found = true;
        }
        ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
    }
    mdb_cursor_close(ca);
    mdb_cursor_close(cb);
    return found;
}

/* Names the first projection, database and key that differ. */
static md_err_t report_diff(md_proj_t *live, md_txn_t *lt, md_proj_t *re, md_txn_t *rt,
                            md_proj_report_t *rep, md_error_t *err)
{
    for (int i = 0; i < MD_PROJ_COUNT_; i++) {
        pj_db_t dbs[2];
        size_t n = md__pj_proj_dbs((md_proj_id_t)i, dbs);
        if (memcmp(rep->live.sha[i], rep->rebuilt.sha[i], MD_HASH_LEN) == 0)
            continue;
        rep->bad = i;
        for (size_t j = 0; j < n; j++) {
            if (first_diff(md_txn_mdb(lt), live->dbi[dbs[j]], md_txn_mdb(rt), re->dbi[dbs[j]],
                           rep->key, sizeof rep->key)) {
                snprintf(rep->db, sizeof rep->db, "%s", md__pj_db_name(dbs[j]));
                break;
            }
        }
        return md_error_set(err, MD_ECORRUPT,
                            "projection '%s' differs from a rebuild: database '%s', first "
                            "differing key '%.120s'",
                            md_proj_name((md_proj_id_t)i), rep->db, rep->key);
    }
    return MD_OK;
}

static void remove_env(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* Rebuilds from @p t into a fresh temporary store and compares. */
static md_err_t verify_in(md_proj_t *p, md_txn_t *t, const char *dir, walk_t *w,
                          md_proj_report_t *rep, md_error_t *err)
{
    md_store_opts_t so = {.nosync = true};
    md_store_t *tmp = NULL;
    md_proj_t *tp = NULL;
    md_txn_t *rt = NULL;
    md_err_t rc = md_store_open(dir, &so, &tmp, err);
    if (rc == MD_OK)
        rc = md_proj_open(tmp, &tp, err);
    if (rc == MD_OK) {
        w->p = tp;
        rc = md_store_write(tmp, walk_fn, w, err);
    }
    if (rc == MD_OK)
        rc = md_store_read(tmp, &rt, err);
    if (rc == MD_OK)
        rc = md_proj_digest(tp, rt, &rep->rebuilt, err);
    if (rc == MD_OK)
        rc = md_proj_digest(p, t, &rep->live, err);
    if (rc == MD_OK)
        rc = report_diff(p, t, tp, rt, rep, err);
    rep->events = w->n;
    md_txn_end(rt);
    md_proj_free(tp);
    md_store_close(tmp);
    return rc;
}

md_err_t md_proj_verify(md_proj_t *p, md_txn_t *t, md_progress_fn progress, void *pctx,
                        md_proj_report_t *rep, md_error_t *err)
{
    uint64_t head = 0, seq = 0;
    char dir[512];
    const char *base = getenv("TMPDIR");
    walk_t w = {.src = t, .from = 1, .progress = progress, .pctx = pctx};
    memset(rep, 0, sizeof *rep);
    rep->bad = -1;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK)
        rc = md_proj_seq(p, t, &seq, err);
    if (rc != MD_OK)
        return rc;
    if (seq != head) {
        snprintf(rep->db, sizeof rep->db, "p_meta");
        snprintf(rep->key, sizeof rep->key, "seq");
        return md_error_set(err, MD_ECORRUPT,
                            "projections are at seq %llu but the event log at %llu",
                            (unsigned long long)seq, (unsigned long long)head);
    }
    w.total = head;
    snprintf(dir, sizeof dir, "%s/marketd-verify-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL)
        return md_error_set(err, MD_EIO, "mkdtemp '%s': %s", dir, strerror(errno));
    rc = verify_in(p, t, dir, &w, rep, err);
    remove_env(dir);
    return rc;
}

/* ---- replay ------------------------------------------------------------------------- */

md_err_t md_proj_replay(md_txn_t *src, uint64_t until, const char *out_dir,
                        md_progress_fn progress, void *pctx, uint64_t *events, md_error_t *err)
{
    md_store_t *out = NULL;
    md_proj_t *p = NULL;
    md_txn_t *t = NULL;
    uint64_t head = 0, out_head = 0;
    walk_t w = {.src = src, .copy = true, .from = 1, .until = until, .total = until,
                .progress = progress, .pctx = pctx};
    md_err_t rc = md_txn_head(src, &head, NULL, err);
    if (rc != MD_OK)
        return rc;
    if (until == 0 || until > head)
        return md_error_set(err, MD_EINVAL, "--until %llu is not in 1..%llu",
                            (unsigned long long)until, (unsigned long long)head);
    if ((rc = md_store_open(out_dir, NULL, &out, err)) == MD_OK &&
        (rc = md_store_read(out, &t, err)) == MD_OK)
        rc = md_txn_head(t, &out_head, NULL, err);
    md_txn_end(t);
    if (rc == MD_OK && out_head != 0)
        rc = md_error_set(err, MD_EEXIST, "'%s' holds events already", out_dir);
    if (rc == MD_OK)
        rc = md_proj_open(out, &p, err);
    if (rc == MD_OK) {
        w.p = p;
        rc = md_store_write(out, walk_fn, &w, err);
    }
    if (rc == MD_OK && events)
        *events = w.n;
    md_proj_free(p);
    md_store_close(out);
    return rc;
}
