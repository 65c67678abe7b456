/*
 * engine_int.h - the engine's insides, shared by its files (not a public
 * header): engine.c (the batch), engine_state.c (the rules' state over the
 * write transaction, with its read cache) and engine_decode.c (decoding, and
 * decoding ahead on a second thread). Only engine.c calls the others.
 */
#ifndef MD_ENGINE_INT_H
#define MD_ENGINE_INT_H

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"
#include "md_engine.h"
#include "md_metrics.h"
#include "md_rules.h"

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
 * stays valid until the batch ends. Writes replace the entry and reach LMDB
 * later, sorted by key, once per key (md__eng_state_flush: at the batch's end,
 * and before a seek that LMDB must answer). "Not found" is cached too. The cache is emptied when a batch transaction
 * starts (a batch re-run after MDB_MAP_FULL starts empty as well).
 */
#define CACHE_BLOCK ((size_t)64 << 10)

typedef struct cache_ent {
    const unsigned char *key, *val; /* key NULL: an empty slot; val NULL: not found */
    uint32_t hash;                  /* the low half of the key's hash */
    uint32_t klen, vlen;
    uint32_t dirty; /* written (or deleted) in the batch and not yet in LMDB */
} cache_ent_t;

typedef struct cache_block {
    struct cache_block *next;
    size_t used, cap;
    unsigned char data[];
} cache_block_t;

typedef struct state_cache {
    cache_ent_t *slots;
    size_t cap, n;         /* cap: a power of two */
    cache_block_t *blocks; /* newest first */
    md_buf_t dirty;        /* dirty_ref_t of the entries written since the last flush */
} state_cache_t;

/*
 * The last seek of the state and its answer, kept while no put or del falls
 * between the key sought and the key found (which could change the answer):
 * the timers seek their index once per command, and it changes only when a
 * timer is armed or disarmed (engine_state.c).
 */
#define SEEK_KEY_MAX 512 /* LMDB's largest key is 511 bytes */

typedef struct seek_memo {
    bool valid, found;
    size_t klen, olen;
    unsigned char key[SEEK_KEY_MAX], out[SEEK_KEY_MAX];
} seek_memo_t;

typedef struct state_ctx {
    md_txn_t *t;
    state_cache_t *cache;
    seek_memo_t seek; /* emptied with the ctx when a batch transaction starts */
} state_ctx_t;

struct md_engine {
    md_store_t *store;
    md_engine_opts_t opts; /* strings below are owned copies */
    char *operator_id, *results_topic, *events_topic, *commands_topic, *deadletter_topic;
    md_batch_hook_fn batch_hook;
    void *batch_ctx;
    md_commit_hook_fn commit_hook; /* after each committed write (md_engine_set_commit_hook) */
    void *commit_ctx;
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
    state_cache_t cache; /* state records read or written in this batch */
    struct decoder *dec; /* decoding ahead (NULL until a batch needs it) */
    bool dec_on;         /* this run of the batch decodes ahead */
    state_ctx_t sctx;
    md_buf_t data, out, refs, hdr;
    MDB_dbi results_dbi; /* command_id -> its result line (a duplicate's "original") */
    const md_input_t *in;
    size_t n;
    int64_t wall_now, last_now;
    bool force_bootstrap;
};


/* engine_state.c */
void md__eng_cache_reset(state_cache_t *c);
md_err_t md__eng_state_flush(state_ctx_t *s, md_error_t *err);
void md__eng_cache_free(state_cache_t *c);
md_state_t md__eng_txn_state(state_ctx_t *s);

/* engine_decode.c */
void md__eng_decode_one(md_engine_t *e, size_t i, md_command_t *c);
void md__eng_dec_begin(md_engine_t *e);
const md_command_t *md__eng_dec_get(md_engine_t *e, size_t i);
void md__eng_dec_end(md_engine_t *e);
void md__eng_decoder_free(md_engine_t *e);

#endif
