/*
 * store_events.c - the events of the store: the chain head, the stream index,
 * md_txn_append and the reads and scans of events (md_store.h).
 *
 * Invariants:
 *   - events are appended only, in seq order (MDB_APPEND), each record being
 *     prev_hash | hash | body with prev_hash the hash of the event before it
 *     (zero for the first) and hash the chain hash of prev_hash and body;
 *   - a stream's versions are 1, 2, ... without gaps; the stream index keeps
 *     their seqs in chunks of MD_STREAM_CHUNK under (stream, chunk), every
 *     chunk but the last full. A write transaction keeps the seqs it appends
 *     beside its stream versions (t->sv, t->si) and writes each stream's
 *     chunks once, before it commits or reads the index (md__si_flush): an
 *     index entry per event at a random place of the index cost the writer a
 *     quarter of its time (docs/performance.md, issue 17's eleventh pass);
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

size_t md_stream_chunk_key(unsigned char k[MD_STREAM_MAX + 5], const char *stream, uint64_t chunk)
{
    size_t n = strlen(stream);
    memcpy(k, stream, n);
    k[n] = '\0';
    be32(k + n + 1, (uint32_t)chunk);
    return n + 5;
}

/*
 * The write transaction's stream versions: a stream's version is found by a
 * cursor seek and a step back in the index (two B-tree operations), and is
 * asked again for every event appended to it and by decide; the answers of
 * this transaction are kept here, updated by each append, and forgotten when
 * a write transaction begins (a re-run batch starts empty). Bounded: at most
 * SV_MAX names are kept, later ones are looked up in LMDB each time and their
 * appends indexed at once (chunk_write).
 *
 * Each kept stream also has the seqs appended to it since its chunks were
 * last written: versions base + 1 .. version, a list through t->si from the
 * newest (last, a 1-based place in t->si; 0 for none).
 */
#define SV_MIN 256
#define SV_MAX ((size_t)1 << 16)

typedef struct sv_ent {
    uint64_t hash, version, base;
    uint32_t off, len; /* the name in sv_names; len 0: an empty slot */
    uint32_t last;     /* the newest unwritten seq's place in t->si, 0: none */
} sv_ent_t;

typedef struct si_node {
    uint64_t seq;
    uint32_t prev; /* the stream's previous unwritten seq's place, 0: none */
} si_node_t;

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
    md_buf_reset(&t->si);
}

void md__sv_free(md_txn_t *t)
{
    free(t->sv);
    t->sv = NULL;
    t->sv_cap = t->sv_n = 0;
    md_buf_release(&t->sv_names);
    md_buf_release(&t->si);
    md_buf_release(&t->si_scratch);
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

/* The kept entry of @p stream (n bytes), or NULL. */
static sv_ent_t *sv_find(md_txn_t *t, const char *stream, size_t n)
{
    if (t->sv_n == 0)
        return NULL;
    sv_ent_t *e = sv_slot(t->sv, t->sv_cap, &t->sv_names, md_hash64(stream, n), stream, n);
    return e->len ? e : NULL;
}

/* Keeps @p stream's version as read from the index: NULL when the table is
 * full (the name is then not kept at all, so its appends go to the index at
 * once and a later look-up finds them there). */
static sv_ent_t *sv_add(md_txn_t *t, const char *stream, size_t n, uint64_t version)
{
    uint64_t h = md_hash64(stream, n);
    if (2 * (t->sv_n + 1) > t->sv_cap && !sv_grow(t))
        return NULL;
    sv_ent_t *e = sv_slot(t->sv, t->sv_cap, &t->sv_names, h, stream, n);
    e->hash = h;
    e->off = (uint32_t)t->sv_names.len;
    e->len = (uint32_t)n;
    e->version = e->base = version;
    e->last = 0;
    md_buf_append(&t->sv_names, stream, n);
    t->sv_n++;
    return e;
}

/* The version of @p stream (n bytes) in the index: its last chunk's number
 * and length. */
static md_err_t index_version(MDB_cursor *c, const char *stream, size_t n, uint64_t *version,
                              md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 5];
    MDB_val key = {md_stream_chunk_key(k, stream, UINT32_MAX), k}, val;
    int rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &key, &val, rc == MDB_SUCCESS ? MDB_PREV : MDB_LAST);
    *version = 0;
    if (rc == MDB_NOTFOUND ||
        (rc == MDB_SUCCESS && (key.mv_size != n + 5 || memcmp(key.mv_data, k, n + 1) != 0)))
        return MD_OK;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "stream index");
    if (!chunk_sound(&val))
        return md_error_set(err, MD_ECORRUPT, "stream '%s': index chunk of %zu bytes", stream,
                            val.mv_size);
    uint32_t chunk = get_be32((const unsigned char *)key.mv_data + n + 1);
    *version = (uint64_t)chunk * MD_STREAM_CHUNK + val.mv_size / 8;
    return MD_OK;
}

/* @p stream's version (n bytes, checked) and, in a write transaction, its
 * kept entry (*kept; NULL when the table is full): one look-up for
 * md_txn_append, which then notes the event's seq on the same entry. */
static md_err_t stream_lookup(md_txn_t *t, const char *stream, size_t n, uint64_t *version,
                              sv_ent_t **kept, md_error_t *err)
{
    sv_ent_t *e = t->write ? sv_find(t, stream, n) : NULL;
    *kept = e;
    if (e) {
        *version = e->version;
        return MD_OK;
    }
    /* The writer keeps one cursor for the whole transaction (an open and a
     * close per append showed in profiles); readers open their own. A stream
     * not kept has no unwritten seqs: the index has all of it. */
    MDB_cursor *c = t->write ? t->streams : NULL;
    int rc = c ? MDB_SUCCESS : mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "cursor streams");
    if (t->write)
        t->streams = c;
    md_err_t mrc = index_version(c, stream, n, version, err);
    if (!t->write)
        mdb_cursor_close(c);
    if (mrc == MD_OK && t->write)
        *kept = sv_add(t, stream, n, *version);
    return mrc;
}

md_err_t md_txn_stream_version(md_txn_t *t, const char *stream, uint64_t *version, md_error_t *err)
{
    sv_ent_t *kept;
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    return stream_lookup(t, stream, n, version, &kept, err);
}

/* ---- writing the index's chunks ------------------------------------------------------ */

/*
 * Writes seqs[0..k) as versions base + 1 .. base + k of @p stream: the chunk
 * that already holds base's seq (when base is not a chunk's end) is read and
 * extended, each chunk written once; a chunk that should be new and exists
 * is corruption (MDB_KEYEXIST), never overwritten.
 */
static md_err_t chunk_write(md_txn_t *t, const char *stream, uint64_t base, const uint64_t *seqs,
                            size_t k, md_error_t *err)
{
    unsigned char key[MD_STREAM_MAX + 5], val[8 * MD_STREAM_CHUNK];
    uint64_t chunk = base / MD_STREAM_CHUNK;
    size_t have = base % MD_STREAM_CHUNK, i = 0;
    size_t klen = md_stream_chunk_key(key, stream, chunk);
    int rc =
        t->streams ? MDB_SUCCESS : mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &t->streams);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "cursor streams");
    unsigned flags = MDB_NOOVERWRITE; /* a new chunk: an existing one is never overwritten */
    if (have) { /* the chunk is extended where the cursor found it: one descent */
        MDB_val kv = {klen, key}, v;
        rc = mdb_cursor_get(t->streams, &kv, &v, MDB_SET_KEY);
        if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
            return md_store_err(rc, err, "stream index");
        if (rc == MDB_NOTFOUND || v.mv_size != 8 * have)
            return md_error_set(err, MD_ECORRUPT,
                                "stream '%s': index chunk %llu does not hold version %llu", stream,
                                (unsigned long long)chunk, (unsigned long long)base);
        memcpy(val, v.mv_data, v.mv_size);
        flags = MDB_CURRENT;
    }
    while (i < k) {
        if (chunk > UINT32_MAX)
            return md_error_set(err, MD_EINVAL, "stream '%s' is full", stream);
        for (; i < k && have < MD_STREAM_CHUNK; i++)
            be64(val + 8 * have++, seqs[i]);
        be32(key + klen - 4, (uint32_t)chunk); /* the chunk number ends the key */
        MDB_val kv = {klen, key}, v = {8 * have, val};
        rc = mdb_cursor_put(t->streams, &kv, &v, flags);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, "index stream");
        chunk++;
        have = 0;
        flags = MDB_NOOVERWRITE;
    }
    return MD_OK;
}

/* A kept stream with unwritten seqs, and its name (for the sort). */
typedef struct si_dirty {
    const unsigned char *name;
    sv_ent_t *e;
} si_dirty_t;

/* By name: LMDB's order of the chunk keys, so the writes go in key order. */
static int by_name(const void *a, const void *b)
{
    const si_dirty_t *x = a, *y = b;
    uint32_t xn = x->e->len, yn = y->e->len;
    int c = memcmp(x->name, y->name, xn < yn ? xn : yn);
    return c ? c : (xn > yn) - (xn < yn);
}

/* Writes one kept stream's unwritten seqs (its list, newest first). */
static md_err_t flush_stream(md_txn_t *t, sv_ent_t *e, uint64_t *seqs, md_error_t *err)
{
    char name[MD_STREAM_MAX + 1];
    size_t k = (size_t)(e->version - e->base);
    const si_node_t *nodes = (const si_node_t *)(void *)t->si.p;
    uint32_t at = e->last;
    for (size_t i = k; i > 0; i--, at = nodes[at - 1].prev)
        seqs[i - 1] = nodes[at - 1].seq;
    memcpy(name, t->sv_names.p + e->off, e->len);
    name[e->len] = '\0';
    md_err_t rc = chunk_write(t, name, e->base, seqs, k, err);
    e->base = e->version;
    e->last = 0;
    return rc;
}

md_err_t md__si_flush(md_txn_t *t, md_error_t *err)
{
    if (t->si.len == 0)
        return MD_OK;
    size_t nodes = t->si.len / sizeof(si_node_t), m = 0;
    md_buf_reset(&t->si_scratch);
    si_dirty_t *dirty = (si_dirty_t *)(void *)md_buf_reserve(
        &t->si_scratch, t->sv_n * sizeof *dirty + sizeof(uint64_t) * nodes);
    uint64_t *seqs = (uint64_t *)(void *)(dirty + t->sv_n);
    for (size_t i = 0; i < t->sv_cap; i++)
        if (t->sv[i].len && t->sv[i].last)
            dirty[m++] = (si_dirty_t){t->sv_names.p + t->sv[i].off, &t->sv[i]};
    qsort(dirty, m, sizeof *dirty, by_name);
    md_err_t rc = MD_OK;
    for (size_t i = 0; i < m && rc == MD_OK; i++)
        rc = flush_stream(t, dirty[i].e, seqs, err);
    md_buf_reset(&t->si);
    return rc;
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

/* Notes @p ev's seq for its stream's index chunk: kept on the stream's entry
 * @p e until md__si_flush, or written at once for a stream not kept (NULL). */
static md_err_t index_event(md_txn_t *t, const md_event_t *ev, sv_ent_t *e, md_error_t *err)
{
    if (e == NULL)
        return chunk_write(t, ev->stream, ev->version - 1, &ev->seq, 1, err);
    si_node_t node = {.seq = ev->seq, .prev = e->last};
    md_buf_append(&t->si, &node, sizeof node);
    e->last = (uint32_t)(t->si.len / sizeof node);
    e->version = ev->version;
    return MD_OK;
}

/* Writes the record and its stream index entry, then advances the head. */
static md_err_t put_record(md_txn_t *t, md_event_t *ev, sv_ent_t *e, md_error_t *err)
{
    unsigned char seqk[8];
    be64(seqk, ev->seq);
    int rc = txn_put(t, MD_DB_EVENTS, seqk, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "append event");
    md_err_t irc = index_event(t, ev, e, err);
    if (irc != MD_OK)
        return irc;
    t->head_dirty = true;
    t->appended = true;
    t->head_seq = ev->seq;
    memcpy(t->head_hash, ev->hash, MD_HASH_LEN);
    return MD_OK;
}

md_err_t md_txn_append(md_txn_t *t, md_event_t *ev, md_error_t *err)
{
    md_err_t rc;
    sv_ent_t *e = NULL;
    if (!t->write)
        return md_error_set(err, MD_EINVAL, "append in a read transaction");
    if ((rc = check_event(ev, err)) != MD_OK || (rc = load_head(t, err)) != MD_OK ||
        (rc = stream_lookup(t, ev->stream, strlen(ev->stream), &ev->version, &e, err)) != MD_OK)
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
    return put_record(t, ev, e, err); /* e: no entry was added since the look-up */
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

/* Visits the seqs of one chunk from slot @p from, counting against @p limit. */
static md_err_t visit_chunk(md_txn_t *t, const char *stream, const MDB_val *v, size_t from,
                            uint64_t limit, uint64_t *count, md_event_fn fn, void *ctx,
                            md_error_t *err)
{
    for (size_t i = from; i < v->mv_size / 8; i++) {
        if (limit && (*count)++ == limit)
            return MD_ESTOP;
        MDB_val ek = {8, (unsigned char *)v->mv_data + 8 * i}, ev;
        int mrc = mdb_get(t->txn, t->s->dbi[MD_DB_EVENTS], &ek, &ev);
        if (mrc == MDB_NOTFOUND)
            return md_error_set(err, MD_ECORRUPT, "stream '%s' indexes a missing event", stream);
        if (mrc != MDB_SUCCESS)
            return md_store_err(mrc, err, "get event");
        md_err_t rc = visit_record(&ek, &ev, fn, ctx, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

md_err_t md_txn_scan_stream(md_txn_t *t, const char *stream, uint64_t from_version, uint64_t limit,
                            md_event_fn fn, void *ctx, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 5];
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    md_err_t rc = t->write ? md__si_flush(t, err) : MD_OK; /* this txn's appends too */
    if (rc != MD_OK)
        return rc;
    uint64_t first = from_version ? from_version - 1 : 0; /* as a 0-based place */
    if (first / MD_STREAM_CHUNK > UINT32_MAX)
        return MD_OK;
    MDB_cursor *c = NULL;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor streams");
    MDB_val key = {md_stream_chunk_key(k, stream, first / MD_STREAM_CHUNK), k}, val;
    size_t from = (size_t)(first % MD_STREAM_CHUNK);
    uint64_t count = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != n + 5 || memcmp(key.mv_data, k, n + 1) != 0)
            break;
        if (!chunk_sound(&val)) {
            rc = md_error_set(err, MD_ECORRUPT, "stream '%s': index chunk of %zu bytes", stream,
                              val.mv_size);
            break;
        }
        if ((rc = visit_chunk(t, stream, &val, from, limit, &count, fn, ctx, err)) != MD_OK)
            break;
        from = 0;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan stream");
    return rc;
}

/* ---- cutting a store's tail (tools) --------------------------------------------- */

md_err_t md_txn_unindex_last(md_txn_t *t, const char *stream, uint64_t version, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 5];
    uint64_t have = 0;
    size_t n = strlen(stream);
    if (!t->write)
        return md_error_set(err, MD_EINVAL, "unindex in a read transaction");
    md_err_t rc = md_txn_stream_version(t, stream, &have, err);
    if (rc == MD_OK)
        rc = md__si_flush(t, err);
    if (rc != MD_OK)
        return rc;
    if (version == 0 || have != version)
        return md_error_set(err, MD_ENOTFOUND, "stream '%s' is at version %llu, not %llu", stream,
                            (unsigned long long)have, (unsigned long long)version);
    size_t klen = md_stream_chunk_key(k, stream, (version - 1) / MD_STREAM_CHUNK);
    size_t keep = (size_t)((version - 1) % MD_STREAM_CHUNK);
    MDB_val v;
    int mrc = txn_get(t, MD_DB_STREAMS, k, klen, &v);
    if (mrc == MDB_SUCCESS && keep) {
        unsigned char val[8 * MD_STREAM_CHUNK];
        memcpy(val, v.mv_data, 8 * keep);
        mrc = txn_put(t, MD_DB_STREAMS, k, klen, val, 8 * keep, 0);
    } else if (mrc == MDB_SUCCESS) {
        MDB_val key = {klen, k};
        mrc = mdb_del(t->txn, t->s->dbi[MD_DB_STREAMS], &key, NULL);
    }
    sv_ent_t *e = sv_find(t, stream, n);
    if (e) /* kept at the old version: take it back */
        e->version = e->base = version - 1;
    return md_store_err(mrc, err, "unindex stream");
}
