/*
 * kafka_echo.c - bench-kafka-echo BOOTSTRAP PREFIX RATE COUNT [SYNC_DIR]
 *
 * The floor of the latency rows: marketd's path with marketd taken out. A
 * client produces COUNT messages of 400 bytes to PREFIX.commands at RATE a
 * second (idempotent, acks=all, linger.ms=1: market-load's settings in the
 * latency runs); an echo thread reads them with the daemon's consumer
 * settings, takes what is waiting as one batch (as marketd's group commit
 * does) and produces each message to PREFIX.results with the publisher's
 * settings (idempotent, acks=all, linger.ms=1). With SYNC_DIR, the echo first
 * appends the batch to a file there and fdatasyncs it: one synced write per
 * batch, as marketd commits one per batch, without anything else marketd
 * does. The client reads PREFIX.results and times each message from its
 * produce to its arrival.
 *
 * Both topics must exist (bench/run.sh makes them LogAppendTime, as for the
 * latency runs). Prints "count=N p50_ms=A p99_ms=B p999_ms=C max_ms=D"
 * (nearest-rank, as market-load) over the messages after the first second,
 * the warm-up that bench/run.sh also leaves out. Exit status 1 when not every
 * message came back within 120 s.
 *
 * Threads: main produces, "echo" consumes and produces, "collect" consumes;
 * each owns its librdkafka handles.
 */
#include <errno.h>
#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_config.h"
#include "md_consumer.h"
#include "md_error.h"
#include "md_kafka.h"

#define PAYLOAD 400
#define BATCH_MAX 8000

typedef struct echo {
    const md_config_t *cfg; /* kafka.bootstrap.servers: BOOTSTRAP */
    const char *prefix, *sync_dir;
    long rate, count;
    int64_t *lat_ns; /* by message number; 0 until it came back */
    atomic_long back;
    atomic_bool stop;
    atomic_int failed; /* set by any thread */
} echo_t;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A client with the daemon's way of configuring one (md_kafka_conf): @p cfg's
 * kafka.* keys, then the @p n pairs of @p kv. */
static rd_kafka_t *client(rd_kafka_type_t type, const md_config_t *cfg, const char *const *kv,
                          size_t n, bool fetch_defaults)
{
    char errstr[512];
    md_error_t err = {0};
    rd_kafka_conf_t *conf = md_kafka_conf(cfg, kv, n, &err);
    if (conf != NULL && fetch_defaults && !md_consumer_fetch_defaults(cfg, conf, &err)) {
        rd_kafka_conf_destroy(conf);
        conf = NULL;
    }
    if (conf == NULL) {
        fprintf(stderr, "bench-kafka-echo: %s\n", err.msg);
        return NULL;
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "bench-kafka-echo: %s\n", errstr);
        rd_kafka_conf_destroy(conf); /* still ours when rd_kafka_new fails */
    }
    return rk;
}

static rd_kafka_t *producer(const md_config_t *cfg, const char *linger)
{
    const char *kv[] = {"enable.idempotence", "true", "acks", "all", "linger.ms", linger};
    return client(RD_KAFKA_PRODUCER, cfg, kv, 3, false);
}

/* A consumer of partition 0 of TOPIC from its start, with the daemon's
 * fetch settings and prefetch bounds (md_consumer_fetch_defaults). */
static rd_kafka_t *consumer(const md_config_t *cfg, const char *group, const char *topic)
{
    const char *kv[] = {"group.id", group, "enable.auto.commit", "false", "enable.partition.eof",
                        "false"};
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, cfg, kv, 3, true);
    if (rk == NULL)
        return NULL;
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    if (e) {
        fprintf(stderr, "bench-kafka-echo: assign %s: %s\n", topic, rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

static bool produce(rd_kafka_t *p, const char *topic, const void *v, size_t n)
{
    for (;;) {
        rd_kafka_resp_err_t e = rd_kafka_producev(
            p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0), RD_KAFKA_V_VALUE((void *)v, n),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
            return true;
        if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "bench-kafka-echo: produce %s: %s\n", topic, rd_kafka_err2str(e));
            return false;
        }
        rd_kafka_poll(p, 10);
    }
}

/* Appends the batch's payloads to FD and syncs them: the one durable write
 * per batch. */
static bool sync_batch(int fd, rd_kafka_message_t **m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *p = m[i]->payload;
        size_t left = m[i]->len;
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                perror("bench-kafka-echo: write");
                return false;
            }
            p += w, left -= (size_t)w;
        }
    }
    if (fdatasync(fd) != 0) {
        perror("bench-kafka-echo: fdatasync");
        return false;
    }
    return true;
}

/* Takes the first message waiting (up to 100 ms), then whatever else is
 * already there, up to BATCH_MAX. */
static size_t take_batch(rd_kafka_t *c, rd_kafka_message_t **m)
{
    size_t n = 0;
    int wait_ms = 100;
    while (n < BATCH_MAX) {
        rd_kafka_message_t *x = rd_kafka_consumer_poll(c, wait_ms);
        if (x == NULL)
            break;
        if (x->err) {
            rd_kafka_message_destroy(x);
            continue;
        }
        m[n++] = x;
        wait_ms = 0;
    }
    return n;
}

static void *echo_main(void *arg)
{
    echo_t *e = arg;
    char in[256], out[256], path[4096];
    snprintf(in, sizeof in, "%s.commands", e->prefix);
    snprintf(out, sizeof out, "%s.results", e->prefix);
    int fd = -1;
    if (e->sync_dir != NULL) {
        snprintf(path, sizeof path, "%s/echo.log", e->sync_dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
        if (fd < 0) {
            perror(path);
            e->failed = 1;
            return NULL;
        }
    }
    rd_kafka_t *c = consumer(e->cfg, "bench-kafka-echo", in);
    rd_kafka_t *p = producer(e->cfg, "1");
    rd_kafka_message_t **m = md_malloc(BATCH_MAX * sizeof *m);
    if (c == NULL || p == NULL)
        e->failed = 1;
    while (!e->failed && !atomic_load(&e->stop)) {
        size_t n = take_batch(c, m);
        if (n > 0 && fd >= 0 && !sync_batch(fd, m, n))
            e->failed = 1;
        for (size_t i = 0; i < n; i++) {
            if (!e->failed && !produce(p, out, m[i]->payload, m[i]->len))
                e->failed = 1;
            rd_kafka_message_destroy(m[i]);
        }
        rd_kafka_poll(p, 0);
    }
    free(m);
    if (p != NULL) {
        rd_kafka_flush(p, 5000);
        rd_kafka_destroy(p);
    }
    if (c != NULL) {
        rd_kafka_consumer_close(c);
        rd_kafka_destroy(c);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void *collect_main(void *arg)
{
    echo_t *e = arg;
    char topic[256];
    snprintf(topic, sizeof topic, "%s.results", e->prefix);
    rd_kafka_t *c = consumer(e->cfg, "bench-kafka-echo-collect", topic);
    if (c == NULL) {
        e->failed = 1;
        return NULL;
    }
    while (!atomic_load(&e->stop) && atomic_load(&e->back) < e->count) {
        rd_kafka_message_t *x = rd_kafka_consumer_poll(c, 100);
        if (x == NULL)
            continue;
        int64_t sent, i;
        if (!x->err && x->len == PAYLOAD) {
            memcpy(&sent, x->payload, sizeof sent);
            memcpy(&i, (const char *)x->payload + sizeof sent, sizeof i);
            if (i >= 0 && i < e->count && e->lat_ns[i] == 0) {
                e->lat_ns[i] = now_ns() - sent;
                atomic_fetch_add(&e->back, 1);
            }
        }
        rd_kafka_message_destroy(x);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return NULL;
}

/* Produces COUNT messages at RATE a second, each carrying its send time and
 * number, serving the producer's delivery reports in between. */
static bool send_all(echo_t *e)
{
    char topic[256];
    snprintf(topic, sizeof topic, "%s.commands", e->prefix);
    rd_kafka_t *p = producer(e->cfg, "1");
    if (p == NULL)
        return false;
    char v[PAYLOAD];
    memset(v, 'x', sizeof v);
    int64_t t0 = now_ns();
    bool ok = true;
    for (long i = 0; ok && i < e->count && !e->failed;) {
        long due = (long)((now_ns() - t0) * (double)e->rate / 1e9) + 1;
        for (; ok && i < due && i < e->count; i++) {
            int64_t sent = now_ns(), n = i;
            memcpy(v, &sent, sizeof sent);
            memcpy(v + sizeof sent, &n, sizeof n);
            ok = produce(p, topic, v, sizeof v);
        }
        rd_kafka_poll(p, 0);
        struct timespec ts = {0, 1000000}; /* market-load's 1 ms bursts */
        nanosleep(&ts, NULL);
    }
    rd_kafka_flush(p, 30000);
    rd_kafka_destroy(p);
    return ok;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted S[0..n), q in 1/10000. */
static double pct_ms(const int64_t *s, long n, long q)
{
    long k = (n * q + 9999) / 10000;
    return s[k < 1 ? 0 : k - 1] / 1e6;
}

static int report(const echo_t *e)
{
    long warm = e->count >= 3 * e->rate ? e->rate : 0, n = 0; /* as bench/run.sh: LAT_S >= 3 */
    int64_t *s = md_malloc((size_t)e->count * sizeof *s);
    for (long i = warm; i < e->count; i++)
        if (e->lat_ns[i] > 0)
            s[n++] = e->lat_ns[i];
    if (n == 0) {
        fprintf(stderr, "bench-kafka-echo: no message came back\n");
        free(s);
        return 1;
    }
    qsort(s, (size_t)n, sizeof *s, cmp_i64);
    printf("count=%ld p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f\n", n, pct_ms(s, n, 5000),
           pct_ms(s, n, 9900), pct_ms(s, n, 9990), s[n - 1] / 1e6);
    free(s);
    return atomic_load(&e->back) == e->count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: bench-kafka-echo BOOTSTRAP PREFIX RATE COUNT [SYNC_DIR]\n");
        return 2;
    }
    echo_t e = {.prefix = argv[2], .sync_dir = argc == 6 ? argv[5] : NULL};
    e.rate = strtol(argv[3], NULL, 10);
    e.count = strtol(argv[4], NULL, 10);
    if (e.rate <= 0 || e.count <= 0) {
        fprintf(stderr, "bench-kafka-echo: RATE and COUNT must be positive\n");
        return 2;
    }
    md_config_t cfg;
    md_error_t err = {0};
    md_config_init(&cfg);
    if (md_config_set(&cfg, "kafka.bootstrap.servers", argv[1], &err) != MD_OK) {
        fprintf(stderr, "bench-kafka-echo: %s\n", err.msg);
        md_config_release(&cfg);
        return 2;
    }
    e.cfg = &cfg;
    e.lat_ns = md_calloc((size_t)e.count, sizeof *e.lat_ns);
    pthread_t te, tc;
    if (pthread_create(&te, NULL, echo_main, &e) != 0 ||
        pthread_create(&tc, NULL, collect_main, &e) != 0) {
        fprintf(stderr, "bench-kafka-echo: cannot start threads\n");
        return 1;
    }
    bool sent = send_all(&e);
    int64_t deadline = now_ns() + 120 * (int64_t)1000000000;
    while (atomic_load(&e.back) < e.count && !e.failed && now_ns() < deadline)
        usleep(10000);
    atomic_store(&e.stop, true);
    pthread_join(te, NULL);
    pthread_join(tc, NULL);
    int rc = sent && !e.failed ? report(&e) : 1;
    free(e.lat_ns);
    md_config_release(&cfg);
    return rc;
}
