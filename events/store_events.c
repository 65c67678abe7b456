/*
 * store_events.c - the events of the store: the chain head, the stream index,
 * md_txn_append and the reads and scans of events (md_store.h).
 *
 * Invariants:
 *   - events are appended only, in seq order (MDB_APPEND), each record being
 *     prev_hash | hash | body with prev_hash the hash of the event before it
 *     (zero for the first) and hash the chain hash of prev_hash and body;
 *   - a stream's versions are 1, 2, ... without gaps; the stream index key
 *     (stream '\0' version BE) of each event is written with its record, and
 *     an existing key is never overwritten;
 *   - the head (seq and hash of the last event) is kept in the write
 *     transaction and flushed to meta 'head' before it commits (store.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

/* ---- the chain head and stream versions ------------------------------------------ */

static md_err_t load_head(md_txn_t *t, md_error_t *err)
{
    const void *v;
    size_t len;
    if (t->head_loaded)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, "head", &v, &len, err);
    if (rc == MD_ENOTFOUND) {
        t->head_seq = 0;
        memset(t->head_hash, 0, MD_HASH_LEN);
    } else if (rc != MD_OK) {
        return rc;
    } else if (len != 8 + MD_HASH_LEN) {
        return md_error_set(err, MD_ECORRUPT, "meta 'head' has %zu bytes", len);
    } else {
        t->head_seq = get_be64(v);
        memcpy(t->head_hash, (const unsigned char *)v + 8, MD_HASH_LEN);
    }
    t->head_loaded = true;
    return MD_OK;
}

md_err_t md_txn_head(md_txn_t *t, uint64_t *seq, unsigned char hash[MD_HASH_LEN], md_error_t *err)
{
    md_err_t rc = load_head(t, err);
    if (rc != MD_OK)
        return rc;
    *seq = t->head_seq;
    if (hash)
        memcpy(hash, t->head_hash, MD_HASH_LEN);
    return MD_OK;
}

/* Stream index key: stream bytes, a NUL, the version big-endian. */
static size_t stream_key(unsigned char *k, const char *stream, uint64_t version)
{
    size_t n = strlen(stream);
    memcpy(k, stream, n);
    k[n] = '\0';
    be64(k + n + 1, version);
    return n + 9;
}

/*
 * The write transaction's stream versions: a stream's version is found by a
 * cursor seek and a step back in the index (two B-tree operations), and is
 * asked again for every event appended to it and by decide; the answers of
 * this transaction are kept here, updated by each append (the only writer of
 * the index in a write transaction), and forgotten when a write transaction
 * begins (a re-run batch starts empty). Bounded: at most SV_MAX names are
 * kept, later ones are looked up in LMDB each time.
 */
#define SV_MIN 256
#define SV_MAX ((size_t)1 << 16)

typedef struct sv_ent {
    uint64_t hash, version;
    uint32_t off, len; /* the name in sv_names; len 0: an empty slot */
} sv_ent_t;

static sv_ent_t *sv_slot(sv_ent_t *tab, size_t cap, const md_buf_t *names, uint64_t h,
                         const char *s, size_t n)
{
    for (size_t i = h & (cap - 1);; i = (i + 1) & (cap - 1)) {
        sv_ent_t *e = &tab[i];
        if (e->len == 0 || (e->hash == h && e->len == n && memcmp(names->p + e->off, s, n) == 0))
            return e;
    }
}

void md__sv_reset(md_txn_t *t)
{
    if (t->sv_n)
        memset(t->sv, 0, t->sv_cap * sizeof *t->sv);
    t->sv_n = 0;
    md_buf_reset(&t->sv_names);
}

void md__sv_free(md_txn_t *t)
{
    free(t->sv);
    t->sv = NULL;
    t->sv_cap = t->sv_n = 0;
    md_buf_release(&t->sv_names);
}

/* Doubles the table (or makes the first); false when it is at SV_MAX. */
static bool sv_grow(md_txn_t *t)
{
    size_t cap = t->sv_cap ? 2 * t->sv_cap : SV_MIN;
    if (cap > SV_MAX)
        return false;
    sv_ent_t *tab = md_calloc(cap, sizeof *tab);
    for (size_t i = 0; i < t->sv_cap; i++)
        if (t->sv[i].len)
            *sv_slot(tab, cap, &t->sv_names, t->sv[i].hash,
                     (const char *)t->sv_names.p + t->sv[i].off, t->sv[i].len) = t->sv[i];
    free(t->sv);
    t->sv = tab;
    t->sv_cap = cap;
    return true;
}

/* The kept version of @p stream (n bytes), or NULL. */
static const sv_ent_t *sv_find(md_txn_t *t, const char *stream, size_t n)
{
    if (t->sv_n == 0)
        return NULL;
    const sv_ent_t *e = sv_slot(t->sv, t->sv_cap, &t->sv_names, md_hash64(stream, n), stream, n);
    return e->len ? e : NULL;
}

/* Keeps @p version as @p stream's. A full table takes no new name, but a name
 * it keeps must still follow every append (a stale version would be reused). */
static void sv_set(md_txn_t *t, const char *stream, size_t n, uint64_t version)
{
    uint64_t h = md_hash64(stream, n);
    if (2 * (t->sv_n + 1) > t->sv_cap && !sv_grow(t)) {
        sv_ent_t *kept = t->sv_cap ? sv_slot(t->sv, t->sv_cap, &t->sv_names, h, stream, n) : NULL;
        if (kept && kept->len)
            kept->version = version;
        return;
    }
    sv_ent_t *e = sv_slot(t->sv, t->sv_cap, &t->sv_names, h, stream, n);
    if (e->len == 0) {
        e->hash = h;
        e->off = (uint32_t)t->sv_names.len;
        e->len = (uint32_t)n;
        md_buf_append(&t->sv_names, stream, n);
        t->sv_n++;
    }
    e->version = version;
}

md_err_t md_txn_stream_version(md_txn_t *t, const char *stream, uint64_t *version, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9];
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    const sv_ent_t *kept = t->write ? sv_find(t, stream, n) : NULL;
    if (kept) {
        *version = kept->version;
        return MD_OK;
    }
    /* The writer keeps one cursor for the whole transaction (an open and a
     * close per append showed in profiles); readers open their own. */
    MDB_cursor *c = t->write ? t->streams : NULL;
    int rc = c ? MDB_SUCCESS : mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "cursor streams");
    if (t->write)
        t->streams = c;
    MDB_val key = {stream_key(k, stream, UINT64_MAX), k}, val;
    rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &key, &val, rc == MDB_SUCCESS ? MDB_PREV : MDB_LAST);
    *version = 0;
    if (rc == MDB_SUCCESS && key.mv_size == n + 9 && memcmp(key.mv_data, k, n + 1) == 0)
        *version = get_be64((const unsigned char *)key.mv_data + n + 1);
    if (!t->write)
        mdb_cursor_close(c);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, err, "streams");
    if (t->write)
        sv_set(t, stream, n, *version);
    return MD_OK;
}

/* ---- append ------------------------------------------------------------------------ */

static md_err_t check_event(const md_event_t *ev, md_error_t *err)
{
    size_t sl = strnlen(ev->stream, sizeof ev->stream), tl = strnlen(ev->type, sizeof ev->type);
    if (sl == 0 || sl > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "event stream must be 1..%d bytes", MD_STREAM_MAX);
    if (tl == 0 || tl > MD_TYPE_MAX)
        return md_error_set(err, MD_EINVAL, "event type must be 1..%d bytes", MD_TYPE_MAX);
    if ((ev->has_command_id && ev->command_id[0] == '\0') ||
        (ev->has_actor && ev->actor[0] == '\0'))
        return md_error_set(err, MD_EINVAL, "event command_id and actor must not be empty");
    return MD_OK;
}

/* Writes the record and its stream index entry, then advances the head. */
static md_err_t put_record(md_txn_t *t, md_event_t *ev, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9], seqk[8];
    be64(seqk, ev->seq);
    int rc = txn_put(t, MD_DB_EVENTS, seqk, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "append event");
    rc = txn_put(t, MD_DB_STREAMS, k, stream_key(k, ev->stream, ev->version), seqk, 8,
                 MDB_NOOVERWRITE);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "index stream");
    sv_set(t, ev->stream, strlen(ev->stream), ev->version);
    t->head_dirty = true;
    t->appended = true;
    t->head_seq = ev->seq;
    memcpy(t->head_hash, ev->hash, MD_HASH_LEN);
    return MD_OK;
}

md_err_t md_txn_append(md_txn_t *t, md_event_t *ev, md_error_t *err)
{
    md_err_t rc;
    if (!t->write)
        return md_error_set(err, MD_EINVAL, "append in a read transaction");
    if ((rc = check_event(ev, err)) != MD_OK || (rc = load_head(t, err)) != MD_OK ||
        (rc = md_txn_stream_version(t, ev->stream, &ev->version, err)) != MD_OK)
        return rc;
    ev->seq = t->head_seq + 1;
    ev->version += 1;
    memcpy(ev->prev_hash, t->head_hash, MD_HASH_LEN);
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, ev->prev_hash, MD_HASH_LEN);
    md_buf_append(&t->rec, ev->prev_hash, MD_HASH_LEN); /* room for the hash */
    if ((rc = md_event_body(ev, &t->rec, err)) != MD_OK)
        return rc;
    md_chain_hash(ev->prev_hash, t->rec.p + RECORD_HDR, t->rec.len - RECORD_HDR, ev->hash);
    memcpy(t->rec.p + MD_HASH_LEN, ev->hash, MD_HASH_LEN);
    return put_record(t, ev, err);
}

/* ---- reading events ------------------------------------------------------------------ */

static md_err_t decode_record(const MDB_val *v, uint64_t seq, md_event_t *ev, const void **body,
                              size_t *body_len, md_error_t *err)
{
    if (v->mv_size <= RECORD_HDR)
        return md_error_set(err, MD_ECORRUPT, "event %llu: record too short",
                            (unsigned long long)seq);
    const unsigned char *p = v->mv_data;
    md_error_t derr = {0};
    if (md_event_decode_body(p + RECORD_HDR, v->mv_size - RECORD_HDR, ev, &derr) != MD_OK)
        return md_error_set(err, MD_ECORRUPT, "event %llu: %s", (unsigned long long)seq, derr.msg);
    memcpy(ev->prev_hash, p, MD_HASH_LEN);
    memcpy(ev->hash, p + MD_HASH_LEN, MD_HASH_LEN);
    if (body)
        *body = p + RECORD_HDR;
    if (body_len)
        *body_len = v->mv_size - RECORD_HDR;
    return MD_OK;
}

md_err_t md_txn_event(md_txn_t *t, uint64_t seq, md_event_t *ev, const void **body,
                      size_t *body_len, md_error_t *err)
{
    unsigned char k[8];
    MDB_val v;
    be64(k, seq);
    int rc = txn_get(t, MD_DB_EVENTS, k, 8, &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get event");
    return decode_record(&v, seq, ev, body, body_len, err);
}

/* Calls fn on one stored record; a key of the wrong size is corruption. */
static md_err_t visit_record(const MDB_val *k, const MDB_val *v, md_event_fn fn, void *ctx,
                             md_error_t *err)
{
    md_event_t ev;
    const void *body;
    size_t blen;
    if (k->mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "event key of %zu bytes", k->mv_size);
    uint64_t seq = get_be64(k->mv_data);
    md_err_t rc = decode_record(v, seq, &ev, &body, &blen, err);
    if (rc == MD_OK && ev.seq != seq)
        rc = md_error_set(err, MD_ECORRUPT, "event %llu: body says seq %llu",
                          (unsigned long long)seq, (unsigned long long)ev.seq);
    return rc == MD_OK ? fn(&ev, body, blen, ctx, err) : rc;
}

md_err_t md_txn_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_event_fn fn, void *ctx,
                     md_error_t *err)
{
    unsigned char k[8];
    MDB_cursor *c = NULL;
    be64(k, from);
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_EVENTS], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor events");
    MDB_val key = {8, k}, val;
    md_err_t rc = MD_OK;
    uint64_t n = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if ((limit && n++ == limit) || (rc = visit_record(&key, &val, fn, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan events");
    return rc;
}

md_err_t md_txn_scan_stream(md_txn_t *t, const char *stream, uint64_t from_version, uint64_t limit,
                            md_event_fn fn, void *ctx, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9];
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    MDB_cursor *c = NULL;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor streams");
    MDB_val key = {stream_key(k, stream, from_version), k}, val;
    md_err_t rc = MD_OK;
    uint64_t count = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != n + 9 || memcmp(key.mv_data, k, n + 1) != 0 || val.mv_size != 8)
            break;
        if (limit && count++ == limit)
            break;
        MDB_val ek = {8, val.mv_data}, ev;
        mrc = mdb_get(t->txn, t->s->dbi[MD_DB_EVENTS], &ek, &ev);
        if (mrc != MDB_SUCCESS) {
            rc = md_error_set(err, MD_ECORRUPT, "stream '%s' indexes a missing event", stream);
            break;
        }
        if ((rc = visit_record(&ek, &ev, fn, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan stream");
    return rc;
}
