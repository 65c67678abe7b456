/*
 * store_migrate.c - store format 1 to 2: the stream index in chunks.
 *
 * Format 1 kept one key per event in the database "streams" (stream '\0'
 * version BE8 -> seq BE8); format 2 keeps a stream's seqs in chunks of
 * MD_STREAM_CHUNK in "stream_chunks" (md_store.h). The conversion reads the
 * old index once, in key order (a stream's versions in order, streams one
 * after another), writes each chunk once, and drops "streams": all in the
 * transaction that opens the store, which stamps format 2 (store_guard.c),
 * so a crash leaves the store in format 1, whole.
 *
 * The old index must hold versions 1, 2, ... of each stream without a gap;
 * otherwise the conversion stops with MD_ECORRUPT naming the stream (format
 * 1's verify would have named the same fault).
 */
#include <string.h>

#include "store_int.h"

typedef struct conv {
    md_store_t *s;
    MDB_txn *txn;
    char name[MD_STREAM_MAX + 1]; /* the stream being converted */
    size_t n;
    uint64_t version;                         /* its last version read */
    unsigned char chunk[8 * MD_STREAM_CHUNK]; /* its seqs not yet written */
    size_t have;
    uint64_t streams, events;
} conv_t;

/* Writes the stream's pending chunk (the versions before it are written). */
static md_err_t conv_put(conv_t *c, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 5];
    if (c->have == 0)
        return MD_OK;
    size_t klen = md_stream_chunk_key(k, c->name, (c->version - 1) / MD_STREAM_CHUNK);
    MDB_val key = {klen, k}, val = {8 * c->have, c->chunk};
    c->have = 0;
    return md_store_err(mdb_put(c->txn, c->s->dbi[MD_DB_STREAMS], &key, &val, 0), err,
                        "convert stream index");
}

/* Takes one old entry: (name, version) -> seq. */
static md_err_t conv_one(conv_t *c, const MDB_val *k, const MDB_val *v, md_error_t *err)
{
    const unsigned char *p = k->mv_data;
    if (k->mv_size < 10 || k->mv_size > MD_STREAM_MAX + 9 || p[k->mv_size - 9] != '\0' ||
        v->mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "format 1 stream index: a key of %zu bytes",
                            k->mv_size);
    size_t n = k->mv_size - 9;
    uint64_t version = get_be64(p + n + 1);
    bool same = n == c->n && memcmp(p, c->name, n) == 0;
    md_err_t rc = same ? MD_OK : conv_put(c, err);
    if (rc != MD_OK)
        return rc;
    if (!same) {
        memcpy(c->name, p, n);
        c->name[n] = '\0';
        c->n = n;
        c->version = 0;
        c->streams++;
    }
    if (version != c->version + 1)
        return md_error_set(err, MD_ECORRUPT,
                            "format 1 stream index: stream '%s' has version %llu after %llu",
                            c->name, (unsigned long long)version, (unsigned long long)c->version);
    c->version = version;
    memcpy(c->chunk + 8 * c->have++, v->mv_data, 8);
    c->events++;
    return c->have == MD_STREAM_CHUNK ? conv_put(c, err) : MD_OK;
}

md_err_t md__store_migrate_index(md_store_t *s, MDB_txn *txn, md_error_t *err)
{
    MDB_dbi old;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    conv_t c = {.s = s, .txn = txn};
    int mrc = mdb_dbi_open(txn, "streams", 0, &old);
    if (mrc == MDB_NOTFOUND) /* a format 1 store that never had events */
        return MD_OK;
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_open(txn, old, &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "format 1 stream index");
    md_err_t rc = MD_OK;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        rc = conv_one(&c, &k, &v, err);
    mdb_cursor_close(cur);
    if (rc == MD_OK && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "read format 1 stream index");
    if (rc == MD_OK)
        rc = conv_put(&c, err);
    if (rc == MD_OK)
        rc = md_store_err(mdb_drop(txn, old, 1), err, "drop format 1 stream index");
    if (rc == MD_OK) {
        s->migrated_streams = c.streams;
        s->migrated_events = c.events;
    }
    return rc;
}
