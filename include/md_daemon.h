/*
 * md_daemon.h - `marketd` on Kafka: the process wired in one place
 * (daemon/daemon.c): store, engine, projections, HTTP read API, topics,
 * outbox publisher and consumer.
 *
 * Threads: md_daemon_run is called once, from the main thread; it starts and
 * joins every other thread (publisher, HTTP pool) before it returns.
 */
#ifndef MD_DAEMON_H
#define MD_DAEMON_H

#include <signal.h>

#include "md_config.h"
#include "md_error.h"

/**
 * @brief Runs the daemon until *stop becomes non-zero (set by a signal
 * handler): opens the store, creates the topics when missing, consumes,
 * decides and publishes; then finishes the batch in progress, leaves the
 * group, flushes the outbox (bounded) and closes everything.
 * @locality the process's main thread.
 * @returns MD_OK after a clean stop, or the error that stopped it (MD_ESTORE,
 *          MD_ECORRUPT, MD_ECONFIG, MD_EKAFKA, MD_EIO, ...).
 */
MD_MUST_CHECK
md_err_t md_daemon_run(const md_config_t *cfg, volatile sig_atomic_t *stop, md_error_t *err);

#endif
