/*
 * bulk.h - private to projections/: what the files of bulk mode share (the
 * write-back cache's entries, the format of the log and the spill, the items
 * of a sorted write). Bulk mode itself is described in bulk.c.
 *
 *   bulk.c        loads and stores, the log and the spill, batches, the mode
 *   bulk_cache.c  the write-back cache: (database, key) -> value or tombstone
 *   bulk_sort.c   sorting a batch's operations and writing them to LMDB
 *   rebuild.c     replays, and the helper thread of a parallel replay
 */
#ifndef MD_PROJ_BULK_H
#define MD_PROJ_BULK_H

#include "pj.h"

#define PJ_TOMB UINT32_MAX /* vlen of a delete */
#define PJ_DEAD 0xff       /* db byte of a log entry moved to the cache */
#define CACHE_CHUNK ((size_t)4 << 20)
#define CACHE_CHUNK_MIN ((size_t)64 << 10)
#define CACHE_CLASSES 64 /* free lists of 32..1024-byte entries */

typedef struct pj_cent {
    uint32_t vlen; /* PJ_TOMB: deleted */
    uint32_t vcap;
    uint16_t klen;
    uint8_t db;
    uint8_t cls;       /* size / 16 when it can be reused, else 0 */
    unsigned char b[]; /* key, then vcap bytes for the value */
} pj_cent_t;

typedef struct pj_slot {
    uint64_t h;
    pj_cent_t *e; /* NULL: free */
} pj_slot_t;

struct pj_cache {
    pj_slot_t *slot;
    size_t mask, n;        /* slots - 1; entries */
    unsigned char **chunk; /* the entries live in these */
    size_t nchunk, chunk_cap;
    unsigned char *cur; /* free room of the last chunk */
    size_t left;
    pj_cent_t *freel[CACHE_CLASSES + 1];
    size_t bytes;       /* chunks and slots */
    size_t chunk_bytes; /* size of a chunk: CACHE_CHUNK, smaller under a
                                     * small p->bulk_max (an engine batch's cache) */
};

/* The hash of (db, key) used by the cache and by the groups of a sort. */
static inline uint64_t pj_hash(pj_db_t db, const unsigned char *k, size_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull * ((uint64_t)db + 1) ^ n, w;
    for (; n >= 8; n -= 8, k += 8) {
        memcpy(&w, k, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    w = 0;
    memcpy(&w, k, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0xff51afd7ed558ccdull;
    return h ^ h >> 32;
}

/* Equal bytes, compared a word at a time (keys are short: no call). */
static inline bool bytes_eq(const unsigned char *x, const unsigned char *y, size_t n)
{
    uint64_t u, w;
    for (; n >= 8; n -= 8, x += 8, y += 8) {
        memcpy(&u, x, 8);
        memcpy(&w, y, 8);
        if (u != w)
            return false;
    }
    for (; n; n--)
        if (*x++ != *y++)
            return false;
    return true;
}

/* ---- the log and the spill: db(1) klen(2) vlen(4 BE) key val --------------------------- */

static inline uint32_t ent_vlen(const unsigned char *e)
{
    return (uint32_t)e[3] << 24 | (uint32_t)e[4] << 16 | (uint32_t)e[5] << 8 | e[6];
}

static inline size_t ent_klen(const unsigned char *e)
{
    return (size_t)e[1] << 8 | e[2];
}

static inline const unsigned char *ent_next(const unsigned char *e)
{
    uint32_t vl = ent_vlen(e);
    return e + 7 + ent_klen(e) + (vl == PJ_TOMB ? 0 : vl);
}

/* ---- bulk_cache.c ---- */

/* Frees a cache (NULL: nothing). */
void md__pj_cache_free(struct pj_cache *c);
/* A put (or, @p vlen PJ_TOMB, a delete) in @p p's cache, created when absent;
 * a delete of a database that is complete removes the entry. Aborts on
 * out-of-memory (md_malloc). */
void md__pj_cache_op(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen,
                     const void *val, uint32_t vlen);
/* The entry of (db, key) in @p p's cache (borrowed, valid until the next
 * operation on the cache), or NULL. */
pj_cent_t *md__pj_cache_get(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen);

/* ---- bulk_sort.c ---- */

/* Sorts the operations in @p b (the log or the spill) into @p items, those of
 * database i at [at[i], at[i + 1]); the items point into @p b. Uses only the
 * scratch in @p sortp (made when NULL; a handle's is &p->sort), so two
 * threads may sort at once with a scratch each (bulk.c, "the last log"). */
void md__pj_log_sort(struct pj_sort **sortp, const md_buf_t *b, md_buf_t *items, size_t *at);
/* Sorts the entries of cache @p c into @p items, by database (at); the items
 * point into @p c. */
void md__pj_cache_sort(md_proj_t *p, const struct pj_cache *c, md_buf_t *items, size_t *at);
/* Frees the scratch memory of the sorts (NULL: nothing). */
void md__pj_sort_free(struct pj_sort *s);

/* ---- verify's comparison (bulk_sort.c) ----
 * A handle whose p->cmp is set writes nothing to LMDB: md__pj_batch_write
 * compares each database's sorted writes, as they come, with the same database
 * of the live projections (a read transaction), entry by entry. That proves
 * the rebuild equal to the live projections only when each database is
 * written in key order (each write's keys follow those of the writes before
 * it) and never read back from LMDB; otherwise the comparison is unsure
 * (md__pj_cmp_unsure) and the caller rebuilds into LMDB and compares the
 * databases there. Single-threaded: the writer's handle. */
typedef struct pj_cmp pj_cmp_t;

/* A comparison with the databases @p dbi of @p live (borrowed; both must
 * outlive it). */
pj_cmp_t *md__pj_cmp_new(MDB_txn *live, const MDB_dbi *dbi);
/* The rebuild read a database from LMDB, or wrote out of key order. */
void md__pj_cmp_unsure(pj_cmp_t *c);
/* After the last write: *equal when every database matched to its end and
 * the comparison is sure. MD_ESTORE on an LMDB error of the live side. */
md_err_t md__pj_cmp_end(pj_cmp_t *c, bool *equal, md_error_t *err);
/* Whether it stopped, unsure or on a difference: md__pj_batch_write fails
 * with MD_ESTOP then, and the caller compares in LMDB (which names it). */
bool md__pj_cmp_is_unsure(const pj_cmp_t *c);
/* Frees it (NULL: nothing). */
void md__pj_cmp_free(pj_cmp_t *c);

#endif
