/*
 * test_consumer.c - the consumer's pure rules: the retry back-off and the
 * fencing decision between stores of one consumer group (the broker side is
 * in tests/integration/test_store_guard.sh).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <librdkafka/rdkafka.h>

#include "md_consumer.h"

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
 * max.partition.fetch.bytes is @p preset (NULL: unset); checks both sizes after. */
static void check_fetch(const md_config_t *cfg, const char *preset, const char *want_partition)
{
    md_error_t err = {0};
    char v[64];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (preset)
        assert_int_equal(rd_kafka_conf_set(conf, "max.partition.fetch.bytes", preset, v, sizeof v),
                         RD_KAFKA_CONF_OK);
    assert_true(md_consumer_fetch_defaults(cfg, conf, &err));
    conf_value(conf, "max.partition.fetch.bytes", v, sizeof v);
    assert_string_equal(v, want_partition);
    conf_value(conf, "fetch.max.bytes", v, sizeof v);
    assert_string_equal(v, "16777216");
    rd_kafka_conf_destroy(conf);
}

static void test_fetch_defaults_unless_configured(void **state)
{
    (void)state;
    md_config_t cfg;
    md_error_t err = {0};
    md_config_init(&cfg);
    check_fetch(&cfg, NULL, "8388608");
    /* a value the configuration sets is left to it */
    assert_int_equal(md_config_set(&cfg, "kafka.max.partition.fetch.bytes", "1048576", &err),
                     MD_OK);
    check_fetch(&cfg, "1048576", "1048576");
    md_config_release(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retry_backoff_is_capped_at_5s),
        cmocka_unit_test(test_fenced_only_by_another_store_ahead),
        cmocka_unit_test(test_fetch_defaults_unless_configured),
    };
    return cmocka_run_group_tests_name("consumer", tests, NULL, NULL);
}
