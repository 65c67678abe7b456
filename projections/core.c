/*
 * core.c - helpers shared by the projections (see pj.h): event types, a
 * one-pass reader of the event data map, the record codec (varints; the
 * format is under "records"), keys, UTC days, JSON helpers and the paged
 * prefix scan used by every list query; and bulk mode, in which replays
 * gather their writes and write them sorted.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "epoch.h"
#include "pj.h"

_Static_assert(PJ_SPILL_EVENTS % (1u << PJ_EPOCH_BITS) == 0,
               "the spill is written at epoch boundaries");

/* ---- event types --------------------------------------------------------- */

#define PJ_TYPE_NAME_(n) #n,
static const char *const type_names[PJ_T_COUNT_] = {PJ_TYPES(PJ_TYPE_NAME_)};
#undef PJ_TYPE_NAME_

static int cmp_type(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

pj_type_t md__pj_type(const char *s)
{
    const char *const *hit = bsearch(s, type_names, PJ_T_COUNT_, sizeof type_names[0], cmp_type);
    return hit ? (pj_type_t)(hit - type_names) : PJ_T_UNKNOWN;
}

const char *md__pj_type_name(pj_type_t t)
{
    return t >= 0 && t < PJ_T_COUNT_ ? type_names[t] : "";
}

/* ---- msgpack: one pass over a flat map -------------------------------------- */

typedef struct mp {
    const unsigned char *p, *end;
} mp_t;

static int mp_need(const mp_t *m, size_t n)
{
    return (size_t)(m->end - m->p) >= n ? 0 : -1;
}

static uint64_t mp_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads a big-endian length of @p n bytes after the type byte. */
static int mp_len(mp_t *m, size_t n, uint32_t *len)
{
    if (mp_need(m, 1 + n))
        return -1;
    *len = (uint32_t)mp_be(m->p + 1, n);
    m->p += 1 + n;
    return 0;
}

static int mp_str(mp_t *m, const char **s, uint32_t *len)
{
    if (mp_need(m, 1))
        return -1;
    unsigned c = *m->p;
    int rc = c >= 0xa0 && c <= 0xbf ? (*len = c & 0x1f, m->p++, 0)
             : c == 0xd9            ? mp_len(m, 1, len)
             : c == 0xda            ? mp_len(m, 2, len)
             : c == 0xdb            ? mp_len(m, 4, len)
                                    : -1;
    if (rc || mp_need(m, *len))
        return -1;
    *s = (const char *)m->p;
    m->p += *len;
    return 0;
}

static int mp_skip(mp_t *m, int depth);

/* Skips @p n values (array items, or map keys and values). */
static int mp_skip_n(mp_t *m, uint64_t n, int depth)
{
    for (uint64_t i = 0; i < n; i++)
        if (mp_skip(m, depth + 1))
            return -1;
    return 0;
}

/* Sizes of the fixed-width types 0xc0..0xdf (data bytes after the type byte),
 * -1 for the variable ones handled in mp_skip. */
static const signed char fixed_size[32] = {
    0, -1, 0, 0, -1, -1, -1, -1, -1, -1, 4, 8, 1, 2, 4, 8,
    1, 2, 4, 8, 2, 3, 5, 9, 17, -1, -1, -1, -1, -1, -1, -1,
};

static int mp_skip(mp_t *m, int depth)
{
    uint32_t n;
    const char *s;
    if (depth > 32 || mp_need(m, 1))
        return -1;
    unsigned c = *m->p;
    if (c <= 0x7f || c >= 0xe0)
        return m->p++, 0;
    if (c <= 0x8f)
        return m->p++, mp_skip_n(m, 2u * (c & 0xf), depth);
    if (c <= 0x9f)
        return m->p++, mp_skip_n(m, c & 0xf, depth);
    if (c <= 0xbf || c == 0xd9 || c == 0xda || c == 0xdb)
        return mp_str(m, &s, &n);
    if (fixed_size[c - 0xc0] >= 0) {
        if (mp_need(m, 1 + (size_t)fixed_size[c - 0xc0]))
            return -1;
        m->p += 1 + fixed_size[c - 0xc0];
        return 0;
    }
    switch (c) {
    case 0xc4: case 0xc5: case 0xc6: /* bin */
        if (mp_len(m, (size_t)1 << (c - 0xc4), &n) || mp_need(m, n))
            return -1;
        m->p += n;
        return 0;
    case 0xc7: case 0xc8: case 0xc9: /* ext: length, type byte, data */
        if (mp_len(m, (size_t)1 << (c - 0xc7), &n) || mp_need(m, (size_t)n + 1))
            return -1;
        m->p += (size_t)n + 1;
        return 0;
    case 0xdc: case 0xdd:
        return mp_len(m, c == 0xdc ? 2 : 4, &n) ? -1 : mp_skip_n(m, n, depth);
    case 0xde: case 0xdf:
        return mp_len(m, c == 0xde ? 2 : 4, &n) ? -1 : mp_skip_n(m, 2ull * n, depth);
    default:
        return -1;
    }
}

/* Reads an integer value, or fails leaving the cursor unchanged. */
static int mp_int(mp_t *m, int64_t *v)
{
    unsigned c = *m->p;
    if (c <= 0x7f || c >= 0xe0) {
        *v = (int8_t)c;
        if (c <= 0x7f)
            *v = c;
        m->p++;
        return 0;
    }
    static const unsigned char width[8] = {1, 2, 4, 8, 1, 2, 4, 8};
    if (c < 0xcc || c > 0xd3 || mp_need(m, 1 + (size_t)width[c - 0xcc]))
        return -1;
    size_t w = width[c - 0xcc];
    uint64_t u = mp_be(m->p + 1, w);
    if (c >= 0xd0 && w < 8 && (u >> (8 * w - 1)))
        u |= ~(uint64_t)0 << (8 * w); /* sign-extend */
    if (c == 0xcf && u > INT64_MAX)
        return -1;
    *v = (int64_t)u;
    m->p += 1 + w;
    return 0;
}

static int mp_value(mp_t *m, pj_field_t *f)
{
    unsigned c = *m->p;
    f->kind = PJ_V_OTHER;
    if (c == 0xc0)
        return f->kind = PJ_V_NIL, m->p++, 0;
    if (c == 0xc2 || c == 0xc3)
        return f->kind = PJ_V_BOOL, f->i = c == 0xc3, m->p++, 0;
    if (mp_int(m, &f->i) == 0)
        return f->kind = PJ_V_INT, 0;
    if ((c >= 0xa0 && c <= 0xbf) || c == 0xd9 || c == 0xda || c == 0xdb) {
        f->kind = PJ_V_STR;
        return mp_str(m, &f->s, &f->slen);
    }
    return mp_skip(m, 0);
}

int md__pj_fields_parse(pj_fields_t *fs, const void *data, size_t len)
{
    mp_t m = {data, (const unsigned char *)data + len};
    uint32_t n;
    fs->n = 0;
    if (mp_need(&m, 1))
        return -1;
    unsigned c = *m.p;
    if (c >= 0x80 && c <= 0x8f)
        n = c & 0xf, m.p++;
    else if ((c != 0xde && c != 0xdf) || mp_len(&m, c == 0xde ? 2 : 4, &n))
        return -1;
    if (n > MD_DATA_FIELDS_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        pj_field_t *f = &fs->f[i];
        if (mp_str(&m, &f->key, &f->klen) || mp_need(&m, 1) || mp_value(&m, f))
            return -1;
    }
    fs->n = n;
    return 0;
}

/* ---- field readers ------------------------------------------------------------- */

int64_t md__pj_lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int64_t)i;
    return -1;
}

int64_t md__pj_enum(const pj_ctx_t *c, const char *key, const char *const *names, size_t n)
{
    const pj_field_t *f = md__pj_field(c, key);
    if (f == NULL || f->kind != PJ_V_STR)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == f->slen && memcmp(names[i], f->s, f->slen) == 0)
            return (int64_t)i;
    return -1;
}

/* ---- records --------------------------------------------------------------------- */

/* Packed: each int64_t of the numeric prefix as a varint (LEB128: 7 bits a
 * byte, low first, minimal, at most 10 bytes) of zigzag(v) + 1, wrapping, so
 * PJ_NONE (INT64_MIN) is the byte 0x00, 0 is 0x01 and small magnitudes take
 * one or two bytes; then each string as a varint length and its bytes. The
 * prefix is read as whole 8-byte words (every layout's prefix is int64_t
 * fields); a prefix of fixed % 8 more bytes would keep those as they are in
 * memory. Deterministic: records are zeroed before they are filled, so equal
 * records are equal bytes. */

#define PJ_VARINT_MAX 10


static uint64_t pj_zigzag1(int64_t v)
{
    uint64_t u = (uint64_t)v;
    return ((u << 1) ^ (v < 0 ? UINT64_MAX : 0)) + 1u;
}

static int64_t pj_unzigzag1(uint64_t z)
{
    uint64_t u = z - 1u;
    return (int64_t)((u >> 1) ^ (0u - (u & 1u)));
}

static unsigned char *pj_put_varint(unsigned char *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *w++ = (unsigned char)v;
    return w;
}

/* A minimal varint of at most 10 bytes that fits 64 bits; -1 when truncated,
 * overlong or too large. */
static int pj_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t x = 0;
    if (*p < end && **p < 0x80) { /* one byte: most fields */
        *v = *(*p)++;
        return 0;
    }
    for (int n = 0; n < PJ_VARINT_MAX; n++) {
        if (*p == end)
            return -1;
        unsigned char b = *(*p)++;
        if (n == PJ_VARINT_MAX - 1 && b > 1)
            return -1;                    /* beyond 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * n);
        if (!(b & 0x80)) {
            *v = x;
            return b == 0 && n > 0 ? -1 : 0;
        }
    }
    return -1;
}

void md__pj_pack(const pj_layout_t *l, const void *rec, md_buf_t *out)
{
    const unsigned char *r = rec;
    size_t words = l->fixed / 8, tail = l->fixed % 8;
    md_buf_reset(out);
    unsigned char *w = md_buf_reserve(out, words * PJ_VARINT_MAX + tail), *start = w;
    for (size_t i = 0; i < words; i++) {
        int64_t v;
        memcpy(&v, r + 8 * i, sizeof v);
        w = pj_put_varint(w, pj_zigzag1(v));
    }
    memcpy(w, r + 8 * words, tail);
    out->len += (size_t)(w - start) + tail;
    for (size_t i = 0; i < l->nstr; i++) {
        const char *s = (const char *)r + l->str[i].off;
        size_t n = strnlen(s, l->str[i].cap - 1u);
        w = start = md_buf_reserve(out, PJ_VARINT_MAX + n);
        w = pj_put_varint(w, n);
        memcpy(w, s, n);
        out->len += (size_t)(w - start) + n;
    }
}

int md__pj_unpack(const pj_layout_t *l, const void *val, size_t len, void *rec)
{
    const unsigned char *p = val, *end = p + len;
    unsigned char *r = rec;
    size_t words = l->fixed / 8, tail = l->fixed % 8;
    uint64_t u;
    memset(rec, 0, l->size);
    if (words == 0)
        return -1;                        /* no fmt */
    for (size_t i = 0; i < words; i++) {
        if (pj_get_varint(&p, end, &u) != 0)
            return -1;
        int64_t v = pj_unzigzag1(u);
        if (i == 0 && v != l->fmt)
            return -1;
        memcpy(r + 8 * i, &v, sizeof v);
    }
    if ((size_t)(end - p) < tail)
        return -1;
    memcpy(r + 8 * words, p, tail);
    p += tail;
    for (size_t i = 0; i < l->nstr; i++) {
        if (pj_get_varint(&p, end, &u) != 0 || u >= l->str[i].cap || (uint64_t)(end - p) < u ||
            memchr(p, 0, (size_t)u) != NULL) /* strings end at their first NUL */
            return -1;
        memcpy(r + l->str[i].off, p, (size_t)u);
        p += u;
    }
    return p == end ? 0 : -1;
}

md_err_t md__pj_read(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen,
                     const pj_layout_t *l, void *rec, bool *found, md_error_t *err)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    *found = rc == MDB_SUCCESS;
    if (rc == MDB_NOTFOUND) {
        memset(rec, 0, l->size);
        *(int64_t *)rec = l->fmt;
        return MD_OK;
    }
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "projection get");
    if (md__pj_unpack(l, v.mv_data, v.mv_size, rec) != 0)
        return md_error_set(err, MD_ECORRUPT, "projection record '%.*s' has another layout",
                            (int)(klen > 80 ? 80 : klen), (const char *)key);
    return MD_OK;
}

/* ---- bulk mode: a write-back cache, a log, and sorted writes ----------------------------- */

/*
 * Replays (rebuild, verify, replay, catch-up) apply every event in one write
 * transaction in bulk mode, where nothing reaches LMDB while the events are
 * applied:
 *
 *  - md__pj_put, md__pj_save and md__pj_del of a database the apply code has
 *    not read (md__pj_load) so far in this replay are appended to the log
 *    (index databases are only ever written: p_order_idx, p_account_idx);
 *  - the first md__pj_load of a database moves its logged operations into a
 *    write-back cache keyed by (database, key); from then on its puts and
 *    deletes update the cache and md__pj_load reads the cache first. A delete
 *    removes the entry when the database was empty at the start and has not
 *    been written since (p->complete: nothing of it is in LMDB, so a miss is
 *    an absent key, without a look-up); otherwise it is a tombstone, and a
 *    miss reads LMDB;
 *  - md__pj_put_new appends to the spill (insert-only databases: audit).
 *
 * Each is written sorted by key through one cursor per database: the keys
 * after the database's last key with MDB_APPEND (all of them when it is
 * empty), the others in place; of the operations on one key the last one
 * counts, as it does on the live path. The spill is written every
 * PJ_SPILL_EVENTS events (or beyond p->spill_max bytes); the cache and the log
 * at the end (or beyond p->bulk_max bytes together, after which misses read
 * LMDB). All of it happens in the caller's write transaction, so readers see
 * the old projections until it commits.
 */

#define PJ_TOMB UINT32_MAX          /* vlen of a delete */
#define PJ_DEAD 0xff                /* db byte of a log entry moved to the cache */
#define CACHE_CHUNK ((size_t)4 << 20)
#define CACHE_CLASSES 64            /* free lists of 32..1024-byte entries */

typedef struct pj_cent {
    uint32_t vlen;                  /* PJ_TOMB: deleted */
    uint32_t vcap;
    uint16_t klen;
    uint8_t db;
    uint8_t cls;                    /* size / 16 when it can be reused, else 0 */
    unsigned char b[];              /* key, then vcap bytes for the value */
} pj_cent_t;

typedef struct pj_slot {
    uint64_t h;
    pj_cent_t *e;                   /* NULL: free */
} pj_slot_t;

struct pj_cache {
    pj_slot_t *slot;
    size_t mask, n;                 /* slots - 1; entries */
    unsigned char **chunk;          /* the entries live in these */
    size_t nchunk, chunk_cap;
    unsigned char *cur;             /* free room of the last chunk */
    size_t left;
    pj_cent_t *freel[CACHE_CLASSES + 1];
    size_t bytes;                   /* chunks and slots */
};

static uint64_t pj_hash(pj_db_t db, const unsigned char *k, size_t n)
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

static void cache_free(struct pj_cache *c)
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

/* The slot of (db, key): its entry, or the free slot where it would go. */
static pj_slot_t *cache_slot(struct pj_cache *c, uint64_t h, pj_db_t db, const void *key,
                             size_t klen)
{
    for (size_t i = h & c->mask;; i = (i + 1) & c->mask) {
        pj_slot_t *s = &c->slot[i];
        if (s->e == NULL || (s->h == h && s->e->db == db && s->e->klen == klen &&
                             bytes_eq(s->e->b, key, klen)))
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
            size_t n = size > CACHE_CHUNK ? size : CACHE_CHUNK;
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
static void cache_op(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen,
                     const void *val, uint32_t vlen)
{
    if (vlen != PJ_TOMB)
        cache_set(p, h, db, key, klen, val, vlen);
    else if (p->complete[db])
        cache_remove(p, h, db, key, klen);
    else
        cache_set(p, h, db, key, klen, NULL, PJ_TOMB);
}

static pj_cent_t *cache_get(md_proj_t *p, uint64_t h, pj_db_t db, const void *key, size_t klen)
{
    if (p->cache == NULL)
        return NULL;
    return cache_slot(p->cache, h, db, key, klen)->e;
}

/* ---- the log and the spill: db(1) klen(2) vlen(4 BE) key val --------------------------- */

static uint32_t ent_vlen(const unsigned char *e)
{
    return (uint32_t)e[3] << 24 | (uint32_t)e[4] << 16 | (uint32_t)e[5] << 8 | e[6];
}

static size_t ent_klen(const unsigned char *e)
{
    return (size_t)e[1] << 8 | e[2];
}

static const unsigned char *ent_next(const unsigned char *e)
{
    uint32_t vl = ent_vlen(e);
    return e + 7 + ent_klen(e) + (vl == PJ_TOMB ? 0 : vl);
}

static void ent_append(md_buf_t *b, pj_db_t db, const void *key, size_t klen, const void *val,
                       uint32_t vlen)
{
    size_t vn = vlen == PJ_TOMB ? 0 : vlen;
    unsigned char *w = md_buf_reserve(b, 7 + klen + vn);
    w[0] = (unsigned char)db;
    w[1] = (unsigned char)(klen >> 8), w[2] = (unsigned char)klen;
    w[3] = (unsigned char)(vlen >> 24), w[4] = (unsigned char)(vlen >> 16);
    w[5] = (unsigned char)(vlen >> 8), w[6] = (unsigned char)vlen;
    memcpy(w + 7, key, klen);
    if (vn)
        memcpy(w + 7 + klen, val, vn);
    b->len += 7 + klen + vn;
}

/* The apply code reads @p db from now on: its logged operations go to the cache. */
static void to_cache(md_proj_t *p, pj_db_t db)
{
    unsigned char *end = p->log.p + p->log.len;
    for (unsigned char *e = p->log.p; e < end; e = (unsigned char *)ent_next(e)) {
        if (e[0] != db)
            continue;
        size_t kl = ent_klen(e);
        cache_op(p, pj_hash(db, e + 7, kl), db, e + 7, kl, e + 7 + kl, ent_vlen(e));
        e[0] = PJ_DEAD;
    }
    p->cached[db] = true;
}

/* A put or delete (@p vlen PJ_TOMB) in bulk mode. */
static void bulk_op(md_proj_t *p, pj_db_t db, const void *key, size_t klen, const void *val,
                    uint32_t vlen)
{
    if (!p->cached[db]) {
        ent_append(&p->log, db, key, klen, val, vlen);
        return;
    }
    cache_op(p, pj_hash(db, key, klen), db, key, klen, val, vlen);
}

static md_err_t spill_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err);

/* ---- loads and stores -------------------------------------------------------------- */

md_err_t md__pj_load(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen,
                     const pj_layout_t *l, void *rec, bool *found)
{
    md_proj_t *p = c->p;
    if (p->bulk) {
        md_err_t rc = p->spilled[db] ? spill_flush(p, c->txn, c->err) : MD_OK;
        if (rc != MD_OK)
            return rc;
        if (!p->cached[db])
            to_cache(p, db);
        const pj_cent_t *e = cache_get(p, pj_hash(db, key, klen), db, key, klen);
        if (e != NULL || p->complete[db]) {
            *found = e != NULL && e->vlen != PJ_TOMB;
            if (!*found) {
                memset(rec, 0, l->size);
                *(int64_t *)rec = l->fmt;
                return MD_OK;
            }
            if (md__pj_unpack(l, e->b + klen, e->vlen, rec) != 0)
                return md_error_set(c->err, MD_ECORRUPT,
                                    "projection record '%.*s' has another layout",
                                    (int)(klen > 80 ? 80 : klen), (const char *)key);
            return MD_OK;
        }
    }
    return md__pj_read(c->txn, p->dbi[db], key, klen, l, rec, found, c->err);
}

md_err_t md__pj_put(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                    size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    if (klen == 0 || klen > PJ_KEY_MAX)
        return md_error_set(c->err, MD_EINVAL, "projection key of %zu bytes", klen);
    if (c->p->bulk && vlen < PJ_TOMB) {
        bulk_op(c->p, db, key, klen, val, (uint32_t)vlen);
        return MD_OK;
    }
    return md_store_err(mdb_put(c->txn, c->p->dbi[db], &k, &v, 0), c->err, "projection put");
}

md_err_t md__pj_save(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen,
                     const pj_layout_t *l, const void *rec)
{
    md__pj_pack(l, rec, &c->p->rec);
    return md__pj_put(c, db, key, klen, c->p->rec.p, c->p->rec.len);
}

md_err_t md__pj_del(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen)
{
    md_proj_t *p = c->p;
    if (p->bulk && klen > 0 && klen <= PJ_KEY_MAX) {
        bulk_op(p, db, key, klen, NULL, PJ_TOMB);
        return MD_OK;
    }
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(c->txn, p->dbi[db], &k, NULL);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, c->err, "projection delete");
}

md_err_t md__pj_put_new(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                        size_t vlen)
{
    md_proj_t *p = c->p;
    if (!p->bulk || vlen >= PJ_TOMB)
        return md__pj_put(c, db, key, klen, val, vlen);
    if (klen == 0 || klen > PJ_KEY_MAX)
        return md_error_set(c->err, MD_EINVAL, "projection key of %zu bytes", klen);
    ent_append(&p->spill, db, key, klen, val, (uint32_t)vlen);
    p->spilled[db] = true;
    return MD_OK;
}

/* ---- sorted writes ------------------------------------------------------------------ */

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
    uint64_t a, b;                  /* key bytes [off, off + 16), zero-padded */
    const unsigned char *k;
    uint16_t klen, off;             /* the items sorted together share [0, off) */
    uint32_t vlen;                  /* PJ_TOMB: delete */
} pj_item_t;

#define ITEM_NEW 0x8000u            /* in off: the key's group differs from the last */
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

static void item_set(pj_item_t *it, const unsigned char *k, size_t klen, uint32_t vlen,
                     size_t off)
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
#define DIGIT_(it, d) ((size_t)(((d) < 8 ? (it).b >> (8 * (d)) : (it).a >> (8 * ((d) - 8))) & 0xff))
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
static md_err_t write_sorted(md_proj_t *p, MDB_txn *txn, pj_db_t db, const pj_item_t *v,
                             size_t n, md_error_t *err)
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

/* Writes the sorted items of each database (those of database i are
 * [at[i], at[i + 1])). */
static md_err_t write_dbs(md_proj_t *p, MDB_txn *txn, const pj_item_t *v, const size_t *at,
                          md_error_t *err)
{
    md_err_t rc = MD_OK;
    for (int db = 0; db < PJ_DB_COUNT_ && rc == MD_OK; db++) {
        if (at[db + 1] == at[db])
            continue;
        rc = write_sorted(p, txn, (pj_db_t)db, v + at[db], at[db + 1] - at[db], err);
        p->complete[db] = false;
    }
    return rc;
}

/* ---- groups of the log and the spill ---- */

typedef struct pj_group {
    const unsigned char *k;         /* a key of the group: its first len bytes */
    uint32_t len, n;                /* bytes; items */
    size_t at;                      /* where its items go */
    uint8_t db;
} pj_group_t;

typedef struct pj_groups {
    pj_group_t *g;
    size_t n, cap;
    uint32_t *slot;                 /* group index + 1; 0: free */
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

static struct pj_sort *sort_of(md_proj_t *p)
{
    if (p->sort == NULL) {
        p->sort = md_calloc(1, sizeof *p->sort);
        md_buf_init(&p->sort->gid);
        md_buf_init(&p->sort->tmp);
        md_buf_init(&p->sort->gv);
        md_buf_init(&p->sort->gtmp);
    }
    return p->sort;
}

static void sort_free(struct pj_sort *s)
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

/* Sorts the operations in @p b (the log or the spill) into @p items, those of
 * database i at [at[i], at[i + 1]). */
static void buf_sort(md_proj_t *p, const md_buf_t *b, md_buf_t *items, size_t *at)
{
    struct pj_sort *so = sort_of(p);
    size_t n = 0, big = 0, i = 0;
    const unsigned char *end = b->p + b->len, *e;
    for (e = b->p; e < end; e = ent_next(e))
        n += e[0] < PJ_DB_COUNT_;
    uint32_t *gid = scratch(&so->gid, n * sizeof *gid);
    so->gs.n = 0;
    groups_rehash(&so->gs, 4096);
    for (e = b->p; e < end; e = ent_next(e))
        if (e[0] < PJ_DB_COUNT_)
            gid[i++] = group_of(&so->gs, e[0], e + 7, ent_klen(e));
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
static void cache_sort(md_proj_t *p, const struct pj_cache *c, md_buf_t *items, size_t *at)
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

/* ---- batches: sorted writes, written here or handed to the writer ---- */

static pj_batch_t *batch_new(void)
{
    pj_batch_t *b = md_calloc(1, sizeof *b);
    md_buf_init(&b->data);
    md_buf_init(&b->items);
    return b;
}

void md__pj_batch_clear(pj_batch_t *b)
{
    cache_free(b->cache);
    b->cache = NULL;
    md_buf_reset(&b->data);
    md_buf_reset(&b->items);
}

void md__pj_batch_free(pj_batch_t *b)
{
    if (b == NULL)
        return;
    cache_free(b->cache);
    md_buf_release(&b->data);
    md_buf_release(&b->items);
    free(b);
}

md_err_t md__pj_batch_write(md_proj_t *p, MDB_txn *txn, const pj_batch_t *b, md_error_t *err)
{
    return write_dbs(p, txn, (const pj_item_t *)(const void *)b->items.p, b->at, err);
}

/* An empty batch: one the writer is done with, or a new one. */
static pj_batch_t *batch_take(md_proj_t *p)
{
    pj_batch_t *b = p->emit ? p->spare(p->emit_ctx) : p->own;
    if (b == NULL)
        b = batch_new();
    if (!p->emit)
        p->own = b;
    return b;
}

/* Writes @p b, or hands it to the writer (a helper's handle). */
static md_err_t batch_done(md_proj_t *p, MDB_txn *txn, pj_batch_t *b, md_error_t *err)
{
    if (p->emit)
        return p->emit(p->emit_ctx, b, err);
    md_err_t rc = md__pj_batch_write(p, txn, b, err);
    md__pj_batch_clear(b);
    return rc;
}

/* Writes the operations in @p src (the log or the spill) and empties it. */
static md_err_t buf_flush(md_proj_t *p, MDB_txn *txn, md_buf_t *src, md_error_t *err)
{
    if (src->len == 0)
        return MD_OK;
    pj_batch_t *b = batch_take(p);
    md_buf_t t = b->data; /* src keeps the batch's (empty) buffer: its memory is reused */
    b->data = *src;
    *src = t;
    md_buf_reset(src);
    buf_sort(p, &b->data, &b->items, b->at);
    return batch_done(p, txn, b, err);
}

static md_err_t spill_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    memset(p->spilled, 0, sizeof p->spilled);
    return buf_flush(p, txn, &p->spill, err);
}

static md_err_t cache_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    if (p->cache == NULL || p->cache->n == 0)
        return MD_OK;
    pj_batch_t *b = batch_take(p);
    b->cache = p->cache;
    p->cache = NULL;
    cache_sort(p, b->cache, &b->items, b->at);
    return batch_done(p, txn, b, err);
}

/* Writes the cache and the log (the cache first: it is freed before the log's
 * items are made). */
static md_err_t held_flush(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    md_err_t rc = cache_flush(p, txn, err);
    return rc == MD_OK ? buf_flush(p, txn, &p->log, err) : rc;
}

void md__pj_bulk_release(md_proj_t *p)
{
    cache_free(p->cache);
    p->cache = NULL;
    sort_free(p->sort);
    p->sort = NULL;
    md__pj_batch_free(p->own);
    p->own = NULL;
    md_buf_release(&p->spill);
    md_buf_release(&p->log);
}

md_err_t md__pj_bulk_begin(md_proj_t *p, MDB_txn *txn, md_error_t *err)
{
    md__pj_bulk_release(p);
    if (p->bulk_max == 0)
        p->bulk_max = PJ_BULK_MAX;
    if (p->spill_max == 0)
        p->spill_max = PJ_SPILL_MAX;
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        MDB_stat st;
        int rc = mdb_stat(txn, p->dbi[i], &st);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, "projection stat");
        p->complete[i] = st.ms_entries == 0;
        p->cached[i] = p->spilled[i] = false;
    }
    p->bulk = true;
    return MD_OK;
}

void md__pj_bulk_follow(md_proj_t *hp, const md_proj_t *p)
{
    md__pj_bulk_release(hp);
    hp->bulk_max = p->bulk_max;
    hp->spill_max = p->spill_max;
    memcpy(hp->complete, p->complete, sizeof hp->complete);
    memset(hp->cached, 0, sizeof hp->cached);
    memset(hp->spilled, 0, sizeof hp->spilled);
    hp->bulk = true;
}

md_err_t md__pj_bulk_step(md_proj_t *p, MDB_txn *txn, uint64_t seq, md_error_t *err)
{
    md_err_t rc = MD_OK;
    if ((seq + 1) % PJ_SPILL_EVENTS == 0 || p->spill.len > p->spill_max)
        rc = spill_flush(p, txn, err);
    if (rc == MD_OK && (p->cache ? p->cache->bytes : 0) + p->log.len > p->bulk_max) {
        if (p->emit) /* a helper reads nothing back from LMDB: it cannot write early */
            return md_error_set(err, MD_ENOMEM, "parallel replay: records outgrow %zu bytes",
                                p->bulk_max);
        rc = held_flush(p, txn, err);
    }
    return rc;
}

md_err_t md__pj_bulk_end(md_proj_t *p, MDB_txn *txn, bool write, md_error_t *err)
{
    md_err_t rc = MD_OK;
    if (write)
        rc = held_flush(p, txn, err);
    if (write && rc == MD_OK)
        rc = spill_flush(p, txn, err);
    md__pj_bulk_release(p);
    p->bulk = false;
    return rc;
}

/* ---- keys --------------------------------------------------------------------------- */

void md__pj_key_init(pj_key_t *k)
{
    k->n = 0;
}

void md__pj_key_byte(pj_key_t *k, unsigned char c)
{
    if (k->n < PJ_KEY_MAX)
        k->b[k->n++] = c;
}

void md__pj_key_str(pj_key_t *k, const char *s)
{
    size_t n = strlen(s);
    if (n > PJ_KEY_MAX - 1 - k->n)
        n = PJ_KEY_MAX - 1 - k->n; /* ids are short; keeps a bad input harmless */
    memcpy(k->b + k->n, s, n);
    k->n += n;
    k->b[k->n++] = '\0';
}

void md__pj_key_be64(pj_key_t *k, uint64_t v)
{
    for (int i = 7; i >= 0 && k->n < PJ_KEY_MAX; i--)
        k->b[k->n++] = (unsigned char)(v >> (8 * i));
}

uint64_t md__pj_get_be64(const unsigned char *p)
{
    return mp_be(p, 8);
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), so the
 * hot path needs no gmtime. */
void md__pj_day(int64_t ms, char out[PJ_DAY])
{
    int64_t z = (ms >= 0 ? ms : ms - 86399999) / 86400000 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999)
        y = y < 0 ? 0 : 9999;
    out[0] = (char)('0' + y / 1000), out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10), out[3] = (char)('0' + y % 10);
    out[4] = '-', out[5] = (char)('0' + m / 10), out[6] = (char)('0' + m % 10);
    out[7] = '-', out[8] = (char)('0' + d / 10), out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* ---- JSON helpers -------------------------------------------------------------------- */

json_t *md__pj_time(int64_t ms)
{
    return ms == PJ_NONE ? json_null() : json_integer((json_int_t)ms);
}

json_t *md__pj_strj(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

json_t *md__pj_enumj(const char *const *names, size_t n, int64_t i)
{
    return i >= 0 && (size_t)i < n ? json_string(names[i]) : json_null();
}

/* ---- paged prefix scans ------------------------------------------------------------------ */

int md__pj_unhex(const char *s, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = s[2 * i + (size_t)j];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

/* Positions @p cur on the first key of the page: after the cursor key when
 * one is given, else on the first key with the prefix. */
static int scan_start(MDB_cursor *cur, const void *prefix, size_t plen, const char *cursor,
                      MDB_val *k, MDB_val *v, unsigned char *buf, int *bad)
{
    size_t n = 0;
    *bad = 0;
    if (cursor && *cursor) {
        if (md__pj_unhex(cursor, buf, PJ_KEY_MAX, &n) || n < plen || memcmp(buf, prefix, plen) != 0)
            return *bad = 1, MDB_NOTFOUND;
        k->mv_data = buf, k->mv_size = n;
        int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
        if (rc == MDB_SUCCESS && k->mv_size == n && memcmp(k->mv_data, buf, n) == 0)
            rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
        return rc;
    }
    if (plen == 0)
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    k->mv_data = (void *)prefix, k->mv_size = plen;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

md_err_t md__pj_scan_result(md_err_t rc, int mrc, int bad, const md_proj_page_t *page,
                            md_error_t *err)
{
    if (bad)
        return md_error_set(err, MD_EINVAL, "cursor '%.40s' does not belong to this query",
                            page->cursor);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "projection scan");
    return rc;
}

md_err_t md__pj_scan(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen,
                     md_proj_page_t *page, pj_visit_fn fn, void *ctx, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char buf[PJ_KEY_MAX], last[PJ_KEY_MAX];
    size_t last_n = 0;
    uint64_t count = 0;
    int bad;
    md_err_t rc = MD_OK;
    page->next[0] = '\0';
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "projection cursor");
    for (mrc = scan_start(cur, prefix, plen, page->cursor, &k, &v, buf, &bad);
         mrc == MDB_SUCCESS && rc == MD_OK; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        bool emitted = false;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (page->limit && count == page->limit) {
            /* One more row exists past the page only if it would be emitted;
             * checking that costs a visit, so the cursor is given whenever
             * another key with the prefix exists. */
            md_hex(last, last_n, page->next);
            break;
        }
        rc = fn(&k, &v, ctx, &emitted, err);
        if (emitted) {
            count++;
            last_n = k.mv_size;
            memcpy(last, k.mv_data, last_n);
        }
    }
    mdb_cursor_close(cur);
    return md__pj_scan_result(rc, mrc, bad, page, err);
}
