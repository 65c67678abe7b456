/*
 * tamper_tail.c - an insider's rewrite of history, for the integration tests
 * (built by mk/check.mk as build/tests/tools/tamper_tail):
 *
 *   tamper_tail DATA_DIR
 *       Rewrites the last event with its recorded_at moved by one millisecond
 *       and its hash recomputed (SHA-256 of the previous hash and the new
 *       body), the meta head following: the store verifies on its own, only
 *       the replicas' signed checkpoints show that its history differs.
 */
#include <stdint.h>
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

/* The cut (as cut_tail 1), keeping a copy of the event in *ctx; the append
 * is a transaction of its own (the head is cached in a transaction). */
static md_err_t append(md_txn_t *t, void *ctx, md_error_t *err)
{
    return md_txn_append(t, ctx, err);
}

static md_err_t cut_last(md_txn_t *t, void *ctx, md_error_t *err)
{
    uint64_t head;
    md_event_t ev, *kept = ctx;
    unsigned char ek[8], meta[8 + MD_HASH_LEN], *data = NULL;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK && head < 2)
        rc = md_error_set(err, MD_EINVAL, "the store has %llu events", (unsigned long long)head);
    if (rc == MD_OK)
        rc = md_txn_event(t, head, &ev, NULL, NULL, err);
    if (rc != MD_OK)
        return rc;
    md_event_t copy = ev; /* the data borrows from the transaction: keep a copy before deleting */
    data = malloc(ev.data_len ? ev.data_len : 1);
    if (data == NULL)
        return md_error_set(err, MD_EINVAL, "out of memory");
    memcpy(data, ev.data, ev.data_len);
    copy.data = data;
    copy.recorded_at += 1;
    be64(ek, head);
    rc = md_txn_unindex_last(t, ev.stream, ev.version, err);
    if (rc == MD_OK)
        rc = del(t, MD_DB_EVENTS, ek, 8, err);
    /* the head back to head - 1, then the altered event appended at head */
    if (rc == MD_OK)
        rc = md_txn_event(t, head - 1, &ev, NULL, NULL, err);
    if (rc == MD_OK) {
        be64(meta, head - 1);
        memcpy(meta + 8, ev.hash, MD_HASH_LEN);
        rc = md_txn_meta_put(t, "head", meta, sizeof meta, err);
    }
    if (rc == MD_OK)
        *kept = copy; /* owns data */
    else
        free(data);
    return rc;
}

int main(int argc, char **argv)
{
    md_store_t *s = NULL;
    md_error_t err = {0};
    if (argc != 2) {
        fprintf(stderr, "usage: tamper_tail DATA_DIR\n");
        return 2;
    }
    md_event_t kept;
    memset(&kept, 0, sizeof kept);
    md_err_t rc = md_store_open(argv[1], NULL, &s, &err);
    if (rc == MD_OK)
        rc = md_store_write(s, cut_last, &kept, &err);
    if (rc == MD_OK)
        rc = md_store_write(s, append, &kept, &err);
    free((void *)kept.data);
    md_store_free(s);
    if (rc != MD_OK) {
        fprintf(stderr, "tamper_tail: %s\n", err.msg);
        return 1;
    }
    return 0;
}
