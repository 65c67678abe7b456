/*
 * md_fetch_waker.h - wakes librdkafka's fetcher after the consumer drained a
 * full prefetch queue (docs/performance.md, "Issue 17, eighth pass").
 *
 * Why: librdkafka 2.0.2 (Debian's) stops fetching while the consumer's queue
 * holds queued.min.messages messages or queued.max.messages.kbytes, and then
 * decides again only when its broker thread wakes up for another reason, at
 * the latest after a second (fetch.queue.backoff.ms, which bounds that wait,
 * came in 2.1). A prefetch smaller than a second of work therefore drained in
 * bursts: a queue's worth, then a pause to the next second. The waker sends
 * a small request to each assigned partition's leader (ListOffsets, through
 * rd_kafka_query_watermark_offsets): its answer wakes the broker thread,
 * which decides again and fetches at once. So the prefetch can stay small
 * (memory) without the pauses (throughput). Pausing and resuming the
 * partitions instead does not wake it (measured: docs/performance.md).
 *
 * When: md_fetch_wake_needed says, from the queue's length before and after
 * the consumer took a batch, whether the fetcher may be waiting; the consumer
 * then calls md_fetch_waker_poke, and the requests go out on the waker's own
 * thread, so the consumer never waits for the broker.
 *
 * Stopping: librdkafka 2.0.2's rd_kafka_query_watermark_offsets waits for its
 * answer beyond its timeout when the leader does not answer (a broker that
 * hangs; fixed in librdkafka 2.3). md_fetch_waker_free therefore waits a
 * bounded time; a thread still inside librdkafka then is left to end on its
 * own (it frees the waker), and the caller must not destroy the rd_kafka_t.
 *
 * Metrics: each request the leader answered counts in md_metrics.fetch_wakeups
 * (marketd_fetch_wakeups_total).
 * Errors: a request that fails is logged at debug level and not counted (the
 * fetcher then resumes on its own, within a second); nothing here fails the
 * caller.
 * Ownership: the waker borrows @p rk and @p topic, which must outlive its
 * thread (see Stopping).
 * Threads: md_fetch_waker_poke, _stop and _free from one thread (the
 * consumer's); the waker's thread calls rd_kafka_assignment and
 * rd_kafka_query_watermark_offsets only.
 */
#ifndef MD_FETCH_WAKER_H
#define MD_FETCH_WAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct md_fetch_waker md_fetch_waker_t;

/** The most partitions one wake asks about. */
#define MD_FETCH_WAKE_MAX 64

/** The timeout given to each request (librdkafka 2.0.2 may wait longer: above). */
#define MD_FETCH_WAKE_TIMEOUT_MS 500

/**
 * @brief Whether the fetcher may be waiting and must be woken (pure).
 * @p before is the consumer queue's largest length (messages) while a batch
 * of @p batch_msgs messages and @p batch_bytes bytes was taken, @p after its
 * length once it was taken; @p queued_min and @p queued_max_bytes the
 * prefetch bounds (queued.min.messages, queued.max.messages.kbytes * 1024).
 * The fetcher stops when the queue reaches either bound. Only the consumer
 * takes from the queue, so the caller can bound the peak from above by the
 * larger of the length before the batch and @p after plus the batch (a fetch
 * may land while the batch is collected); waking when it was not needed costs
 * one small request.
 *  - by count: @p before reached @p queued_min and @p after is below it;
 *  - by bytes (the queue's bytes are not visible: estimated from the batch's
 *    average message): @p before's reached three quarters of
 *    @p queued_max_bytes (the estimate is rough) and @p after's is below the
 *    whole of it.
 * An empty batch never wakes (the queue did not shrink).
 */
bool md_fetch_wake_needed(size_t before, size_t after, size_t batch_msgs, size_t batch_bytes,
                          size_t queued_min, size_t queued_max_bytes);

/**
 * @brief Starts the waker's thread for partitions of @p topic consumed by @p rk.
 * @returns the waker; NULL when the thread cannot be started (the consumer
 *          then runs without it: drains pause as before, nothing else changes).
 */
md_fetch_waker_t *md_fetch_waker_new(rd_kafka_t *rk, const char *topic);

/**
 * @brief Asks the waker to wake the fetchers of the assigned partitions; a
 * poke made while a wake is in flight makes one more. Never blocks on the
 * broker. @p w NULL: nothing.
 */
void md_fetch_waker_poke(md_fetch_waker_t *w);

/** @brief Asks the thread to stop (no more wakes); does not wait. NULL: nothing. */
void md_fetch_waker_stop(md_fetch_waker_t *w);

/**
 * @brief Stops the thread and waits for it at most @p timeout_ms; the waker
 * is then freed, by this call or, when the thread is still inside librdkafka,
 * by the thread when it returns. NULL is ignored (true).
 * @returns true when the thread ended; false when it is still inside
 *          librdkafka: it was left to end on its own (logged) and the caller
 *          must not destroy the rd_kafka_t.
 */
bool md_fetch_waker_free(md_fetch_waker_t *w, long timeout_ms);

#endif
