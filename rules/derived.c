/*
 * derived.c - the rules' state and the command outcomes recomputed from the
 * log and compared with the store (md_derived.h), and the stored offsets. It
 * lives in rules/ (not projections/) because it runs the rules' own evolve; it
 * only reads the store, never decides.
 *
 * The recompute is the engine's: every event is evolved with md_rules_evolve
 * (bootstrap events included) and every event's outcome is
 * md_outcome_of_event; the outcomes of commands accepted with no events (Tick),
 * which no event shows, are taken as stored. The records are kept in an in-memory table (a replay
 * evolves ~1.2 events a command, each reading and writing a few records: an
 * LMDB write transaction would be most of the time), then sorted as LMDB
 * sorts keys and walked beside the live database.
 */
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "md_derived.h"
#include "md_rules.h"

#define PROGRESS_EVERY 0xffff

/* ---- an in-memory table of records ---------------------------------------------------
 * Open addressing (linear probing); an entry is one allocation holding the key
 * and then the value, with room for the largest value it has held. The slots
 * are sized at the start for the live database's entries (no rehash as it
 * fills) and, from 2 MiB, 2 MiB-aligned and in transparent huge pages where
 * the kernel offers them on madvise: a look-up lands anywhere in tens of
 * megabytes, so each one is a cache miss, and without huge pages a TLB miss
 * too. Look-ups that can be known ahead (an event's outcome, the live records
 * walked in the comparison) prefetch their slot first (kv_prefetch). */

typedef struct kv_ent {
    uint64_t hash;
    unsigned char *blob; /* NULL: an empty slot */
    uint32_t klen, vlen, vcap;
} kv_ent_t;

/* Entries of up to ARENA_BIG bytes live in chunks, in classes of 16 bytes
 * with a free list each (an entry that outgrows its room moves to a larger
 * class); larger ones are malloc'd. Freeing the table frees the chunks: a
 * replay makes millions of entries, and freeing them one by one took a tenth
 * of the recompute. */
#define ARENA_CHUNK ((size_t)1 << 20)
#define ARENA_BIG 1024

typedef struct kv_arena {
    unsigned char **chunk;
    size_t nchunk, chunk_cap;
    unsigned char *cur; /* free room of the last chunk */
    size_t left;
    unsigned char *freel[ARENA_BIG / 16 + 1]; /* a freed entry's first 8 bytes: the next */
} kv_arena_t;

typedef struct kv {
    kv_ent_t *slots;
    size_t cap, n; /* cap: a power of two */
    kv_arena_t a;
} kv_t;

/* The room of an entry of @p n bytes: its class times 16, or n when big. */
static size_t blob_room(size_t n)
{
    return n > ARENA_BIG ? n : (n + 15) & ~(size_t)15;
}

static unsigned char *blob_alloc(kv_arena_t *a, size_t n)
{
    size_t room = blob_room(n);
    unsigned char *b;
    if (room > ARENA_BIG)
        return md_malloc(room);
    if ((b = a->freel[room / 16]) != NULL) {
        unsigned char *next;
        memcpy(&next, b, sizeof next);
        a->freel[room / 16] = next;
        return b;
    }
    if (a->left < room) {
        if (a->nchunk == a->chunk_cap) {
            a->chunk_cap = a->chunk_cap ? 2 * a->chunk_cap : 64;
            a->chunk = md_realloc(a->chunk, a->chunk_cap * sizeof *a->chunk);
        }
        a->cur = a->chunk[a->nchunk++] = md_malloc(ARENA_CHUNK);
        a->left = ARENA_CHUNK;
    }
    b = a->cur;
    a->cur += room;
    a->left -= room;
    return b;
}

static void blob_free(kv_arena_t *a, unsigned char *b, size_t n)
{
    size_t room = blob_room(n);
    if (room > ARENA_BIG) {
        free(b);
        return;
    }
    unsigned char *next = a->freel[room / 16]; /* the free list's link, kept in the block */
    memcpy(b, &next, sizeof next);
    a->freel[room / 16] = b;
}

static kv_ent_t *kv_slot(const kv_t *m, uint64_t h, const void *key, size_t klen)
{
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        kv_ent_t *e = &m->slots[i];
        if (e->blob == NULL || (e->hash == h && e->klen == klen && memcmp(e->blob, key, klen) == 0))
            return e;
    }
}

static kv_ent_t *slots_alloc(size_t cap)
{
    size_t bytes = cap * sizeof(kv_ent_t);
    void *m = NULL;
    if (bytes < ((size_t)2 << 20) || posix_memalign(&m, (size_t)2 << 20, bytes) != 0)
        return md_calloc(cap, sizeof(kv_ent_t));
#ifdef MADV_HUGEPAGE
    madvise(m, bytes, MADV_HUGEPAGE);
#endif
    memset(m, 0, bytes);
    return m;
}

/* Room for @p n entries at a load of at most one half. */
static void kv_resize(kv_t *m, size_t n)
{
    kv_ent_t *old = m->slots;
    size_t oldcap = m->cap, cap = 1024;
    while (cap < 2 * (n + 1))
        cap *= 2;
    if (cap <= oldcap)
        return;
    m->cap = cap;
    m->slots = slots_alloc(cap);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].blob)
            *kv_slot(m, old[i].hash, old[i].blob, old[i].klen) = old[i];
    free(old);
}

static void kv_grow(kv_t *m)
{
    kv_resize(m, m->n + 1);
}

/* Starts fetching the entry in the home slot of hash @p h (its slot fetched
 * first, by kv_prefetch, some look-ups before). */
static inline void kv_prefetch_blob(const kv_t *m, uint64_t h)
{
#if defined(__GNUC__)
    const kv_ent_t *e = m->cap ? &m->slots[h & (m->cap - 1)] : NULL;
    if (e && e->blob)
        __builtin_prefetch(e->blob);
#else
    (void)m, (void)h;
#endif
}

/* Starts fetching the home slot of hash @p h. */
static inline void kv_prefetch(const kv_t *m, uint64_t h)
{
#if defined(__GNUC__)
    if (m->cap)
        __builtin_prefetch(&m->slots[h & (m->cap - 1)]);
#else
    (void)m, (void)h;
#endif
}

static const kv_ent_t *kv_get(const kv_t *m, const void *key, size_t klen)
{
    if (m->cap == 0)
        return NULL;
    const kv_ent_t *e = kv_slot(m, md_hash64(key, klen), key, klen);
    return e->blob ? e : NULL;
}

/* kv_put of a key whose md_hash64 is @p h. */
static void kv_put_h(kv_t *m, uint64_t h, const void *key, size_t klen, const void *val,
                     size_t vlen)
{
    if (2 * (m->n + 1) > m->cap)
        kv_grow(m);
    kv_ent_t *e = kv_slot(m, h, key, klen);
    if (e->blob == NULL) {
        e->blob = blob_alloc(&m->a, klen + vlen + 1);
        memcpy(e->blob, key, klen);
        e->hash = h, e->klen = (uint32_t)klen,
        e->vcap = (uint32_t)(blob_room(klen + vlen + 1) - klen - 1);
        m->n++;
    } else if (vlen > e->vcap) {
        unsigned char *b = blob_alloc(&m->a, klen + vlen + 1);
        memcpy(b, e->blob, klen);
        blob_free(&m->a, e->blob, klen + e->vcap + 1);
        e->blob = b;
        e->vcap = (uint32_t)(blob_room(klen + vlen + 1) - klen - 1);
    }
    if (vlen)
        memcpy(e->blob + klen, val, vlen);
    e->vlen = (uint32_t)vlen;
}

static void kv_put(kv_t *m, const void *key, size_t klen, const void *val, size_t vlen)
{
    kv_put_h(m, md_hash64(key, klen), key, klen, val, vlen);
}

/* Removes @p key (backward-shift deletion: the probe runs stay unbroken). */
static void kv_del(kv_t *m, const void *key, size_t klen)
{
    if (m->cap == 0)
        return;
    kv_ent_t *e = kv_slot(m, md_hash64(key, klen), key, klen);
    if (e->blob == NULL)
        return;
    blob_free(&m->a, e->blob, e->klen + e->vcap + 1);
    size_t mask = m->cap - 1, i = (size_t)(e - m->slots), j = i;
    for (;;) {
        j = (j + 1) & mask;
        if (m->slots[j].blob == NULL)
            break;
        size_t home = m->slots[j].hash & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i] = (kv_ent_t){0};
    m->n--;
}

static void kv_free(kv_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].blob && m->slots[i].klen + m->slots[i].vcap + 1 > ARENA_BIG)
            free(m->slots[i].blob);
    for (size_t i = 0; i < m->a.nchunk; i++)
        free(m->a.chunk[i]);
    free(m->a.chunk);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* LMDB's default order: bytes, then length. */
static int ent_cmp(const void *a, const void *b)
{
    const kv_ent_t *x = *(kv_ent_t *const *)a, *y = *(kv_ent_t *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->blob, y->blob, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/* The entries of @p m sorted by key (a new array of m->n pointers). */
static kv_ent_t **kv_sorted(const kv_t *m)
{
    kv_ent_t **v = md_malloc((m->n ? m->n : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].blob)
            v[k++] = &m->slots[i];
    qsort(v, k, sizeof *v, ent_cmp);
    return v;
}

/* ---- the rules' state over the table ----------------------------------------------- */

static md_err_t state_get(void *ctx, const void *key, size_t klen, const void **val, size_t *vlen)
{
    const kv_ent_t *e = kv_get(ctx, key, klen);
    if (e == NULL)
        return MD_ENOTFOUND;
    *val = e->blob + e->klen;
    *vlen = e->vlen;
    return MD_OK;
}

static md_err_t state_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    kv_put(ctx, key, klen, val, vlen);
    return MD_OK;
}


static md_err_t state_del(void *ctx, const void *key, size_t klen)
{
    kv_del(ctx, key, klen);
    return MD_OK;
}

/* Evolve never seeks (decide and the engine's timer look-up do): refused. */
static md_err_t state_seek(void *ctx, const void *key, size_t klen, const void **okey,
                           size_t *oklen)
{
    (void)ctx, (void)key, (void)klen, (void)okey, (void)oklen;
    return MD_EINVAL;
}
/* Evolve does not ask for stream versions (decide does): a replay has no
 * "version so far" to give, so the question is refused. */
static md_err_t state_version(void *ctx, const char *stream, uint64_t *version)
{
    (void)ctx, (void)stream, (void)version;
    return MD_EINVAL;
}

/* ---- the recompute ------------------------------------------------------------------ */

typedef struct derive {
    kv_t db[MD_DERIVED_COUNT_];
    md_state_t st;
    uint64_t n, total;
    char last_id[MD_CMDID_MAX + 1]; /* the outcome put last (a command's events follow */
    char last[MD_OUTCOME_MAX];      /* each other: most of them repeat it) */
    size_t last_len;
    md_progress_fn progress;
    void *pctx;
} derive_t;

static md_err_t derive_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                             md_error_t *err)
{
    derive_t *d = ctx;
    char out[MD_OUTCOME_MAX];
    (void)body, (void)len;
    size_t idlen = strlen(ev->command_id);
    uint64_t h = md_hash64(ev->command_id, idlen);
    kv_prefetch(&d->db[MD_DERIVED_OUTCOMES], h); /* arrives while the event evolves */
    md_err_t rc = md_rules_evolve(&d->st, ev, err);
    if (rc != MD_OK)
        return md_error_set(err, rc == MD_ESTORE ? rc : MD_ECORRUPT,
                            "the rules cannot evolve event %llu (%s)", (unsigned long long)ev->seq,
                            ev->type);
    size_t n = md_outcome_of_event(ev, out);
    if (n && !(n == d->last_len && memcmp(out, d->last, n) == 0 &&
               strcmp(ev->command_id, d->last_id) == 0)) {
        kv_put_h(&d->db[MD_DERIVED_OUTCOMES], h, ev->command_id, idlen, out, n);
        memcpy(d->last, out, n);
        d->last_len = n;
        memcpy(d->last_id, ev->command_id, sizeof d->last_id);
    }
    if ((++d->n & PROGRESS_EVERY) == 0 && d->progress)
        d->progress(d->n, d->total, d->pctx);
    return MD_OK;
}

/* ---- comparison --------------------------------------------------------------------- */

static void be32(unsigned char *b, size_t v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

static void digest_pair(EVP_MD_CTX *h, const void *k, size_t klen, const void *v, size_t vlen)
{
    unsigned char len[4];
    be32(len, klen);
    EVP_DigestUpdate(h, len, 4);
    EVP_DigestUpdate(h, k, klen);
    be32(len, vlen);
    EVP_DigestUpdate(h, len, 4);
    EVP_DigestUpdate(h, v, vlen);
}

/* Printable form of a key: bytes 0x20..0x7e as they are ('\\' escaped), others \xHH. */
static void printable(const unsigned char *b, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
    }
    out[o] = '\0';
}

static int key_cmp(const MDB_val *a, const kv_ent_t *b)
{
    size_t n = a->mv_size < b->klen ? a->mv_size : b->klen;
    int c = memcmp(a->mv_data, b->blob, n);
    return c ? c : (a->mv_size > b->klen) - (a->mv_size < b->klen);
}

typedef struct side {
    EVP_MD_CTX *live, *derived;
} side_t;

/* Walks database @p db of @p t beside the sorted recomputed records: digests
 * both and notes the first differing key in @p rep. */
static md_err_t compare_db(md_txn_t *t, md_derived_db_t which, const kv_t *m, side_t *h,
                           md_derived_report_t *rep, md_error_t *err)
{
    md_db_t db = which == MD_DERIVED_STATE ? MD_DB_STATE : MD_DB_OUTCOMES;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    kv_ent_t **ents = kv_sorted(m);
    size_t i = 0;
    int rc = mdb_cursor_open(md_txn_mdb(t), md_txn_dbi(t, db), &cur);
    if (rc != MDB_SUCCESS) {
        free(ents);
        return md_store_err(rc, err, "derived: cursor");
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS || i < m->n) {
        const kv_ent_t *e = i < m->n ? ents[i] : NULL;
        int c = rc != MDB_SUCCESS ? 1 : e == NULL ? -1 : key_cmp(&k, e);
        const char *diff = c < 0   ? "not derived from the log"
                           : c > 0 ? "missing from the store"
                           : v.mv_size != e->vlen || memcmp(v.mv_data, e->blob + e->klen, e->vlen)
                               ? "value differs"
                               : NULL;
        if (diff && rep->bad < 0) {
            rep->bad = (int)which;
            rep->diff = diff;
            if (c <= 0)
                printable(k.mv_data, k.mv_size, rep->key, sizeof rep->key);
            else
                printable(e->blob, e->klen, rep->key, sizeof rep->key);
        }
        if (c <= 0) {
            digest_pair(h->live, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
            rep->live_entries[which]++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        if (c >= 0) {
            digest_pair(h->derived, e->blob, e->klen, e->blob + e->klen, e->vlen);
            rep->derived_entries[which]++;
            i++;
        }
    }
    mdb_cursor_close(cur);
    free(ents);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "derived: scan");
}

/* The live records of compare_fast, read ahead of their look-ups so that
 * the look-ups' slots are fetched in parallel (LMDB's pointers stay valid for
 * the read transaction). */
#define AHEAD 16

typedef struct ahead {
    MDB_val k[AHEAD], v[AHEAD];
    uint64_t h[AHEAD];
    size_t head, n; /* the oldest, how many are held */
    int rc;         /* of the cursor's last move */
} ahead_t;

static void ahead_fill(ahead_t *a, MDB_cursor *cur, const kv_t *m)
{
    while (a->n < AHEAD && a->rc == MDB_SUCCESS) {
        size_t i = (a->head + a->n) % AHEAD;
        a->rc = mdb_cursor_get(cur, &a->k[i], &a->v[i], MDB_NEXT);
        if (a->rc != MDB_SUCCESS)
            break;
        a->h[i] = md_hash64(a->k[i].mv_data, a->k[i].mv_size);
        kv_prefetch(m, a->h[i]);
        a->n++;
    }
}

/* The usual case without sorting the recomputed records: each live record is
 * looked up. Equal when every live record is found with the same value and
 * there are as many; then the derived digest is the live one. */
static md_err_t compare_fast(md_txn_t *t, md_derived_db_t which, const kv_t *m, side_t *h,
                             md_derived_report_t *rep, bool *equal, md_error_t *err)
{
    md_db_t db = which == MD_DERIVED_STATE ? MD_DB_STATE : MD_DB_OUTCOMES;
    MDB_cursor *cur = NULL;
    ahead_t *a = md_calloc(1, sizeof *a);
    uint64_t n = 0;
    *equal = true;
    int rc = mdb_cursor_open(md_txn_mdb(t), md_txn_dbi(t, db), &cur);
    if (rc != MDB_SUCCESS) {
        free(a);
        return md_store_err(rc, err, "derived: cursor");
    }
    a->rc = mdb_cursor_get(cur, &a->k[0], &a->v[0], MDB_FIRST);
    if (a->rc == MDB_SUCCESS) {
        a->h[0] = md_hash64(a->k[0].mv_data, a->k[0].mv_size);
        a->n = 1;
    }
    for (ahead_fill(a, cur, m); a->n && *equal; ahead_fill(a, cur, m)) {
        if (a->n > AHEAD / 2)
            kv_prefetch_blob(m, a->h[(a->head + AHEAD / 2) % AHEAD]);
        const MDB_val *k = &a->k[a->head], *v = &a->v[a->head];
        const kv_ent_t *e = m->cap ? kv_slot(m, a->h[a->head], k->mv_data, k->mv_size) : NULL;
        *equal = e && e->blob && e->vlen == v->mv_size &&
                 memcmp(e->blob + e->klen, v->mv_data, e->vlen) == 0;
        digest_pair(h->live, k->mv_data, k->mv_size, v->mv_data, v->mv_size);
        n++;
        a->head = (a->head + 1) % AHEAD;
        a->n--;
    }
    rc = a->rc;
    mdb_cursor_close(cur);
    free(a);
    if (rc != MDB_NOTFOUND && rc != MDB_SUCCESS)
        return md_store_err(rc, err, "derived: scan");
    *equal = *equal && n == m->n;
    rep->live_entries[which] = rep->derived_entries[which] = n;
    return MD_OK;
}

static EVP_MD_CTX *sha_new(void)
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (h == NULL || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        fprintf(stderr, "marketd: out of memory (EVP_MD_CTX_new)\n");
        abort();
    }
    return h;
}

static md_err_t compare_all(md_txn_t *t, derive_t *d, md_derived_report_t *rep, md_error_t *err)
{
    md_err_t rc = MD_OK;
    for (int i = 0; i < MD_DERIVED_COUNT_ && rc == MD_OK; i++) {
        side_t h = {sha_new(), sha_new()};
        unsigned int len = 0;
        bool equal = false;
        rc = compare_fast(t, (md_derived_db_t)i, &d->db[i], &h, rep, &equal, err);
        if (rc == MD_OK && equal) {
            EVP_DigestFinal_ex(h.live, rep->live[i], &len);
            memcpy(rep->derived[i], rep->live[i], MD_HASH_LEN);
        } else if (rc == MD_OK) { /* a difference: both sides in key order, to name it */
            EVP_DigestInit_ex(h.live, EVP_sha256(), NULL);
            rep->live_entries[i] = rep->derived_entries[i] = 0;
            rc = compare_db(t, (md_derived_db_t)i, &d->db[i], &h, rep, err);
            EVP_DigestFinal_ex(h.live, rep->live[i], &len);
            EVP_DigestFinal_ex(h.derived, rep->derived[i], &len);
        }
        EVP_MD_CTX_free(h.live);
        EVP_MD_CTX_free(h.derived);
    }
    if (rc == MD_OK && rep->bad >= 0)
        rc = md_error_set(err, MD_ECORRUPT,
                          "%s differ from a recompute from the log: first differing key "
                          "'%.200s' (%s)",
                          md_derived_name((md_derived_db_t)rep->bad), rep->key, rep->diff);
    return rc;
}

/* The outcomes of commands accepted with no events (MD_OUTCOME_UNLOGGED, Tick)
 * are in no event: each one the log does not contradict (no event records an
 * outcome for its command_id) is taken as stored, and counted. */
static md_err_t adopt_unlogged(md_txn_t *t, kv_t *m, md_derived_report_t *rep, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_cursor_open(md_txn_mdb(t), md_txn_dbi(t, MD_DB_OUTCOMES), &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "derived: cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (md_outcome_unlogged(v.mv_data, v.mv_size) && !kv_get(m, k.mv_data, k.mv_size)) {
            kv_put(m, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
            rep->unlogged++;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "derived: scan");
}

static bool db_empty(md_txn_t *t, md_db_t db)
{
    MDB_stat st;
    return mdb_stat(md_txn_mdb(t), md_txn_dbi(t, db), &st) == MDB_SUCCESS && st.ms_entries == 0;
}

/* The entries of the live database of @p which: the recompute's expected size,
 * bounded by the events (a record or an outcome comes from an event, but for
 * unlogged outcomes, which only make the table grow as it fills). */
static size_t live_entries(md_txn_t *t, md_derived_db_t which, uint64_t head)
{
    MDB_stat st;
    md_db_t db = which == MD_DERIVED_STATE ? MD_DB_STATE : MD_DB_OUTCOMES;
    if (mdb_stat(md_txn_mdb(t), md_txn_dbi(t, db), &st) != MDB_SUCCESS)
        return 0;
    return st.ms_entries < head ? st.ms_entries : (size_t)head;
}

const char *md_derived_name(md_derived_db_t db)
{
    return db == MD_DERIVED_STATE ? "state" : db == MD_DERIVED_OUTCOMES ? "outcomes" : "";
}

md_err_t md_derived_verify(md_txn_t *t, md_progress_fn progress, void *pctx,
                           md_derived_report_t *rep, md_error_t *err)
{
    derive_t *d = md_calloc(1, sizeof *d);
    uint64_t head = 0;
    memset(rep, 0, sizeof *rep);
    rep->bad = -1;
    d->st = (md_state_t){
        &d->db[MD_DERIVED_STATE], state_get, state_put, state_version, state_seek, state_del};
    d->progress = progress;
    d->pctx = pctx;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    d->total = head;
    if (rc == MD_OK && head && db_empty(t, MD_DB_STATE) && db_empty(t, MD_DB_OUTCOMES))
        rc = md_error_set(err, MD_ENOTFOUND,
                          "the store has events but no rules' state and "
                          "no outcomes (a replay's output)");
    for (int i = 0; i < MD_DERIVED_COUNT_ && rc == MD_OK; i++)
        kv_resize(&d->db[i], live_entries(t, (md_derived_db_t)i, head));
    if (rc == MD_OK && head)
        rc = md_txn_scan(t, 1, head, derive_event, d, err);
    rep->events = d->n;
    if (rc == MD_OK && progress)
        progress(d->n, d->total, pctx);
    if (rc == MD_OK)
        rc = adopt_unlogged(t, &d->db[MD_DERIVED_OUTCOMES], rep, err);
    if (rc == MD_OK)
        rc = compare_all(t, d, rep, err);
    for (int i = 0; i < MD_DERIVED_COUNT_; i++)
        kv_free(&d->db[i]);
    free(d);
    return rc;
}

/* ---- stored offsets ------------------------------------------------------------------ */

md_err_t md_derived_offsets(md_txn_t *t, md_offset_fn fn, void *ctx, md_error_t *err)
{
    return md_txn_offset_scan(t, fn, ctx, err);
}
