/*
 * md_engine.h - joins decoding, the rules and the store: one write
 * transaction per batch of commands (docs/architecture.md, "Store" and
 * "Exactly-once from Kafka to LMDB").
 *
 * For each input message, in order: decode; MALFORMED is rejected with a
 * digest of the bytes; a command_id already decided answers `duplicate`
 * (appending nothing); otherwise the rules decide, the events are appended
 * (a rejection appends one CommandRejected), the aggregates evolve, the
 * registered hooks (projections) see every appended event, and the outcome
 * is recorded, unless the rejection is retryable. The consumed offsets and,
 * when enabled, the outbox entries go into the same transaction. Results are
 * handed back only after the transaction committed and was synced.
 *
 * Threads: an engine is used by one thread at a time (the writer). From its
 * first batch of 32 commands or more it runs one helper thread of its own that
 * decodes the batch's next commands while the writer decides (a ring of 128;
 * decoding is pure, so results are those of decoding inline); md_engine_free
 * joins it.
 */
#ifndef MD_ENGINE_H
#define MD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_error.h"
#include "md_event.h"
#include "md_store.h"

typedef struct md_engine md_engine_t;

/* The largest dead letter (key, headers and value): under both librdkafka's
 * default message.max.bytes (1,000,000) and Kafka's default topic
 * max.message.bytes (1,048,588), so that a broker at its defaults takes it. */
#define MD_DEADLETTER_MAX_BYTES 900000

/*
 * The time at which each command is decided (its events' recorded_at):
 *   MD_CLOCK_WALL     the now_ms given to md_engine_process (the daemon's clock);
 *   MD_CLOCK_COMMAND  the command's issued_at (then required);
 *   MD_CLOCK_LOG      the Kafka message timestamp (md_input_t.timestamp_ms; the
 *                     broker's LogAppendTime), kept monotone: max(previous, it).
 * With COMMAND and LOG the "previous now" is stored in the batch transaction
 * (meta "clock"), so the store is a pure function of the input messages:
 * replays, restarts and replicas reading the same partition agree byte for byte.
 */
typedef enum md_clock { MD_CLOCK_WALL, MD_CLOCK_COMMAND, MD_CLOCK_LOG } md_clock_t;

typedef struct md_engine_opts {
    const char *operator_id; /* bootstrap operator; NULL = "operator" */
    md_clock_t clock;
    size_t max_message_bytes; /* larger messages are MALFORMED; 0 = 1 MiB */
    /* Outbox: when results_topic is set, every result and every appended event
     * is queued in the outbox (results keyed by command_id, events by stream). */
    const char *results_topic;
    const char *events_topic;
    /* Offsets: the topic whose consumed offsets are stored per partition. */
    const char *commands_topic;
    /* MALFORMED messages are queued to this topic too (raw bytes, original key,
     * headers "reason", "sha256" and "original_size"; a body that would make the
     * dead letter exceed MD_DEADLETTER_MAX_BYTES is dropped, header "body"; a
     * longer key is cut, header "key"); NULL = not dead-lettered. */
    const char *deadletter_topic;
} md_engine_opts_t;

/* One input message. partition < 0: not from Kafka (no offset stored). */
typedef struct md_input {
    const void *bytes;
    size_t len;
    bool msgpack; /* content-type: application/msgpack */
    /* A content-type other than JSON or msgpack (copied into the MALFORMED
     * reason; NULL: none or a supported one). */
    const char *bad_content_type;
    size_t bad_content_type_len;
    const void *key; /* Kafka message key (may be NULL) */
    size_t key_len;
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* Kafka message timestamp; <= 0: none (MD_CLOCK_LOG
                                  * then keeps the previous now) */
} md_input_t;

/*
 * A hook called for every event appended, inside the batch's write
 * transaction (after the rules evolved). Returning an error aborts the batch.
 */
typedef md_err_t (*md_event_hook_fn)(md_txn_t *txn, const md_event_t *ev, void *ctx,
                                     md_error_t *err);

/* Counters of one engine since it was created. */
typedef struct md_engine_stats {
    uint64_t batches, commands, accepted, rejected, duplicates, malformed, events;
    uint64_t by_code[64]; /* rejections by md_code_t */
} md_engine_stats_t;

/**
 * @brief Creates an engine over @p store (borrowed; must outlive the engine).
 * @param opts copied; its strings are copied too.
 * Opens (creating) the database "results": command_id -> the result line of
 * each recorded outcome, which a duplicate's result carries as "original".
 * @returns MD_OK, MD_EINVAL (bad operator id) or the store's error.
 */
MD_MUST_CHECK
md_err_t md_engine_new(md_store_t *store, const md_engine_opts_t *opts, md_engine_t **out,
                       md_error_t *err);
/** @brief Frees the engine; NULL does nothing. */
void md_engine_free(md_engine_t *e);
/* The old name of md_engine_free (one free verb: *_free), kept while branches written
 * against it merge; remove once none is left. */
static inline void md_engine_destroy(md_engine_t *e)
{
    md_engine_free(e);
}

/** @brief Adds a hook (at most 8); call before the first batch. @p ctx is
 * borrowed and must outlive the engine. @returns MD_OK or MD_EINVAL (a
 * ninth hook). */
MD_MUST_CHECK
md_err_t md_engine_add_hook(md_engine_t *e, md_event_hook_fn fn, void *ctx, md_error_t *err);

/*
 * A hook called once at the end of every batch transaction, before the
 * commit (e.g. to delete delivered outbox entries in the same transaction).
 * It may run more than once for one batch when the map had to grow.
 */
typedef md_err_t (*md_batch_hook_fn)(md_txn_t *txn, void *ctx, md_error_t *err);

/**
 * @brief Adds a pair of batch hooks (at most 8): @p begin is called when each
 * batch's transaction starts (before the bootstrap and the first command;
 * again when a batch is re-run after MDB_MAP_FULL), @p end after its last
 * command and offsets, before the batch hook below and the commit. Either may
 * be NULL. A hook returning an error aborts the batch. For projections that
 * defer their writes to the batch's end (md_proj_batch_begin/end). @p ctx is
 * borrowed. @returns MD_OK or MD_EINVAL (a ninth pair).
 */
MD_MUST_CHECK
md_err_t md_engine_add_batch_hooks(md_engine_t *e, md_batch_hook_fn begin, md_batch_hook_fn end,
                                   void *ctx, md_error_t *err);

/** @brief Sets the batch hook (one; NULL removes it). */
void md_engine_set_batch_hook(md_engine_t *e, md_batch_hook_fn fn, void *ctx);

/* Called on the writer's thread after each write transaction of the engine
 * (a batch, the bootstrap, a tick) committed and was synced; it must not
 * block (e.g. wake the projector, md_projector_kick). */
typedef void (*md_commit_hook_fn)(void *ctx);

/** @brief Sets the post-commit hook (one; NULL removes it); call before the
 * first batch. @p ctx is borrowed and must outlive the engine. */
void md_engine_set_commit_hook(md_engine_t *e, md_commit_hook_fn fn, void *ctx);

/**
 * @brief Decides a batch of messages in one durable write transaction.
 * @param results receives one JSON result line per input, each ending in
 *        '\n', in input order (appended; the caller owns the buffer). Written
 *        only when MD_OK is returned, i.e. after the commit.
 * @param now_ms the wall clock for this batch (used with MD_CLOCK_WALL only).
 * @returns MD_OK, or a store error: then nothing of the batch is stored and
 *          the batch may be retried.
 */
MD_MUST_CHECK
md_err_t md_engine_process(md_engine_t *e, const md_input_t *in, size_t n, int64_t now_ms,
                           md_buf_t *results, md_error_t *err);

/** @brief Bootstraps an empty store now (process does it before the first
 * batch); a store bootstrapped already is left as it is.
 * @returns MD_OK, or the store's or a hook's error (nothing written). */
MD_MUST_CHECK
md_err_t md_engine_bootstrap(md_engine_t *e, int64_t now_ms, md_error_t *err);

/**
 * @brief Puts a `Tick` command from the operator (command_id "tick-<now_ms>",
 * issued_at = now) in the outbox for the commands topic, in its own write
 * transaction, so that the timers due by then fire although no traffic comes
 * (rules.md "Policy and timers"). The tick goes through the log like any command.
 * @returns MD_OK, MD_EINVAL when the engine has no commands topic, or a store error.
 */
md_err_t md_engine_tick(md_engine_t *e, int64_t now_ms, md_error_t *err);

/** @brief Counters (borrowed, valid while the engine lives). */
const md_engine_stats_t *md_engine_stats(const md_engine_t *e);

#endif
