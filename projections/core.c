/*
 * core.c - helpers shared by the projections (see pj.h): event types, a
 * one-pass reader of the event data map, the record codec (varints; the
 * format is under "records"), keys, UTC days, JSON helpers and the paged
 * prefix scan used by every list query. Bulk mode, in which replays gather
 * their writes and write them sorted, is in bulk.c (bulk_cache.c,
 * bulk_sort.c).
 */
#include <stdlib.h>
#include <string.h>

#include "pj.h"

/* ---- event types --------------------------------------------------------- */

#define PJ_TYPE_NAME_(n) #n,
static const char *const type_names[PJ_T_COUNT_] = {PJ_TYPES(PJ_TYPE_NAME_)};
#undef PJ_TYPE_NAME_

static int cmp_type(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

pj_type_t md__pj_type(const char *s)
{
    const char *const *hit = bsearch(s, type_names, PJ_T_COUNT_, sizeof type_names[0], cmp_type);
    return hit ? (pj_type_t)(hit - type_names) : PJ_T_UNKNOWN;
}

const char *md__pj_type_name(pj_type_t t)
{
    return t >= 0 && t < PJ_T_COUNT_ ? type_names[t] : "";
}

/* ---- event data: one pass over a flat map (the base layer's reader) ---------- */

static int field_value(md_mp_t *m, pj_field_t *f)
{
    bool b;
    f->kind = PJ_V_OTHER;
    switch (md__mp_peek(m)) {
    case MD_MP_NIL: f->kind = PJ_V_NIL; return md__mp_nil(m);
    case MD_MP_BOOL:
        f->kind = PJ_V_BOOL;
        if (md__mp_bool(m, &b))
            return -1;
        f->i = b;
        return 0;
    case MD_MP_INT:
        if (md__mp_int(m, &f->i) == 0)
            return f->kind = PJ_V_INT, 0;
        break; /* above INT64_MAX: another value */
    case MD_MP_STR: f->kind = PJ_V_STR; return md__mp_str(m, &f->s, &f->slen);
    default: break;
    }
    return md__mp_skip(m);
}

int md__pj_fields_parse(pj_fields_t *fs, const void *data, size_t len)
{
    md_mp_t m;
    uint32_t n;
    md__mp_init(&m, data, len);
    fs->n = 0;
    if (md__mp_map(&m, &n) || n > MD_DATA_FIELDS_MAX)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        pj_field_t *f = &fs->f[i];
        if (md__mp_str(&m, &f->key, &f->klen) || field_value(&m, f))
            return -1;
    }
    fs->n = n;
    return 0;
}

/* ---- field readers ------------------------------------------------------------- */

int64_t md__pj_lookup(const char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], s) == 0)
            return (int64_t)i;
    return -1;
}

int64_t md__pj_enum(const pj_ctx_t *c, const char *key, const char *const *names, size_t n)
{
    const pj_field_t *f = md__pj_field(c, key);
    if (f == NULL || f->kind != PJ_V_STR)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (strlen(names[i]) == f->slen && memcmp(names[i], f->s, f->slen) == 0)
            return (int64_t)i;
    return -1;
}

/* ---- records --------------------------------------------------------------------- */

/* Packed: each int64_t of the numeric prefix as a varint (LEB128: 7 bits a
 * byte, low first, minimal, at most 10 bytes) of zigzag(v) + 1, wrapping, so
 * PJ_NONE (INT64_MIN) is the byte 0x00, 0 is 0x01 and small magnitudes take
 * one or two bytes; then each string as a varint length and its bytes. The
 * prefix is read as whole 8-byte words (every layout's prefix is int64_t
 * fields); a prefix of fixed % 8 more bytes would keep those as they are in
 * memory. Deterministic: records are zeroed before they are filled, so equal
 * records are equal bytes. */

#define PJ_VARINT_MAX 10


static uint64_t pj_zigzag1(int64_t v)
{
    uint64_t u = (uint64_t)v;
    return ((u << 1) ^ (v < 0 ? UINT64_MAX : 0)) + 1u;
}

static int64_t pj_unzigzag1(uint64_t z)
{
    uint64_t u = z - 1u;
    return (int64_t)((u >> 1) ^ (0u - (u & 1u)));
}

static unsigned char *pj_put_varint(unsigned char *w, uint64_t v)
{
    while (v >= 0x80) {
        *w++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *w++ = (unsigned char)v;
    return w;
}

/* A minimal varint of at most 10 bytes that fits 64 bits; -1 when truncated,
 * overlong or too large. */
static int pj_get_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
    uint64_t x = 0;
    if (*p < end && **p < 0x80) { /* one byte: most fields */
        *v = *(*p)++;
        return 0;
    }
    for (int n = 0; n < PJ_VARINT_MAX; n++) {
        if (*p == end)
            return -1;
        unsigned char b = *(*p)++;
        if (n == PJ_VARINT_MAX - 1 && b > 1)
            return -1; /* beyond 64 bits */
        x |= (uint64_t)(b & 0x7f) << (7 * n);
        if (!(b & 0x80)) {
            *v = x;
            return b == 0 && n > 0 ? -1 : 0;
        }
    }
    return -1;
}

void md__pj_pack(const pj_layout_t *l, const void *rec, md_buf_t *out)
{
    const unsigned char *r = rec;
    size_t words = l->fixed / 8, tail = l->fixed % 8;
    md_buf_reset(out);
    unsigned char *w = md_buf_reserve(out, words * PJ_VARINT_MAX + tail), *start = w;
    for (size_t i = 0; i < words; i++) {
        int64_t v;
        memcpy(&v, r + 8 * i, sizeof v);
        w = pj_put_varint(w, pj_zigzag1(v));
    }
    memcpy(w, r + 8 * words, tail);
    out->len += (size_t)(w - start) + tail;
    for (size_t i = 0; i < l->nstr; i++) {
        const char *s = (const char *)r + l->str[i].off;
        size_t n = strnlen(s, l->str[i].cap - 1u);
        w = start = md_buf_reserve(out, PJ_VARINT_MAX + n);
        w = pj_put_varint(w, n);
        memcpy(w, s, n);
        out->len += (size_t)(w - start) + n;
    }
}

int md__pj_unpack(const pj_layout_t *l, const void *val, size_t len, void *rec)
{
    const unsigned char *p = val, *end = p + len;
    unsigned char *r = rec;
    size_t words = l->fixed / 8, tail = l->fixed % 8;
    uint64_t u;
    memset(rec, 0, l->size);
    if (words == 0)
        return -1; /* no fmt */
    for (size_t i = 0; i < words; i++) {
        if (pj_get_varint(&p, end, &u) != 0)
            return -1;
        int64_t v = pj_unzigzag1(u);
        if (i == 0 && v != l->fmt)
            return -1;
        memcpy(r + 8 * i, &v, sizeof v);
    }
    if ((size_t)(end - p) < tail)
        return -1;
    memcpy(r + 8 * words, p, tail);
    p += tail;
    for (size_t i = 0; i < l->nstr; i++) {
        if (pj_get_varint(&p, end, &u) != 0 || u >= l->str[i].cap || (uint64_t)(end - p) < u ||
            memchr(p, 0, (size_t)u) != NULL) /* strings end at their first NUL */
            return -1;
        memcpy(r + l->str[i].off, p, (size_t)u);
        p += u;
    }
    return p == end ? 0 : -1;
}

md_err_t md__pj_read(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const pj_layout_t *l,
                     void *rec, bool *found, md_error_t *err)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    *found = rc == MDB_SUCCESS;
    if (rc == MDB_NOTFOUND) {
        memset(rec, 0, l->size);
        *(int64_t *)rec = l->fmt;
        return MD_OK;
    }
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "projection get");
    if (md__pj_unpack(l, v.mv_data, v.mv_size, rec) != 0)
        return md_error_set(err, MD_ECORRUPT, "projection record '%.*s' has another layout",
                            (int)(klen > 80 ? 80 : klen), (const char *)key);
    return MD_OK;
}

/* ---- keys --------------------------------------------------------------------------- */

void md__pj_key_init(pj_key_t *k)
{
    k->n = 0;
}

void md__pj_key_byte(pj_key_t *k, unsigned char c)
{
    if (k->n < PJ_KEY_MAX)
        k->b[k->n++] = c;
}

void md__pj_key_str(pj_key_t *k, const char *s)
{
    size_t n = strlen(s);
    if (n > PJ_KEY_MAX - 1 - k->n)
        n = PJ_KEY_MAX - 1 - k->n; /* ids are short; keeps a bad input harmless */
    memcpy(k->b + k->n, s, n);
    k->n += n;
    k->b[k->n++] = '\0';
}

void md__pj_key_be64(pj_key_t *k, uint64_t v)
{
    for (int i = 7; i >= 0 && k->n < PJ_KEY_MAX; i--)
        k->b[k->n++] = (unsigned char)(v >> (8 * i));
}

uint64_t md__pj_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm), so the
 * hot path needs no gmtime. */
void md__pj_day(int64_t ms, char out[PJ_DAY])
{
    int64_t z = (ms >= 0 ? ms : ms - 86399999) / 86400000 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
    int64_t y = yoe + era * 400 + (m <= 2);
    if (y < 0 || y > 9999)
        y = y < 0 ? 0 : 9999;
    out[0] = (char)('0' + y / 1000), out[1] = (char)('0' + y / 100 % 10);
    out[2] = (char)('0' + y / 10 % 10), out[3] = (char)('0' + y % 10);
    out[4] = '-', out[5] = (char)('0' + m / 10), out[6] = (char)('0' + m % 10);
    out[7] = '-', out[8] = (char)('0' + d / 10), out[9] = (char)('0' + d % 10);
    out[10] = '\0';
}

/* ---- JSON helpers -------------------------------------------------------------------- */

json_t *md__pj_time(int64_t ms)
{
    return ms == PJ_NONE ? json_null() : json_integer((json_int_t)ms);
}

json_t *md__pj_strj(const char *s)
{
    return s[0] ? json_string(s) : json_null();
}

json_t *md__pj_enumj(const char *const *names, size_t n, int64_t i)
{
    return i >= 0 && (size_t)i < n ? json_string(names[i]) : json_null();
}

/* ---- paged prefix scans ------------------------------------------------------------------ */

int md__pj_unhex(const char *s, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int v = 0;
        for (int j = 0; j < 2; j++) {
            char ch = s[2 * i + (size_t)j];
            int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            if (d < 0)
                return -1;
            v = v * 16 + d;
        }
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

/* Positions @p cur on the first key of the page: after the cursor key when
 * one is given, else on the first key with the prefix. */
static int scan_start(MDB_cursor *cur, const void *prefix, size_t plen, const char *cursor,
                      MDB_val *k, MDB_val *v, unsigned char *buf, int *bad)
{
    size_t n = 0;
    *bad = 0;
    if (cursor && *cursor) {
        if (md__pj_unhex(cursor, buf, PJ_KEY_MAX, &n) || n < plen || memcmp(buf, prefix, plen) != 0)
            return *bad = 1, MDB_NOTFOUND;
        k->mv_data = buf, k->mv_size = n;
        int rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
        if (rc == MDB_SUCCESS && k->mv_size == n && memcmp(k->mv_data, buf, n) == 0)
            rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
        return rc;
    }
    if (plen == 0)
        return mdb_cursor_get(cur, k, v, MDB_FIRST);
    k->mv_data = (void *)prefix, k->mv_size = plen;
    return mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
}

md_err_t md__pj_scan_result(md_err_t rc, int mrc, int bad, const md_proj_page_t *page,
                            md_error_t *err)
{
    if (bad)
        return md_error_set(err, MD_EINVAL, "cursor '%.40s' does not belong to this query",
                            page->cursor);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "projection scan");
    return rc;
}

md_err_t md__pj_scan(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen,
                     md_proj_page_t *page, pj_visit_fn fn, void *ctx, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char buf[PJ_KEY_MAX], last[PJ_KEY_MAX];
    size_t last_n = 0;
    uint64_t count = 0;
    int bad;
    md_err_t rc = MD_OK;
    page->next[0] = '\0';
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "projection cursor");
    for (mrc = scan_start(cur, prefix, plen, page->cursor, &k, &v, buf, &bad);
         mrc == MDB_SUCCESS && rc == MD_OK; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        bool emitted = false;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (page->limit && count == page->limit) {
            /* One more row exists past the page only if it would be emitted;
             * checking that costs a visit, so the cursor is given whenever
             * another key with the prefix exists. */
            md_hex(last, last_n, page->next);
            break;
        }
        rc = fn(&k, &v, ctx, &emitted, err);
        if (emitted) {
            count++;
            last_n = k.mv_size;
            memcpy(last, k.mv_data, last_n);
        }
    }
    mdb_cursor_close(cur);
    return md__pj_scan_result(rc, mrc, bad, page, err);
}
