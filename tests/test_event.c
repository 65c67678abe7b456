/*
 * test_event.c - the event data builder, the canonical body, the hash chain
 * and the JSON views.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fixture.h"
#include "md_event.h"

static void test_event_data_keys_sorted_bytewise(void **state)
{
    (void)state;
    md_data_t d;
    md_buf_t b;
    md_buf_init(&b);
    md_data_init(&d);
    md_data_int(&d, "zeta", 1);
    md_data_str(&d, "alpha", "x");
    md_data_bool(&d, "Beta", true);
    md_data_nil(&d, "a");
    md_data_pack(&d, &b);
    /* {"Beta": true, "a": nil, "alpha": "x", "zeta": 1} in msgpack. */
    static const unsigned char want[] = {0x84, 0xa4, 'B',  'e', 't', 'a', 0xc3, 0xa1,
                                         'a',  0xc0, 0xa5, 'a', 'l', 'p', 'h',  'a',
                                         0xa1, 'x',  0xa4, 'z', 'e', 't', 'a',  0x01};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.p, want, sizeof want);
    md_buf_release(&b);
}

static void test_event_data_readers(void **state)
{
    (void)state;
    md_data_t d;
    md_buf_t b;
    const char *s;
    size_t n;
    int64_t i;
    bool flag;
    char small[4];
    md_buf_init(&b);
    md_data_init(&d);
    md_data_int(&d, "amount", -1234567890123LL);
    md_data_str(&d, "order_id", "o-1");
    md_data_bool(&d, "restricted", false);
    md_data_nil(&d, "voucher_id");
    md_data_pack(&d, &b);
    assert_int_equal(md_data_get_int(b.p, b.len, "amount", &i), MD_OK);
    assert_true(i == -1234567890123LL);
    assert_int_equal(md_data_get_str(b.p, b.len, "order_id", &s, &n), MD_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(s, "o-1", 3);
    assert_int_equal(md_data_get_bool(b.p, b.len, "restricted", &flag), MD_OK);
    assert_false(flag);
    assert_int_equal(md_data_get_str(b.p, b.len, "voucher_id", &s, &n), MD_ENOTFOUND);
    assert_int_equal(md_data_get_str(b.p, b.len, "missing", &s, &n), MD_ENOTFOUND);
    assert_int_equal(md_data_get_int(b.p, b.len, "order_id", &i), MD_ECODEC);
    assert_int_equal(md_data_copy_str(b.p, b.len, "order_id", small, sizeof small), MD_OK);
    assert_string_equal(small, "o-1");
    assert_int_equal(md_data_copy_str(b.p, b.len, "order_id", small, 3), MD_EINVAL);
    md_buf_release(&b);
}

static void fill_event(md_event_t *ev, md_buf_t *data)
{
    md_test_event(ev, data, "order:o-1", "OrderPlaced", 7);
    ev->seq = 1;
    ev->version = 1;
}

static void test_event_body_round_trip(void **state)
{
    (void)state;
    md_event_t ev, back;
    md_buf_t data, body;
    md_buf_init(&data);
    md_buf_init(&body);
    fill_event(&ev, &data);
    assert_int_equal(md_event_body(&ev, &body, NULL), MD_OK);
    assert_int_equal(body.p[0], 0x88); /* a map of exactly eight keys */
    assert_memory_equal(body.p + 1, "\xa3seq", 4);
    assert_int_equal(md_event_decode_body(body.p, body.len, &back, NULL), MD_OK);
    assert_true(back.seq == 1 && back.version == 1);
    assert_string_equal(back.stream, "order:o-1");
    assert_string_equal(back.type, "OrderPlaced");
    assert_true(back.recorded_at == ev.recorded_at);
    assert_string_equal(back.command_id, "c-7");
    assert_string_equal(back.actor, "m-tester");
    assert_int_equal(back.data_len, data.len);
    assert_memory_equal(back.data, data.p, data.len);
    md_buf_release(&data);
    md_buf_release(&body);
}

static void test_event_body_nil_command_and_actor(void **state)
{
    (void)state;
    md_event_t ev, back;
    md_buf_t data, body;
    md_buf_init(&data);
    md_buf_init(&body);
    fill_event(&ev, &data);
    ev.has_command_id = ev.has_actor = false;
    assert_int_equal(md_event_body(&ev, &body, NULL), MD_OK);
    assert_int_equal(md_event_decode_body(body.p, body.len, &back, NULL), MD_OK);
    assert_false(back.has_command_id);
    assert_false(back.has_actor);
    md_buf_release(&data);
    md_buf_release(&body);
}

static void test_event_body_rejects_unsorted_data(void **state)
{
    (void)state;
    /* {"b": 1, "a": 2}: keys out of order, so not canonical. */
    static const unsigned char bad[] = {0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x02};
    md_event_t ev;
    md_buf_t data, body;
    md_error_t err = {0};
    md_buf_init(&data);
    md_buf_init(&body);
    fill_event(&ev, &data);
    ev.data = bad;
    ev.data_len = sizeof bad;
    assert_int_equal(md_event_body(&ev, &body, &err), MD_EINVAL);
    assert_non_null(strstr(err.msg, "canonical"));
    md_buf_release(&data);
    md_buf_release(&body);
}

static void test_event_decode_rejects_misordered_body(void **state)
{
    (void)state;
    md_event_t ev, back;
    md_buf_t data, body;
    md_error_t err = {0};
    md_buf_init(&data);
    md_buf_init(&body);
    fill_event(&ev, &data);
    assert_int_equal(md_event_body(&ev, &body, NULL), MD_OK);
    body.p[2] = 'x'; /* "seq" becomes "xeq" */
    assert_int_equal(md_event_decode_body(body.p, body.len, &back, &err), MD_ECODEC);
    assert_int_equal(md_event_decode_body(body.p, 5, &back, NULL), MD_ECODEC);
    md_buf_release(&data);
    md_buf_release(&body);
}

/* A known answer: SHA-256 of 32 zero bytes followed by "abc", checked with
 * `(head -c 32 /dev/zero; printf abc) | sha256sum`. */
static void test_event_chain_hash_known_answer(void **state)
{
    (void)state;
    unsigned char zero[MD_HASH_LEN] = {0}, h[MD_HASH_LEN];
    char hex[2 * MD_HASH_LEN + 1];
    md_chain_hash(zero, "abc", 3, h);
    md_hex(h, MD_HASH_LEN, hex);
    assert_string_equal(hex, "365aa7d8f7f9402c4b9434502b4cc89ddb09fe50d7cd95b493b834c62d5a5370");
}

static void test_event_json_view(void **state)
{
    (void)state;
    md_event_t ev;
    md_buf_t data, body;
    md_buf_init(&data);
    md_buf_init(&body);
    fill_event(&ev, &data);
    assert_int_equal(md_event_body(&ev, &body, NULL), MD_OK);
    memset(ev.prev_hash, 0, MD_HASH_LEN);
    md_chain_hash(ev.prev_hash, body.p, body.len, ev.hash);
    json_t *j = md_event_to_json(&ev, body.p, body.len);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "seq")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "stream")), "order:o-1");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "data"), "n")), 7);
    assert_int_equal(strlen(json_string_value(json_object_get(j, "hash"))), 64);
    assert_string_equal(json_string_value(json_object_get(j, "prev_hash")),
                        "0000000000000000000000000000000000000000000000000000000000000000");
    assert_non_null(json_string_value(json_object_get(j, "body")));
    json_decref(j);
    md_buf_release(&data);
    md_buf_release(&body);
}

static void test_event_base64(void **state)
{
    (void)state;
    char out[16];
    md_base64((const unsigned char *)"", 0, out);
    assert_string_equal(out, "");
    md_base64((const unsigned char *)"f", 1, out);
    assert_string_equal(out, "Zg==");
    md_base64((const unsigned char *)"fo", 2, out);
    assert_string_equal(out, "Zm8=");
    md_base64((const unsigned char *)"foobar", 6, out);
    assert_string_equal(out, "Zm9vYmFy");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_data_keys_sorted_bytewise),
        cmocka_unit_test(test_event_data_readers),
        cmocka_unit_test(test_event_body_round_trip),
        cmocka_unit_test(test_event_body_nil_command_and_actor),
        cmocka_unit_test(test_event_body_rejects_unsorted_data),
        cmocka_unit_test(test_event_decode_rejects_misordered_body),
        cmocka_unit_test(test_event_chain_hash_known_answer),
        cmocka_unit_test(test_event_json_view),
        cmocka_unit_test(test_event_base64),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
