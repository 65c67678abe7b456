/*
 * md_metrics.h - process-wide counters and histograms for /metrics
 * (Prometheus text format), readiness flags for /readyz.
 *
 * Writers (the consumer/writer thread, the publisher) update with relaxed
 * atomics; the HTTP threads read and render. One global instance, md_metrics,
 * because a process runs one engine.
 *
 * Threads: every function is safe from any thread (atomics). Nothing here
 * fails or allocates, except md_metrics_render, which grows its buffer.
 */
#ifndef MD_METRICS_H
#define MD_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "md_event.h"

#define MD_HIST_BUCKETS 12
#define MD_METRIC_CODES 64
#define MD_METRIC_PARTITIONS 64

typedef struct md_histogram {
    const double *bounds;                     /* MD_HIST_BUCKETS upper bounds */
    _Atomic uint64_t counts[MD_HIST_BUCKETS]; /* per bucket (not cumulative) */
    _Atomic uint64_t inf;                     /* above the last bound */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_micro; /* sum of observations * 1e6 */
} md_histogram_t;

#define MD_METRIC_PEERS 16

/* Replicated mode (docs/replication.md); written by the replica's threads. */
typedef struct md_replica_metrics {
    _Atomic bool on;                  /* replica.mode = replicated */
    _Atomic bool leader;              /* this replica publishes */
    _Atomic bool diverged;            /* a peer signed another hash: /readyz not ready */
    _Atomic uint64_t divergence;      /* mismatches seen (marketd_replica_divergence_total) */
    _Atomic uint64_t leader_changes;  /* leadership gained or lost */
    _Atomic uint64_t takeover_resent; /* entries sent on taking over: possible duplicates */
    _Atomic uint64_t dropped;         /* outbox entries dropped: published by the leader */
    _Atomic uint64_t published;       /* the highest "published through" seq known */
    _Atomic int64_t leader_lag;       /* events behind the leader's last checkpoint; -1 unknown */
    _Atomic int64_t ready_max_lag;    /* /readyz: commands behind the commands topic at most */
    _Atomic int npeers;               /* ids below are written before npeers (release) */
    char peer_id[MD_METRIC_PEERS][65];
    _Atomic uint64_t peer_seq[MD_METRIC_PEERS]; /* each peer's last checkpointed seq */
} md_replica_metrics_t;

typedef struct md_metrics {
    _Atomic uint64_t accepted, rejected, duplicates, malformed;
    _Atomic uint64_t rejected_by_code[MD_METRIC_CODES]; /* index md_code_t */
    _Atomic uint64_t events_appended;
    _Atomic uint64_t batches, batch_failures;
    _Atomic uint64_t outbox_sent, outbox_failed, outbox_parked;
    /* monotonic ms of the outbox's last progress (a delivery, a parked entry,
     * or nothing left to send); /readyz fails when it is older than
     * MD_OUTBOX_STALL_MS */
    _Atomic long outbox_progress_ms;
    md_histogram_t batch_size;     /* commands per batch */
    md_histogram_t commit_seconds; /* write transaction incl. fsync */
    /* consumer lag per partition of the commands topic (-1: unknown) */
    _Atomic int64_t lag[MD_METRIC_PARTITIONS];
    _Atomic bool assigned[MD_METRIC_PARTITIONS];
    _Atomic int partitions_assigned;
    _Atomic int partitions_fenced;  /* left to another store (md_consumer.h, fencing) */
    _Atomic uint64_t fencings;      /* partitions fenced since the start */
    _Atomic uint64_t kafka_commits; /* offset commits sent to Kafka (offsets.kafka_commit_ms) */
    _Atomic uint64_t fetch_wakeups; /* fetchers woken after a full prefetch (md_fetch_waker.h) */
    _Atomic bool outbox_draining;   /* the publisher runs */
    md_replica_metrics_t replica;   /* replicated mode (md_replica.h) */
    /* The projector (md_projector.h): the projections' watermark, the log's
     * head it last read, since when (monotonic ms) the projections have been
     * behind a committed batch (0: caught up), its commits and failures, and
     * of its commits those of a batch handed over before the log's commit
     * (the head start, md_projector_stage_begin). */
    _Atomic bool proj_on;
    _Atomic uint64_t proj_seq, proj_head, proj_commits, proj_failures, proj_staged;
    _Atomic long proj_behind_since_ms;
} md_metrics_t;

extern md_metrics_t md_metrics;

/** @brief Records one observation. */
void md_hist_observe(md_histogram_t *h, double v);

/** @brief Adds the counters of one committed batch (engine stats delta). */
struct md_engine_stats;
void md_metrics_add_batch(const struct md_engine_stats *delta, double commit_seconds);

/**
 * @brief Appends the Prometheus text exposition of every metric, plus the
 * gauges given here (read by the caller from the store), to @p out.
 */
void md_metrics_render(md_buf_t *out, uint64_t outbox_depth, uint64_t outbox_parked,
                       uint64_t map_used, uint64_t map_size, uint64_t events_total);

/* The outbox is stalled when entries wait and none was delivered (or parked)
 * for this long. */
#define MD_OUTBOX_STALL_MS 10000

/** @brief Ready: partitions assigned, none fenced, the outbox publisher
 *  running, and the outbox not stalled (at monotonic time @p now_ms). */
bool md_metrics_ready_at(long now_ms);
/** @brief md_metrics_ready_at(now). */
bool md_metrics_ready(void);

#endif
