/*
 * md_fetch_waker.h - wakes librdkafka's fetcher after the consumer drained a
 * full prefetch queue (docs/performance.md, "Issue 17, eighth pass").
 *
 * Why: librdkafka 2.0.2 (Debian's) stops fetching a partition while the
 * consumer's queue holds queued.min.messages messages or
 * queued.max.messages.kbytes, and then decides again only when its broker
 * thread wakes up for another reason, at the latest after one second
 * (fetch.queue.backoff.ms, which makes that wait configurable, came in 2.1).
 * A prefetch smaller than one second of work therefore drained in bursts: a
 * queue's worth, then a pause to the next second. The waker sends a small
 * request to the partition's leader (ListOffsets, through
 * rd_kafka_query_watermark_offsets): its answer wakes the broker thread, which
 * decides again and fetches at once. So the prefetch can stay small (memory)
 * without the pauses (throughput).
 *
 * When: md_fetch_wake_needed says, from the queue's length before and after
 * the consumer took a batch, whether the fetcher may be waiting. The consumer
 * calls md_fetch_waker_poke then; the request goes out on the waker's own
 * thread, so the consumer never waits for the broker.
 *
 * Metrics: each request the leader answered counts in md_metrics.fetch_wakeups
 * (marketd_fetch_wakeups_total).
 * Errors: a request that fails is logged at debug level and not counted (the
 * fetcher then resumes on its own, within a second); nothing here fails the
 * caller.
 * Ownership: the waker borrows @p rk and @p topic, which must outlive it.
 * Threads: md_fetch_waker_poke from one thread (the consumer's);
 * md_fetch_waker_free from that same thread, before rd_kafka_destroy. The
 * waker's thread calls only rd_kafka_query_watermark_offsets.
 */
#ifndef MD_FETCH_WAKER_H
#define MD_FETCH_WAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

typedef struct md_fetch_waker md_fetch_waker_t;

/** The most partitions one poke names (more are woken by the next poke). */
#define MD_FETCH_WAKE_MAX 64

/** How long one wake request may take, leader lookup and retries included. */
#define MD_FETCH_WAKE_TIMEOUT_MS 500

/**
 * @brief Whether the fetcher may be waiting and must be woken (pure).
 * @p before and @p after are the consumer queue's lengths (messages) when the
 * consumer began and finished taking a batch; @p batch_bytes the bytes of the
 * messages it took; @p queued_min and @p queued_max_bytes the prefetch bounds
 * (queued.min.messages, queued.max.messages.kbytes * 1024). The fetcher stops
 * when the queue reaches either bound; only the consumer takes from the queue,
 * so the queue was largest just before a batch was taken:
 *  - by count: @p before reached @p queued_min and @p after is below it;
 *  - by bytes (the queue's bytes are not visible): the batch took at least
 *    half of @p queued_max_bytes.
 */
bool md_fetch_wake_needed(size_t before, size_t after, size_t batch_bytes, size_t queued_min,
                          size_t queued_max_bytes);

/**
 * @brief Starts the waker's thread for partitions of @p topic consumed by @p rk.
 * @returns the waker; NULL when the thread cannot be started (the consumer
 *          then runs without it: drains pause as before, nothing else changes).
 */
md_fetch_waker_t *md_fetch_waker_new(rd_kafka_t *rk, const char *topic);

/**
 * @brief Asks the waker to wake the fetchers of @p n partitions (duplicates
 * allowed; pokes made while one is in flight are merged into the next).
 * Never blocks on the broker. @p w NULL: nothing.
 */
void md_fetch_waker_poke(md_fetch_waker_t *w, const int32_t *partitions, size_t n);

/**
 * @brief Stops the thread (waiting for a request in flight, at most
 * MD_FETCH_WAKE_TIMEOUT_MS plus librdkafka's own retry) and frees the waker.
 * NULL is ignored.
 */
void md_fetch_waker_free(md_fetch_waker_t *w);

#endif
