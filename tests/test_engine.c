/*
 * test_engine.c - the engine over a real store: results, idempotency,
 * retryable rejections, bootstrap, offsets, outbox, dead letters, map growth,
 * determinism.
 */
#include <jansson.h>
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

#define OP "op-1"
#define AGREE                                                                                      \
    "{\"command_id\":\"a1\",\"type\":\"PublishAgreement\",\"actor\":\"" OP "\","                   \
    "\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{\"version\":1,\"title\":\"A\","              \
    "\"digest\":\""                                                                                \
    "0000000000000000000000000000000000000000000000000000000000000000"                             \
    "\"}}"
#define REG(id, who, at)                                                                           \
    "{\"command_id\":\"" id "\",\"type\":\"RegisterMember\",\"actor\":\"" who                      \
    "\",\"issued_at\":\"" at "\",\"data\":{\"member_id\":\"" who "\",\"kind\":\"individual\","     \
    "\"name\":\"N\",\"identity_hash\":\""                                                          \
    "1111111111111111111111111111111111111111111111111111111111111111\"}}"
#define DEP(id, who, amt, ref, at)                                                                 \
    "{\"command_id\":\"" id "\",\"type\":\"DepositFunds\",\"actor\":\"" who                        \
    "\",\"issued_at\":\"" at "\",\"data\":{\"amount\":" amt ",\"payment_ref\":\"" ref "\"}}"

typedef struct fx {
    char *dir;
    md_store_t *s;
    md_engine_t *e;
    md_buf_t out;
} fx_t;

static md_engine_opts_t kafka_opts(void)
{
    md_engine_opts_t o = {.operator_id = OP,
                          .clock = MD_CLOCK_COMMAND,
                          .results_topic = "r",
                          .events_topic = "e",
                          .commands_topic = "c",
                          .deadletter_topic = "dl"};
    return o;
}

static int open_fx(fx_t *f, size_t map_size, const md_engine_opts_t *o)
{
    md_store_opts_t so = {.map_size = map_size, .nosync = true};
    if (md_store_open(f->dir, &so, &f->s, NULL) != MD_OK)
        return -1;
    return md_engine_new(f->s, o, &f->e, NULL) == MD_OK ? 0 : -1;
}

static int setup(void **state)
{
    fx_t *f = md_calloc(1, sizeof *f);
    md_engine_opts_t o = kafka_opts();
    f->dir = md_test_tmpdir();
    md_buf_init(&f->out);
    *state = f;
    return open_fx(f, 0, &o);
}

static int teardown(void **state)
{
    fx_t *f = *state;
    md_engine_free(f->e);
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    md_buf_release(&f->out);
    free(f);
    return 0;
}

/* Runs lines (NULL-terminated) as one batch from partition 0 at offsets from 100;
 * returns the result lines parsed into a JSON array (caller decrefs). */
static json_t *run(fx_t *f, const char *const *lines)
{
    md_input_t in[64];
    size_t n = 0;
    for (; lines[n]; n++)
        in[n] = (md_input_t){.bytes = lines[n],
                             .len = strlen(lines[n]),
                             .partition = 0,
                             .offset = 100 + (int64_t)n,
                             .key = "k",
                             .key_len = 1};
    md_buf_reset(&f->out);
    assert_int_equal(md_engine_process(f->e, in, n, 1795687200000, &f->out, NULL), MD_OK);
    json_t *arr = json_array();
    char *text = md_strndup((const char *)f->out.p, f->out.len);
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        json_array_append_new(arr, json_loads(l, 0, NULL));
    free(text);
    assert_int_equal(json_array_size(arr), n);
    return arr;
}

static const char *status(json_t *arr, size_t i)
{
    return json_string_value(json_object_get(json_array_get(arr, i), "status"));
}

static const char *code(json_t *arr, size_t i)
{
    return json_string_value(
        json_object_get(json_object_get(json_array_get(arr, i), "error"), "code"));
}

static void test_engine_results_and_duplicates(void **state)
{
    fx_t *f = *state;
    const char *b1[] = {AGREE, REG("r1", "bob", "2026-11-26T09:01:00Z"),
                        DEP("d1", "bob", "500", "p1", "2026-11-26T09:02:00Z"),
                        DEP("d1", "bob", "500", "p1", "2026-11-26T09:02:00Z"), NULL};
    json_t *r = run(f, b1);
    assert_string_equal(status(r, 0), "accepted");
    assert_string_equal(status(r, 2), "accepted");
    assert_string_equal(status(r, 3), "duplicate"); /* within the same batch */
    json_decref(r);
    const char *b2[] = {DEP("d1", "bob", "500", "p1", "2026-11-26T09:03:00Z"),
                        DEP("d2", "bob", "500", "p1", "2026-11-26T09:04:00Z"),
                        DEP("d2", "bob", "500", "p1", "2026-11-26T09:05:00Z"),
                        "{\"command_id\":\"bootstrap\",\"type\":\"Nothing\"}", NULL};
    r = run(f, b2);
    assert_string_equal(status(r, 0), "duplicate"); /* across batches */
    assert_string_equal(status(r, 1), "rejected");
    assert_string_equal(code(r, 1), "DUPLICATE_PAYMENT");
    assert_string_equal(status(r, 2), "duplicate");
    json_t *e = json_object_get(json_array_get(r, 2), "error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "DUPLICATE_PAYMENT");
    assert_string_equal(json_string_value(json_object_get(e, "clause")), "3.1.3");
    assert_string_equal(status(r, 3), "duplicate"); /* the bootstrap's id */
    json_decref(r);
    const md_engine_stats_t *st = md_engine_stats(f->e);
    assert_int_equal(st->duplicates, 4);
    assert_int_equal(st->commands, 8);
}

static void test_engine_bootstrap_once_with_first_batch(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    md_event_t ev;
    const char *b1[] = {AGREE, NULL};
    json_decref(run(f, b1));
    json_decref(run(f, b1));
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_event(t, 1, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.type, "MemberRegistered");
    assert_string_equal(ev.command_id, "bootstrap");
    assert_string_equal(ev.stream, "member:" OP);
    assert_true(ev.recorded_at == 1795683600000); /* the first command's issued_at */
    assert_int_equal(md_txn_event(t, 2, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.type, "OperatorGranted");
    assert_int_equal(md_txn_event(t, 3, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.type, "AgreementPublished");
    /* The second batch was a duplicate: it appended nothing. */
    assert_int_equal(md_txn_event(t, 4, &ev, NULL, NULL, NULL), MD_ENOTFOUND);
    md_txn_end(t);
}

static void test_engine_malformed_is_recorded_and_dead_lettered(void **state)
{
    fx_t *f = *state;
    const char *b[] = {"{\"command_id\": 5}", "not json", NULL};
    json_t *r = run(f, b);
    assert_true(json_is_null(json_object_get(json_array_get(r, 0), "command_id")));
    assert_string_equal(code(r, 0), "MALFORMED");
    assert_string_equal(code(r, 1), "MALFORMED");
    json_decref(r);
    md_txn_t *t = NULL;
    md_event_t ev;
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_event(t, 3, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.type, "CommandRejected");
    assert_false(ev.has_command_id);
    assert_false(ev.has_actor);
    const char *sha;
    size_t n;
    assert_int_equal(md_data_get_str(ev.data, ev.data_len, "sha256", &sha, &n), MD_OK);
    assert_int_equal(n, 64);
    md_txn_end(t);
}

typedef struct outbox_count {
    int results, events, dead;
    uint64_t event_seqs; /* sum of the events' references */
    bool dead_has_reason, events_are_refs;
} outbox_count_t;

static md_err_t count_outbox(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    outbox_count_t *c = ctx;
    if (strcmp(m->topic, "r") == 0)
        c->results++;
    else if (strcmp(m->topic, "e") == 0) {
        c->events_are_refs = (c->events == 0 || c->events_are_refs) && m->event_seq > 0 &&
                             m->value_len == 0 && m->key_len > 0;
        c->events++;
        c->event_seqs += m->event_seq;
    } else if (strcmp(m->topic, "dl") == 0) {
        c->dead++;
        c->dead_has_reason = m->headers_len > 7 && memcmp(m->headers, "reason", 7) == 0 &&
                             m->value_len == 8 && memcmp(m->value, "not json", 8) == 0;
    }
    return MD_OK;
}

static void test_engine_outbox_and_offsets(void **state)
{
    fx_t *f = *state;
    const char *b[] = {AGREE, "not json", REG("r1", "bob", "2026-11-26T09:01:00Z"), NULL};
    json_decref(run(f, b));
    md_txn_t *t = NULL;
    outbox_count_t c = {0};
    int64_t next;
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_outbox_scan(t, 0, 0, count_outbox, &c, NULL), MD_OK);
    assert_int_equal(c.results, 3);
    assert_int_equal(c.dead, 1);
    assert_true(c.dead_has_reason);
    /* bootstrap 2 + agreement 1 + malformed 1 + registration 1 (+ none implicit) */
    assert_int_equal(c.events, 5);
    assert_true(c.events_are_refs); /* rendered by the publisher, not copied */
    assert_int_equal(c.event_seqs, 1 + 2 + 3 + 4 + 5);
    assert_int_equal(md_txn_offset_get(t, "c", 0, &next, NULL), MD_OK);
    assert_true(next == 103);
    md_txn_end(t);
}

static void test_engine_map_growth_keeps_results(void **state)
{
    fx_t *f = *state;
    md_engine_opts_t o = kafka_opts();
    md_engine_free(f->e);
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    f->dir = md_test_tmpdir();
    assert_int_equal(open_fx(f, 32 * 1024, &o), 0);
    static char lines[40][400];
    const char *b[41];
    b[0] = AGREE;
    b[1] = REG("r1", "bob", "2026-11-26T09:01:00Z");
    for (int i = 2; i < 40; i++) {
        snprintf(lines[i], sizeof lines[i],
                 DEP("d%d", "bob", "7", "pay-%d", "2026-11-26T09:02:00Z"), i, i);
        b[i] = lines[i];
    }
    b[40] = NULL;
    json_t *r = run(f, b);
    for (int i = 0; i < 40; i++)
        assert_string_equal(status(r, (size_t)i), "accepted");
    json_decref(r);
}

/* ---- batch hooks: begin, the events, end, in the batch's transaction ------------------- */

typedef struct trace {
    char log[256];
    int fail_at; /* the event (1-based, in this trace) whose hook fails; 0: none */
    int events;
} trace_t;

static void trace_add(trace_t *tr, char c)
{
    size_t n = strlen(tr->log);
    if (n + 1 < sizeof tr->log)
        tr->log[n] = c, tr->log[n + 1] = '\0';
}

static md_err_t trace_begin(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)t, (void)err;
    trace_add(ctx, 'B');
    return MD_OK;
}

static md_err_t trace_end(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)t, (void)err;
    trace_add(ctx, 'E');
    return MD_OK;
}

static md_err_t trace_event(md_txn_t *t, const md_event_t *ev, void *ctx, md_error_t *err)
{
    trace_t *tr = ctx;
    (void)t, (void)ev;
    trace_add(tr, 'e');
    if (++tr->events == tr->fail_at)
        return md_error_set(err, MD_ESTORE, "trace: failing on purpose");
    return MD_OK;
}

/* The begin hook runs when each batch's transaction starts (the bootstrap's
 * too), the end hook after its events and before the commit; a batch that
 * fails runs no end hook, and its retry begins again. */
static void test_engine_batch_hooks_order(void **state)
{
    fx_t *f = *state;
    trace_t tr = {.fail_at = 0};
    md_input_t in[2] = {
        {.bytes = REG("r1", "ann", "2026-11-26T09:00:00Z"), .partition = -1},
        {.bytes = DEP("d1", "ann", "500", "p-1", "2026-11-26T09:01:00Z"), .partition = -1},
    };
    in[0].len = strlen(in[0].bytes), in[1].len = strlen(in[1].bytes);
    assert_int_equal(md_engine_add_hook(f->e, trace_event, &tr, NULL), MD_OK);
    assert_int_equal(md_engine_add_batch_hooks(f->e, trace_begin, trace_end, &tr, NULL), MD_OK);
    assert_int_equal(md_engine_bootstrap(f->e, 1795687200000, NULL), MD_OK);
    assert_true(tr.log[0] == 'B' && tr.log[strlen(tr.log) - 1] == 'E' && tr.events > 0);
    tr.log[0] = '\0', tr.events = 0;
    assert_int_equal(md_engine_process(f->e, in, 2, 0, NULL, NULL), MD_OK);
    assert_string_equal(tr.log, "BeeE");
    tr.log[0] = '\0', tr.events = 0, tr.fail_at = 1;
    in[0].bytes = REG("r2", "bob", "2026-11-26T09:02:00Z"), in[0].len = strlen(in[0].bytes);
    assert_int_equal(md_engine_process(f->e, in, 1, 0, NULL, NULL), MD_ESTORE);
    assert_string_equal(tr.log, "Be");
    tr.log[0] = '\0', tr.events = 0, tr.fail_at = 0;
    assert_int_equal(md_engine_process(f->e, in, 1, 0, NULL, NULL), MD_OK);
    assert_string_equal(tr.log, "BeE");
    /* NULL hooks are allowed; a ninth pair is refused. */
    for (int i = 1; i < 8; i++)
        assert_int_equal(md_engine_add_batch_hooks(f->e, NULL, NULL, NULL, NULL), MD_OK);
    assert_int_equal(md_engine_add_batch_hooks(f->e, NULL, NULL, NULL, NULL), MD_EINVAL);
}

/* ---- decoding ahead --------------------------------------------------------------------- */

/* A batch of @p n lines (registrations, deposits, a malformed and an oversized
 * line) run in one batch (decoded ahead on the helper thread) and in batches
 * of 7 (decoded inline) gives the same results, byte for byte. */
static void run_lines(const char *dir, char **lines, size_t n, size_t batch, md_buf_t *out)
{
    md_store_opts_t so = {.nosync = true};
    md_engine_opts_t o = {.operator_id = OP, .clock = MD_CLOCK_COMMAND, .max_message_bytes = 600};
    md_store_t *s = NULL;
    md_engine_t *e = NULL;
    md_input_t *in = md_calloc(n, sizeof *in);
    assert_int_equal(md_store_open(dir, &so, &s, NULL), MD_OK);
    assert_int_equal(md_engine_new(s, &o, &e, NULL), MD_OK);
    for (size_t i = 0; i < n; i++)
        in[i] = (md_input_t){.bytes = lines[i], .len = strlen(lines[i]), .partition = -1};
    for (size_t i = 0; i < n; i += batch)
        assert_int_equal(md_engine_process(e, in + i, n - i < batch ? n - i : batch, 0, out, NULL),
                         MD_OK);
    md_engine_free(e);
    md_store_free(s);
    free(in);
}

static void test_engine_decode_ahead_same_results(void **state)
{
    enum { N = 300 };
    char *lines[N], *da = md_test_tmpdir(), *db = md_test_tmpdir();
    md_buf_t a, b;
    (void)state;
    for (size_t i = 0; i < N; i++) {
        char line[1024];
        if (i == 77)
            snprintf(line, sizeof line, "{\"command_id\":\"x\",");
        else if (i == 150)
            snprintf(line, sizeof line, "{\"command_id\":\"big\",\"pad\":\"%0700d\"}", 0);
        else if (i % 3 == 0)
            snprintf(line, sizeof line,
                     "{\"command_id\":\"r%zu\",\"type\":\"RegisterMember\","
                     "\"actor\":\"m%zu\",\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{"
                     "\"member_id\":\"m%zu\",\"kind\":\"individual\",\"name\":\"N\","
                     "\"identity_hash\":\"%064zu\"}}",
                     i, i, i, i);
        else
            snprintf(line, sizeof line,
                     "{\"command_id\":\"d%zu\",\"type\":\"DepositFunds\","
                     "\"actor\":\"m%zu\",\"issued_at\":\"2026-11-26T09:01:00Z\",\"data\":{"
                     "\"amount\":%zu,\"payment_ref\":\"p%zu\"}}",
                     i, i - i % 3, 100 + i, i);
        lines[i] = md_strdup(line);
    }
    md_buf_init(&a);
    md_buf_init(&b);
    run_lines(da, lines, N, N, &a);
    run_lines(db, lines, N, 7, &b);
    assert_true(a.len > 0);
    assert_int_equal(a.len, b.len);
    assert_memory_equal(a.p, b.p, a.len);
    md_buf_append(&a, "", 1);
    assert_non_null(strstr((const char *)a.p, "exceeds the limit"));
    md_buf_release(&a);
    md_buf_release(&b);
    for (size_t i = 0; i < N; i++)
        free(lines[i]);
    md_test_rmdir(da);
    md_test_rmdir(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_engine_results_and_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_bootstrap_once_with_first_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_malformed_is_recorded_and_dead_lettered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_engine_outbox_and_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_map_growth_keeps_results, setup, teardown),
        cmocka_unit_test_setup_teardown(test_engine_batch_hooks_order, setup, teardown),
        cmocka_unit_test(test_engine_decode_ahead_same_results),
    };
    return cmocka_run_group_tests_name("engine", tests, NULL, NULL);
}
