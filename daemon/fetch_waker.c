/*
 * fetch_waker.c - wakes librdkafka's fetcher after the consumer drained a
 * full prefetch queue (md_fetch_waker.h says why and when).
 *
 * Invariants: a poke is a flag under mu (pokes made while a wake is in
 * flight make one more wake); the thread calls librdkafka with mu released
 * and checks stop between partitions. Once the owner has given up waiting
 * for it (orphan), the thread is the last user of the waker and frees it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"
#include "md_fetch_waker.h"
#include "md_log.h"
#include "md_metrics.h"

struct md_fetch_waker {
    rd_kafka_t *rk;
    char *topic; /* a copy: an orphaned thread may outlive the caller's */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* the thread waits on it for a poke or the stop */
    pthread_cond_t done; /* md_fetch_waker_free waits on it for the thread's end */
    bool poked, stop, exited, orphan;
};

bool md_fetch_wake_needed(size_t before, size_t after, size_t batch_msgs, size_t batch_bytes,
                          size_t queued_min, size_t queued_max_bytes)
{
    if (batch_msgs == 0)
        return false; /* nothing taken: the queue did not shrink */
    bool by_count = before >= queued_min && after < queued_min;
    size_t avg = batch_bytes / batch_msgs;
    bool by_bytes = before * avg >= queued_max_bytes / 4 * 3 && after * avg < queued_max_bytes;
    return by_count || by_bytes;
}

static bool stopping(md_fetch_waker_t *w)
{
    pthread_mutex_lock(&w->mu);
    bool s = w->stop;
    pthread_mutex_unlock(&w->mu);
    return s;
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

/* Wakes the fetcher of every partition of the topic assigned to the
 * consumer (they share one queue, so all of them stopped), at most
 * MD_FETCH_WAKE_MAX, until a stop. */
static void wake_assigned(md_fetch_waker_t *w)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t e = rd_kafka_assignment(w->rk, &l);
    if (e) {
        md_log_debug("fetch wake: no assignment", "error=\"%s\"", rd_kafka_err2str(e));
        return;
    }
    for (int i = 0, n = 0; i < l->cnt && n < MD_FETCH_WAKE_MAX && !stopping(w); i++)
        if (strcmp(l->elems[i].topic, w->topic) == 0)
            wake_one(w, l->elems[i].partition), n++;
    rd_kafka_topic_partition_list_destroy(l);
}

static void waker_free(md_fetch_waker_t *w)
{
    free(w->topic);
    pthread_cond_destroy(&w->done);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

static void *waker_main(void *arg)
{
    md_fetch_waker_t *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->stop && !w->poked)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->stop)
            break;
        w->poked = false;
        pthread_mutex_unlock(&w->mu);
        wake_assigned(w);
        pthread_mutex_lock(&w->mu);
    }
    w->exited = true;
    bool orphan = w->orphan;
    pthread_cond_signal(&w->done);
    pthread_mutex_unlock(&w->mu);
    if (orphan)
        waker_free(w); /* the owner gave up on it: nobody else holds it */
    return NULL;
}

md_fetch_waker_t *md_fetch_waker_new(rd_kafka_t *rk, const char *topic)
{
    md_fetch_waker_t *w = md_calloc(1, sizeof *w);
    w->rk = rk;
    w->topic = md_strdup(topic);
    bool mu = pthread_mutex_init(&w->mu, NULL) == 0;
    bool cv = mu && pthread_cond_init(&w->cv, NULL) == 0;
    bool done = cv && pthread_cond_init(&w->done, NULL) == 0;
    if (done && pthread_create(&w->th, NULL, waker_main, w) == 0)
        return w;
    if (done)
        pthread_cond_destroy(&w->done);
    if (cv)
        pthread_cond_destroy(&w->cv);
    if (mu)
        pthread_mutex_destroy(&w->mu);
    free(w->topic);
    free(w);
    return NULL;
}

/* Sets @p flag (poked or stop) and wakes the thread. */
static void raise_flag(md_fetch_waker_t *w, bool *flag)
{
    pthread_mutex_lock(&w->mu);
    *flag = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void md_fetch_waker_poke(md_fetch_waker_t *w)
{
    if (w != NULL)
        raise_flag(w, &w->poked);
}

void md_fetch_waker_stop(md_fetch_waker_t *w)
{
    if (w != NULL)
        raise_flag(w, &w->stop);
}

bool md_fetch_waker_free(md_fetch_waker_t *w, long timeout_ms)
{
    if (w == NULL)
        return true;
    md_fetch_waker_stop(w);
    struct timespec until;
    md_deadline_ms(&until, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    while (!w->exited && rc == 0)
        rc = pthread_cond_timedwait(&w->done, &w->mu, &until); /* ETIMEDOUT, or an error */
    bool exited = w->exited;
    pthread_t th = w->th; /* an orphan may be freed by its thread once mu is released */
    w->orphan = !exited;
    pthread_mutex_unlock(&w->mu);
    if (!exited) {
        int drc = pthread_detach(th);
        md_log_warn("fetch waker still waits for the broker; left to end on its own",
                    "timeout_ms=%ld detach=%d", timeout_ms, drc);
        return false;
    }
    int jrc = pthread_join(th, NULL);
    if (jrc != 0)
        md_log_warn("fetch waker not joined", "error=%d", jrc);
    waker_free(w);
    return true;
}
