/*
 * load_kafka.c - market-load's librdkafka side: the configuration of its two
 * clients (defaults, then the -X properties, which override them), the error
 * and delivery callbacks, and placing the results consumer at the end of the
 * results topic before anything is produced.
 *
 * Invariants: the callbacks run on the main thread (served by rd_kafka_poll
 * in load_service); the consumer never joins a group nor commits; a result of
 * an earlier run is never read, and none of this run is missed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "load.h"

/* ---- librdkafka configuration --------------------------------------------- */

static md_err_t load_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                              md_error_t *err)
{
    char msg[512];
    if (rd_kafka_conf_set(conf, name, value, msg, sizeof msg) != RD_KAFKA_CONF_OK)
        return md_error_set(err, MD_ECONFIG, "property '%s': %s", name, msg);
    return MD_OK;
}

/* Applies the -X properties, "NAME=VALUE" each, after the defaults, so that
 * they override them. */
static md_err_t load_conf_user(rd_kafka_conf_t *conf, const load_opts_t *o, md_error_t *err)
{
    for (size_t i = 0; i < o->nprops; i++) {
        const char *eq = strchr(o->props[i], '=');
        char name[256];
        size_t n = (size_t)(eq - o->props[i]);
        if (n >= sizeof name)
            return md_error_set(err, MD_ECONFIG, "property name '%.40s...' too long", o->props[i]);
        memcpy(name, o->props[i], n);
        name[n] = '\0';
        md_err_t rc = load_conf_set(conf, name, eq + 1, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* Counts a failed message; the first reason recorded is the one reported. */
void load_fail(load_t *l, const char *what, const char *why)
{
    l->failed++;
    if (l->first_failure[0] == '\0')
        snprintf(l->first_failure, sizeof l->first_failure, "%s: %s", what, why);
}

/* Transient errors (broker down, connection refused) repeat for as long as
 * the broker is away; one line per error code every 5 s is enough. */
static void load_on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    load_t *l = opaque;
    char fatal_msg[512];
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal_msg, sizeof fatal_msg);
        fprintf(stderr, "market-load: kafka fatal error: %s\n", fatal_msg);
        l->fatal = l->halt = true;
        return;
    }
    int64_t now = md_mono_ns();
    /* librdkafka logs transport failures itself (FAIL lines); do not repeat. */
    if (l->o.quiet || code == RD_KAFKA_RESP_ERR__TRANSPORT ||
        (code == (int)l->last_err && now - l->last_err_ns < 5 * LOAD_NS))
        return;
    l->last_err = (rd_kafka_resp_err_t)code;
    l->last_err_ns = now;
    fprintf(stderr, "market-load: kafka: %s\n", reason);
}

/* Delivery report, served by rd_kafka_poll() on the main thread. A failed
 * delivery stops production: the run has failed already, and with the
 * broker gone every further line would only wait out message.timeout.ms. */
/* --latency-out: when the delivery report was seen. (librdkafka 2.0's
 * reports carry the producer's CreateTime even on a LogAppendTime topic: the
 * broker's append time comes back in marketd's header instead.) */
static void load_stage_ack(load_t *l, const rd_kafka_message_t *m)
{
    uintptr_t seq = (uintptr_t)m->_private; /* line number + 1 (load_produce) */
    if (l->stg != NULL && seq > 0 && seq <= l->produced)
        l->stg[seq - 1].ack = md_wall_us();
}

static void load_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    load_t *l = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        l->delivered++;
        load_stage_ack(l, m);
        if (!l->o.wait)
            l->t_last = md_mono_ns();
        return;
    }
    if (m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT) {
        /* message.timeout.ms is the --timeout: say so, as load_purge does
         * when the timeout ends first (which of the two comes first is a race). */
        l->failed++;
        if (l->first_failure[0] == '\0')
            snprintf(l->first_failure, sizeof l->first_failure,
                     "not delivered within the %g s timeout", l->o.timeout_s);
    } else {
        load_fail(l, "delivery failed", rd_kafka_err2str(m->err));
    }
    l->halt = true;
}

/* Settings both clients share: servers, quietness, callbacks. (The -X
 * properties come last, in load_new_client, so that they override.) */
static md_err_t load_conf_common(load_t *l, rd_kafka_conf_t *conf)
{
    md_err_t rc = load_conf_set(conf, "bootstrap.servers", l->o.bootstrap, &l->err);
    if (rc == MD_OK && l->o.quiet)
        rc = load_conf_set(conf, "log_level", "0", &l->err);
    if (rc != MD_OK)
        return rc;
    rd_kafka_conf_set_opaque(conf, l);
    rd_kafka_conf_set_error_cb(conf, load_on_error);
    return MD_OK;
}

static md_err_t load_new_client(load_t *l, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                rd_kafka_t **out)
{
    char msg[512];
    md_err_t rc = load_conf_user(conf, &l->o, &l->err);
    if (rc == MD_OK) {
        *out = rd_kafka_new(type, conf, msg, sizeof msg);
        if (*out != NULL)
            return MD_OK; /* conf is owned by the handle now */
        rc = md_error_set(&l->err, MD_EKAFKA, "rd_kafka_new: %s", msg);
    }
    rd_kafka_conf_destroy(conf); /* rd_kafka_new frees conf only on success */
    return rc;
}

md_err_t load_producer_new(load_t *l)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char tmo[32];
    /* Undeliverable messages fail after the timeout instead of librdkafka's
     * 300 s, so that an absent broker is reported within --timeout. */
    snprintf(tmo, sizeof tmo, "%.0f", l->o.timeout_s * 1000 < 1 ? 1 : l->o.timeout_s * 1000);
    md_err_t rc = load_conf_common(l, conf);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.idempotence", "true", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "linger.ms", "5", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "message.timeout.ms", tmo, &l->err);
    if (rc != MD_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, load_on_delivery);
    rc = load_new_client(l, RD_KAFKA_PRODUCER, conf, &l->prod);
    /* Before the topic handle: its metadata request would have the broker
     * auto-create the commands topic with the default (CreateTime). */
    if (rc == MD_OK && l->o.create_topics > 0)
        rc = load_create_topics(l);
    if (rc != MD_OK)
        return rc;
    l->rkt = rd_kafka_topic_new(l->prod, l->o.topic, NULL);
    if (l->rkt == NULL)
        return md_error_set(&l->err, MD_EKAFKA, "topic '%s': %s", l->o.topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
    return MD_OK;
}

/* The consumer never joins a group and never commits: librdkafka 2.0 needs a
 * group.id for rd_kafka_assign() and rd_kafka_consumer_poll() all the same, so
 * it gets a unique throwaway one with auto-commit off. */
md_err_t load_consumer_new(load_t *l)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[96];
    snprintf(group, sizeof group, "market-load-%ld-%" PRId64, (long)getpid(), md_mono_ns());
    md_err_t rc = load_conf_common(l, conf);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "group.id", group, &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.auto.commit", "false", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.auto.offset.store", "false", &l->err);
    /* Should an assigned offset vanish, reading old results (counted as
     * "other") is better than skipping new ones. */
    if (rc == MD_OK)
        rc = load_conf_set(conf, "auto.offset.reset", "earliest", &l->err);
    if (rc != MD_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rc = load_new_client(l, RD_KAFKA_CONSUMER, conf, &l->cons);
    if (rc != MD_OK)
        return rc;
    /* Errors and logs then come out of rd_kafka_consumer_poll() too, instead
     * of piling up in a main queue nobody polls. */
    rd_kafka_resp_err_t e = rd_kafka_poll_set_consumer(l->cons);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return md_error_set(&l->err, MD_EKAFKA, "rd_kafka_poll_set_consumer: %s",
                            rd_kafka_err2str(e));
    l->res_rkt = rd_kafka_topic_new(l->cons, l->o.results_topic, NULL);
    if (l->res_rkt == NULL)
        return md_error_set(&l->err, MD_EKAFKA, "topic '%s': %s", l->o.results_topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
    return MD_OK;
}

/* ---- topics ----------------------------------------------------------------- */

/* The answer to a CreateTopics request: false (with l->err) on an error
 * other than "already exists". */
static bool load_topics_created(load_t *l, rd_kafka_event_t *ev)
{
    if (ev == NULL) {
        md_error_set(&l->err, MD_EKAFKA, "create topics: no answer within %g s", l->o.timeout_s);
        return false;
    }
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        md_error_set(&l->err, MD_EKAFKA, "create topics: %s", rd_kafka_event_error_string(ev));
        return false;
    }
    size_t n;
    const rd_kafka_topic_result_t **r =
        rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t e = rd_kafka_topic_result_error(r[i]);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            md_error_set(&l->err, MD_EKAFKA, "create topic '%s': %s",
                         rd_kafka_topic_result_name(r[i]), rd_kafka_err2str(e));
            return false;
        }
    }
    return true;
}

/* Both topics stamped by the broker (LogAppendTime), so that the delivery
 * reports and the results carry the broker's append times (--latency-out);
 * replication factor 1: this is for bench and test brokers. */
md_err_t load_create_topics(load_t *l)
{
    char errstr[256];
    const char *names[2] = {l->o.topic, l->o.results_topic};
    rd_kafka_NewTopic_t *nt[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], l->o.create_topics, 1, errstr, sizeof errstr);
        if (nt[i] == NULL ||
            rd_kafka_NewTopic_set_config(nt[i], "message.timestamp.type", "LogAppendTime")) {
            rd_kafka_NewTopic_destroy_array(nt, 2);
            return md_error_set(&l->err, MD_EKAFKA, "topic '%s': %s", names[i], errstr);
        }
    }
    rd_kafka_queue_t *q = rd_kafka_queue_new(l->prod);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(l->prod, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    int ms = (int)(l->o.timeout_s * 1000);
    if (rd_kafka_AdminOptions_set_request_timeout(o, ms, errstr, sizeof errstr) !=
        RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "market-load: create topics: %s\n", errstr);
    rd_kafka_CreateTopics(l->prod, nt, 2, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, ms + 1000);
    bool ok = load_topics_created(l, ev);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_queue_destroy(q);
    rd_kafka_NewTopic_destroy_array(nt, 2);
    return ok ? MD_OK : l->err.code;
}

/* ---- results topic: start at the end ------------------------------------- */

/* Metadata of the results topic: *nparts = 0 when the topic does not exist
 * (yet). Returns a librdkafka error to retry on, or NO_ERROR. */
static rd_kafka_resp_err_t load_results_parts(load_t *l, int timeout_ms, int32_t *nparts)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(l->cons, 0, l->res_rkt, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return e;
    *nparts = 0;
    if (md->topic_cnt == 1) {
        const struct rd_kafka_metadata_topic *t = &md->topics[0];
        e = t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? RD_KAFKA_RESP_ERR_NO_ERROR : t->err;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && t->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *nparts = t->partition_cnt;
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < t->partition_cnt; i++)
            if (t->partitions[i].leader < 0) /* being created: ask again */
                e = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
    }
    rd_kafka_metadata_destroy(md);
    return e;
}

/* The high watermark of every partition, as assignment offsets. */
static rd_kafka_resp_err_t load_results_ends(load_t *l, int32_t nparts, int timeout_ms,
                                             rd_kafka_topic_partition_list_t *list)
{
    for (int32_t p = 0; p < nparts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e =
            rd_kafka_query_watermark_offsets(l->cons, l->o.results_topic, p, &lo, &hi, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            return e;
        rd_kafka_topic_partition_list_add(list, l->o.results_topic, p)->offset = hi;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

int load_ms_left(int64_t deadline)
{
    int64_t left = (deadline - md_mono_ns()) / 1000000;
    return left <= 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

/* One attempt: metadata, watermarks, assign. */
static rd_kafka_resp_err_t load_results_try(load_t *l, int64_t deadline)
{
    int32_t nparts = 0;
    rd_kafka_resp_err_t e = load_results_parts(l, load_ms_left(deadline), &nparts);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return e;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts + 1);
    e = load_results_ends(l, nparts, load_ms_left(deadline), list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_assign(l->cons, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        l->res_parts = nparts;
    return e;
}

/* Assigns every results partition at its current end, before anything is
 * produced, so that every result of this run is read and none of an earlier
 * one. A topic that does not exist yet is assigned when it appears (see
 * load_results_refresh). The broker may not be up yet: retry until the
 * timeout. */
md_err_t load_results_start(load_t *l)
{
    int64_t deadline = md_mono_ns() + (int64_t)(l->o.timeout_s * 1e9);
    rd_kafka_resp_err_t e;
    while ((e = load_results_try(l, deadline)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (load_interrupted)
            return md_error_set(&l->err, MD_ESTOP, "interrupted");
        if (md_mono_ns() >= deadline)
            return md_error_set(&l->err, MD_EKAFKA, "results topic '%s': no answer within %g s: %s",
                                l->o.results_topic, l->o.timeout_s, rd_kafka_err2str(e));
        load_consume(l, LOAD_RETRY_MS); /* serves error_cb while waiting */
    }
    l->next_refresh_ns = md_mono_ns() + LOAD_REFRESH_NS;
    return MD_OK;
}

/* While the results topic had no partitions, looks again every 0.5 s; a topic
 * created after start-up holds only results of this run, so it is read from
 * its beginning. (Partitions added to an existing topic during a run are not
 * picked up.) */
void load_results_refresh(load_t *l)
{
    int32_t nparts = 0;
    if (l->res_parts > 0 || md_mono_ns() < l->next_refresh_ns)
        return;
    l->next_refresh_ns = md_mono_ns() + LOAD_REFRESH_NS;
    if (load_results_parts(l, 500, &nparts) != RD_KAFKA_RESP_ERR_NO_ERROR || nparts == 0)
        return;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
    for (int32_t p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(list, l->o.results_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(l->cons, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        l->res_parts = nparts;
    else
        fprintf(stderr, "market-load: assign '%s': %s\n", l->o.results_topic, rd_kafka_err2str(e));
}
