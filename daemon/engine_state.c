/*
 * engine_state.c - the rules' state (md_state_t) over the batch's write
 * transaction, with a read cache of state records that lives for one
 * transaction: entries are copies in an arena, "not found" is cached too,
 * writes go to LMDB and replace the entry, and the cache is emptied when a
 * batch transaction starts (so a re-run batch never sees a dead one's reads).
 */
#include "engine_int.h"

/* ---- the rules' state over the write transaction ----------------------------- */

/* A copy of @p n bytes in the arena (valid until cache_reset). */
static const unsigned char *cache_copy(state_cache_t *c, const void *p, size_t n)
{
    cache_block_t *b = c->blocks;
    if (b == NULL || b->cap - b->used < n) {
        size_t cap = n > CACHE_BLOCK ? n : CACHE_BLOCK;
        b = md_malloc(sizeof *b + cap);
        b->next = c->blocks, b->used = 0, b->cap = cap;
        c->blocks = b;
    }
    unsigned char *out = b->data + b->used;
    if (n)
        memcpy(out, p, n);
    b->used += n;
    return out;
}

static cache_ent_t *cache_slot(state_cache_t *c, uint64_t h, const void *key, size_t klen)
{
    for (size_t i = h & (c->cap - 1);; i = (i + 1) & (c->cap - 1)) {
        cache_ent_t *e = &c->slots[i];
        if (e->key == NULL ||
            (e->hash == (uint32_t)h && e->klen == klen && memcmp(e->key, key, klen) == 0))
            return e;
    }
}

static void cache_grow(state_cache_t *c)
{
    cache_ent_t *old = c->slots;
    size_t oldcap = c->cap;
    c->cap = oldcap ? 2 * oldcap : 4096;
    c->slots = md_calloc(c->cap, sizeof *c->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            *cache_slot(c, old[i].hash, old[i].key, old[i].klen) = old[i];
    free(old);
}

/* Empties the cache, keeping one block and the slot array for the next batch. */
void md__eng_cache_reset(state_cache_t *c)
{
    while (c->blocks && c->blocks->next) {
        cache_block_t *b = c->blocks;
        c->blocks = b->next;
        free(b);
    }
    if (c->blocks)
        c->blocks->used = 0;
    if (c->n)
        memset(c->slots, 0, c->cap * sizeof *c->slots);
    c->n = 0;
    md_buf_reset(&c->dirty);
}

void md__eng_cache_free(state_cache_t *c)
{
    md__eng_cache_reset(c);
    free(c->blocks);
    free(c->slots);
    md_buf_release(&c->dirty);
    memset(c, 0, sizeof *c);
}

/* A written entry, by its key (arena copies do not move; slots do). */
typedef struct dirty_ref {
    const unsigned char *key, *val; /* val: filled when the batch's writes are flushed */
    uint32_t klen, vlen;
} dirty_ref_t;

/* Records key -> val (NULL: not found); @p dirty: a write that LMDB has not
 * seen yet (md__eng_state_flush writes it). */
static const unsigned char *cache_set(state_cache_t *c, const void *key, size_t klen,
                                      const void *val, size_t vlen, bool dirty)
{
    if (2 * (c->n + 1) > c->cap)
        cache_grow(c);
    uint64_t h = md_hash64(key, klen);
    cache_ent_t *e = cache_slot(c, h, key, klen);
    if (e->key == NULL) {
        e->key = cache_copy(c, key, klen);
        e->klen = (uint32_t)klen;
        e->hash = (uint32_t)h;
        e->dirty = 0;
        c->n++;
    }
    e->val = val ? cache_copy(c, val, vlen) : NULL;
    e->vlen = val ? (uint32_t)vlen : 0;
    if (dirty && !e->dirty) {
        dirty_ref_t r = {e->key, NULL, (uint32_t)klen, 0};
        md_buf_append(&c->dirty, &r, sizeof r);
        e->dirty = 1;
    }
    return e->val;
}

static int dirty_cmp(const void *a, const void *b)
{
    const dirty_ref_t *x = a, *y = b;
    int c = memcmp(x->key, y->key, x->klen < y->klen ? x->klen : y->klen);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

/*
 * Writes every entry written since the last flush to LMDB, once per key, in
 * key order (neighbouring keys share pages). Deferring the writes to here: a
 * batch wrote ~1.8 times per distinct key (a provider's or buyer's record on
 * each of their orders), each a B-tree descent. Called at the batch's end and
 * before a seek that LMDB must answer; a failure fails the batch.
 */
/*
 * The values of the @p n written entries, their dirty marks cleared: looked up
 * one by one when they are few; when they are many, a pass over the slots in
 * order finds them (a random lookup each missed the CPU's caches: ~2% of the
 * writer's samples) and lists them again.
 */
static dirty_ref_t *dirty_values(state_cache_t *c, size_t n)
{
    dirty_ref_t *r = (dirty_ref_t *)(void *)c->dirty.p;
    if (8 * n < c->cap) {
        for (size_t i = 0; i < n; i++) {
            cache_ent_t *e = cache_slot(c, md_hash64(r[i].key, r[i].klen), r[i].key, r[i].klen);
            r[i].val = e->val, r[i].vlen = e->vlen, e->dirty = 0;
        }
        return r;
    }
    size_t k = 0;
    for (size_t i = 0; i < c->cap; i++) {
        cache_ent_t *e = &c->slots[i];
        if (e->key && e->dirty)
            r[k++] = (dirty_ref_t){e->key, e->val, e->klen, e->vlen}, e->dirty = 0;
    }
    return r; /* k == n: every dirty entry is listed once */
}

md_err_t md__eng_state_flush(state_ctx_t *s, md_error_t *err)
{
    state_cache_t *c = s->cache;
    size_t n = c->dirty.len / sizeof(dirty_ref_t);
    MDB_txn *txn = md_txn_mdb(s->t);
    MDB_dbi dbi = md_txn_dbi(s->t, MD_DB_STATE);
    md_err_t rc = MD_OK;
    if (n == 0)
        return MD_OK;
    dirty_ref_t *r = dirty_values(c, n);
    if (n > 1)
        qsort(r, n, sizeof *r, dirty_cmp);
    for (size_t i = 0; i < n && rc == MD_OK; i++) {
        MDB_val k = {r[i].klen, (void *)r[i].key}, v = {r[i].vlen, (void *)r[i].val};
        int mrc = r[i].val ? mdb_put(txn, dbi, &k, &v, 0) : mdb_del(txn, dbi, &k, NULL);
        if (mrc == MDB_NOTFOUND && r[i].val == NULL)
            mrc = MDB_SUCCESS; /* deleting a missing key */
        rc = md_store_err(mrc, err, r[i].val ? "put state" : "delete state");
    }
    md_buf_reset(&c->dirty);
    return rc;
}

/* LMDB's default order of keys: bytewise, a prefix first. */
static int key_cmp(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c ? c : (an > bn) - (an < bn);
}

/* A put or del of @p key forgets the memo when the key lies between the key
 * sought and the key found (or after the key sought when none was found). */
static void seek_memo_touch(seek_memo_t *m, const void *key, size_t klen)
{
    if (m->valid && key_cmp(key, klen, m->key, m->klen) >= 0 &&
        (!m->found || key_cmp(key, klen, m->out, m->olen) <= 0))
        m->valid = false;
}

/* Answers from the memo: the same key sought with nothing written in between. */
static md_err_t seek_memo_answer(seek_memo_t *m, const void **okey, size_t *oklen)
{
    if (!m->found)
        return MD_ENOTFOUND;
    *okey = m->out;
    *oklen = m->olen;
    return MD_OK;
}

static md_err_t state_get(void *ctx, const void *key, size_t klen, const void **val, size_t *vlen)
{
    state_ctx_t *s = ctx;
    state_cache_t *c = s->cache;
    if (c->cap) {
        const cache_ent_t *e = cache_slot(c, md_hash64(key, klen), key, klen);
        if (e->key) {
            *val = e->val, *vlen = e->vlen;
            return e->val ? MD_OK : MD_ENOTFOUND;
        }
    }
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &k, &v);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, NULL, "get state");
    const unsigned char *copy =
        cache_set(c, key, klen, rc == MDB_SUCCESS ? v.mv_data : NULL, v.mv_size, false);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    *val = copy;
    *vlen = v.mv_size;
    return MD_OK;
}

/* Keys LMDB would refuse are refused here, at the put, as LMDB did when puts
 * went to it at once (MDB_BAD_VALSIZE). */
static md_err_t check_key(size_t klen)
{
    return klen == 0 || klen > SEEK_KEY_MAX - 1 ? md_store_err(MDB_BAD_VALSIZE, NULL, "state key")
                                                : MD_OK;
}

static md_err_t state_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    state_ctx_t *s = ctx;
    md_err_t rc = check_key(klen);
    if (rc != MD_OK)
        return rc;
    seek_memo_touch(&s->seek, key, klen);
    cache_set(s->cache, key, klen, val, vlen, true);
    return MD_OK;
}

static md_err_t state_version(void *ctx, const char *stream, uint64_t *version)
{
    return md_txn_stream_version(((state_ctx_t *)ctx)->t, stream, version, NULL);
}

/* Reads LMDB, after writing what the batch wrote since the last flush; the
 * cache is not used, the memo of the last seek is (no flush then). The key
 * found is a copy, valid until the next seek, put or del. */
static md_err_t state_seek(void *ctx, const void *key, size_t klen, const void **okey,
                           size_t *oklen)
{
    state_ctx_t *s = ctx;
    seek_memo_t *m = &s->seek;
    if (m->valid && m->klen == klen && memcmp(m->key, key, klen) == 0)
        return seek_memo_answer(m, okey, oklen);
    m->valid = false;
    md_err_t frc = md__eng_state_flush(s, NULL);
    if (frc != MD_OK)
        return frc;
    MDB_cursor *cur;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_cursor_open(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, NULL, "seek state");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, NULL, "seek state");
    if (klen > SEEK_KEY_MAX || (rc == MDB_SUCCESS && k.mv_size > SEEK_KEY_MAX))
        return md_error_set(NULL, MD_EINVAL, "state key of more than %d bytes", SEEK_KEY_MAX);
    memmove(m->key, key, klen); /* key may be the memo's last answer */
    m->klen = klen;
    m->found = rc == MDB_SUCCESS;
    m->olen = m->found ? k.mv_size : 0;
    if (m->found)
        memcpy(m->out, k.mv_data, k.mv_size);
    m->valid = true;
    return seek_memo_answer(m, okey, oklen);
}

static md_err_t state_del(void *ctx, const void *key, size_t klen)
{
    state_ctx_t *s = ctx;
    md_err_t rc = check_key(klen);
    if (rc != MD_OK)
        return rc;
    seek_memo_touch(&s->seek, key, klen);
    cache_set(s->cache, key, klen, NULL, 0, true);
    return MD_OK;
}

md_state_t md__eng_txn_state(state_ctx_t *s)
{
    md_state_t st = {s, state_get, state_put, state_version, state_seek, state_del};
    return st;
}
