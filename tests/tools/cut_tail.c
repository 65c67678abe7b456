/*
 * cut_tail.c - the insider's attack on a store, for the integration tests
 * (built by mk/check.mk as build/tests/tools/cut_tail):
 *
 *   cut_tail DATA_DIR N
 *       Deletes the last N events and their stream index entries, and sets
 *       the meta head back to the new last event: the chain that remains is
 *       internally consistent, so only an external checkpoint shows the cut.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_store.h"

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static md_err_t del(md_txn_t *t, md_db_t db, const void *k, size_t n, md_error_t *err)
{
    MDB_val key = {n, (void *)k};
    return md_store_err(mdb_del(md_txn_mdb(t), md_txn_dbi(t, db), &key, NULL), err, "delete");
}

/* Deletes event @p seq and its stream index entry. */
static md_err_t cut_one(md_txn_t *t, uint64_t seq, md_error_t *err)
{
    md_event_t ev;
    unsigned char ek[8];
    md_err_t rc = md_txn_event(t, seq, &ev, NULL, NULL, err);
    if (rc != MD_OK)
        return rc;
    be64(ek, seq);
    rc = md_txn_unindex_last(t, ev.stream, ev.version, err);
    return rc == MD_OK ? del(t, MD_DB_EVENTS, ek, 8, err) : rc;
}

static md_err_t cut(md_txn_t *t, void *ctx, md_error_t *err)
{
    uint64_t n = *(uint64_t *)ctx, head;
    unsigned char meta[8 + MD_HASH_LEN];
    md_event_t ev;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK && n >= head)
        rc = md_error_set(err, MD_EINVAL, "the store has %llu events", (unsigned long long)head);
    for (uint64_t s = head; rc == MD_OK && s > head - n; s--)
        rc = cut_one(t, s, err);
    if (rc == MD_OK)
        rc = md_txn_event(t, head - n, &ev, NULL, NULL, err);
    if (rc != MD_OK)
        return rc;
    be64(meta, head - n);
    memcpy(meta + 8, ev.hash, MD_HASH_LEN);
    return md_txn_meta_put(t, "head", meta, sizeof meta, err);
}

int main(int argc, char **argv)
{
    md_store_t *s = NULL;
    md_error_t err = {0};
    if (argc != 3) {
        fprintf(stderr, "usage: cut_tail DATA_DIR N\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    md_err_t rc = md_store_open(argv[1], NULL, &s, &err);
    if (rc == MD_OK)
        rc = md_store_write(s, cut, &n, &err);
    md_store_free(s);
    if (rc != MD_OK) {
        fprintf(stderr, "cut_tail: %s\n", err.msg);
        return 1;
    }
    return 0;
}
