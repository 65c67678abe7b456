/*
 * outbox.c - the outbox (messages to publish, in id order) and its parked
 * entries (those the publisher gave up on, with the reason), md_store.h.
 *
 * Invariants:
 *   - outbox ids grow and never repeat, across deletions and restarts: the
 *     next id is kept in the transaction and flushed to meta 'outbox_next'
 *     before it commits (store.c); entries are appended with MDB_APPEND;
 *   - an entry is topic '\0' key_len(4 BE) key hdr_len(4 BE) headers value,
 *     or 0x01 seq(8 BE) and the same without a value for a reference to
 *     an event;
 *   - a parked record is reason '\0' then the entry as it was queued, under
 *     its outbox id; parking and retrying move an entry (put, then delete)
 *     in one transaction, so it is never in both places nor lost.
 */
#include <string.h>

#include "store_int.h"

/* ---- outbox ---------------------------------------------------------------------------- */

/* The next outbox id survives deletions (meta 'outbox_next'), so ids never repeat. */
static md_err_t load_outbox_next(md_txn_t *t, md_error_t *err)
{
    const void *v;
    size_t len;
    if (t->outbox_loaded)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, "outbox_next", &v, &len, err);
    if (rc == MD_ENOTFOUND)
        t->outbox_next = 1;
    else if (rc != MD_OK)
        return rc;
    else if (len != 8)
        return md_error_set(err, MD_ECORRUPT, "meta 'outbox_next' has %zu bytes", len);
    else
        t->outbox_next = get_be64(v);
    t->outbox_loaded = true;
    return MD_OK;
}

md_err_t md_txn_outbox_put(md_txn_t *t, const md_outbox_msg_t *m, uint64_t *id, md_error_t *err)
{
    md_err_t rc = load_outbox_next(t, err);
    if (rc != MD_OK)
        return rc;
    unsigned char len[4], k[8], ref[9] = {OUTBOX_EVENT_REF};
    md_buf_reset(&t->rec);
    if (m->event_seq) {
        be64(ref + 1, m->event_seq);
        md_buf_append(&t->rec, ref, sizeof ref);
    }
    md_buf_append(&t->rec, m->topic, strlen(m->topic) + 1);
    be32(len, (uint32_t)m->key_len);
    md_buf_append(&t->rec, len, 4);
    md_buf_append(&t->rec, m->key, m->key_len);
    be32(len, (uint32_t)m->headers_len);
    md_buf_append(&t->rec, len, 4);
    md_buf_append(&t->rec, m->headers, m->headers_len);
    if (m->event_seq == 0)
        md_buf_append(&t->rec, m->value, m->value_len);
    be64(k, t->outbox_next);
    int mrc = txn_put(t, MD_DB_OUTBOX, k, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "put outbox");
    if (id)
        *id = t->outbox_next;
    t->outbox_next++;
    t->outbox_dirty = true;
    return MD_OK;
}

/* Takes a 4-byte length and that many bytes from [*p, end). */
static int take_sized(const unsigned char **p, const unsigned char *end, const void **out,
                      size_t *len)
{
    if (end - *p < 4 || (size_t)(end - *p - 4) < get_be32(*p))
        return -1;
    *len = get_be32(*p);
    *out = *p + 4;
    *p += 4 + *len;
    return 0;
}

static md_err_t decode_outbox(const MDB_val *k, const MDB_val *v, md_outbox_msg_t *m,
                              md_error_t *err)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    m->event_seq = 0;
    if (v->mv_size >= 9 && p[0] == OUTBOX_EVENT_REF) {
        m->event_seq = get_be64(p + 1);
        p += 9;
        if (m->event_seq == 0)
            return md_error_set(err, MD_ECORRUPT, "outbox entry refers to event 0");
    }
    const unsigned char *nul = k->mv_size == 8 ? memchr(p, 0, (size_t)(end - p)) : NULL;
    const unsigned char *q = nul ? nul + 1 : NULL;
    if (nul == NULL || take_sized(&q, end, &m->key, &m->key_len) ||
        take_sized(&q, end, &m->headers, &m->headers_len))
        return md_error_set(err, MD_ECORRUPT, "outbox entry is malformed");
    m->id = get_be64(k->mv_data);
    m->topic = (const char *)p;
    m->value = q;
    m->value_len = (size_t)(end - q);
    if (m->event_seq && m->value_len)
        return md_error_set(err, MD_ECORRUPT, "outbox event reference with a value");
    return MD_OK;
}

md_err_t md_txn_outbox_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_outbox_fn fn, void *ctx,
                            md_error_t *err)
{
    unsigned char k[8];
    MDB_cursor *c = NULL;
    be64(k, from);
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OUTBOX], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor outbox");
    MDB_val key = {8, k}, val;
    md_err_t rc = MD_OK;
    uint64_t n = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        md_outbox_msg_t m;
        if (limit && n++ == limit)
            break;
        if ((rc = decode_outbox(&key, &val, &m, err)) != MD_OK || (rc = fn(&m, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan outbox");
    return rc;
}

md_err_t md_txn_outbox_del(md_txn_t *t, uint64_t id, md_error_t *err)
{
    unsigned char k[8];
    be64(k, id);
    MDB_val key = {8, k};
    int rc = mdb_del(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, NULL);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "delete outbox");
}

md_err_t md_txn_outbox_next(md_txn_t *t, uint64_t *next, md_error_t *err)
{
    md_err_t rc = load_outbox_next(t, err);
    if (rc == MD_OK)
        *next = t->outbox_next;
    return rc;
}

/* ---- parked outbox entries ------------------------------------------------------------ */

/* The parked area's handle; MD_ENOTFOUND in a read-only store that has none. */
static md_err_t parked_dbi(md_txn_t *t, MDB_dbi *dbi, md_error_t *err)
{
    *dbi = t->s->dbi[MD_DB_OUTBOX_PARKED];
    return *dbi ? MD_OK : md_error_set(err, MD_ENOTFOUND, "no parked outbox entries");
}

md_err_t md_txn_outbox_park(md_txn_t *t, uint64_t id, const char *reason, md_error_t *err)
{
    unsigned char k[8];
    MDB_dbi dbi;
    md_err_t rc = parked_dbi(t, &dbi, err);
    if (rc != MD_OK)
        return rc;
    be64(k, id);
    MDB_val key = {8, k}, val, pval;
    int mrc = mdb_get(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, &val);
    if (mrc == MDB_NOTFOUND)
        return MD_OK; /* delivered, parked or retried already */
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "get outbox");
    /* reason '\0' then the entry as it was queued */
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, reason, strlen(reason) + 1);
    md_buf_append(&t->rec, val.mv_data, val.mv_size);
    pval = (MDB_val){t->rec.len, t->rec.p};
    mrc = mdb_put(t->txn, dbi, &key, &pval, 0);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_del(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, NULL);
    return md_store_err(mrc, err, "park outbox entry");
}

/* Splits a parked record into its reason and its outbox entry. */
static md_err_t decode_parked(const MDB_val *k, const MDB_val *v, const char **reason,
                              md_outbox_msg_t *m, md_error_t *err)
{
    const unsigned char *nul = k->mv_size == 8 ? memchr(v->mv_data, 0, v->mv_size) : NULL;
    if (nul == NULL)
        return md_error_set(err, MD_ECORRUPT, "parked outbox entry is malformed");
    MDB_val entry = {v->mv_size - (size_t)(nul + 1 - (const unsigned char *)v->mv_data),
                     (void *)(nul + 1)};
    *reason = v->mv_data;
    return decode_outbox(k, &entry, m, err);
}

md_err_t md_txn_outbox_parked_scan(md_txn_t *t, md_parked_fn fn, void *ctx, md_error_t *err)
{
    MDB_dbi dbi;
    MDB_cursor *c = NULL;
    md_error_t ignored = {0};
    if (parked_dbi(t, &dbi, &ignored) != MD_OK)
        return MD_OK; /* nothing parked */
    int mrc = mdb_cursor_open(t->txn, dbi, &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor parked outbox");
    MDB_val key, val;
    md_err_t rc = MD_OK;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        md_outbox_msg_t m;
        const char *reason = "";
        if ((rc = decode_parked(&key, &val, &reason, &m, err)) == MD_OK)
            rc = fn(&m, reason, ctx, err);
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan parked outbox");
    return rc;
}

/* Moves one parked record (key @p k) back to the end of the outbox. */
static md_err_t unpark_one(md_txn_t *t, MDB_dbi dbi, MDB_val *k, md_error_t *err)
{
    MDB_val v;
    unsigned char nk[8];
    int mrc = mdb_get(t->txn, dbi, k, &v);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "get parked outbox");
    const unsigned char *nul = memchr(v.mv_data, 0, v.mv_size);
    if (nul == NULL)
        return md_error_set(err, MD_ECORRUPT, "parked outbox entry is malformed");
    size_t skip = (size_t)(nul + 1 - (const unsigned char *)v.mv_data);
    md_err_t rc = load_outbox_next(t, err);
    if (rc != MD_OK)
        return rc;
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, nul + 1, v.mv_size - skip);
    be64(nk, t->outbox_next);
    mrc = txn_put(t, MD_DB_OUTBOX, nk, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_del(t->txn, dbi, k, NULL);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "retry parked outbox entry");
    t->outbox_next++;
    t->outbox_dirty = true;
    return MD_OK;
}

md_err_t md_txn_outbox_unpark(md_txn_t *t, uint64_t id, uint64_t *moved, md_error_t *err)
{
    MDB_dbi dbi;
    unsigned char k[8];
    md_err_t rc = parked_dbi(t, &dbi, err);
    *moved = 0;
    if (rc != MD_OK)
        return rc;
    for (;;) {
        MDB_cursor *c = NULL;
        MDB_val key, val;
        int mrc = mdb_cursor_open(t->txn, dbi, &c);
        if (mrc != MDB_SUCCESS)
            return md_store_err(mrc, err, "cursor parked outbox");
        be64(k, id);
        key = (MDB_val){8, k};
        mrc = mdb_cursor_get(c, &key, &val, id ? MDB_SET_KEY : MDB_FIRST);
        if (mrc == MDB_SUCCESS)
            memcpy(k, key.mv_data, 8);
        mdb_cursor_close(c);
        if (mrc == MDB_NOTFOUND)
            return id && *moved == 0
                       ? md_error_set(err, MD_ENOTFOUND, "no parked outbox entry %llu",
                                      (unsigned long long)id)
                       : MD_OK;
        if (mrc != MDB_SUCCESS)
            return md_store_err(mrc, err, "scan parked outbox");
        key = (MDB_val){8, k};
        if ((rc = unpark_one(t, dbi, &key, err)) != MD_OK)
            return rc;
        ++*moved;
        if (id)
            return MD_OK;
    }
}

md_err_t md_txn_outbox_counts(md_txn_t *t, uint64_t *queued, uint64_t *parked, md_error_t *err)
{
    MDB_stat st;
    MDB_dbi dbi;
    md_error_t ignored = {0};
    int mrc = mdb_stat(t->txn, t->s->dbi[MD_DB_OUTBOX], &st);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "stat outbox");
    *queued = st.ms_entries;
    *parked = 0;
    if (parked_dbi(t, &dbi, &ignored) != MD_OK)
        return MD_OK;
    if ((mrc = mdb_stat(t->txn, dbi, &st)) != MDB_SUCCESS)
        return md_store_err(mrc, err, "stat parked outbox");
    *parked = st.ms_entries;
    return MD_OK;
}
