/*
 * move_offset.c - the insider's attack on a stopped daemon's consumed offset,
 * for tests/integration/test_offsets.sh (built by mk/check.mk as
 * build/tests/tools/move_offset):
 *
 *   move_offset DATA_DIR TOPIC PARTITION DELTA
 *       Adds DELTA to the stored next offset of TOPIC/PARTITION: the daemon,
 *       restarted, never decides the DELTA messages in between.
 *   move_offset --cover DATA_DIR TOPIC PARTITION DELTA
 *       The same, and covers the tracks in the intake records as the format
 *       is documented (md_store.h): the last batch record of that partition
 *       claims to have consumed up to the moved offset, so the records are
 *       contiguous again; only a signed checkpoint's offsets show it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_store.h"

typedef struct move {
    const char *topic;
    int32_t partition;
    int64_t delta;
    bool cover;
    uint64_t last; /* the last batch record of the partition (0: none) */
} move_t;

static md_err_t find_last(const md_intake_t *r, void *ctx, md_error_t *err)
{
    move_t *m = ctx;
    (void)err;
    if (r->kind == MD_INTAKE_BATCH && strcmp(r->name, m->topic) == 0)
        for (size_t i = 0; i < r->nparts; i++)
            if (r->parts[i].partition == m->partition)
                m->last = r->number;
    return MD_OK;
}

static uint64_t get_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static void put_be(unsigned char *p, size_t n, uint64_t v)
{
    for (size_t i = n; i-- > 0; v >>= 8)
        p[i] = (unsigned char)v;
}

/* Rewrites the `next` of the partition's part in record m->last, in place. */
static md_err_t cover(md_txn_t *t, const move_t *m, md_error_t *err)
{
    unsigned char k[8], buf[65536];
    MDB_val key = {8, k}, v;
    put_be(k, 8, m->last);
    int rc = mdb_get(md_txn_mdb(t), md_txn_dbi(t, MD_DB_INTAKE), &key, &v);
    if (rc != MDB_SUCCESS || v.mv_size > sizeof buf)
        return md_store_err(rc ? rc : MDB_BAD_VALSIZE, err, "intake record");
    memcpy(buf, v.mv_data, v.mv_size);
    size_t at = 14 + buf[9];
    for (; at + 32 <= v.mv_size; at += 32) {
        if ((int32_t)get_be(buf + at, 4) != m->partition)
            continue;
        put_be(buf + at + 20, 8, get_be(buf + at + 20, 8) + (uint64_t)m->delta);
        MDB_val nv = {v.mv_size, buf};
        return md_store_err(mdb_put(md_txn_mdb(t), md_txn_dbi(t, MD_DB_INTAKE), &key, &nv, 0), err,
                            "rewrite intake record");
    }
    return md_error_set(err, MD_ENOTFOUND, "no part of partition %d", (int)m->partition);
}

static md_err_t move(md_txn_t *t, void *ctx, md_error_t *err)
{
    move_t *m = ctx;
    int64_t next;
    md_err_t rc = md_txn_offset_get(t, m->topic, m->partition, &next, err);
    if (rc == MD_OK)
        rc = md_txn_offset_put(t, m->topic, m->partition, next + m->delta, err);
    if (rc == MD_OK && m->cover)
        rc = md_txn_intake_scan(t, find_last, m, err);
    if (rc == MD_OK && m->cover)
        rc = m->last ? cover(t, m, err) : md_error_set(err, MD_ENOTFOUND, "no batch record");
    if (rc == MD_OK)
        printf("%s/%d: %lld -> %lld\n", m->topic, (int)m->partition, (long long)next,
               (long long)(next + m->delta));
    return rc;
}

int main(int argc, char **argv)
{
    md_store_t *s = NULL;
    md_error_t err = {0};
    bool cover_tracks = argc == 6 && strcmp(argv[1], "--cover") == 0;
    if (argc != 5 && !cover_tracks) {
        fprintf(stderr, "usage: move_offset [--cover] DATA_DIR TOPIC PARTITION DELTA\n");
        return 2;
    }
    char **a = argv + (cover_tracks ? 2 : 1);
    move_t m = {a[1], (int32_t)atoi(a[2]), strtoll(a[3], NULL, 10), cover_tracks, 0};
    md_err_t rc = md_store_open(a[0], NULL, &s, &err);
    if (rc == MD_OK)
        rc = md_store_write(s, move, &m, &err);
    md_store_free(s);
    if (rc != MD_OK) {
        fprintf(stderr, "move_offset: %s\n", err.msg);
        return 1;
    }
    return 0;
}
