/*
 * test_results.c - what a publisher matches a result by (issue 19, item 5):
 * a MALFORMED result carries the SHA-256 of the bytes and, from Kafka, the
 * partition and offset; results echo correlation_id; a content-type other
 * than JSON or msgpack is MALFORMED ("unsupported content-type"); a
 * duplicate's result carries the original result whole. Same input, same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "fixture.h"
#include "md_engine.h"
#include "md_store.h"

typedef struct fx {
    char *dir;
    md_store_t *store;
    md_engine_t *engine;
    md_buf_t out;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    md_error_t err = {0};
    f->dir = md_test_tmpdir();
    md_store_opts_t so = {.nosync = true};
    md_engine_opts_t eo = {.clock = MD_CLOCK_COMMAND, .commands_topic = "c"};
    assert_int_equal(md_store_open(f->dir, &so, &f->store, &err), MD_OK);
    assert_int_equal(md_engine_new(f->store, &eo, &f->engine, &err), MD_OK);
    md_buf_init(&f->out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    md_buf_release(&f->out);
    md_engine_destroy(f->engine);
    md_store_close(f->store);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Decides one input; returns its result line parsed. */
static json_t *decide(fx_t *f, md_input_t in)
{
    md_error_t err = {0};
    md_buf_reset(&f->out);
    assert_int_equal(md_engine_process(f->engine, &in, 1, 0, &f->out, &err), MD_OK);
    json_error_t je;
    json_t *j = json_loadb((const char *)f->out.p, f->out.len, 0, &je);
    assert_non_null(j);
    return j;
}

static md_input_t text(const char *s)
{
    return (md_input_t){.bytes = s, .len = strlen(s), .partition = -1};
}

static const char *str(json_t *j, const char *path1, const char *path2)
{
    json_t *v = json_object_get(j, path1);
    if (path2)
        v = json_object_get(v, path2);
    return json_string_value(v);
}

#define DEPOSIT(id, extra)                                                                         \
    "{\"command_id\":\"" id "\"," extra "\"type\":\"DepositFunds\",\"actor\":\"operator\","        \
    "\"issued_at\":\"2026-11-26T10:00:00Z\",\"data\":{\"amount\":5,\"payment_ref\":\"r\"}}"

static void test_results_malformed_carries_digest_and_position(void **state)
{
    fx_t *f = *state;
    const char *bad = "{\"command_id\":";
    unsigned char sha[32];
    unsigned n = 0;
    char hex[65];
    assert_int_equal(EVP_Digest(bad, strlen(bad), sha, &n, EVP_sha256(), NULL), 1);
    md_hex(sha, 32, hex);
    md_input_t in = text(bad);
    in.partition = 2;
    in.offset = 41;
    json_t *j = decide(f, in);
    assert_string_equal(str(j, "error", "code"), "MALFORMED");
    assert_string_equal(str(j, "sha256", NULL), hex);
    assert_int_equal(json_integer_value(json_object_get(j, "partition")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 41);
    json_decref(j);
    j = decide(f, text(bad)); /* offline: no position */
    assert_string_equal(str(j, "sha256", NULL), hex);
    assert_null(json_object_get(j, "partition"));
    json_decref(j);
}

static void test_results_unsupported_content_type(void **state)
{
    fx_t *f = *state;
    md_input_t in = text(DEPOSIT("ct-1", ""));
    in.bad_content_type = "text/plain";
    in.bad_content_type_len = 10;
    json_t *j = decide(f, in);
    assert_string_equal(str(j, "error", "code"), "MALFORMED");
    assert_non_null(strstr(str(j, "error", "message"), "unsupported content-type 'text/plain'"));
    json_decref(j);
    j = decide(f, text(DEPOSIT("ct-1", ""))); /* the same bytes as JSON: decided */
    assert_string_equal(str(j, "command_id", NULL), "ct-1");
    assert_string_not_equal(str(j, "status", NULL), "duplicate");
    json_decref(j);
}

static void test_results_echo_correlation_id(void **state)
{
    fx_t *f = *state;
    json_t *j = decide(f, text(DEPOSIT("co-1", "\"correlation_id\":\"req-77\",")));
    assert_string_equal(str(j, "correlation_id", NULL), "req-77");
    json_decref(j);
}

static void test_results_duplicate_carries_original(void **state)
{
    fx_t *f = *state;
    json_t *first = decide(f, text(DEPOSIT("dup-1", "\"correlation_id\":\"a\",")));
    char *orig = json_dumps(first, JSON_COMPACT);
    json_t *again = decide(f, text(DEPOSIT("dup-1", "")));
    assert_string_equal(str(again, "status", NULL), "duplicate");
    char *carried = json_dumps(json_object_get(again, "original"), JSON_COMPACT);
    assert_non_null(carried);
    assert_string_equal(carried, orig);
    assert_non_null(json_object_get(json_object_get(again, "original"), "events")
                        ? json_object_get(json_object_get(again, "original"), "events")
                        : json_object_get(json_object_get(again, "original"), "error"));
    free(orig);
    free(carried);
    json_decref(first);
    json_decref(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_malformed_carries_digest_and_position, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_results_unsupported_content_type, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_echo_correlation_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_duplicate_carries_original, setup, teardown),
    };
    return cmocka_run_group_tests_name("results", tests, NULL, NULL);
}
