/*
 * consumer.c - the daemon's intake: a consumer group on the commands topic
 * whose offsets live in LMDB, batching by count and time (group commit), and
 * the durable decision of each batch through the engine.
 *
 * Invariants: a batch is acknowledged to Kafka (offsets committed, for lag
 * tools only) after its LMDB transaction committed; on every assignment the
 * consumer seeks to the offsets stored in LMDB, never Kafka's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "md_base.h"
#include "md_consumer.h"
#include "md_fetch_waker.h"
#include "md_kafka.h"
#include "md_log.h"
#include "md_metrics.h"

/* What the consumer keeps per partition of the commands topic. */
typedef struct part_state {
    int64_t expect;  /* intake: the next offset expected (MD_INTAKE_NONE: none stored) */
    bool kcommitted; /* this store committed it to Kafka since it was assigned */
} part_state_t;

struct md_consumer {
    const md_config_t *cfg;
    volatile sig_atomic_t *stop;
    md_store_t *store;
    md_engine_t *engine;
    md_publisher_t *pub;
    md_checkpointer_t *cp;
    md_batch_hook_fn replica_hook; /* md_consumer_opts_t */
    bool (*may_tick)(void *ctx);
    void *replica_ctx;
    bool final; /* stopping: the next transaction checkpoints the head */
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the consumer queue (its length: md_fetch_wake_needed) */
    md_fetch_waker_t *waker; /* NULL: not started */
    size_t queued_min;       /* queued.min.messages in effect */
    size_t queued_max_bytes; /* queued.max.messages.kbytes in effect, in bytes */
    /* the batch being collected */
    rd_kafka_message_t **msgs;
    int64_t *fetched_us;  /* per message: when it was taken from librdkafka (wall µs) */
    int64_t *appended_us; /* per message: its LogAppendTime in µs (0: CreateTime) */
    size_t nmsgs;
    md_input_t *in;
    /* delivered outbox ids to delete in the next batch transaction */
    uint64_t *del;
    size_t ndel, capdel;
    /* outbox entries refused for good, to move aside in the same transaction */
    md_outbox_park_t *park;
    size_t npark, cappark;
    md_buf_t results;
    /* per partition of the commands topic (part_state_t), and the batch's
     * intake record (md_store.h) */
    part_state_t *parts;
    int32_t nparts;
    md_intake_t intake;
    /* offsets taken since the last commit to Kafka (offsets.kafka_commit_ms) */
    rd_kafka_topic_partition_list_t *kpending;
    long last_kcommit_ms;
    long last_write_ms;
    long last_command_ms; /* when the last command came (timers.tick_ms) */
    bool warned_create_time;
    /* stage times for the results (md_publisher_note_batch): the outbox ids
     * of the batch in hand start at stage_lo (UINT64_MAX: unknown) and end
     * at stage_hi, read in its transaction */
    uint64_t stage_lo, stage_hi;
};


/* ---- batches -------------------------------------------------------------------- */

/* The state of @p partition (>= 0), the table grown to it. */
static part_state_t *part(md_consumer_t *d, int32_t partition)
{
    if (partition >= d->nparts) {
        int32_t n = partition + 1;
        d->parts = md_realloc(d->parts, (size_t)n * sizeof *d->parts);
        for (int32_t i = d->nparts; i < n; i++)
            d->parts[i] = (part_state_t){.expect = MD_INTAKE_NONE};
        d->nparts = n;
    }
    return &d->parts[partition];
}

static int64_t expected(const md_consumer_t *d, int32_t partition)
{
    return partition >= 0 && partition < d->nparts ? d->parts[partition].expect : MD_INTAKE_NONE;
}

static void set_expected(md_consumer_t *d, int32_t partition, int64_t next)
{
    if (partition >= 0)
        part(d, partition)->expect = next;
}

/* The batch's intake record: per partition, where it began and ended. */
static md_err_t put_intake(md_consumer_t *d, md_txn_t *t, md_error_t *err)
{
    if (d->nmsgs == 0)
        return MD_OK;
    md_intake_reset(&d->intake, d->cfg->topic_commands);
    for (size_t i = 0; i < d->nmsgs; i++)
        md_intake_add(&d->intake, d->in[i].partition, d->in[i].offset,
                      expected(d, d->in[i].partition));
    return md_txn_intake_put(t, &d->intake, err);
}

/* After the commit: the next batch of each partition is expected where this one ended. */
static void note_consumed(md_consumer_t *d)
{
    for (size_t i = 0; i < d->nmsgs; i++)
        set_expected(d, d->in[i].partition, d->in[i].offset + 1);
}

/* The engine's batch hook: delivered outbox entries, the intake record, the checkpoint. */
static md_err_t delete_delivered(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_consumer_t *d = ctx;
    /* Before anything below can queue entries of its own (checkpoints). */
    md_err_t nrc = md_txn_outbox_next(t, &d->stage_hi, err);
    if (nrc != MD_OK)
        return nrc;
    if (d->nmsgs && d->stage_lo != UINT64_MAX)
        md_publisher_expect_batch(d->pub, d->stage_lo, d->stage_hi);
    for (size_t i = 0; i < d->ndel; i++) {
        md_err_t rc = md_txn_outbox_del(t, d->del[i], err);
        if (rc != MD_OK)
            return rc;
    }
    if (d->replica_hook) {
        md_err_t hrc = d->replica_hook(t, d->replica_ctx, err);
        if (hrc != MD_OK)
            return hrc;
    }
    md_err_t rc = put_intake(d, t, err);
    if (rc != MD_OK)
        return rc;
    for (size_t i = 0; i < d->npark && rc == MD_OK; i++)
        rc = md_txn_outbox_park(t, d->park[i].id, d->park[i].reason, err);
    if (rc != MD_OK)
        return rc;
    return d->cp ? md_checkpointer_batch(d->cp, t, d->final, err) : MD_OK;
}

static void take_from_publisher(md_consumer_t *d)
{
    md_publisher_take_delivered(d->pub, &d->del, &d->ndel, &d->capdel);
    md_publisher_take_parked(d->pub, &d->park, &d->npark, &d->cappark);
}

/* True when the media type @p v (len bytes) is @p type, possibly followed by
 * parameters ("; charset=utf-8"); case-insensitive (RFC 9110 §8.3.1). */
static bool media_type_is(const char *v, size_t len, const char *type)
{
    size_t n = strlen(type);
    return len >= n && strncasecmp(v, type, n) == 0 && (len == n || v[n] == ';' || v[n] == ' ');
}

/* The content-type header: none or application/json is JSON,
 * application/msgpack is msgpack, anything else is refused (MALFORMED). */
static void read_content_type(const rd_kafka_message_t *m, md_input_t *in)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "content-type", &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL)
        return;
    if (media_type_is(v, len, "application/msgpack"))
        in->msgpack = true;
    else if (!media_type_is(v, len, "application/json")) {
        in->bad_content_type = v;
        in->bad_content_type_len = len;
    }
}

/* The message's log time for clock = log; warns once when the topic's
 * timestamps are the producers' (CreateTime) rather than the broker's. */
static int64_t log_time(md_consumer_t *d, const rd_kafka_message_t *m)
{
    rd_kafka_timestamp_type_t type;
    int64_t ts = rd_kafka_message_timestamp(m, &type);
    if (d->cfg->clock == MD_CLOCK_LOG && type != RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME &&
        !d->warned_create_time) {
        d->warned_create_time = true;
        md_log_warn("clock = log but the commands topic is not LogAppendTime: the producers' "
                    "timestamps are used",
                    "topic=%s", d->cfg->topic_commands);
    }
    return ts;
}

static void fill_inputs(md_consumer_t *d)
{
    for (size_t i = 0; i < d->nmsgs; i++) {
        const rd_kafka_message_t *m = d->msgs[i];
        d->in[i] = (md_input_t){.bytes = m->payload ? m->payload : "",
                                .len = m->len,
                                .key = m->key,
                                .key_len = m->key_len,
                                .partition = m->partition,
                                .offset = m->offset,
                                .timestamp_ms = log_time(d, m)};
        read_content_type(m, &d->in[i]);
    }
}

/* Lag per partition for /metrics: the cached high watermark minus the next offset. */
static void record_lag(md_consumer_t *d, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo, hi;
        int32_t p = l->elems[i].partition;
        if (l->elems[i].offset < 0)
            continue; /* no position yet */
        if (p < 0 || p >= MD_METRIC_PARTITIONS ||
            rd_kafka_get_watermark_offsets(d->rk, l->elems[i].topic, p, &lo, &hi))
            continue;
        atomic_store(&md_metrics.lag[p], hi > l->elems[i].offset ? hi - l->elems[i].offset : 0);
    }
}

/* The metadata of the offsets this store commits: "store:" and its identity. */
static size_t commit_metadata(const md_store_t *s, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s%s", MD_COMMIT_META_PREFIX, md_store_id(s));
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Kafka's committed offsets serve lag tools and fencing (each carries the
 * committing store's identity as metadata): LMDB holds the real ones. They
 * are sent (asynchronously, as before) at most every offsets.kafka_commit_ms,
 * when the daemon goes idle and at a revoke, not after every batch: at
 * 5,000 commands/s the daemon commits ~300 batches a second, and as many
 * OffsetCommit requests (each an append to __consumer_offsets) cost the broker
 * on the same cores a third of its CPU (docs/performance.md, "Latency"). */
static void flush_kafka_offsets(md_consumer_t *d)
{
    rd_kafka_topic_partition_list_t *l = d->kpending;
    if (l == NULL)
        return;
    d->kpending = NULL;
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].partition >= 0)
            part(d, l->elems[i].partition)->kcommitted = true;
    d->last_kcommit_ms = md_mono_ms();
    atomic_fetch_add(&md_metrics.kafka_commits, 1);
    rd_kafka_resp_err_t e = rd_kafka_commit(d->rk, l, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        md_log_debug("kafka offset commit failed", "error=\"%s\"", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

/* Adds the committed batch's offsets to those waiting for Kafka, and sends
 * them when offsets.kafka_commit_ms has passed since the last commit, or at
 * once when a partition has not been committed by this store since it was
 * assigned: until then Kafka holds the previous owner's offset, and a
 * previous owner (another store in the group) that comes back is fenced
 * only by this store's own commit (drop_fenced). */
static void commit_to_kafka(md_consumer_t *d)
{
    char meta[64];
    size_t mlen = commit_metadata(d->store, meta, sizeof meta);
    if (d->kpending == NULL)
        d->kpending = rd_kafka_topic_partition_list_new(4);
    rd_kafka_topic_partition_list_t *l = d->kpending;
    bool first = false;
    for (size_t i = 0; i < d->nmsgs; i++) {
        const rd_kafka_message_t *m = d->msgs[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, rd_kafka_topic_name(m->rkt), m->partition);
        if (tp == NULL) {
            tp = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition);
            tp->metadata = md_malloc(mlen + 1); /* freed with the list (librdkafka's free) */
            memcpy(tp->metadata, meta, mlen + 1);
            tp->metadata_size = mlen;
            first = first || (m->partition >= 0 && !part(d, m->partition)->kcommitted);
        }
        tp->offset = m->offset + 1;
    }
    record_lag(d, l);
    if (first || md_mono_ms() - d->last_kcommit_ms >= d->cfg->kafka_commit_ms)
        flush_kafka_offsets(d);
}

static void drop_batch(md_consumer_t *d)
{
    for (size_t i = 0; i < d->nmsgs; i++)
        rd_kafka_message_destroy(d->msgs[i]);
    d->nmsgs = 0;
}

/* Hands the committed batch's stage times to the publisher (before its wake-up). */
static void note_stages(md_consumer_t *d, int64_t batch_us, int64_t commit_us)
{
    if (d->nmsgs && d->stage_lo != UINT64_MAX) {
        for (size_t i = 0; i < d->nmsgs; i++) {
            rd_kafka_timestamp_type_t type;
            int64_t ts = rd_kafka_message_timestamp(d->msgs[i], &type);
            d->appended_us[i] = type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME ? ts * 1000 : 0;
        }
        md_stage_batch_t b = {.lo = d->stage_lo,
                              .hi = d->stage_hi,
                              .fetched_us = d->fetched_us,
                              .appended_us = d->appended_us,
                              .n = d->nmsgs,
                              .batch_us = batch_us,
                              .commit_us = commit_us};
        md_publisher_note_batch(d->pub, &b);
    } else
        md_publisher_expect_batch(d->pub, 0, 0);
    d->stage_lo = d->stage_hi;
}

long md_retry_next_ms(long pause_ms)
{
    return pause_ms >= MD_RETRY_MAX_MS / 2 ? MD_RETRY_MAX_MS : pause_ms * 2;
}

/*
 * Decides the collected batch durably. A store failure (disk full, I/O) is
 * retried with a growing pause until it succeeds or the daemon is stopped:
 * nothing is acknowledged before the commit, so nothing is lost either way.
 * A store that lost its map (md_store_broken) cannot recover: the error is
 * returned and the daemon stops, saying why.
 */
static md_err_t process_batch(md_consumer_t *d, md_error_t *err)
{
    long pause = 100;
    take_from_publisher(d);
    if (d->nmsgs == 0 && d->ndel == 0 && d->npark == 0 && !md_checkpointer_due(d->cp, d->final))
        return MD_OK;
    fill_inputs(d);
    int64_t batch_us;
    for (;;) {
        md_error_t e = {0};
        md_buf_reset(&d->results);
        batch_us = md_wall_us();
        md_err_t rc =
            md_engine_process(d->engine, d->in, d->nmsgs, batch_us / 1000, &d->results, &e);
        if (rc == MD_OK)
            break;
        atomic_fetch_add(&md_metrics.batch_failures, 1);
        md_log_error("batch not committed, will retry", "commands=%zu error=\"%s\" retry_ms=%ld",
                     d->nmsgs, e.msg, pause);
        if (*d->stop || md_store_broken(d->store))
            return md_error_set(err, rc, "%s", e.msg);
        flush_kafka_offsets(d); /* what earlier batches committed, while this one waits */
        md_sleep_ms(pause);
        pause = md_retry_next_ms(pause);
    }
    note_stages(d, batch_us, md_wall_us());
    d->ndel = d->npark = 0;
    d->last_write_ms = md_mono_ms();
    if (d->nmsgs)
        d->last_command_ms = d->last_write_ms;
    md_publisher_wake(d->pub);
    note_consumed(d);
    if (d->nmsgs)
        commit_to_kafka(d);
    md_log_debug("batch committed", "commands=%zu", d->nmsgs);
    drop_batch(d);
    return MD_OK;
}

/* ---- rebalancing: LMDB owns the offsets ------------------------------------------- */

static void seek_to_stored(md_consumer_t *d, rd_kafka_topic_partition_list_t *parts)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    long pause = 100;
    /* Assigning without the stored offsets would fall back on Kafka's
     * committed ones (behind LMDB's) and re-decide consumed commands as
     * duplicates, so a failed read (e.g. MDB_READERS_FULL while readers hold
     * every slot) is retried until it works or the daemon is stopped. */
    while (md_store_read(d->store, &t, &err) != MD_OK) {
        md_log_error("cannot read stored offsets, will retry", "error=\"%s\" retry_ms=%ld", err.msg,
                     pause);
        if (*d->stop)
            break;
        md_sleep_ms(pause);
        pause = pause < 2000 ? pause * 2 : 2000;
        md_error_clear(&err);
        if (md_store_broken(d->store))
            break;
    }
    for (int i = 0; t != NULL && i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t next;
        tp->offset = md_txn_offset_get(t, tp->topic, tp->partition, &next, &err) == MD_OK
                         ? next
                         : RD_KAFKA_OFFSET_BEGINNING;
        set_expected(d, tp->partition, tp->offset >= 0 ? tp->offset : MD_INTAKE_NONE);
        md_log_info("partition assigned", "topic=%s partition=%d offset=%lld", tp->topic,
                    (int)tp->partition, (long long)tp->offset);
    }
    md_txn_end(t);
}

bool md_consumer_fenced(const char *own_id, int64_t own_next, int64_t committed, const void *meta,
                        size_t meta_len)
{
    size_t pl = strlen(MD_COMMIT_META_PREFIX), il = strlen(own_id);
    if (committed < 0 || meta == NULL || meta_len <= pl ||
        memcmp(meta, MD_COMMIT_META_PREFIX, pl) != 0)
        return false; /* nothing committed, or not by a marketd store */
    if (meta_len == pl + il && memcmp((const char *)meta + pl, own_id, il) == 0)
        return false; /* this store's own commit */
    return committed > (own_next > 0 ? own_next : 0);
}

/*
 * Fencing: a partition whose offset in Kafka was committed by another store
 * (another marketd in this group with its own data directory) ahead of this
 * store's own is left unassigned: deciding it here would decide its commands
 * a second time, with this store's (different) state. Logged, counted in
 * /metrics, and /readyz says not ready until the next assignment.
 * Returns the partitions to take (a new list).
 */
static rd_kafka_topic_partition_list_t *drop_fenced(md_consumer_t *d,
                                                    const rd_kafka_topic_partition_list_t *parts)
{
    rd_kafka_topic_partition_list_t *seen = rd_kafka_topic_partition_list_copy(parts);
    rd_kafka_topic_partition_list_t *take = rd_kafka_topic_partition_list_new(parts->cnt);
    rd_kafka_resp_err_t e = rd_kafka_committed(d->rk, seen, 10000);
    if (e)
        md_log_warn("committed offsets unknown; partitions not checked for another store",
                    "error=\"%s\"", rd_kafka_err2str(e));
    for (int i = 0; i < parts->cnt; i++) {
        const rd_kafka_topic_partition_t *tp = &parts->elems[i], *c = &seen->elems[i];
        int64_t own = tp->offset == RD_KAFKA_OFFSET_BEGINNING ? 0 : tp->offset;
        if (!e && !c->err &&
            md_consumer_fenced(md_store_id(d->store), own, c->offset, c->metadata,
                               c->metadata_size)) {
            md_log_error(
                "partition fenced: another store decided it further; not deciding it here",
                "topic=%s partition=%d committed=%lld own=%lld by=\"%.*s\" this=\"%s%s\" "
                "hint=\"one consumer group per store: give each marketd its own group.id\"",
                tp->topic, (int)tp->partition, (long long)c->offset, (long long)own,
                (int)c->metadata_size, (const char *)c->metadata, MD_COMMIT_META_PREFIX,
                md_store_id(d->store));
            atomic_fetch_add(&md_metrics.partitions_fenced, 1);
            atomic_fetch_add(&md_metrics.fencings, 1);
            continue;
        }
        rd_kafka_topic_partition_list_add(take, tp->topic, tp->partition)->offset = tp->offset;
    }
    rd_kafka_topic_partition_list_destroy(seen);
    return take;
}

/* Counts the partitions for /readyz once librdkafka has really taken the assignment. */
static void mark_assigned(const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t p = parts->elems[i].partition;
        atomic_fetch_add(&md_metrics.partitions_assigned, 1);
        if (p >= 0 && p < MD_METRIC_PARTITIONS)
            atomic_store(&md_metrics.assigned[p], true);
    }
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    md_consumer_t *d = opaque;
    md_error_t err = {0};
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        for (int32_t i = 0; i < d->nparts; i++)
            d->parts[i].kcommitted = false;
        seek_to_stored(d, parts);
        rd_kafka_topic_partition_list_t *take = drop_fenced(d, parts);
        rd_kafka_resp_err_t ae = rd_kafka_assign(rk, take);
        if (ae)
            md_log_error("partition assignment failed", "error=\"%s\"", rd_kafka_err2str(ae));
        else
            mark_assigned(take);
        rd_kafka_topic_partition_list_destroy(take);
        return;
    }
    /* Revoked (or an error): finish the batch before letting the partitions go. */
    if (process_batch(d, &err) != MD_OK) {
        md_log_error("batch lost at revoke; it will be consumed again", "error=\"%s\"", err.msg);
        drop_batch(d);
    }
    flush_kafka_offsets(d); /* the next owner checks them (drop_fenced) */
    md_log_info("partitions revoked", "count=%d", parts ? parts->cnt : 0);
    for (int p = 0; p < MD_METRIC_PARTITIONS; p++)
        atomic_store(&md_metrics.assigned[p], false);
    atomic_store(&md_metrics.partitions_assigned, 0);
    atomic_store(&md_metrics.partitions_fenced, 0);
    rd_kafka_resp_err_t ue = rd_kafka_assign(rk, NULL);
    if (ue)
        md_log_error("partition unassignment failed", "error=\"%s\"", rd_kafka_err2str(ue));
}

/* ---- consumer ------------------------------------------------------------------------- */

/*
 * Fetch sizes and prefetch bounds, unless the configuration sets them
 * (kafka.*). librdkafka's own (100,000 messages, 64 MiB queued) dominate the
 * daemon's memory under a backlog. A small prefetch used to drain in bursts
 * (librdkafka 2.0 waits up to a second once its queue is full), so fetches
 * were 8 MiB; with the fetcher woken after each drained queue
 * (md_fetch_waker.h), 1 MiB fetches and a queue of a batch and a quarter drain
 * as fast at ~20 MiB less (docs/performance.md, "Issue 17, eighth pass").
 */
static const char *const fetch_defaults[] = {
    "max.partition.fetch.bytes",  "1048576", "fetch.max.bytes", "4194304",
    "queued.max.messages.kbytes", "16384"};
#define NFETCH_DEFAULTS (sizeof fetch_defaults / sizeof *fetch_defaults / 2)

/* queued.min.messages: a batch and a quarter, so that a full batch waits in
 * the queue when the writer comes for it; at least 1000. */
static long prefetch_min(const md_config_t *cfg)
{
    long n = (long)cfg->batch_max_commands + (long)cfg->batch_max_commands / 4;
    return n < 1000 ? 1000 : n;
}

static bool kafka_key_set(const md_config_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (strcmp(cfg->kafka[i].key, key) == 0)
            return true;
    return false;
}

bool md_consumer_fetch_defaults(const md_config_t *cfg, rd_kafka_conf_t *conf, md_error_t *err)
{
    char errstr[512], qmin[24];
    snprintf(qmin, sizeof qmin, "%ld", prefetch_min(cfg));
    for (size_t i = 0; i <= NFETCH_DEFAULTS; i++) {
        const char *key = i < NFETCH_DEFAULTS ? fetch_defaults[2 * i] : "queued.min.messages";
        const char *val = i < NFETCH_DEFAULTS ? fetch_defaults[2 * i + 1] : qmin;
        if (kafka_key_set(cfg, key))
            continue;
        if (rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            md_error_set(err, MD_ECONFIG, "kafka.%s: %s", key, errstr);
            return false;
        }
    }
    return true;
}

/* The prefetch bounds @p conf holds (after md_consumer_fetch_defaults), for
 * md_fetch_wake_needed: queued.min.messages and queued.max.messages.kbytes. */
static void read_prefetch_bounds(md_consumer_t *d, const rd_kafka_conf_t *conf)
{
    char v[32];
    size_t n = sizeof v;
    if (rd_kafka_conf_get(conf, "queued.min.messages", v, &n) == RD_KAFKA_CONF_OK)
        d->queued_min = (size_t)strtoull(v, NULL, 10);
    n = sizeof v;
    if (rd_kafka_conf_get(conf, "queued.max.messages.kbytes", v, &n) == RD_KAFKA_CONF_OK)
        d->queued_max_bytes = (size_t)strtoull(v, NULL, 10) * 1024;
}

static md_err_t start_consumer(md_consumer_t *d, md_error_t *err)
{
    const char *extra[] = {"group.id",
                           d->cfg->group_id,
                           "enable.auto.commit",
                           "false",
                           "enable.auto.offset.store",
                           "false",
                           "auto.offset.reset",
                           "earliest",
                           "enable.partition.eof",
                           "false"};
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(d->cfg, extra, 5, err);
    if (conf == NULL)
        return MD_ECONFIG;
    if (!md_consumer_fetch_defaults(d->cfg, conf, err)) {
        rd_kafka_conf_destroy(conf);
        return MD_ECONFIG;
    }
    read_prefetch_bounds(d, conf);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, d);
    d->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (d->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return md_error_set(err, MD_EKAFKA, "create consumer: %s", errstr);
    }
    rd_kafka_resp_err_t e = rd_kafka_poll_set_consumer(d->rk);
    if (e)
        return md_error_set(err, MD_EKAFKA, "consumer queue: %s", rd_kafka_err2str(e));
    d->queue = rd_kafka_queue_get_consumer(d->rk);
    d->waker = md_fetch_waker_new(d->rk, d->cfg->topic_commands);
    if (d->waker == NULL)
        md_log_warn("fetch waker not started; a backlog drains in bursts", "topic=%s",
                    d->cfg->topic_commands);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, d->cfg->topic_commands, RD_KAFKA_PARTITION_UA);
    e = rd_kafka_subscribe(d->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        return md_error_set(err, MD_EKAFKA, "subscribe: %s", rd_kafka_err2str(e));
    return MD_OK;
}

/* Adds a consumed message to the batch, or logs a consumer error. */
static void take_message(md_consumer_t *d, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            md_log_warn("consumer error", "error=\"%s\"", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    d->fetched_us[d->nmsgs] = md_wall_us();
    d->msgs[d->nmsgs++] = m;
}

/* Collects up to batch.max_commands messages: waits for the first, then at
 * most batch.max_wait_ms for more, then takes whatever is already queued
 * (group commit: what arrived during the previous commit goes in this one). */
static void collect_batch(md_consumer_t *d)
{
    long deadline = 0;
    size_t max = (size_t)d->cfg->batch_max_commands;
    while (!*d->stop && d->nmsgs < max) {
        long now = md_mono_ms();
        int wait = d->nmsgs == 0 ? 100 : now < deadline ? (int)(deadline - now) : 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->rk, wait);
        if (m == NULL) {
            if (d->nmsgs == 0 || wait == 0)
                return; /* idle (the loop tidies the outbox), or nothing more queued */
            continue;
        }
        if (d->nmsgs == 0)
            deadline = md_mono_ms() + d->cfg->batch_max_wait_ms;
        take_message(d, m);
    }
}

/* Refreshes the lag of every assigned partition from the consumer's position. */
static void refresh_lag(md_consumer_t *d)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(d->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_position(d->rk, parts) == RD_KAFKA_RESP_ERR_NO_ERROR)
        record_lag(d, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* While idle, delivered outbox entries are deleted and the lag refreshed every 200 ms. */
static md_err_t tidy_when_idle(md_consumer_t *d, md_error_t *err)
{
    if (d->nmsgs || md_mono_ms() - d->last_write_ms < 200)
        return MD_OK;
    d->last_write_ms = md_mono_ms();
    refresh_lag(d);
    flush_kafka_offsets(d);
    return process_batch(d, err);
}

/* timers.tick_ms: idle that long, a Tick goes to the commands topic, so that
 * deadlines fire without traffic (it comes back as a command like any other). */
static md_err_t tick_when_idle(md_consumer_t *d, md_error_t *err)
{
    long now = md_mono_ms();
    if (d->cfg->timers_tick_ms <= 0 || d->nmsgs ||
        now - d->last_command_ms < d->cfg->timers_tick_ms)
        return MD_OK;
    d->last_command_ms = now;
    if (d->may_tick && !d->may_tick(d->replica_ctx))
        return MD_OK; /* replicated: the leader ticks for everyone */
    md_err_t rc = md_engine_tick(d->engine, md_wall_ms(), err);
    if (rc == MD_OK)
        md_publisher_wake(d->pub);
    return rc;
}

/* The consumer queue's length in messages (0 without the queue). */
static size_t queue_len(const md_consumer_t *d)
{
    return d->queue ? (size_t)rd_kafka_queue_length(d->queue) : 0;
}

/* After a batch was taken from a queue @p before messages long: wakes the
 * fetchers when they may be waiting (md_fetch_waker.h). */
static void wake_fetchers(md_consumer_t *d, size_t before)
{
    size_t bytes = 0, after = queue_len(d);
    for (size_t i = 0; i < d->nmsgs; i++)
        bytes += d->msgs[i]->len;
    /* a fetch may have landed while the batch was collected: the queue held
     * at least what is left and what was taken */
    size_t peak = before > after + d->nmsgs ? before : after + d->nmsgs;
    if (md_fetch_wake_needed(peak, after, d->nmsgs, bytes, d->queued_min, d->queued_max_bytes))
        md_fetch_waker_poke(d->waker);
}

static md_err_t consume_loop(md_consumer_t *d, md_error_t *err)
{
    md_err_t rc = MD_OK;
    while (!*d->stop && rc == MD_OK) {
        size_t before = queue_len(d);
        collect_batch(d);
        wake_fetchers(d, before);
        rc = d->nmsgs ? process_batch(d, err) : tidy_when_idle(d, err);
        if (rc == MD_OK && d->nmsgs == 0)
            rc = tick_when_idle(d, err);
    }
    if (*d->stop)
        md_log_info("stop requested", "batch=%zu", d->nmsgs);
    d->final = true; /* the last transaction checkpoints the head */
    if (rc == MD_OK)
        rc = process_batch(d, err); /* what was collected before the stop */
    return rc;
}

/* ---- the handle -------------------------------------------------------------------------- */

/* The id of the next outbox entry: the first batch's results come after it
 * (UINT64_MAX when it cannot be read: that batch's results get no stage header). */
static uint64_t first_outbox_id(md_store_t *s)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t next = UINT64_MAX;
    if (md_store_read(s, &t, &err) != MD_OK || md_txn_outbox_next(t, &next, &err) != MD_OK)
        next = UINT64_MAX;
    md_txn_end(t);
    return next;
}

md_err_t md_consumer_new(const md_consumer_opts_t *o, md_consumer_t **out, md_error_t *err)
{
    md_consumer_t *d = md_calloc(1, sizeof *d);
    *d = (md_consumer_t){.cfg = o->cfg,
                         .stop = o->stop,
                         .store = o->store,
                         .engine = o->engine,
                         .pub = o->pub,
                         .cp = o->checkpointer,
                         .last_command_ms = md_mono_ms(),
                         .last_kcommit_ms = md_mono_ms(),
                         .replica_hook = o->replica_hook,
                         .may_tick = o->may_tick,
                         .replica_ctx = o->replica_ctx};
    d->msgs = md_malloc((size_t)o->cfg->batch_max_commands * sizeof *d->msgs);
    d->in = md_malloc((size_t)o->cfg->batch_max_commands * sizeof *d->in);
    d->fetched_us = md_malloc((size_t)o->cfg->batch_max_commands * sizeof *d->fetched_us);
    d->appended_us = md_malloc((size_t)o->cfg->batch_max_commands * sizeof *d->appended_us);
    d->stage_lo = first_outbox_id(d->store);
    md_buf_init(&d->results);
    md_engine_set_batch_hook(d->engine, delete_delivered, d);
    md_err_t rc = start_consumer(d, err);
    if (rc != MD_OK) {
        md_consumer_free(d);
        return rc;
    }
    *out = d;
    return MD_OK;
}

md_err_t md_consumer_run(md_consumer_t *c, md_error_t *err)
{
    return consume_loop(c, err);
}

/* How long leaving the group may take at a stop. librdkafka's own close
 * waits for requests in flight, and a JoinGroup in flight may be held by the
 * coordinator for the whole rebalance timeout (max.poll.interval.ms, 5 min)
 * while it waits for members that were killed: a stop must not wait for it. */
#define CLOSE_TIMEOUT_MS 8000

/* How long the fetch waker may take to end after leaving the group: a wake
 * request to a broker that hangs can wait much longer (md_fetch_waker.h). */
#define WAKER_END_MS 2000

/* Leaves the group, serving the revoke (which commits the batch in hand),
 * bounded by CLOSE_TIMEOUT_MS; returns true when the close completed. */
static bool close_bounded(md_consumer_t *c)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, q);
    bool closed = false;
    if (e) {
        md_log_warn("consumer did not leave the group cleanly", "error=\"%s\"",
                    rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    } else {
        long deadline = md_mono_ms() + CLOSE_TIMEOUT_MS;
        /* Serves the revoke through on_rebalance, as rd_kafka_consumer_close
         * would. A fetch answered while the group is left lands here too:
         * rd_kafka_queue_poll_callback aborts on it (librdkafka 2.0's
         * "rd_kafka_q_serve: assert: res != RD_KAFKA_OP_RES_PASS", seen in
         * test_backlog_drain.sh's stop d), so take it as a message and drop it
         * (its offset is not stored: the next start seeks to the store's). */
        while (!(closed = rd_kafka_consumer_closed(c->rk)) && md_mono_ms() < deadline) {
            rd_kafka_message_t *m = rd_kafka_consume_queue(q, 100);
            if (m)
                rd_kafka_message_destroy(m);
        }
    }
    rd_kafka_queue_destroy(q);
    return closed;
}

void md_consumer_close(md_consumer_t *c)
{
    if (c == NULL || c->rk == NULL)
        return;
    flush_kafka_offsets(c);
    md_fetch_waker_stop(c->waker); /* no more wakes; it ends while the group is left */
    md_log_info("leaving the consumer group", "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    bool closed = close_bounded(c);
    if (!closed)
        md_log_warn("consumer group not left in time; the coordinator drops this member "
                    "after session.timeout.ms",
                    "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    /* its thread calls librdkafka: ended before the destroy, or no destroy */
    bool waker_ended = md_fetch_waker_free(c->waker, WAKER_END_MS);
    c->waker = NULL;
    md_log_info(
        "fetch wakeups", "wakeups=%llu",
        (unsigned long long)atomic_load_explicit(&md_metrics.fetch_wakeups, memory_order_relaxed));
    if (c->queue)
        rd_kafka_queue_destroy(c->queue);
    c->queue = NULL;
    /* Destroying a consumer whose group was not left waits for its requests in
     * flight (an offset commit to a broker that hangs: up to socket.timeout.ms,
     * 60 s, in librdkafka 2.0.2); the process is ending, so it is left to end
     * with it, as a waker still inside librdkafka must be. */
    if (waker_ended && closed)
        rd_kafka_destroy(c->rk);
    else if (!waker_ended)
        md_log_warn("consumer not destroyed: a fetch wake still waits for the broker "
                    "(the process ends without it)",
                    "timeout_ms=%d", WAKER_END_MS);
    else
        md_log_warn("consumer not destroyed: the group was not left, its requests wait for "
                    "the broker (the process ends without it)",
                    "timeout_ms=%d", CLOSE_TIMEOUT_MS);
    c->rk = NULL;
}

/* What really stays in the store's outbox, queued and parked. */
static void report_undelivered(md_consumer_t *c)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t queued = 0, parked = 0;
    md_err_t rc = md_store_read(c->store, &t, &err);
    if (rc == MD_OK)
        rc = md_txn_outbox_counts(t, &queued, &parked, &err);
    md_txn_end(t);
    if (rc != MD_OK)
        md_log_warn("outbox not counted at stop", "error=\"%s\"", err.msg);
    else if (queued || parked)
        md_log_warn("outbox not empty at stop; queued entries are sent at next start",
                    "undelivered=%llu parked=%llu", (unsigned long long)queued,
                    (unsigned long long)parked);
    else
        md_log_info("outbox empty at stop", "undelivered=0 parked=0");
}

void md_consumer_finish_outbox(md_consumer_t *c, long timeout_ms)
{
    md_error_t err = {0};
    (void)md_publisher_stop(c->pub, timeout_ms);
    take_from_publisher(c);
    if ((c->ndel || c->npark) && md_store_write(c->store, delete_delivered, c, &err) != MD_OK)
        md_log_warn("delivered outbox entries not deleted; they will be sent again",
                    "count=%zu error=\"%s\"", c->ndel, err.msg);
    c->ndel = c->npark = 0;
    report_undelivered(c);
}

void md_consumer_free(md_consumer_t *c)
{
    if (c == NULL)
        return;
    md_consumer_close(c);
    drop_batch(c);
    md_engine_set_batch_hook(c->engine, NULL, NULL);
    free(c->msgs);
    free(c->fetched_us);
    free(c->appended_us);
    free(c->in);
    free(c->del);
    free(c->parts);
    md_intake_release(&c->intake);
    free(c->park);
    md_buf_release(&c->results);
    if (c->kpending != NULL)
        rd_kafka_topic_partition_list_destroy(c->kpending);
    free(c);
}
