/*
 * test_projector.c - the projector's head start (md_projector.h): the writer
 * hands a small batch's events over before its commit; the projector applies
 * them and commits only once the log holds the same events. Checked here: every
 * small batch goes that way and the projections match a rebuild; a batch whose
 * transaction failed is never committed, whether the log is still short of it
 * or holds other events at its seqs by the time the projector looks; a batch
 * of more than 1,024 events is applied from the log as before.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "md_base.h"
#include "md_metrics.h"
#include "md_projector.h"
#include "proj_fixture.h"

#define MAX_LINES 128
#define WAIT_MS 10000

typedef struct pt {
    proj_fx_t *f;
    md_projector_t *pr;
    char *lines[MAX_LINES]; /* the demo day's commands */
    size_t n;
    int fail_batches;  /* the engine's batch hook fails this many batches */
    uint64_t gate_max; /* the furthest the gate opened (the sink's below) */
} pt_t;

/* The engine's batch hook: the last thing in the batch's transaction, after
 * the head start's end hook handed the batch over. */
static md_err_t failing_hook(md_txn_t *t, void *ctx, md_error_t *err)
{
    pt_t *m = ctx;
    (void)t;
    if (m->fail_batches > 0) {
        m->fail_batches--;
        return md_error_set(err, MD_ESTORE, "test: the batch's transaction fails");
    }
    return MD_OK;
}

/* The projections in their own environment, a projector with the head start
 * wired as the daemon wires it. */
static void start(pt_t *m)
{
    md_store_opts_t so = {.nosync = true};
    md_error_t err = {0};
    assert_int_equal(md_proj_open_dir(m->f->store, m->f->dir, &so, &m->f->proj, &err), MD_OK);
    assert_int_equal(md_projector_start(m->f->proj, NULL, &m->pr, &err), MD_OK);
    assert_int_equal(md_engine_add_batch_hooks(m->f->eng, md_projector_stage_begin,
                                               md_projector_stage_end, m->pr, &err),
                     MD_OK);
    assert_int_equal(md_engine_add_hook(m->f->eng, md_projector_stage_event, m->pr, &err), MD_OK);
    md_engine_set_commit_hook(m->f->eng, md_projector_kick, m->pr);
    md_engine_set_batch_hook(m->f->eng, failing_hook, m);
}

/* The gate's sink (called under the projector's lock: it only records). */
static void gate_sink(uint64_t below, void *ctx)
{
    pt_t *m = ctx;
    if (below > m->gate_max)
        m->gate_max = below;
}

/* The log's next outbox id. */
static uint64_t outbox_next(pt_t *m)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t next = 0;
    assert_int_equal(md_store_read(m->f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_outbox_next(t, &next, &err), MD_OK);
    md_txn_end(t);
    return next;
}

/* An engine whose results go to the outbox (a topic named), as the daemon's. */
static void results_engine(pt_t *m)
{
    md_engine_opts_t eo = {.clock = MD_CLOCK_COMMAND, .results_topic = "results"};
    md_error_t err = {0};
    md_engine_free(m->f->eng);
    m->f->eng = NULL;
    assert_int_equal(md_engine_new(m->f->store, &eo, &m->f->eng, &err), MD_OK);
}

static int pt_setup(void **state)
{
    pt_t *m = md_calloc(1, sizeof *m);
    m->f = proj_fx_new(false);
    m->n = proj_fx_demo_lines(m->lines, MAX_LINES);
    assert_true(m->n >= 40);
    *state = m;
    return 0;
}

static int pt_teardown(void **state)
{
    pt_t *m = *state;
    md_projector_free(m->pr);
    proj_fx_free(m->f);
    for (size_t i = 0; i < m->n; i++)
        free(m->lines[i]);
    free(m);
    unsetenv("MARKETD_TEST_PROJECTOR_DELAY_MS");
    return 0;
}

static uint64_t staged(void)
{
    return atomic_load(&md_metrics.proj_staged);
}

/* Runs lines [from, from + n) as one batch; returns md_engine_process's code. */
static md_err_t run(pt_t *m, size_t from, size_t n)
{
    assert_true(from + n <= m->n);
    return proj_fx_run(m->f, (const char *const *)m->lines + from, n);
}

/* The projections reach the log's head and match a rebuild of it. */
static void assert_caught_up(pt_t *m)
{
    md_error_t err = {0};
    uint64_t head = proj_fx_head(m->f);
    assert_int_equal(md_projector_wait(m->pr, head, WAIT_MS, &err), MD_OK);
    assert_int_equal(md_projector_seq(m->pr), head);
    assert_int_equal(proj_fx_verify(m->f, NULL), MD_OK);
}

/* Starts the projector and runs lines [0, n) as one batch, caught up; returns
 * the head start's count then. */
static uint64_t start_after(pt_t *m, size_t n)
{
    start(m);
    assert_int_equal(run(m, 0, n), MD_OK);
    assert_caught_up(m);
    return staged();
}

/* Every small batch is applied before its commit's end and committed after it. */
static void test_small_batches_go_first(void **state)
{
    pt_t *m = *state;
    md_error_t err = {0};
    start(m);
    uint64_t before = staged();
    size_t batches = 0;
    for (size_t at = 0; at + 8 <= m->n; at += 8, batches++) {
        assert_int_equal(run(m, at, 8), MD_OK);
        assert_int_equal(md_projector_wait(m->pr, proj_fx_head(m->f), WAIT_MS, &err), MD_OK);
    }
    assert_int_equal(staged() - before, batches);
    assert_caught_up(m);
}

/* A batch whose transaction failed: the projector looks while the log is short
 * of it, and gives up once the writer has begun its next transaction. */
static void test_failed_batch_dropped(void **state)
{
    pt_t *m = *state;
    uint64_t before = start_after(m, 10);
    m->fail_batches = 1;
    assert_int_not_equal(run(m, 10, 10), MD_OK);
    assert_int_equal(run(m, 20, 20), MD_OK); /* other commands, at the same seqs */
    assert_caught_up(m);
    assert_int_equal(staged() - before, 1); /* the second batch only */
}

/* A RegisterMember command for member m<i>, named @p name (one event). */
static char *member_line(int i, const char *name)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"command_id\":\"reg-%04d-%s\",\"type\":\"RegisterMember\",\"actor\":\"m%04d\","
             "\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{\"member_id\":\"m%04d\","
             "\"kind\":\"individual\",\"name\":\"%s\",\"identity_hash\":"
             "\"%064d\",\"email\":\"m%04d@example.com\"}}",
             i, name, i, i, name, i, i);
    return md_strdup(buf);
}

/* A batch whose transaction failed: by the time the projector looks (it waits
 * 300 ms first), the log holds another batch at the same seqs, as many events
 * with other content; the hash at the last seq differs, so nothing is
 * committed, and the other batch goes first instead. */
static void test_other_events_at_its_seqs(void **state)
{
    pt_t *m = *state;
    char *ghost = member_line(1, "Ghost"), *real = member_line(1, "Real");
    setenv("MARKETD_TEST_PROJECTOR_DELAY_MS", "300", 1);
    uint64_t before = start_after(m, 10), head = proj_fx_head(m->f);
    m->fail_batches = 1;
    assert_int_not_equal(proj_fx_run(m->f, (const char *const *)&ghost, 1), MD_OK);
    assert_int_equal(proj_fx_run(m->f, (const char *const *)&real, 1), MD_OK);
    assert_int_equal(proj_fx_head(m->f), head + 1); /* one event each, at the same seq */
    assert_caught_up(m);
    assert_int_equal(staged() - before, 1);
    free(ghost);
    free(real);
}

/* A batch whose transaction failed: by the time the projector looks, the log
 * went past its last seq with another batch's events. */
static void test_log_went_past(void **state)
{
    pt_t *m = *state;
    setenv("MARKETD_TEST_PROJECTOR_DELAY_MS", "300", 1);
    uint64_t before = start_after(m, 10);
    m->fail_batches = 1;
    assert_int_not_equal(run(m, 10, 3), MD_OK);
    assert_int_equal(run(m, 13, 30), MD_OK); /* more events than the failed batch */
    assert_caught_up(m);
    assert_int_equal(staged() - before, 1);
}

/* A batch whose transaction failed had results without events (duplicates);
 * its retry, without them, commits the same events with fewer outbox
 * entries. The projector, looking after the retry's commit (300 ms late),
 * commits the first batch's events (the same ones), and the gate opens to the
 * retry's next outbox id, not the failed batch's (it may never open past an
 * id the log has not used). */
static void test_gate_of_a_retried_batch(void **state)
{
    pt_t *m = *state;
    results_engine(m);
    setenv("MARKETD_TEST_PROJECTOR_DELAY_MS", "300", 1);
    uint64_t before = start_after(m, 10);
    md_projector_set_sink(m->pr, gate_sink, m);
    const char *first[] = {m->lines[10], m->lines[0], m->lines[1], m->lines[2]};
    m->fail_batches = 1;
    assert_int_not_equal(proj_fx_run(m->f, first, 4), MD_OK);
    assert_int_equal(proj_fx_run(m->f, first, 1), MD_OK);
    assert_caught_up(m);
    assert_int_equal(staged() - before, 1);
    md_projector_set_sink(m->pr, NULL, NULL);
    /* Nothing was committed after the retry: the gate may not pass its ids. */
    assert_true(m->gate_max > 0);
    assert_true(m->gate_max <= outbox_next(m));
}

/* More than 1,024 events: not handed over; the log is applied after the commit. */
static void test_large_batch_from_the_log(void **state)
{
    pt_t *m = *state;
    enum { N = 1100 };
    char **lines = md_calloc(N, sizeof *lines);
    uint64_t before = start_after(m, 1), head = proj_fx_head(m->f); /* the agreement */
    for (int i = 0; i < N; i++)
        lines[i] = member_line(i, "Member");
    assert_int_equal(proj_fx_run(m->f, (const char *const *)lines, N), MD_OK);
    assert_true(proj_fx_head(m->f) - head > 1024);
    assert_caught_up(m);
    assert_int_equal(staged(), before);
    for (int i = 0; i < N; i++)
        free(lines[i]);
    free(lines);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_small_batches_go_first, pt_setup, pt_teardown),
        cmocka_unit_test_setup_teardown(test_failed_batch_dropped, pt_setup, pt_teardown),
        cmocka_unit_test_setup_teardown(test_other_events_at_its_seqs, pt_setup, pt_teardown),
        cmocka_unit_test_setup_teardown(test_log_went_past, pt_setup, pt_teardown),
        cmocka_unit_test_setup_teardown(test_gate_of_a_retried_batch, pt_setup, pt_teardown),
        cmocka_unit_test_setup_teardown(test_large_batch_from_the_log, pt_setup, pt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
