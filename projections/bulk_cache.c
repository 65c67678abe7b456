/*
 * bulk_cache.c - the write-back cache of bulk mode (bulk.c): an open-addressing
 * hash table from (database, key) to a value or a tombstone, its entries
 * carved from 4 MiB chunks.
 *
 * Invariants it keeps:
 *  - one entry per (database, key): a put or delete of a key replaces the
 *    entry's value in place (or moves it to a larger entry), so the cache
 *    holds the last operation on each key;
 *  - linear probing with backward-shift deletion: every entry is reachable
 *    from its home slot without crossing a free slot; the table is at most
 *    three quarters full (it doubles before);
 *  - a delete of a database that is complete (nothing of it in LMDB) removes
 *    the entry; otherwise it leaves a tombstone (vlen PJ_TOMB), since a miss
 *    would read the old value from LMDB;
 *  - freed entries go to a free list of their size class and are reused; the
 *    chunks are freed only with the whole cache (md__pj_cache_free), and a
 *    cache handed to a batch is not changed again, so the batch's items can
 *    point into its entries;
 *  - bytes counts the chunks and slots: what bulk mode weighs against
 *    p->bulk_max.
 * Single-threaded: a cache belongs to one handle or one batch.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bulk.h"

/* Memory of the cache: 2 MiB-aligned and, where the kernel offers it
 * (transparent huge pages on madvise), in huge pages, since the look-ups
 * land anywhere in tens of megabytes and would otherwise miss the TLB. */
static void *big_alloc(size_t n)
{
    void *m = NULL;
    if (n < ((size_t)2 << 20))
        return md_malloc(n);
    if (posix_memalign(&m, (size_t)2 << 20, n) != 0)
        return md_malloc(n);
#ifdef MADV_HUGEPAGE
    madvise(m, n, MADV_HUGEPAGE);
#endif
    return m;
}

void md__pj_cache_free(struct pj_cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nchunk; i++)
        free(c->chunk[i]);
    free(c->chunk);
    free(c->slot);
    free(c);
}

static struct pj_cache *cache_of(md_proj_t *p)
{
    if (p->cache == NULL) {
        struct pj_cache *c = md_calloc(1, sizeof *c);
        c->mask = ((size_t)1 << 14) - 1;
        c->slot = big_alloc((c->mask + 1) * sizeof *c->slot);
        memset(c->slot, 0, (c->mask + 1) * sizeof *c->slot);
        c->bytes = (c->mask + 1) * sizeof *c->slot;
        /* a sixteenth of the bound: an engine batch (8 MiB) holds 512 KiB chunks,
         * below big_alloc's huge pages, so its memory is what it uses */
        c->chunk_bytes = p->bulk_max / 16 < CACHE_CHUNK ? p->bulk_max / 16 : CACHE_CHUNK;
        if (c->chunk_bytes < CACHE_CHUNK_MIN)
            c->chunk_bytes = CACHE_CHUNK_MIN;
        p->cache = c;
    }
    return p->cache;
}

static void cache_grow(struct pj_cache *c)
{
    size_t cap = 2 * (c->mask + 1), mask = cap - 1;
    pj_slot_t *s = big_alloc(cap * sizeof *s);
    memset(s, 0, cap * sizeof *s);
    for (size_t i = 0; i <= c->mask; i++) {
        if (c->slot[i].e == NULL)
            continue;
        size_t j = c->slot[i].h & mask;
        while (s[j].e)
            j = (j + 1) & mask;
        s[j] = c->slot[i];
    }
    free(c->slot);
    c->bytes += (cap - (c->mask + 1)) * sizeof *s;
    c->slot = s;
    c->mask = mask;
}

/* The slot of (db, key): its entry, or the free slot where it would go. */
static pj_slot_t *cache_slot(struct pj_cache *c, uint64_t h, pj_db_t db, const void *key,
                             size_t klen)
{
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        pj_slot_t *s = &c->slot[i];
        if (s->e == NULL ||
            (s->h == h && s->e->db == db && s->e->klen == klen && bytes_eq(s->e->b, key, klen)))
            return s;
    }
}

static pj_cent_t *cent_alloc(struct pj_cache *c, size_t klen, size_t vlen)
{
    /* a quarter more room (and the rounding) lets a record grow in place; a
     * free entry keeps the free list's link in b */
    size_t size = (offsetof(pj_cent_t, b) + klen + vlen + vlen / 4 + 15) & ~(size_t)15;
    if (size < offsetof(pj_cent_t, b) + sizeof(pj_cent_t *))
        size = (offsetof(pj_cent_t, b) + sizeof(pj_cent_t *) + 15) & ~(size_t)15;
    size_t cls = size / 16;
    pj_cent_t *e;
    if (cls <= CACHE_CLASSES && c->freel[cls]) {
        e = c->freel[cls];
        memcpy(&c->freel[cls], e->b, sizeof e);
    } else {
        if (c->left < size) {
            size_t n = size > c->chunk_bytes ? size : c->chunk_bytes;
            if (c->nchunk == c->chunk_cap) {
                c->chunk_cap = c->chunk_cap ? 2 * c->chunk_cap : 64;
                c->chunk = md_realloc(c->chunk, c->chunk_cap * sizeof *c->chunk);
            }
            c->cur = c->chunk[c->nchunk++] = big_alloc(n);
            c->left = n;
            c->bytes += n;
        }
        e = (pj_cent_t *)(void *)c->cur;
        c->cur += size;
        c->left -= size;
    }
    e->klen = (uint16_t)klen;
    e->vcap = (uint32_t)(size - offsetof(pj_cent_t, b) - klen);
    e->cls = (uint8_t)(cls <= CACHE_CLASSES ? cls : 0);
    return e;
}

static void cent_free(struct pj_cache *c, pj_cent_t *e)
{
    if (e->cls) {
        memcpy(e->b, &c->freel[e->cls], sizeof e);
        c->freel[e->cls] = e;
    }
}

/* Sets (db, key) to @p val, or to a tombstone when @p vlen is PJ_TOMB. */
static void cache_set(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen,
                      const void *val, uint32_t vlen)
{
    struct pj_cache *c = cache_of(p);
    pj_slot_t *s = cache_slot(c, h, db, key, klen);
    size_t need = vlen == PJ_TOMB ? 0 : vlen;
    if (s->e == NULL && 4 * (c->n + 1) > 3 * (c->mask + 1)) {
        cache_grow(c);
        s = cache_slot(c, h, db, key, klen);
    }
    pj_cent_t *e = s->e;
    if (e == NULL || e->vcap < need) {
        pj_cent_t *old = e;
        e = cent_alloc(c, klen, need);
        e->db = (uint8_t)db;
        memcpy(e->b, key, klen);
        if (old)
            cent_free(c, old);
        else
            c->n++;
        s->h = h;
        s->e = e;
    }
    e->vlen = vlen;
    if (need)
        memcpy(e->b + klen, val, need);
}

/* Removes (db, key) from the cache (backward-shift deletion). */
static void cache_remove(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen)
{
    struct pj_cache *c = p->cache;
    if (c == NULL)
        return;
    pj_slot_t *s = cache_slot(c, h, db, key, klen);
    if (s->e == NULL)
        return;
    cent_free(c, s->e);
    c->n--;
    size_t i = (size_t)(s - c->slot), j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (c->slot[j].e == NULL)
            break;
        size_t k = c->slot[j].h & c->mask; /* its home: it stays when within (i, j] */
        if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
            continue;
        c->slot[i] = c->slot[j];
        i = j;
    }
    c->slot[i].e = NULL;
}

/* A put (or, @p vlen PJ_TOMB, a delete) in the cache. */
void md__pj_cache_op(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen,
                     const void *val, uint32_t vlen)
{
    if (vlen != PJ_TOMB)
        cache_set(p, h, db, key, klen, val, vlen);
    else if (p->complete[db])
        cache_remove(p, h, db, key, klen);
    else
        cache_set(p, h, db, key, klen, NULL, PJ_TOMB);
}

pj_cent_t *md__pj_cache_get(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen)
{
    if (p->cache == NULL)
        return NULL;
    return cache_slot(p->cache, h, db, key, klen)->e;
}
