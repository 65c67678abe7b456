/*
 * test_command.c - the command decoder: every field type, the strictness of
 * rules.md "Fine points", MALFORMED cases, and msgpack equivalence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <msgpack.h>

#include "md_command.h"

#define H64 "ABCDEFabcdef0123456789abcdefABCDEF0123456789abcdefabcdef01234567"

static md_command_t C;

/* Decodes a JSON line written with ' for ". */
static md_decode_status_t dec(const char *line, bool require_issued_at)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", line);
    for (char *p = buf; *p; p++)
        if (*p == '\'')
            *p = '"';
    md_decode_opts_t o = {require_issued_at};
    return md_command_decode_json(buf, strlen(buf), &o, &C);
}

/* Decodes an envelope of type with the given data inside. */
static md_decode_status_t dec_data(const char *type, const char *data)
{
    char line[8192];
    snprintf(line, sizeof line, "{'command_id':'c1','type':'%s','actor':'alice','data':{%s}}", type,
             data);
    return dec(line, false);
}

static void expect_invalid(const char *type, const char *data, const char *field)
{
    md_decode_status_t st = dec_data(type, data);
    if (st != MD_DECODE_REJECTED || strcmp(C.reject_code, "INVALID_FIELD") != 0)
        fail_msg("%s {%s}: not INVALID_FIELD (%d %s)", type, data, st, C.detail);
    if (strstr(C.reject_msg, field) == NULL)
        fail_msg("%s {%s}: message '%s' does not name %s", type, data, C.reject_msg, field);
}

static void test_command_field_types(void **state)
{
    (void)state;
    int64_t v;
    assert_int_equal(
        dec_data("RegisterMember",
                 "'member_id':'a.b_c:d-1','kind':'organization','name':'名字','identity_hash':'" H64
                 "'"),
        MD_DECODE_OK);
    assert_string_equal(md_cmd_str(&C, "identity_hash"),
                        "abcdefabcdef0123456789abcdefabcdef0123456789abcdefabcdef01234567");
    assert_string_equal(md_cmd_str(&C, "kind"), "organization");
    assert_true(md_cmd_int(&C, "kind", &v) && v == 1);
    assert_null(md_cmd_str(&C, "email"));
    assert_false(md_cmd_has(&C, "email"));
    assert_int_equal(dec_data("PlaceOrder", "'order_id':'o1','product_id':'p1'"), MD_DECODE_OK);
    assert_true(md_cmd_int(&C, "quantity", &v) && v == 1); /* default */
    assert_int_equal(dec_data("DefineCategory", "'category_id':'c','name':'n','restricted':true"),
                     MD_DECODE_OK);
    assert_true(md_cmd_int(&C, "restricted", &v) && v == 1);
    assert_true(md_cmd_int(&C, "requires_review", &v) && v == 0);
    assert_int_equal(dec_data("IssueVoucher", "'voucher_id':'v','member_id':'m','value':5,'expires_"
                                              "at':'1970-01-01T00:00:01.23456789Z'"),
                     MD_DECODE_OK);
    assert_true(md_cmd_int(&C, "expires_at", &v) && v == 1234);
    char stream[100];
    assert_true(md_cmd_target_stream(&C, stream, sizeof stream));
    assert_string_equal(stream, "voucher:v");
    assert_int_equal(dec_data("DepositFunds", "'amount':1000000000000,'payment_ref':'r'"),
                     MD_DECODE_OK);
    assert_true(md_cmd_target_stream(&C, stream, sizeof stream));
    assert_string_equal(stream, "member:alice");
    assert_int_equal(dec_data("ProhibitTerm", "'term':'x'"), MD_DECODE_OK);
    assert_true(md_cmd_target_stream(&C, stream, sizeof stream));
    assert_string_equal(stream, "platform");
}

static void test_command_invalid_fields(void **state)
{
    (void)state;
    expect_invalid("DepositFunds", "'amount':1.0,'payment_ref':'r'", "data.amount");
    expect_invalid("DepositFunds", "'amount':1e3,'payment_ref':'r'", "data.amount");
    expect_invalid("DepositFunds", "'amount':true,'payment_ref':'r'", "data.amount");
    expect_invalid("DepositFunds", "'amount':0,'payment_ref':'r'", "data.amount");
    expect_invalid("DepositFunds", "'amount':1000000000001,'payment_ref':'r'", "data.amount");
    expect_invalid("DepositFunds", "'amount':1,'payment_ref':''", "data.payment_ref");
    expect_invalid("DepositFunds", "'amount':1,'payment_ref':'r','extra':1", "data.extra");
    expect_invalid("DepositFunds", "'amount':1", "data.payment_ref");
    expect_invalid("PlaceOrder", "'order_id':'o 1','product_id':'p'", "data.order_id");
    expect_invalid("PlaceOrder", "'order_id':'o','product_id':'p','voucher_id':null",
                   "data.voucher_id");
    expect_invalid("PlaceOrder", "'order_id':'o','product_id':'p','quantity':1001",
                   "data.quantity");
    expect_invalid("RegisterMember",
                   "'member_id':'m','kind':'robot','name':'n','identity_hash':'" H64 "'",
                   "data.kind");
    expect_invalid("RegisterMember",
                   "'member_id':'m','kind':'individual','name':'n','identity_hash':'abc'",
                   "data.identity_hash");
    expect_invalid("RegisterMember",
                   "'member_id':'m','kind':'individual','name':'n','identity_hash':'" H64
                   "','phone':'123456789012345678901234567890123'",
                   "data.phone");
    expect_invalid("DefineCategory", "'category_id':'c','name':'n','restricted':1",
                   "data.restricted");
    expect_invalid("ApplySanction",
                   "'sanction_id':'s','measure':'mute','target_type':'member','target_id':'m','"
                   "reason':'r','clause':'4.02'",
                   "data.clause");
    expect_invalid("ApplySanction",
                   "'sanction_id':'s','measure':'mute','target_type':'store','target_id':'m','"
                   "reason':'r','clause':'4.2'",
                   "data.measure");
    expect_invalid("ApplySanction",
                   "'sanction_id':'s','measure':'close_account','target_type':'member','target_id':"
                   "'m','reason':'r','clause':'4','expires_at':'2027-01-01T00:00:00Z'",
                   "data.expires_at");
    expect_invalid("RuleOnDispute", "'complaint_id':'q','decision':'split'", "data.refund_amount");
    expect_invalid("RuleOnDispute",
                   "'complaint_id':'q','decision':'release_provider','refund_amount':5",
                   "data.refund_amount");
    expect_invalid(
        "ScheduleMaintenance",
        "'window_id':'w','starts_at':'2026-01-01T00:00:00Z','ends_at':'2026-01-01T00:00:00Z'",
        "data.ends_at");
    /* first bad field in data declaration order, not input order */
    expect_invalid("DepositFunds", "'payment_ref':'','amount':'x'", "data.amount");
}

static void test_command_envelope(void **state)
{
    (void)state;
    assert_int_equal(dec("{'command_id':'c','actor':'a','data':{}}", false), MD_DECODE_REJECTED);
    assert_string_equal(C.reject_code, "UNKNOWN_COMMAND");
    assert_int_equal(dec("{'command_id':'c','type':null,'actor':'a','data':{}}", false),
                     MD_DECODE_REJECTED);
    assert_string_equal(C.reject_code, "UNKNOWN_COMMAND");
    assert_int_equal(dec("{'command_id':'c','type':'Fly','actor':'a','data':{}}", false),
                     MD_DECODE_REJECTED);
    assert_string_equal(C.reject_code, "UNKNOWN_COMMAND");
    assert_true(C.has_actor);
    assert_int_equal(
        dec("{'command_id':'c','type':'PayOrder','actor':'a','data':{'order_id':'o'},'x':1}",
            false),
        MD_DECODE_REJECTED);
    assert_string_equal(C.reject_code, "INVALID_FIELD");
    assert_non_null(strstr(C.reject_msg, "x"));
    assert_int_equal(dec("{'command_id':'c','type':'PayOrder','data':{'order_id':'o'}}", false),
                     MD_DECODE_REJECTED);
    assert_non_null(strstr(C.reject_msg, "actor"));
    assert_int_equal(
        dec("{'command_id':'c','type':'PayOrder','actor':'a','data':{'order_id':'o'}}", true),
        MD_DECODE_REJECTED);
    assert_non_null(strstr(C.reject_msg, "issued_at"));
    assert_int_equal(
        dec("{'command_id':'c','type':'PayOrder','actor':'a','issued_at':'2026-11-26T10:00:00Z','"
            "expected_version':3,'correlation_id':'k','data':{'order_id':'o'}}",
            true),
        MD_DECODE_OK);
    assert_int_equal(C.issued_at, 1795687200000LL);
    assert_true(C.has_expected_version && C.expected_version == 3);
    assert_string_equal(C.correlation_id, "k");
    assert_int_equal(dec("{'command_id':'c','type':'PayOrder','actor':'a','expected_version':-1,'"
                         "data':{'order_id':'o'}}",
                         false),
                     MD_DECODE_REJECTED);
    assert_non_null(strstr(C.reject_msg, "expected_version"));
    assert_int_equal(dec("{'command_id':'c','type':'PayOrder','actor':'a','data':[]}", false),
                     MD_DECODE_REJECTED);
    assert_non_null(strstr(C.reject_msg, "data"));
}

static void test_command_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "nope",
        "[]",
        "3",
        "{'command_id':''}",
        "{'command_id':5}",
        "{'command_id':null}",
        "{'type':'PayOrder'}",
        "{'command_id':'a','command_id':'b'}",
        "{'command_id':'a','data':{'x':1,'x':2}}",
        "{'command_id':'a\\u0000'}",
        "{'command_id':'a','x':NaN}",
        "{'command_id':'a','n':99999999999999999999}",
        "{'command_id':'a'} trailing",
        "{'command_id':'\xff'}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dec(bad[i], false) != MD_DECODE_MALFORMED)
            fail_msg("'%s' is not MALFORMED", bad[i]);
        assert_string_equal(C.command_id, "");
    }
    char line[300];
    snprintf(line, sizeof line, "{'command_id':'%0129d'}", 0);
    assert_int_equal(dec(line, false), MD_DECODE_MALFORMED);
    snprintf(line, sizeof line, "{'command_id':'%0128d'}", 0);
    assert_int_equal(dec(line, false), MD_DECODE_REJECTED);
    /* the digest is of the raw bytes */
    assert_int_equal(md_command_decode_json("[1,2]", 5, NULL, &C), MD_DECODE_MALFORMED);
    assert_int_equal(C.sha256[0], 0x49);
    assert_int_equal(C.sha256[31], 0x84);
}

static void test_command_times(void **state)
{
    (void)state;
    int64_t ms;
    static const char *const bad[] = {
        "2026-11-26t10:00:00Z",      "2026-11-26T10:00:00z",
        "2026-11-26T10:00:00",       "2026-11-26T10:00:60Z",
        "2026-02-29T00:00:00Z",      "2026-13-01T00:00:00Z",
        "2026-11-26T10:00:00.Z",     "2026-11-26T10:00:00.1234567890Z",
        "2026-11-26T10:00:00+00:00", "2026-11-26 10:00:00Z",
        "26-11-26T10:00:00Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (md_parse_time(bad[i], strlen(bad[i]), &ms))
            fail_msg("'%s' parsed", bad[i]);
    }
    assert_true(md_parse_time("2024-02-29T23:59:59.999999999Z", 30, &ms));
    char out[25];
    md_format_time(ms, out);
    assert_string_equal(out, "2024-02-29T23:59:59.999Z");
    assert_true(md_parse_time("1969-12-31T23:59:59.5Z", 22, &ms));
    assert_int_equal(ms, -500);
    md_format_time(ms, out);
    assert_string_equal(out, "1969-12-31T23:59:59.500Z");
}

/* Every command's string fields fit the arena together. */
static void test_command_arena_fits(void **state)
{
    (void)state;
    for (int t = 0; t < MD_CMD_COUNT_; t++) {
        const md_cmd_spec_t *s = md_cmd_spec_of((md_cmd_type_t)t);
        size_t need = 0;
        assert_true(s->nfields <= MD_CMD_FIELDS_MAX);
        for (size_t i = 0; i < s->nfields; i++) {
            const md_fspec_t *f = &s->fields[i];
            need += f->type == MD_FT_TEXT ? (size_t)f->max + 1 : 66;
        }
        assert_true(need <= MD_CMD_ARENA);
        assert_ptr_equal(md_cmd_spec_find(s->name, strlen(s->name)), s);
    }
}

/* ---- msgpack ---------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    msgpack_sbuffer_write(data, p, n);
    return 0;
}

static void pk_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* Packs {"command_id","type","actor","data":{order_id, product_id, quantity}}
 * with a chosen quantity encoding (0 int, 1 float, 2 huge uint). */
static void pack_order(msgpack_sbuffer *sb, int qty_kind, bool dup_key, bool int_key)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, buf_write);
    msgpack_pack_map(&pk, dup_key ? 5 : 4);
    pk_str(&pk, "command_id");
    pk_str(&pk, "c1");
    pk_str(&pk, "type");
    pk_str(&pk, "PlaceOrder");
    pk_str(&pk, "actor");
    pk_str(&pk, "alice");
    if (dup_key) {
        pk_str(&pk, "actor");
        pk_str(&pk, "bob");
    }
    pk_str(&pk, "data");
    msgpack_pack_map(&pk, 3);
    pk_str(&pk, "order_id");
    pk_str(&pk, "o1");
    if (int_key)
        msgpack_pack_int(&pk, 7);
    else
        pk_str(&pk, "product_id");
    pk_str(&pk, "p1");
    pk_str(&pk, "quantity");
    if (qty_kind == 0)
        msgpack_pack_int(&pk, 3);
    else if (qty_kind == 1)
        msgpack_pack_double(&pk, 3.0);
    else
        msgpack_pack_uint64(&pk, UINT64_MAX);
}

static void test_command_msgpack(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    md_command_t j;
    const char *json = "{\"command_id\":\"c1\",\"type\":\"PlaceOrder\",\"actor\":\"alice\","
                       "\"data\":{\"order_id\":\"o1\",\"product_id\":\"p1\",\"quantity\":3}}";
    assert_int_equal(md_command_decode_json(json, strlen(json), NULL, &j), MD_DECODE_OK);
    pack_order(&sb, 0, false, false);
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_OK);
    assert_memory_equal(&C, &j, offsetof(md_command_t, arena) + j.arena_len);
    msgpack_sbuffer_destroy(&sb);

    pack_order(&sb, 1, false, false); /* float where an integer is expected */
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_REJECTED);
    assert_string_equal(C.reject_code, "INVALID_FIELD");
    msgpack_sbuffer_destroy(&sb);
    pack_order(&sb, 2, false, false); /* beyond int64 */
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_MALFORMED);
    msgpack_sbuffer_destroy(&sb);
    pack_order(&sb, 0, true, false); /* duplicate key */
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_MALFORMED);
    msgpack_sbuffer_destroy(&sb);
    pack_order(&sb, 0, false, true); /* non-string key */
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_MALFORMED);
    msgpack_sbuffer_destroy(&sb);

    pack_order(&sb, 0, false, false); /* trailing bytes, truncation */
    msgpack_sbuffer_write(&sb, "\xc0", 1);
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), MD_DECODE_MALFORMED);
    assert_int_equal(md_command_decode_msgpack(sb.data, sb.size - 4, NULL, &C),
                     MD_DECODE_MALFORMED);
    msgpack_sbuffer_destroy(&sb);
    /* invalid UTF-8 and bin values */
    assert_int_equal(md_command_decode_msgpack("\x81\xaa"
                                               "command_id"
                                               "\xa1\xff",
                                               14, NULL, &C),
                     MD_DECODE_MALFORMED);
    assert_int_equal(md_command_decode_msgpack("\x81\xaa"
                                               "command_id"
                                               "\xc4\x01x",
                                               15, NULL, &C),
                     MD_DECODE_MALFORMED);
    assert_int_equal(md_command_decode_msgpack("\x91\x01", 2, NULL, &C), MD_DECODE_MALFORMED);
}

/* The prefix of timer events' command_id is reserved in msgpack as in JSON. */
static void test_command_msgpack_timer_prefix(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    const char *ids[] = {MD_TIMER_CMDID_PREFIX "auto_confirm:o1", "timer:", "timer-1"};
    const md_decode_status_t want[] = {MD_DECODE_MALFORMED, MD_DECODE_MALFORMED, MD_DECODE_OK};
    for (size_t i = 0; i < 3; i++) {
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, buf_write);
        msgpack_pack_map(&pk, 4);
        pk_str(&pk, "command_id");
        pk_str(&pk, ids[i]);
        pk_str(&pk, "type");
        pk_str(&pk, "Tick");
        pk_str(&pk, "actor");
        pk_str(&pk, "op");
        pk_str(&pk, "data");
        msgpack_pack_map(&pk, 0);
        assert_int_equal(md_command_decode_msgpack(sb.data, sb.size, NULL, &C), want[i]);
        if (want[i] == MD_DECODE_MALFORMED)
            assert_non_null(strstr(C.detail, "reserved for timers"));
        msgpack_sbuffer_destroy(&sb);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_command_field_types),
        cmocka_unit_test(test_command_invalid_fields),
        cmocka_unit_test(test_command_envelope),
        cmocka_unit_test(test_command_malformed),
        cmocka_unit_test(test_command_times),
        cmocka_unit_test(test_command_arena_fits),
        cmocka_unit_test(test_command_msgpack),
        cmocka_unit_test(test_command_msgpack_timer_prefix),
    };
    return cmocka_run_group_tests_name("command", tests, NULL, NULL);
}
