/*
 * md_consumer.h - the daemon's intake on Kafka: a consumer group on the
 * commands topic, batches by count and time, each decided durably through the
 * engine (docs/architecture.md, "Exactly-once from Kafka to LMDB").
 *
 * Exactly-once effects: the consumed offsets are written in the batch's LMDB
 * transaction and, on every partition assignment, the consumer starts from
 * the offsets stored in LMDB (never from Kafka's committed offsets, which are
 * committed after each batch only so that lag tools work). Delivered outbox
 * entries (md_publisher_take_delivered) are deleted in the next batch.
 * Intake records: each batch's transaction also records, per partition, the
 * offset the consumer expected, the first it got and the next after the batch
 * (md_txn_intake_put; the expected one is the stored offset it was assigned
 * at, then the previous batch's next), so that `marketctl verify` can show a
 * stored offset moved (docs/verify.md, "Offsets").
 * Checkpoints, when a checkpointer is given, are queued in batch
 * transactions (an idle writer runs one when a checkpoint is due) and in the
 * last transaction before the consumer returns from a stop.
 *
 * Fencing: the offsets committed to Kafka carry "store:<md_store_id>" as
 * their metadata. A partition assigned to this daemon whose committed offset
 * was written by another store and is ahead of this store's own is not
 * decided here (left unassigned until the next rebalance): two daemons with
 * different data directories in one group would otherwise decide the same
 * commands twice, differently. It is logged, counted (marketd_partitions_fenced)
 * and /readyz reports not ready.
 *
 * Threads: every function on the daemon's main thread, which also runs the
 * rebalance callbacks inside md_consumer_run. The consumer starts one thread
 * of its own, the fetch waker (md_fetch_waker.h), stopped by md_consumer_close.
 */
#ifndef MD_CONSUMER_H
#define MD_CONSUMER_H

#include <signal.h>

#include <librdkafka/rdkafka.h>

#include "md_checkpointer.h"
#include "md_config.h"
#include "md_engine.h"
#include "md_error.h"
#include "md_publisher.h"
#include "md_store.h"

typedef struct md_consumer md_consumer_t;

#define MD_RETRY_MAX_MS 5000           /* the longest pause between retries */
#define MD_COMMIT_META_PREFIX "store:" /* commit metadata: prefix, then the store id */

/** @brief The pause after @p pause_ms in the batch retry back-off: doubles,
 *  capped at MD_RETRY_MAX_MS. Pure. */
long md_retry_next_ms(long pause_ms);

/**
 * @brief The fencing rule (pure): must this store (@p own_id, next offset
 * @p own_next in LMDB, -1 or 0 when none) leave a partition whose committed
 * offset in Kafka is @p committed (< 0: none) with metadata @p meta?
 * True only when the metadata names another marketd store and the committed
 * offset is ahead of this store's own.
 */
bool md_consumer_fenced(const char *own_id, int64_t own_next, int64_t committed, const void *meta,
                        size_t meta_len);

/**
 * @brief Sets the consumer's fetch sizes and prefetch bounds on @p conf,
 * except those the configuration sets itself (kafka.*, which win):
 * max.partition.fetch.bytes 1 MiB, fetch.max.bytes 4 MiB,
 * queued.max.messages.kbytes 16 MiB, and queued.min.messages a batch and a
 * quarter (batch.max_commands * 5 / 4, at least 1000). The prefetch is small
 * (memory under a backlog) because the consumer wakes the fetcher when it
 * drained a full queue (md_fetch_waker.h; docs/performance.md, "Issue 17,
 * eighth pass").
 * @returns true; false with @p err set (MD_ECONFIG) when librdkafka refuses one.
 */
bool md_consumer_fetch_defaults(const md_config_t *cfg, rd_kafka_conf_t *conf, md_error_t *err);

/** What the consumer works with; every pointer is borrowed and must outlive it. */
typedef struct md_consumer_opts {
    const md_config_t *cfg;
    volatile sig_atomic_t *stop; /* set by a signal handler: finish and return */
    md_store_t *store;
    md_engine_t *engine; /* its batch hook is taken by the consumer */
    md_publisher_t *pub;
    md_checkpointer_t *checkpointer; /* NULL: no checkpoints (md_checkpointer.h) */
    /* Replicated mode (md_replica.h), both NULL otherwise: a hook run in every
     * batch transaction before the checkpointer's, and whether this replica
     * may put the idle Tick (timers.tick_ms) on the commands topic (the leader). */
    md_batch_hook_fn replica_hook;
    bool (*may_tick)(void *ctx);
    void *replica_ctx;
} md_consumer_opts_t;

/**
 * @brief Creates the consumer and subscribes to the commands topic.
 * @param out receives a handle owned by the caller (md_consumer_free).
 * @returns MD_OK; MD_ECONFIG (a kafka.* property refused, named);
 *          MD_EKAFKA (the client could not be created or subscribe).
 */
MD_MUST_CHECK
md_err_t md_consumer_new(const md_consumer_opts_t *o, md_consumer_t **out, md_error_t *err);

/**
 * @brief Consumes, batches and decides until *stop is set, then decides what
 * was collected. A batch that cannot be committed is retried with a growing
 * pause (the store may be full or failing), never skipped.
 * @returns MD_OK after a stop; the store's error when stopped while a batch
 *          could not be committed (nothing of it was acknowledged).
 */
MD_MUST_CHECK
md_err_t md_consumer_run(md_consumer_t *c, md_error_t *err);

/** @brief Leaves the group (the revoke finishes the batch) and destroys the client. NULL does nothing. */
void md_consumer_close(md_consumer_t *c);

/**
 * @brief Stops the publisher (bounded by @p timeout_ms) and deletes what it
 * delivered; logs what stays in the outbox for the next start.
 */
void md_consumer_finish_outbox(md_consumer_t *c, long timeout_ms);

/** @brief Closes (if still open) and frees the consumer. NULL does nothing. */
void md_consumer_free(md_consumer_t *c);
/* The old name of md_consumer_free (one free verb: *_free), kept while branches written
 * against it merge; remove once none is left. */
static inline void md_consumer_destroy(md_consumer_t *c)
{
    md_consumer_free(c);
}

#endif
