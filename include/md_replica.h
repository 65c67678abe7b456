/*
 * md_replica.h - replicated mode (replica.mode = replicated, docs/replication.md):
 * several daemons, each with its own store, consumer group, replica.id and key,
 * decide every command of a one-partition commands topic; one of them, the
 * leader (md_leader.h), publishes results, events and dead letters; every
 * replica publishes its own signed checkpoints and checks its peers'.
 *
 * Publication ("published through seq S"): an outbox entry's tag is the chain
 * head when it was queued; tags only grow with outbox ids, and the entries
 * with a tag are the same on every replica (the store is a pure function of
 * the log). The leader signs S in its (version 2) checkpoints: every entry
 * tagged <= S was delivered. Followers drop their entries tagged <= S; a new
 * leader sends everything it still has. The tags are not stored: the writer
 * notes, after each batch, (next outbox id, head) - a publication map
 * (md_pubmap_t) that bounds the tag of every id from above and below.
 *
 * Divergence: a thread reads the heads topic from its start, verifies each
 * peer's checkpoint with the peer's public key (replica.peers_keys/ID.pub)
 * and compares its hash with this store's at that seq (later, once this store
 * reaches it). A mismatch is logged naming both replicas and the seq, counted
 * (marketd_replica_divergence_total) and makes /readyz not ready; when a
 * majority of the configured replicas (replica.count, or the number of keys)
 * disagree with this one, it stops deciding (fail-stop: the daemon stops
 * with an error and publishes nothing more but its checkpoints).
 *
 * Threads: md_replica_new/lead/free on the main thread; md_replica_batch on
 * the writer; md_replica_may_publish on the publisher thread; the heads
 * thread is the module's own. The md_pubmap_* functions and
 * md_replica_must_stop are pure (unit tests).
 */
#ifndef MD_REPLICA_H
#define MD_REPLICA_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_checkpointer.h"
#include "md_config.h"
#include "md_error.h"
#include "md_publisher.h"
#include "md_store.h"

/* ---- the publication map (pure) ------------------------------------------------------ */

typedef struct md_pubmark {
    uint64_t next; /* the outbox ids below were queued with a tag <= head */
    uint64_t head; /* ... and the ids from here on get a tag >= head */
} md_pubmark_t;

typedef struct md_pubmap {
    md_pubmark_t *m; /* ascending in next and head; owned (md_pubmap_release) */
    size_t n, cap;
} md_pubmap_t;

#define MD_PUBMAP_MAX 4096 /* marks kept; older ones are merged (still safe, less precise) */

/** @brief Notes the end of a batch: the next outbox id and the head. A
 *  retried batch noting the same values again changes nothing. */
void md_pubmap_note(md_pubmap_t *p, uint64_t next, uint64_t head);

/**
 * @brief The leader's "published through": given the lowest outbox id @p
 * first_pending not yet delivered (the next id when none), the largest S such
 * that every entry tagged <= S is delivered, into *S.
 * @returns false when the map cannot tell (the entry predates the first mark).
 */
bool md_pubmap_published(const md_pubmap_t *p, uint64_t first_pending, uint64_t *S);

/** @brief The follower's drop: every outbox id below the result has a tag <=
 *  @p published (0: none known). */
uint64_t md_pubmap_drop_below(const md_pubmap_t *p, uint64_t published);

/** @brief Forgets the marks no longer needed once every id below @p id is gone. */
void md_pubmap_trim(md_pubmap_t *p, uint64_t id);

void md_pubmap_release(md_pubmap_t *p);

/** @brief Fail-stop rule: true when @p disagreeing peers are a majority of the
 *  @p configured replicas (this one included). */
bool md_replica_must_stop(int disagreeing, int configured);

/* ---- the replica ------------------------------------------------------------------------- */

typedef struct md_replica md_replica_t;

/**
 * @brief The configuration rules of replicated mode, without a broker: clock
 * log or command; replica.key_file and replica.peers_keys set.
 * @returns MD_OK or MD_ECONFIG saying why.
 */
MD_MUST_CHECK
md_err_t md_replica_check_config(const md_config_t *cfg, md_error_t *err);

typedef struct md_replica_opts {
    const md_config_t *cfg;
    md_store_t *store;
    md_checkpointer_t *checkpointer; /* required: every replica signs its checkpoints */
    volatile sig_atomic_t *stop;     /* set on fail-stop */
} md_replica_opts_t;

/**
 * @brief Checks the configuration and that the commands topic has exactly one
 * partition (broker metadata), loads the peers' keys and starts the heads
 * thread. Every pointer of @p o is borrowed and must outlive the replica.
 * @returns MD_OK; MD_ECONFIG (why); MD_EKAFKA.
 */
MD_MUST_CHECK
md_err_t md_replica_new(const md_replica_opts_t *o, md_replica_t **out, md_error_t *err);

/** @brief Joins the leader group; on taking over, @p pub sends its outbox again
 *  from the start (md_publisher_rescan). @returns as md_leader_start. */
MD_MUST_CHECK
md_err_t md_replica_lead(md_replica_t *r, md_publisher_t *pub, md_error_t *err);

/** @brief The publisher gate (md_publisher_gate_fn): checkpoints always; the
 *  rest only while leading and not failed. */
bool md_replica_may_publish(const char *topic, void *replica);

/** @brief Whether to put the idle Tick (the leader only). */
bool md_replica_may_tick(void *replica);

/** @brief The consumer's per-batch hook (md_batch_hook_fn): notes the map;
 *  the leader sets its published seq on the checkpointer, a follower drops
 *  what the leaders' checkpoints say was published. Writer thread. */
md_err_t md_replica_batch(md_txn_t *t, void *replica, md_error_t *err);

/** @brief true after a fail-stop (this replica disagrees with a majority). */
bool md_replica_failed(const md_replica_t *r);

/** @brief Leaves the leader group, stops the heads thread, frees. NULL does nothing. */
void md_replica_free(md_replica_t *r);

#endif
