/*
 * test_consumer.c - the consumer's pure rules: the retry back-off, the
 * fencing decision between stores of one consumer group, the fetch defaults
 * and when the fetcher is woken (md_fetch_waker.h). The broker side: fencing in
 * tests/integration/test_store_guard.sh, the waker in test_backlog_drain.sh.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include <stdatomic.h>

#include "md_consumer.h"
#include "md_fetch_waker.h"
#include "md_metrics.h"

/* The documented cap is 5 s: 100, 200, ..., 3200, then 5000, never 6400. */
static void test_retry_backoff_is_capped_at_5s(void **state)
{
    (void)state;
    long p = 100, seen[12];
    for (int i = 0; i < 12; i++) {
        seen[i] = p;
        assert_true(p <= MD_RETRY_MAX_MS);
        p = md_retry_next_ms(p);
    }
    assert_int_equal(seen[5], 3200);
    assert_int_equal(seen[6], 5000);
    assert_int_equal(seen[11], 5000);
    assert_int_equal(MD_RETRY_MAX_MS, 5000);
}

#define ME "0123456789abcdef0123456789abcdef"
#define OTHER "fedcba9876543210fedcba9876543210"

static bool fenced(int64_t own, int64_t committed, const char *meta)
{
    return md_consumer_fenced(ME, own, committed, meta, meta ? strlen(meta) : 0);
}

static void test_fenced_only_by_another_store_ahead(void **state)
{
    (void)state;
    /* another store committed further than this one: fenced */
    assert_true(fenced(-1, 1500, "store:" OTHER));
    assert_true(fenced(0, 1, "store:" OTHER));
    assert_true(fenced(1000, 1001, "store:" OTHER));
    /* another store behind or level with this one: not fenced (it fences itself) */
    assert_false(fenced(1000, 1000, "store:" OTHER));
    assert_false(fenced(1000, 10, "store:" OTHER));
    /* this store's own commit, even ahead (a store restored from a backup) */
    assert_false(fenced(10, 1000, "store:" ME));
    /* nothing committed, or committed by something that is not a marketd store */
    assert_false(fenced(-1, -1001, "store:" OTHER));
    assert_false(fenced(-1, 1500, NULL));
    assert_false(fenced(-1, 1500, ""));
    assert_false(fenced(-1, 1500, "lag-tool"));
    assert_false(fenced(-1, 1500, "store:"));
    /* a longer id that starts with this store's is another store */
    assert_true(fenced(0, 5, "store:" ME "00"));
}

static void conf_value(rd_kafka_conf_t *conf, const char *key, char *out, size_t cap)
{
    size_t n = cap;
    assert_int_equal(rd_kafka_conf_get(conf, key, out, &n), RD_KAFKA_CONF_OK);
}

/* md_consumer_fetch_defaults on a fresh librdkafka configuration in which
 * max.partition.fetch.bytes and queued.min.messages are @p preset_part and
 * @p preset_min (NULL: unset, as the configuration's own kafka.* keys would
 * be set by md_kafka_conf); checks every default after. */
static void check_fetch(const md_config_t *cfg, const char *preset_part, const char *preset_min,
                        const char *want_partition, const char *want_min)
{
    md_error_t err = {0};
    char v[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (preset_part)
        assert_int_equal(
            rd_kafka_conf_set(conf, "max.partition.fetch.bytes", preset_part, v, sizeof v),
            RD_KAFKA_CONF_OK);
    if (preset_min)
        assert_int_equal(rd_kafka_conf_set(conf, "queued.min.messages", preset_min, v, sizeof v),
                         RD_KAFKA_CONF_OK);
    assert_true(md_consumer_fetch_defaults(cfg, conf, &err));
    conf_value(conf, "max.partition.fetch.bytes", v, sizeof v);
    assert_string_equal(v, want_partition);
    conf_value(conf, "fetch.max.bytes", v, sizeof v);
    assert_string_equal(v, "4194304");
    conf_value(conf, "queued.max.messages.kbytes", v, sizeof v);
    assert_string_equal(v, "16384");
    conf_value(conf, "queued.min.messages", v, sizeof v);
    assert_string_equal(v, want_min);
    rd_kafka_conf_destroy(conf);
}

static void test_fetch_defaults_unless_configured(void **state)
{
    (void)state;
    md_config_t cfg;
    md_error_t err = {0};
    md_config_init(&cfg);
    /* the prefetch holds a batch and a quarter (8000: 10000), at least 1000 */
    check_fetch(&cfg, NULL, NULL, "1048576", "10000");
    assert_int_equal(md_config_set(&cfg, "batch.max_commands", "100", &err), MD_OK);
    check_fetch(&cfg, NULL, NULL, "1048576", "1000");
    /* values the configuration sets are left to it */
    assert_int_equal(md_config_set(&cfg, "kafka.max.partition.fetch.bytes", "8388608", &err),
                     MD_OK);
    assert_int_equal(md_config_set(&cfg, "kafka.queued.min.messages", "50000", &err), MD_OK);
    check_fetch(&cfg, "8388608", "50000", "8388608", "50000");
    md_config_release(&cfg);
}

/* The fetcher stops at queued.min.messages (count) or queued.max.messages.kbytes
 * (bytes); before is the queue's peak while the batch was taken (the consumer
 * bounds it from above), after its length once taken. */
static void test_wake_when_the_queue_was_full(void **state)
{
    (void)state;
    const size_t qmin = 10000, qbytes = 16384 * 1024;
    /* the queue had reached the bound and the batch took it below: wake */
    assert_true(md_fetch_wake_needed(10000, 2000, 8000, 1200000, qmin, qbytes));
    assert_true(md_fetch_wake_needed(25000, 9999, 8000, 1200000, qmin, qbytes));
    /* below the bound before: the fetcher never stopped (a light load) */
    assert_false(md_fetch_wake_needed(9999, 0, 8000, 1500000, qmin, qbytes));
    assert_false(md_fetch_wake_needed(50, 0, 50, 7500, qmin, qbytes));
    /* at the bound after: it would stop again at once; the next batch wakes */
    assert_false(md_fetch_wake_needed(30000, 22000, 8000, 1200000, qmin, qbytes));
    assert_false(md_fetch_wake_needed(18000, 10000, 8000, 1200000, qmin, qbytes));
    /* big messages (16 KiB): the bytes bound comes first, at 1024 of them; estimated
     * from the batch's average, the queue had three quarters of it or more and is
     * below it now */
    assert_true(md_fetch_wake_needed(1024, 824, 200, 200 * 16384, qmin, qbytes));
    assert_true(md_fetch_wake_needed(768, 568, 200, 200 * 16384, qmin, qbytes));
    assert_false(md_fetch_wake_needed(767, 567, 200, 200 * 16384, qmin, qbytes));
    assert_false(md_fetch_wake_needed(1300, 1100, 200, 200 * 16384, qmin, qbytes));
    assert_false(md_fetch_wake_needed(1224, 1024, 200, 200 * 16384, qmin, qbytes)); /* at it */
    /* an empty batch: the queue did not shrink */
    assert_false(md_fetch_wake_needed(20000, 0, 0, 0, qmin, qbytes));
}

/* The waker's thread starts, takes pokes and ends when freed, with a poke
 * pending or not; on a client that is not a consumer it has no assignment, so
 * its wakes ask nothing and count nothing. (Its requests to a real broker, and
 * its stop while one waits for a broker that hangs, are in
 * tests/integration/test_backlog_drain.sh, parts a and c.) */
static void test_waker_starts_takes_pokes_and_ends(void **state)
{
    (void)state;
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    assert_int_equal(
        rd_kafka_conf_set(conf, "bootstrap.servers", "127.0.0.1:1", errstr, sizeof errstr),
        RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    assert_non_null(rk);
    uint64_t before = atomic_load(&md_metrics.fetch_wakeups);
    for (int pending = 0; pending < 2; pending++) {
        md_fetch_waker_t *w = md_fetch_waker_new(rk, "no-such-topic");
        assert_non_null(w);
        for (int i = 0; i < 100; i++)
            md_fetch_waker_poke(w);
        if (!pending)
            usleep(50000); /* the pokes served, the thread waiting again */
        assert_true(md_fetch_waker_free(w, 5000));
    }
    md_fetch_waker_poke(NULL); /* no waker: nothing */
    md_fetch_waker_stop(NULL);
    assert_true(md_fetch_waker_free(NULL, 0));
    assert_int_equal(atomic_load(&md_metrics.fetch_wakeups), before);
    rd_kafka_destroy(rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_backoff_is_capped_at_5s),
        cmocka_unit_test(test_fenced_only_by_another_store_ahead),
        cmocka_unit_test(test_fetch_defaults_unless_configured),
        cmocka_unit_test(test_wake_when_the_queue_was_full),
        cmocka_unit_test(test_waker_starts_takes_pokes_and_ends),
    };
    return cmocka_run_group_tests_name("consumer", tests, NULL, NULL);
}
