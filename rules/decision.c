/*
 * decision.c - helpers shared by the rule functions: rejecting, emitting
 * events, keeping strings alive for event data, loading records and the
 * content checks (§4.1.4, §4.2.6).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "text.h"

int md__reject(md__ctx_t *c, md_code_t code, const char *fmt, ...)
{
    md_decision_t *d = c->d;
    va_list ap;
    d->accepted = false;
    d->code = code;
    d->code_name = md_code_name(code);
    d->clause = md_code_clause(code);
    d->retryable = md_code_retryable(code);
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    return MD__REJECT;
}

const char *md__keep(md_decision_t *d, const char *s)
{
    size_t n = strlen(s) + 1;
    if (d->arena_len + n > sizeof d->arena) {
        fprintf(stderr, "marketd: decision arena exhausted\n");
        abort();
    }
    char *p = d->arena + d->arena_len;
    memcpy(p, s, n);
    d->arena_len += n;
    return p;
}

md_data_t *md__emit(md__ctx_t *c, const char *type, const char *prefix, const char *id)
{
    md_decision_t *d = c->d;
    if (d->n_events == MD_DECISION_EVENTS_MAX) {
        fprintf(stderr, "marketd: too many events in one decision\n");
        abort();
    }
    md_new_event_t *e = &d->events[d->n_events++];
    /* "prefix:id" cut to the field as snprintf would cut it (snprintf was
     * ~1.4% of the writer's instructions). */
    size_t n = md_str_copy(e->stream, sizeof e->stream, prefix);
    if (id != NULL && n + 1 < sizeof e->stream) {
        e->stream[n++] = ':';
        md_str_copy(e->stream + n, sizeof e->stream - n, id);
    }
    e->type = type;
    md_data_init(&e->data);
    return &e->data;
}

const char *md__str(md__ctx_t *c, const char *field)
{
    return md_cmd_str(c->cmd, field);
}

int64_t md__int(md__ctx_t *c, const char *field)
{
    int64_t v = 0;
    md_cmd_int(c->cmd, field, &v);
    return v;
}

/* Field names come from the static schema, so they may be data keys. */
static const char *static_name(md__ctx_t *c, const char *field)
{
    const md_cmd_spec_t *s = c->cmd->spec;
    for (size_t i = 0; i < s->nfields; i++) {
        if (strcmp(s->fields[i].name, field) == 0)
            return s->fields[i].name;
    }
    abort(); /* a rule named a field its command does not have */
}

void md__put_str(md__ctx_t *c, md_data_t *data, const char *field)
{
    md_data_str(data, static_name(c, field), md__str(c, field));
}

void md__put_int(md__ctx_t *c, md_data_t *data, const char *field)
{
    const char *key = static_name(c, field);
    int64_t v;
    if (md_cmd_int(c->cmd, field, &v))
        md_data_int(data, key, v);
    else
        md_data_nil(data, key);
}

int md__load(md__ctx_t *c, const char *prefix, const char *id, void *rec, size_t size, bool *found)
{
    char key[MD__KEY_MAX];
    size_t klen = md__key(key, prefix, id);
    return md__get(c->st, key, klen, rec, size, found, c->err);
}

bool md__member_suspended(const md__member_t *m, int64_t now)
{
    return md__slot_active(&m->slot[MD__SLOT_SUSPEND], now);
}

int md__check_content(md__ctx_t *c, const char *field)
{
    char text[MD__TEXT_FOLD_MAX];
    md__fold(md__str(c, field), text, sizeof text);
    const void *terms = NULL;
    size_t len = 0;
    bool found = false;
    int rc = md__get_raw(c->st, "terms", &terms, &len, &found, c->err);
    if (rc != MD_OK)
        return rc;
    const char *hit = found ? md__term_in(text, terms, len) : NULL;
    if (hit != NULL)
        return md__reject(c, MD_CODE_PROHIBITED_CONTENT,
                          "data.%s contains the prohibited term '%s'", field, hit);
    if (md__has_contact(text))
        return md__reject(c, MD_CODE_OFF_PLATFORM_TRADE,
                          "data.%s contains contact details (an e-mail address or a phone "
                          "number); deal on the platform",
                          field);
    return MD_OK;
}

void md__emit_voucher_restored(md__ctx_t *c, const md__order_t *o, const char *order_id)
{
    if (o->voucher_id[0] == '\0')
        return;
    const char *vid = md__keep(c->d, o->voucher_id);
    md_data_t *d = md__emit(c, "VoucherRestored", "voucher", vid);
    md_data_str(d, "voucher_id", vid);
    md_data_str(d, "order_id", md__keep(c->d, order_id));
    md_data_str(d, "holder", md__keep(c->d, o->buyer));
}
