/*
 * test_clock.c - the deterministic clocks: clock = log takes the Kafka
 * message timestamp, monotone; the "previous now" of clock = log and
 * clock = command survives a restart (it is stored in the batch
 * transaction), and the chain does not depend on how messages were batched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_engine.h"
#include "md_offline.h"

#define AGREE                                                                                      \
    "{\"command_id\":\"a1\",\"type\":\"PublishAgreement\",\"actor\":\"op\","                       \
    "\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{\"version\":1,\"title\":\"A\","              \
    "\"digest\":\""                                                                                \
    "0000000000000000000000000000000000000000000000000000000000000000"                             \
    "\"}}"
#define DEP(id, ref)                                                                               \
    "{\"command_id\":\"" id "\",\"type\":\"DepositFunds\",\"actor\":\"op\","                       \
    "\"issued_at\":\"2026-11-26T09:02:00Z\",\"data\":{\"amount\":5,\"payment_ref\":\"" ref "\"}}"

typedef struct msg {
    const char *text;
    int64_t ts;
} msg_t;

static const msg_t msgs[] = {
    {AGREE, 1000},      {DEP("d1", "p1"), 3000}, {DEP("d2", "p2"), 2000},
    {"not json", 4000}, {DEP("d3", "p3"), 0},    {DEP("d4", "p4"), 5000},
};
#define NMSGS (sizeof msgs / sizeof msgs[0])

static md_store_t *open_store(const char *dir)
{
    md_store_t *s = NULL;
    md_store_opts_t so = {.nosync = true};
    assert_int_equal(md_store_open(dir, &so, &s, NULL), MD_OK);
    return s;
}

/* Feeds msgs[from, to) as one batch (partition 0, offset = index) to a new
 * engine on @p dir, as a restarted daemon would. */
static void feed(const char *dir, md_clock_t clock, size_t from, size_t to)
{
    md_store_t *s = open_store(dir);
    md_engine_t *e = NULL;
    md_engine_opts_t o = {.operator_id = "op", .clock = clock, .commands_topic = "c"};
    md_input_t in[NMSGS];
    assert_int_equal(md_engine_new(s, &o, &e, NULL), MD_OK);
    for (size_t i = from; i < to; i++)
        in[i - from] = (md_input_t){.bytes = msgs[i].text,
                                    .len = strlen(msgs[i].text),
                                    .partition = 0,
                                    .offset = (int64_t)i,
                                    .timestamp_ms = msgs[i].ts};
    /* The wall clock given must not matter with clock = log or command. */
    assert_int_equal(md_engine_process(e, in, to - from, 999999999 + (int64_t)from, NULL, NULL),
                     MD_OK);
    md_engine_free(e);
    md_store_free(s);
}

typedef struct seen {
    int64_t at[32];
    size_t n;
} seen_t;

static md_err_t collect(const md_event_t *ev, const void *body, size_t len, void *ctx,
                        md_error_t *err)
{
    (void)body, (void)len, (void)err;
    seen_t *s = ctx;
    if (s->n < 32)
        s->at[s->n++] = ev->recorded_at;
    return MD_OK;
}

/* The recorded_at of every event and the chain head of the store in @p dir. */
static void read_store(const char *dir, seen_t *seen, unsigned char head[MD_HASH_LEN])
{
    md_store_t *s = open_store(dir);
    md_txn_t *t = NULL;
    uint64_t seq;
    memset(seen, 0, sizeof *seen);
    assert_int_equal(md_store_read(s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_scan(t, 1, 0, collect, seen, NULL), MD_OK);
    assert_int_equal(md_txn_head(t, &seq, head, NULL), MD_OK);
    md_txn_end(t);
    md_store_free(s);
}

static void test_log_clock_is_the_monotone_log_time(void **state)
{
    (void)state;
    char *dir = md_test_tmpdir();
    seen_t seen;
    unsigned char head[MD_HASH_LEN];
    feed(dir, MD_CLOCK_LOG, 0, NMSGS);
    read_store(dir, &seen, head);
    /* bootstrap (2 events) and the agreement at 1000; d1 at 3000; d2 (log time
     * 2000) stays at 3000; the malformed message rejected at 4000; d3 (no log
     * time) keeps 4000; d4 at 5000. */
    const int64_t want[] = {1000, 1000, 1000, 3000, 3000, 4000, 4000, 5000};
    assert_int_equal(seen.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < seen.n; i++)
        assert_int_equal(seen.at[i], want[i]);
    md_test_rmdir(dir);
}

/* A restarted engine continues from the stored now, not from zero. */
static void test_previous_now_survives_a_restart(void **state)
{
    (void)state;
    md_clock_t clocks[] = {MD_CLOCK_LOG, MD_CLOCK_COMMAND};
    for (size_t c = 0; c < 2; c++) {
        char *one = md_test_tmpdir(), *split = md_test_tmpdir();
        seen_t a, b;
        unsigned char ha[MD_HASH_LEN], hb[MD_HASH_LEN];
        feed(one, clocks[c], 0, NMSGS);
        for (size_t i = 0; i < NMSGS; i++) /* one message per batch and per restart */
            feed(split, clocks[c], i, i + 1);
        read_store(one, &a, ha);
        read_store(split, &b, hb);
        assert_int_equal(a.n, b.n);
        for (size_t i = 0; i < a.n; i++)
            assert_int_equal(a.at[i], b.at[i]);
        assert_memory_equal(ha, hb, MD_HASH_LEN);
        md_test_rmdir(one);
        md_test_rmdir(split);
    }
}

/* A file has no log timestamps: offline mode refuses clock = log. */
static void test_offline_refuses_the_log_clock(void **state)
{
    (void)state;
    char *dir = md_test_tmpdir();
    md_error_t err = {0};
    md_offline_opts_t o = {
        .input = "/dev/null", .data_dir = dir, .quiet = true, .engine = {.clock = MD_CLOCK_LOG}};
    assert_int_equal(md_offline_run(&o, &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "clock = log"));
    md_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_clock_is_the_monotone_log_time),
        cmocka_unit_test(test_previous_now_survives_a_restart),
        cmocka_unit_test(test_offline_refuses_the_log_clock),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
