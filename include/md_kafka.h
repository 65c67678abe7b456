/*
 * md_kafka.h - marketd on Kafka: consume market.commands with a consumer
 * group, decide batches through the engine, publish results and events from
 * the outbox (architecture.md, "Exactly-once from Kafka to LMDB").
 *
 * Exactly-once effects: the consumed offsets are written in the batch's LMDB
 * transaction and, on every partition assignment, the consumer starts from
 * the offsets stored in LMDB (never from Kafka's committed offsets, which are
 * committed after each batch only so that lag tools work).
 * At-least-once publication: results, events and dead letters are queued in
 * the outbox in that same transaction and sent after the commit by an
 * idempotent producer; an entry is deleted once delivered, so a crash between
 * delivery and deletion sends it again.
 */
#ifndef MD_KAFKA_H
#define MD_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdint.h>

#include "md_config.h"
#include "md_error.h"
#include "md_store.h"

/* ---- configuration helpers ------------------------------------------------ */

/**
 * @brief A librdkafka configuration with every "kafka." passthrough property
 * of @p cfg applied, then the @p n pairs of @p extra ("key", "value", ...)
 * which win over them.
 * @returns a new conf (owned by the caller until passed to rd_kafka_new), or
 *          NULL with MD_ECONFIG in @p err naming the property.
 */
rd_kafka_conf_t *md_kafka_conf(const md_config_t *cfg, const char *const *extra, size_t n,
                               md_error_t *err);

/* ---- outbox publisher ------------------------------------------------------ */

typedef struct md_publisher md_publisher_t;

/**
 * @brief Creates the publisher: an idempotent producer and a thread that
 * sends outbox entries in id order. @p store is borrowed.
 * @returns MD_OK or MD_EKAFKA / MD_ECONFIG.
 */
md_err_t md_publisher_start(const md_config_t *cfg, md_store_t *store, md_publisher_t **out,
                            md_error_t *err);

/** @brief Tells the thread that new entries were committed. Any thread. */
void md_publisher_wake(md_publisher_t *p);

/**
 * @brief Moves the ids delivered so far into @p ids (appended; caller-owned
 * array grown with md_realloc) for deletion in the next write transaction.
 */
void md_publisher_take_delivered(md_publisher_t *p, uint64_t **ids, size_t *n, size_t *cap);

/**
 * @brief Sends what is left (bounded by @p timeout_ms), stops the thread,
 * flushes and destroys the producer. The delivered ids can still be taken
 * afterwards; then md_publisher_free. NULL does nothing.
 * @returns the number of entries still undelivered.
 */
uint64_t md_publisher_stop(md_publisher_t *p, long timeout_ms);
void md_publisher_free(md_publisher_t *p);

/* ---- the daemon -------------------------------------------------------------- */

/**
 * @brief Runs the daemon until *stop becomes non-zero (set by a signal
 * handler): opens the store, creates the topics when missing, consumes,
 * decides and publishes; then finishes the batch in progress, leaves the
 * group, flushes the outbox (bounded) and closes everything.
 * @returns MD_OK after a clean stop, or the error that stopped it.
 */
md_err_t md_daemon_run(const md_config_t *cfg, volatile sig_atomic_t *stop, md_error_t *err);

/* ---- embedded broker (demos only) ------------------------------------------------- */

typedef struct md_embedded md_embedded_t;

/**
 * @brief Starts librdkafka's in-process mock cluster (one broker) with the
 * configured topics created, and returns its bootstrap address in @p out.
 * For `marketd --embedded-kafka` demos; never what tests call real Kafka.
 */
md_err_t md_embedded_start(const md_config_t *cfg, md_embedded_t **out, char *bootstrap,
                           size_t cap, md_error_t *err);
void md_embedded_stop(md_embedded_t *e);

#endif
