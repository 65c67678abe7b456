/*
 * evolve.c - md_rules_evolve(): dispatches an appended event to the function
 * that applies it to the aggregate records, plus the readers of event data
 * those functions share. Evolve is the only writer of the rules' state.
 */
#include <string.h>

#include "internal.h"

typedef struct evolve_row {
    const char *type;
    size_t len; /* strlen(type): most rows are told apart without a strcmp */
    md__evolve_fn fn;
} evolve_row_t;

#define EV_ROW(n) {#n, sizeof #n - 1, md__evolve_##n},

/* Event types that change state; all others (CommandRejected,
 * PersonalDataDisclosed, DefenseSubmitted) are recorded only. */
static const evolve_row_t evolve_rows[] = {MD__EVENTS(EV_ROW)};

md_err_t md_rules_evolve(const md_state_t *st, const md_event_t *ev, md_error_t *err)
{
    md__ev_t e = {st, ev, err};
    size_t len = strnlen(ev->type, sizeof ev->type);
    for (size_t i = 0; i < sizeof evolve_rows / sizeof evolve_rows[0]; i++) {
        if (evolve_rows[i].len == len && memcmp(evolve_rows[i].type, ev->type, len) == 0)
            return evolve_rows[i].fn(&e);
    }
    return MD_OK;
}

static md_err_t lacks(md__ev_t *e, const char *key)
{
    return md_error_set(e->err, MD_ECORRUPT, "event %s (seq %llu) lacks '%s'", e->ev->type,
                        (unsigned long long)e->ev->seq, key);
}

md_err_t md__ev_str(md__ev_t *e, const char *key, char *out, size_t cap)
{
    if (md_data_copy_str(e->ev->data, e->ev->data_len, key, out, cap) != MD_OK)
        return lacks(e, key);
    return MD_OK;
}

md_err_t md__ev_str_opt(md__ev_t *e, const char *key, char *out, size_t cap)
{
    md_err_t rc = md_data_copy_str(e->ev->data, e->ev->data_len, key, out, cap);
    if (rc == MD_ENOTFOUND) {
        out[0] = '\0';
        return MD_OK;
    }
    return rc == MD_OK ? MD_OK : lacks(e, key);
}

md_err_t md__ev_int(md__ev_t *e, const char *key, int64_t *v)
{
    if (md_data_get_int(e->ev->data, e->ev->data_len, key, v) != MD_OK)
        return lacks(e, key);
    return MD_OK;
}

md_err_t md__ev_load(md__ev_t *e, const char *prefix, const char *id, void *rec, size_t size)
{
    char key[MD__KEY_MAX];
    size_t n = md__key(key, prefix, id);
    return md__get_must(e->st, key, n, rec, size, e->err);
}

md_err_t md__ev_save(md__ev_t *e, const char *prefix, const char *id, void *rec, size_t size)
{
    char key[MD__KEY_MAX];
    size_t n = md__key(key, prefix, id);
    md_err_t rc = md__put(e->st, key, n, rec, size, e->err);
    return rc == MD_OK ? md__timers_index(e, prefix, id, rec, size) : rc;
}

md_err_t md__ev_credit(md__ev_t *e, const char *member, int64_t delta)
{
    md__member_t m;
    md_err_t rc = md__ev_load(e, "m:", member, &m, sizeof m);
    if (rc != MD_OK || delta == 0)
        return rc;
    m.balance += delta;
    return md__ev_save(e, "m:", member, &m, sizeof m);
}

md_err_t md__ev_hold(md__ev_t *e, const char *member, int64_t delta)
{
    md__member_t m;
    md_err_t rc = md__ev_load(e, "m:", member, &m, sizeof m);
    if (rc != MD_OK || delta == 0)
        return rc;
    m.held += delta;
    return md__ev_save(e, "m:", member, &m, sizeof m);
}

bool md__ev_has(md__ev_t *e, const char *key)
{
    int64_t v;
    return md_data_get_int(e->ev->data, e->ev->data_len, key, &v) == MD_OK;
}
