/*
 * md_config.h - the daemon's configuration: defaults, a key=value file
 * (config/marketd.conf documents every key) and command-line overrides.
 *
 * Keys starting with "kafka." are passed to librdkafka without the prefix
 * (for the consumer, the producer and the admin client alike), so TLS and
 * SASL settings work as in any librdkafka client.
 *
 * Ownership: an md_config_t is the caller's (usually on the stack); the
 * strings it holds are its own, freed by md_config_release.
 * Threads: filled on the main thread before any other starts, then read-only.
 */
#ifndef MD_CONFIG_H
#define MD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "md_engine.h"
#include "md_error.h"
#include "md_projector.h"

typedef struct md_kv {
    char *key; /* without the "kafka." prefix */
    char *value;
} md_kv_t;

typedef struct md_config {
    char *data_dir;
    char *operator_id;
    md_clock_t clock;
    int log_level;
    long batch_max_commands;
    long batch_max_wait_ms;
    long offline_batch_max_commands; /* offline mode's batch (batch.max_commands is the daemon's) */
    long message_max_bytes;
    char *topic_commands, *topic_results, *topic_events, *topic_deadletter;
    char *topic_heads;      /* signed checkpoints (md_checkpoint.h) */
    char *replica_id;       /* this daemon's name in its checkpoints */
    char *replica_key_file; /* its Ed25519 private key (PEM); "" = no checkpoints */
    long checkpoint_interval_events, checkpoint_interval_ms;
    long topic_partitions;
    long topic_replication;
    char *group_id;
    long outbox_flush_timeout_ms;
    bool store_nosync;
    /* projections.*: events per projector transaction (0: the mode's), results
     * wait for the projections, flush of un-synced commits (0: each synced),
     * the projector's priority when no result waits for it */
    long proj_max_events;
    bool proj_gate_results;
    long proj_sync_ms;
    md_priority_t proj_priority;
    long kafka_commit_ms; /* offsets.kafka_commit_ms: least time between offset commits to Kafka */
    long store_map_mib;   /* initial LMDB map, MiB (doubled when full) */
    char *http_listen;    /* "" = no HTTP read API */
    char *http_tokens;    /* token file for the read API */
    long http_threads;    /* worker threads of the read API */
    long timers_tick_ms;  /* idle this long: a Tick to the commands topic (0 = off) */
    /* replicated mode (docs/replication.md) */
    char *replica_mode;       /* "single" or "replicated" */
    char *replica_peers_keys; /* directory of the replicas' public keys (*.pub) */
    long replica_count;       /* replicas configured; 0 = the number of keys */
    char *replica_leader_topic, *replica_leader_group;
    long replica_session_timeout_ms; /* the leader group's session.timeout.ms */
    long replica_ready_max_lag;      /* /readyz: at most this many commands behind */
    md_kv_t *kafka;                  /* passthrough properties, in file order */
    bool topics_exist;               /* not a key: set by --embedded-kafka, which creates them */
    size_t nkafka;
} md_config_t;

/** @brief Fills @p c with the defaults (owned strings; md_config_release). */
void md_config_init(md_config_t *c);
/** @brief Frees everything @p c owns. */
void md_config_release(md_config_t *c);

/**
 * @brief Sets one key ("batch.max_commands", "kafka.bootstrap.servers", ...).
 * @returns MD_OK, or MD_ECONFIG naming the key and what is wrong (unknown
 *          key, bad number, out of range).
 */
MD_MUST_CHECK
md_err_t md_config_set(md_config_t *c, const char *key, const char *value, md_error_t *err);

/**
 * @brief Reads a key=value file: '#' starts a comment line, blank lines are
 * skipped, white space around keys and values is trimmed.
 * @returns MD_OK, MD_EIO (cannot read), MD_ECONFIG (file:line and reason).
 */
MD_MUST_CHECK
md_err_t md_config_load(md_config_t *c, const char *path, md_error_t *err);

/** @brief true when replica.mode = replicated (docs/replication.md). */
bool md_config_replicated(const md_config_t *c);

/** @brief The value of passthrough property @p key (no prefix), or NULL. */
const char *md_config_kafka(const md_config_t *c, const char *key);

#endif
