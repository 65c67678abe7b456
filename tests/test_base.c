/*
 * test_base.c - the base layer (md_base.h): the allocation policy jansson
 * shares, the one UTF-8 validator, the one JSON -> msgpack packer read back
 * with the one msgpack reader, md_buf_t and the clocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>
#include <msgpack.h>

#include "md_base.h"

static void test_base_jansson_allocates_through_md_malloc(void **state)
{
    (void)state;
    json_malloc_t m = NULL;
    json_free_t f = NULL;
    json_get_alloc_funcs(&m, &f);
    assert_ptr_equal(m, md_malloc);
    assert_ptr_equal(f, free);
}

static void test_base_utf8_accepts_valid_rejects_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        bool ok;
    } cases[] = {
        {"plain ascii", 11, true},
        {"caf\xc3\xa9", 5, true},      /* 2 bytes */
        {"\xe2\x82\xac", 3, true},     /* euro, 3 bytes */
        {"\xf0\x9f\x98\x80", 4, true}, /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, true}, /* U+10FFFF */
        {"", 0, true},
        {"a\0b", 3, false},             /* NUL */
        {"\xc0\xaf", 2, false},         /* overlong */
        {"\xe0\x80\xaf", 3, false},     /* overlong */
        {"\xed\xa0\x80", 3, false},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, false}, /* above U+10FFFF */
        {"\xe2\x82", 2, false},         /* truncated */
        {"\x80", 1, false},             /* lone continuation */
        {"\xff", 1, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        assert_int_equal(md_valid_utf8(cases[i].s, cases[i].n), cases[i].ok);
    assert_int_equal(md_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);
    assert_int_equal(md_utf8_len((const unsigned char *)"\xe2\x82\xac", 2), 0);
    assert_int_equal(md_utf8_len((const unsigned char *)"", 1), 0);
}

static void test_base_json_to_msgpack_reads_back(void **state)
{
    (void)state;
    json_t *j =
        json_loads("{\"z\":1,\"a\":[true,null,-5,\"x\"],\"r\":1.5,\"big\":9007199254740993}",
                   JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(j);
    md_buf_t b;
    md_buf_init(&b);
    md_json_to_msgpack(j, &b);
    json_decref(j);
    md_mp_t m;
    uint32_t n, len;
    const char *s;
    int64_t v;
    bool t;
    double d;
    md__mp_init(&m, b.p, b.len);
    assert_int_equal(md__mp_map(&m, &n), 0);
    assert_int_equal(n, 4);
    /* keys keep jansson's (insertion) order */
    assert_int_equal(md__mp_str(&m, &s, &len), 0);
    assert_memory_equal(s, "z", 1);
    assert_int_equal(md__mp_int(&m, &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(md__mp_str(&m, &s, &len), 0);
    assert_memory_equal(s, "a", 1);
    assert_int_equal(md__mp_array(&m, &n), 0);
    assert_int_equal(n, 4);
    assert_int_equal(md__mp_bool(&m, &t), 0);
    assert_true(t);
    assert_int_equal(md__mp_nil(&m), 0);
    assert_int_equal(md__mp_int(&m, &v), 0);
    assert_int_equal(v, -5);
    assert_int_equal(md__mp_str(&m, &s, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(md__mp_str(&m, &s, &len), 0);
    assert_memory_equal(s, "r", 1);
    assert_int_equal(md__mp_peek(&m), MD_MP_FLOAT); /* reals stay floats */
    assert_int_equal(md__mp_double(&m, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(md__mp_find(&m, "x"), -1); /* not at a map */
    assert_int_equal(md__mp_str(&m, &s, &len), 0);
    assert_int_equal(md__mp_int(&m, &v), 0);
    assert_int_equal(v, 9007199254740993);
    assert_true(m.p == m.end);
    md_buf_release(&b);
    assert_null(b.p);
}

static void test_base_mp_reader_refuses_truncation(void **state)
{
    (void)state;
    const unsigned char trunc[] = {0xa5, 'a', 'b'}; /* str of 5, 2 bytes there */
    md_mp_t m;
    const char *s;
    uint32_t len;
    md__mp_init(&m, trunc, sizeof trunc);
    assert_int_equal(md__mp_str(&m, &s, &len), -1);
    assert_ptr_equal(m.p, trunc); /* cursor unchanged */
    assert_int_equal(md__mp_skip(&m), -1);
}

/* Every scalar form is skipped whole (md__mp_skip sizes scalars from their
 * first bytes), and every cut of it is refused with the cursor unchanged. */
static void test_base_mp_skip_sizes_every_scalar(void **state)
{
    (void)state;
    static const struct {
        unsigned char b[12];
        size_t n;
    } forms[] = {
        {{0x05}, 1},                                                 /* positive fixint */
        {{0xff}, 1},                                                 /* negative fixint */
        {{0xc0}, 1},                                                 /* nil */
        {{0xc3}, 1},                                                 /* true */
        {{0xa3, 'a', 'b', 'c'}, 4},                                  /* fixstr */
        {{0xa0}, 1},                                                 /* empty fixstr */
        {{0xd9, 2, 'x', 'y'}, 4},                                    /* str8 */
        {{0xda, 0, 1, 'z'}, 4},                                      /* str16 */
        {{0xdb, 0, 0, 0, 2, 'p', 'q'}, 7},                           /* str32 */
        {{0xc4, 1, 9}, 3},                                           /* bin8 */
        {{0xc5, 0, 1, 9}, 4},                                        /* bin16 */
        {{0xc6, 0, 0, 0, 1, 9}, 6},                                  /* bin32 */
        {{0xcc, 200}, 2},                                            /* uint8 */
        {{0xcd, 1, 2}, 3},                                           /* uint16 */
        {{0xce, 1, 2, 3, 4}, 5},                                     /* uint32 */
        {{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 9}, /* uint64 > INT64_MAX */
        {{0xd0, 0x80}, 2},                                           /* int8 */
        {{0xd1, 0x80, 0}, 3},                                        /* int16 */
        {{0xd2, 0x80, 0, 0, 0}, 5},                                  /* int32 */
        {{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, 9},                      /* int64 */
        {{0xca, 0x3f, 0xc0, 0, 0}, 5},                               /* float32 */
        {{0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, 9},                   /* float64 */
        {{0x92, 0x01, 0xa1, 'k'}, 4},                                /* array of 2 */
        {{0x81, 0xa1, 'k', 0xc2}, 4},                                /* map of 1 */
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        unsigned char buf[16];
        memcpy(buf, forms[i].b, forms[i].n);
        buf[forms[i].n] = 0x07; /* what follows stays unread */
        md_mp_t m;
        md__mp_init(&m, buf, forms[i].n + 1);
        assert_int_equal(md__mp_skip(&m), 0);
        assert_ptr_equal(m.p, buf + forms[i].n);
        for (size_t cut = 0; cut < forms[i].n; cut++) {
            md__mp_init(&m, buf, cut);
            assert_int_equal(md__mp_skip(&m), -1);
            assert_ptr_equal(m.p, buf);
        }
    }
    const unsigned char ext[] = {0xd4, 1, 2}, bad[] = {0xc1};
    md_mp_t m;
    md__mp_init(&m, ext, sizeof ext);
    assert_int_equal(md__mp_skip(&m), -1);
    md__mp_init(&m, bad, sizeof bad);
    assert_int_equal(md__mp_skip(&m), -1);
}

/* md__mp_find reads fixstr keys itself: keys of every length and form, a key
 * cut short, a missing key. */
static void test_base_mp_find_keys(void **state)
{
    (void)state;
    const unsigned char map[] = {0x83, 0xa1, 'a',  0x01, 0xd9, 2,   'b',
                                 'b',  0x02, 0xa2, 'c',  'c',  0x03};
    md_mp_t m;
    int64_t v;
    const char *keys[] = {"a", "bb", "cc"};
    for (int i = 0; i < 3; i++) {
        md__mp_init(&m, map, sizeof map);
        assert_int_equal(md__mp_find(&m, keys[i]), 0);
        assert_int_equal(md__mp_int(&m, &v), 0);
        assert_int_equal(v, i + 1);
    }
    md__mp_init(&m, map, sizeof map);
    assert_int_equal(md__mp_find(&m, "c"), 1); /* absent (a prefix of "cc") */
    md__mp_init(&m, map, 11);                  /* the last key cut short */
    assert_int_equal(md__mp_find(&m, "cc"), -1);
    md__mp_init(&m, map, 10);
    assert_int_equal(md__mp_find(&m, "cc"), -1);
}

/* md_buf_append copies short lengths its own way (1..3, 4..7, 8..16 bytes):
 * every length from 0 to 40, at every offset a growing buffer passes through. */
static void test_base_buf_append_every_length(void **state)
{
    (void)state;
    unsigned char src[64], want[4096];
    size_t wn = 0;
    md_buf_t b;
    md_buf_init(&b);
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 7 + 1);
    for (size_t round = 0; round < 3; round++) {
        for (size_t n = 0; n <= 40; n++) {
            md_buf_append(&b, n ? src + round : NULL, n);
            memcpy(want + wn, src + round, n);
            wn += n;
            assert_int_equal(b.len, wn);
            assert_memory_equal(b.p, want, wn);
        }
    }
    md_buf_release(&b);
}

static int buf_write_plain(void *data, const char *p, size_t n)
{
    md_buf_append(data, p, n);
    return 0;
}

/* md__pack_str writes what msgpack-c's msgpack_pack_str and _str_body write,
 * at every length where the form changes. */
static void test_base_pack_str_as_msgpack_c(void **state)
{
    (void)state;
    static const size_t lens[] = {0,   1,   5,   30,    31,    32,    33,   254,
                                  255, 256, 257, 65534, 65535, 65536, 70000};
    char *src = malloc(70000);
    assert_non_null(src);
    for (size_t i = 0; i < 70000; i++)
        src[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        md_buf_t mine, theirs;
        msgpack_packer pk, ref;
        md_buf_init(&mine);
        md_buf_init(&theirs);
        md_buf_append(&mine, "x", 1); /* not at the start of the buffer */
        md_buf_append(&theirs, "x", 1);
        md__pack_init(&pk, &mine);
        md__pack_str(&pk, src, lens[i]);
        msgpack_packer_init(&ref, &theirs, buf_write_plain);
        md__pack_str(&ref, src, lens[i]); /* another callback: msgpack-c's path */
        assert_int_equal(mine.len, theirs.len);
        assert_memory_equal(mine.p, theirs.p, mine.len);
        md_buf_release(&mine);
        md_buf_release(&theirs);
    }
    free(src);
}

static void test_base_json_set_leaves_refused_values_out(void **state)
{
    (void)state;
    json_t *o = json_object(), *a = json_array();
    assert_true(md_json_set(o, "ok", json_string("x")));
    assert_false(md_json_set(o, "bad", json_string("\xff"))); /* not UTF-8: NULL */
    assert_int_equal(json_object_size(o), 1);
    assert_null(json_object_get(o, "bad"));
    assert_true(md_json_append(a, json_integer(1)));
    assert_false(md_json_append(a, json_stringn("a\xc0", 2)));
    assert_int_equal(json_array_size(a), 1);
    json_decref(o);
    json_decref(a);
}

static void test_base_clocks_move_forward(void **state)
{
    (void)state;
    int64_t a = md_mono_ns(), w = md_wall_ms();
    double s = md_mono_s();
    assert_true(a > 0 && s > 0);
    assert_true(md_mono_ns() >= a);
    assert_true(md_mono_ms() >= a / 1000000);
    assert_true(w > 1700000000000); /* after 2023 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_jansson_allocates_through_md_malloc),
        cmocka_unit_test(test_base_utf8_accepts_valid_rejects_invalid),
        cmocka_unit_test(test_base_json_to_msgpack_reads_back),
        cmocka_unit_test(test_base_mp_reader_refuses_truncation),
        cmocka_unit_test(test_base_mp_skip_sizes_every_scalar),
        cmocka_unit_test(test_base_mp_find_keys),
        cmocka_unit_test(test_base_buf_append_every_length),
        cmocka_unit_test(test_base_pack_str_as_msgpack_c),
        cmocka_unit_test(test_base_json_set_leaves_refused_values_out),
        cmocka_unit_test(test_base_clocks_move_forward),
    };
    return cmocka_run_group_tests_name("base", tests, NULL, NULL);
}
