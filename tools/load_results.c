/*
 * load_results.c - market-load's results side: each result read from the
 * results topic matched by command_id to the produced lines, the latency of
 * the first result of each command, and the summary and verdict at the end.
 *
 * Invariants: a result counts against an id at most as often as lines were
 * produced with it (more are duplicates); results without a valid command_id
 * are counted apart; latency is measured where the result is seen, on the
 * main thread.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* ---- results -------------------------------------------------------------- */

static void load_record_latency(load_t *l, int64_t ns)
{
    if (l->nlat == l->lat_cap) {
        l->lat_cap = l->lat_cap ? l->lat_cap * 2 : 4096;
        l->lat = md_realloc(l->lat, l->lat_cap * sizeof *l->lat);
    }
    l->lat[l->nlat++] = ns;
}

/* --latency-out: the result's side of the stages of line @p seq: marketd's
 * header (five numbers, MD_STAGE_HEADER), the broker's append time, now. */
static void load_stage_result(load_t *l, uint32_t seq, const rd_kafka_message_t *m, int64_t now,
                              int64_t lat)
{
    if (l->stg == NULL || seq >= l->produced)
        return;
    load_stage_t *st = &l->stg[seq];
    rd_kafka_headers_t *h = NULL;
    rd_kafka_timestamp_type_t type;
    const void *v;
    size_t len;
    char buf[128];
    st->consumed = md_wall_us() - (md_mono_ns() - now) / 1000; /* the instant of now */
    st->lat_us = lat / 1000;
    int64_t ts = rd_kafka_message_timestamp(m, &type);
    if (type == RD_KAFKA_TIMESTAMP_LOG_APPEND_TIME && ts > 0)
        st->res_append = ts * 1000;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, LOAD_STAGE_HEADER, &v, &len) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || len >= sizeof buf)
        return;
    memcpy(buf, v, len);
    buf[len] = '\0';
    long long t[5];
    if (sscanf(buf, "%lld %lld %lld %lld %lld", &t[0], &t[1], &t[2], &t[3], &t[4]) == 5)
        for (int i = 0; i < 5; i++)
            st->daemon[i] = t[i];
}

/* Counts one result for command_id id (NULL: a null command_id). */
static void load_match(load_t *l, const char *id, size_t n, const rd_kafka_message_t *m,
                       int64_t now)
{
    if (id == NULL) {
        /* MALFORMED lines have no id to tell them apart: only their number. */
        if (l->anon_seen == l->anon_expected) {
            l->duplicates++;
            return;
        }
        l->anon_seen++;
    } else {
        load_ent_t *e = load_set_find(&l->set, id, n);
        if (e == NULL) {
            l->other++; /* not ours: another producer's command */
            return;
        }
        /* More results than lines produced so far: at-least-once
         * publication. (A line repeating the id later expects one more.) */
        if (e->matched == e->expected) {
            l->duplicates++;
            return;
        }
        if (e->matched++ == 0) {
            load_record_latency(l, now - e->sent_ns);
            load_stage_result(l, e->seq, m, now, now - e->sent_ns);
        }
    }
    l->outstanding--;
    l->t_last = now;
}

/* The command_id of a result as marketd writes it, without parsing it: the
 * value begins {"command_id":"ID" with no escape in ID, and the message's
 * key is ID (marketd keys results by command_id). Anything else (NULL) is
 * parsed with jansson. Parsing every result cost the client more CPU than
 * anything else it does, on the two cores it shares with the daemon and the
 * broker in the end-to-end bench. */
static const char *load_fast_id(const rd_kafka_message_t *m, size_t *n)
{
    static const char head[] = "{\"command_id\":\"";
    size_t h = sizeof head - 1;
    const char *v = m->payload;
    if (v == NULL || m->key == NULL || m->len < h + m->key_len + 1 || memcmp(v, head, h) != 0)
        return NULL;
    const char *id = v + h;
    if (v[h + m->key_len] != '"' || memcmp(id, m->key, m->key_len) != 0 ||
        memchr(id, '\\', m->key_len) != NULL)
        return NULL;
    *n = m->key_len;
    return id;
}

static void load_on_result(load_t *l, const rd_kafka_message_t *m, int64_t now)
{
    json_error_t jerr;
    l->results++;
    /* Write errors are caught by ferror() when the file is closed. */
    if (l->results_out) {
        fwrite(m->payload, 1, m->len, l->results_out);
        fputc('\n', l->results_out);
    }
    size_t n;
    const char *fast = load_fast_id(m, &n);
    if (fast) {
        load_match(l, fast, n, m, now);
        return;
    }
    json_t *j = m->payload ? json_loadb(m->payload, m->len, 0, &jerr) : NULL;
    json_t *id = json_object_get(j, "command_id"); /* NULL-safe */
    if (json_is_string(id))
        load_match(l, json_string_value(id), json_string_length(id), m, now);
    else if (json_is_null(id))
        load_match(l, NULL, 0, m, now);
    else
        l->other++; /* not a result at all */
    json_decref(j);
}

static void load_on_consumer_msg(load_t *l, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        load_on_result(l, m, md_mono_ns());
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !l->o.quiet)
        fprintf(stderr, "market-load: consume '%s': %s\n", l->o.results_topic,
                rd_kafka_message_errstr(m));
}

/* Waits up to timeout_ms for results, then takes what is queued. */
void load_consume(load_t *l, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(l->cons, timeout_ms);
    for (int n = 0; m != NULL; n++) {
        load_on_consumer_msg(l, m);
        rd_kafka_message_destroy(m);
        m = n < LOAD_CONSUME_BATCH ? rd_kafka_consumer_poll(l->cons, 0) : NULL;
    }
}

/* Serves delivery reports and errors, and with --wait reads results; blocks
 * up to timeout_ms when there is nothing to do. */
void load_service(load_t *l, int timeout_ms)
{
    if (l->cons == NULL) {
        rd_kafka_poll(l->prod, timeout_ms);
        return;
    }
    rd_kafka_poll(l->prod, 0);
    load_results_refresh(l);
    load_consume(l, timeout_ms);
}

/* ---- summary --------------------------------------------------------------- */

static int load_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile; q in 1/10000 (p99.9 = 9990). */
static double load_pct_ms(const int64_t *v, size_t n, uint64_t q)
{
    size_t k = (size_t)(((uint64_t)n * q + 9999) / 10000);
    return (double)v[k ? k - 1 : 0] / 1e6;
}

static void load_print_latency(load_t *l)
{
    if (l->nlat == 0)
        return;
    qsort(l->lat, l->nlat, sizeof *l->lat, load_cmp_i64);
    fprintf(stderr, " latency_ms p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f",
            load_pct_ms(l->lat, l->nlat, 5000), load_pct_ms(l->lat, l->nlat, 9000),
            load_pct_ms(l->lat, l->nlat, 9900), load_pct_ms(l->lat, l->nlat, 9990),
            (double)l->lat[l->nlat - 1] / 1e6);
}

void load_summary(load_t *l)
{
    double secs = (double)(l->t_last - l->t_start) / 1e9;
    uint64_t done = l->cons ? l->produced - l->outstanding : l->delivered;
    fprintf(stderr, "market-load: produced=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64,
            l->produced, l->delivered, l->failed);
    if (l->cons)
        fprintf(stderr,
                " results=%" PRIu64 " duplicates=%" PRIu64 " other=%" PRIu64 " missing=%" PRIu64,
                l->results, l->duplicates, l->other, l->outstanding);
    fprintf(stderr, " seconds=%.3f commands_per_s=%.0f", secs,
            secs > 0 ? (double)done / secs : 0.0);
    load_print_latency(l);
    fputc('\n', stderr);
}

void load_write_latency(load_t *l)
{
    if (l->latency_out == NULL || l->stg == NULL)
        return;
    for (size_t i = 0; i < l->produced; i++) {
        const load_stage_t *s = &l->stg[i];
        if (s->consumed == 0)
            continue; /* no result (or a MALFORMED line's, which has no id) */
        fprintf(l->latency_out,
                "%" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64 " %" PRId64
                " %" PRId64 " %" PRId64 " %" PRId64 "\n",
                s->lat_us, s->produce, s->ack, s->daemon[0], s->daemon[1], s->daemon[2],
                s->daemon[3], s->daemon[4], s->res_append, s->consumed);
    }
}

/* The verdict: 0 when all went through, else 1 with the reasons on stderr. */
int load_verdict(load_t *l)
{
    uint64_t unreported = l->produced - l->delivered; /* failed or no report */
    if (load_interrupted)
        fprintf(stderr, "market-load: interrupted\n");
    if (l->failed > 0)
        fprintf(stderr, "market-load: %" PRIu64 " messages failed, first: %s\n", l->failed,
                l->first_failure);
    else if (unreported > 0)
        fprintf(stderr, "market-load: %" PRIu64 " messages without a delivery report\n",
                unreported);
    if (l->cons && l->outstanding > 0 && l->failed == 0 && !load_interrupted)
        fprintf(stderr,
                "market-load: %" PRIu64 " of %" PRIu64 " results missing after waiting %g s\n",
                l->outstanding, l->produced, l->o.timeout_s);
    bool ok = !load_interrupted && !l->fatal && l->failed == 0 && unreported == 0 &&
              (l->cons == NULL || l->outstanding == 0);
    return ok ? 0 : 1;
}
