/*
 * leader.c - leadership from a Kafka consumer group (md_leader.h): the member
 * holding partition 0 of the leader topic leads.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "md_base.h"
#include "md_kafka.h"
#include "md_leader.h"
#include "md_log.h"
#include "md_metrics.h"

struct md_leader {
    rd_kafka_t *rk;
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool leads;
    md_leader_fn on_change;
    void *ctx;
};

static void set_leads(md_leader_t *l, bool leads)
{
    if (atomic_exchange(&l->leads, leads) == leads)
        return;
    atomic_store(&md_metrics.replica.leader, leads);
    atomic_fetch_add(&md_metrics.replica.leader_changes, 1);
    md_log_info(leads ? "leadership gained: this replica publishes"
                      : "leadership lost: this replica stops publishing",
                "%s", "");
    if (l->on_change)
        l->on_change(leads, l->ctx);
}

static bool holds_partition_0(const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; parts != NULL && i < parts->cnt; i++)
        if (parts->elems[i].partition == 0)
            return true;
    return false;
}

/* Runs on the leader thread, inside rd_kafka_consumer_poll. The group uses the
 * cooperative-sticky assignor: a member joining or leaving does not take the
 * partition from its holder, so leadership moves only when the leader goes. */
static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    md_leader_t *l = opaque;
    bool assign = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    /* revoked, or lost (no heartbeat for a session timeout): stop leading first */
    if (!assign && holds_partition_0(parts))
        set_leads(l, false);
    rd_kafka_error_t *ie =
        assign ? rd_kafka_incremental_assign(rk, parts) : rd_kafka_incremental_unassign(rk, parts);
    if (ie) {
        md_log_error("leader partition (un)assignment failed", "error=\"%s\"",
                     rd_kafka_error_string(ie));
        rd_kafka_error_destroy(ie);
        return;
    }
    if (assign && holds_partition_0(parts))
        set_leads(l, true);
}

static void *leader_main(void *arg)
{
    md_leader_t *l = arg;
    while (!atomic_load(&l->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(l->rk, 100);
        if (m != NULL) /* nobody writes the topic; errors are logged by librdkafka */
            rd_kafka_message_destroy(m);
    }
    return NULL;
}

static md_err_t subscribe(md_leader_t *l, const md_config_t *cfg, md_error_t *err)
{
    char session[32], heartbeat[32];
    snprintf(session, sizeof session, "%ld", cfg->replica_session_timeout_ms);
    snprintf(heartbeat, sizeof heartbeat, "%ld", cfg->replica_session_timeout_ms / 6);
    const char *extra[] = {"group.id",
                           cfg->replica_leader_group,
                           "session.timeout.ms",
                           session,
                           "heartbeat.interval.ms",
                           heartbeat,
                           "enable.auto.commit",
                           "false",
                           "enable.partition.eof",
                           "false",
                           "partition.assignment.strategy",
                           "cooperative-sticky"};
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(cfg, extra, 6, err);
    if (conf == NULL)
        return MD_ECONFIG;
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_opaque(conf, l);
    l->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (l->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return md_error_set(err, MD_EKAFKA, "create the leader consumer: %s", errstr);
    }
    rd_kafka_poll_set_consumer(l->rk);
    rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(t, cfg->replica_leader_topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(l->rk, t);
    rd_kafka_topic_partition_list_destroy(t);
    if (e)
        return md_error_set(err, MD_EKAFKA, "subscribe to '%s': %s", cfg->replica_leader_topic,
                            rd_kafka_err2str(e));
    return MD_OK;
}

md_err_t md_leader_start(const md_config_t *cfg, md_leader_fn on_change, void *ctx,
                         md_leader_t **out, md_error_t *err)
{
    md_leader_t *l = md_calloc(1, sizeof *l);
    l->on_change = on_change;
    l->ctx = ctx;
    md_err_t rc = subscribe(l, cfg, err);
    if (rc == MD_OK && pthread_create(&l->thread, NULL, leader_main, l) != 0)
        rc = md_error_set(err, MD_EKAFKA, "cannot start the leader thread");
    l->started = rc == MD_OK;
    if (rc != MD_OK) {
        md_leader_free(l);
        return rc;
    }
    md_log_info("leader group joined", "group=%s topic=%s session_timeout_ms=%ld",
                cfg->replica_leader_group, cfg->replica_leader_topic,
                cfg->replica_session_timeout_ms);
    *out = l;
    return MD_OK;
}

bool md_leader_is(const md_leader_t *l)
{
    return l != NULL && atomic_load(&((md_leader_t *)l)->leads);
}

void md_leader_free(md_leader_t *l)
{
    if (l == NULL)
        return;
    if (l->started) {
        atomic_store(&l->stop, true);
        pthread_join(l->thread, NULL);
    }
    if (l->rk) {
        /* leaves the group: the revoke runs here (on_change(false)), another takes over */
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(l->rk);
        if (e)
            md_log_warn("leader group not left cleanly", "error=\"%s\"", rd_kafka_err2str(e));
        rd_kafka_destroy(l->rk);
    }
    free(l);
}
