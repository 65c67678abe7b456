/*
 * audit.c - the audit trail: one entry per event (rejections included) under
 * every subject it concerns, and one per event under its actor.
 *
 *   p_audit        subject_id NUL seq(8 BE) kind(1) -> entry
 *   p_audit_actor  actor NUL seq(8 BE)              -> entry
 *   entry = kind(1) | role | action | clause | actor | subject | recorded_at(8 BE)
 *           where each of the middle five is a 1-byte length and its bytes
 *           (subject is empty in p_audit, where the key holds it).
 *
 * Subjects of an event: the id of its stream (role "stream"), and the data
 * fields of the table below (role = the field name); a rejection is also
 * filed under its actor. Keys of one subject arrive in seq order.
 */
#include <stdio.h>
#include <string.h>

#include "pj.h"

static const char *const kinds[] = {
    "member", "store", "product", "order", "complaint", "sanction", "voucher", "category",
    "review", "message", "consent", "disclosure", "maintenance", "platform", "rejections",
};
#define NKINDS (sizeof kinds / sizeof kinds[0])
enum { K_MEMBER, K_STORE, K_PRODUCT, K_ORDER, K_COMPLAINT, K_SANCTION, K_VOUCHER, K_CATEGORY,
       K_TARGET = 100 /* the kind is the event's target_type */ };

typedef struct subj {
    const char *field;
    int kind;
} subj_t;

typedef struct audit_row {
    const char *clause;         /* the agreement clause, when the data has none */
    subj_t subj[6];
} audit_row_t;

#define M_(f) {f, K_MEMBER}
static const audit_row_t audit_rows[PJ_T_COUNT_] = {
    [PJ_T_MemberRegistered] = {"2.2", {{0}}},
    [PJ_T_AgreementPublished] = {"1.4", {{0}}},
    [PJ_T_AgreementAccepted] = {"1.2", {{0}}},
    [PJ_T_AgreementDeclined] = {"1.4", {{0}}},
    [PJ_T_ProviderApplied] = {"2.4", {{0}}},
    [PJ_T_ProviderApproved] = {"2.4", {{0}}},
    [PJ_T_ProviderRejected] = {"2.4", {{0}}},
    [PJ_T_LicenseGranted] = {"4.2.3", {{"category_id", K_CATEGORY}}},
    [PJ_T_LicenseRevoked] = {"4.2.3", {{"category_id", K_CATEGORY}}},
    [PJ_T_TermProhibited] = {"4.1.4", {{0}}},
    [PJ_T_TermAllowed] = {"4.1.4", {{0}}},
    [PJ_T_CategoryDefined] = {"2.1", {{0}}},
    [PJ_T_CategoryRetired] = {"2.1", {{0}}},
    [PJ_T_StoreOpened] = {"2.4", {M_("owner")}},
    [PJ_T_StoreClosed] = {"3.3.3", {M_("owner")}},
    [PJ_T_StoreReopened] = {"3.3.3", {M_("owner")}},
    [PJ_T_ProductPublished] = {"3.2.2", {{"store_id", K_STORE}, M_("owner"),
                                         {"category_id", K_CATEGORY}}},
    [PJ_T_ProductApproved] = {"3.1.1", {{0}}},
    [PJ_T_ProductDenied] = {"3.1.1", {{0}}},
    [PJ_T_ProductDelisted] = {"3.1.1", {{0}}},
    [PJ_T_ProductRelisted] = {"3.1.1", {{0}}},
    [PJ_T_FundsDeposited] = {"3.1.3", {{0}}},
    [PJ_T_FundsWithdrawn] = {"3.2.1", {{0}}},
    [PJ_T_OrderPlaced] = {"3.1.3", {M_("buyer"), M_("provider"), {"store_id", K_STORE},
                                    {"product_id", K_PRODUCT}, {"voucher_id", K_VOUCHER}}},
    [PJ_T_VoucherRedeemed] = {"4.2.5", {{"order_id", K_ORDER}, M_("holder")}},
    [PJ_T_PersonalDataDisclosed] = {"6.3", {M_("subject"), M_("recipient")}},
    [PJ_T_OrderPaid] = {"3.2.1", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderDelivered] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderCompleted] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderCancelled] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_VoucherRestored] = {"4.2.5", {{"order_id", K_ORDER}, M_("holder")}},
    [PJ_T_VoucherIssued] = {"4.2.5", {M_("member_id")}},
    [PJ_T_ReviewPosted] = {"3.1.2", {{"order_id", K_ORDER}, M_("author"), M_("provider"),
                                     {"product_id", K_PRODUCT}, {"store_id", K_STORE}}},
    [PJ_T_MessageSent] = {NULL, {M_("from"), M_("to"), {"order_id", K_ORDER}}},
    [PJ_T_ComplaintFiled] = {"3.1.4", {{"order_id", K_ORDER}, M_("complainant"),
                                       M_("respondent")}},
    [PJ_T_ArbitrationRequested] = {"3.1.4", {{"order_id", K_ORDER}}},
    [PJ_T_DefenseSubmitted] = {"3.1.4", {{"order_id", K_ORDER}, M_("respondent")}},
    [PJ_T_ComplaintWithdrawn] = {"3.1.4", {{"order_id", K_ORDER}}},
    [PJ_T_DisputeRuled] = {"3.1.4", {{"order_id", K_ORDER}, M_("buyer"), M_("provider")}},
    [PJ_T_SanctionApplied] = {"3.3.3", {{"target_id", K_TARGET}, M_("buyer"), M_("provider"),
                                        M_("owner"), M_("author"),
                                        {"complaint_id", K_COMPLAINT}}},
    [PJ_T_SanctionLifted] = {"3.3.3", {{"target_id", K_TARGET}}},
    [PJ_T_SanctionAppealed] = {"3.1.4", {M_("appellant")}},
    [PJ_T_ConsentGranted] = {"6.2.1", {M_("subject")}},
    [PJ_T_ConsentRevoked] = {"6.2.1", {M_("subject")}},
    [PJ_T_RecordsDisclosed] = {"6", {M_("subject")}},
    [PJ_T_MaintenanceScheduled] = {"3.4.2", {{0}}},
    [PJ_T_MaintenanceCancelled] = {"3.4.2", {{0}}},
};
#undef M_

/* The subjects of one event, deduplicated. */
typedef struct subjects {
    struct {
        char id[PJ_ID];
        int kind;
        const char *role;
    } s[8];
    size_t n;
} subjects_t;

static void add_subject(subjects_t *ss, const char *id, size_t len, int kind, const char *role)
{
    if (len == 0 || len >= PJ_ID || kind < 0 || ss->n == 8)
        return;
    for (size_t i = 0; i < ss->n; i++)
        if (ss->s[i].kind == kind && strlen(ss->s[i].id) == len &&
            memcmp(ss->s[i].id, id, len) == 0)
            return;
    memcpy(ss->s[ss->n].id, id, len);
    ss->s[ss->n].id[len] = '\0';
    ss->s[ss->n].kind = kind;
    ss->s[ss->n].role = role;
    ss->n++;
}

static int kind_of(const char *s, size_t n)
{
    for (size_t i = 0; i < NKINDS; i++)
        if (strlen(kinds[i]) == n && memcmp(kinds[i], s, n) == 0)
            return (int)i;
    return -1;
}

/* The stream's own id: "order:o-1" -> (order, o-1); "platform" -> (platform, platform). */
static void stream_subject(subjects_t *ss, const char *stream)
{
    const char *colon = strchr(stream, ':');
    if (colon == NULL)
        add_subject(ss, stream, strlen(stream), kind_of(stream, strlen(stream)), "stream");
    else
        add_subject(ss, colon + 1, strlen(colon + 1), kind_of(stream, (size_t)(colon - stream)),
                    "stream");
}

static void collect(pj_ctx_t *c, subjects_t *ss)
{
    ss->n = 0;
    stream_subject(ss, c->ev->stream);
    if (c->type == PJ_T_CommandRejected && c->ev->has_actor)
        add_subject(ss, c->ev->actor, strlen(c->ev->actor), K_MEMBER, "actor");
    if (c->type == PJ_T_UNKNOWN)
        return;
    const audit_row_t *r = &audit_rows[c->type];
    for (size_t i = 0; i < 6 && r->subj[i].field; i++) {
        const pj_field_t *f = md__pj_field(c, r->subj[i].field);
        int kind = r->subj[i].kind;
        if (f == NULL || f->kind != PJ_V_STR)
            continue;
        if (kind == K_TARGET) {
            const pj_field_t *t = md__pj_field(c, "target_type");
            kind = t && t->kind == PJ_V_STR ? kind_of(t->s, t->slen) : -1;
        }
        add_subject(ss, f->s, f->slen, kind, r->subj[i].field);
    }
}

/* ---- entries -------------------------------------------------------------------- */

static void put_str(md_buf_t *b, const char *s, size_t n)
{
    unsigned char len = (unsigned char)(n > 255 ? 255 : n);
    md_buf_append(b, &len, 1);
    md_buf_append(b, s, len);
}

/* The action ("OrderPaid", "rejected:INSUFFICIENT_FUNDS") and clause of the event. */
static void action_clause(pj_ctx_t *c, char *action, size_t cap, const char **clause,
                          size_t *clen)
{
    const pj_field_t *code = md__pj_field(c, "code"), *cl = md__pj_field(c, "clause");
    if (c->type == PJ_T_CommandRejected && code && code->kind == PJ_V_STR)
        snprintf(action, cap, "rejected:%.*s", (int)code->slen, code->s);
    else
        snprintf(action, cap, "%s", c->ev->type);
    *clause = NULL, *clen = 0;
    if (cl && cl->kind == PJ_V_STR)
        *clause = cl->s, *clen = cl->slen;
    else if (c->type != PJ_T_UNKNOWN && c->type != PJ_T_CommandRejected &&
             audit_rows[c->type].clause)
        *clause = audit_rows[c->type].clause, *clen = strlen(*clause);
}

static void entry(md_buf_t *b, int kind, const char *role, const char *action,
                  const char *clause, size_t clen, const md_event_t *ev, const char *subject)
{
    unsigned char k = (unsigned char)kind, t[8];
    md_buf_reset(b);
    md_buf_append(b, &k, 1);
    put_str(b, role, strlen(role));
    put_str(b, action, strlen(action));
    put_str(b, clause ? clause : "", clen);
    put_str(b, ev->has_actor ? ev->actor : "", ev->has_actor ? strlen(ev->actor) : 0);
    put_str(b, subject, strlen(subject));
    for (int i = 0; i < 8; i++)
        t[i] = (unsigned char)((uint64_t)ev->recorded_at >> (56 - 8 * i));
    md_buf_append(b, t, 8);
}

md_err_t md__pj_audit_apply(pj_ctx_t *c)
{
    subjects_t ss;
    char action[MD_TYPE_MAX + 80];
    const char *clause;
    size_t clen;
    pj_key_t k;
    md_buf_t *b = &c->p->rec;
    md_err_t rc = MD_OK;
    collect(c, &ss);
    action_clause(c, action, sizeof action, &clause, &clen);
    for (size_t i = 0; i < ss.n && rc == MD_OK; i++) {
        md__pj_key_init(&k);
        md__pj_key_str(&k, ss.s[i].id);
        md__pj_key_be64(&k, c->ev->seq);
        md__pj_key_byte(&k, (unsigned char)ss.s[i].kind);
        entry(b, ss.s[i].kind, ss.s[i].role, action, clause, clen, c->ev, "");
        rc = md__pj_put_new(c, PJ_DB_AUDIT, k.b, k.n, b->p, b->len);
    }
    if (rc != MD_OK || !c->ev->has_actor)
        return rc;
    md__pj_key_init(&k);
    md__pj_key_str(&k, c->ev->actor);
    md__pj_key_be64(&k, c->ev->seq);
    entry(b, ss.n ? ss.s[0].kind : -1, "stream", action, clause, clen, c->ev,
          ss.n ? ss.s[0].id : "");
    return md__pj_put_new(c, PJ_DB_AUDIT_ACTOR, k.b, k.n, b->p, b->len);
}

/* ---- queries ------------------------------------------------------------------------ */

typedef struct parsed {
    int kind;
    const char *role, *action, *clause, *actor, *subject;
    size_t role_n, action_n, clause_n, actor_n, subject_n;
    int64_t recorded_at;
} parsed_t;

static int take(const unsigned char **p, const unsigned char *end, const char **s, size_t *n)
{
    if (*p >= end || (size_t)(end - *p - 1) < **p)
        return -1;
    *n = **p;
    *s = (const char *)*p + 1;
    *p += 1 + *n;
    return 0;
}

static int parse_entry(const MDB_val *v, parsed_t *e)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    if (v->mv_size < 1 + 5 + 8)
        return -1;
    e->kind = *p++;
    if (take(&p, end, &e->role, &e->role_n) || take(&p, end, &e->action, &e->action_n) ||
        take(&p, end, &e->clause, &e->clause_n) || take(&p, end, &e->actor, &e->actor_n) ||
        take(&p, end, &e->subject, &e->subject_n) || end - p != 8)
        return -1;
    e->recorded_at = (int64_t)md__pj_get_be64(p);
    return 0;
}

typedef struct query {
    md_txn_t *t;
    int kind;                  /* -1: any */
    const char *actor;         /* filter on subject scans */
    bool by_actor;
    size_t plen;               /* prefix length: the id and its NUL */
    md_proj_row_fn fn;
    void *ctx;
} query_t;

static json_t *strn_or_null(const char *s, size_t n)
{
    return n ? json_stringn(s, n) : json_null();
}

/* Adds stream, command_id (and a rejection's message) from the event itself. */
static void join_event(md_txn_t *t, uint64_t seq, json_t *j)
{
    md_event_t ev;
    const char *s;
    size_t n;
    if (md_txn_event(t, seq, &ev, NULL, NULL, NULL) != MD_OK)
        return;
    json_object_set_new(j, "stream", json_string(ev.stream));
    json_object_set_new(j, "command_id", ev.has_command_id ? json_string(ev.command_id) : json_null());
    if (strcmp(ev.type, "CommandRejected") == 0 &&
        md_data_get_str(ev.data, ev.data_len, "message", &s, &n) == MD_OK)
        json_object_set_new(j, "message", json_stringn(s, n));
}

static md_err_t visit(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted,
                      md_error_t *err)
{
    query_t *q = ctx;
    parsed_t e;
    size_t want = q->plen + 8 + (q->by_actor ? 0 : 1);
    if (k->mv_size != want || parse_entry(v, &e) != 0)
        return md_error_set(err, MD_ECORRUPT, "audit entry of %zu bytes is malformed", v->mv_size);
    const unsigned char *kb = k->mv_data;
    uint64_t seq = md__pj_get_be64(kb + q->plen);
    if ((q->kind >= 0 && e.kind != q->kind) ||
        (q->actor && (e.actor_n != strlen(q->actor) || memcmp(e.actor, q->actor, e.actor_n))))
        return MD_OK;
    *emitted = true;
    json_t *j = json_object();
    json_object_set_new(j, "seq", json_integer((json_int_t)seq));
    json_object_set_new(j, "recorded_at", json_integer(e.recorded_at));
    json_object_set_new(j, "action", json_stringn(e.action, e.action_n));
    json_object_set_new(j, "clause", strn_or_null(e.clause, e.clause_n));
    json_object_set_new(j, "actor", strn_or_null(e.actor, e.actor_n));
    json_object_set_new(j, "subject", q->by_actor ? strn_or_null(e.subject, e.subject_n)
                                                  : json_stringn((const char *)kb, q->plen - 1));
    json_object_set_new(j, "subject_kind", md__pj_enumj(kinds, NKINDS, e.kind));
    json_object_set_new(j, "role", json_stringn(e.role, e.role_n));
    join_event(q->t, seq, j);
    md_err_t rc = q->fn(j, q->ctx, err);
    json_decref(j);
    return rc;
}

md_err_t md_proj_audit(md_proj_t *p, md_txn_t *t, const md_proj_audit_filter_t *f,
                       md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    query_t q = {t, -1, NULL, false, 0, fn, ctx};
    pj_key_t k;
    const char *id;
    if (f == NULL || (f->subject == NULL && f->actor == NULL))
        return md_error_set(err, MD_EINVAL, "audit needs a subject or an actor");
    md__pj_key_init(&k);
    if (f->subject) {
        const char *colon = strchr(f->subject, ':');
        id = f->subject;
        if (colon && (q.kind = kind_of(f->subject, (size_t)(colon - f->subject))) >= 0)
            id = colon + 1;
        q.actor = f->actor;
    } else {
        id = f->actor;
        q.by_actor = true;
    }
    md__pj_key_str(&k, id);
    q.plen = k.n;
    return md__pj_scan(md_txn_mdb(t), p->dbi[q.by_actor ? PJ_DB_AUDIT_ACTOR : PJ_DB_AUDIT], k.b,
                       k.n, page, visit, &q, err);
}
