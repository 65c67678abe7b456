/*
 * daemon.c - the whole wiring of `marketd` on Kafka, in start order (redis's
 * order: config, store, Kafka handles, loop) and the reverse for the stop:
 *
 *   store ─▶ engine ─▶ projections (their own environment, <data_dir>/proj)
 *        ─▶ projector (md_projector.h: a thread, woken by the engine's
 *           commit hook) ─▶ HTTP read API
 *        ─▶ topics ─▶ outbox publisher (md_publisher.h)
 *        ─▶ checkpointer (md_checkpointer.h), when replica.key_file is set
 *        ─▶ replica (md_replica.h), when replica.mode = replicated: the
 *           publisher's gate, the leader group, the peers' checkpoints
 *        ─▶ consumer (md_consumer.h): batches decided by the engine
 *
 * The publisher is gated on the projector (md_projector_set_sink ->
 * md_publisher_hold): a result leaves once the projections show its events.
 *
 * Stop: the consumer finishes its batch and leaves the group, the publisher
 * flushes the outbox (bounded; the projector still runs, so the gate still
 * opens), the gate is detached, then everything is closed in reverse order.
 */
#include <stdlib.h>

#include "md_consumer.h"
#include "md_daemon.h"
#include "md_http.h"
#include "md_kafka.h"
#include "md_log.h"
#include "md_proj.h"
#include "md_projector.h"
#include "md_publisher.h"
#include "md_replica.h"

typedef struct daemon {
    const md_config_t *cfg;
    volatile sig_atomic_t *stop;
    md_store_t *store;
    md_engine_t *engine;
    md_proj_t *proj;
    md_projector_t *projector;
    md_http_t *http;
    md_publisher_t *pub;
    md_checkpointer_t *checkpointer;
    md_replica_t *replica; /* replicated mode only */
    md_consumer_t *consumer;
} daemon_t;

/* Signed checkpoints to the heads topic, when replica.key_file is set. */
static md_err_t start_checkpoints(daemon_t *d, md_error_t *err)
{
    const md_config_t *c = d->cfg;
    if (c->replica_key_file[0] == '\0') {
        md_log_info("no checkpoints: replica.key_file is not set", "%s", "");
        return MD_OK;
    }
    md_checkpointer_opts_t o = {.replica_id = c->replica_id,
                                .key_file = c->replica_key_file,
                                .topic = c->topic_heads,
                                .interval_events = c->checkpoint_interval_events,
                                .interval_ms = c->checkpoint_interval_ms,
                                .announce = md_config_replicated(c)};
    md_err_t rc = md_checkpointer_new(&o, &d->checkpointer, err);
    if (rc == MD_OK)
        md_log_info("checkpoints on", "replica=%s topic=%s", c->replica_id, c->topic_heads);
    return rc;
}

/* The read API, when http.listen is set; it reads the store and the projections. */
static md_err_t start_http(daemon_t *d, md_error_t *err)
{
    if (d->cfg->http_listen[0] == '\0')
        return MD_OK;
    md_http_opts_t o = {.listen = d->cfg->http_listen,
                        .tokens_file = d->cfg->http_tokens,
                        .threads = (unsigned)d->cfg->http_threads};
    return md_http_start(&o, d->store, d->proj, &d->http, err);
}

/* Logs what the projections' catch-up at open applied: the events committed
 * to the log before a stop or a crash that the projector had not applied
 * (tests/integration/test_crash_loop.sh counts these lines). */
static void note_catch_up(md_proj_t *p)
{
    uint64_t from = 0, to = md_proj_caught_up(p, &from);
    if (to > from)
        md_log_info("projections caught up at start", "from=%llu to=%llu events=%llu",
                    (unsigned long long)from, (unsigned long long)to,
                    (unsigned long long)(to - from));
}

/* The store, the engine, the projections in their own environment and the
 * projector, woken after each of the engine's commits. */
static md_err_t open_ledger(daemon_t *d, md_error_t *err)
{
    md_store_opts_t so = {.nosync = d->cfg->store_nosync,
                          .lock = true,
                          .map_size = (size_t)d->cfg->store_map_mib << 20};
    md_engine_opts_t eo = {.operator_id = d->cfg->operator_id,
                           .clock = d->cfg->clock,
                           .max_message_bytes = (size_t)d->cfg->message_max_bytes,
                           .results_topic = d->cfg->topic_results,
                           .events_topic = d->cfg->topic_events,
                           .commands_topic = d->cfg->topic_commands,
                           .deadletter_topic = d->cfg->topic_deadletter};
    md_err_t rc = md_store_open(d->cfg->data_dir, &so, &d->store, err);
    if (rc == MD_OK)
        md_log_store_converted(d->store);
    if (rc == MD_OK)
        rc = md_engine_new(d->store, &eo, &d->engine, err);
    if (rc == MD_OK)
        rc = md_proj_open_dir(d->store, d->cfg->data_dir, &so, &d->proj, err);
    if (rc == MD_OK)
        note_catch_up(d->proj);
    /* With the gate, every result waits for the projector: it keeps the
     * process's priority (at nice 19 there, commit -> publish p99 went 18 -> 62
     * ms at 5,000/s under make bench's load); projections.priority applies
     * without. */
    md_projector_opts_t po = {.max_events = (uint64_t)d->cfg->proj_max_events,
                              .sync_ms = d->cfg->proj_sync_ms,
                              .priority = d->cfg->proj_gate_results ? MD_PRIORITY_NORMAL
                                                                    : d->cfg->proj_priority};
    if (rc == MD_OK)
        rc = md_projector_start(d->proj, &po, &d->projector, err);
    /* With the gate, the projector gets each small batch before the log's commit
     * (md_projector.h, "The head start"): a result then waits for the
     * projections' commit, not their step. */
    if (rc == MD_OK && d->cfg->proj_gate_results) {
        rc = md_engine_add_batch_hooks(d->engine, md_projector_stage_begin, md_projector_stage_end,
                                       d->projector, err);
        if (rc == MD_OK)
            rc = md_engine_add_hook(d->engine, md_projector_stage_event, d->projector, err);
    }
    if (rc == MD_OK) {
        md_engine_set_commit_hook(d->engine, md_projector_kick, d->projector);
        md_log_info("store opened", "data_dir=%s", d->cfg->data_dir);
    }
    return rc;
}

/* Replicated mode: the replica (after the topics and the checkpointer), the
 * publisher behind its gate, then the leader group (which may open the gate). */
static md_err_t start_publisher(daemon_t *d, md_error_t *err)
{
    if (!md_config_replicated(d->cfg))
        return md_publisher_start(d->cfg, d->store, &d->pub, err);
    md_replica_opts_t ro = {
        .cfg = d->cfg, .store = d->store, .checkpointer = d->checkpointer, .stop = d->stop};
    md_err_t rc = md_replica_new(&ro, &d->replica, err);
    if (rc == MD_OK)
        rc = md_publisher_start_gated(d->cfg, d->store, md_replica_may_publish, d->replica, &d->pub,
                                      err);
    if (rc == MD_OK)
        rc = md_replica_lead(d->replica, d->pub, err);
    return rc;
}

/* The gate: outbox entries from @p below_id on wait for the projections. */
static void hold_results(uint64_t below_id, void *pub)
{
    md_publisher_hold(pub, below_id);
}

static md_err_t start_kafka(daemon_t *d, md_error_t *err)
{
    md_err_t rc = md_config_replicated(d->cfg) ? md_replica_check_config(d->cfg, err) : MD_OK;
    if (rc == MD_OK && !d->cfg->topics_exist)
        rc = md_kafka_create_topics(d->cfg, d->stop, err);
    if (rc == MD_OK)
        rc = start_checkpoints(d, err);
    if (rc == MD_OK)
        rc = start_publisher(d, err);
    if (rc == MD_OK && d->cfg->proj_gate_results) /* projections.gate_results */
        md_projector_set_sink(d->projector, hold_results, d->pub);
    if (rc == MD_OK) {
        md_consumer_opts_t co = {.cfg = d->cfg,
                                 .stop = d->stop,
                                 .store = d->store,
                                 .engine = d->engine,
                                 .pub = d->pub,
                                 .checkpointer = d->checkpointer,
                                 .replica_hook = d->replica ? md_replica_batch : NULL,
                                 .may_tick = d->replica ? md_replica_may_tick : NULL,
                                 .replica_ctx = d->replica};
        rc = md_consumer_new(&co, &d->consumer, err);
    }
    return rc;
}

static void close_all(daemon_t *d)
{
    md_consumer_close(d->consumer);
    if (d->pub && d->consumer)
        md_consumer_finish_outbox(d->consumer, d->cfg->outbox_flush_timeout_ms);
    else
        (void)md_publisher_stop(d->pub, d->cfg->outbox_flush_timeout_ms);
    if (d->projector)
        md_projector_set_sink(d->projector, NULL, NULL); /* the publisher goes below */
    md_replica_free(d->replica); /* leaves the leader group after the last publication */
    md_consumer_free(d->consumer);
    md_checkpointer_free(d->checkpointer);
    md_publisher_free(d->pub);
    md_http_free(d->http);
    md_engine_free(d->engine);
    md_projector_free(d->projector);
    md_proj_free(d->proj);
    md_store_free(d->store);
}

md_err_t md_daemon_run(const md_config_t *cfg, volatile sig_atomic_t *stop, md_error_t *err)
{
    daemon_t d = {.cfg = cfg, .stop = stop};
    md_err_t rc = open_ledger(&d, err);
    if (rc == MD_OK)
        rc = start_http(&d, err);
    if (rc == MD_OK)
        rc = start_kafka(&d, err);
    if (rc == MD_OK) {
        md_log_info("marketd running", "topic=%s group=%s", cfg->topic_commands, cfg->group_id);
        rc = md_consumer_run(d.consumer, err);
    }
    if (rc == MD_OK && md_replica_failed(d.replica))
        rc = md_error_set(err, MD_ECORRUPT,
                          "replica %s stopped deciding: its chain disagrees "
                          "with a majority of the replicas (fail-stop; see the divergence errors)",
                          cfg->replica_id);
    close_all(&d);
    if (rc == MD_OK)
        md_log_info("marketd stopped cleanly", "%s", "");
    return rc;
}
