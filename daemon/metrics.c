/*
 * metrics.c - counters, histograms and their Prometheus rendering.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "md_engine.h"
#include "md_metrics.h"
#include "md_proj.h"
#include "md_rules.h"
#include "md_store.h"
#include "md_version.h"

static const double batch_bounds[MD_HIST_BUCKETS] = {1,   2,   5,   10,   20,   50,
                                                     100, 200, 500, 1000, 2000, 5000};
static const double commit_bounds[MD_HIST_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                      0.01,   0.025,   0.05,   0.1,   0.25,   1};

md_metrics_t md_metrics = {
    .batch_size = {.bounds = batch_bounds},
    .commit_seconds = {.bounds = commit_bounds},
};

#define RELAXED memory_order_relaxed

void md_hist_observe(md_histogram_t *h, double v)
{
    int i = 0;
    while (i < MD_HIST_BUCKETS && v > h->bounds[i])
        i++;
    if (i < MD_HIST_BUCKETS)
        atomic_fetch_add_explicit(&h->counts[i], 1, RELAXED);
    else
        atomic_fetch_add_explicit(&h->inf, 1, RELAXED);
    atomic_fetch_add_explicit(&h->count, 1, RELAXED);
    atomic_fetch_add_explicit(&h->sum_micro, (uint64_t)(v * 1e6), RELAXED);
}

void md_metrics_add_batch(const md_engine_stats_t *d, double commit_seconds)
{
    md_metrics_t *m = &md_metrics;
    atomic_fetch_add_explicit(&m->accepted, d->accepted, RELAXED);
    atomic_fetch_add_explicit(&m->rejected, d->rejected, RELAXED);
    atomic_fetch_add_explicit(&m->duplicates, d->duplicates, RELAXED);
    atomic_fetch_add_explicit(&m->malformed, d->malformed, RELAXED);
    atomic_fetch_add_explicit(&m->events_appended, d->events, RELAXED);
    atomic_fetch_add_explicit(&m->batches, 1, RELAXED);
    for (int i = 0; i < MD_METRIC_CODES && i < MD_CODE_COUNT_; i++)
        if (d->by_code[i])
            atomic_fetch_add_explicit(&m->rejected_by_code[i], d->by_code[i], RELAXED);
    md_hist_observe(&m->batch_size, (double)d->commands);
    md_hist_observe(&m->commit_seconds, commit_seconds);
}

static void put(md_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(md_buf_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        md_buf_append(out, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

static uint64_t get(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, RELAXED);
}

static void render_hist(md_buf_t *out, const char *name, const char *help, md_histogram_t *h)
{
    uint64_t cum = 0;
    put(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (int i = 0; i < MD_HIST_BUCKETS; i++) {
        cum += get(&h->counts[i]);
        put(out, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    put(out, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)get(&h->count));
    put(out, "%s_sum %.6f\n%s_count %llu\n", name, (double)get(&h->sum_micro) / 1e6, name,
        (unsigned long long)get(&h->count));
}

static void render_commands(md_buf_t *out)
{
    md_metrics_t *m = &md_metrics;
    put(out, "# HELP marketd_commands_total Commands decided, by result status.\n"
             "# TYPE marketd_commands_total counter\n");
    put(out, "marketd_commands_total{status=\"accepted\"} %llu\n",
        (unsigned long long)get(&m->accepted));
    put(out, "marketd_commands_total{status=\"rejected\"} %llu\n",
        (unsigned long long)get(&m->rejected));
    put(out, "marketd_commands_total{status=\"duplicate\"} %llu\n",
        (unsigned long long)get(&m->duplicates));
    put(out, "# HELP marketd_rejections_total Rejected commands by code.\n"
             "# TYPE marketd_rejections_total counter\n");
    for (int i = 0; i < MD_CODE_COUNT_ && i < MD_METRIC_CODES; i++)
        put(out, "marketd_rejections_total{code=\"%s\"} %llu\n", md_code_name((md_code_t)i),
            (unsigned long long)get(&m->rejected_by_code[i]));
}

static void render_lag(md_buf_t *out)
{
    put(out, "# HELP marketd_consumer_lag Messages behind the high watermark, per partition.\n"
             "# TYPE marketd_consumer_lag gauge\n");
    for (int p = 0; p < MD_METRIC_PARTITIONS; p++) {
        int64_t lag = atomic_load_explicit(&md_metrics.lag[p], RELAXED);
        if (atomic_load_explicit(&md_metrics.assigned[p], RELAXED) && lag >= 0)
            put(out, "marketd_consumer_lag{partition=\"%d\"} %lld\n", p, (long long)lag);
    }
}

static void render_replica(md_buf_t *out)
{
    md_replica_metrics_t *r = &md_metrics.replica;
    if (!atomic_load_explicit(&r->on, RELAXED))
        return;
    put(out,
        "# HELP marketd_replica_leader 1 when this replica publishes (holds the leader "
        "partition).\n# TYPE marketd_replica_leader gauge\nmarketd_replica_leader %d\n",
        atomic_load_explicit(&r->leader, RELAXED) ? 1 : 0);
    put(out,
        "# HELP marketd_replica_divergence_total Peer checkpoints whose hash differs from "
        "this replica's at that seq.\n# TYPE marketd_replica_divergence_total counter\n"
        "marketd_replica_divergence_total %llu\n",
        (unsigned long long)get(&r->divergence));
    put(out,
        "# HELP marketd_replica_leader_changes_total Leadership gained or lost.\n"
        "# TYPE marketd_replica_leader_changes_total counter\n"
        "marketd_replica_leader_changes_total %llu\n",
        (unsigned long long)get(&r->leader_changes));
    put(out,
        "# HELP marketd_replica_takeover_resent_total Entries published on taking over "
        "(each may duplicate one the previous leader sent).\n"
        "# TYPE marketd_replica_takeover_resent_total counter\n"
        "marketd_replica_takeover_resent_total %llu\n",
        (unsigned long long)get(&r->takeover_resent));
    put(out,
        "# HELP marketd_replica_dropped_total Outbox entries dropped: the leader published "
        "them.\n# TYPE marketd_replica_dropped_total counter\nmarketd_replica_dropped_total "
        "%llu\n",
        (unsigned long long)get(&r->dropped));
    put(out,
        "# HELP marketd_replica_published_seq The highest seq published through (leaders' "
        "checkpoints).\n# TYPE marketd_replica_published_seq gauge\n"
        "marketd_replica_published_seq %llu\n",
        (unsigned long long)get(&r->published));
    put(out,
        "# HELP marketd_replica_leader_lag Events behind the leader's last checkpoint "
        "(-1: unknown).\n# TYPE marketd_replica_leader_lag gauge\n"
        "marketd_replica_leader_lag %lld\n",
        (long long)atomic_load_explicit(&r->leader_lag, RELAXED));
    put(out, "# HELP marketd_replica_peer_seq Each peer's last checkpointed seq.\n"
             "# TYPE marketd_replica_peer_seq gauge\n");
    int n = atomic_load_explicit(&r->npeers, memory_order_acquire);
    for (int i = 0; i < n && i < MD_METRIC_PEERS; i++)
        put(out, "marketd_replica_peer_seq{replica=\"%s\"} %llu\n", r->peer_id[i],
            (unsigned long long)get(&r->peer_seq[i]));
}

/* Replicated mode: not diverged, and caught up with the commands topic. */
static bool replica_ready(void)
{
    md_replica_metrics_t *r = &md_metrics.replica;
    if (!atomic_load_explicit(&r->on, RELAXED))
        return true;
    int64_t lag = atomic_load_explicit(&md_metrics.lag[0], RELAXED);
    return !atomic_load_explicit(&r->diverged, RELAXED) &&
           lag <= atomic_load_explicit(&r->ready_max_lag, RELAXED);
}

static long mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The projector: its watermark and how far behind the committed log it is. */
static void render_projection(md_buf_t *out, uint64_t events_total)
{
    md_metrics_t *m = &md_metrics;
    if (!atomic_load_explicit(&m->proj_on, RELAXED))
        return;
    uint64_t seq = get(&m->proj_seq), head = get(&m->proj_head);
    long since = atomic_load_explicit(&m->proj_behind_since_ms, RELAXED);
    if (events_total > head)
        head = events_total;
    put(out,
        "# HELP marketd_projection_seq The projections' watermark: the last seq applied.\n"
        "# TYPE marketd_projection_seq gauge\nmarketd_projection_seq %llu\n"
        "# HELP marketd_projection_lag_events Committed events the projections do not show "
        "yet.\n# TYPE marketd_projection_lag_events gauge\nmarketd_projection_lag_events %llu\n",
        (unsigned long long)seq, (unsigned long long)(head > seq ? head - seq : 0));
    /* (put's lines are at most 511 bytes: one metric per call) */
    put(out,
        "# HELP marketd_projection_lag_seconds How long the projections have been behind a "
        "committed batch (0: caught up).\n# TYPE marketd_projection_lag_seconds gauge\n"
        "marketd_projection_lag_seconds %.3f\n",
        since > 0 && head > seq ? (double)(mono_now() - since) / 1000.0 : 0.0);
    put(out,
        "# HELP marketd_projection_commits_total Projection transactions committed.\n"
        "# TYPE marketd_projection_commits_total counter\nmarketd_projection_commits_total "
        "%llu\n",
        (unsigned long long)get(&m->proj_commits));
    put(out,
        "# HELP marketd_projection_staged_commits_total Projection transactions of a batch "
        "handed over before the log's commit (the head start).\n"
        "# TYPE marketd_projection_staged_commits_total counter\n"
        "marketd_projection_staged_commits_total %llu\n",
        (unsigned long long)get(&m->proj_staged));
    put(out,
        "# HELP marketd_projection_failures_total Projection transactions that failed "
        "(retried).\n# TYPE marketd_projection_failures_total counter\n"
        "marketd_projection_failures_total %llu\n",
        (unsigned long long)get(&m->proj_failures));
}

/* The version and formats (dashboards show them), and readiness as a gauge
 * (alerts on a daemon that stays unready). */
static void render_build(md_buf_t *out)
{
    put(out,
        "# HELP marketd_build_info The running build: version, store and layout formats.\n"
        "# TYPE marketd_build_info gauge\n"
        "marketd_build_info{version=\"%s\",store_format=\"%d\",layout_format=\"%d\"} 1\n",
        md_version(), MD_STORE_FORMAT, md_proj_layout_format());
    put(out,
        "# HELP marketd_ready 1 when partitions are assigned and the outbox drains (/readyz).\n"
        "# TYPE marketd_ready gauge\nmarketd_ready %d\n",
        md_metrics_ready() ? 1 : 0);
}


static bool outbox_stalled(long now_ms)
{
    return atomic_load_explicit(&md_metrics.outbox_draining, RELAXED) &&
           now_ms - atomic_load_explicit(&md_metrics.outbox_progress_ms, RELAXED) >
               MD_OUTBOX_STALL_MS;
}

void md_metrics_render(md_buf_t *out, uint64_t outbox_depth, uint64_t outbox_parked,
                       uint64_t map_used, uint64_t map_size, uint64_t events_total)
{
    md_metrics_t *m = &md_metrics;
    render_commands(out);
    put(out,
        "# HELP marketd_events_appended_total Events appended by this process.\n"
        "# TYPE marketd_events_appended_total counter\nmarketd_events_appended_total %llu\n",
        (unsigned long long)get(&m->events_appended));
    put(out,
        "# HELP marketd_events Events in the store.\n# TYPE marketd_events gauge\n"
        "marketd_events %llu\n",
        (unsigned long long)events_total);
    put(out,
        "# HELP marketd_batch_failures_total Batches whose commit failed (retried).\n"
        "# TYPE marketd_batch_failures_total counter\nmarketd_batch_failures_total %llu\n",
        (unsigned long long)get(&m->batch_failures));
    render_hist(out, "marketd_batch_size", "Commands per committed batch.", &m->batch_size);
    render_hist(out, "marketd_commit_seconds", "Write transaction time including fsync.",
                &m->commit_seconds);
    render_lag(out);
    render_projection(out, events_total);
    render_replica(out);
    put(out,
        "# HELP marketd_partitions_fenced Assigned partitions not decided here: another "
        "store committed them further.\n# TYPE marketd_partitions_fenced gauge\n"
        "marketd_partitions_fenced %d\n"
        "# HELP marketd_fencings_total Partitions fenced since the start.\n"
        "# TYPE marketd_fencings_total counter\nmarketd_fencings_total %llu\n",
        atomic_load_explicit(&m->partitions_fenced, RELAXED),
        (unsigned long long)get(&m->fencings));
    put(out,
        "# HELP marketd_kafka_offset_commits_total Offset commits sent to Kafka (for lag tools and "
        "fencing; at most one per offsets.kafka_commit_ms while busy).\n"
        "# TYPE marketd_kafka_offset_commits_total counter\nmarketd_kafka_offset_commits_total "
        "%llu\n",
        (unsigned long long)get(&m->kafka_commits));
    put(out,
        "# HELP marketd_fetch_wakeups_total Fetchers woken after the consumer drained a full "
        "prefetch queue (librdkafka 2.0 waits up to a second otherwise).\n"
        "# TYPE marketd_fetch_wakeups_total counter\nmarketd_fetch_wakeups_total %llu\n",
        (unsigned long long)get(&m->fetch_wakeups));
    put(out,
        "# HELP marketd_outbox_depth Messages waiting in the outbox.\n"
        "# TYPE marketd_outbox_depth gauge\nmarketd_outbox_depth %llu\n",
        (unsigned long long)outbox_depth);
    put(out,
        "# HELP marketd_outbox_sent_total Outbox messages delivered.\n"
        "# TYPE marketd_outbox_sent_total counter\nmarketd_outbox_sent_total %llu\n",
        (unsigned long long)get(&m->outbox_sent));
    put(out,
        "# HELP marketd_outbox_failed_total Outbox deliveries that failed (sent again).\n"
        "# TYPE marketd_outbox_failed_total counter\nmarketd_outbox_failed_total %llu\n",
        (unsigned long long)get(&m->outbox_failed));
    put(out,
        "# HELP marketd_outbox_parked Outbox entries refused for good and moved aside"
        " (marketctl outbox list|retry).\n"
        "# TYPE marketd_outbox_parked gauge\nmarketd_outbox_parked %llu\n",
        (unsigned long long)outbox_parked);
    put(out,
        "# HELP marketd_outbox_parked_total Outbox entries parked by this process.\n"
        "# TYPE marketd_outbox_parked_total counter\nmarketd_outbox_parked_total %llu\n",
        (unsigned long long)get(&m->outbox_parked));
    put(out,
        "# HELP marketd_outbox_stalled 1 while entries wait and none was delivered for"
        " 10 s.\n# TYPE marketd_outbox_stalled gauge\nmarketd_outbox_stalled %d\n",
        outbox_stalled(mono_now()) ? 1 : 0);
    put(out,
        "# HELP marketd_lmdb_map_used_bytes Bytes of the LMDB map in use.\n"
        "# TYPE marketd_lmdb_map_used_bytes gauge\nmarketd_lmdb_map_used_bytes %llu\n"
        "# HELP marketd_lmdb_map_size_bytes Size of the LMDB map.\n"
        "# TYPE marketd_lmdb_map_size_bytes gauge\nmarketd_lmdb_map_size_bytes %llu\n",
        (unsigned long long)map_used, (unsigned long long)map_size);
    render_build(out);
}

bool md_metrics_ready_at(long now_ms)
{
    return replica_ready() && atomic_load_explicit(&md_metrics.partitions_assigned, RELAXED) > 0 &&
           atomic_load_explicit(&md_metrics.partitions_fenced, RELAXED) == 0 &&
           atomic_load_explicit(&md_metrics.outbox_draining, RELAXED) && !outbox_stalled(now_ms);
}

bool md_metrics_ready(void)
{
    return md_metrics_ready_at(mono_now());
}
