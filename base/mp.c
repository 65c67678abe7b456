/*
 * mp.c - allocation-free msgpack reading (see md_base.h).
 *
 * msgpack-c's unpacker builds an object tree in a zone for every call; the
 * event store and the projections read one or two fields per event, so a
 * cursor that decodes in place is both simpler to use and cheaper.
 */
#include <string.h>

#include "md_base.h"

void md__mp_init(md_mp_t *m, const void *p, size_t len)
{
    m->p = p;
    m->end = m->p + len;
}

static int mp_need(const md_mp_t *m, size_t n)
{
    return (size_t)(m->end - m->p) >= n ? 0 : -1;
}

static uint64_t mp_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

enum md_mp_type md__mp_peek(const md_mp_t *m)
{
    if (mp_need(m, 1))
        return MD_MP_BAD;
    unsigned c = *m->p;
    if (c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3))
        return MD_MP_INT;
    if (c <= 0x8f || c == 0xde || c == 0xdf)
        return MD_MP_MAP;
    if (c <= 0x9f || c == 0xdc || c == 0xdd)
        return MD_MP_ARRAY;
    if (c <= 0xbf || (c >= 0xd9 && c <= 0xdb))
        return MD_MP_STR;
    switch (c) {
    case 0xc0: return MD_MP_NIL;
    case 0xc2:
    case 0xc3: return MD_MP_BOOL;
    case 0xc4:
    case 0xc5:
    case 0xc6: return MD_MP_BIN;
    case 0xca:
    case 0xcb: return MD_MP_FLOAT;
    case 0xc7:
    case 0xc8:
    case 0xc9:
    case 0xd4:
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8: return MD_MP_EXT;
    default: return MD_MP_BAD;
    }
}

/* Reads a length-prefixed header: fix range, or 1/2/4-byte big-endian length. */
static int mp_len(md_mp_t *m, unsigned fixlo, unsigned fixhi, unsigned op8, unsigned op16,
                  unsigned op32, uint32_t *n, size_t *hdr)
{
    if (mp_need(m, 1))
        return -1;
    unsigned c = *m->p;
    size_t w;
    if (c >= fixlo && c <= fixhi) {
        *n = c - fixlo;
        *hdr = 1;
        return 0;
    }
    if (op8 && c == op8)
        w = 1;
    else if (c == op16)
        w = 2;
    else if (c == op32)
        w = 4;
    else
        return -1;
    if (mp_need(m, 1 + w))
        return -1;
    *n = (uint32_t)mp_be(m->p + 1, w);
    *hdr = 1 + w;
    return 0;
}

int md__mp_map(md_mp_t *m, uint32_t *n)
{
    size_t hdr;
    if (mp_len(m, 0x80, 0x8f, 0, 0xde, 0xdf, n, &hdr))
        return -1;
    m->p += hdr;
    return 0;
}

int md__mp_array(md_mp_t *m, uint32_t *n)
{
    size_t hdr;
    if (mp_len(m, 0x90, 0x9f, 0, 0xdc, 0xdd, n, &hdr))
        return -1;
    m->p += hdr;
    return 0;
}

static int mp_bytes(md_mp_t *m, unsigned fixlo, unsigned fixhi, unsigned op8, unsigned op16,
                    unsigned op32, const unsigned char **s, uint32_t *len)
{
    size_t hdr;
    uint32_t n;
    if (mp_len(m, fixlo, fixhi, op8, op16, op32, &n, &hdr) || mp_need(m, hdr + n))
        return -1;
    *s = m->p + hdr;
    *len = n;
    m->p += hdr + n;
    return 0;
}

int md__mp_str(md_mp_t *m, const char **s, uint32_t *len)
{
    const unsigned char *b;
    if (mp_bytes(m, 0xa0, 0xbf, 0xd9, 0xda, 0xdb, &b, len))
        return -1;
    *s = (const char *)b;
    return 0;
}

int md__mp_bin(md_mp_t *m, const unsigned char **s, uint32_t *len)
{
    /* bin has no fix form; 0xc4..0xc6 are bin8/16/32 (fix range made empty). */
    return mp_bytes(m, 1, 0, 0xc4, 0xc5, 0xc6, s, len);
}

/* Decodes any msgpack integer into sign + magnitude. */
static int mp_anyint(md_mp_t *m, int *neg, uint64_t *mag)
{
    if (mp_need(m, 1))
        return -1;
    unsigned c = *m->p;
    if (c <= 0x7f) {
        *neg = 0, *mag = c, m->p += 1;
        return 0;
    }
    if (c >= 0xe0) {
        *neg = 1, *mag = (uint64_t)(256 - c), m->p += 1;
        return 0;
    }
    if (c < 0xcc || c > 0xd3)
        return -1;
    size_t w = (size_t)1 << ((c - 0xcc) & 3);
    if (mp_need(m, 1 + w))
        return -1;
    uint64_t raw = mp_be(m->p + 1, w);
    m->p += 1 + w;
    if (c <= 0xcf) {
        *neg = 0, *mag = raw;
        return 0;
    }
    /* Signed: sign-extend from w bytes. */
    int shift = (int)(64 - 8 * w);
    int64_t sv = (int64_t)(raw << shift) >> shift;
    *neg = sv < 0;
    *mag = sv < 0 ? (uint64_t)0 - (uint64_t)sv : (uint64_t)sv;
    return 0;
}

int md__mp_int(md_mp_t *m, int64_t *v)
{
    md_mp_t save = *m;
    int neg;
    uint64_t mag;
    if (mp_anyint(m, &neg, &mag))
        return -1;
    if ((!neg && mag > (uint64_t)INT64_MAX) || (neg && mag > (uint64_t)INT64_MAX + 1)) {
        *m = save;
        return -1;
    }
    *v = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    return 0;
}

int md__mp_uint(md_mp_t *m, uint64_t *v)
{
    md_mp_t save = *m;
    int neg;
    if (mp_anyint(m, &neg, v))
        return -1;
    if (neg) {
        *m = save;
        return -1;
    }
    return 0;
}

int md__mp_bool(md_mp_t *m, bool *v)
{
    if (mp_need(m, 1) || (*m->p != 0xc2 && *m->p != 0xc3))
        return -1;
    *v = *m->p == 0xc3;
    m->p++;
    return 0;
}

int md__mp_nil(md_mp_t *m)
{
    if (mp_need(m, 1) || *m->p != 0xc0)
        return -1;
    m->p++;
    return 0;
}

int md__mp_double(md_mp_t *m, double *v)
{
    if (mp_need(m, 1))
        return -1;
    if (*m->p == 0xca && !mp_need(m, 5)) {
        uint32_t bits = (uint32_t)mp_be(m->p + 1, 4);
        float f;
        memcpy(&f, &bits, 4);
        *v = f;
        m->p += 5;
        return 0;
    }
    if (*m->p == 0xcb && !mp_need(m, 9)) {
        uint64_t bits = mp_be(m->p + 1, 8);
        memcpy(v, &bits, 8);
        m->p += 9;
        return 0;
    }
    return -1;
}

static int mp_skip_depth(md_mp_t *m, int depth);

static int mp_skip_n(md_mp_t *m, uint64_t n, int depth)
{
    for (uint64_t i = 0; i < n; i++)
        if (mp_skip_depth(m, depth))
            return -1;
    return 0;
}

/*
 * The size of the scalar at m->p (nil, bool, int, float, str, bin) from its
 * first bytes, or 0 for a container, an ext or a byte no msgpack starts with.
 * Skipping a scalar this way, instead of decoding it, matters because looking
 * a key up in an event's data skips every value before it (md__mp_find: ~6% of
 * the writer's instructions).
 */
static size_t mp_scalar_size(const md_mp_t *m)
{
    const unsigned char *p = m->p;
    size_t left = (size_t)(m->end - p);
    if (left == 0)
        return 0;
    unsigned c = p[0];
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return 1;
    if (c >= 0xa0 && c <= 0xbf)
        return 1 + (c & 0x1f);
    if (c >= 0xcc && c <= 0xd3)
        return 1 + ((size_t)1 << ((c - 0xcc) & 3));
    if (c == 0xca || c == 0xcb)
        return c == 0xca ? 5 : 9;
    size_t w = c == 0xd9 || c == 0xc4   ? 1
               : c == 0xda || c == 0xc5 ? 2
               : c == 0xdb || c == 0xc6 ? 4
                                        : 0;
    if (w == 0 || left < 1 + w)
        return 0;
    return 1 + w + (size_t)mp_be(p + 1, w);
}

static int mp_skip_depth(md_mp_t *m, int depth)
{
    size_t size = depth > 64 ? 0 : mp_scalar_size(m);
    if (size != 0) {
        if ((size_t)(m->end - m->p) < size)
            return -1;
        m->p += size;
        return 0;
    }
    const unsigned char *b;
    const char *s;
    uint32_t n;
    int64_t i;
    uint64_t u;
    bool bo;
    double d;
    if (depth > 64)
        return -1;
    switch (md__mp_peek(m)) {
    case MD_MP_NIL: return md__mp_nil(m);
    case MD_MP_BOOL: return md__mp_bool(m, &bo);
    case MD_MP_INT: return md__mp_int(m, &i) == 0 ? 0 : md__mp_uint(m, &u);
    case MD_MP_FLOAT: return md__mp_double(m, &d);
    case MD_MP_STR: return md__mp_str(m, &s, &n);
    case MD_MP_BIN: return md__mp_bin(m, &b, &n);
    case MD_MP_ARRAY: return md__mp_array(m, &n) ? -1 : mp_skip_n(m, n, depth + 1);
    case MD_MP_MAP: return md__mp_map(m, &n) ? -1 : mp_skip_n(m, 2 * (uint64_t)n, depth + 1);
    default: return -1; /* ext types never appear in marketd data */
    }
}

int md__mp_skip(md_mp_t *m)
{
    md_mp_t save = *m;
    if (mp_skip_depth(m, 0)) {
        *m = save;
        return -1;
    }
    return 0;
}

int md__mp_find(md_mp_t *m, const char *key)
{
    uint32_t n;
    size_t klen = strlen(key);
    if (md__mp_map(m, &n))
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const char *k;
        uint32_t kl;
        unsigned c = m->p < m->end ? *m->p : 0;
        if (c >= 0xa0 && c <= 0xbf && (size_t)(m->end - m->p) > (c & 0x1fu)) {
            k = (const char *)m->p + 1, kl = c & 0x1f; /* a fixstr key, the usual */
            m->p += 1 + kl;
        } else if (md__mp_str(m, &k, &kl)) {
            return -1;
        }
        if (kl == klen && memcmp(k, key, klen) == 0)
            return 0;
        if (md__mp_skip(m))
            return -1;
    }
    return 1;
}
