/*
 * epoch.c - epoch-led index keys and their paged scan (see epoch.h).
 */
#include <string.h>

#include "epoch.h"

typedef struct escan {
    const unsigned char *head;
    size_t hlen;
    const char *id;
    size_t idn; /* strlen(id) + 1: the id and its NUL */
} escan_t;

static void put_head(pj_key_t *k, const escan_t *q, uint64_t epoch)
{
    md__pj_key_init(k);
    for (size_t i = 0; i < q->hlen; i++)
        md__pj_key_byte(k, q->head[i]);
    for (int i = 3; i >= 0; i--)
        md__pj_key_byte(k, (unsigned char)(epoch >> (8 * i)));
}

void md__pj_epoch_key(pj_key_t *k, const void *head, size_t hlen, uint64_t seq, const char *id)
{
    escan_t q = {head, hlen, id, 0};
    put_head(k, &q, seq >> PJ_EPOCH_BITS);
    md__pj_key_str(k, id);
}

/* Whether @p k is under the head at all (the end of the scan when not). */
static bool under_head(const MDB_val *k, const escan_t *q)
{
    return k->mv_size >= q->hlen + 4 &&
           (q->hlen == 0 || memcmp(k->mv_data, q->head, q->hlen) == 0); /* no NULL to memcmp */
}

static uint32_t key_epoch(const MDB_val *k, const escan_t *q)
{
    const unsigned char *b = (const unsigned char *)k->mv_data + q->hlen;
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Whether @p k is a key of the scanned id (in any epoch). */
static bool key_is_ours(const MDB_val *k, const escan_t *q)
{
    return under_head(k, q) && k->mv_size > q->hlen + 4 + q->idn &&
           memcmp((const unsigned char *)k->mv_data + q->hlen + 4, q->id, q->idn) == 0;
}

/* Positions @p cur on the first key of the id in @p epoch or later. */
static int seek_epoch(MDB_cursor *cur, const escan_t *q, uint64_t epoch, MDB_val *k, MDB_val *v,
                      pj_key_t *key)
{
    while (epoch <= UINT32_MAX) {
        put_head(key, q, epoch);
        md__pj_key_str(key, q->id);
        k->mv_data = key->b, k->mv_size = key->n;
        int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
        if (rc != MDB_SUCCESS || !under_head(k, q))
            return rc == MDB_SUCCESS ? MDB_NOTFOUND : rc;
        if (key_epoch(k, q) == epoch && key_is_ours(k, q))
            return MDB_SUCCESS;
        /* none of ours left in this epoch; the epochs before the key's hold no keys */
        epoch = key_epoch(k, q) == epoch ? epoch + 1 : key_epoch(k, q);
    }
    return MDB_NOTFOUND;
}

/* Moves @p cur from a key that is not ours, met after keys of ours in
 * @p epoch, to our next key. */
static int next_epoch(MDB_cursor *cur, const escan_t *q, uint32_t epoch, MDB_val *k, MDB_val *v,
                      pj_key_t *key)
{
    if (!under_head(k, q))
        return MDB_NOTFOUND;
    uint32_t e = key_epoch(k, q);
    return seek_epoch(cur, q, e == epoch ? (uint64_t)epoch + 1 : e, k, v, key);
}

/* Positions @p cur after the key named by a page cursor (hex of that key). */
static int seek_after(MDB_cursor *cur, const escan_t *q, const char *hex, MDB_val *k, MDB_val *v,
                      unsigned char *buf, uint32_t *epoch, int *bad)
{
    size_t n = 0;
    if (md__pj_unhex(hex, buf, PJ_KEY_MAX, &n) != 0) {
        *bad = 1;
        return MDB_NOTFOUND;
    }
    k->mv_data = buf, k->mv_size = n;
    if (!key_is_ours(k, q)) {
        *bad = 1;
        return MDB_NOTFOUND;
    }
    *epoch = key_epoch(k, q);
    int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
    if (rc == MDB_SUCCESS && k->mv_size == n && memcmp(k->mv_data, buf, n) == 0)
        rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
    return rc;
}

md_err_t md__pj_epoch_scan(MDB_txn *txn, MDB_dbi dbi, const void *head, size_t hlen, const char *id,
                           md_proj_page_t *page, pj_visit_fn fn, void *ctx, md_error_t *err)
{
    escan_t q = {head, hlen, id, strlen(id) + 1};
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    pj_key_t key;
    unsigned char buf[PJ_KEY_MAX], last[PJ_KEY_MAX];
    size_t last_n = 0;
    uint64_t count = 0;
    uint32_t epoch = 0;
    int bad = 0;
    md_err_t rc = MD_OK;
    page->next[0] = '\0';
    if (hlen + 4 + q.idn + 8 > PJ_KEY_MAX)
        return md_error_set(err, MD_EINVAL, "id of %zu bytes is too long", q.idn - 1);
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "projection cursor");
    mrc = page->cursor && *page->cursor
              ? seek_after(cur, &q, page->cursor, &k, &v, buf, &epoch, &bad)
              : seek_epoch(cur, &q, 0, &k, &v, &key);
    while (mrc == MDB_SUCCESS && rc == MD_OK) {
        if (!key_is_ours(&k, &q)) {
            mrc = next_epoch(cur, &q, epoch, &k, &v, &key);
            continue;
        }
        epoch = key_epoch(&k, &q);
        if (page->limit && count == page->limit) {
            md_hex(last, last_n, page->next);
            break;
        }
        bool emitted = false;
        rc = fn(&k, &v, ctx, &emitted, err);
        if (emitted) {
            count++;
            last_n = k.mv_size;
            memcpy(last, k.mv_data, last_n);
        }
        if (rc == MD_OK)
            mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    return md__pj_scan_result(rc, mrc, bad, page, err);
}
