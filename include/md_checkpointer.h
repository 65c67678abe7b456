/*
 * md_checkpointer.h - the daemon's checkpointer: signed checkpoints of the
 * chain head (md_checkpoint.h) published to the heads topic (key: the replica
 * id) every checkpoint.interval_events events or checkpoint.interval_ms,
 * whichever comes first, when the head moved, and at a clean stop. Each is
 * queued in the outbox in the batch's write transaction, so nothing is
 * published that was not committed; the last checkpointed seq is stored
 * (meta "checkpoint"), so a restart does not repeat it.
 *
 * Threads: a checkpointer is used by the writer thread only.
 */
#ifndef MD_CHECKPOINTER_H
#define MD_CHECKPOINTER_H

#include <stdbool.h>

#include "md_checkpoint.h"
#include "md_error.h"
#include "md_store.h"

typedef struct md_checkpointer md_checkpointer_t;

typedef struct md_checkpointer_opts {
    const char *replica_id;
    const char *key_file;
    const char *topic; /* the heads topic */
    long interval_events, interval_ms;
    bool announce; /* checkpoint the head at the first transaction even
                                   * when it was checkpointed before (replicated mode:
                                   * peers check a restarted replica at once) */
} md_checkpointer_opts_t;

/** @brief Loads the key. @returns MD_OK, MD_ECONFIG (bad id, unreadable key). */
md_err_t md_checkpointer_new(const md_checkpointer_opts_t *o, md_checkpointer_t **out,
                             md_error_t *err);
void md_checkpointer_free(md_checkpointer_t *c);

/**
 * @brief In a batch's write transaction (after its offsets): when the head
 * moved since the last checkpoint and interval_events events or interval_ms
 * passed, or @p final, queues a signed checkpoint of the head in the outbox
 * and records its seq (meta "checkpoint") and an intake mark
 * (md_txn_intake_mark: the offsets it signed are the intake state there).
 * Safe to call again when the transaction is retried.
 */
md_err_t md_checkpointer_batch(md_checkpointer_t *c, md_txn_t *t, bool final, md_error_t *err);

/**
 * @brief The replicated leader's "published through seq S" (docs/replication.md):
 * while @p on, checkpoints are version 2 with published = @p seq, and one is
 * also due when only that value moved. Writer thread, before
 * md_checkpointer_batch in the same transaction.
 */
void md_checkpointer_set_published(md_checkpointer_t *c, bool on, uint64_t seq);

/** @brief true when a transaction should run only to checkpoint (an idle
 *  writer: the head moved and interval_ms passed, or @p final). */
bool md_checkpointer_due(const md_checkpointer_t *c, bool final);

#endif
