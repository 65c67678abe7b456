/*
 * load_produce.c - market-load's producing side: each input line made a
 * message (keyed by its target stream, optionally re-encoded as msgpack),
 * produced at the --rate schedule, remembered for its result, and, after the
 * last line, the wait for deliveries and results.
 *
 * Invariants: a line is counted as produced once librdkafka accepted it and
 * expected in the id set before its result can be read (both on the main
 * thread); blank lines are skipped exactly as marketd skips them; the rate
 * schedule is absolute, so the average rate stays exact.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

/* ---- input lines ----------------------------------------------------------- */

/* Blank exactly as offline mode (daemon/offline.c) counts it. */
static bool load_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' &&
            s[i] != '\v')
            return false;
    return true;
}

/* Re-encodes line as msgpack into l->mp (md_json_to_msgpack); false when the
 * line is not JSON (decoded as strictly as marketd does), which is then sent
 * as it is. */
static bool load_to_msgpack(load_t *l, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        return false;
    md_buf_reset(&l->mp);
    md_json_to_msgpack(j, &l->mp);
    json_decref(j);
    return true;
}

/* Works out the key and whether the result will carry the command_id, with
 * marketd's own decoder. */
static void load_classify(load_t *l, const char *line, size_t len, load_msg_t *m)
{
    md_command_t *c = &l->cmd;
    md_command_decode_json(line, len, NULL, c);
    /* Only a MALFORMED command is answered with a null command_id. */
    m->has_id = c->status != MD_DECODE_MALFORMED;
    m->keylen = 0;
    m->id[0] = '\0';
    if (!m->has_id)
        return;
    snprintf(m->id, sizeof m->id, "%s", c->command_id);
    if (c->spec != NULL && md_cmd_target_stream(c, m->key, sizeof m->key))
        m->keylen = strlen(m->key);
    else
        m->keylen = (size_t)snprintf(m->key, sizeof m->key, "%s", m->id);
}

static void load_prepare(load_t *l, const char *line, size_t len, load_msg_t *m)
{
    load_classify(l, line, len, m);
    m->is_msgpack = l->o.msgpack && load_to_msgpack(l, line, len);
    m->val = m->is_msgpack ? (const void *)l->mp.p : (const void *)line;
    m->len = m->is_msgpack ? l->mp.len : len;
    if (m->len > LOAD_MAX_MESSAGE)
        m->has_id = false;
}

/* ---- producing ------------------------------------------------------------- */

static size_t load_build_vu(load_t *l, const load_msg_t *m, rd_kafka_vu_t *vu)
{
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = l->rkt;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = (void *)(uintptr_t)m->val; /* copied: RD_KAFKA_MSG_F_COPY */
    vu[n++].u.mem.size = m->len;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    if (m->keylen > 0) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)(uintptr_t)m->key;
        vu[n++].u.mem.size = m->keylen;
    }
    if (l->latency_out) { /* the delivery report finds the line's stages */
        vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
        vu[n++].u.ptr = (void *)(uintptr_t)(l->produced + 1);
    }
    if (m->is_msgpack) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = "content-type";
        vu[n].u.header.val = "application/msgpack";
        vu[n++].u.header.size = -1;
    }
    return n;
}

/* Produces one message, waiting while the local queue is full. Returns
 * MD_OK with *sent_ns = the time of the successful call, MD_ESTOP when told
 * to stop while waiting, MD_EKAFKA (counted as a failure) otherwise. */
static md_err_t load_produce(load_t *l, const load_msg_t *m, int64_t *sent_ns)
{
    rd_kafka_vu_t vu[6];
    size_t n = load_build_vu(l, m, vu);
    for (;;) {
        *sent_ns = md_mono_ns();
        rd_kafka_error_t *e = rd_kafka_produceva(l->prod, vu, n);
        if (e == NULL)
            return MD_OK;
        bool full = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL;
        if (!full)
            load_fail(l, "produce", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (!full)
            return MD_EKAFKA;
        if (l->halt || load_interrupted)
            return MD_ESTOP;
        load_service(l, 10); /* delivery reports make room in the queue */
    }
}

/* --latency-out: the stages of line l->produced, its produce call at @p wall_us. */
static void load_stage_begin(load_t *l, int64_t wall_us)
{
    if (l->latency_out == NULL)
        return;
    if (l->produced == l->stg_cap) {
        l->stg_cap = l->stg_cap ? 2 * l->stg_cap : 4096;
        l->stg = md_realloc(l->stg, l->stg_cap * sizeof *l->stg);
    }
    l->stg[l->produced] = (load_stage_t){.produce = wall_us};
}

/* Remembers what a produced line will be answered with. */
static void load_expect(load_t *l, const load_msg_t *m, int64_t sent_ns)
{
    l->outstanding++;
    if (!m->has_id) {
        l->anon_expected++;
        return;
    }
    load_ent_t *e = load_set_add(&l->set, m->id, strlen(m->id));
    if (e->expected++ == 0) {
        e->sent_ns = sent_ns;
        e->seq = (uint32_t)l->produced;
    }
}

/* Waits until line number l->produced is due under --rate. The schedule is
 * absolute (start + i/rate), so short sleeps that overrun are caught up by
 * the next burst and the average rate stays exact; waits are at least 1 ms,
 * so fast rates go out in small bursts instead of spinning a core. */
static void load_pace(load_t *l)
{
    if (l->o.rate == 0) {
        if (l->produced % LOAD_SERVICE_EVERY == 0)
            load_service(l, 0);
        return;
    }
    int64_t due = l->t_start + (int64_t)((double)l->produced * 1e9 / (double)l->o.rate);
    for (int64_t now = md_mono_ns(); now < due && !l->halt && !load_interrupted; now = md_mono_ns())
        load_service(l, (int)((due - now + 999999) / 1000000));
}

static void load_send_line(load_t *l, const char *line, size_t len)
{
    load_msg_t m;
    int64_t sent_ns;
    load_prepare(l, line, len, &m);
    load_pace(l);
    if (l->halt || load_interrupted)
        return;
    if (load_produce(l, &m, &sent_ns) != MD_OK)
        return;
    /* The wall-clock time of the same instant as sent_ns (the call's start). */
    load_stage_begin(l, md_wall_us() - (md_mono_ns() - sent_ns) / 1000);
    if (l->cons)
        load_expect(l, &m, sent_ns);
    l->produced++;
}

md_err_t load_produce_all(load_t *l)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    l->t_start = l->t_last = md_mono_ns();
    while (!l->halt && !load_interrupted && (n = getline(&line, &cap, l->in)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (!load_is_blank(line, len))
            load_send_line(l, line, len);
    }
    /* A signal interrupts a blocking read of stdin (EINTR): not an error. */
    bool bad = ferror(l->in) != 0 && !load_interrupted;
    free(line);
    if (bad)
        return md_error_set(&l->err, MD_EIO, "read '%s': %s", l->o.input, strerror(errno));
    return MD_OK;
}

/* ---- after the last line --------------------------------------------------- */

/* Deliveries are always waited for (within the timeout); results not after
 * an interruption, nor after a failed delivery, whose result cannot come. */
static bool load_finished(load_t *l)
{
    if (l->fatal)
        return true;
    if (rd_kafka_outq_len(l->prod) > 0)
        return false;
    return load_interrupted || l->cons == NULL || l->outstanding == 0 || l->failed > 0;
}

/* Undelivered messages are purged after the timeout, so that their delivery
 * reports (as failures) are counted before the summary. */
static void load_purge(load_t *l)
{
    if (rd_kafka_outq_len(l->prod) == 0)
        return;
    /* Say why, rather than librdkafka's "Purged in queue". */
    if (l->first_failure[0] == '\0' && (load_interrupted || l->fatal))
        snprintf(l->first_failure, sizeof l->first_failure, "not delivered: %s",
                 l->fatal ? "fatal error" : "interrupted");
    else if (l->first_failure[0] == '\0')
        snprintf(l->first_failure, sizeof l->first_failure, "not delivered within the %g s timeout",
                 l->o.timeout_s);
    rd_kafka_resp_err_t e =
        rd_kafka_purge(l->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "market-load: purge: %s\n", rd_kafka_err2str(e));
    e = rd_kafka_flush(l->prod, 2000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "market-load: flush: %s\n", rd_kafka_err2str(e));
}

/* Waits for the outstanding deliveries and, with --wait, results. */
void load_drain(load_t *l)
{
    int64_t deadline = md_mono_ns() + (int64_t)(l->o.timeout_s * 1e9);
    while (!load_finished(l) && md_mono_ns() < deadline) {
        /* After ^C, deliveries get 5 s more at most, not a whole timeout. */
        if (load_interrupted && deadline - md_mono_ns() > 5 * LOAD_NS)
            deadline = md_mono_ns() + 5 * LOAD_NS;
        load_service(l, load_ms_left(deadline) < 50 ? load_ms_left(deadline) : 50);
    }
    load_purge(l);
}
