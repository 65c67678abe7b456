/*
 * kafka.c - the daemon on Kafka: configuration, topic creation, the consumer
 * with LMDB-owned offsets, batching, and an orderly shutdown.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_http.h"
#include "md_kafka.h"
#include "md_log.h"
#include "md_metrics.h"
#include "md_proj.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which md_kafka.h includes */

typedef struct daemon {
    const md_config_t *cfg;
    volatile sig_atomic_t *stop;
    md_store_t *store;
    md_engine_t *engine;
    md_publisher_t *pub;
    md_proj_t *proj;
    md_http_t *http;
    rd_kafka_t *consumer;
    /* the batch being collected */
    rd_kafka_message_t **msgs;
    size_t nmsgs;
    md_input_t *in;
    /* delivered outbox ids to delete in the next batch transaction */
    uint64_t *del;
    size_t ndel, capdel;
    md_buf_t results;
    long last_write_ms;
    long last_command_ms;         /* when the last command came (timers.tick_ms) */
} daemon_t;

static long mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- configuration ---------------------------------------------------------- */

static bool conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, md_error_t *err)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, k, v, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return true;
    md_error_set(err, MD_ECONFIG, "kafka.%s: %s", k, errstr);
    return false;
}

static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    md_log_level_t l = level <= 3 ? MD_LOG_ERROR : level <= 4 ? MD_LOG_WARN
                                                 : level <= 6 ? MD_LOG_INFO : MD_LOG_DEBUG;
    char q[600];
    md_log(l, "librdkafka", "facility=%s detail=%s", fac, md_log_quote(buf, q, sizeof q));
}

rd_kafka_conf_t *md_kafka_conf(const md_config_t *cfg, const char *const *extra, size_t n,
                               md_error_t *err)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    for (size_t i = 0; i < cfg->nkafka; i++)
        if (!conf_set(conf, cfg->kafka[i].key, cfg->kafka[i].value, err))
            goto fail;
    for (size_t i = 0; i < n; i++)
        if (!conf_set(conf, extra[2 * i], extra[2 * i + 1], err))
            goto fail;
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* ---- topics ------------------------------------------------------------------- */

/* Sends one CreateTopics request; returns 1 done, 0 retry, -1 give up. */
static int create_topics_once(daemon_t *d, rd_kafka_t *rk)
{
    const md_config_t *c = d->cfg;
    const char *names[] = {c->topic_commands, c->topic_results, c->topic_events,
                           c->topic_deadletter};
    rd_kafka_NewTopic_t *nt[4];
    char errstr[256];
    for (int i = 0; i < 4; i++)
        nt[i] = rd_kafka_NewTopic_new(names[i], (int)c->topic_partitions,
                                      (int)c->topic_replication, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, 5000, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, nt, 4, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    int done = 0;
    if (ev && rd_kafka_event_error(ev) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n;
        const rd_kafka_topic_result_t **r =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        done = 1;
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(r[i]);
            if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
                md_log_info("topic created", "topic=%s", rd_kafka_topic_result_name(r[i]));
            else if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                md_log_warn("topic not created", "topic=%s error=\"%s\"",
                            rd_kafka_topic_result_name(r[i]), rd_kafka_err2str(e));
                done = e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ? -1 : 0;
            }
        }
    } else {
        md_log_warn("waiting for kafka", "step=create_topics error=\"%s\"",
                    ev ? rd_kafka_event_error_string(ev) : "timed out");
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, 4);
    return done;
}

/* Creates the topics when missing; a broker that is down is waited for. */
static md_err_t create_topics(daemon_t *d, md_error_t *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(d->cfg, NULL, 0, err);
    if (conf == NULL)
        return MD_ECONFIG;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return md_error_set(err, MD_EKAFKA, "create admin client: %s", errstr);
    }
    int done = 0;
    while (!*d->stop && done == 0)
        done = create_topics_once(d, rk);
    rd_kafka_destroy(rk);
    return MD_OK; /* when creation is refused, the topics may exist: go on */
}

/* ---- batches -------------------------------------------------------------------- */

static md_err_t delete_delivered(md_txn_t *t, void *ctx, md_error_t *err)
{
    daemon_t *d = ctx;
    for (size_t i = 0; i < d->ndel; i++) {
        md_err_t rc = md_txn_outbox_del(t, d->del[i], err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

static bool is_msgpack(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "content-type", &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return false;
    /* "application/msgpack", possibly followed by parameters. */
    return len >= 19 && memcmp(v, "application/msgpack", 19) == 0 &&
           (len == 19 || ((const char *)v)[19] == ';');
}

static void fill_inputs(daemon_t *d)
{
    for (size_t i = 0; i < d->nmsgs; i++) {
        const rd_kafka_message_t *m = d->msgs[i];
        d->in[i] = (md_input_t){.bytes = m->payload ? m->payload : "", .len = m->len,
                                .msgpack = is_msgpack(m), .key = m->key, .key_len = m->key_len,
                                .partition = m->partition, .offset = m->offset};
    }
}

/* Lag per partition for /metrics: the cached high watermark minus the next offset. */
static void record_lag(daemon_t *d, const rd_kafka_topic_partition_list_t *l)
{
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo, hi;
        int32_t p = l->elems[i].partition;
        if (l->elems[i].offset < 0)
            continue; /* no position yet */
        if (p < 0 || p >= MD_METRIC_PARTITIONS ||
            rd_kafka_get_watermark_offsets(d->consumer, l->elems[i].topic, p, &lo, &hi))
            continue;
        atomic_store(&md_metrics.lag[p], hi > l->elems[i].offset ? hi - l->elems[i].offset : 0);
    }
}

/* Kafka's committed offsets only serve lag tools: LMDB holds the real ones. */
static void commit_to_kafka(daemon_t *d)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < d->nmsgs; i++) {
        const rd_kafka_message_t *m = d->msgs[i];
        rd_kafka_topic_partition_t *tp =
            rd_kafka_topic_partition_list_find(l, rd_kafka_topic_name(m->rkt), m->partition);
        if (tp == NULL)
            tp = rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition);
        tp->offset = m->offset + 1;
    }
    record_lag(d, l);
    rd_kafka_resp_err_t e = rd_kafka_commit(d->consumer, l, 1);
    if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
        md_log_debug("kafka offset commit failed", "error=\"%s\"", rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(l);
}

static void drop_batch(daemon_t *d)
{
    for (size_t i = 0; i < d->nmsgs; i++)
        rd_kafka_message_destroy(d->msgs[i]);
    d->nmsgs = 0;
}

/*
 * Decides the collected batch durably. A store failure (disk full, I/O) is
 * retried with a growing pause until it succeeds or the daemon is stopped:
 * nothing is acknowledged before the commit, so nothing is lost either way.
 */
static md_err_t process_batch(daemon_t *d, md_error_t *err)
{
    long pause = 100;
    md_publisher_take_delivered(d->pub, &d->del, &d->ndel, &d->capdel);
    if (d->nmsgs == 0 && d->ndel == 0)
        return MD_OK;
    fill_inputs(d);
    for (;;) {
        md_error_t e = {0};
        md_buf_reset(&d->results);
        md_err_t rc = md_engine_process(d->engine, d->in, d->nmsgs, wall_ms(), &d->results, &e);
        if (rc == MD_OK)
            break;
        atomic_fetch_add(&md_metrics.batch_failures, 1);
        md_log_error("batch not committed, will retry", "commands=%zu error=\"%s\" retry_ms=%ld",
                     d->nmsgs, e.msg, pause);
        if (*d->stop)
            return md_error_set(err, rc, "%s", e.msg);
        struct timespec ts = {pause / 1000, (pause % 1000) * 1000000};
        nanosleep(&ts, NULL);
        pause = pause < 5000 ? pause * 2 : 5000;
    }
    d->ndel = 0;
    d->last_write_ms = mono_ms();
    if (d->nmsgs)
        d->last_command_ms = d->last_write_ms;
    md_publisher_wake(d->pub);
    if (d->nmsgs)
        commit_to_kafka(d);
    md_log_debug("batch committed", "commands=%zu", d->nmsgs);
    drop_batch(d);
    return MD_OK;
}

/* ---- rebalancing: LMDB owns the offsets ------------------------------------------- */

static void seek_to_stored(daemon_t *d, rd_kafka_topic_partition_list_t *parts)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    long pause = 100;
    /* Assigning without the stored offsets would fall back on Kafka's
     * committed ones (behind LMDB's) and re-decide consumed commands as
     * duplicates, so a failed read (e.g. MDB_READERS_FULL while readers hold
     * every slot) is retried until it works or the daemon is stopped. */
    while (md_store_read(d->store, &t, &err) != MD_OK) {
        md_log_error("cannot read stored offsets, will retry", "error=\"%s\" retry_ms=%ld",
                     err.msg, pause);
        if (*d->stop)
            break;
        struct timespec ts = {pause / 1000, (pause % 1000) * 1000000};
        nanosleep(&ts, NULL);
        pause = pause < 2000 ? pause * 2 : 2000;
        md_error_clear(&err);
    }
    for (int i = 0; t != NULL && i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *tp = &parts->elems[i];
        int64_t next;
        atomic_fetch_add(&md_metrics.partitions_assigned, 1);
        tp->offset = md_txn_offset_get(t, tp->topic, tp->partition, &next, &err) == MD_OK
                         ? next
                         : RD_KAFKA_OFFSET_BEGINNING;
        if (tp->partition >= 0 && tp->partition < MD_METRIC_PARTITIONS)
            atomic_store(&md_metrics.assigned[tp->partition], true);
        md_log_info("partition assigned", "topic=%s partition=%d offset=%lld", tp->topic,
                    (int)tp->partition, (long long)tp->offset);
    }
    md_txn_end(t);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    daemon_t *d = opaque;
    md_error_t err = {0};
    if (e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        seek_to_stored(d, parts);
        rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or an error): finish the batch before letting the partitions go. */
    if (process_batch(d, &err) != MD_OK) {
        md_log_error("batch lost at revoke; it will be consumed again", "error=\"%s\"", err.msg);
        drop_batch(d);
    }
    md_log_info("partitions revoked", "count=%d", parts ? parts->cnt : 0);
    for (int p = 0; p < MD_METRIC_PARTITIONS; p++)
        atomic_store(&md_metrics.assigned[p], false);
    atomic_store(&md_metrics.partitions_assigned, 0);
    rd_kafka_assign(rk, NULL);
}

/* ---- consumer ------------------------------------------------------------------------- */

static md_err_t start_consumer(daemon_t *d, md_error_t *err)
{
    const char *extra[] = {"group.id", d->cfg->group_id, "enable.auto.commit", "false",
                           "enable.auto.offset.store", "false", "auto.offset.reset", "earliest",
                           "enable.partition.eof", "false",
                           /* Bound the prefetch queue: librdkafka's defaults (100k messages,
                            * 64 MiB) dominate the daemon's memory on a backlog (docs/performance.md). */
                           "queued.min.messages", "20000", "queued.max.messages.kbytes", "16384"};
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(d->cfg, extra, 7, err);
    if (conf == NULL)
        return MD_ECONFIG;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, d);
    d->consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (d->consumer == NULL) {
        rd_kafka_conf_destroy(conf);
        return md_error_set(err, MD_EKAFKA, "create consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(d->consumer);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, d->cfg->topic_commands, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(d->consumer, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (e)
        return md_error_set(err, MD_EKAFKA, "subscribe: %s", rd_kafka_err2str(e));
    return MD_OK;
}

/* Adds a consumed message to the batch, or logs a consumer error. */
static void take_message(daemon_t *d, rd_kafka_message_t *m)
{
    if (m->err) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            md_log_warn("consumer error", "error=\"%s\"", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        return;
    }
    d->msgs[d->nmsgs++] = m;
}

/* Collects up to batch.max_commands messages: waits for the first, then at
 * most batch.max_wait_ms for more, then takes whatever is already queued
 * (group commit: what arrived during the previous commit goes in this one). */
static void collect_batch(daemon_t *d)
{
    long deadline = 0;
    size_t max = (size_t)d->cfg->batch_max_commands;
    while (!*d->stop && d->nmsgs < max) {
        long now = mono_ms();
        int wait = d->nmsgs == 0 ? 100 : now < deadline ? (int)(deadline - now) : 0;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(d->consumer, wait);
        if (m == NULL) {
            if (d->nmsgs == 0 || wait == 0)
                return; /* idle (the loop tidies the outbox), or nothing more queued */
            continue;
        }
        if (d->nmsgs == 0)
            deadline = mono_ms() + d->cfg->batch_max_wait_ms;
        take_message(d, m);
    }
}

/* Refreshes the lag of every assigned partition from the consumer's position. */
static void refresh_lag(daemon_t *d)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    if (rd_kafka_assignment(d->consumer, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    if (rd_kafka_position(d->consumer, parts) == RD_KAFKA_RESP_ERR_NO_ERROR)
        record_lag(d, parts);
    rd_kafka_topic_partition_list_destroy(parts);
}

/* While idle, delivered outbox entries are deleted and the lag refreshed every 200 ms. */
static md_err_t tidy_when_idle(daemon_t *d, md_error_t *err)
{
    if (d->nmsgs || mono_ms() - d->last_write_ms < 200)
        return MD_OK;
    d->last_write_ms = mono_ms();
    refresh_lag(d);
    return process_batch(d, err);
}

/* timers.tick_ms: idle that long, a Tick goes to the commands topic, so that
 * deadlines fire without traffic (it comes back as a command like any other). */
static md_err_t tick_when_idle(daemon_t *d, md_error_t *err)
{
    long now = mono_ms();
    if (d->cfg->timers_tick_ms <= 0 || d->nmsgs || now - d->last_command_ms < d->cfg->timers_tick_ms)
        return MD_OK;
    d->last_command_ms = now;
    md_err_t rc = md_engine_tick(d->engine, wall_ms(), err);
    if (rc == MD_OK)
        md_publisher_wake(d->pub);
    return rc;
}

static md_err_t consume_loop(daemon_t *d, md_error_t *err)
{
    md_err_t rc = MD_OK;
    while (!*d->stop && rc == MD_OK) {
        collect_batch(d);
        rc = d->nmsgs ? process_batch(d, err) : tidy_when_idle(d, err);
        if (rc == MD_OK && d->nmsgs == 0)
            rc = tick_when_idle(d, err);
    }
    if (rc == MD_OK)
        rc = process_batch(d, err); /* what was collected before the stop */
    return rc;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

/* The read API, when http.listen is set; it reads the store and the projections. */
static md_err_t start_http(daemon_t *d, md_error_t *err)
{
    if (d->cfg->http_listen[0] == '\0')
        return MD_OK;
    md_http_opts_t o = {.listen = d->cfg->http_listen, .tokens_file = d->cfg->http_tokens,
                        .threads = (unsigned)d->cfg->http_threads};
    return md_http_start(&o, d->store, d->proj, &d->http, err);
}

static md_err_t open_all(daemon_t *d, md_error_t *err)
{
    md_store_opts_t so = {.nosync = d->cfg->store_nosync};
    md_engine_opts_t eo = {.operator_id = d->cfg->operator_id, .clock = d->cfg->clock,
                           .max_message_bytes = (size_t)d->cfg->message_max_bytes,
                           .results_topic = d->cfg->topic_results,
                           .events_topic = d->cfg->topic_events,
                           .commands_topic = d->cfg->topic_commands,
                           .deadletter_topic = d->cfg->topic_deadletter};
    md_err_t rc = md_store_open(d->cfg->data_dir, &so, &d->store, err);
    if (rc == MD_OK)
        rc = md_engine_new(d->store, &eo, &d->engine, err);
    if (rc != MD_OK)
        return rc;
    md_engine_set_batch_hook(d->engine, delete_delivered, d);
    if ((rc = md_proj_open(d->store, &d->proj, err)) != MD_OK ||
        (rc = md_proj_attach(d->proj, d->engine, err)) != MD_OK || (rc = start_http(d, err)) != MD_OK)
        return rc;
    d->msgs = md_malloc((size_t)d->cfg->batch_max_commands * sizeof *d->msgs);
    d->in = md_malloc((size_t)d->cfg->batch_max_commands * sizeof *d->in);
    md_buf_init(&d->results);
    md_log_info("store opened", "data_dir=%s", d->cfg->data_dir);
    return MD_OK;
}

/* Finishes the outbox and deletes what was delivered. */
static void close_outbox(daemon_t *d)
{
    md_error_t err = {0};
    uint64_t left = md_publisher_stop(d->pub, d->cfg->outbox_flush_timeout_ms);
    md_publisher_take_delivered(d->pub, &d->del, &d->ndel, &d->capdel);
    if (d->ndel && md_store_write(d->store, delete_delivered, d, &err) != MD_OK)
        md_log_warn("delivered outbox entries not deleted; they will be sent again",
                    "count=%zu error=\"%s\"", d->ndel, err.msg);
    if (left)
        md_log_warn("outbox not empty at stop; sent at next start", "undelivered=%llu",
                    (unsigned long long)left);
}

static void close_all(daemon_t *d)
{
    if (d->consumer) {
        rd_kafka_consumer_close(d->consumer); /* leaves the group; revoke runs */
        rd_kafka_destroy(d->consumer);
    }
    if (d->pub) {
        close_outbox(d);
        md_publisher_free(d->pub);
    }
    md_http_stop(d->http);
    drop_batch(d);
    md_engine_destroy(d->engine);
    md_proj_free(d->proj);
    md_store_close(d->store);
    free(d->msgs);
    free(d->in);
    free(d->del);
    md_buf_release(&d->results);
}

md_err_t md_daemon_run(const md_config_t *cfg, volatile sig_atomic_t *stop, md_error_t *err)
{
    daemon_t d = {.cfg = cfg, .stop = stop, .last_command_ms = mono_ms()};
    md_err_t rc = open_all(&d, err);
    if (rc == MD_OK && !cfg->topics_exist)
        rc = create_topics(&d, err);
    if (rc == MD_OK)
        rc = md_publisher_start(cfg, d.store, &d.pub, err);
    if (rc == MD_OK)
        rc = start_consumer(&d, err);
    if (rc == MD_OK) {
        md_log_info("marketd running", "topic=%s group=%s", cfg->topic_commands, cfg->group_id);
        rc = consume_loop(&d, err);
    }
    close_all(&d);
    if (rc == MD_OK)
        md_log_info("marketd stopped cleanly", "%s", "");
    return rc;
}

/* ---- embedded broker ------------------------------------------------------------------------ */

struct md_embedded {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

md_err_t md_embedded_start(const md_config_t *cfg, md_embedded_t **out, char *bootstrap,
                           size_t cap, md_error_t *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* This handle only hosts the mock cluster and never connects anywhere. */
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    md_embedded_t *e = md_calloc(1, sizeof *e);
    e->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (e->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        free(e);
        return md_error_set(err, MD_EKAFKA, "embedded kafka: %s", errstr);
    }
    e->mc = rd_kafka_mock_cluster_new(e->rk, 1);
    if (e->mc == NULL) {
        md_embedded_stop(e);
        return md_error_set(err, MD_EKAFKA, "embedded kafka: mock cluster failed");
    }
    const char *names[] = {cfg->topic_commands, cfg->topic_results, cfg->topic_events,
                           cfg->topic_deadletter};
    for (int i = 0; i < 4; i++)
        rd_kafka_mock_topic_create(e->mc, names[i], (int)cfg->topic_partitions, 1);
    snprintf(bootstrap, cap, "%s", rd_kafka_mock_cluster_bootstraps(e->mc));
    *out = e;
    return MD_OK;
}

void md_embedded_stop(md_embedded_t *e)
{
    if (e == NULL)
        return;
    if (e->mc)
        rd_kafka_mock_cluster_destroy(e->mc);
    rd_kafka_destroy(e->rk);
    free(e);
}
