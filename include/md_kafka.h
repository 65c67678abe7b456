/*
 * md_kafka.h - librdkafka as marketd configures it: a client configuration
 * from the config file (every "kafka." property passes through), creation of
 * the topics, and librdkafka's in-process mock broker for demos.
 *
 * Threads: any thread; each call works on handles of its own.
 */
#ifndef MD_KAFKA_H
#define MD_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdint.h>

#include "md_config.h"
#include "md_error.h"

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

/**
 * @brief A producer handle used only for admin and metadata requests, with
 * the configured kafka.* properties. @p what names it in the error.
 * @returns the handle (caller destroys it with rd_kafka_destroy), or NULL with
 *          MD_ECONFIG (a property refused) or MD_EKAFKA in @p err.
 */
rd_kafka_t *md_kafka_admin_client(const md_config_t *cfg, const char *what, md_error_t *err);

/**
 * @brief Creates the configured topics when missing; a broker that is down
 * is waited for (retried until it answers or *stop is set). A refused
 * creation is logged and not an error: the topics may exist already.
 * @returns MD_OK; MD_ECONFIG (a kafka.* property refused); MD_EKAFKA (the
 *          admin client could not be created).
 */
MD_MUST_CHECK
md_err_t md_kafka_create_topics(const md_config_t *cfg, volatile sig_atomic_t *stop,
                                md_error_t *err);

/* ---- embedded broker (demos only) ------------------------------------------------- */

typedef struct md_embedded md_embedded_t;

/**
 * @brief Starts librdkafka's in-process mock cluster (one broker) with the
 * configured topics created, and returns its bootstrap address in @p out.
 * For `marketd --embedded-kafka` demos; never what tests call real Kafka.
 * @param out receives a handle owned by the caller (md_embedded_free).
 * @returns MD_OK or MD_EKAFKA (client, mock cluster or topic creation).
 */
MD_MUST_CHECK
md_err_t md_embedded_start(const md_config_t *cfg, md_embedded_t **out, char *bootstrap, size_t cap,
                           md_error_t *err);
/** @brief Stops the mock cluster and frees it; NULL does nothing. */
void md_embedded_free(md_embedded_t *e);
/* The old name of md_embedded_free (one free verb: *_free), kept while branches written
 * against it merge; remove once none is left. */
static inline void md_embedded_stop(md_embedded_t *e)
{
    md_embedded_free(e);
}

#endif
