/*
 * state.c - keys and typed access to the aggregate records of state.h, and
 * their compact store form (zero runs squeezed out; format in state.h).
 */
#include <stdlib.h>
#include <string.h>

#include "state.h"

const char *const md__product_statuses[] = {"listed",   "pending_review", "denied",
                                            "delisted", "removed",        NULL};
const char *const md__order_statuses[] = {"placed",    "paid",   "delivered", "completed",
                                          "cancelled", "closed", "refunded",  "partially_refunded",
                                          NULL};
const char *const md__complaint_statuses[] = {"open",  "arbitration", "withdrawn",
                                              "ruled", "closed",      NULL};

/* Appends s to key at *n; keys are bounded by the id and text limits, so an
 * overflow is a programming error. */
static void key_add(char *key, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l >= MD__KEY_MAX)
        abort();
    memcpy(key + *n, s, l);
    *n += l;
    key[*n] = '\0';
}

size_t md__key(char *key, const char *prefix, const char *id)
{
    size_t n = 0;
    key[0] = '\0';
    key_add(key, &n, prefix);
    key_add(key, &n, id);
    return n;
}

size_t md__key3(char *key, const char *prefix, const char *a, const char *b, const char *c)
{
    size_t n = md__key(key, prefix, a);
    key_add(key, &n, "/");
    key_add(key, &n, b);
    if (c != NULL) {
        key_add(key, &n, "/");
        key_add(key, &n, c);
    }
    return n;
}

md_err_t md__get_raw(const md_state_t *st, const char *key, const void **val, size_t *len,
                     bool *found, md_error_t *err)
{
    md_err_t rc = st->get(st->ctx, key, strlen(key), val, len);
    *found = rc == MD_OK;
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc != MD_OK)
        return md_error_set(err, rc, "state get '%s' failed", key);
    return MD_OK;
}

/* ---- the compact record form (see state.h) ----------------------------------- */

#define ZMIN 3                  /* shortest zero run cut out of a literal run */
#define ZCAP (MD__REC_MAX + 16) /* encoder scratch: a record needs <= size + 2 */
#define VARINT_MAX 3            /* 21 bits, enough for any offset < MD__REC_MAX */

_Static_assert(MD__REC_MAX < (1u << 16), "the size field is 2 bytes");
_Static_assert(MD__REC_MAX < (1u << (7 * VARINT_MAX)), "runs fit in a varint");
_Static_assert(sizeof(md__member_t) <= MD__REC_MAX && sizeof(md__order_t) <= MD__REC_MAX &&
                   sizeof(md__product_t) <= MD__REC_MAX && sizeof(md__consent_t) <= MD__REC_MAX &&
                   sizeof(md__sanction_t) <= MD__REC_MAX &&
                   sizeof(md__complaint_t) <= MD__REC_MAX && sizeof(md__store_t) <= MD__REC_MAX &&
                   sizeof(md__voucher_t) <= MD__REC_MAX && sizeof(md__review_t) <= MD__REC_MAX,
               "every record fits the compact form");

/* A bounded writer: w moves on, or stays put once something did not fit. */
typedef struct zout {
    unsigned char *w, *end;
    bool full;
} zout_t;

static void z_bytes(zout_t *o, const unsigned char *p, size_t n)
{
    if (o->full || (size_t)(o->end - o->w) < n) {
        o->full = true;
        return;
    }
    memcpy(o->w, p, n);
    o->w += n;
}

static void z_varint(zout_t *o, size_t v)
{
    unsigned char b[10]; /* any size_t up to 64 bits */
    size_t n = 0;
    do {
        b[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        b[n++] |= v ? 0x80 : 0;
    } while (v);
    z_bytes(o, b, n);
}

/* End of the zero run starting at i (i itself when r[i] != 0), bounded by end;
 * a word at a time (records are mostly zeros: this and literal_end were a
 * tenth of the engine's time byte by byte). */
static size_t zero_run_end(const unsigned char *r, size_t i, size_t end)
{
    uint64_t w;
    for (; i + sizeof w <= end; i += sizeof w) {
        memcpy(&w, r + i, sizeof w);
        if (w != 0)
            break;
    }
    while (i < end && r[i] == 0)
        i++;
    return i;
}

/* End of the literal run starting at i: the first zero run of ZMIN or more
 * bytes, or end. r[end - 1] != 0, so a zero run never reaches end. */
static size_t literal_end(const unsigned char *r, size_t i, size_t end)
{
    while (i < end) {
        const unsigned char *z = memchr(r + i, 0, end - i);
        if (z == NULL)
            return end;
        size_t zs = (size_t)(z - r), ze = zero_run_end(r, zs, end);
        if (ze - zs >= ZMIN)
            return zs;
        i = ze;
    }
    return end;
}

/* The length of @p r without its trailing zeros, at least @p min. */
static size_t trim_zeros(const unsigned char *r, size_t size, size_t min)
{
    uint64_t w;
    while (size >= min + sizeof w) {
        memcpy(&w, r + size - sizeof w, sizeof w);
        if (w != 0)
            break;
        size -= sizeof w;
    }
    while (size > min && r[size - 1] == 0)
        size--;
    return size;
}

size_t md__rec_encode(const void *rec, size_t size, unsigned char *out, size_t cap)
{
    const unsigned char *r = rec;
    zout_t o = {out, out + cap, false};
    if (size < sizeof(uint32_t) || size > MD__REC_MAX)
        return 0;
    unsigned char head[4] = {MD__REC_ZMARK0, MD__REC_ZMARK1, (unsigned char)(size & 0xff),
                             (unsigned char)(size >> 8)};
    z_bytes(&o, head, sizeof head);
    size_t last = trim_zeros(r, size, sizeof(uint32_t)); /* zeros from last on are implied */
    for (size_t i = sizeof(uint32_t); i < last;) {
        size_t lit = literal_end(r, i, last);
        z_varint(&o, lit - i);
        z_bytes(&o, r + i, lit - i);
        if (lit == last)
            break;
        size_t zend = zero_run_end(r, lit, last);
        z_varint(&o, zend - lit);
        i = zend;
    }
    return o.full ? 0 : (size_t)(o.w - out);
}

/* A minimal LEB128 varint of at most VARINT_MAX bytes, no more than max. */
static int z_get_varint(const unsigned char **p, const unsigned char *end, size_t max, size_t *v)
{
    if (*p < end && **p < 0x80) { /* one byte, the usual (runs under 128) */
        *v = *(*p)++;
        return *v <= max ? 0 : -1;
    }
    size_t x = 0;
    for (int n = 0; n < VARINT_MAX; n++) {
        if (*p == end)
            return -1;
        unsigned char b = *(*p)++;
        x |= (size_t)(b & 0x7f) << (7 * n);
        if (!(b & 0x80)) {
            if (b == 0 && n > 0)
                return -1; /* overlong */
            *v = x;
            return x <= max ? 0 : -1;
        }
    }
    return -1;
}

/*
 * Whether a literal run is one md__rec_encode writes: it ends with a non-zero
 * byte (trailing zeros are cut or start a zero run), holds no run of ZMIN
 * zeros (the encoder cuts those out), and, unless it is the first, starts with
 * a non-zero byte (the zero run before it would have taken that zero). Only
 * the first literal may be empty (the record starts with a zero run).
 */
static bool canonical_literal(const unsigned char *p, size_t n, bool first)
{
    if (n == 0)
        return first;
    if (p[n - 1] == 0 || (!first && p[0] == 0))
        return false;
    for (const unsigned char *z = memchr(p, 0, n), *end = p + n; z != NULL;) {
        size_t run = zero_run_end(z, 0, (size_t)(end - z));
        if (run >= ZMIN)
            return false;
        z = memchr(z + run, 0, (size_t)(end - z - run));
    }
    return true;
}

/*
 * Decodes the body and checks, run by run, that it is what md__rec_encode
 * writes for the record it decodes to: a value that decodes but is not (a zero
 * run of one byte, zeros left in a literal...) is refused, so equal records
 * stay equal bytes whatever wrote them (tests/fuzz: record; test_codec checks
 * this against re-encoding). Checking here costs a scan of the literals; the
 * re-encode it replaces was ~7% of the writer's instructions, on every read.
 * Minimal varints are checked by z_get_varint.
 */
static int rec_decode_body(const unsigned char *p, const unsigned char *end, unsigned char *r,
                           size_t size)
{
    size_t at = sizeof(uint32_t), lit, zeros;
    for (bool first = true; p < end; first = false) {
        if (z_get_varint(&p, end, size - at, &lit) || (size_t)(end - p) < lit ||
            !canonical_literal(p, lit, first))
            return -1;
        memcpy(r + at, p, lit);
        p += lit;
        at += lit;
        if (p == end)
            return lit == 0 ? -1 : 0; /* "" then nothing: the empty body says that */
        if (z_get_varint(&p, end, size - at, &zeros) || zeros < ZMIN || p == end)
            return -1; /* a trailing zero run is implied, never written */
        at += zeros;
    }
    return 0;
}

int md__rec_decode(const void *val, size_t len, void *rec, size_t size)
{
    const unsigned char *p = val;
    uint32_t fmt = MD__REC_FMT;
    memset(rec, 0, size);
    if (size < sizeof fmt || size > MD__REC_MAX || len < 4 || p[0] != MD__REC_ZMARK0 ||
        p[1] != MD__REC_ZMARK1 || ((size_t)p[2] | (size_t)p[3] << 8) != size)
        return -1;
    if (rec_decode_body(p + 4, p + len, rec, size) != 0) {
        memset(rec, 0, size);
        return -1;
    }
    memcpy(rec, &fmt, sizeof fmt);
    return 0;
}

/* The raw form of older versions: the struct as it is in memory. */
static bool is_raw_record(const void *val, size_t len, size_t size)
{
    uint32_t fmt = 0;
    if (len != size || len < sizeof fmt)
        return false;
    memcpy(&fmt, val, sizeof fmt);
    return fmt == MD__REC_FMT;
}

/* A compact record written before fields were appended to its struct (a smaller
 * size): decoded as that size, the new fields left 0. */
static int decode_older(const void *val, size_t len, void *rec, size_t size)
{
    const unsigned char *p = val;
    if (len < 4 || p[0] != MD__REC_ZMARK0 || p[1] != MD__REC_ZMARK1)
        return -1;
    size_t old = (size_t)p[2] | (size_t)p[3] << 8;
    if (old >= size || old < sizeof(uint32_t) || md__rec_decode(val, len, rec, old) != 0) {
        memset(rec, 0, size);
        return -1;
    }
    return 0;
}

md_err_t md__get(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                 bool *found, md_error_t *err)
{
    const void *val = NULL;
    size_t len = 0;
    md_err_t rc = st->get(st->ctx, key, klen, &val, &len);
    *found = rc == MD_OK;
    if (rc != MD_OK) /* decoding zeroes rec itself */
        memset(rec, 0, size);
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc != MD_OK)
        return md_error_set(err, rc, "state get '%.*s' failed", (int)klen, key);
    if (is_raw_record(val, len, size)) {
        memcpy(rec, val, size);
        return MD_OK;
    }
    if (md__rec_decode(val, len, rec, size) != 0 && decode_older(val, len, rec, size) != 0)
        return md_error_set(err, MD_ECORRUPT,
                            "state record '%.*s' (%zu bytes) is not a record of size %zu",
                            (int)klen, key, len, size);
    return MD_OK;
}

md_err_t md__get_must(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                      md_error_t *err)
{
    bool found;
    md_err_t rc = md__get(st, key, klen, rec, size, &found, err);
    if (rc == MD_OK && !found)
        return md_error_set(err, MD_ECORRUPT, "state record '%s' missing", key);
    return rc;
}

md_err_t md__put(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                 md_error_t *err)
{
    uint32_t fmt = MD__REC_FMT;
    unsigned char buf[ZCAP];
    memcpy(rec, &fmt, sizeof fmt);
    size_t n = md__rec_encode(rec, size, buf, sizeof buf);
    if (n == 0)
        return md_error_set(err, MD_EINVAL, "state record '%.*s' of size %zu cannot be stored",
                            (int)klen, key, size);
    md_err_t rc = st->put(st->ctx, key, klen, buf, n);
    if (rc != MD_OK)
        return md_error_set(err, rc, "state put '%.*s' failed", (int)klen, key);
    return MD_OK;
}

md_err_t md__put_raw(const md_state_t *st, const char *key, const void *val, size_t len,
                     md_error_t *err)
{
    md_err_t rc = st->put(st->ctx, key, strlen(key), val, len);
    if (rc != MD_OK)
        return md_error_set(err, rc, "state put '%s' failed", key);
    return MD_OK;
}

bool md__slot_active(const md__slot_t *s, int64_t now)
{
    return s->set && (!s->has_exp || now < s->expires_at);
}
