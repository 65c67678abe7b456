/*
 * md_publisher.h - the outbox publisher (docs/architecture.md, "Exactly-once from
 * Kafka to LMDB"): results, events and dead letters are queued in the outbox
 * inside each batch's transaction and sent after the commit by an idempotent
 * producer on a thread of its own; an entry is deleted once delivered (in the
 * writer's next transaction), so a crash between delivery and deletion sends
 * it again (at-least-once publication).
 *
 * Threads: md_publisher_start/stop/free on the daemon's main thread;
 * md_publisher_wake and md_publisher_take_delivered from the writer (any
 * thread); the publisher thread only reads the store.
 */
#ifndef MD_PUBLISHER_H
#define MD_PUBLISHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_config.h"
#include "md_error.h"
#include "md_store.h"

typedef struct md_publisher md_publisher_t;

/* An entry the broker refused for good (md_txn_outbox_park), with why. */
typedef struct md_outbox_park {
    uint64_t id;
    char reason[192];
} md_outbox_park_t;

/**
 * @brief Creates the publisher: an idempotent producer and a thread that
 * sends outbox entries in id order. @p store is borrowed.
 * @returns MD_OK or MD_EKAFKA / MD_ECONFIG.
 */
MD_MUST_CHECK
md_err_t md_publisher_start(const md_config_t *cfg, md_store_t *store, md_publisher_t **out,
                            md_error_t *err);

/* Replicated mode (docs/replication.md): whether an entry for @p topic may be
 * sent now (the leader sends everything, a follower only its checkpoints).
 * Called on the publisher thread. */
typedef bool (*md_publisher_gate_fn)(const char *topic, void *ctx);

/**
 * @brief md_publisher_start with a gate: entries it refuses are skipped and
 * kept in the outbox (md_publisher_rescan sends them later). @p gate_ctx is
 * borrowed and must outlive the publisher.
 */
MD_MUST_CHECK
md_err_t md_publisher_start_gated(const md_config_t *cfg, md_store_t *store,
                                  md_publisher_gate_fn gate, void *gate_ctx, md_publisher_t **out,
                                  md_error_t *err);

/** @brief Starts again from the first outbox entry (the gate opened: this
 *  replica took over). Entries sent again are counted
 *  (marketd_replica_takeover_resent_total). Any thread. */
void md_publisher_rescan(md_publisher_t *p);

/**
 * @brief Holds back entries whose id is @p below_id or more (UINT64_MAX, the
 * start value: none): the projector's gate, so that a result leaves only once
 * the projections show its events (md_projector.h). The entries wait in the
 * outbox; a higher value sends them. Wakes the thread. Any thread.
 */
void md_publisher_hold(md_publisher_t *p, uint64_t below_id);

/* The header of a result that says when its command passed each stage of
 * the daemon: "APPENDED FETCHED BATCH COMMIT PUBLISH", wall-clock
 * microseconds since the epoch in decimal, space-separated: the broker
 * appended the command (its LogAppendTime, ms resolution; 0 when the
 * commands topic is CreateTime), the consumer took it from librdkafka, its
 * batch's transaction began, the commit returned, the publisher handed the
 * result to the producer. Transport timing only: the result's value is the
 * same with or without it (docs/commands.md). */
#define MD_STAGE_HEADER "marketd-stage-us"

#define MD_STAGE_BATCHES 1024   /* batches whose stage times the publisher keeps ... */
#define MD_STAGE_COMMANDS 65536 /* ... holding at most this many commands (512 KiB) */

/* A committed batch's stage times (md_publisher_note_batch). */
typedef struct md_stage_batch {
    uint64_t lo, hi;            /* its results are the results-topic entries with ids in [lo, hi) */
    const int64_t *fetched_us;  /* per command, in order: taken from librdkafka */
    const int64_t *appended_us; /* per command: its LogAppendTime (0: unknown) */
    size_t n;                   /* commands, i.e. results */
    int64_t batch_us, commit_us;
} md_stage_batch_t;

/**
 * @brief Notes the stage times of a committed batch, so that each of its
 * results is sent with the MD_STAGE_HEADER header. Everything is copied.
 * The publisher keeps the last MD_STAGE_BATCHES batches noted (at most
 * MD_STAGE_COMMANDS commands); a result of
 * a batch not noted, forgotten, or sent a second time carries no header.
 * Any thread (the writer, before md_publisher_wake).
 */
void md_publisher_note_batch(md_publisher_t *p, const md_stage_batch_t *b);

/**
 * @brief Says that the results with outbox ids [@p lo, @p hi) belong to the
 * batch being committed: a result among them that the publisher reaches before
 * md_publisher_note_batch waits for its stage times (at most 50 ms) instead of
 * leaving without them. md_publisher_note_batch, or an empty range, ends it.
 * Any thread (the writer, in the batch's transaction).
 */
void md_publisher_expect_batch(md_publisher_t *p, uint64_t lo, uint64_t hi);

/** @brief Tells the thread that new entries were committed. Any thread. */
void md_publisher_wake(md_publisher_t *p);

/**
 * @brief Moves the ids delivered so far into @p ids (appended; caller-owned
 * array grown with md_realloc) for deletion in the next write transaction.
 */
void md_publisher_take_delivered(md_publisher_t *p, uint64_t **ids, size_t *n, size_t *cap);

/**
 * @brief Moves the entries refused for a permanent reason (too large,
 * invalid, not authorised: never cured by sending again) into @p v
 * (appended, grown with md_realloc), for md_txn_outbox_park in the next write
 * transaction. The publisher skips them from the moment they are refused, so
 * the entries behind them keep flowing. Any thread.
 */
void md_publisher_take_parked(md_publisher_t *p, md_outbox_park_t **v, size_t *n, size_t *cap);

/**
 * @brief Sends what is left (bounded by @p timeout_ms), stops the thread,
 * flushes and destroys the producer. The delivered ids can still be taken
 * afterwards; then md_publisher_free. NULL does nothing.
 * @returns the number of entries handed to the producer and not yet
 * acknowledged (the store's outbox tells what really stays undelivered).
 */
uint64_t md_publisher_stop(md_publisher_t *p, long timeout_ms);
/** @brief Stops (if still running: md_publisher_stop with no time to drain)
 * and frees the publisher; NULL does nothing. Main thread. */
void md_publisher_free(md_publisher_t *p);

#endif
