/*
 * bulk_sort.c - the sorted writes of bulk mode (bulk.c): the operations of a
 * log, a spill or a cache become items sorted by key, written to LMDB through
 * one cursor per database.
 *
 * Invariants it keeps:
 *  - items are in LMDB's key order (memcmp, then the shorter key first) and,
 *    within one key, in the order the operations were made (by address: the
 *    log and the spill are appended to; a cache holds one entry per key), so
 *    the last operation on a key is the one written, as on the live path;
 *  - the order depends only on the keys, never on how they are grouped for
 *    speed (groups, radix passes, introsort);
 *  - keys after a database's last key are written with MDB_APPEND, the others
 *    in place; a delete after the last key is skipped (the key is not there);
 *  - all of it happens in the caller's write transaction; the scratch memory
 *    (struct pj_sort) is kept from one flush to the next and freed with the
 *    handle's bulk buffers.
 * Single-threaded: the items and scratch belong to one handle or one batch.
 */
#include <stdlib.h>
#include <string.h>

#include "bulk.h"

/*
 * An operation to write is an item: the key, the value after it in memory,
 * and 16 bytes of the key (from off) as two big-endian words, so that sorting
 * compares integers. Keys are ordered as LMDB orders them (memcmp, then the
 * shorter first); operations on one key by address, which is the order they
 * were made in (the log and the spill are appended to; the cache holds one
 * entry per key), so that the last one counts.
 *
 * The log and the spill are sorted by groups: a key's group is its bytes up to
 * the first NUL at offset 4 or later (the id of "epoch(4) id NUL seq ..." and
 * "kind id NUL seq" keys), or the whole key. The groups are few, and within one
 * the keys mostly arrive in order (the seq follows the id), so the groups are
 * sorted, the items placed group by group in arrival order, and only a group
 * that is not in order already is sorted. Any key layout gets the same order;
 * only the speed depends on it.
 */
typedef struct pj_item {
    uint64_t a, b; /* key bytes [off, off + 16), zero-padded */
    const unsigned char *k;
    uint16_t klen, off; /* the items sorted together share [0, off) */
    uint32_t vlen;      /* PJ_TOMB: delete */
} pj_item_t;

#define ITEM_NEW 0x8000u /* in off: the key's group differs from the last */
#define ITEM_OFF(it) ((size_t)((it)->off & ~ITEM_NEW))

/* Up to 8 bytes of @p k as a big-endian word, zero-padded. */
static inline uint64_t be_word(const unsigned char *k, size_t n)
{
    uint64_t w = 0;
    if (n >= 8) {
#if defined(__GNUC__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(&w, k, 8);
        return __builtin_bswap64(w);
#else
        n = 8;
#endif
    }
    for (size_t i = 0; i < 8; i++)
        w = w << 8 | (i < n ? k[i] : 0);
    return w;
}

static void item_set(pj_item_t *it, const unsigned char *k, size_t klen, uint32_t vlen, size_t off)
{
    it->k = k;
    it->klen = (uint16_t)klen;
    it->vlen = vlen;
    it->off = (uint16_t)off;
    it->a = off < klen ? be_word(k + off, klen - off) : 0;
    it->b = off + 8 < klen ? be_word(k + off + 8, klen - off - 8) : 0;
}

/* LMDB's default order: memcmp, then the shorter key first. */
static int raw_cmp(const unsigned char *x, size_t xn, const unsigned char *y, size_t yn)
{
    int c = memcmp(x, y, xn < yn ? xn : yn);
    return c ? c : (xn > yn) - (xn < yn);
}

/* Keys of two items with equal words: the bytes after the window, the length. */
static inline int tail_cmp(const pj_item_t *x, const pj_item_t *y)
{
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    for (size_t i = ITEM_OFF(x) + 16; i < n; i += 8) {
        uint64_t u = be_word(x->k + i, n - i), w = be_word(y->k + i, n - i);
        if (u != w)
            return u < w ? -1 : 1;
    }
    return (x->klen > y->klen) - (x->klen < y->klen);
}

/* Item order; with @p full false on the window (and address) only, a first
 * pass that items_fix completes. */
static inline int item_cmp(const pj_item_t *x, const pj_item_t *y, bool full)
{
    if (x->a != y->a)
        return x->a < y->a ? -1 : 1;
    if (x->b != y->b)
        return x->b < y->b ? -1 : 1;
    int c = full ? tail_cmp(x, y) : 0;
    return c ? c : (x->k > y->k) - (x->k < y->k);
}

static void item_swap(pj_item_t *x, pj_item_t *y)
{
    pj_item_t t = *x;
    *x = *y;
    *y = t;
}

static void item_sift(pj_item_t *v, size_t i, size_t n, bool full)
{
    for (size_t c; (c = 2 * i + 1) < n; i = c) {
        if (c + 1 < n && item_cmp(&v[c], &v[c + 1], full) < 0)
            c++;
        if (item_cmp(&v[i], &v[c], full) >= 0)
            return;
        item_swap(&v[i], &v[c]);
    }
}

/* Introsort: quicksort (median of three), heapsort past a depth, insertion
 * sort for short runs. */
static void item_sort(pj_item_t *v, size_t n, int depth, bool full)
{
    while (n > 16) {
        if (depth-- == 0) {
            for (size_t i = n / 2; i-- > 0;)
                item_sift(v, i, n, full);
            for (size_t i = n - 1; i > 0; i--) {
                item_swap(&v[0], &v[i]);
                item_sift(v, 0, i, full);
            }
            return;
        }
        size_t m = n / 2;
        if (item_cmp(&v[m], &v[0], full) < 0)
            item_swap(&v[m], &v[0]);
        if (item_cmp(&v[n - 1], &v[m], full) < 0) {
            item_swap(&v[n - 1], &v[m]);
            if (item_cmp(&v[m], &v[0], full) < 0)
                item_swap(&v[m], &v[0]);
        }
        pj_item_t pivot = v[m];
        size_t i = 0, j = n - 1;
        for (;;) {
            while (item_cmp(&v[i], &pivot, full) < 0)
                i++;
            while (item_cmp(&pivot, &v[j], full) < 0)
                j--;
            if (i >= j)
                break;
            item_swap(&v[i++], &v[j--]);
        }
        /* [0, j] <= pivot <= [j + 1, n) */
        if (j + 1 < n - j - 1) {
            item_sort(v, j + 1, depth, full);
            v += j + 1, n -= j + 1;
        } else {
            item_sort(v + j + 1, n - j - 1, depth, full);
            n = j + 1;
        }
    }
    for (size_t i = 1; i < n; i++) {
        pj_item_t t = v[i];
        size_t j = i;
        for (; j > 0 && item_cmp(&t, &v[j - 1], full) < 0; j--)
            v[j] = v[j - 1];
        v[j] = t;
    }
}

static int sort_depth(size_t n)
{
    int depth = 0;
    for (; n > 1; n >>= 1)
        depth += 2;
    return depth;
}

/* Stable LSD radix sort of @p v on the window, one pass per byte that is
 * not the same in every item; @p tmp has room for @p n items. */
static void radix_sort(pj_item_t *v, pj_item_t *tmp, size_t n)
{
    /* digit d (0 least significant): byte d of b for d < 8, byte d - 8 of a */
#define DIGIT_(it, d) ((size_t)(((d) < 8 ? (it).b >> (8 * (d)) : (it).a >> (8 * ((d)-8))) & 0xff))
    uint64_t da = 0, db = 0;
    size_t cnt[16][256];
    int digit[16], nd = 0;
    for (size_t i = 1; i < n; i++)
        da |= v[i].a ^ v[0].a, db |= v[i].b ^ v[0].b;
    for (int d = 0; d < 16; d++)
        if (((d < 8 ? db >> (8 * d) : da >> (8 * (d - 8))) & 0xff) != 0)
            digit[nd++] = d;
    if (nd == 0)
        return;
    memset(cnt, 0, sizeof cnt[0] * (size_t)nd);
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < nd; j++)
            cnt[j][DIGIT_(v[i], digit[j])]++;
    pj_item_t *src = v, *dst = tmp;
    for (int j = 0; j < nd; j++) {
        size_t sum = 0;
        for (int c = 0; c < 256; c++) {
            size_t t = cnt[j][c];
            cnt[j][c] = sum;
            sum += t;
        }
        for (size_t i = 0; i < n; i++)
            dst[cnt[j][DIGIT_(src[i], digit[j])]++] = src[i];
        pj_item_t *t = src;
        src = dst, dst = t;
    }
    if (src != v)
        memcpy(v, src, n * sizeof *v);
#undef DIGIT_
}

/* Sorts items that share their bytes before the window: nothing when they are
 * in order already, else on the window (radix, stable: equal windows keep
 * their order), then each run of equal windows on the whole key. @p tmp has
 * room for @p n items. */
static void items_sort(pj_item_t *v, pj_item_t *tmp, size_t n)
{
    size_t i = 1;
    while (i < n && item_cmp(&v[i - 1], &v[i], true) < 0)
        i++;
    if (i >= n)
        return;
    if (n <= 32) {
        item_sort(v, n, sort_depth(n), true);
        return;
    }
    radix_sort(v, tmp, n);
    for (size_t j, k = 0; k < n; k = j) {
        bool sorted = true;
        for (j = k + 1; j < n && v[j].a == v[k].a && v[j].b == v[k].b; j++)
            sorted = sorted && item_cmp(&v[j - 1], &v[j], true) < 0;
        if (!sorted)
            item_sort(v + k, j - k, sort_depth(j - k), true);
    }
}

/* Whether @p y, the item after @p x, has the same key. */
static inline bool same_key(const pj_item_t *x, const pj_item_t *y)
{
    return !(y->off & ITEM_NEW) && x->klen == y->klen && x->a == y->a && x->b == y->b &&
           tail_cmp(x, y) == 0;
}

/* Writes sorted items to @p db: those after its last key appended, the
 * others in place; of the operations on one key the last. */
static md_err_t write_sorted(md_proj_t *p, MDB_txn *txn, pj_db_t db, const pj_item_t *v, size_t n,
                             md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, d;
    size_t from = 0; /* items [from, n) follow the last key */
    int mrc = mdb_cursor_open(txn, p->dbi[db], &cur);
    if (mrc == MDB_SUCCESS && !p->complete[db]) {
        mrc = mdb_cursor_get(cur, &k, &d, MDB_LAST);
        if (mrc == MDB_SUCCESS) {
            size_t lo = 0, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (raw_cmp(v[mid].k, v[mid].klen, k.mv_data, k.mv_size) <= 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            from = lo;
        } else if (mrc == MDB_NOTFOUND) {
            mrc = MDB_SUCCESS;
        }
    }
    for (size_t i = 0; i < n && mrc == MDB_SUCCESS; i++) {
#if defined(__GNUC__)
        /* the items are in key order, their bytes in the order of the
         * operations: fetch ahead, or each key costs a cache miss */
        if (i + 8 < n)
            __builtin_prefetch(v[i + 8].k);
#endif
        if (i + 1 < n && same_key(&v[i], &v[i + 1]))
            continue; /* a later operation on the key counts */
        k.mv_data = (void *)v[i].k, k.mv_size = v[i].klen;
        if (v[i].vlen == PJ_TOMB) {
            if (i >= from)
                continue; /* after the last key: not there */
            mrc = mdb_cursor_get(cur, &k, &d, MDB_SET);
            mrc = mrc == MDB_SUCCESS ? mdb_cursor_del(cur, 0) : mrc == MDB_NOTFOUND ? 0 : mrc;
            continue;
        }
        d.mv_data = (void *)(v[i].k + v[i].klen), d.mv_size = v[i].vlen;
        mrc = mdb_cursor_put(cur, &k, &d, i >= from ? MDB_APPEND : 0);
    }
    mdb_cursor_close(cur);
    return md_store_err(mrc, err, "projection bulk write");
}

static pj_item_t *items_reserve(md_buf_t *items, size_t n)
{
    md_buf_reset(items);
    pj_item_t *v = (pj_item_t *)(void *)md_buf_reserve(items, n ? n * sizeof(pj_item_t) : 1);
    items->len = n * sizeof(pj_item_t);
    return v;
}

/* ---- verify's comparison (bulk.h) ---- */

typedef struct pj_cmp_db {
    MDB_cursor *cur;                /* over the live database, on the next entry to match */
    int mrc;                        /* of its last move: MDB_SUCCESS while on an entry */
    MDB_val k, v;                   /* that entry */
    unsigned char last[PJ_KEY_MAX]; /* the last key compared (written) */
    size_t last_len;
} pj_cmp_db_t;

struct pj_cmp {
    MDB_txn *live;
    const MDB_dbi *dbi;
    pj_cmp_db_t db[PJ_DB_COUNT_];
    bool differs; /* an entry differs (the slow path names it) */
    bool unsure;  /* written out of order or read back: compare in LMDB */
};

pj_cmp_t *md__pj_cmp_new(MDB_txn *live, const MDB_dbi *dbi)
{
    pj_cmp_t *c = md_calloc(1, sizeof *c);
    c->live = live;
    c->dbi = dbi;
    return c;
}

void md__pj_cmp_unsure(pj_cmp_t *c)
{
    c->unsure = true;
}

bool md__pj_cmp_is_unsure(const pj_cmp_t *c)
{
    return c->unsure || c->differs;
}

void md__pj_cmp_free(pj_cmp_t *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < PJ_DB_COUNT_; i++)
        if (c->db[i].cur)
            mdb_cursor_close(c->db[i].cur);
    free(c);
}

/* Puts the live cursor of @p db on its first entry (once). */
static int cmp_open(pj_cmp_t *c, pj_db_t db)
{
    pj_cmp_db_t *d = &c->db[db];
    if (d->cur)
        return MDB_SUCCESS;
    int mrc = mdb_cursor_open(c->live, c->dbi[db], &d->cur);
    if (mrc != MDB_SUCCESS)
        return mrc;
    d->mrc = mdb_cursor_get(d->cur, &d->k, &d->v, MDB_FIRST);
    return d->mrc == MDB_NOTFOUND ? MDB_SUCCESS : d->mrc;
}

/* Whether the live cursor of @p d is on key @p k with value @p val. */
static bool cmp_same(const pj_cmp_db_t *d, const unsigned char *k, size_t klen,
                     const unsigned char *val, size_t vlen)
{
    return d->mrc == MDB_SUCCESS && d->k.mv_size == klen && d->v.mv_size == vlen &&
           memcmp(d->k.mv_data, k, klen) == 0 && memcmp(d->v.mv_data, val, vlen) == 0;
}

/* The comparison's side of write_sorted: the same items, the same last
 * operation per key, matched with the live entries in order. */
static md_err_t compare_sorted(pj_cmp_t *c, pj_db_t db, const pj_item_t *v, size_t n,
                               md_error_t *err)
{
    pj_cmp_db_t *d = &c->db[db];
    if (db == PJ_DB_META || (d->cur && raw_cmp(v[0].k, v[0].klen, d->last, d->last_len) <= 0))
        c->unsure = true; /* not an append: the order of the whole is unknown */
    if (c->unsure)
        return md_error_set(err, MD_ESTOP, "verify: the rebuild compares in LMDB");
    int mrc = cmp_open(c, db);
    for (size_t i = 0; i < n && mrc == MDB_SUCCESS && !c->differs; i++) {
        if ((i + 1 < n && same_key(&v[i], &v[i + 1])) || v[i].vlen == PJ_TOMB)
            continue; /* a later operation counts; a delete after the last key: absent */
        if (!cmp_same(d, v[i].k, v[i].klen, v[i].k + v[i].klen, v[i].vlen)) {
            c->differs = true;
            break;
        }
        d->mrc = mdb_cursor_get(d->cur, &d->k, &d->v, MDB_NEXT);
        mrc = d->mrc == MDB_NOTFOUND ? MDB_SUCCESS : d->mrc;
    }
    memcpy(d->last, v[n - 1].k, v[n - 1].klen);
    d->last_len = v[n - 1].klen;
    if (mrc == MDB_SUCCESS && c->differs) /* the slow path names it: stop here */
        return md_error_set(err, MD_ESTOP, "verify: the rebuild differs");
    return md_store_err(mrc, err, "verify: live projection scan");
}

md_err_t md__pj_cmp_end(pj_cmp_t *c, bool *equal, md_error_t *err)
{
    int mrc = MDB_SUCCESS;
    for (int db = 0; db < PJ_DB_META && mrc == MDB_SUCCESS && !c->differs; db++) {
        mrc = cmp_open(c, (pj_db_t)db);
        c->differs = mrc == MDB_SUCCESS && c->db[db].mrc == MDB_SUCCESS; /* live has more */
    }
    *equal = mrc == MDB_SUCCESS && !c->differs && !c->unsure;
    return md_store_err(mrc, err, "verify: live projection scan");
}

/* Writes the sorted items of each database (those of database i are
 * [at[i], at[i + 1])), or compares them (p->cmp). */
static md_err_t write_dbs(md_proj_t *p, MDB_txn *txn, const pj_item_t *v, const size_t *at,
                          md_error_t *err)
{
    md_err_t rc = MD_OK;
    for (int db = 0; db < PJ_DB_COUNT_ && rc == MD_OK; db++) {
        if (at[db + 1] == at[db])
            continue;
        size_t n = at[db + 1] - at[db];
        rc = p->cmp ? compare_sorted(p->cmp, (pj_db_t)db, v + at[db], n, err)
                    : write_sorted(p, txn, (pj_db_t)db, v + at[db], n, err);
        p->complete[db] = false;
    }
    return rc;
}

/* ---- groups of the log and the spill ---- */

typedef struct pj_group {
    const unsigned char *k; /* a key of the group: its first len bytes */
    uint32_t len, n;        /* bytes; items */
    size_t at;              /* where its items go */
    uint8_t db;
} pj_group_t;

typedef struct pj_groups {
    pj_group_t *g;
    size_t n, cap;
    uint32_t *slot; /* group index + 1; 0: free */
    size_t mask;
} pj_groups_t;

static size_t group_len(const unsigned char *k, size_t klen)
{
    const unsigned char *z = klen > 4 ? memchr(k + 4, 0, klen - 4) : NULL;
    return z ? (size_t)(z - k) + 1 : klen;
}

static void groups_rehash(pj_groups_t *gs, size_t slots)
{
    if (gs->mask + 1 != slots || gs->slot == NULL) {
        free(gs->slot);
        gs->slot = md_malloc(slots * sizeof *gs->slot);
        gs->mask = slots - 1;
    }
    memset(gs->slot, 0, slots * sizeof *gs->slot);
    for (size_t i = 0; i < gs->n; i++) {
        size_t j = pj_hash(gs->g[i].db, gs->g[i].k, gs->g[i].len) & gs->mask;
        while (gs->slot[j])
            j = (j + 1) & gs->mask;
        gs->slot[j] = (uint32_t)i + 1;
    }
}

/* Slots for the groups of a sort of at most @p n items, the last sort of the
 * scratch having had @p last groups: twice that (load at most a half), so
 * that a run of similar sorts never rehashes as it fills, but no more than
 * @p n groups need; at least 4096. */
static size_t groups_slots(size_t last, size_t n)
{
    size_t want = last < n ? last : n, slots = 4096;
    while (slots < 2 * want)
        slots *= 2;
    return slots;
}

/* Scratch memory of the flushes, kept from one to the next (fresh memory
 * costs a page fault every 4 KiB). */
struct pj_sort {
    pj_groups_t gs;
    md_buf_t gid, tmp, gv, gtmp;
};

static void *scratch(md_buf_t *b, size_t bytes)
{
    md_buf_reset(b);
    return md_buf_reserve(b, bytes ? bytes : 1);
}

/* The sort scratch in @p slot, made when absent. */
static struct pj_sort *scratch_of(struct pj_sort **slot)
{
    if (*slot == NULL) {
        struct pj_sort *s = md_calloc(1, sizeof *s);
        md_buf_init(&s->gid);
        md_buf_init(&s->tmp);
        md_buf_init(&s->gv);
        md_buf_init(&s->gtmp);
        *slot = s;
    }
    return *slot;
}

static struct pj_sort *sort_of(md_proj_t *p)
{
    return scratch_of(&p->sort);
}

void md__pj_sort_free(struct pj_sort *s)
{
    if (s == NULL)
        return;
    free(s->gs.g);
    free(s->gs.slot);
    md_buf_release(&s->gid);
    md_buf_release(&s->tmp);
    md_buf_release(&s->gv);
    md_buf_release(&s->gtmp);
    free(s);
}

/* The index of the group of @p k in @p db (added when new). */
static uint32_t group_of(pj_groups_t *gs, pj_db_t db, const unsigned char *k, size_t klen)
{
    size_t len = group_len(k, klen);
    size_t j = pj_hash(db, k, len) & gs->mask;
    for (; gs->slot[j]; j = (j + 1) & gs->mask) {
        pj_group_t *g = &gs->g[gs->slot[j] - 1];
        if (g->db == db && g->len == len && bytes_eq(g->k, k, len)) {
            g->n++;
            return gs->slot[j] - 1;
        }
    }
    if (gs->n == gs->cap) {
        gs->cap = gs->cap ? 2 * gs->cap : 1024;
        gs->g = md_realloc(gs->g, gs->cap * sizeof *gs->g);
    }
    gs->g[gs->n] = (pj_group_t){.k = k, .len = (uint32_t)len, .n = 1, .db = (uint8_t)db};
    gs->slot[j] = (uint32_t)++gs->n;
    if (2 * gs->n > gs->mask + 1)
        groups_rehash(gs, 2 * (gs->mask + 1));
    return (uint32_t)gs->n - 1;
}

/* Orders the groups (by database, then key) and sets where each one's items
 * go and where each database's begin (at). */
static void groups_place(struct pj_sort *so, size_t *at)
{
    pj_groups_t *gs = &so->gs;
    size_t cnt[PJ_DB_COUNT_ + 1] = {0}, fill[PJ_DB_COUNT_];
    for (size_t g = 0; g < gs->n; g++)
        cnt[gs->g[g].db + 1]++;
    for (int d = 0; d < PJ_DB_COUNT_; d++)
        cnt[d + 1] += cnt[d];
    for (int d = 0; d < PJ_DB_COUNT_; d++)
        fill[d] = cnt[d];
    pj_item_t *v = scratch(&so->gv, gs->n * sizeof *v);
    pj_item_t *tmp = scratch(&so->gtmp, gs->n * sizeof *v);
    for (size_t g = 0; g < gs->n; g++) /* a group as an item: its key, its index */
        item_set(&v[fill[gs->g[g].db]++], gs->g[g].k, gs->g[g].len, (uint32_t)g, 0);
    size_t pos = 0;
    for (int d = 0; d < PJ_DB_COUNT_; d++) {
        items_sort(v + cnt[d], tmp, cnt[d + 1] - cnt[d]);
        at[d] = pos;
        for (size_t i = cnt[d]; i < cnt[d + 1]; i++) {
            pj_group_t *g = &gs->g[v[i].vlen];
            g->at = pos;
            pos += g->n;
        }
    }
    at[PJ_DB_COUNT_] = pos;
}

/* Room for @p i + 1 group ids in @p gid (a scratch buffer of uint32_t). */
static uint32_t *gid_room(md_buf_t *gid, size_t i)
{
    gid->len = i * sizeof(uint32_t);
    md_buf_reserve(gid, sizeof(uint32_t));
    return (uint32_t *)(void *)gid->p;
}

/* Sorts the operations in @p b (the log or the spill) into @p items, those of
 * database i at [at[i], at[i + 1]). One pass over @p b notes each live entry's
 * group (and so counts them); a second places the items group by group. */
void md__pj_log_sort(struct pj_sort **sortp, const md_buf_t *b, md_buf_t *items, size_t *at)
{
    struct pj_sort *so = scratch_of(sortp);
    size_t n = 0, big = 0, i = 0;
    const unsigned char *end = b->p + b->len, *e;
    /* at least 8 bytes an entry: db, lengths and a key byte */
    size_t slots = groups_slots(so->gs.n, b->len / 8);
    so->gs.n = 0;
    groups_rehash(&so->gs, slots);
    md_buf_reset(&so->gid);
    uint32_t *gid = (uint32_t *)(void *)so->gid.p;
    size_t cap = so->gid.cap / sizeof *gid;
    for (e = b->p; e < end; e = ent_next(e)) {
        if (e[0] >= PJ_DB_COUNT_)
            continue;
        if (n == cap) {
            gid = gid_room(&so->gid, n);
            cap = so->gid.cap / sizeof *gid;
        }
        gid[n++] = group_of(&so->gs, e[0], e + 7, ent_klen(e));
    }
    groups_place(so, at);
    pj_item_t *v = items_reserve(items, n);
    i = 0;
    for (e = b->p; e < end; e = ent_next(e)) {
        if (e[0] >= PJ_DB_COUNT_)
            continue;
        pj_group_t *g = &so->gs.g[gid[i++]];
        item_set(&v[g->at++], e + 7, ent_klen(e), ent_vlen(e), g->len);
    }
    for (size_t g = 0; g < so->gs.n; g++)
        big = so->gs.g[g].n > big ? so->gs.g[g].n : big;
    pj_item_t *tmp = scratch(&so->tmp, big * sizeof *tmp);
    for (size_t g = 0; g < so->gs.n; g++) {
        pj_item_t *first = v + so->gs.g[g].at - so->gs.g[g].n;
        items_sort(first, tmp, so->gs.g[g].n);
        first->off |= ITEM_NEW;
    }
}

/* Sorts the entries of cache @p c into @p items, by database (at). */
void md__pj_cache_sort(md_proj_t *p, const struct pj_cache *c, md_buf_t *items, size_t *at)
{
    size_t fill[PJ_DB_COUNT_];
    memset(at, 0, (PJ_DB_COUNT_ + 1) * sizeof *at);
    for (size_t i = 0; i <= c->mask; i++)
        if (c->slot[i].e)
            at[c->slot[i].e->db + 1]++;
    for (int i = 0; i < PJ_DB_COUNT_; i++)
        at[i + 1] += at[i];
    for (int i = 0; i < PJ_DB_COUNT_; i++)
        fill[i] = at[i];
    pj_item_t *v = items_reserve(items, c->n);
    for (size_t i = 0; i <= c->mask; i++) {
        const pj_cent_t *e = c->slot[i].e;
        if (e)
            item_set(&v[fill[e->db]++], e->b, e->klen, e->vlen, 0);
    }
    pj_item_t *tmp = scratch(&sort_of(p)->tmp, c->n * sizeof *tmp);
    for (int db = 0; db < PJ_DB_COUNT_; db++)
        items_sort(v + at[db], tmp, at[db + 1] - at[db]);
}


md_err_t md__pj_batch_write(md_proj_t *p, MDB_txn *txn, pj_batch_t *b, md_error_t *err)
{
    if (b->unsorted) { /* a helper's log or spill, sorted with the writer's scratch */
        md__pj_log_sort(&p->sort, &b->data, &b->items, b->at);
        b->unsorted = false;
        p->sorts[1]++;
    }
    return write_dbs(p, txn, (const pj_item_t *)(const void *)b->items.p, b->at, err);
}
