/*
 * fetch_waker.c - wakes librdkafka's fetcher after the consumer drained a
 * full prefetch queue (md_fetch_waker.h says why and when).
 *
 * Invariants: the waker's thread holds the partitions of the next wake
 * (a set, merged while a wake is in flight) under mu; it calls librdkafka
 * with mu released, so a poke never waits for the broker.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "md_base.h"
#include "md_fetch_waker.h"
#include "md_log.h"
#include "md_metrics.h"

struct md_fetch_waker {
    rd_kafka_t *rk;
    const char *topic;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    size_t n;                            /* partitions of the next wake */
    int32_t parts[MD_FETCH_WAKE_MAX];    /* under mu */
    int32_t inflight[MD_FETCH_WAKE_MAX]; /* the thread's own copy */
};

bool md_fetch_wake_needed(size_t before, size_t after, size_t batch_bytes, size_t queued_min,
                          size_t queued_max_bytes)
{
    bool by_count = queued_min > 0 && before >= queued_min && after < queued_min;
    bool by_bytes = queued_max_bytes > 0 && 2 * batch_bytes >= queued_max_bytes;
    return by_count || by_bytes;
}

/* One ListOffsets round to @p partition's leader; its answer wakes the
 * leader's broker thread, which then decides to fetch again. */
static void wake_one(md_fetch_waker_t *w, int32_t partition)
{
    int64_t lo, hi;
    rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(w->rk, w->topic, partition, &lo, &hi,
                                                             MD_FETCH_WAKE_TIMEOUT_MS);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        atomic_fetch_add_explicit(&md_metrics.fetch_wakeups, 1, memory_order_relaxed);
    else
        md_log_debug("fetch wake not answered", "partition=%d error=\"%s\"", (int)partition,
                     rd_kafka_err2str(e));
}

static void *waker_main(void *arg)
{
    md_fetch_waker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && w->n == 0)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        size_t n = w->n;
        memcpy(w->inflight, w->parts, n * sizeof *w->parts);
        w->n = 0;
        pthread_mutex_unlock(&w->mu);
        for (size_t i = 0; i < n; i++)
            wake_one(w, w->inflight[i]);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

md_fetch_waker_t *md_fetch_waker_new(rd_kafka_t *rk, const char *topic)
{
    md_fetch_waker_t *w = md_calloc(1, sizeof *w);
    w->rk = rk;
    w->topic = topic;
    if (pthread_mutex_init(&w->mu, NULL) != 0) {
        free(w);
        return NULL;
    }
    if (pthread_cond_init(&w->cv, NULL) != 0) {
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    if (pthread_create(&w->th, NULL, waker_main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

/* Adds @p p to the next wake's set unless it is there (or the set is full). */
static void add_partition(md_fetch_waker_t *w, int32_t p)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->parts[i] == p)
            return;
    if (w->n < MD_FETCH_WAKE_MAX)
        w->parts[w->n++] = p;
}

void md_fetch_waker_poke(md_fetch_waker_t *w, const int32_t *partitions, size_t n)
{
    if (w == NULL || n == 0)
        return;
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < n; i++)
        add_partition(w, partitions[i]);
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void md_fetch_waker_free(md_fetch_waker_t *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    int jrc = pthread_join(w->th, NULL);
    if (jrc != 0)
        md_log_warn("fetch waker not joined", "error=%d", jrc);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
    md_log_info(
        "fetch waker stopped", "wakeups=%llu",
        (unsigned long long)atomic_load_explicit(&md_metrics.fetch_wakeups, memory_order_relaxed));
}
