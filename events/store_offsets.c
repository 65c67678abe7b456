/*
 * store_offsets.c - the next Kafka offset to consume, per topic and partition
 * (md_store.h), written in the transaction that stores what was consumed.
 *
 * Invariants: a key is topic '\0' partition (4 bytes BE), a topic at most 255
 * bytes; a value is the next offset, 8 bytes BE; a record of another shape is
 * reported as MD_ECORRUPT, never skipped.
 */
#include <stdio.h>
#include <string.h>

#include "store_int.h"

static size_t offset_key(unsigned char *k, const char *topic, int32_t partition)
{
    size_t n = strlen(topic);
    memcpy(k, topic, n);
    k[n] = '\0';
    be32(k + n + 1, (uint32_t)partition);
    return n + 5;
}

md_err_t md_txn_offset_get(md_txn_t *t, const char *topic, int32_t partition, int64_t *next,
                           md_error_t *err)
{
    unsigned char k[256 + 5];
    MDB_val v;
    if (strlen(topic) > 255)
        return md_error_set(err, MD_EINVAL, "topic name too long");
    int rc = txn_get(t, MD_DB_OFFSETS, k, offset_key(k, topic, partition), &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get offset");
    if (v.mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "offset of %zu bytes", v.mv_size);
    *next = (int64_t)get_be64(v.mv_data);
    return MD_OK;
}

md_err_t md_txn_offset_put(md_txn_t *t, const char *topic, int32_t partition, int64_t next,
                           md_error_t *err)
{
    unsigned char k[256 + 5], v[8];
    if (strlen(topic) > 255)
        return md_error_set(err, MD_EINVAL, "topic name too long");
    be64(v, (uint64_t)next);
    return md_store_err(txn_put(t, MD_DB_OFFSETS, k, offset_key(k, topic, partition), v, 8, 0), err,
                        "put offset");
}

md_err_t md_txn_offset_scan(md_txn_t *t, md_offset_fn fn, void *ctx, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    md_err_t rc = MD_OK;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OFFSETS], &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "offsets cursor");
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data, *nul = memchr(p, 0, k.mv_size);
        if (nul == NULL || k.mv_size - (size_t)(nul - p) != 5 || v.mv_size != 8) {
            rc = md_error_set(err, MD_ECORRUPT,
                              "an offsets record is not topic, NUL, "
                              "partition(4), next(8)");
            break;
        }
        char topic[256];
        snprintf(topic, sizeof topic, "%.*s", (int)(nul - p), (const char *)p);
        rc = fn(topic, (int32_t)(uint32_t)(nul[1] << 24 | nul[2] << 16 | nul[3] << 8 | nul[4]),
                (int64_t)get_be64(v.mv_data), ctx, err);
    }
    mdb_cursor_close(cur);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc != MD_OK)
        return rc;
    return mrc == MDB_NOTFOUND ? MD_OK : md_store_err(mrc, err, "offsets scan");
}
