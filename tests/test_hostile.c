/*
 * test_hostile.c - hostile input at the decoders and the engine: empty and
 * oversized messages, nesting 10,000 deep, invalid UTF-8, numbers beyond
 * 2^63 and NaN, duplicate keys, ids with control characters, amounts whose
 * product would overflow. Each must get a clear answer (MALFORMED, or a
 * rejection whose code and message name the problem), never a crash or a
 * failed batch; the chain must still verify afterwards. The binary-level
 * half (memory, a million command_ids, Kafka dead letters) is in
 * tests/unit/hostile_offline.sh and tests/integration/test_hostile_kafka.sh.
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
#include "md_command.h"
#include "md_engine.h"

#define ENV(id, type, data)                                                                        \
    "{\"command_id\":\"" id "\",\"type\":\"" type "\",\"actor\":\"bob\","                          \
    "\"issued_at\":\"2026-11-26T20:00:00Z\",\"data\":" data "}"

/* ---- decoder cases ------------------------------------------------------------ */

typedef struct hcase {
    const char *name;
    const char *bytes; /* NULL: built by the test */
    size_t len;        /* 0: strlen(bytes) */
    bool msgpack;
    md_decode_status_t want;
    const char *code; /* REJECTED: the code */
    const char *text; /* a substring of detail / reject_msg */
} hcase_t;

static const hcase_t cases[] = {
    {"empty json", "", 0, false, MD_DECODE_MALFORMED, NULL, "end of file"},
    {"empty msgpack", "", 0, true, MD_DECODE_MALFORMED, NULL, "not a complete msgpack value"},
    {"blank json", " \t ", 0, false, MD_DECODE_MALFORMED, NULL, "end of file"},
    {"not an object", "[1,2,3]", 0, false, MD_DECODE_MALFORMED, NULL, "not an object"},
    {"invalid utf-8 json",
     ENV("u-1", "DepositFunds", "{\"amount\":1,\"payment_ref\":\"\xff\xfe\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "unable to decode byte 0xff"},
    {"overlong utf-8 json", "{\"command_id\":\"\xc0\xaf\"}", 0, false, MD_DECODE_MALFORMED, NULL,
     "unable to decode byte 0xc0"},
    {"invalid utf-8 msgpack",
     "\x81\xaa"
     "command_id"
     "\xa2\xff\xfe",
     0, true, MD_DECODE_MALFORMED, NULL, "not valid UTF-8"},
    {"NUL in json string",
     ENV("n-1", "DepositFunds", "{\"amount\":1,\"payment_ref\":\"a\\u0000b\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "\\u0000"},
    {"2^63 json",
     ENV("b-1", "DepositFunds", "{\"amount\":9223372036854775808,\"payment_ref\":\"r\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "too big integer"},
    {"-2^63-1 json",
     ENV("b-2", "DepositFunds", "{\"amount\":-9223372036854775809,\"payment_ref\":\"r\"}"), 0,
     false, MD_DECODE_MALFORMED, NULL, "too big"},
    {"2^64 msgpack",
     "\x81\xaa"
     "command_id"
     "\xcf\xff\xff\xff\xff\xff\xff\xff\xff",
     0, true, MD_DECODE_MALFORMED, NULL, "beyond 64-bit"},
    {"1e400 json", ENV("b-3", "DepositFunds", "{\"amount\":1e400,\"payment_ref\":\"r\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "real number overflow"},
    {"NaN json", ENV("nan-1", "DepositFunds", "{\"amount\":NaN,\"payment_ref\":\"r\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "invalid token"},
    {"NaN msgpack",
     "\x81\xaa"
     "command_id"
     "\xcb\x7f\xf8\x00\x00\x00\x00\x00\x00",
     21, true, MD_DECODE_MALFORMED, NULL, "NaN"},
    {"duplicate key json", "{\"command_id\":\"d-1\",\"command_id\":\"d-2\"}", 0, false,
     MD_DECODE_MALFORMED, NULL, "duplicate object key"},
    {"duplicate key in data",
     ENV("d-3", "DepositFunds", "{\"amount\":1,\"amount\":2,\"payment_ref\":\"r\"}"), 0, false,
     MD_DECODE_MALFORMED, NULL, "duplicate object key"},
    {"duplicate key msgpack",
     "\x82\xaa"
     "command_id"
     "\xa1x\xaa"
     "command_id"
     "\xa1y",
     0, true, MD_DECODE_MALFORMED, NULL, "duplicate map key"},
    {"control char in actor",
     "{\"command_id\":\"c-1\",\"type\":\"DepositFunds\",\"actor\":\"bo\\u0001b\","
     "\"data\":{\"amount\":1,\"payment_ref\":\"r\"}}",
     0, false, MD_DECODE_REJECTED, "INVALID_FIELD", "actor: expected a member id"},
    {"newline in order_id",
     ENV("c-2", "PlaceOrder", "{\"order_id\":\"o\\n1\",\"product_id\":\"p-pgsql\"}"), 0, false,
     MD_DECODE_REJECTED, "INVALID_FIELD", "data.order_id: expected an id"},
    {"escape in command type",
     "{\"command_id\":\"c-3\",\"type\":\"Place\\u001bOrder\",\"actor\":\"bob\","
     "\"data\":{}}",
     0, false, MD_DECODE_REJECTED, "UNKNOWN_COMMAND", "unknown command type 'Place?Order'"},
    {"price 2^63-1",
     ENV("o-1", "ChangePrice", "{\"product_id\":\"p-pgsql\",\"price\":9223372036854775807}"), 0,
     false, MD_DECODE_REJECTED, "INVALID_FIELD",
     "data.price: expected an integer in 1..1000000000000"},
    {"quantity 10^18",
     ENV("o-2", "PlaceOrder",
         "{\"order_id\":\"o-9\",\"product_id\":\"p-pgsql\",\"quantity\":1000000000000000000}"),
     0, false, MD_DECODE_REJECTED, "INVALID_FIELD",
     "data.quantity: expected an integer in 1..1000"},
    {"negative amount",
     ENV("o-3", "DepositFunds", "{\"amount\":-9223372036854775808,\"payment_ref\":\"r\"}"), 0,
     false, MD_DECODE_REJECTED, "INVALID_FIELD", "data.amount: expected an integer"},
    {"float amount", ENV("o-4", "DepositFunds", "{\"amount\":1.0,\"payment_ref\":\"r\"}"), 0, false,
     MD_DECODE_REJECTED, "INVALID_FIELD", "data.amount: expected an integer"},
    /* 5 bytes claiming 2^32 elements made msgpack-c ask for 96 GiB (fuzz finding). */
    {"array32 claiming 2^32 items", "\xdd\xff\xff\xff\xff", 5, true, MD_DECODE_MALFORMED, NULL,
     "not a complete msgpack value"},
    {"map32 claiming 2^32 pairs", "\xdf\xff\xff\xff\xff\xc0", 6, true, MD_DECODE_MALFORMED, NULL,
     "not a complete msgpack value"},
    /* An empty string in msgpack was MALFORMED with no reason (fuzz finding). */
    {"empty string msgpack",
     "\x84\xaa"
     "command_id"
     "\xa3"
     "e-1"
     "\xa4"
     "type"
     "\xac"
     "DepositFunds"
     "\xa5"
     "actor"
     "\xa3"
     "bob"
     "\xa4"
     "data"
     "\x82\xa6"
     "amount"
     "\x01\xab"
     "payment_ref"
     "\xa0",
     0, true, MD_DECODE_REJECTED, "INVALID_FIELD", "data.payment_ref"},
    {"oversized command_id",
     "{\"command_id\":\""
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
     0, false, MD_DECODE_MALFORMED, NULL, "command_id: not a string of 1..128 bytes"},
};

static void check_case(const hcase_t *h, const char *bytes, size_t len, md_command_t *c)
{
    md_decode_opts_t o = {.require_issued_at = false};
    if (h->msgpack)
        md_command_decode_msgpack(bytes, len, &o, c);
    else
        md_command_decode_json(bytes, len, &o, c);
    const char *text = c->status == MD_DECODE_REJECTED ? c->reject_msg : c->detail;
    if (getenv("HOSTILE_SHOW"))
        printf("%-32s %d %-15s %s\n", h->name, c->status, c->reject_code ? c->reject_code : "-",
               text);
    else if (c->status != h->want || (h->code && strcmp(c->reject_code, h->code) != 0) ||
             strstr(text, h->text) == NULL)
        fail_msg("%s: status %d code %s message '%s' (want %d %s '%s')", h->name, c->status,
                 c->reject_code ? c->reject_code : "-", text, h->want, h->code ? h->code : "-",
                 h->text);
}

static void test_hostile_decoder_cases(void **state)
{
    (void)state;
    md_command_t *c = md_malloc(sizeof *c);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const hcase_t *h = &cases[i];
        check_case(h, h->bytes, h->len ? h->len : strlen(h->bytes), c);
    }
    free(c);
}

/* 10,000 levels of arrays or objects, inside data or as the whole message. */
static void test_hostile_nesting_10000(void **state)
{
    (void)state;
    enum { DEPTH = 10000 };
    md_command_t *c = md_malloc(sizeof *c);
    char *j = md_malloc(6 * DEPTH + 200), *p = j;
    p += sprintf(
        p, "{\"command_id\":\"deep-1\",\"type\":\"DepositFunds\",\"actor\":\"bob\",\"data\":");
    for (int i = 0; i < DEPTH; i++)
        *p++ = '[';
    for (int i = 0; i < DEPTH; i++)
        *p++ = ']';
    *p++ = '}';
    hcase_t h = {"json arrays 10000 deep", NULL, 0, false, MD_DECODE_MALFORMED, NULL,
                 "maximum parsing depth"};
    check_case(&h, j, (size_t)(p - j), c);
    p = j;
    for (int i = 0; i < DEPTH; i++)
        p += sprintf(p, "{\"a\":");
    hcase_t h2 = {
        "json objects 10000 deep, cut", NULL, 0, false, MD_DECODE_MALFORMED, NULL, "depth"};
    check_case(&h2, j, (size_t)(p - j), c);
    /* msgpack: a map whose command_id value is an array nested 10,000 deep. */
    unsigned char *m = md_malloc(DEPTH + 32), *q = m;
    memcpy(q,
           "\x81\xaa"
           "command_id",
           12);
    q += 12;
    memset(q, 0x91, DEPTH);
    q += DEPTH;
    *q++ = 0xc0;
    hcase_t h3 = {"msgpack arrays 10000 deep", NULL, 0, true, MD_DECODE_MALFORMED, NULL,
                  "nested too deeply"};
    check_case(&h3, (const char *)m, (size_t)(q - m), c);
    free(m);
    free(j);
    free(c);
}

/* ---- through the engine, over the demo day ---------------------------------------- */

typedef struct efx {
    char *dir;
    md_store_t *s;
    md_engine_t *e;
} efx_t;

static int setup_engine(void **state)
{
    efx_t *f = md_calloc(1, sizeof *f);
    md_store_opts_t so = {.nosync = true};
    md_engine_opts_t eo = {.operator_id = "operator",
                           .clock = MD_CLOCK_COMMAND,
                           .max_message_bytes = 4096,
                           .results_topic = "r",
                           .events_topic = "e",
                           .commands_topic = "c",
                           .deadletter_topic = "dl"};
    f->dir = md_test_tmpdir();
    *state = f;
    if (md_store_open(f->dir, &so, &f->s, NULL) != MD_OK ||
        md_engine_new(f->s, &eo, &f->e, NULL) != MD_OK)
        return -1;
    /* The demo day, one input per line. */
    FILE *in = fopen("demo/demo-day.jsonl", "r");
    char *line = NULL, *lines[128];
    size_t cap = 0, n = 0;
    ssize_t len;
    md_input_t inp[128];
    if (in == NULL)
        return -1;
    while (n < 128 && (len = getline(&line, &cap, in)) > 1) {
        lines[n] = md_strndup(line, (size_t)len - 1);
        inp[n] = (md_input_t){
            .bytes = lines[n], .len = (size_t)len - 1, .partition = 0, .offset = (int64_t)n};
        n++;
    }
    fclose(in);
    free(line);
    md_err_t rc = md_engine_process(f->e, inp, n, 0, NULL, NULL);
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
    return rc == MD_OK ? 0 : -1;
}

static int teardown_engine(void **state)
{
    efx_t *f = *state;
    md_engine_free(f->e);
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* Processes one message; returns its result (caller decrefs). */
static json_t *one(efx_t *f, const void *bytes, size_t len, int64_t offset)
{
    md_input_t in = {
        .bytes = bytes, .len = len, .key = "k", .key_len = 1, .partition = 0, .offset = offset};
    md_buf_t out;
    md_error_t err = {0};
    md_buf_init(&out);
    if (md_engine_process(f->e, &in, 1, 0, &out, &err) != MD_OK)
        fail_msg("the engine failed a batch: %s", err.msg);
    json_t *r = json_loadb((const char *)out.p, out.len, JSON_DISABLE_EOF_CHECK, NULL);
    md_buf_release(&out);
    assert_non_null(r);
    return r;
}

static const char *code_of(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "code"));
}

static const char *msg_of(json_t *r)
{
    return json_string_value(json_object_get(json_object_get(r, "error"), "message"));
}

static void test_hostile_engine_malformed(void **state)
{
    efx_t *f = *state;
    char big[5000];
    memset(big, ' ', sizeof big);
    memcpy(big, "{\"command_id\":\"big-1\"}", 22);
    const struct {
        const char *bytes;
        size_t len;
        const char *msg;
    } m[] = {
        {"", 0, "malformed input"},
        {big, sizeof big, "exceeds the limit of 4096"},
        {"\xff\xfe{}", 4, "malformed input"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        json_t *r = one(f, m[i].bytes, m[i].len, 1000 + (int64_t)i);
        assert_string_equal(json_string_value(json_object_get(r, "status")), "rejected");
        assert_true(json_is_null(json_object_get(r, "command_id")));
        assert_string_equal(code_of(r), "MALFORMED");
        if (strstr(msg_of(r), m[i].msg) == NULL)
            fail_msg("message '%s' does not say '%s'", msg_of(r), m[i].msg);
        json_decref(r);
    }
}

/* The largest price times the largest quantity is 10^15: no overflow, and the
 * order's amount is exact; paying it is refused for want of funds. */
static void test_hostile_engine_price_times_quantity(void **state)
{
    efx_t *f = *state;
    static const char *const cmds[] = {
        "{\"command_id\":\"ov-1\",\"type\":\"ChangePrice\",\"actor\":\"carol\",\"issued_at\":"
        "\"2026-11-26T20:00:00Z\",\"data\":{\"product_id\":\"p-pgsql\",\"price\":1000000000000}}",
        "{\"command_id\":\"ov-2\",\"type\":\"PlaceOrder\",\"actor\":\"bob\",\"issued_at\":"
        "\"2026-11-26T20:01:00Z\",\"data\":{\"order_id\":\"o-ov\",\"product_id\":\"p-pgsql\","
        "\"quantity\":1000}}",
        "{\"command_id\":\"ov-3\",\"type\":\"PayOrder\",\"actor\":\"bob\",\"issued_at\":"
        "\"2026-11-26T20:02:00Z\",\"data\":{\"order_id\":\"o-ov\"}}",
    };
    json_t *r[3];
    for (int i = 0; i < 3; i++)
        r[i] = one(f, cmds[i], strlen(cmds[i]), 2000 + i);
    for (int i = 0; i < 2; i++)
        if (strcmp(json_string_value(json_object_get(r[i], "status")), "accepted") != 0)
            fail_msg("ov-%d: %s", i + 1, msg_of(r[i]));
    assert_string_equal(code_of(r[2]), "INSUFFICIENT_FUNDS");
    /* The OrderPlaced event carries the exact amount. */
    md_txn_t *t = NULL;
    md_event_t ev;
    int64_t amount = 0;
    json_t *evs = json_object_get(r[1], "events");
    uint64_t seq = (uint64_t)json_integer_value(json_object_get(json_array_get(evs, 0), "seq"));
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_event(t, seq, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.type, "OrderPlaced");
    if (md_data_get_int(ev.data, ev.data_len, "subtotal", &amount) != MD_OK)
        assert_int_equal(md_data_get_int(ev.data, ev.data_len, "amount", &amount), MD_OK);
    assert_true(amount == 1000000000000000LL);
    assert_int_equal(md_txn_verify_chain(t, NULL, NULL, NULL, NULL, NULL), MD_OK);
    md_txn_end(t);
    for (int i = 0; i < 3; i++)
        json_decref(r[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_decoder_cases),
        cmocka_unit_test(test_hostile_nesting_10000),
        cmocka_unit_test_setup_teardown(test_hostile_engine_malformed, setup_engine,
                                        teardown_engine),
        cmocka_unit_test_setup_teardown(test_hostile_engine_price_times_quantity, setup_engine,
                                        teardown_engine),
    };
    return cmocka_run_group_tests_name("hostile", tests, NULL, NULL);
}
