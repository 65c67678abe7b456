/*
 * test_hostile_fuzz.c - replays the fuzz seeds (tests/fuzz/corpus/<target>/)
 * and every input a fuzzer ever broke us with (tests/fuzz/regressions/<target>/)
 * through the fuzz targets' own invariant checks, without libFuzzer, so that
 * `make unit`, `make asan` and `make valgrind` keep them fixed. The targets are
 * compiled in from tests/fuzz/targets.c (one source for both builds).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fuzz/targets.c"

typedef int (*target_fn)(const uint8_t *data, size_t size);

/* Runs @p fn over every file of tests/fuzz/<kind>/<name>/; returns how many. */
static int replay_dir(const char *kind, const char *name, target_fn fn)
{
    char dir[256], path[600];
    int n = 0;
    snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", kind, name);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        unsigned char *p;
        size_t len;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        read_file(path, &p, &len);
        fn(p, len);
        free(p);
        n++;
    }
    closedir(d);
    return n;
}

static void replay(const char *name, target_fn fn)
{
    int seeds = replay_dir("corpus", name, fn);
    int regressions = replay_dir("regressions", name, fn);
    assert_true(seeds > 0);
    printf("    %s: %d seeds, %d regressions replayed\n", name, seeds, regressions);
}

static void test_hostile_fuzz_json(void **state)
{
    (void)state;
    replay("json", md_fuzz_json);
}

static void test_hostile_fuzz_msgpack(void **state)
{
    (void)state;
    replay("msgpack", md_fuzz_msgpack);
}

static void test_hostile_fuzz_event(void **state)
{
    (void)state;
    replay("event", md_fuzz_event);
}

static void test_hostile_fuzz_record(void **state)
{
    (void)state;
    replay("record", md_fuzz_record);
}

static void test_hostile_fuzz_engine(void **state)
{
    (void)state;
    replay("engine", md_fuzz_engine);
    md_fuzz_cleanup();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_fuzz_json),    cmocka_unit_test(test_hostile_fuzz_record),
        cmocka_unit_test(test_hostile_fuzz_msgpack), cmocka_unit_test(test_hostile_fuzz_event),
        cmocka_unit_test(test_hostile_fuzz_engine),
    };
    return cmocka_run_group_tests_name("hostile_fuzz", tests, NULL, NULL);
}
