/*
 * test_outbox.c - what keeps one poison message from stopping publication
 * (issue 19): a dead letter never exceeds MD_DEADLETTER_MAX_BYTES (the body
 * is dropped and the headers say so), refused entries are parked, listed,
 * counted and queued again, and /readyz fails while the outbox is stalled.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_engine.h"
#include "md_metrics.h"
#include "md_store.h"

typedef struct fx {
    char *dir;
    md_store_t *store;
    md_engine_t *engine;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    md_error_t err = {0};
    f->dir = md_test_tmpdir();
    md_store_opts_t so = {.nosync = true};
    md_engine_opts_t eo = {.clock = MD_CLOCK_COMMAND,
                           .results_topic = "r",
                           .commands_topic = "c",
                           .deadletter_topic = "dl"};
    assert_int_equal(md_store_open(f->dir, &so, &f->store, &err), MD_OK);
    assert_int_equal(md_engine_new(f->store, &eo, &f->engine, &err), MD_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    md_engine_destroy(f->engine);
    md_store_close(f->store);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* The value of header @p name among name '\0' value '\0' pairs, or NULL. */
static const char *header(const md_outbox_msg_t *m, const char *name)
{
    const char *s = m->headers, *end = s + m->headers_len;
    while (s < end) {
        const char *v = s + strlen(s) + 1;
        if (strcmp(s, name) == 0)
            return v;
        s = v + strlen(v) + 1;
    }
    return NULL;
}

typedef struct seen {
    md_outbox_msg_t dl;
    char body[160], size[32], key[64];
    uint64_t n, dl_id;
} seen_t;

static md_err_t find_dead_letter(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    seen_t *s = ctx;
    s->n++;
    if (strcmp(m->topic, "dl") != 0)
        return MD_OK;
    s->dl = *m;
    s->dl_id = m->id;
    snprintf(s->body, sizeof s->body, "%s", header(m, "body") ? header(m, "body") : "");
    snprintf(s->size, sizeof s->size, "%s",
             header(m, "original_size") ? header(m, "original_size") : "");
    snprintf(s->key, sizeof s->key, "%s", header(m, "key") ? header(m, "key") : "");
    return MD_OK;
}

static seen_t decide_malformed(fx_t *f, size_t len)
{
    md_error_t err = {0};
    char *bytes = malloc(len);
    memset(bytes, 'x', len);
    memcpy(bytes, "{\"command_id\":", 14);
    md_input_t in = {.bytes = bytes, .len = len, .key = "k-1", .key_len = 3, .partition = 0};
    md_buf_t results;
    md_buf_init(&results);
    assert_int_equal(md_engine_process(f->engine, &in, 1, 0, &results, &err), MD_OK);
    md_buf_release(&results);
    free(bytes);
    seen_t s = {0};
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_outbox_scan(t, 1, 0, find_dead_letter, &s, &err), MD_OK);
    md_txn_end(t);
    assert_true(s.dl_id > 0);
    return s;
}

/* A body under the limit goes as it came; a larger one is dropped and said so. */
static void test_outbox_dead_letter_never_exceeds_the_limit(void **state)
{
    fx_t *f = *state;
    seen_t small = decide_malformed(f, 1000);
    assert_int_equal(small.dl.value_len, 1000);
    assert_string_equal(small.size, "1000");
    assert_string_equal(small.body, "");
    seen_t big = decide_malformed(f, 1020027);
    assert_int_equal(big.dl.value_len, 0);
    assert_int_equal(big.dl.key_len, 3);
    assert_string_equal(big.size, "1020027");
    assert_non_null(strstr(big.body, "dropped: 1020027 bytes"));
    assert_true(big.dl.key_len + big.dl.headers_len + big.dl.value_len <= MD_DEADLETTER_MAX_BYTES);
}

static md_err_t park_it(md_txn_t *t, void *ctx, md_error_t *err)
{
    return md_txn_outbox_park(t, *(uint64_t *)ctx, "dl: Broker: Message size too large", err);
}

static md_err_t count_parked(const md_outbox_msg_t *m, const char *reason, void *ctx,
                             md_error_t *err)
{
    (void)err;
    assert_string_equal(m->topic, "dl");
    assert_non_null(strstr(reason, "too large"));
    ++*(int *)ctx;
    return MD_OK;
}

static md_err_t unpark_all(md_txn_t *t, void *ctx, md_error_t *err)
{
    return md_txn_outbox_unpark(t, 0, ctx, err);
}

static void counts(fx_t *f, uint64_t *queued, uint64_t *parked)
{
    md_error_t err = {0};
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_outbox_counts(t, queued, parked, &err), MD_OK);
    md_txn_end(t);
}

/* Parked: out of the queue, listed with its reason; retried: at the end of the queue. */
static void test_outbox_park_list_retry(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    uint64_t queued, parked, moved = 0;
    seen_t s = decide_malformed(f, 500);
    counts(f, &queued, &parked);
    assert_int_equal(parked, 0);
    uint64_t before = queued;
    assert_int_equal(md_store_write(f->store, park_it, &s.dl_id, &err), MD_OK);
    assert_int_equal(md_store_write(f->store, park_it, &s.dl_id, &err), MD_OK); /* again: no-op */
    counts(f, &queued, &parked);
    assert_int_equal(parked, 1);
    assert_int_equal(queued, before - 1);
    int n = 0;
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_outbox_parked_scan(t, count_parked, &n, &err), MD_OK);
    md_txn_end(t);
    assert_int_equal(n, 1);
    assert_int_equal(md_store_write(f->store, unpark_all, &moved, &err), MD_OK);
    assert_int_equal(moved, 1);
    counts(f, &queued, &parked);
    assert_int_equal(parked, 0);
    assert_int_equal(queued, before);
    seen_t again = {0};
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_outbox_scan(t, s.dl_id + 1, 0, find_dead_letter, &again, &err), MD_OK);
    md_txn_end(t);
    assert_true(again.dl_id > s.dl_id); /* a new id, behind what was queued */
    assert_int_equal(again.dl.value_len, 500);
}

/* /readyz: not ready while entries wait and nothing was delivered for MD_OUTBOX_STALL_MS. */
static void test_outbox_stall_makes_not_ready(void **state)
{
    (void)state;
    atomic_store(&md_metrics.partitions_assigned, 1);
    atomic_store(&md_metrics.outbox_draining, true);
    atomic_store(&md_metrics.outbox_progress_ms, 100000);
    assert_true(md_metrics_ready_at(100000 + MD_OUTBOX_STALL_MS));
    assert_false(md_metrics_ready_at(100000 + MD_OUTBOX_STALL_MS + 1));
    atomic_store(&md_metrics.outbox_progress_ms, 100000 + MD_OUTBOX_STALL_MS);
    assert_true(md_metrics_ready_at(100000 + MD_OUTBOX_STALL_MS + 1));
    md_buf_t out;
    md_buf_init(&out);
    md_metrics_render(&out, 3, 2, 0, 0, 0);
    md_buf_append(&out, "", 1);
    assert_non_null(strstr((const char *)out.p, "\nmarketd_outbox_parked 2\n"));
    assert_non_null(strstr((const char *)out.p, "\nmarketd_outbox_depth 3\n"));
    md_buf_release(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_outbox_dead_letter_never_exceeds_the_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_outbox_park_list_retry, setup, teardown),
        cmocka_unit_test(test_outbox_stall_makes_not_ready),
    };
    return cmocka_run_group_tests_name("outbox", tests, NULL, NULL);
}
