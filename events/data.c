/*
 * data.c - the md_data_t builder for event data maps, canonical
 * packing (keys sorted bytewise) and field readers.
 */
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_event.h"
#include "mp.h"
#include "pack.h"

void md_data_init(md_data_t *d)
{
    d->n = 0;
}

static md_field_t *data_add(md_data_t *d, const char *key, md_val_kind_t kind)
{
    for (size_t i = 0; i < d->n; i++) { /* the first byte tells most keys apart */
        if (d->f[i].key[0] == key[0] && strcmp(d->f[i].key, key) == 0) {
            fprintf(stderr, "marketd: event data key '%s' added twice\n", key);
            abort();
        }
    }
    if (d->n == MD_DATA_FIELDS_MAX) {
        fprintf(stderr, "marketd: event data has more than %d fields\n", MD_DATA_FIELDS_MAX);
        abort();
    }
    md_field_t *f = &d->f[d->n++];
    memset(f, 0, sizeof *f);
    f->key = key;
    f->kind = kind;
    return f;
}

void md_data_strn(md_data_t *d, const char *key, const char *s, size_t len)
{
    md_field_t *f = data_add(d, key, MD_VAL_STR);
    f->s = s;
    f->len = len;
}

void md_data_str(md_data_t *d, const char *key, const char *s)
{
    if (s == NULL)
        md_data_nil(d, key);
    else
        md_data_strn(d, key, s, strlen(s));
}

void md_data_int(md_data_t *d, const char *key, int64_t v)
{
    data_add(d, key, MD_VAL_INT)->i = v;
}

void md_data_bool(md_data_t *d, const char *key, bool v)
{
    data_add(d, key, MD_VAL_BOOL)->b = v;
}

void md_data_nil(md_data_t *d, const char *key)
{
    data_add(d, key, MD_VAL_NIL);
}

void md_data_raw(md_data_t *d, const char *key, const void *msgpack, size_t len)
{
    md_field_t *f = data_add(d, key, MD_VAL_RAW);
    f->s = msgpack;
    f->len = len;
}

/* Sorts the fields by key, bytewise (strcmp compares as unsigned char). Keys
 * are distinct (data_add), so any sort gives the same order; an insertion sort
 * of a dozen fields is several times cheaper than qsort's calls. */
static void sort_fields(md_field_t *f, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        md_field_t x = f[i];
        size_t j = i;
        for (; j > 0 && strcmp(f[j - 1].key, x.key) > 0; j--)
            f[j] = f[j - 1];
        f[j] = x;
    }
}

static void pack_field(msgpack_packer *pk, md_buf_t *out, const md_field_t *f)
{
    md__pack_str(pk, f->key, strlen(f->key));
    switch (f->kind) {
    case MD_VAL_NIL: msgpack_pack_nil(pk); break;
    case MD_VAL_BOOL: f->b ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
    case MD_VAL_INT: msgpack_pack_int64(pk, f->i); break;
    case MD_VAL_STR: md__pack_str(pk, f->s, f->len); break;
    case MD_VAL_RAW: md_buf_append(out, f->s, f->len); break;
    }
}

void md_data_pack(md_data_t *d, md_buf_t *out)
{
    msgpack_packer pk;
    md__pack_init(&pk, out);
    sort_fields(d->f, d->n);
    msgpack_pack_map(&pk, d->n);
    for (size_t i = 0; i < d->n; i++)
        pack_field(&pk, out, &d->f[i]);
}

/* Positions a cursor on the value of @p key in the data map. */
static md_err_t data_find(md_mp_t *m, const void *data, size_t len, const char *key)
{
    md__mp_init(m, data, len);
    int rc = md__mp_find(m, key);
    return rc == 0 ? MD_OK : rc > 0 ? MD_ENOTFOUND : MD_ECODEC;
}

md_err_t md_data_get_str(const void *data, size_t len, const char *key, const char **s,
                         size_t *slen)
{
    md_mp_t m;
    md_err_t rc = data_find(&m, data, len, key);
    if (rc != MD_OK)
        return rc;
    if (md__mp_peek(&m) == MD_MP_NIL)
        return MD_ENOTFOUND;
    uint32_t n;
    if (md__mp_str(&m, s, &n))
        return MD_ECODEC;
    *slen = n;
    return MD_OK;
}

md_err_t md_data_get_int(const void *data, size_t len, const char *key, int64_t *v)
{
    md_mp_t m;
    md_err_t rc = data_find(&m, data, len, key);
    if (rc != MD_OK)
        return rc;
    if (md__mp_peek(&m) == MD_MP_NIL)
        return MD_ENOTFOUND;
    return md__mp_int(&m, v) ? MD_ECODEC : MD_OK;
}

md_err_t md_data_get_bool(const void *data, size_t len, const char *key, bool *v)
{
    md_mp_t m;
    md_err_t rc = data_find(&m, data, len, key);
    if (rc != MD_OK)
        return rc;
    if (md__mp_peek(&m) == MD_MP_NIL)
        return MD_ENOTFOUND;
    return md__mp_bool(&m, v) ? MD_ECODEC : MD_OK;
}

md_err_t md_data_copy_str(const void *data, size_t len, const char *key, char *out, size_t cap)
{
    const char *s;
    size_t n;
    md_err_t rc = md_data_get_str(data, len, key, &s, &n);
    if (rc != MD_OK)
        return rc;
    if (n + 1 > cap)
        return MD_EINVAL;
    memcpy(out, s, n);
    out[n] = '\0';
    return MD_OK;
}
