/*
 * state.c - keys and typed access to the aggregate records of state.h.
 */
#include <stdlib.h>
#include <string.h>

#include "state.h"

const char *const md__product_statuses[] = {"listed", "pending_review", "denied", "delisted",
                                            "removed", NULL};
const char *const md__order_statuses[] = {"placed", "paid", "delivered", "completed",
                                          "cancelled", "closed", "refunded",
                                          "partially_refunded", NULL};
const char *const md__complaint_statuses[] = {"open", "arbitration", "withdrawn", "ruled",
                                              "closed", NULL};

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

md_err_t md__get(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                 bool *found, md_error_t *err)
{
    const void *val = NULL;
    size_t len = 0;
    memset(rec, 0, size);
    md_err_t rc = st->get(st->ctx, key, klen, &val, &len);
    *found = rc == MD_OK;
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc != MD_OK)
        return md_error_set(err, rc, "state get '%s' failed", key);
    uint32_t fmt = 0;
    if (len == size)
        memcpy(&fmt, val, sizeof fmt);
    if (len != size || fmt != MD__REC_FMT)
        return md_error_set(err, MD_ECORRUPT, "state record '%s' has size %zu, want %zu",
                            key, len, size);
    memcpy(rec, val, size);
    return MD_OK;
}

md_err_t md__get_must(const md_state_t *st, const char *key, size_t klen, void *rec,
                      size_t size, md_error_t *err)
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
    memcpy(rec, &fmt, sizeof fmt);
    md_err_t rc = st->put(st->ctx, key, klen, rec, size);
    if (rc != MD_OK)
        return md_error_set(err, rc, "state put '%s' failed", key);
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
