/*
 * engine.c - one durable write transaction per batch: decode, deduplicate,
 * decide, append, evolve, project, record outcomes, offsets and outbox.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_engine.h"
#include "md_metrics.h"
#include "md_rules.h"
#include "md_base.h"

#define MAX_HOOKS 8
#define DEFAULT_OPERATOR "operator"
#define DEFAULT_MAX_MESSAGE ((size_t)1 << 20)

_Static_assert(MD_CODE_COUNT_ <= 64, "md_engine_stats_t.by_code is too small");

typedef struct hook {
    md_event_hook_fn fn;
    void *ctx;
} hook_t;

typedef struct batch_hooks {
    md_batch_hook_fn begin, end;
    void *ctx;
} batch_hooks_t;

/*
 * A read cache of state records for the batch's transaction. decide and
 * evolve read the same few records many times (the platform's settings and
 * maintenance windows for every command, an order or member more than once
 * per command): each read is otherwise a B-tree descent. Entries are copies
 * (LMDB's pointers into dirty pages move when the transaction writes), kept in
 * an arena of blocks that lives for one transaction, so a pointer handed out
 * stays valid until the batch ends. Writes go to LMDB and replace the entry.
 * "Not found" is cached too. The cache is emptied when a batch transaction
 * starts (a batch re-run after MDB_MAP_FULL starts empty as well).
 */
#define CACHE_BLOCK ((size_t)64 << 10)

typedef struct cache_ent {
    uint64_t hash;
    const unsigned char *key, *val;   /* key NULL: an empty slot; val NULL: not found */
    uint32_t klen, vlen;
} cache_ent_t;

typedef struct cache_block {
    struct cache_block *next;
    size_t used, cap;
    unsigned char data[];
} cache_block_t;

typedef struct state_cache {
    cache_ent_t *slots;
    size_t cap, n;                    /* cap: a power of two */
    cache_block_t *blocks;            /* newest first */
} state_cache_t;

typedef struct state_ctx {
    md_txn_t *t;
    state_cache_t *cache;
} state_ctx_t;

struct md_engine {
    md_store_t *store;
    md_engine_opts_t opts;       /* strings below are owned copies */
    char *operator_id, *results_topic, *events_topic, *commands_topic, *deadletter_topic;
    md_batch_hook_fn batch_hook;
    void *batch_ctx;
    hook_t hooks[MAX_HOOKS];
    int nhooks;
    batch_hooks_t bhooks[MAX_HOOKS];
    int nbhooks;
    md_engine_stats_t stats, pending; /* pending: counts of the batch in progress */
    /* Per batch (reused): the command being decided, the decision, scratch
     * buffers. Commands are decoded one at a time as they are decided, not all
     * before the batch: an md_command_t is 5 KB, so a whole batch of them was
     * 5 MB of memory per 1000 commands (docs/performance.md, memory). */
    md_command_t cmd;
    md_decision_t decision;
    state_cache_t cache;         /* state records read or written in this batch */
    struct decoder *dec;         /* decoding ahead (NULL until a batch needs it) */
    bool dec_on;                 /* this run of the batch decodes ahead */
    state_ctx_t sctx;
    md_buf_t data, out, refs, hdr;
    MDB_dbi results_dbi;  /* command_id -> its result line (a duplicate's "original") */
    const md_input_t *in;
    size_t n;
    int64_t wall_now, last_now;
    bool force_bootstrap;
};

/* ---- the rules' state over the write transaction ----------------------------- */

static uint64_t cache_hash(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 14695981039346656037ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

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
        if (e->key == NULL || (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0))
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
static void cache_reset(state_cache_t *c)
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
}

static void cache_free(state_cache_t *c)
{
    cache_reset(c);
    free(c->blocks);
    free(c->slots);
    memset(c, 0, sizeof *c);
}

/* Records key -> val (NULL: not found). */
static const unsigned char *cache_set(state_cache_t *c, const void *key, size_t klen,
                                      const void *val, size_t vlen)
{
    if (2 * (c->n + 1) > c->cap)
        cache_grow(c);
    uint64_t h = cache_hash(key, klen);
    cache_ent_t *e = cache_slot(c, h, key, klen);
    if (e->key == NULL) {
        e->key = cache_copy(c, key, klen);
        e->klen = (uint32_t)klen;
        e->hash = h;
        c->n++;
    }
    e->val = val ? cache_copy(c, val, vlen) : NULL;
    e->vlen = val ? (uint32_t)vlen : 0;
    return e->val;
}

static md_err_t state_get(void *ctx, const void *key, size_t klen, const void **val, size_t *vlen)
{
    state_ctx_t *s = ctx;
    state_cache_t *c = s->cache;
    if (c->cap) {
        const cache_ent_t *e = cache_slot(c, cache_hash(key, klen), key, klen);
        if (e->key) {
            *val = e->val, *vlen = e->vlen;
            return e->val ? MD_OK : MD_ENOTFOUND;
        }
    }
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &k, &v);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, NULL, "get state");
    const unsigned char *copy = cache_set(c, key, klen, rc == MDB_SUCCESS ? v.mv_data : NULL,
                                          v.mv_size);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    *val = copy;
    *vlen = v.mv_size;
    return MD_OK;
}

static md_err_t state_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    state_ctx_t *s = ctx;
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    md_err_t rc = md_store_err(mdb_put(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &k, &v, 0),
                               NULL, "put state");
    if (rc == MD_OK)
        cache_set(s->cache, key, klen, val, vlen);
    return rc;
}

static md_err_t state_version(void *ctx, const char *stream, uint64_t *version)
{
    return md_txn_stream_version(((state_ctx_t *)ctx)->t, stream, version, NULL);
}

/* Reads LMDB (writes go there at once, so it is up to date); the cache is not used. */
static md_err_t state_seek(void *ctx, const void *key, size_t klen, const void **okey,
                           size_t *oklen)
{
    state_ctx_t *s = ctx;
    MDB_cursor *cur;
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_cursor_open(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, NULL, "seek state");
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, NULL, "seek state");
    *okey = k.mv_data;
    *oklen = k.mv_size;
    return MD_OK;
}

static md_err_t state_del(void *ctx, const void *key, size_t klen)
{
    state_ctx_t *s = ctx;
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(md_txn_mdb(s->t), md_txn_dbi(s->t, MD_DB_STATE), &k, NULL);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return md_store_err(rc, NULL, "delete state");
    if (s->cache->cap)
        cache_set(s->cache, key, klen, NULL, 0);
    return MD_OK;
}

static md_state_t txn_state(state_ctx_t *s)
{
    md_state_t st = {s, state_get, state_put, state_version, state_seek, state_del};
    return st;
}

static void decoder_free(md_engine_t *e);

/* ---- lifecycle ------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? md_strdup(s) : NULL;
}

md_err_t md_engine_new(md_store_t *store, const md_engine_opts_t *opts, md_engine_t **out,
                       md_error_t *err)
{
    md_engine_opts_t o = {0};
    if (opts)
        o = *opts;
    const char *op = o.operator_id ? o.operator_id : DEFAULT_OPERATOR;
    if (!md_valid_id(op, strlen(op)))
        return md_error_set(err, MD_EINVAL, "operator id '%s' is not a valid id", op);
    MDB_dbi results_dbi;
    md_err_t rc = md_store_dbi(store, "results", 0, &results_dbi, err);
    if (rc != MD_OK)
        return rc;
    md_engine_t *e = md_calloc(1, sizeof *e);
    e->store = store;
    e->results_dbi = results_dbi;
    e->operator_id = md_strdup(op);
    e->results_topic = dup_or_null(o.results_topic);
    e->events_topic = dup_or_null(o.events_topic);
    e->commands_topic = dup_or_null(o.commands_topic);
    e->deadletter_topic = dup_or_null(o.deadletter_topic);
    e->opts = o;
    e->opts.operator_id = e->operator_id;
    e->opts.results_topic = e->results_topic;
    e->opts.events_topic = e->events_topic;
    e->opts.commands_topic = e->commands_topic;
    e->opts.deadletter_topic = e->deadletter_topic;
    if (e->opts.max_message_bytes == 0)
        e->opts.max_message_bytes = DEFAULT_MAX_MESSAGE;
    md_buf_init(&e->data);
    md_buf_init(&e->out);
    md_buf_init(&e->refs);
    md_buf_init(&e->hdr);
    *out = e;
    return MD_OK;
}

void md_engine_free(md_engine_t *e)
{
    if (e == NULL)
        return;
    free(e->operator_id);
    free(e->results_topic);
    free(e->events_topic);
    free(e->commands_topic);
    free(e->deadletter_topic);
    md_buf_release(&e->data);
    md_buf_release(&e->out);
    md_buf_release(&e->refs);
    md_buf_release(&e->hdr);
    cache_free(&e->cache);
    decoder_free(e);
    free(e);
}

md_err_t md_engine_add_hook(md_engine_t *e, md_event_hook_fn fn, void *ctx, md_error_t *err)
{
    if (e->nhooks == MAX_HOOKS)
        return md_error_set(err, MD_EINVAL, "more than %d engine hooks", MAX_HOOKS);
    e->hooks[e->nhooks++] = (hook_t){fn, ctx};
    return MD_OK;
}

md_err_t md_engine_add_batch_hooks(md_engine_t *e, md_batch_hook_fn begin, md_batch_hook_fn end,
                                   void *ctx, md_error_t *err)
{
    if (e->nbhooks == MAX_HOOKS)
        return md_error_set(err, MD_EINVAL, "more than %d engine batch hooks", MAX_HOOKS);
    e->bhooks[e->nbhooks++] = (batch_hooks_t){begin, end, ctx};
    return MD_OK;
}

/* Calls every begin (@p end false) or end hook, in the order they were added. */
static md_err_t run_batch_hooks(md_engine_t *e, md_txn_t *t, bool end, md_error_t *err)
{
    for (int i = 0; i < e->nbhooks; i++) {
        md_batch_hook_fn fn = end ? e->bhooks[i].end : e->bhooks[i].begin;
        md_err_t rc = fn ? fn(t, e->bhooks[i].ctx, err) : MD_OK;
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

void md_engine_set_batch_hook(md_engine_t *e, md_batch_hook_fn fn, void *ctx)
{
    e->batch_hook = fn;
    e->batch_ctx = ctx;
}

const md_engine_stats_t *md_engine_stats(const md_engine_t *e)
{
    return &e->stats;
}

/* ---- decoding ---------------------------------------------------------------------- */

/* A message over the size limit is MALFORMED without being parsed. */
static void reject_oversized(const md_input_t *in, size_t max, md_command_t *c)
{
    unsigned int n = 0;
    memset(c, 0, offsetof(md_command_t, arena));
    c->status = MD_DECODE_MALFORMED;
    snprintf(c->detail, sizeof c->detail, "message of %zu bytes exceeds the limit of %zu",
             in->len, max);
    if (!EVP_Digest(in->bytes, in->len, c->sha256, &n, EVP_sha256(), NULL)) {
        fprintf(stderr, "marketd: SHA-256 failed\n");
        abort();
    }
}

/* A message whose content-type is neither JSON nor msgpack is MALFORMED
 * unread: guessing JSON would decide what the sender did not mean. */
static void reject_content_type(const md_input_t *in, md_command_t *c)
{
    reject_oversized(in, 0, c);
    size_t n = in->bad_content_type_len < 64 ? in->bad_content_type_len : 64;
    snprintf(c->detail, sizeof c->detail,
             "unsupported content-type '%.*s' (application/json or application/msgpack)",
             (int)n, in->bad_content_type);
    if (!md_valid_utf8(c->detail, strlen(c->detail)))
        snprintf(c->detail, sizeof c->detail, "unsupported content-type");
}

/* Decodes input i of the batch into @p c. */
static void decode_one(md_engine_t *e, size_t i, md_command_t *c)
{
    const md_input_t *in = &e->in[i];
    md_decode_opts_t o = {.require_issued_at = e->opts.clock == MD_CLOCK_COMMAND};
    if (in->bad_content_type)
        reject_content_type(in, c);
    else if (in->len > e->opts.max_message_bytes)
        reject_oversized(in, e->opts.max_message_bytes, c);
    else if (in->msgpack)
        md_command_decode_msgpack(in->bytes, in->len, &o, c);
    else
        md_command_decode_json(in->bytes, in->len, &o, c);
}

/* ---- decoding ahead on a second thread ------------------------------------------------ */

/*
 * While the writer decides, appends and projects command i, a helper thread
 * decodes the commands after it (JSON parsing was a quarter of the writer's
 * instructions: docs/performance.md) into a ring of DECODE_RING slots: memory
 * stays DECODE_RING commands whatever the batch size. Decoding is a pure
 * function of the input bytes, so the results are those of decoding inline.
 * A session covers one run of batch_fn (a batch re-run after MDB_MAP_FULL
 * starts a new one); batches under DECODE_MIN commands are decoded inline (a
 * hand-off would only add a wake-up to the latency of small batches). The
 * writer uses slot i % DECODE_RING from dec_get(i) until dec_get(i + 1) or
 * dec_end; the helper writes only slots of commands not yet handed out.
 */
#define DECODE_RING 32
#define DECODE_MIN 32
#define DECODE_CHUNK 4            /* commands decoded between two looks at the lock */

typedef struct decoder {
    pthread_t th;
    bool started, failed;         /* failed: no thread could be created (decode inline) */
    pthread_mutex_t mu;
    pthread_cond_t work, ready;   /* the helper waits on work, the writer on ready */
    md_command_t *slot;           /* DECODE_RING */
    /* under mu: */
    bool active, quit, busy;      /* busy: the helper is decoding outside the lock */
    bool helper_waits, writer_waits;
    size_t n, done, taken;        /* session size; decoded; handed out (and done with) */
} decoder_t;

static void decode_one(md_engine_t *e, size_t i, md_command_t *c);

static void *decoder_main(void *arg)
{
    md_engine_t *e = arg;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->quit && !(d->active && d->done < d->n && d->done - d->taken < DECODE_RING)) {
            d->helper_waits = true;
            pthread_cond_wait(&d->work, &d->mu);
        }
        d->helper_waits = false;
        if (d->quit)
            break;
        size_t from = d->done, to = d->taken + DECODE_RING;
        if (to > d->n)
            to = d->n;
        if (to > from + DECODE_CHUNK)
            to = from + DECODE_CHUNK;
        d->busy = true;
        pthread_mutex_unlock(&d->mu);
        for (size_t i = from; i < to; i++)
            decode_one(e, i, &d->slot[i % DECODE_RING]);
        pthread_mutex_lock(&d->mu);
        d->busy = false;
        if (d->active)
            d->done = to;
        if (d->writer_waits)
            pthread_cond_signal(&d->ready);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Starts the helper on first use; false when it cannot run (decode inline). */
static bool decoder_ready(md_engine_t *e)
{
    if (e->dec == NULL) {
        decoder_t *d = md_calloc(1, sizeof *d);
        d->slot = md_malloc(DECODE_RING * sizeof *d->slot);
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->work, NULL);
        pthread_cond_init(&d->ready, NULL);
        e->dec = d;
        d->started = pthread_create(&d->th, NULL, decoder_main, e) == 0;
        d->failed = !d->started;
    }
    return !e->dec->failed;
}

static void decoder_free(md_engine_t *e)
{
    decoder_t *d = e->dec;
    if (d == NULL)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->quit = true;
        pthread_cond_signal(&d->work);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->th, NULL);
    }
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->ready);
    pthread_mutex_destroy(&d->mu);
    free(d->slot);
    free(d);
    e->dec = NULL;
}

/* Starts a session over the batch's e->n inputs, when it is worth one. */
static void dec_begin(md_engine_t *e)
{
    e->dec_on = e->n >= DECODE_MIN && decoder_ready(e);
    if (!e->dec_on)
        return;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    d->active = true;
    d->n = e->n;
    d->done = d->taken = 0;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
}

/* Command i of the session, decoded (the writer is done with command i - 1). */
static const md_command_t *dec_get(md_engine_t *e, size_t i)
{
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    d->taken = i;
    if (d->helper_waits && d->done < d->n && d->done - d->taken <= DECODE_RING / 2)
        pthread_cond_signal(&d->work);
    while (d->done <= i) {
        d->writer_waits = true;
        pthread_cond_wait(&d->ready, &d->mu);
    }
    d->writer_waits = false;
    pthread_mutex_unlock(&d->mu);
    return &d->slot[i % DECODE_RING];
}

/* Ends the session: the helper is idle when it returns. */
static void dec_end(md_engine_t *e)
{
    if (!e->dec_on)
        return;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    d->active = false;
    while (d->busy) {
        d->writer_waits = true;
        pthread_cond_wait(&d->ready, &d->mu);
    }
    d->writer_waits = false;
    pthread_mutex_unlock(&d->mu);
    e->dec_on = false;
}

/* ---- results ------------------------------------------------------------------------- */

/*
 * Result lines are written straight into the batch's output buffer, byte for
 * byte what jansson's compact dump of the same objects gives (keys in insertion
 * order, strings escaped as json_dumpb does without JSON_ENSURE_ASCII). Building
 * a json_t tree per command and dumping it cost about a fifth of the engine's
 * user time (perf, docs/performance.md).
 */
static void put_lit(md_buf_t *o, const char *s)
{
    md_buf_append(o, s, strlen(s));
}

/* A JSON string; invalid UTF-8 is not representable (jansson refuses it), so
 * the caller checks with md_valid_utf8 where the text is not ours. */
static void put_str(md_buf_t *o, const char *s)
{
    if (md_json_put_str(o, s, strlen(s)) != 0)
        md_buf_append(o, "null", 4); /* unreachable: callers pass checked text */
}

static void put_u64(md_buf_t *o, uint64_t v)
{
    char d[24];
    int i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    md_buf_append(o, d + i, sizeof d - (size_t)i);
}

/* "key":"value" with a leading comma; the pair is left out when the value is
 * not valid UTF-8, as json_object_set_new(json_string()) leaves it out. */
static void put_field(md_buf_t *o, const char *key, const char *value)
{
    if (!md_valid_utf8(value, strlen(value)))
        return;
    md_buf_append(o, ",\"", 2);
    put_lit(o, key);
    md_buf_append(o, "\":", 2);
    put_str(o, value);
}

/* ,"error":{"code":..,"clause":..|null[,"message":..][,"retryable":true]} */
static void put_error(md_buf_t *o, const char *code, const char *clause, const char *message,
                      bool retryable)
{
    put_lit(o, ",\"error\":{\"code\":");
    put_str(o, code);
    put_lit(o, ",\"clause\":");
    if (clause)
        put_str(o, clause);
    else
        put_lit(o, "null");
    if (message)
        put_field(o, "message", message);
    if (retryable)
        put_lit(o, ",\"retryable\":true");
    md_buf_append(o, "}", 1);
}

/* {"command_id":..|null[,"correlation_id":..],"status":".." (the object is left open) */
static void put_head(md_buf_t *o, const md_command_t *c, const char *status)
{
    put_lit(o, "{\"command_id\":");
    if (c->status != MD_DECODE_MALFORMED)
        put_str(o, c->command_id);
    else
        put_lit(o, "null");
    if (c->status != MD_DECODE_MALFORMED && c->has_correlation_id)
        put_field(o, "correlation_id", c->correlation_id);
    put_lit(o, ",\"status\":\"");
    put_lit(o, status);
    md_buf_append(o, "\"", 1);
}

/* What ties a MALFORMED result to its message: the SHA-256 of the bytes (as
 * in the dead letter) and, from Kafka, the partition and offset. */
static void put_malformed_origin(md_buf_t *o, const md_command_t *c, const md_input_t *in)
{
    char hex[65];
    md_hex(c->sha256, 32, hex);
    put_field(o, "sha256", hex);
    if (in->partition < 0)
        return;
    put_lit(o, ",\"partition\":");
    put_u64(o, (uint64_t)in->partition);
    put_lit(o, ",\"offset\":");
    put_u64(o, (uint64_t)(in->offset < 0 ? 0 : in->offset));
}


/* ---- outcomes (idempotency) --------------------------------------------------------- */

/*
 * Stored outcome: md_outcome_of_decision (the encoding verify recomputes).
 * The whole result line goes beside it, in the database "results"
 * (command_id -> result), which a duplicate carries as "original".
 */
static md_err_t put_outcome(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                            const md_decision_t *d, size_t at, md_error_t *err)
{
    char v[MD_OUTCOME_MAX];
    size_t n = md_outcome_of_decision(d, v);
    if (n == 0)
        return MD_OK;
    md_err_t rc = md_txn_outcome_put(t, c->command_id, v, n, err);
    MDB_val key = {strlen(c->command_id), (void *)c->command_id};
    MDB_val val = {e->out.len - at, e->out.p + at};
    if (rc == MD_OK)
        rc = md_store_err(mdb_put(md_txn_mdb(t), e->results_dbi, &key, &val, 0), err,
                          "put result");
    return rc;
}

/* The original result of @p command_id, appended as ,"original":{...}; none
 * for commands decided before results were kept. */
static md_err_t put_original(md_engine_t *e, md_txn_t *t, const char *command_id,
                             md_error_t *err)
{
    MDB_val key = {strlen(command_id), (void *)command_id}, val;
    int rc = mdb_get(md_txn_mdb(t), e->results_dbi, &key, &val);
    if (rc == MDB_NOTFOUND)
        return MD_OK;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get result");
    put_lit(&e->out, ",\"original\":");
    md_buf_append(&e->out, val.mv_data, val.mv_size);
    return MD_OK;
}

/* Answers a repeated command_id from its recorded outcome (the result goes to
 * e->out), or returns MD_ENOTFOUND when the command is new. */
static md_err_t answer_duplicate(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                                 md_error_t *err)
{
    const void *v = "A";
    size_t len = 1;
    if (strcmp(c->command_id, "bootstrap") != 0) {
        md_err_t rc = md_txn_outcome_get(t, c->command_id, &v, &len, err);
        if (rc != MD_OK)
            return rc;
    }
    const char *p = v;
    size_t head = len;
    put_head(&e->out, c, "duplicate");
    put_lit(&e->out, p[0] == 'A' ? ",\"original_status\":\"accepted\""
                                 : ",\"original_status\":\"rejected\"");
    if (p[0] == 'R' && head > 1) {
        char code[64];
        snprintf(code, sizeof code, "%.*s", (int)(head - 1), p + 1);
        if (md_valid_utf8(code, strlen(code)))
            put_error(&e->out, code, md_code_clause(md_code_find(code)), NULL, false);
    }
    md_err_t rc = put_original(e, t, c->command_id, err);
    if (rc != MD_OK)
        return rc;
    md_buf_append(&e->out, "}", 1);
    e->pending.duplicates++;
    return MD_OK;
}

/* ---- appending a decision ------------------------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src);
}

static md_err_t run_hooks(md_engine_t *e, md_txn_t *t, const md_event_t *ev, md_error_t *err)
{
    for (int i = 0; i < e->nhooks; i++) {
        md_err_t rc = e->hooks[i].fn(t, ev, e->hooks[i].ctx, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* The event goes out as a reference: the publisher renders its JSON from the
 * log when it sends it (the outbox would otherwise hold a second copy of every
 * event, written and deleted again: docs/performance.md). */
static md_err_t outbox_event(md_engine_t *e, md_txn_t *t, const md_event_t *ev,
                             md_error_t *err)
{
    if (e->events_topic == NULL)
        return MD_OK;
    md_outbox_msg_t m = {.topic = e->events_topic, .key = ev->stream,
                         .key_len = strlen(ev->stream), .event_seq = ev->seq};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/* Appends one new event of the decision, evolves the aggregates and runs the hooks. */
/* command_id and actor NULL: nil. */
static md_err_t append_one(md_engine_t *e, md_txn_t *t, const char *command_id,
                           const char *actor, md_new_event_t *ne, int64_t now, md_event_t *ev,
                           md_error_t *err)
{
    md_state_t st = txn_state(&e->sctx);
    memset(ev, 0, sizeof *ev);
    copy_str(ev->stream, sizeof ev->stream, ne->stream);
    copy_str(ev->type, sizeof ev->type, ne->type);
    ev->recorded_at = now;
    ev->has_command_id = command_id != NULL;
    if (ev->has_command_id)
        copy_str(ev->command_id, sizeof ev->command_id, command_id);
    ev->has_actor = ev->has_command_id && actor != NULL;
    if (ev->has_actor)
        copy_str(ev->actor, sizeof ev->actor, actor);
    md_buf_reset(&e->data);
    md_data_pack(&ne->data, &e->data);
    ev->data = e->data.p;
    ev->data_len = e->data.len;
    md_err_t rc = md_txn_append(t, ev, err);
    if (rc == MD_OK)
        rc = md_rules_evolve(&st, ev, err);
    if (rc == MD_OK)
        rc = run_hooks(e, t, ev, err);
    if (rc == MD_OK)
        rc = outbox_event(e, t, ev, err);
    e->pending.events++;
    return rc;
}

/* {"seq":..,"stream":..,"version":..,"type":..}, after a comma unless first. */
static void put_event_ref(md_buf_t *o, const md_event_t *ev, bool first)
{
    put_lit(o, first ? "{\"seq\":" : ",{\"seq\":");
    put_u64(o, ev->seq);
    put_lit(o, ",\"stream\":");
    put_str(o, ev->stream);
    put_lit(o, ",\"version\":");
    put_u64(o, ev->version);
    put_lit(o, ",\"type\":");
    put_str(o, ev->type);
    md_buf_append(o, "}", 1);
}

static void count_outcome(md_engine_t *e, const md_decision_t *d)
{
    if (d->accepted) {
        e->pending.accepted++;
        return;
    }
    e->pending.rejected++;
    if (d->malformed)
        e->pending.malformed++;
    if (d->code >= 0 && d->code < MD_CODE_COUNT_)
        e->pending.by_code[d->code]++;
}

/* Appends the decision's events, writes the result to e->out and records the
 * outcome (unless the rejection is retryable or the message MALFORMED). */
static md_err_t apply_decision(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                               const md_input_t *in, int64_t now, md_error_t *err)
{
    md_decision_t *d = &e->decision;
    md_err_t rc = MD_OK;
    size_t at = e->out.len;
    md_buf_reset(&e->refs);
    for (size_t i = 0; i < d->n_events && rc == MD_OK; i++) {
        md_event_t ev;
        const char *cid = c->status != MD_DECODE_MALFORMED ? c->command_id : NULL;
        if ((rc = append_one(e, t, cid, c->has_actor ? c->actor : NULL, &d->events[i], now,
                             &ev, err)) == MD_OK)
            put_event_ref(&e->refs, &ev, i == 0);
    }
    if (rc != MD_OK)
        return rc;
    count_outcome(e, d);
    put_head(&e->out, c, d->accepted ? "accepted" : "rejected");
    if (d->accepted) {
        put_lit(&e->out, ",\"events\":[");
        md_buf_append(&e->out, e->refs.p, e->refs.len);
        md_buf_append(&e->out, "]", 1);
    } else {
        put_error(&e->out, d->code_name, d->clause, d->message, d->retryable);
    }
    if (c->status == MD_DECODE_MALFORMED)
        put_malformed_origin(&e->out, c, in);
    md_buf_append(&e->out, "}", 1);
    if (d->accepted || (!d->retryable && !d->malformed))
        rc = put_outcome(e, t, c, d, at, err);
    return rc;
}

/* ---- the batch ------------------------------------------------------------------------ */

static int64_t command_now(md_engine_t *e, const md_command_t *c, const md_input_t *in)
{
    if (e->opts.clock == MD_CLOCK_WALL)
        return e->wall_now;
    if (e->opts.clock == MD_CLOCK_LOG) {
        if (in->timestamp_ms > e->last_now) /* monotone: max(previous now, log time) */
            e->last_now = in->timestamp_ms;
        return e->last_now;
    }
    if (c->status != MD_DECODE_MALFORMED && c->has_issued_at)
        e->last_now = c->issued_at;
    return e->last_now; /* a command without a valid time keeps the last one */
}

/*
 * The deterministic clocks' "previous now" lives in the store (meta "clock",
 * 8 bytes big-endian), written in the batch transaction: a restart, a replay
 * or another replica continues from the same value. An empty store keeps the
 * engine's initial value.
 */
#define META_CLOCK "clock"

static md_err_t load_clock(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    const unsigned char *v;
    size_t len;
    if (e->opts.clock == MD_CLOCK_WALL)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, META_CLOCK, (const void **)&v, &len, err);
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc == MD_OK && len != 8)
        return md_error_set(err, MD_ECORRUPT, "meta 'clock' has %zu bytes, not 8", len);
    if (rc == MD_OK) {
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | v[i];
        e->last_now = (int64_t)x;
    }
    return rc;
}

static md_err_t store_clock(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    unsigned char v[8];
    if (e->opts.clock == MD_CLOCK_WALL)
        return MD_OK;
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)((uint64_t)e->last_now >> (56 - 8 * i));
    return md_txn_meta_put(t, META_CLOCK, v, sizeof v, err);
}

static md_err_t outbox_result(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                              const unsigned char *line, size_t len, md_error_t *err)
{
    if (e->results_topic == NULL)
        return MD_OK;
    const char *key = c->status == MD_DECODE_MALFORMED ? "" : c->command_id;
    md_outbox_msg_t m = {.topic = e->results_topic, .key = key, .key_len = strlen(key),
                         .value = line, .value_len = len};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/* Appends the Kafka header name=value to @p h (name '\0' value '\0' pairs). */
static void put_header(md_buf_t *h, const char *name, const char *value)
{
    md_buf_append(h, name, strlen(name) + 1);
    md_buf_append(h, value, strlen(value) + 1);
}

/*
 * A MALFORMED message from Kafka goes to the dead-letter topic as it came,
 * with the reason, the digest and the size of its bytes in headers. A dead
 * letter never exceeds MD_DEADLETTER_MAX_BYTES, which every broker at its
 * defaults takes: a larger body is dropped (header body=dropped), a larger
 * key cut (header key=cut); the digest still names the original bytes.
 */
static md_err_t dead_letter(md_engine_t *e, md_txn_t *t, const md_input_t *in,
                           const md_command_t *c, md_error_t *err)
{
    char hex[65], num[32], note[160];
    if (e->deadletter_topic == NULL || c->status != MD_DECODE_MALFORMED)
        return MD_OK;
    md_hex(c->sha256, 32, hex);
    md_buf_reset(&e->hdr);
    put_header(&e->hdr, "reason", c->detail);
    put_header(&e->hdr, "sha256", hex);
    snprintf(num, sizeof num, "%zu", in->len);
    put_header(&e->hdr, "original_size", num);
    size_t key_len = in->key_len, room = MD_DEADLETTER_MAX_BYTES - MD_DEADLETTER_MAX_BYTES / 8;
    if (key_len > room / 2) {
        key_len = room / 2;
        snprintf(note, sizeof note, "cut: first %zu of %zu bytes", key_len, in->key_len);
        put_header(&e->hdr, "key", note);
    }
    const void *value = in->bytes;
    size_t value_len = in->len;
    if (key_len + e->hdr.len + value_len > room) {
        value = "";
        value_len = 0;
        snprintf(note, sizeof note, "dropped: %zu bytes exceed the dead-letter limit of %d",
                 in->len, MD_DEADLETTER_MAX_BYTES);
        put_header(&e->hdr, "body", note);
    }
    md_outbox_msg_t m = {.topic = e->deadletter_topic, .key = in->key, .key_len = key_len,
                         .headers = e->hdr.p, .headers_len = e->hdr.len, .value = value,
                         .value_len = value_len};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/*
 * Fires the timers due at now, in (deadline, arming seq) order, until none is
 * due (rules.md "Policy and timers"): their events go to the log, the hooks and
 * the events topic with recorded_at = the deadline, command_id "timer:<kind>:<id>"
 * and actor "system"; no result, no outcome. Evolving a firing's first event
 * disarms its timer (the index is written by evolve only).
 */
static md_err_t fire_timers(md_engine_t *e, md_txn_t *t, int64_t now, md_error_t *err)
{
    md_state_t st = txn_state(&e->sctx);
    for (;;) {
        md_timer_t tm;
        bool due = false;
        md_err_t rc = md_rules_timer_next(&st, now, &tm, &due, err);
        if (rc == MD_OK && due)
            rc = md_rules_timer_fire(&st, &tm, &e->decision, err);
        if (rc != MD_OK || !due)
            return rc;
        for (size_t i = 0; i < e->decision.n_events && rc == MD_OK; i++) {
            md_event_t ev;
            rc = append_one(e, t, tm.command_id, "system", &e->decision.events[i], tm.deadline,
                            &ev, err);
        }
        if (rc != MD_OK)
            return rc;
    }
}

/* Whether the line fires timers: not MALFORMED, and with clock = command only
 * with a valid issued_at (with wall and log, now is always the line's). */
static bool fires_timers(const md_engine_t *e, const md_command_t *c)
{
    return c->status != MD_DECODE_MALFORMED &&
           (e->opts.clock != MD_CLOCK_COMMAND || c->has_issued_at);
}

static md_err_t process_one(md_engine_t *e, md_txn_t *t, size_t i, md_error_t *err)
{
    const md_command_t *c = &e->cmd;
    md_err_t rc = MD_ENOTFOUND;
    if (e->dec_on)
        c = dec_get(e, i);
    else
        decode_one(e, i, &e->cmd);
    int64_t now = command_now(e, c, &e->in[i]);
    size_t at = e->out.len;
    if (fires_timers(e, c) && (rc = fire_timers(e, t, now, err)) != MD_OK)
        return rc;
    rc = MD_ENOTFOUND;
    if (c->status != MD_DECODE_MALFORMED)
        rc = answer_duplicate(e, t, c, err);
    if (rc == MD_ENOTFOUND) {
        md_state_t st = txn_state(&e->sctx);
        rc = md_rules_decide(&st, c, now, &e->decision, err);
        if (rc == MD_OK)
            rc = apply_decision(e, t, c, &e->in[i], now, err);
    }
    if (rc != MD_OK)
        return rc;
    md_buf_append(&e->out, "\n", 1);
    e->pending.commands++;
    rc = outbox_result(e, t, c, e->out.p + at, e->out.len - at - 1, err);
    return rc == MD_OK ? dead_letter(e, t, &e->in[i], c, err) : rc;
}

static int64_t first_now(md_engine_t *e);

static md_err_t bootstrap_in(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    uint64_t head;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc != MD_OK || head != 0)
        return rc;
    int64_t now = first_now(e);
    md_state_t st = txn_state(&e->sctx);
    rc = md_rules_bootstrap(&st, e->operator_id, now, &e->decision, err);
    for (size_t i = 0; i < e->decision.n_events && rc == MD_OK; i++) {
        md_event_t ev;
        rc = append_one(e, t, "bootstrap", "bootstrap", &e->decision.events[i], now, &ev, err);
    }
    return rc == MD_OK ? md_txn_outcome_put(t, "bootstrap", "A", 1, err) : rc;
}

/* Stores, per partition, the offset after the last message of the batch. */
static md_err_t put_offsets(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    if (e->commands_topic == NULL)
        return MD_OK;
    for (size_t i = 0; i < e->n; i++) {
        const md_input_t *in = &e->in[i];
        bool last = true;
        for (size_t j = i + 1; j < e->n && last; j++)
            last = e->in[j].partition != in->partition;
        if (in->partition >= 0 && last) {
            md_err_t rc = md_txn_offset_put(t, e->commands_topic, in->partition, in->offset + 1,
                                            err);
            if (rc != MD_OK)
                return rc;
        }
    }
    return MD_OK;
}

static int64_t first_now(md_engine_t *e)
{
    if (e->opts.clock == MD_CLOCK_WALL)
        return e->wall_now;
    if (e->opts.clock == MD_CLOCK_LOG)
        return e->n && e->in[0].timestamp_ms > e->last_now ? e->in[0].timestamp_ms
                                                             : e->last_now;
    for (size_t i = 0; i < e->n; i++) { /* the store's first batch only */
        decode_one(e, i, &e->cmd);
        if (e->cmd.status != MD_DECODE_MALFORMED && e->cmd.has_issued_at)
            return e->cmd.issued_at;
    }
    return e->last_now;
}

static md_err_t batch_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_engine_t *e = ctx;
    int64_t saved_now = e->last_now;
    cache_reset(&e->cache);
    e->sctx = (state_ctx_t){t, &e->cache};
    md_buf_reset(&e->out);
    memset(&e->pending, 0, sizeof e->pending);
    md_err_t rc = run_batch_hooks(e, t, false, err);
    if (rc == MD_OK)
        rc = load_clock(e, t, err);
    if (rc == MD_OK)
        dec_begin(e);
    /* The bootstrap rides with the first batch that has commands, so that its
     * recorded_at is that batch's time (deterministic with clock = command or log). */
    if (rc == MD_OK && (e->n || e->force_bootstrap))
        rc = bootstrap_in(e, t, err);
    for (size_t i = 0; i < e->n && rc == MD_OK; i++)
        rc = process_one(e, t, i, err);
    dec_end(e);
    if (rc == MD_OK)
        rc = put_offsets(e, t, err);
    if (rc == MD_OK && e->n)
        rc = store_clock(e, t, err);
    if (rc == MD_OK)
        rc = run_batch_hooks(e, t, true, err);
    if (rc == MD_OK && e->batch_hook)
        rc = e->batch_hook(t, e->batch_ctx, err);
    if (rc != MD_OK)
        e->last_now = saved_now; /* a retried batch starts from the same clock */
    return rc;
}

static void add_stats(md_engine_stats_t *a, const md_engine_stats_t *b)
{
    a->batches++;
    a->commands += b->commands;
    a->accepted += b->accepted;
    a->rejected += b->rejected;
    a->duplicates += b->duplicates;
    a->malformed += b->malformed;
    a->events += b->events;
    for (int i = 0; i < 64; i++)
        a->by_code[i] += b->by_code[i];
}

md_err_t md_engine_process(md_engine_t *e, const md_input_t *in, size_t n, int64_t now_ms,
                           md_buf_t *results, md_error_t *err)
{
    e->in = in;
    e->n = n;
    e->wall_now = now_ms;
    double t0 = md_mono_s();
    md_err_t rc = md_store_write(e->store, batch_fn, e, err);
    if (rc != MD_OK)
        return rc;
    add_stats(&e->stats, &e->pending);
    md_metrics_add_batch(&e->pending, md_mono_s() - t0);
    if (results)
        md_buf_append(results, e->out.p, e->out.len);
    return MD_OK;
}

md_err_t md_engine_bootstrap(md_engine_t *e, int64_t now_ms, md_error_t *err)
{
    e->n = 0;
    e->wall_now = now_ms;
    e->last_now = now_ms;
    e->force_bootstrap = true;
    md_err_t rc = md_store_write(e->store, batch_fn, e, err);
    e->force_bootstrap = false;
    return rc;
}

/* ---- the idle tick (timers.tick_ms) ----------------------------------------------------- */

typedef struct tick_ctx {
    md_engine_t *e;
    int64_t now;
} tick_ctx_t;

static md_err_t tick_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    tick_ctx_t *k = ctx;
    char when[25], line[256];
    md_format_time(k->now, when);
    int n = snprintf(line, sizeof line,
                     "{\"command_id\":\"tick-%lld\",\"type\":\"Tick\",\"actor\":\"%s\","
                     "\"issued_at\":\"%s\",\"data\":{}}",
                     (long long)k->now, k->e->operator_id, when);
    md_outbox_msg_t m = {.topic = k->e->commands_topic, .key = "tick", .key_len = 4,
                         .value = line, .value_len = (size_t)n};
    return md_txn_outbox_put(t, &m, NULL, err);
}

md_err_t md_engine_tick(md_engine_t *e, int64_t now_ms, md_error_t *err)
{
    tick_ctx_t k = {e, now_ms};
    if (e->commands_topic == NULL)
        return md_error_set(err, MD_EINVAL, "no commands topic to tick");
    return md_store_write(e->store, tick_fn, &k, err);
}
