/*
 * kafka.c - librdkafka as marketd configures it: client configuration from the
 * config file, topic creation, and the embedded mock broker for demos.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_kafka.h"
#include "md_log.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h, which md_kafka.h includes */

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
    md_log_level_t l = level <= 3   ? MD_LOG_ERROR
                       : level <= 4 ? MD_LOG_WARN
                       : level <= 6 ? MD_LOG_INFO
                                    : MD_LOG_DEBUG;
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

/* The topics marketd creates: the commands topic is stamped by the broker
 * (LogAppendTime, the time of clock = log); the heads topic (signed
 * checkpoints) has one partition and keeps everything forever. In replicated
 * mode the leader topic (one partition, never written: its consumer group
 * chooses the leader, docs/replication.md) is created too. */
#define NTOPICS 6
#define HEADS 4

/* The number of topics to create: the leader topic in replicated mode only. */
static int ntopics(const md_config_t *c)
{
    return md_config_replicated(c) ? NTOPICS : NTOPICS - 1;
}

static void new_topics(const md_config_t *c, rd_kafka_NewTopic_t *nt[NTOPICS])
{
    const char *names[NTOPICS] = {c->topic_commands,   c->topic_results, c->topic_events,
                                  c->topic_deadletter, c->topic_heads,   c->replica_leader_topic};
    char errstr[256];
    for (int i = 0; i < ntopics(c); i++)
        nt[i] = rd_kafka_NewTopic_new(names[i], i >= HEADS ? 1 : (int)c->topic_partitions,
                                      (int)c->topic_replication, errstr, sizeof errstr);
    rd_kafka_NewTopic_set_config(nt[0], "message.timestamp.type", "LogAppendTime");
    rd_kafka_NewTopic_set_config(nt[HEADS], "retention.ms", "-1");
    rd_kafka_NewTopic_set_config(nt[HEADS], "retention.bytes", "-1");
}

/* Sends one CreateTopics request; returns 1 done, 0 retry, -1 give up. */
static int create_topics_once(const md_config_t *c, rd_kafka_t *rk, volatile sig_atomic_t *stop)
{
    rd_kafka_NewTopic_t *nt[NTOPICS];
    char errstr[256];
    new_topics(c, nt);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_request_timeout(o, 5000, errstr, sizeof errstr);
    rd_kafka_CreateTopics(rk, nt, (size_t)ntopics(c), o, q);
    /* Waits up to 10 s for the answer, in slices, so that a stop is not held up. */
    rd_kafka_event_t *ev = NULL;
    for (int i = 0; i < 100 && ev == NULL && !*stop; i++)
        ev = rd_kafka_queue_poll(q, 100);
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
                    ev      ? rd_kafka_event_error_string(ev)
                    : *stop ? "stop requested"
                            : "timed out");
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, (size_t)ntopics(c));
    return done;
}

rd_kafka_t *md_kafka_admin_client(const md_config_t *cfg, const char *what, md_error_t *err)
{
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(cfg, NULL, 0, err);
    if (conf == NULL)
        return NULL;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        md_error_set(err, MD_EKAFKA, "create %s: %s", what, errstr);
    }
    return rk;
}

md_err_t md_kafka_create_topics(const md_config_t *cfg, volatile sig_atomic_t *stop,
                                md_error_t *err)
{
    rd_kafka_t *rk = md_kafka_admin_client(cfg, "admin client", err);
    if (rk == NULL)
        return err ? err->code : MD_EKAFKA;
    int done = 0;
    while (!*stop && done == 0)
        done = create_topics_once(cfg, rk, stop);
    rd_kafka_destroy(rk);
    return MD_OK; /* when creation is refused, the topics may exist: go on */
}

/* ---- embedded broker ------------------------------------------------------------------------ */

struct md_embedded {
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
};

md_err_t md_embedded_start(const md_config_t *cfg, md_embedded_t **out, char *bootstrap, size_t cap,
                           md_error_t *err)
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
        md_embedded_free(e);
        return md_error_set(err, MD_EKAFKA, "embedded kafka: mock cluster failed");
    }
    const char *names[] = {cfg->topic_commands, cfg->topic_results, cfg->topic_events,
                           cfg->topic_deadletter, cfg->topic_heads};
    for (int i = 0; i < NTOPICS - 1; i++) {
        rd_kafka_resp_err_t te = rd_kafka_mock_topic_create(
            e->mc, names[i], i >= HEADS ? 1 : (int)cfg->topic_partitions, 1);
        if (te != RD_KAFKA_RESP_ERR_NO_ERROR) {
            md_embedded_free(e);
            return md_error_set(err, MD_EKAFKA, "embedded kafka: topic %s: %s", names[i],
                                rd_kafka_err2str(te));
        }
    }
    snprintf(bootstrap, cap, "%s", rd_kafka_mock_cluster_bootstraps(e->mc));
    *out = e;
    return MD_OK;
}

void md_embedded_free(md_embedded_t *e)
{
    if (e == NULL)
        return;
    if (e->mc)
        rd_kafka_mock_cluster_destroy(e->mc);
    rd_kafka_destroy(e->rk);
    free(e);
}
