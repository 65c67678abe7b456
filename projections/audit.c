/*
 * audit.c - the audit trail: one entry per event (rejections included) under
 * every subject it concerns, and one per event under its actor.
 *
 *   p_audit        epoch(4 BE) subject_id NUL seq(8 BE) kind(1) -> role(1)
 *   p_audit_actor  epoch(4 BE) actor NUL seq(8 BE)              -> role(1)
 *
 * An entry is a pointer to its event: the action, clause, actor, time and
 * stream are read from the event itself when the trail is listed. role is
 * the index of the field in the event type's row of the table below, or
 * ROLE_STREAM / ROLE_ACTOR.
 *
 * epoch = seq >> PJ_EPOCH_BITS leads the key (epoch.h), so a batch's entries
 * land in the few pages of the current epoch instead of one random page per
 * subject (LMDB rewrites every page a transaction touches). A subject's trail
 * is read epoch by epoch: one cursor seek per epoch that has entries.
 *
 * Subjects of an event: the id of its stream (role "stream"), and the data
 * fields of the table below (role = the field name); a rejection is also
 * filed under its actor.
 */
#include <stdio.h>
#include <string.h>

#include "epoch.h"

static const char *const kinds[] = {
    "member",   "store",      "product",     "order",    "complaint",
    "sanction", "voucher",    "category",    "review",   "message",
    "consent",  "disclosure", "maintenance", "platform", "rejections",
};
#define NKINDS (sizeof kinds / sizeof kinds[0])
enum {
    K_MEMBER,
    K_STORE,
    K_PRODUCT,
    K_ORDER,
    K_COMPLAINT,
    K_SANCTION,
    K_VOUCHER,
    K_CATEGORY,
    K_TARGET = 100 /* the kind is the event's target_type */
};

typedef struct subj {
    const char *field;
    int kind;
} subj_t;

typedef struct audit_row {
    const char *clause; /* the agreement clause, when the data has none */
    subj_t subj[6];
} audit_row_t;

#define M_(f)                                                                                      \
    {                                                                                              \
        f, K_MEMBER                                                                                \
    }
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
    [PJ_T_ProductPublished] = {"3.2.2",
                               {{"store_id", K_STORE}, M_("owner"), {"category_id", K_CATEGORY}}},
    [PJ_T_ProductApproved] = {"3.1.1", {{0}}},
    [PJ_T_ProductDenied] = {"3.1.1", {{0}}},
    [PJ_T_ProductDelisted] = {"3.1.1", {{0}}},
    [PJ_T_ProductRelisted] = {"3.1.1", {{0}}},
    [PJ_T_FundsDeposited] = {"3.1.3", {{0}}},
    [PJ_T_FundsWithdrawn] = {"3.2.1", {{0}}},
    [PJ_T_OrderPlaced] = {"3.1.3",
                          {M_("buyer"),
                           M_("provider"),
                           {"store_id", K_STORE},
                           {"product_id", K_PRODUCT},
                           {"voucher_id", K_VOUCHER}}},
    [PJ_T_VoucherRedeemed] = {"4.2.5", {{"order_id", K_ORDER}, M_("holder")}},
    [PJ_T_PersonalDataDisclosed] = {"6.3", {M_("subject"), M_("recipient")}},
    [PJ_T_OrderPaid] = {"3.2.1", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderDelivered] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderCompleted] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_OrderCancelled] = {"3.1.3", {M_("buyer"), M_("provider")}},
    [PJ_T_VoucherRestored] = {"4.2.5", {{"order_id", K_ORDER}, M_("holder")}},
    [PJ_T_VoucherIssued] = {"4.2.5", {M_("member_id")}},
    [PJ_T_ReviewPosted] = {"3.1.2",
                           {{"order_id", K_ORDER},
                            M_("author"),
                            M_("provider"),
                            {"product_id", K_PRODUCT},
                            {"store_id", K_STORE}}},
    [PJ_T_MessageSent] = {NULL, {M_("from"), M_("to"), {"order_id", K_ORDER}}},
    [PJ_T_ComplaintFiled] = {"3.1.4", {{"order_id", K_ORDER}, M_("complainant"), M_("respondent")}},
    [PJ_T_ArbitrationRequested] = {"3.1.4", {{"order_id", K_ORDER}}},
    [PJ_T_DefenseSubmitted] = {"3.1.4", {{"order_id", K_ORDER}, M_("respondent")}},
    [PJ_T_ComplaintWithdrawn] = {"3.1.4", {{"order_id", K_ORDER}}},
    [PJ_T_DisputeRuled] = {"3.1.4", {{"order_id", K_ORDER}, M_("buyer"), M_("provider")}},
    [PJ_T_SanctionApplied] = {"3.3.3",
                              {{"target_id", K_TARGET},
                               M_("buyer"),
                               M_("provider"),
                               M_("owner"),
                               M_("author"),
                               {"complaint_id", K_COMPLAINT}}},
    [PJ_T_SanctionLifted] = {"3.3.3", {{"target_id", K_TARGET}}},
    [PJ_T_SanctionAppealed] = {"3.1.4", {M_("appellant")}},
    [PJ_T_AppealRuled] = {"3.1.4", {{0}}},
    [PJ_T_PolicySet] = {NULL, {{0}}},
    [PJ_T_SettlementReleased] = {"3.2.1", {M_("provider")}},
    [PJ_T_ConsentGranted] = {"6.2.1", {M_("subject")}},
    [PJ_T_ConsentRevoked] = {"6.2.1", {M_("subject")}},
    [PJ_T_RecordsDisclosed] = {"6", {M_("subject")}},
    [PJ_T_MaintenanceScheduled] = {"3.4.2", {{0}}},
    [PJ_T_MaintenanceCancelled] = {"3.4.2", {{0}}},
};
#undef M_

enum { ROLE_STREAM = 0xfe, ROLE_ACTOR = 0xfd };

/* The subjects of one event, deduplicated. */
typedef struct subjects {
    struct {
        char id[PJ_ID];
        int kind;
        unsigned char role;
    } s[8];
    size_t n;
} subjects_t;

static void add_subject(subjects_t *ss, const char *id, size_t len, int kind, unsigned char role)
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
        add_subject(ss, stream, strlen(stream), kind_of(stream, strlen(stream)), ROLE_STREAM);
    else
        add_subject(ss, colon + 1, strlen(colon + 1), kind_of(stream, (size_t)(colon - stream)),
                    ROLE_STREAM);
}

static void collect(pj_ctx_t *c, subjects_t *ss)
{
    ss->n = 0;
    stream_subject(ss, c->ev->stream);
    if (c->type == PJ_T_CommandRejected && c->ev->has_actor)
        add_subject(ss, c->ev->actor, strlen(c->ev->actor), K_MEMBER, ROLE_ACTOR);
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
        add_subject(ss, f->s, f->slen, kind, (unsigned char)i);
    }
}

/* ---- entries -------------------------------------------------------------------- */

static const char *role_name(pj_type_t type, unsigned char role)
{
    if (role == ROLE_STREAM)
        return "stream";
    if (role == ROLE_ACTOR)
        return "actor";
    if (type == PJ_T_UNKNOWN || type == PJ_T_CommandRejected || role >= 6 ||
        audit_rows[type].subj[role].field == NULL)
        return NULL;
    return audit_rows[type].subj[role].field;
}

/* The action ("OrderPaid", "rejected:INSUFFICIENT_FUNDS") and clause of the event. */
static void action_clause(const pj_ctx_t *c, char *action, size_t cap, const char **clause,
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

/* epoch(4 BE) id NUL seq(8 BE): the common head of both databases' keys. */
static void entry_key(pj_key_t *k, const char *id, uint64_t seq)
{
    md__pj_epoch_key(k, NULL, 0, seq, id);
    md__pj_key_be64(k, seq);
}

md_err_t md__pj_audit_apply(pj_ctx_t *c)
{
    subjects_t ss;
    pj_key_t k;
    md_err_t rc = MD_OK;
    collect(c, &ss);
    for (size_t i = 0; i < ss.n && rc == MD_OK; i++) {
        entry_key(&k, ss.s[i].id, c->ev->seq);
        md__pj_key_byte(&k, (unsigned char)ss.s[i].kind);
        rc = md__pj_put_new(c, PJ_DB_AUDIT, k.b, k.n, &ss.s[i].role, 1);
    }
    if (rc != MD_OK || !c->ev->has_actor)
        return rc;
    unsigned char role = ROLE_STREAM;
    entry_key(&k, c->ev->actor, c->ev->seq);
    return md__pj_put_new(c, PJ_DB_AUDIT_ACTOR, k.b, k.n, &role, 1);
}

/* ---- queries ------------------------------------------------------------------------ */

typedef struct query {
    md_txn_t *t;       /* where the events are read */
    uint64_t head;     /* entries of later events are not shown yet (see md_proj_audit) */
    int kind;          /* -1: any */
    const char *actor; /* filter on subject scans */
    bool by_actor;
    const char *id; /* the subject or actor */
    size_t idn;     /* its length plus the NUL */
    md_proj_row_fn fn;
    void *ctx;
} query_t;

static json_t *strn_or_null(const char *s, size_t n)
{
    return n ? json_stringn(s, n) : json_null();
}

/* The entry's event, decoded as the projections saw it. */
static md_err_t load_event(md_txn_t *t, uint64_t seq, md_event_t *ev, pj_ctx_t *c, md_error_t *err)
{
    md_err_t rc = md_txn_event(t, seq, ev, NULL, NULL, err);
    if (rc == MD_ENOTFOUND)
        return md_error_set(err, MD_ECORRUPT, "audit entry points at missing event %llu",
                            (unsigned long long)seq);
    if (rc != MD_OK)
        return rc;
    memset(c, 0, sizeof *c);
    c->ev = ev;
    c->type = md__pj_type(ev->type);
    if (md__pj_fields_parse(&c->f, ev->data, ev->data_len) != 0)
        return md_error_set(err, MD_ECODEC, "event %llu: data is not a flat msgpack map",
                            (unsigned long long)seq);
    return MD_OK;
}

/* Fills the row of an entry of event @p c under @p subject (of @p kind, in @p role). */
static json_t *entry_json(const pj_ctx_t *c, const char *subject, size_t subject_n, int kind,
                          const char *role)
{
    char action[MD_TYPE_MAX + 80];
    const char *clause, *s;
    size_t clen, n;
    const md_event_t *ev = c->ev;
    action_clause(c, action, sizeof action, &clause, &clen);
    json_t *j = json_object();
    md_json_set(j, "seq", json_integer((json_int_t)ev->seq));
    md_json_set(j, "recorded_at", json_integer(ev->recorded_at));
    md_json_set(j, "action", json_string(action));
    md_json_set(j, "clause", strn_or_null(clause, clen));
    md_json_set(j, "actor", ev->has_actor ? json_string(ev->actor) : json_null());
    md_json_set(j, "subject", strn_or_null(subject, subject_n));
    md_json_set(j, "subject_kind", md__pj_enumj(kinds, NKINDS, kind));
    md_json_set(j, "role", json_string(role));
    md_json_set(j, "stream", json_string(ev->stream));
    md_json_set(j, "command_id", ev->has_command_id ? json_string(ev->command_id) : json_null());
    if (c->type == PJ_T_CommandRejected &&
        md_data_get_str(ev->data, ev->data_len, "message", &s, &n) == MD_OK)
        md_json_set(j, "message", json_stringn(s, n));
    return j;
}

static md_err_t visit(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted, md_error_t *err)
{
    query_t *q = ctx;
    md_event_t ev;
    pj_ctx_t c;
    subjects_t ss;
    size_t want = 4 + q->idn + 8 + (q->by_actor ? 0 : 1);
    const unsigned char *kb = k->mv_data;
    if (k->mv_size != want || v->mv_size != 1)
        return md_error_set(err, MD_ECORRUPT, "audit entry with a %zu-byte key is malformed",
                            k->mv_size);
    uint64_t seq = md__pj_get_be64(kb + 4 + q->idn);
    int kind = q->by_actor ? -1 : kb[want - 1];
    if ((q->kind >= 0 && kind != q->kind) || seq > q->head)
        return MD_OK;
    md_err_t rc = load_event(q->t, seq, &ev, &c, err);
    if (rc != MD_OK)
        return rc;
    if (q->actor && (!ev.has_actor || strcmp(ev.actor, q->actor) != 0))
        return MD_OK;
    const char *role = role_name(c.type, *(const unsigned char *)v->mv_data);
    if (role == NULL)
        return md_error_set(err, MD_ECORRUPT, "audit entry of event %llu has an unknown role",
                            (unsigned long long)seq);
    json_t *j;
    if (q->by_actor) {
        ss.n = 0;
        stream_subject(&ss, ev.stream);
        j = ss.n ? entry_json(&c, ss.s[0].id, strlen(ss.s[0].id), ss.s[0].kind, role)
                 : entry_json(&c, "", 0, -1, role);
    } else {
        j = entry_json(&c, q->id, q->idn - 1, kind, role);
    }
    *emitted = true;
    rc = q->fn(j, q->ctx, err);
    json_decref(j);
    return rc;
}

static md_err_t audit_in(md_proj_t *p, md_txn_t *t, md_txn_t *events, bool clip,
                         const md_proj_audit_filter_t *f, md_proj_page_t *page, md_proj_row_fn fn,
                         void *ctx, md_error_t *err)
{
    query_t q = {events, UINT64_MAX, -1, NULL, false, NULL, 0, fn, ctx};
    if (f == NULL || (f->subject == NULL && f->actor == NULL))
        return md_error_set(err, MD_EINVAL, "audit needs a subject or an actor");
    if (f->subject) {
        const char *colon = strchr(f->subject, ':');
        q.id = f->subject;
        if (colon && (q.kind = kind_of(f->subject, (size_t)(colon - f->subject))) >= 0)
            q.id = colon + 1;
        q.actor = f->actor;
    } else {
        q.id = f->actor;
        q.by_actor = true;
    }
    q.idn = strlen(q.id) + 1;
    if (q.idn >= PJ_ID)
        return md_error_set(err, MD_EINVAL, "audit id of %zu bytes is too long", q.idn - 1);
    if (clip) { /* the log's snapshot may be older than the projections' */
        md_err_t rc = md_txn_head(events, &q.head, NULL, err);
        if (rc != MD_OK)
            return rc;
    }
    return md__pj_epoch_scan(md_txn_mdb(t), p->dbi[q.by_actor ? PJ_DB_AUDIT_ACTOR : PJ_DB_AUDIT],
                             NULL, 0, q.id, page, visit, &q, err);
}

/*
 * With the projections in their own environment, the events come from the
 * caller's transaction of the log when it passed one (the log snapshot may be
 * older than the projections' one begun after it: entries of events beyond
 * its head are left out, so the listing is as of that snapshot), else from a
 * snapshot of the log begun after the projections' (it holds every event the
 * projections do).
 */
md_err_t md_proj_audit(md_proj_t *p, md_txn_t *t, const md_proj_audit_filter_t *f,
                       md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL, *own_events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK && events == NULL && (rc = md_store_read(p->evlog, &own_events, err)) == MD_OK)
        events = own_events;
    if (rc == MD_OK)
        rc = audit_in(p, t, events, events != t && own_events == NULL, f, page, fn, ctx, err);
    md_txn_end(own_events);
    md_txn_end(own);
    return rc;
}
