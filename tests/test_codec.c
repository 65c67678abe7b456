/*
 * test_codec.c - the compact store forms of records: the rules' state records
 * (zero runs squeezed out, rules/state.h) and the projections' records
 * (varint prefix and string lengths, projections/core.c). Round trips of
 * sparse, dense, all-zero and all-non-zero records and of the int64 extremes;
 * the raw state form of older versions still read; determinism; and every
 * truncated, overlong or otherwise malformed value rejected. Decoders are
 * handed exact-size heap copies, so ASan catches any read past the value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../projections/pj.h"
#include "../rules/state.h"
#include "rules_mem.h"


/* Park-Miller, so a failure reproduces. */
static uint32_t rnd_next(uint32_t *s)
{
    *s = (uint32_t)((uint64_t)*s * 48271u % 2147483647u);
    return *s;
}

/* An exact heap copy of buf[n] (ASan flags a read past it). */
static unsigned char *exact(const unsigned char *buf, size_t n)
{
    unsigned char *p = malloc(n ? n : 1);
    assert_non_null(p);
    if (n)
        memcpy(p, buf, n);
    return p;
}

/* ---- rules' state records ------------------------------------------------------ */

#define ZBUF (MD__REC_MAX + 16)

/* Encodes rec[size], checks it decodes back to the same bytes (with fmt set)
 * and that encoding is deterministic; returns the encoded length. */
static size_t state_round_trip(void *rec, size_t size)
{
    unsigned char enc[ZBUF], enc2[ZBUF];
    uint32_t fmt = MD__REC_FMT;
    memcpy(rec, &fmt, sizeof fmt);
    size_t n = md__rec_encode(rec, size, enc, sizeof enc);
    assert_true(n >= 4);
    assert_true(n <= size + 2);
    assert_int_equal(enc[0], MD__REC_ZMARK0);
    assert_int_equal(enc[1], MD__REC_ZMARK1);
    assert_int_equal(md__rec_encode(rec, size, enc2, sizeof enc2), n);
    assert_memory_equal(enc, enc2, n);
    unsigned char *val = exact(enc, n), *back = malloc(size);
    assert_non_null(back);
    assert_int_equal(md__rec_decode(val, n, back, size), 0);
    assert_memory_equal(back, rec, size);
    free(back);
    free(val);
    return n;
}

static void test_state_member_round_trip(void **state)
{
    (void)state;
    md__member_t m;
    memset(&m, 0, sizeof m);
    m.kind = 1, m.provider = MD__PROV_APPROVED;
    m.accepted_version = 3, m.balance = 1234567, m.sanctions = 2;
    memset(m.identity_hash, 'a', 64);
    strcpy(m.slot[MD__SLOT_RESTRICT].sanction_id, "x-1");
    m.slot[MD__SLOT_RESTRICT].set = 1, m.slot[MD__SLOT_RESTRICT].has_exp = 1;
    m.slot[MD__SLOT_RESTRICT].expires_at = 1795687200000LL;
    size_t n = state_round_trip(&m, sizeof m);
    assert_true(n < 140); /* 432 bytes raw */
}

static void test_state_all_zero_and_dense(void **state)
{
    (void)state;
    md__order_t o;
    memset(&o, 0, sizeof o);
    assert_int_equal(state_round_trip(&o, sizeof o), 4); /* the marker says it all */
    memset(&o, 0xA5, sizeof o);
    assert_int_equal(state_round_trip(&o, sizeof o), sizeof o + 2);
    /* the smallest records: fmt alone, and a flag */
    uint32_t only_fmt = 0;
    assert_int_equal(state_round_trip(&only_fmt, sizeof only_fmt), 4);
    md__flag_t f = {.fmt = 0, .on = 1};
    assert_int_equal(state_round_trip(&f, sizeof f), 4 + 1 + 1);
    unsigned char big[MD__REC_MAX];
    memset(big, 0x01, sizeof big);
    assert_int_equal(state_round_trip(big, sizeof big), sizeof big + 2);
}

/* Zero runs of every length near the cut-off, at the start, in the middle
 * and at the end, and runs long enough for two-byte varints. */
static void test_state_zero_runs(void **state)
{
    (void)state;
    unsigned char rec[MD__REC_MAX];
    for (size_t size = 4; size <= 300; size += 37) {
        for (size_t run = 1; run < size && run < 260; run = run < 8 ? run + 1 : run * 2) {
            for (size_t at = 4; at + run <= size; at += run + 3) {
                memset(rec, 0x7f, size);
                memset(rec + at, 0, run);
                state_round_trip(rec, size);
            }
        }
    }
    /* sparse and dense random records of many sizes */
    uint32_t seed = 42;
    for (int i = 0; i < 4000; i++) {
        size_t size = 4 + rnd_next(&seed) % (MD__REC_MAX - 3);
        uint32_t density = rnd_next(&seed) % 100;
        for (size_t j = 0; j < size; j++)
            rec[j] =
                rnd_next(&seed) % 100 < density ? (unsigned char)(1 + rnd_next(&seed) % 255) : 0;
        state_round_trip(rec, size);
    }
}

static void test_state_encode_refuses(void **state)
{
    (void)state;
    unsigned char rec[MD__REC_MAX + 1] = {0}, out[8];
    unsigned char enc[2 * MD__REC_MAX];
    assert_int_equal(md__rec_encode(rec, 3, enc, sizeof enc), 0);
    assert_int_equal(md__rec_encode(rec, MD__REC_MAX + 1, enc, sizeof enc), 0);
    memset(rec, 0x11, 64);
    assert_int_equal(md__rec_encode(rec, 64, out, sizeof out), 0); /* does not fit */
}

/* md__get over the in-memory state: compact and raw values, corrupt ones. */
static void test_state_get_put_and_raw(void **state)
{
    (void)state;
    rules_mem_t *m = rules_mem_new();
    md_state_t st = rules_mem_state(m);
    md_error_t err = {0};
    bool found = true;
    md__voucher_t v, back;
    memset(&v, 0, sizeof v);
    strcpy(v.holder, "alice");
    v.value = 300, v.expires_at = 1795687200000LL;
    assert_int_equal(md__put(&st, "v:v1", 4, &v, sizeof v, &err), MD_OK);
    size_t len = 0;
    assert_non_null(rules_mem_get(m, "v:v1", &len));
    assert_true(len < sizeof v / 3);
    assert_int_equal(md__get(&st, "v:v1", 4, &back, sizeof back, &found, &err), MD_OK);
    assert_true(found);
    assert_memory_equal(&back, &v, sizeof v);

    /* the raw form older versions wrote */
    strcpy(v.used_by, "o-9");
    assert_int_equal(st.put(st.ctx, "v:old", 5, &v, sizeof v), MD_OK);
    assert_int_equal(md__get(&st, "v:old", 5, &back, sizeof back, &found, &err), MD_OK);
    assert_memory_equal(&back, &v, sizeof v);

    /* raw with another fmt, raw of another size, compact of another size */
    md__voucher_t bad = v;
    bad.fmt = 2;
    assert_int_equal(st.put(st.ctx, "v:fmt", 5, &bad, sizeof bad), MD_OK);
    assert_int_equal(md__get(&st, "v:fmt", 5, &back, sizeof back, &found, &err), MD_ECORRUPT);
    assert_true(found);
    assert_int_equal(st.put(st.ctx, "v:short", 7, &v, sizeof v - 8), MD_OK);
    assert_int_equal(md__get(&st, "v:short", 7, &back, sizeof back, &found, &err), MD_ECORRUPT);
    md__review_t r;
    assert_int_equal(md__get(&st, "v:v1", 4, &r, sizeof r, &found, &err), MD_ECORRUPT);
    unsigned char zero[sizeof r];
    memset(zero, 0, sizeof zero);
    assert_memory_equal(&r, zero, sizeof r); /* left zeroed */
    assert_int_equal(md__get(&st, "v:none", 6, &back, sizeof back, &found, &err), MD_OK);
    assert_false(found);
    assert_int_equal(md__get_must(&st, "v:none", 6, &back, sizeof back, &err), MD_ECORRUPT);
    rules_mem_destroy(m);
}

static int decode_exact(const unsigned char *buf, size_t n, void *rec, size_t size)
{
    unsigned char *val = exact(buf, n);
    int rc = md__rec_decode(val, n, rec, size);
    free(val);
    return rc;
}

/* Hand-made values, each malformed in one way. Record size 16. */
static void test_state_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *why;
        unsigned char b[12];
        size_t n;
    } bad[] = {
        {"empty", {0}, 0},
        {"marker cut", {0xFE, 'z', 16}, 3},
        {"other marker", {0xFE, 'y', 16, 0}, 4},
        {"other size", {0xFE, 'z', 17, 0}, 4},
        {"size high byte", {0xFE, 'z', 16, 1}, 4},
        {"literal past size", {0xFE, 'z', 16, 0, 13}, 5},
        {"literal cut", {0xFE, 'z', 16, 0, 3, 1, 2}, 7},
        {"zeros past size", {0xFE, 'z', 16, 0, 1, 1, 12, 1, 1}, 9},
        {"empty zero run", {0xFE, 'z', 16, 0, 1, 1, 0, 1, 1}, 9},
        {"trailing zero run", {0xFE, 'z', 16, 0, 1, 1, 3}, 7},
        {"empty literal later", {0xFE, 'z', 16, 0, 1, 1, 3, 0, 3, 1, 1}, 11},
        {"empty literal alone", {0xFE, 'z', 16, 0, 0}, 5},
        {"overlong varint", {0xFE, 'z', 16, 0, 0x81, 0x00, 1}, 7},
        {"varint cut", {0xFE, 'z', 16, 0, 0x81}, 5},
        {"four-byte varint", {0xFE, 'z', 16, 0, 0x81, 0x80, 0x80, 0x00}, 8},
        {"zero-run varint cut", {0xFE, 'z', 16, 0, 1, 1, 0x83}, 7},
    };
    unsigned char rec[16];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(rec, 0x55, sizeof rec);
        if (decode_exact(bad[i].b, bad[i].n, rec, sizeof rec) != -1)
            fail_msg("accepted: %s", bad[i].why);
        for (size_t j = 0; j < sizeof rec; j++)
            assert_int_equal(rec[j], 0);
    }
    /* and the well-formed neighbours of some of them */
    static const unsigned char good[] = {0xFE, 'z', 16, 0, 1, 1, 3, 1, 2};
    assert_int_equal(decode_exact(good, sizeof good, rec, sizeof rec), 0);
    uint32_t fmt;
    memcpy(&fmt, rec, sizeof fmt);
    assert_int_equal(fmt, MD__REC_FMT);
    static const unsigned char want[12] = {1, 0, 0, 0, 2};
    assert_memory_equal(rec + 4, want, sizeof want);
    static const unsigned char lead[] = {0xFE, 'z', 16, 0, 0, 4, 1, 9};
    assert_int_equal(decode_exact(lead, sizeof lead, rec, sizeof rec), 0);
    assert_int_equal(rec[8], 9);
}

/* Every truncation and every single-byte change of real encodings: never a
 * read past the value, and a truncation inside a run is always refused. */
/* The body decoder without any canonical check: literal, zero run, literal...
 * with varints of at most 3 bytes (the reference for the test below). */
static int lenient_decode(const unsigned char *p, size_t len, unsigned char *r, size_t size)
{
    const unsigned char *end = p + len;
    memset(r, 0, size);
    if (len < 4 || p[0] != MD__REC_ZMARK0 || p[1] != MD__REC_ZMARK1 ||
        ((size_t)p[2] | (size_t)p[3] << 8) != size)
        return -1;
    p += 4;
    size_t at = 4;
    for (int lit = 1; p < end; lit = !lit) {
        size_t v = 0;
        int n = 0;
        while (n < 3 && p < end && (p[0] & 0x80))
            v |= (size_t)(*p++ & 0x7f) << (7 * n++);
        if (n == 3 || p == end)
            return -1;
        v |= (size_t)(*p++ & 0x7f) << (7 * n);
        if (v > size - at || (lit && (size_t)(end - p) < v))
            return -1;
        if (lit)
            memcpy(r + at, p, v), p += v;
        at += v;
    }
    return 0;
}

/* md__rec_decode checks the canonical form run by run (it used to re-encode
 * and compare): it must accept exactly the values that decode and re-encode to
 * themselves, and give the same record. Values are built from random runs of
 * zeros and non-zeros, with random varints, so that most are near-canonical. */
static void test_state_canonical_against_reencode(void **state)
{
    (void)state;
    enum { SIZE = 40 };
    uint32_t seed = 12345;
    int accepted = 0, refused = 0;
    for (int i = 0; i < 200000; i++) {
        unsigned char v[ZBUF], back[SIZE], ref[SIZE], enc[ZBUF];
        size_t n = 4;
        v[0] = MD__REC_ZMARK0, v[1] = MD__REC_ZMARK1, v[2] = SIZE, v[3] = 0;
        int runs = (int)(rnd_next(&seed) % 6);
        for (int k = 0; k < runs && n < 60; k++) {
            size_t cnt = rnd_next(&seed) % 7;
            bool overlong = rnd_next(&seed) % 40 == 0;
            v[n++] = (unsigned char)(cnt | (overlong ? 0x80 : 0));
            if (overlong)
                v[n++] = 0;
            if (k % 2 == 0) /* a literal: bytes, zero one time in three */
                for (size_t j = 0; j < cnt && n < 60; j++)
                    v[n++] =
                        rnd_next(&seed) % 3 == 0 ? 0 : (unsigned char)(1 + rnd_next(&seed) % 9);
        }
        int want = lenient_decode(v, n, ref, SIZE);
        if (want == 0) {
            uint32_t fmt = MD__REC_FMT;
            memcpy(ref, &fmt, sizeof fmt);
            size_t m = md__rec_encode(ref, SIZE, enc, sizeof enc);
            want = m == n && memcmp(enc, v, n) == 0 ? 0 : -1;
        }
        int got = decode_exact(v, n, back, SIZE);
        assert_int_equal(got, want);
        if (got == 0)
            assert_memory_equal(back, ref, SIZE);
        got == 0 ? accepted++ : refused++;
    }
    assert_true(accepted > 1000 && refused > 1000); /* both sides were exercised */
}

static void test_state_mutations(void **state)
{
    (void)state;
    md__order_t o, back;
    memset(&o, 0, sizeof o);
    o.fmt = MD__REC_FMT, o.status = MD__OS_PAID;
    strcpy(o.buyer, "bob"), strcpy(o.provider, "carol"), strcpy(o.store_id, "st-1");
    strcpy(o.product_id, "p-17");
    o.unit_price = 1990, o.quantity = 2, o.amount = 3980, o.escrow = 3980;
    unsigned char enc[ZBUF];
    size_t n = md__rec_encode(&o, sizeof o, enc, sizeof enc);
    assert_true(n > 4);
    /* a cut right after a literal run is well-formed, but loses the later runs */
    for (size_t cut = 0; cut < n; cut++) {
        if (decode_exact(enc, cut, &back, sizeof back) == 0)
            assert_true(memcmp(&back, &o, sizeof o) != 0);
        else
            assert_true(back.fmt == 0 && back.buyer[0] == 0 && back.amount == 0); /* zeroed */
    }
    assert_int_equal(decode_exact(enc, n, &back, sizeof back), 0);
    assert_memory_equal(&back, &o, sizeof o);
    for (size_t i = 0; i < n; i++) {
        for (unsigned x = 1; x < 256; x++) {
            unsigned char m[ZBUF];
            memcpy(m, enc, n);
            m[i] ^= (unsigned char)x;
            (void)decode_exact(m, n, &back, sizeof back);
        }
    }
    uint32_t seed = 7;
    for (int i = 0; i < 20000; i++) {
        unsigned char junk[64];
        size_t len = rnd_next(&seed) % sizeof junk;
        for (size_t j = 0; j < len; j++)
            junk[j] = (unsigned char)rnd_next(&seed);
        if (len >= 4 && i % 2)
            junk[0] = 0xFE, junk[1] = 'z', junk[2] = sizeof back & 0xff, junk[3] = sizeof back >> 8;
        (void)decode_exact(junk, len, &back, sizeof back);
    }
}

/* ---- projection records -------------------------------------------------------- */

typedef struct t_rec {
    int64_t fmt, none, min1, max, neg, zero, ts, one;
    char id[PJ_ID], text[PJ_TEXT], clause[PJ_CLAUSE];
} t_rec_t;

static const pj_str_desc_t t_strs[] = {
    {offsetof(t_rec_t, id), PJ_ID},
    {offsetof(t_rec_t, text), PJ_TEXT},
    {offsetof(t_rec_t, clause), PJ_CLAUSE},
};
static const pj_layout_t t_layout = {
    ('T' << 8) | PJ_FORMAT, offsetof(t_rec_t, id), sizeof(t_rec_t), 3, t_strs,
};

/* A prefix that is not whole int64_t fields: its tail is kept as it is. */
typedef struct t_odd {
    int64_t fmt, a;
    int32_t b;
    char s[PJ_CLAUSE];
} t_odd_t;
static const pj_str_desc_t t_odd_strs[] = {{offsetof(t_odd_t, s), PJ_CLAUSE}};
static const pj_layout_t t_odd_layout = {
    ('U' << 8) | PJ_FORMAT, offsetof(t_odd_t, s), sizeof(t_odd_t), 1, t_odd_strs,
};

static void t_fill(t_rec_t *r)
{
    memset(r, 0, sizeof *r);
    r->fmt = t_layout.fmt;
    r->none = PJ_NONE, r->min1 = INT64_MIN + 1, r->max = INT64_MAX;
    r->neg = -1234567, r->zero = 0, r->ts = 1795687200000LL, r->one = -1;
    memset(r->id, 'i', PJ_ID - 1);
    memset(r->text, 't', PJ_TEXT - 1);
    strcpy(r->clause, "3.2.1");
}

static size_t varint_len(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

static void test_pj_round_trip(void **state)
{
    (void)state;
    t_rec_t r, back;
    md_buf_t b;
    md_buf_init(&b);
    t_fill(&r);
    md__pj_pack(&t_layout, &r, &b);
    size_t want = varint_len(2 * (uint64_t)t_layout.fmt + 1) + 1 /* PJ_NONE */ + 10 /* MIN+1 */ +
                  10 /* MAX */ + varint_len(2 * 1234567 - 1 + 1) + 1 /* 0 */ +
                  varint_len(2 * (uint64_t)r.ts + 1) + 1 /* -1 */ + 1 + (PJ_ID - 1) + 2 +
                  (PJ_TEXT - 1) + 1 + 5;
    assert_int_equal(b.len, want);
    assert_int_equal(varint_len(2 * (uint64_t)r.ts + 1), 6); /* ms timestamps: 6 bytes */
    unsigned char *val = exact(b.p, b.len);
    assert_int_equal(md__pj_unpack(&t_layout, val, b.len, &back), 0);
    assert_memory_equal(&back, &r, sizeof r);
    free(val);

    /* every value of the int64 extremes in every field position, empty strings */
    static const int64_t vals[] = {
        PJ_NONE, INT64_MIN + 1, INT64_MIN + 2, -2,       -1, 0, 1, 63, 64, -64, -65,
        127,     128,           INT64_MAX - 1, INT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        memset(&r, 0, sizeof r);
        r.fmt = t_layout.fmt;
        for (size_t j = 0; j < 7; j++) /* the seven fields after fmt */
            memcpy((unsigned char *)&r + offsetof(t_rec_t, none) + 8 * j,
                   &vals[(i + j) % (sizeof vals / sizeof vals[0])], sizeof(int64_t));
        md__pj_pack(&t_layout, &r, &b);
        val = exact(b.p, b.len);
        assert_int_equal(md__pj_unpack(&t_layout, val, b.len, &back), 0);
        assert_memory_equal(&back, &r, sizeof r);
        free(val);
    }
    /* an absent time and a zero are one byte each */
    memset(&r, 0, sizeof r);
    r.fmt = t_layout.fmt, r.none = PJ_NONE;
    md__pj_pack(&t_layout, &r, &b);
    assert_int_equal(b.len, varint_len(2 * (uint64_t)t_layout.fmt + 1) + 7 + 3);
    md_buf_release(&b);
}

static void test_pj_odd_prefix(void **state)
{
    (void)state;
    t_odd_t r, back;
    md_buf_t b;
    md_buf_init(&b);
    memset(&r, 0, sizeof r);
    r.fmt = t_odd_layout.fmt, r.a = PJ_NONE, r.b = -7;
    strcpy(r.s, "x");
    md__pj_pack(&t_odd_layout, &r, &b);
    assert_int_equal(b.len, varint_len(2 * (uint64_t)r.fmt + 1) + 1 + 4 + 1 + 1);
    unsigned char *val = exact(b.p, b.len);
    assert_int_equal(md__pj_unpack(&t_odd_layout, val, b.len, &back), 0);
    assert_memory_equal(&back, &r, sizeof r);
    free(val);
    md_buf_release(&b);
}

static int unpack_exact(const unsigned char *buf, size_t n, t_rec_t *rec)
{
    unsigned char *val = exact(buf, n);
    int rc = md__pj_unpack(&t_layout, val, n, rec);
    free(val);
    return rc;
}

/* Appends a minimal varint of v to out at *n. */
static void put_varint(unsigned char *out, size_t *n, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        out[(*n)++] = (unsigned char)(v | 0x80);
    out[(*n)++] = (unsigned char)v;
}

/* A hand-made value: fmt, seven zeros, then strings of the lengths given. */
static size_t t_value_fmt(unsigned char *out, int64_t fmt, size_t l0, size_t l1, size_t l2)
{
    size_t n = 0;
    put_varint(out, &n, 2 * (uint64_t)fmt + 1);
    for (int i = 0; i < 7; i++)
        out[n++] = 1;
    put_varint(out, &n, l0);
    memset(out + n, 'a', l0), n += l0;
    put_varint(out, &n, l1);
    memset(out + n, 'b', l1), n += l1;
    put_varint(out, &n, l2);
    memset(out + n, 'c', l2), n += l2;
    return n;
}

static size_t t_value(unsigned char *out, size_t l0, size_t l1, size_t l2)
{
    return t_value_fmt(out, t_layout.fmt, l0, l1, l2);
}

static void test_pj_malformed(void **state)
{
    (void)state;
    t_rec_t r;
    unsigned char v[2048];
    size_t n = t_value(v, PJ_ID - 1, PJ_TEXT - 1, PJ_CLAUSE - 1);
    assert_int_equal(unpack_exact(v, n, &r), 0);
    assert_int_equal(strlen(r.text), PJ_TEXT - 1);
    /* every truncation, and a trailing byte */
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(unpack_exact(v, cut, &r), -1);
    v[n] = 0;
    assert_int_equal(unpack_exact(v, n + 1, &r), -1);
    /* a string as long as its capacity */
    assert_int_equal(unpack_exact(v, t_value(v, PJ_ID, 0, 0), &r), -1);
    assert_int_equal(unpack_exact(v, t_value(v, 0, PJ_TEXT, 0), &r), -1);
    assert_int_equal(unpack_exact(v, t_value(v, 0, 0, PJ_CLAUSE), &r), -1);
    /* a string length beyond the value, and a huge one */
    n = t_value(v, 0, 0, 0);
    v[n - 1] = 5;
    assert_int_equal(unpack_exact(v, n, &r), -1);
    unsigned char huge[64];
    size_t hn = t_value(huge, 0, 0, 0) - 1;
    for (int i = 0; i < 9; i++)
        huge[hn++] = 0xff;
    huge[hn++] = 0x01;
    assert_int_equal(unpack_exact(huge, hn, &r), -1);
    /* another fmt: of another record type, and of the previous PJ_FORMAT */
    assert_int_equal(unpack_exact(v, t_value_fmt(v, t_layout.fmt + 256, 0, 0, 0), &r), -1);
    assert_int_equal(unpack_exact(v, t_value_fmt(v, t_layout.fmt - 1, 0, 0, 0), &r), -1);
    /* overlong varints: a padded zero, eleven bytes, a tenth byte beyond 64 bits */
    n = t_value(v, 0, 0, 0);
    size_t f = varint_len(2 * (uint64_t)t_layout.fmt + 1);
    unsigned char w[64];
    memcpy(w, v, f), w[f] = 0x81, w[f + 1] = 0x00;
    memcpy(w + f + 2, v + f + 1, n - f - 1);
    assert_int_equal(unpack_exact(w, n + 1, &r), -1);
    memcpy(w, v, f);
    for (int i = 0; i < 10; i++)
        w[f + (size_t)i] = 0x80;
    w[f + 10] = 0x00;
    memcpy(w + f + 11, v + f + 1, n - f - 1);
    assert_int_equal(unpack_exact(w, n + 10, &r), -1);
    memcpy(w, v, f);
    for (int i = 0; i < 9; i++)
        w[f + (size_t)i] = 0xff;
    w[f + 9] = 0x02;
    memcpy(w + f + 10, v + f + 1, n - f - 1);
    assert_int_equal(unpack_exact(w, n + 9, &r), -1);
    w[f + 9] = 0x01; /* the largest varint: 2^64 - 1, i.e. INT64_MAX */
    assert_int_equal(unpack_exact(w, n + 9, &r), 0);
    assert_true(r.none == INT64_MAX);
}

/* Single-byte changes and random bytes: never a read past the value. */
static void test_pj_mutations(void **state)
{
    (void)state;
    t_rec_t r, back;
    md_buf_t b;
    md_buf_init(&b);
    t_fill(&r);
    strcpy(r.text, "short");
    md__pj_pack(&t_layout, &r, &b);
    unsigned char m[1024];
    assert_true(b.len <= sizeof m);
    for (size_t i = 0; i < b.len; i++) {
        for (unsigned x = 1; x < 256; x += 3) {
            memcpy(m, b.p, b.len);
            m[i] ^= (unsigned char)x;
            (void)unpack_exact(m, b.len, &back);
        }
    }
    uint32_t seed = 11;
    for (int i = 0; i < 20000; i++) {
        size_t len = rnd_next(&seed) % 128;
        memcpy(m, b.p, b.len < 4 ? b.len : 4);
        for (size_t j = i % 2 ? 4 : 0; j < len; j++)
            m[j] = (unsigned char)rnd_next(&seed);
        (void)unpack_exact(m, len, &back);
    }
    md_buf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_member_round_trip),
        cmocka_unit_test(test_state_all_zero_and_dense),
        cmocka_unit_test(test_state_zero_runs),
        cmocka_unit_test(test_state_encode_refuses),
        cmocka_unit_test(test_state_get_put_and_raw),
        cmocka_unit_test(test_state_malformed),
        cmocka_unit_test(test_state_mutations),
        cmocka_unit_test(test_state_canonical_against_reencode),
        cmocka_unit_test(test_pj_round_trip),
        cmocka_unit_test(test_pj_odd_prefix),
        cmocka_unit_test(test_pj_malformed),
        cmocka_unit_test(test_pj_mutations),
    };
    return cmocka_run_group_tests_name("codec", tests, NULL, NULL);
}
