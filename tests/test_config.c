/*
 * test_config.c - defaults, the documented example file, overrides, errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_config.h"

static void test_config_defaults(void **state)
{
    (void)state;
    md_config_t c;
    md_config_init(&c);
    assert_string_equal(c.topic_commands, "market.commands");
    assert_int_equal(c.batch_max_commands, 8000);
    assert_int_equal(c.offline_batch_max_commands, 12000);
    assert_int_equal(c.batch_max_wait_ms, 0);
    assert_int_equal(c.clock, MD_CLOCK_WALL);
    assert_string_equal(md_config_kafka(&c, "bootstrap.servers"), "127.0.0.1:9092");
    md_config_release(&c);
}

/* The shipped example must load and hold exactly the defaults. */
static void test_config_example_file_loads(void **state)
{
    (void)state;
    md_config_t c;
    md_error_t err = {0};
    md_config_init(&c);
    assert_int_equal(md_config_load(&c, "config/marketd.conf", &err), MD_OK);
    assert_string_equal(c.data_dir, "/var/lib/marketd");
    assert_int_equal(c.topic_partitions, 3);
    assert_false(c.store_nosync);
    assert_int_equal(c.store_map_mib, 256);
    assert_int_equal(c.batch_max_commands, 8000);
    assert_int_equal(c.batch_max_wait_ms, 0);
    assert_int_equal(c.offline_batch_max_commands, 12000);
    md_config_release(&c);
}

static void test_config_overrides_and_passthrough(void **state)
{
    (void)state;
    md_config_t c;
    md_config_init(&c);
    assert_int_equal(md_config_set(&c, "batch.max_commands", "250", NULL), MD_OK);
    assert_int_equal(md_config_set(&c, "kafka.security.protocol", "SSL", NULL), MD_OK);
    assert_int_equal(md_config_set(&c, "kafka.bootstrap.servers", "h:1", NULL), MD_OK);
    assert_int_equal(md_config_set(&c, "clock", "command", NULL), MD_OK);
    assert_int_equal(c.batch_max_commands, 250);
    assert_int_equal(c.offline_batch_max_commands, 12000); /* the daemon's key only */
    assert_int_equal(md_config_set(&c, "offline.batch_max_commands", "30000", NULL), MD_OK);
    assert_int_equal(c.offline_batch_max_commands, 30000);
    assert_int_equal(c.batch_max_commands, 250);
    assert_string_equal(md_config_kafka(&c, "security.protocol"), "SSL");
    assert_string_equal(md_config_kafka(&c, "bootstrap.servers"), "h:1");
    assert_int_equal(c.clock, MD_CLOCK_COMMAND);
    assert_int_equal(md_config_set(&c, "clock", "log", NULL), MD_OK);
    assert_int_equal(c.clock, MD_CLOCK_LOG);
    assert_int_equal(md_config_set(&c, "replica.id", "r2", NULL), MD_OK);
    assert_string_equal(c.replica_id, "r2");
    assert_string_equal(c.topic_heads, "market.heads");
    assert_int_equal(c.checkpoint_interval_events, 10000);
    md_config_release(&c);
}

static void test_config_errors_name_the_key(void **state)
{
    (void)state;
    md_config_t c;
    md_error_t err = {0};
    md_config_init(&c);
    assert_int_equal(md_config_set(&c, "batch.max_commands", "0", &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "batch.max_commands"));
    md_error_clear(&err);
    assert_int_equal(md_config_set(&c, "offline.batch_max_commands", "100001", &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "offline.batch_max_commands"));
    md_error_clear(&err);
    assert_int_equal(md_config_set(&c, "batch.max_comands", "5", &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "unknown key"));
    md_error_clear(&err);
    assert_int_equal(md_config_set(&c, "clock", "sundial", &err), MD_ECONFIG);
    md_error_clear(&err);
    assert_int_equal(md_config_set(&c, "store.nosync", "maybe", &err), MD_ECONFIG);
    md_error_clear(&err);
    assert_int_equal(c.proj_priority, MD_PRIORITY_IDLE); /* the default */
    assert_int_equal(c.proj_max_events, 0);              /* the mode's */
    assert_int_equal(md_config_set(&c, "projections.priority", "urgent", &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "projections.priority"));
    assert_int_equal(c.proj_priority, MD_PRIORITY_IDLE); /* unchanged */
    assert_int_equal(md_config_set(&c, "projections.priority", "low", &err), MD_OK);
    assert_int_equal(c.proj_priority, MD_PRIORITY_LOW);
    md_config_release(&c);
}

static void test_config_file_errors_name_the_line(void **state)
{
    (void)state;
    char *dir = md_test_tmpdir();
    char path[600];
    snprintf(path, sizeof path, "%s/bad.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("# ok\n\ngroup.id = g\nthis line has no equals sign\n", f);
    fclose(f);
    md_config_t c;
    md_error_t err = {0};
    md_config_init(&c);
    assert_int_equal(md_config_load(&c, path, &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, ":4:"));
    assert_string_equal(c.group_id, "g");
    md_config_release(&c);
    md_error_clear(&err);
    md_config_init(&c);
    assert_int_equal(md_config_load(&c, "/nonexistent.conf", &err), MD_EIO);
    md_config_release(&c);
    md_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_example_file_loads),
        cmocka_unit_test(test_config_overrides_and_passthrough),
        cmocka_unit_test(test_config_errors_name_the_key),
        cmocka_unit_test(test_config_file_errors_name_the_line),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
