/*
 * store_intake.c - the intake records (md_store.h, "intake records"): what
 * the consumer took from Kafka in each batch, numbered in commit order, with
 * the checkpoints marked between them. events/intake.c checks them.
 *
 * Invariants:
 *   - records are appended only (MDB_APPEND); the first batch of a store is
 *     preceded by a baseline record 0 (the offsets stored before it);
 *   - a record holds the head seq of the transaction that wrote it;
 *   - a record is kind(1) seq(8 BE) name_len(1) name nparts(4 BE) and nparts
 *     parts of INTAKE_PART_LEN bytes; any other shape is MD_ECORRUPT.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_int.h"

#define INTAKE_PART_LEN 32 /* partition(4) from(8) first(8) next(8) count(4) */

void md_intake_reset(md_intake_t *r, const char *topic)
{
    r->number = 0;
    r->kind = MD_INTAKE_BATCH;
    r->seq = 0;
    snprintf(r->name, sizeof r->name, "%s", topic);
    r->nparts = 0;
}

static md_intake_part_t *intake_part(md_intake_t *r, int32_t partition, int64_t from)
{
    for (size_t i = 0; i < r->nparts; i++)
        if (r->parts[i].partition == partition)
            return &r->parts[i];
    if (r->nparts == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 4;
        r->parts = md_realloc(r->parts, r->cap * sizeof *r->parts);
    }
    md_intake_part_t *p = &r->parts[r->nparts++];
    *p = (md_intake_part_t){.partition = partition, .from = from, .first = -1, .next = -1};
    return p;
}

void md_intake_add(md_intake_t *r, int32_t partition, int64_t offset, int64_t from)
{
    md_intake_part_t *p = intake_part(r, partition, from);
    if (p->count++ == 0)
        p->first = offset;
    if (offset + 1 > p->next)
        p->next = offset + 1;
}

void md_intake_release(md_intake_t *r)
{
    free(r->parts);
    memset(r, 0, sizeof *r);
}

static void intake_encode(const md_intake_t *r, md_buf_t *out)
{
    unsigned char h[1 + 8 + 1], n[4], part[INTAKE_PART_LEN];
    size_t nlen = strlen(r->name);
    h[0] = (unsigned char)r->kind;
    be64(h + 1, r->seq);
    h[9] = (unsigned char)nlen;
    md_buf_reset(out);
    md_buf_append(out, h, sizeof h);
    md_buf_append(out, r->name, nlen);
    be32(n, (uint32_t)r->nparts);
    md_buf_append(out, n, 4);
    for (size_t i = 0; i < r->nparts; i++) {
        const md_intake_part_t *p = &r->parts[i];
        be32(part, (uint32_t)p->partition);
        be64(part + 4, (uint64_t)p->from);
        be64(part + 12, (uint64_t)p->first);
        be64(part + 20, (uint64_t)p->next);
        be32(part + 28, p->count);
        md_buf_append(out, part, sizeof part);
    }
}

static uint32_t intake_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static md_err_t intake_decode(uint64_t number, const MDB_val *v, md_intake_t *r, md_error_t *err)
{
    const unsigned char *p = v->mv_data;
    size_t len = v->mv_size, nlen = len >= 10 ? p[9] : 0;
    if (len < 14 + nlen ||
        (p[0] != MD_INTAKE_BASELINE && p[0] != MD_INTAKE_BATCH && p[0] != MD_INTAKE_CHECKPOINT))
        return md_error_set(err, MD_ECORRUPT, "intake record %" PRIu64 " does not decode", number);
    uint32_t nparts = intake_be32(p + 10 + nlen);
    if ((len - 14 - nlen) / INTAKE_PART_LEN != nparts || (len - 14 - nlen) % INTAKE_PART_LEN)
        return md_error_set(err, MD_ECORRUPT, "intake record %" PRIu64 " has a bad length", number);
    r->number = number;
    r->kind = (md_intake_kind_t)p[0];
    r->seq = get_be64(p + 1);
    memcpy(r->name, p + 10, nlen);
    r->name[nlen] = '\0';
    r->nparts = 0;
    for (const unsigned char *q = p + 14 + nlen; nparts--; q += INTAKE_PART_LEN) {
        md_intake_part_t *pt = intake_part(r, (int32_t)intake_be32(q), (int64_t)get_be64(q + 4));
        pt->first = (int64_t)get_be64(q + 12);
        pt->next = (int64_t)get_be64(q + 20);
        pt->count = intake_be32(q + 28);
    }
    return MD_OK;
}

/* The number of the last intake record (*none when there is none). */
static md_err_t intake_last(md_txn_t *t, uint64_t *last, bool *none, md_error_t *err)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_INTAKE], &c);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (c)
        mdb_cursor_close(c);
    *none = mrc == MDB_NOTFOUND;
    if (*none)
        return MD_OK;
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "intake: last record");
    if (k.mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "an intake key of %zu bytes", k.mv_size);
    *last = get_be64(k.mv_data);
    return MD_OK;
}

static md_err_t intake_append(md_txn_t *t, md_intake_t *r, uint64_t number, md_error_t *err)
{
    unsigned char k[8];
    md_err_t rc = md_txn_head(t, &r->seq, NULL, err);
    if (rc != MD_OK)
        return rc;
    r->number = number;
    intake_encode(r, &t->rec);
    be64(k, number);
    return md_store_err(txn_put(t, MD_DB_INTAKE, k, 8, t->rec.p, t->rec.len, MDB_APPEND), err,
                        "put intake");
}

/* The baseline: the offsets of the batch's topic stored before it (its own
 * partitions as the `from` it began at). */
static md_err_t intake_baseline(md_txn_t *t, const md_intake_t *batch, md_error_t *err)
{
    md_intake_t b = {0};
    MDB_cursor *c = NULL;
    MDB_val k, v;
    size_t tlen = strlen(batch->name);
    md_err_t rc = MD_OK;
    md_intake_reset(&b, batch->name);
    b.kind = MD_INTAKE_BASELINE;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OFFSETS], &c);
    for (mrc = mrc ? mrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != tlen + 5 || memcmp(k.mv_data, batch->name, tlen + 1) != 0)
            continue; /* another topic */
        if (v.mv_size != 8) {
            rc = md_error_set(err, MD_ECORRUPT, "offset of %zu bytes", v.mv_size);
            break;
        }
        int32_t part = (int32_t)intake_be32((const unsigned char *)k.mv_data + tlen + 1);
        int64_t next = (int64_t)get_be64(v.mv_data);
        for (size_t i = 0; i < batch->nparts; i++)
            if (batch->parts[i].partition == part)
                next = batch->parts[i].from; /* the batch stored over it */
        if (next == MD_INTAKE_NONE)
            continue;
        md_intake_part_t *p = intake_part(&b, part, next);
        p->first = p->next = next;
    }
    if (c)
        mdb_cursor_close(c);
    if (rc == MD_OK && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "intake: offsets scan");
    if (rc == MD_OK)
        rc = intake_append(t, &b, 0, err);
    md_intake_release(&b);
    return rc;
}

md_err_t md_txn_intake_put(md_txn_t *t, md_intake_t *r, md_error_t *err)
{
    uint64_t last = 0;
    bool none = true;
    if (r->kind != MD_INTAKE_BATCH || r->nparts == 0)
        return md_error_set(err, MD_EINVAL, "an intake batch record needs a partition");
    md_err_t rc = intake_last(t, &last, &none, err);
    if (rc == MD_OK && none)
        rc = intake_baseline(t, r, err);
    return rc == MD_OK ? intake_append(t, r, none ? 1 : last + 1, err) : rc;
}

md_err_t md_txn_intake_mark(md_txn_t *t, const char *replica, uint64_t seq, md_error_t *err)
{
    uint64_t last = 0;
    bool none = true;
    md_intake_t m = {0};
    md_err_t rc = intake_last(t, &last, &none, err);
    if (rc != MD_OK || none)
        return rc; /* no intake yet: the checkpoint is not covered */
    md_intake_reset(&m, replica);
    m.kind = MD_INTAKE_CHECKPOINT;
    rc = intake_append(t, &m, last + 1, err);
    if (rc == MD_OK)
        rc = m.seq == seq ? MD_OK
                          : md_error_set(err, MD_EINVAL,
                                         "checkpoint of seq %" PRIu64 " is not the head %" PRIu64,
                                         seq, m.seq);
    md_intake_release(&m);
    return rc;
}

md_err_t md_txn_intake_scan(md_txn_t *t, md_intake_fn fn, void *ctx, md_error_t *err)
{
    md_intake_t r = {0};
    MDB_cursor *c = NULL;
    MDB_val k, v;
    md_err_t rc = MD_OK;
    if (t->s->no_intake)
        return MD_OK;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_INTAKE], &c);
    for (mrc = mrc ? mrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        rc = k.mv_size == 8
                 ? intake_decode(get_be64(k.mv_data), &v, &r, err)
                 : md_error_set(err, MD_ECORRUPT, "an intake key of %zu bytes", k.mv_size);
        if (rc == MD_OK)
            rc = fn(&r, ctx, err);
    }
    if (c)
        mdb_cursor_close(c);
    md_intake_release(&r);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc != MD_OK)
        return rc;
    return mrc == MDB_NOTFOUND ? MD_OK : md_store_err(mrc, err, "intake scan");
}
