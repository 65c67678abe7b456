/*
 * publisher.c - the outbox publisher: one thread that reads committed outbox
 * entries in id order and sends them with an idempotent producer. Delivered
 * ids are handed to the writer (md_publisher_take_delivered), which deletes
 * them inside its next batch transaction, so publishing never costs a sync
 * of its own while commands flow.
 *
 * Waking: when idle the thread sleeps in poll(2) on two pipes: one the writer
 * writes to after each commit (md_publisher_wake), one librdkafka writes to
 * when its main queue (delivery reports, errors) becomes non-empty
 * (rd_kafka_queue_io_event_enable). A commit is published at once, not at the
 * end of a sleep.
 *
 * Stage times: the writer notes each committed batch's times
 * (md_publisher_note_batch: the outbox ids of its results, when each command
 * was taken from librdkafka, when the transaction began and when the commit
 * returned); a result of a noted batch is sent with them and the time it was
 * handed to the producer in the MD_STAGE_HEADER header, so that a client can
 * tell where its latency went. The k-th result entry of a batch's id range is
 * the k-th command's (one result per command, in order).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_base.h"
#include "md_kafka.h"
#include "md_log.h"
#include "md_metrics.h"
#include "md_publisher.h"

#define SCAN_LIMIT 1000

/* One noted batch (md_publisher_note_batch), in the ring of MD_STAGE_BATCHES. */
typedef struct stage_rec {
    uint64_t lo, hi; /* outbox ids of its entries */
    int64_t batch_us, commit_us;
    uint32_t *ago;    /* per command, 2 each: µs from its fetch, from its append
                       * by the broker (UINT32_MAX: unknown), to batch_us */
    size_t n, cap;    /* commands; ago's capacity */
    size_t seen;      /* results sent so far */
    uint64_t last_id; /* the last of them */
} stage_rec_t;

struct md_publisher {
    md_store_t *store;
    rd_kafka_t *rk;
    pthread_t thread;
    bool started;
    volatile int stop;      /* 1: drain then stop */
    long drain_deadline_ms; /* monotonic ms, when stopping */
    uint64_t next_id;       /* first id not yet handed to the producer */
    pthread_mutex_t lock;   /* guards the fields below */
    uint64_t *delivered;
    size_t ndelivered, capdelivered;
    uint64_t resend_from; /* 0, or the lowest id whose delivery failed */
    uint64_t inflight;    /* produced, not yet reported */
    uint64_t sent, failed, parked;
    md_outbox_park_t *park; /* refused for good: for the writer to move aside */
    size_t npark, cappark;
    uint64_t *skip; /* ids parked by this process: never produced again */
    size_t nskip, capskip;
    bool blocked;   /* the last scan stopped at an entry it could not produce */
    md_txn_t *scan; /* the read transaction of the scan in progress */
    md_buf_t json;  /* an event rendered for publication */
    int wake[2];    /* pipe: the writer's "committed" */
    int reports[2]; /* pipe: librdkafka's "main queue not empty" */
    rd_kafka_queue_t *mainq;
    md_publisher_gate_fn gate; /* NULL: every entry is sent (md_publisher_start_gated) */
    void *gate_ctx;
    atomic_bool rescan;        /* md_publisher_rescan: start again from the first entry */
    uint64_t rescan_below;     /* entries below this id sent after a rescan are counted */
    _Atomic uint64_t hold;     /* md_publisher_hold: entries from this id on wait */
    uint64_t scan_hold;        /* its value for the scan in progress */
    char *results_topic;       /* whose entries get the stage header */
    rd_kafka_topic_t *warm[2]; /* results and events: their metadata looked up at start */
    stage_rec_t stages[MD_STAGE_BATCHES]; /* lock held; oldest at stage_head */
    uint64_t expect_lo, expect_hi;        /* results of a batch committing, not yet noted */
    pthread_cond_t stage_cv;              /* signalled when a batch is noted */
    size_t stage_head, nstages;
    size_t stage_cmds; /* commands of the noted batches (at most MD_STAGE_COMMANDS) */
};

/* Errors that sending the same record again cannot cure: the entry is parked. */
static const rd_kafka_resp_err_t permanent_errors[] = {
    RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_MSG,
    RD_KAFKA_RESP_ERR_INVALID_RECORD,     RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE,
    RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE,   RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION,    RD_KAFKA_RESP_ERR__INVALID_ARG,
};

static bool is_permanent(rd_kafka_resp_err_t e)
{
    for (size_t i = 0; i < sizeof permanent_errors / sizeof permanent_errors[0]; i++)
        if (permanent_errors[i] == e)
            return true;
    return false;
}

static void note_progress(void)
{
    atomic_store_explicit(&md_metrics.outbox_progress_ms, md_mono_ms(), memory_order_relaxed);
}

static bool skipped(const md_publisher_t *p, uint64_t id)
{
    for (size_t i = 0; i < p->nskip; i++)
        if (p->skip[i] == id)
            return true;
    return false;
}

/* Records @p id as refused for good (lock held): the writer parks it, the
 * publisher skips it from now on, and the entries behind it flow on. */
static void park_locked(md_publisher_t *p, uint64_t id, const char *topic, const char *why)
{
    if (skipped(p, id))
        return;
    if (p->npark == p->cappark) {
        p->cappark = p->cappark ? 2 * p->cappark : 16;
        p->park = md_realloc(p->park, p->cappark * sizeof *p->park);
    }
    if (p->nskip == p->capskip) {
        p->capskip = p->capskip ? 2 * p->capskip : 16;
        p->skip = md_realloc(p->skip, p->capskip * sizeof *p->skip);
    }
    md_outbox_park_t *k = &p->park[p->npark++];
    k->id = id;
    snprintf(k->reason, sizeof k->reason, "%s: %s", topic, why);
    p->skip[p->nskip++] = id;
    p->parked++;
    atomic_fetch_add_explicit(&md_metrics.outbox_parked, 1, memory_order_relaxed);
    note_progress();
    md_log_error("outbox entry parked",
                 "id=%llu topic=%s error=\"%s\" retry=\"marketctl outbox retry\"",
                 (unsigned long long)id, topic, why);
}

/* Delivery reports run on the publisher thread, inside rd_kafka_poll. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    md_publisher_t *p = opaque;
    uint64_t id = (uint64_t)(uintptr_t)m->_private;
    pthread_mutex_lock(&p->lock);
    p->inflight--;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (p->ndelivered == p->capdelivered) {
            p->capdelivered = p->capdelivered ? 2 * p->capdelivered : 1024;
            p->delivered = md_realloc(p->delivered, p->capdelivered * sizeof *p->delivered);
        }
        p->delivered[p->ndelivered++] = id;
        p->sent++;
        atomic_fetch_add_explicit(&md_metrics.outbox_sent, 1, memory_order_relaxed);
        note_progress();
    } else if (is_permanent(m->err)) {
        p->failed++;
        atomic_fetch_add_explicit(&md_metrics.outbox_failed, 1, memory_order_relaxed);
        park_locked(p, id, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
    } else {
        p->failed++;
        atomic_fetch_add_explicit(&md_metrics.outbox_failed, 1, memory_order_relaxed);
        if (p->resend_from == 0 || id < p->resend_from)
            p->resend_from = id;
    }
    pthread_mutex_unlock(&p->lock);
    if (m->err)
        md_log_warn("outbox delivery failed", "id=%llu topic=%s error=\"%s\"",
                    (unsigned long long)id, rd_kafka_topic_name(m->rkt), rd_kafka_err2str(m->err));
}

/* ---- stage times -------------------------------------------------------------- */

/* µs from @p t to @p batch_us, clamped to 0 .. UINT32_MAX - 1 (UINT32_MAX: unknown). */
static uint32_t ago_us(int64_t batch_us, int64_t t)
{
    int64_t d = batch_us - t;
    return d < 0 ? 0 : d >= (int64_t)UINT32_MAX ? UINT32_MAX - 1 : (uint32_t)d;
}

/* Forgets the oldest noted batch and frees its times (lock held). */
static void drop_oldest_stage(md_publisher_t *p)
{
    stage_rec_t *r = &p->stages[p->stage_head];
    p->stage_cmds -= r->n;
    free(r->ago);
    r->ago = NULL;
    r->cap = r->n = 0;
    p->stage_head = (p->stage_head + 1) % MD_STAGE_BATCHES;
    p->nstages--;
}

void md_publisher_expect_batch(md_publisher_t *p, uint64_t lo, uint64_t hi)
{
    pthread_mutex_lock(&p->lock);
    p->expect_lo = lo;
    p->expect_hi = hi;
    if (hi <= lo)
        pthread_cond_broadcast(&p->stage_cv);
    pthread_mutex_unlock(&p->lock);
}

void md_publisher_note_batch(md_publisher_t *p, const md_stage_batch_t *b)
{
    if (b->n == 0 || b->hi <= b->lo) {
        md_publisher_expect_batch(p, 0, 0); /* nothing waits for it */
        return;
    }
    pthread_mutex_lock(&p->lock);
    /* the publisher is far behind: forget the oldest */
    while (p->nstages == MD_STAGE_BATCHES ||
           (p->nstages && p->stage_cmds + b->n > MD_STAGE_COMMANDS))
        drop_oldest_stage(p);
    stage_rec_t *r = &p->stages[(p->stage_head + p->nstages++) % MD_STAGE_BATCHES];
    r->ago = md_malloc(2 * b->n * sizeof *r->ago);
    r->cap = b->n;
    p->stage_cmds += b->n;
    for (size_t i = 0; i < b->n; i++) {
        r->ago[2 * i] = ago_us(b->batch_us, b->fetched_us[i]);
        r->ago[2 * i + 1] =
            b->appended_us[i] > 0 ? ago_us(b->batch_us, b->appended_us[i]) : UINT32_MAX;
    }
    r->lo = b->lo;
    r->hi = b->hi;
    r->n = b->n;
    r->batch_us = b->batch_us;
    r->commit_us = b->commit_us;
    r->seen = 0;
    r->last_id = 0;
    p->expect_lo = p->expect_hi = 0; /* noted in the same hold of the lock: a waiter finds it */
    pthread_cond_broadcast(&p->stage_cv);
    pthread_mutex_unlock(&p->lock);
}


/* The stage times (appended, fetched, batch, commit) of result entry @p id, lock held.
 * Entries come in id order, so batches that end before @p id are done with;
 * false when its batch is unknown or the entry is sent a second time. */
static bool stage_of(md_publisher_t *p, uint64_t id, int64_t t[4])
{
    while (p->nstages && p->stages[p->stage_head].hi <= id)
        drop_oldest_stage(p);
    stage_rec_t *r = &p->stages[p->stage_head];
    if (p->nstages == 0 || id < r->lo || (r->seen && id <= r->last_id) || r->seen >= r->n)
        return false;
    uint32_t fetched = r->ago[2 * r->seen], appended = r->ago[2 * r->seen + 1];
    r->seen++;
    t[0] = appended == UINT32_MAX ? 0 : r->batch_us - appended;
    t[1] = r->batch_us - fetched;
    t[2] = r->batch_us;
    t[3] = r->commit_us;
    r->last_id = id;
    return true;
}

/* A result of the batch being committed can be scanned before the writer notes
 * its stage times (right after the commit returns): wait for them, at most
 * STAGE_WAIT_MS (lock held). */
#define STAGE_WAIT_MS 50

static bool stage_of_waiting(md_publisher_t *p, uint64_t id, int64_t t[4])
{
    if (stage_of(p, id, t))
        return true;
    struct timespec ts;
    md_deadline_ms(&ts, STAGE_WAIT_MS);
    while (id >= p->expect_lo && id < p->expect_hi)
        if (pthread_cond_timedwait(&p->stage_cv, &p->lock, &ts) == ETIMEDOUT)
            return false;
    return stage_of(p, id, t);
}

/* Adds the MD_STAGE_HEADER header: @p t and now, the time it goes to the producer. */
static rd_kafka_headers_t *add_stage_header(rd_kafka_headers_t *h, const int64_t t[4])
{
    char v[112];
    int n = snprintf(v, sizeof v, "%lld %lld %lld %lld %lld", (long long)t[0], (long long)t[1],
                     (long long)t[2], (long long)t[3], (long long)md_wall_us());
    if (n <= 0 || (size_t)n >= sizeof v)
        return h;
    if (h == NULL)
        h = rd_kafka_headers_new(1);
    rd_kafka_header_add(h, MD_STAGE_HEADER, -1, v, n);
    return h;
}

/* Builds the Kafka headers from name '\0' value '\0' pairs. */
static rd_kafka_headers_t *make_headers(const md_outbox_msg_t *m)
{
    if (m->headers_len == 0)
        return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(4);
    const char *s = m->headers, *end = s + m->headers_len;
    while (s < end) {
        const char *v = memchr(s, 0, (size_t)(end - s));
        if (v == NULL || ++v >= end)
            break;
        const char *next = memchr(v, 0, (size_t)(end - v));
        size_t vl = next ? (size_t)(next - v) : (size_t)(end - v);
        rd_kafka_header_add(h, s, -1, v, (ssize_t)vl);
        s = v + vl + 1;
    }
    return h;
}

/* The value of an event reference: the event's JSON, rendered from the log. */
static md_err_t render_event(md_publisher_t *p, md_outbox_msg_t *m, md_error_t *err)
{
    md_event_t ev;
    md_err_t rc = md_txn_event(p->scan, m->event_seq, &ev, NULL, NULL, err);
    if (rc == MD_ENOTFOUND)
        return md_error_set(err, MD_ECORRUPT, "outbox entry %llu refers to missing event %llu",
                            (unsigned long long)m->id, (unsigned long long)m->event_seq);
    md_buf_reset(&p->json);
    if (rc == MD_OK && md_event_json_append(&ev, &p->json) != MD_OK)
        return md_error_set(err, MD_ECODEC, "event %llu: data is not JSON-representable",
                            (unsigned long long)m->event_seq);
    m->value = p->json.p;
    m->value_len = p->json.len;
    return rc;
}

static md_err_t produce_one(const md_outbox_msg_t *msg, void *ctx, md_error_t *err)
{
    md_publisher_t *p = ctx;
    md_outbox_msg_t copy = *msg;
    const md_outbox_msg_t *m = &copy;
    int64_t stage[4];
    bool result = p->results_topic && strcmp(m->topic, p->results_topic) == 0;
    pthread_mutex_lock(&p->lock);
    bool skip = skipped(p, msg->id);
    pthread_mutex_unlock(&p->lock);
    if (skip) {
        p->next_id = msg->id + 1;
        return MD_OK;
    }
    if (msg->id >= p->scan_hold)
        return MD_ESTOP; /* the projections do not show it yet (md_publisher_hold) */
    /* Taken once the entry is sure to be sent (a held entry comes again). */
    bool staged = false;
    if (result) {
        pthread_mutex_lock(&p->lock);
        staged = stage_of_waiting(p, msg->id, stage);
        pthread_mutex_unlock(&p->lock);
    }
    if (p->gate && !p->gate(m->topic, p->gate_ctx)) {
        p->next_id = m->id + 1; /* not this publisher's to send now: kept in the outbox */
        note_progress();        /* nothing waits on this publisher for it */
        return MD_OK;
    }
    if (m->id < p->rescan_below)
        atomic_fetch_add_explicit(&md_metrics.replica.takeover_resent, 1, memory_order_relaxed);
    if (copy.event_seq) {
        md_err_t rc = render_event(p, &copy, err);
        if (rc != MD_OK)
            return rc;
    }
    for (;;) {
        rd_kafka_headers_t *h = make_headers(m);
        if (staged)
            h = add_stage_header(h, stage);
        rd_kafka_resp_err_t rc = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(m->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(m->key_len ? m->key : NULL, m->key_len),
            RD_KAFKA_V_VALUE((void *)m->value, m->value_len),
            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)m->id), RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (rc == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (h)
            rd_kafka_headers_destroy(h);
        if (is_permanent(rc)) { /* refused before it left: park it, go on */
            pthread_mutex_lock(&p->lock);
            p->failed++;
            atomic_fetch_add_explicit(&md_metrics.outbox_failed, 1, memory_order_relaxed);
            park_locked(p, m->id, m->topic, rd_kafka_err2str(rc));
            pthread_mutex_unlock(&p->lock);
            p->next_id = m->id + 1;
            return MD_OK;
        }
        if (rc != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return md_error_set(err, MD_EKAFKA, "produce to '%s': %s", m->topic,
                                rd_kafka_err2str(rc));
        if (p->stop && md_mono_ms() >= p->drain_deadline_ms)
            return md_error_set(err, MD_EKAFKA, "stopping with the producer queue full");
        rd_kafka_poll(p->rk, 50); /* the local queue is full: let deliveries drain */
    }
    pthread_mutex_lock(&p->lock);
    p->inflight++;
    pthread_mutex_unlock(&p->lock);
    p->next_id = m->id + 1;
    return MD_OK;
}

/* Hands the next committed entries to the producer; returns how many. */
static uint64_t publish_some(md_publisher_t *p)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    if (atomic_exchange(&p->rescan, false)) {
        p->rescan_below = p->next_id;
        p->next_id = 0;
    }
    uint64_t before = p->next_id;
    pthread_mutex_lock(&p->lock);
    if (p->resend_from) {
        p->next_id = p->resend_from; /* at least once: resend from the failure on */
        p->resend_from = 0;
    }
    pthread_mutex_unlock(&p->lock);
    p->blocked = false;
    p->scan_hold = atomic_load(&p->hold);
    if (md_store_read(p->store, &t, &err) == MD_OK) {
        p->scan = t;
        if (md_txn_outbox_scan(t, p->next_id, SCAN_LIMIT, produce_one, p, &err) != MD_OK) {
            p->blocked = true;
            md_log_error("outbox entry not sent, will retry", "id=%llu error=\"%s\"",
                         (unsigned long long)p->next_id, err.msg);
        }
        p->scan = NULL;
    } else {
        p->blocked = true;
        md_log_error("outbox read failed", "error=\"%s\"", err.msg);
    }
    md_txn_end(t);
    return p->next_id > before ? p->next_id - before : 0;
}

static bool drained(md_publisher_t *p)
{
    pthread_mutex_lock(&p->lock);
    bool done = p->inflight == 0 && p->resend_from == 0;
    pthread_mutex_unlock(&p->lock);
    return done;
}

/* Empties a non-blocking pipe. */
static void drain_pipe(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

/* Sleeps until a commit, a queued report or @p timeout_ms. */
static void wait_for_work(md_publisher_t *p, int timeout_ms)
{
    struct pollfd fds[2] = {{p->wake[0], POLLIN, 0}, {p->reports[0], POLLIN, 0}};
    if (poll(fds, 2, timeout_ms) > 0) {
        drain_pipe(p->wake[0]);
        drain_pipe(p->reports[0]);
    }
}

static void *publisher_main(void *arg)
{
    md_publisher_t *p = arg;
    for (;;) {
        uint64_t n = publish_some(p);
        rd_kafka_poll(p->rk, 0);
        if (n == 0 && !p->blocked && drained(p))
            note_progress(); /* idle: nothing waits */
        if (p->stop && ((n == 0 && drained(p)) || md_mono_ms() >= p->drain_deadline_ms))
            break;
        if (n == 0)
            wait_for_work(p, 100);
    }
    return NULL;
}

/* Both pipes, non-blocking, and librdkafka's main queue writing to one. */
static int open_pipes(md_publisher_t *p)
{
    p->wake[0] = p->wake[1] = p->reports[0] = p->reports[1] = -1;
    if (pipe(p->wake) != 0 || pipe(p->reports) != 0)
        return -1;
    for (int i = 0; i < 2; i++)
        if (fcntl(p->wake[i], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(p->reports[i], F_SETFL, O_NONBLOCK) != 0)
            return -1;
    p->mainq = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->mainq, p->reports[1], "r", 1);
    return 0;
}

static void close_pipes(md_publisher_t *p)
{
    if (p->mainq) {
        rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
        rd_kafka_queue_destroy(p->mainq);
        p->mainq = NULL;
    }
    for (int i = 0; i < 2; i++) {
        if (p->wake[i] >= 0)
            close(p->wake[i]);
        if (p->reports[i] >= 0)
            close(p->reports[i]);
        p->wake[i] = p->reports[i] = -1;
    }
}

/* Topic handles made at start have librdkafka look up their metadata then:
 * made at the first produce, the first results of a run waited 0.7-1 s for
 * it (measured with the stage header: publish -> results append). */
static void warm_topics(md_publisher_t *p, const md_config_t *cfg)
{
    const char *names[2] = {cfg->topic_results, cfg->topic_events};
    for (int i = 0; i < 2; i++)
        if (names[i] && *names[i])
            p->warm[i] = rd_kafka_topic_new(p->rk, names[i], NULL); /* NULL: no warm-up */
}

md_err_t md_publisher_start(const md_config_t *cfg, md_store_t *store, md_publisher_t **out,
                            md_error_t *err)
{
    return md_publisher_start_gated(cfg, store, NULL, NULL, out, err);
}

md_err_t md_publisher_start_gated(const md_config_t *cfg, md_store_t *store,
                                  md_publisher_gate_fn gate, void *gate_ctx, md_publisher_t **out,
                                  md_error_t *err)
{
    static const char *const extra[] = {"enable.idempotence", "true", "acks", "all",
                                        "linger.ms",          "1"};
    char errstr[512];
    rd_kafka_conf_t *conf = md_kafka_conf(cfg, extra, 3, err);
    if (conf == NULL)
        return MD_ECONFIG;
    md_publisher_t *p = md_calloc(1, sizeof *p);
    p->store = store;
    p->gate = gate;
    atomic_init(&p->hold, UINT64_MAX);
    p->gate_ctx = gate_ctx;
    p->results_topic = cfg->topic_results ? md_strdup(cfg->topic_results) : NULL;
    md_buf_init(&p->json);
    p->wake[0] = p->wake[1] = p->reports[0] = p->reports[1] = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->stage_cv, NULL);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (p->rk == NULL) {
        rd_kafka_conf_destroy(conf);
        md_publisher_free(p);
        return md_error_set(err, MD_EKAFKA, "create producer: %s", errstr);
    }
    warm_topics(p, cfg);
    if (open_pipes(p) != 0) {
        md_error_set(err, MD_EIO, "publisher wake-up pipes: %s", strerror(errno));
        md_publisher_free(p);
        return MD_EIO;
    }
    if (pthread_create(&p->thread, NULL, publisher_main, p) != 0) {
        md_publisher_free(p);
        return md_error_set(err, MD_EKAFKA, "cannot start the publisher thread");
    }
    p->started = true;
    note_progress();
    atomic_store(&md_metrics.outbox_draining, true);
    *out = p;
    return MD_OK;
}

void md_publisher_rescan(md_publisher_t *p)
{
    atomic_store(&p->rescan, true);
    md_publisher_wake(p);
}

void md_publisher_hold(md_publisher_t *p, uint64_t below_id)
{
    atomic_store(&p->hold, below_id);
    md_publisher_wake(p);
}

void md_publisher_wake(md_publisher_t *p)
{
    /* A full pipe already holds a wake-up: EAGAIN is fine. */
    ssize_t w = write(p->wake[1], "w", 1);
    (void)w;
}

void md_publisher_take_parked(md_publisher_t *p, md_outbox_park_t **v, size_t *n, size_t *cap)
{
    pthread_mutex_lock(&p->lock);
    if (*n + p->npark > *cap) {
        *cap = *n + p->npark + 16;
        *v = md_realloc(*v, *cap * sizeof **v);
    }
    if (p->npark)
        memcpy(*v + *n, p->park, p->npark * sizeof *p->park);
    *n += p->npark;
    p->npark = 0;
    pthread_mutex_unlock(&p->lock);
}

void md_publisher_take_delivered(md_publisher_t *p, uint64_t **ids, size_t *n, size_t *cap)
{
    pthread_mutex_lock(&p->lock);
    if (*n + p->ndelivered > *cap) {
        *cap = *n + p->ndelivered + 1024;
        *ids = md_realloc(*ids, *cap * sizeof **ids);
    }
    if (p->ndelivered)
        memcpy(*ids + *n, p->delivered, p->ndelivered * sizeof *p->delivered);
    *n += p->ndelivered;
    p->ndelivered = 0;
    pthread_mutex_unlock(&p->lock);
}

uint64_t md_publisher_stop(md_publisher_t *p, long timeout_ms)
{
    if (p == NULL || !p->started)
        return 0;
    p->drain_deadline_ms = md_mono_ms() + timeout_ms;
    p->stop = 1;
    atomic_store(&md_metrics.outbox_draining, false);
    md_publisher_wake(p);
    pthread_join(p->thread, NULL);
    p->started = false;
    /* serves the last delivery reports; what is still queued after that stays
     * in the outbox (inflight, counted as undelivered below) */
    rd_kafka_resp_err_t fe = rd_kafka_flush(p->rk, 0);
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR)
        md_log_info("outbox producer not empty at stop", "error=\"%s\"", rd_kafka_err2str(fe));
    pthread_mutex_lock(&p->lock);
    uint64_t left = p->inflight;
    md_log_info("outbox publisher stopped", "sent=%llu failed=%llu parked=%llu in_flight=%llu",
                (unsigned long long)p->sent, (unsigned long long)p->failed,
                (unsigned long long)p->parked, (unsigned long long)left);
    pthread_mutex_unlock(&p->lock);
    return left;
}

void md_publisher_free(md_publisher_t *p)
{
    if (p == NULL)
        return;
    if (p->started)
        md_publisher_stop(p, 0);
    close_pipes(p);
    for (int i = 0; i < 2; i++)
        if (p->warm[i])
            rd_kafka_topic_destroy(p->warm[i]);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->stage_cv);
    md_buf_release(&p->json);
    free(p->delivered);
    free(p->park);
    free(p->skip);
    for (size_t i = 0; i < MD_STAGE_BATCHES; i++)
        free(p->stages[i].ago);
    free(p->results_topic);
    free(p);
}
