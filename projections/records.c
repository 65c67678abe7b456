/*
 * records.c - the records projection (p_records): what `get store|product|
 * complaint|sanction|voucher` shows. Key: one kind byte ('S' store, 'P'
 * product, 'C' complaint, 'X' sanction, 'V' voucher) followed by the id.
 * One table row per (event type, record touched); a row either creates the
 * record or changes an existing one.
 */
#include <stdio.h>
#include <string.h>

#include "pj.h"

const char *const md__pj_measures[] = {
    "notice",         "remove_content", "mute",        "restrict_ordering", "close_order",
    "freeze_balance", "delist_product", "close_store", "suspend_account",   "close_account",
};
const size_t md__pj_nmeasures = sizeof md__pj_measures / sizeof md__pj_measures[0];

enum {
    M_NOTICE,
    M_REMOVE,
    M_MUTE,
    M_RESTRICT,
    M_CLOSE_ORDER,
    M_FREEZE,
    M_DELIST,
    M_CLOSE_STORE,
    M_SUSPEND,
    M_CLOSE_ACCOUNT
};

bool md__pj_in_effect(int64_t applied_at, int64_t expires_at, int64_t lifted_at, int64_t as_of)
{
    (void)applied_at; /* the projection is at the head: the sanction exists */
    return lifted_at == PJ_NONE && (expires_at == PJ_NONE || as_of < expires_at);
}

#define N_(a) (sizeof a / sizeof a[0])
#define S_(T, f)                                                                                   \
    {                                                                                              \
        offsetof(T, f), sizeof(((T *)0)->f)                                                        \
    }

/* ---- layouts ------------------------------------------------------------------ */

typedef struct pj_store {
    int64_t fmt, opened_seq, updated_seq, opened_at, owner_closed, owner_closed_at;
    int64_t sanctioned, sanction_at, sanction_expires, products, orders;
    char owner[PJ_ID], name[PJ_NAME], sanction_id[PJ_ID];
} pj_store_t;
static const pj_str_desc_t store_strs[] = {S_(pj_store_t, owner), S_(pj_store_t, name),
                                           S_(pj_store_t, sanction_id)};

typedef struct pj_product {
    int64_t fmt, published_seq, updated_seq, published_at, kind, status, price, orders, units;
    int64_t reviews, rating_sum, delisted_by_sanction, sanction_expires;
    char store_id[PJ_ID], owner[PJ_ID], category_id[PJ_ID], title[PJ_NAME], sanction_id[PJ_ID];
} pj_product_t;
static const pj_str_desc_t product_strs[] = {S_(pj_product_t, store_id), S_(pj_product_t, owner),
                                             S_(pj_product_t, category_id), S_(pj_product_t, title),
                                             S_(pj_product_t, sanction_id)};

typedef struct pj_complaint {
    int64_t fmt, filed_seq, updated_seq, filed_at, status, arbitration_at, defense_at;
    int64_t withdrawn_at, ruled_at, closed_at, decision, refund_amount, released;
    char order_id[PJ_ID], complainant[PJ_ID], respondent[PJ_ID], sanction_id[PJ_ID];
} pj_complaint_t;
static const pj_str_desc_t complaint_strs[] = {
    S_(pj_complaint_t, order_id), S_(pj_complaint_t, complainant), S_(pj_complaint_t, respondent),
    S_(pj_complaint_t, sanction_id)};

typedef struct pj_sanction {
    int64_t fmt, applied_seq, updated_seq, applied_at, measure, target_type, expires_at;
    int64_t lifted_at, appealed_at, refunded;
    char target_id[PJ_ID], clause[PJ_CLAUSE], reason[PJ_TEXT], lift_reason[PJ_TEXT];
    char appellant[PJ_ID], buyer[PJ_ID], provider[PJ_ID], owner[PJ_ID], complaint_id[PJ_ID];
} pj_sanction_t;
static const pj_str_desc_t sanction_strs[] = {
    S_(pj_sanction_t, target_id),   S_(pj_sanction_t, clause),    S_(pj_sanction_t, reason),
    S_(pj_sanction_t, lift_reason), S_(pj_sanction_t, appellant), S_(pj_sanction_t, buyer),
    S_(pj_sanction_t, provider),    S_(pj_sanction_t, owner),     S_(pj_sanction_t, complaint_id)};

typedef struct pj_voucher {
    int64_t fmt, issued_seq, updated_seq, issued_at, value, expires_at, promo, redeemed;
    int64_t discount, redeemed_at, restored_at;
    char holder[PJ_ID], order_id[PJ_ID];
} pj_voucher_t;
static const pj_str_desc_t voucher_strs[] = {S_(pj_voucher_t, holder), S_(pj_voucher_t, order_id)};

/* run_row stamps updated_seq through the union: it is the third field of each. */
_Static_assert(offsetof(pj_store_t, updated_seq) == 16, "updated_seq");
_Static_assert(offsetof(pj_product_t, updated_seq) == 16, "updated_seq");
_Static_assert(offsetof(pj_complaint_t, updated_seq) == 16, "updated_seq");
_Static_assert(offsetof(pj_sanction_t, updated_seq) == 16, "updated_seq");
_Static_assert(offsetof(pj_voucher_t, updated_seq) == 16, "updated_seq");

#define LAYOUT_(T, c, first, strs)                                                                 \
    {                                                                                              \
        ((int64_t)(c) << 8) | PJ_FORMAT, offsetof(T, first), sizeof(T), N_(strs), strs             \
    }
static const pj_layout_t store_layout = LAYOUT_(pj_store_t, 'S', owner, store_strs);
static const pj_layout_t product_layout = LAYOUT_(pj_product_t, 'P', store_id, product_strs);
static const pj_layout_t complaint_layout = LAYOUT_(pj_complaint_t, 'C', order_id, complaint_strs);
static const pj_layout_t sanction_layout = LAYOUT_(pj_sanction_t, 'X', target_id, sanction_strs);
static const pj_layout_t voucher_layout = LAYOUT_(pj_voucher_t, 'V', holder, voucher_strs);

static const char *const product_kinds[] = {"software", "image", "service"};
static const char *const product_status[] = {"listed", "pending_review", "denied", "delisted",
                                             "removed"};
static const char *const complaint_status[] = {"open", "arbitration", "withdrawn", "ruled",
                                               "closed"};
static const char *const decisions[] = {"refund_buyer", "release_provider", "split"};
static const char *const target_types[] = {"member", "review", "product", "order", "store"};

/* One record being created or changed. */
typedef struct rec_op {
    pj_ctx_t *c;
    int64_t now;
    union {
        pj_store_t s;
        pj_product_t p;
        pj_complaint_t q;
        pj_sanction_t x;
        pj_voucher_t v;
    } r;
} rec_op_t;

/* ---- stores --------------------------------------------------------------------- */

static void store_opened(rec_op_t *o)
{
    o->r.s.opened_seq = (int64_t)o->c->ev->seq;
    o->r.s.opened_at = o->now;
    o->r.s.owner_closed_at = o->r.s.sanction_at = o->r.s.sanction_expires = PJ_NONE;
    md__pj_str(o->c, "owner", o->r.s.owner, PJ_ID);
    md__pj_str(o->c, "name", o->r.s.name, PJ_NAME);
}

static void store_closed(rec_op_t *o)
{
    o->r.s.owner_closed = o->c->type == PJ_T_StoreClosed;
    o->r.s.owner_closed_at = o->r.s.owner_closed ? o->now : PJ_NONE;
}

static void store_product(rec_op_t *o)
{
    o->r.s.products++;
}

static void store_order(rec_op_t *o)
{
    o->r.s.orders++;
}

static void store_sanction(rec_op_t *o)
{
    char sid[PJ_ID];
    md__pj_str(o->c, "sanction_id", sid, PJ_ID);
    if (o->c->type == PJ_T_SanctionLifted) {
        if (strcmp(sid, o->r.s.sanction_id) == 0)
            o->r.s.sanctioned = 0;
        return;
    }
    o->r.s.sanctioned = 1;
    o->r.s.sanction_at = o->now;
    o->r.s.sanction_expires = md__pj_opt_int(o->c, "expires_at");
    memcpy(o->r.s.sanction_id, sid, PJ_ID);
}

/* ---- products ------------------------------------------------------------------- */

static void product_published(rec_op_t *o)
{
    pj_product_t *p = &o->r.p;
    p->published_seq = (int64_t)o->c->ev->seq;
    p->published_at = o->now;
    p->kind = md__pj_enum(o->c, "kind", product_kinds, N_(product_kinds));
    p->status = md__pj_enum(o->c, "status", product_status, N_(product_status));
    p->price = md__pj_int(o->c, "price");
    p->sanction_expires = PJ_NONE;
    md__pj_str(o->c, "store_id", p->store_id, PJ_ID);
    md__pj_str(o->c, "owner", p->owner, PJ_ID);
    md__pj_str(o->c, "category_id", p->category_id, PJ_ID);
    md__pj_str(o->c, "title", p->title, PJ_NAME);
}

/* ProductApproved/Denied carry the new status; Delisted/Relisted imply it. */
static void product_status_change(rec_op_t *o)
{
    pj_type_t t = o->c->type;
    o->r.p.status = t == PJ_T_ProductDelisted ? 3
                    : t == PJ_T_ProductRelisted
                        ? 0
                        : md__pj_enum(o->c, "status", product_status, N_(product_status));
}

static void product_price(rec_op_t *o)
{
    o->r.p.price = md__pj_int(o->c, "price");
}

static void product_order(rec_op_t *o)
{
    o->r.p.orders++;
    o->r.p.units += md__pj_int(o->c, "quantity");
}

static void product_review(rec_op_t *o)
{
    o->r.p.reviews++;
    o->r.p.rating_sum += md__pj_int(o->c, "rating");
}

static void product_sanction(rec_op_t *o)
{
    char sid[PJ_ID];
    int64_t m = md__pj_enum(o->c, "measure", md__pj_measures, md__pj_nmeasures);
    md__pj_str(o->c, "sanction_id", sid, PJ_ID);
    if (o->c->type == PJ_T_SanctionLifted) {
        if (strcmp(sid, o->r.p.sanction_id) == 0)
            o->r.p.delisted_by_sanction = 0;
        return;
    }
    int64_t st = md__pj_enum(o->c, "product_status", product_status, N_(product_status));
    if (st >= 0)
        o->r.p.status = st;
    memcpy(o->r.p.sanction_id, sid, PJ_ID);
    o->r.p.delisted_by_sanction = m == M_DELIST;
    o->r.p.sanction_expires = m == M_DELIST ? md__pj_opt_int(o->c, "expires_at") : PJ_NONE;
}

/* ---- complaints ----------------------------------------------------------------- */

static void complaint_filed(rec_op_t *o)
{
    pj_complaint_t *q = &o->r.q;
    q->filed_seq = (int64_t)o->c->ev->seq;
    q->filed_at = o->now;
    q->arbitration_at = q->defense_at = q->withdrawn_at = q->ruled_at = q->closed_at = PJ_NONE;
    q->decision = -1;
    md__pj_str(o->c, "order_id", q->order_id, PJ_ID);
    md__pj_str(o->c, "complainant", q->complainant, PJ_ID);
    md__pj_str(o->c, "respondent", q->respondent, PJ_ID);
}

static void complaint_step(rec_op_t *o)
{
    pj_complaint_t *q = &o->r.q;
    switch (o->c->type) {
    case PJ_T_ArbitrationRequested: q->status = 1, q->arbitration_at = o->now; break;
    case PJ_T_DefenseSubmitted: q->defense_at = o->now; break;
    case PJ_T_ComplaintWithdrawn: q->status = 2, q->withdrawn_at = o->now; break;
    case PJ_T_DisputeRuled:
        q->status = 3, q->ruled_at = o->now;
        q->decision = md__pj_enum(o->c, "decision", decisions, N_(decisions));
        q->refund_amount = md__pj_int(o->c, "refund_amount");
        q->released = md__pj_int(o->c, "released");
        break;
    default: /* SanctionApplied close_order with this active complaint */
        q->status = 4, q->closed_at = o->now;
        md__pj_str(o->c, "sanction_id", q->sanction_id, PJ_ID);
    }
}

/* ---- sanctions ------------------------------------------------------------------ */

static void sanction_applied(rec_op_t *o)
{
    pj_sanction_t *x = &o->r.x;
    pj_ctx_t *c = o->c;
    x->applied_seq = (int64_t)c->ev->seq;
    x->applied_at = o->now;
    x->measure = md__pj_enum(c, "measure", md__pj_measures, md__pj_nmeasures);
    x->target_type = md__pj_enum(c, "target_type", target_types, N_(target_types));
    x->expires_at = md__pj_opt_int(c, "expires_at");
    x->lifted_at = x->appealed_at = PJ_NONE;
    x->refunded = md__pj_int(c, "refunded");
    md__pj_str(c, "target_id", x->target_id, PJ_ID);
    md__pj_str(c, "clause", x->clause, PJ_CLAUSE);
    md__pj_str(c, "reason", x->reason, PJ_TEXT);
    md__pj_str(c, "buyer", x->buyer, PJ_ID);
    md__pj_str(c, "provider", x->provider, PJ_ID);
    if (!md__pj_str(c, "owner", x->owner, PJ_ID))
        md__pj_str(c, "author", x->owner, PJ_ID);
    md__pj_str(c, "complaint_id", x->complaint_id, PJ_ID);
}

static void sanction_lifted(rec_op_t *o)
{
    o->r.x.lifted_at = o->now;
    md__pj_str(o->c, "reason", o->r.x.lift_reason, PJ_TEXT);
}

static void sanction_appealed(rec_op_t *o)
{
    o->r.x.appealed_at = o->now;
    md__pj_str(o->c, "appellant", o->r.x.appellant, PJ_ID);
}

/* ---- vouchers ------------------------------------------------------------------- */

static void voucher_issued(rec_op_t *o)
{
    pj_voucher_t *v = &o->r.v;
    v->issued_seq = (int64_t)o->c->ev->seq;
    v->issued_at = o->now;
    v->value = md__pj_int(o->c, "value");
    v->expires_at = md__pj_opt_int(o->c, "expires_at");
    v->promo = md__pj_int(o->c, "new_member_promo");
    v->redeemed_at = v->restored_at = PJ_NONE;
    md__pj_str(o->c, "member_id", v->holder, PJ_ID);
}

static void voucher_use(rec_op_t *o)
{
    pj_voucher_t *v = &o->r.v;
    v->redeemed = o->c->type == PJ_T_VoucherRedeemed;
    if (v->redeemed) {
        v->redeemed_at = o->now;
        v->discount = md__pj_int(o->c, "discount");
        md__pj_str(o->c, "order_id", v->order_id, PJ_ID);
    } else {
        v->restored_at = o->now;
    }
}

/* ---- the table ---------------------------------------------------------------------- */

typedef struct row {
    pj_type_t type;
    char kind;          /* record kind byte */
    const char *field;  /* data field holding the record id */
    const char *target; /* NULL, or the target_type required */
    bool creates;
    void (*fn)(rec_op_t *o);
} row_t;

static const row_t rows[] = {
    {PJ_T_StoreOpened, 'S', "store_id", NULL, true, store_opened},
    {PJ_T_StoreClosed, 'S', "store_id", NULL, false, store_closed},
    {PJ_T_StoreReopened, 'S', "store_id", NULL, false, store_closed},
    {PJ_T_ProductPublished, 'S', "store_id", NULL, false, store_product},
    {PJ_T_ProductPublished, 'P', "product_id", NULL, true, product_published},
    {PJ_T_ProductApproved, 'P', "product_id", NULL, false, product_status_change},
    {PJ_T_ProductDenied, 'P', "product_id", NULL, false, product_status_change},
    {PJ_T_ProductDelisted, 'P', "product_id", NULL, false, product_status_change},
    {PJ_T_ProductRelisted, 'P', "product_id", NULL, false, product_status_change},
    {PJ_T_PriceChanged, 'P', "product_id", NULL, false, product_price},
    {PJ_T_OrderPlaced, 'S', "store_id", NULL, false, store_order},
    {PJ_T_OrderPlaced, 'P', "product_id", NULL, false, product_order},
    {PJ_T_ReviewPosted, 'P', "product_id", NULL, false, product_review},
    {PJ_T_ComplaintFiled, 'C', "complaint_id", NULL, true, complaint_filed},
    {PJ_T_ArbitrationRequested, 'C', "complaint_id", NULL, false, complaint_step},
    {PJ_T_DefenseSubmitted, 'C', "complaint_id", NULL, false, complaint_step},
    {PJ_T_ComplaintWithdrawn, 'C', "complaint_id", NULL, false, complaint_step},
    {PJ_T_DisputeRuled, 'C', "complaint_id", NULL, false, complaint_step},
    {PJ_T_SanctionApplied, 'C', "complaint_id", "order", false, complaint_step},
    {PJ_T_SanctionApplied, 'X', "sanction_id", NULL, true, sanction_applied},
    {PJ_T_SanctionApplied, 'S', "target_id", "store", false, store_sanction},
    {PJ_T_SanctionApplied, 'P', "target_id", "product", false, product_sanction},
    {PJ_T_SanctionLifted, 'X', "sanction_id", NULL, false, sanction_lifted},
    {PJ_T_SanctionLifted, 'S', "target_id", "store", false, store_sanction},
    {PJ_T_SanctionLifted, 'P', "target_id", "product", false, product_sanction},
    {PJ_T_SanctionAppealed, 'X', "sanction_id", NULL, false, sanction_appealed},
    {PJ_T_VoucherIssued, 'V', "voucher_id", NULL, true, voucher_issued},
    {PJ_T_VoucherRedeemed, 'V', "voucher_id", NULL, false, voucher_use},
    {PJ_T_VoucherRestored, 'V', "voucher_id", NULL, false, voucher_use},
};

static const pj_layout_t *layout_of(char kind)
{
    switch (kind) {
    case 'S': return &store_layout;
    case 'P': return &product_layout;
    case 'C': return &complaint_layout;
    case 'X': return &sanction_layout;
    default: return &voucher_layout;
    }
}

static bool target_is(pj_ctx_t *c, const char *want)
{
    const pj_field_t *f = md__pj_field(c, "target_type");
    return f && f->kind == PJ_V_STR && f->slen == strlen(want) && memcmp(f->s, want, f->slen) == 0;
}

static md_err_t run_row(pj_ctx_t *c, const row_t *r)
{
    rec_op_t o;
    pj_key_t k;
    bool found;
    char id[PJ_ID];
    const pj_layout_t *l = layout_of(r->kind);
    if ((r->target && !target_is(c, r->target)) || !md__pj_str(c, r->field, id, PJ_ID))
        return MD_OK;
    md__pj_key_init(&k);
    md__pj_key_byte(&k, (unsigned char)r->kind);
    md__pj_key_str(&k, id);
    k.n--;
    o.c = c;
    o.now = c->ev->recorded_at;
    md_err_t rc = md__pj_load(c, PJ_DB_RECORDS, k.b, k.n, l, &o.r, &found);
    if (rc != MD_OK || found == r->creates)
        return rc; /* a second creation, or a change of an unknown record: ignored */
    r->fn(&o);
    *(int64_t *)((char *)&o.r + 2 * sizeof(int64_t)) = (int64_t)c->ev->seq; /* updated_seq */
    return md__pj_save(c, PJ_DB_RECORDS, k.b, k.n, l, &o.r);
}

md_err_t md__pj_records_apply(pj_ctx_t *c)
{
    md_err_t rc = MD_OK;
    if (c->type == PJ_T_UNKNOWN)
        return MD_OK;
    for (size_t i = 0; i < N_(rows) && rc == MD_OK; i++)
        if (rows[i].type == c->type)
            rc = run_row(c, &rows[i]);
    return rc;
}

/* ---- queries ------------------------------------------------------------------------ */

static json_t *store_json(const pj_store_t *s, int64_t as_of)
{
    bool sanctioned =
        s->sanctioned && md__pj_in_effect(s->sanction_at, s->sanction_expires, PJ_NONE, as_of);
    return json_pack("{s:s, s:o, s:s, s:o, s:b, s:b, s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "status",
                     !s->owner_closed && !sanctioned ? "open" : "closed", "owner",
                     md__pj_strj(s->owner), "name", s->name, "opened_at", md__pj_time(s->opened_at),
                     "closed_by_owner", (int)s->owner_closed, "closed_by_sanction", (int)sanctioned,
                     "owner_closed_at", md__pj_time(s->owner_closed_at), "sanction_id",
                     md__pj_strj(s->sanction_id), "sanction_expires_at",
                     md__pj_time(s->sanctioned ? s->sanction_expires : PJ_NONE), "products",
                     (json_int_t)s->products, "orders", (json_int_t)s->orders, "opened_seq",
                     (json_int_t)s->opened_seq, "updated_seq", (json_int_t)s->updated_seq);
}

static json_t *product_json(const pj_product_t *p, int64_t as_of)
{
    bool delisted =
        p->delisted_by_sanction && md__pj_in_effect(0, p->sanction_expires, PJ_NONE, as_of);
    json_t *j = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:s, s:I, s:I, s:I, s:I, s:b, s:o, s:o, s:I, s:I}", "status",
        md__pj_enumj(product_status, N_(product_status), p->status), "store_id",
        md__pj_strj(p->store_id), "owner", md__pj_strj(p->owner), "category_id",
        md__pj_strj(p->category_id), "kind",
        md__pj_enumj(product_kinds, N_(product_kinds), p->kind), "title", p->title, "price",
        (json_int_t)p->price, "orders", (json_int_t)p->orders, "units", (json_int_t)p->units,
        "reviews", (json_int_t)p->reviews, "delisted_by_sanction", (int)delisted, "sanction_id",
        md__pj_strj(p->sanction_id), "published_at", md__pj_time(p->published_at), "published_seq",
        (json_int_t)p->published_seq, "updated_seq", (json_int_t)p->updated_seq);
    md_json_set(j, "rating_avg",
                p->reviews ? json_real((double)p->rating_sum / (double)p->reviews) : json_null());
    return j;
}

static json_t *complaint_json(const pj_complaint_t *q)
{
    return json_pack("{s:o, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I, s:o, "
                     "s:I, s:I}",
                     "status", md__pj_enumj(complaint_status, N_(complaint_status), q->status),
                     "order_id", q->order_id, "complainant", q->complainant, "respondent",
                     q->respondent, "filed_at", md__pj_time(q->filed_at), "arbitration_at",
                     md__pj_time(q->arbitration_at), "defense_at", md__pj_time(q->defense_at),
                     "withdrawn_at", md__pj_time(q->withdrawn_at), "ruled_at",
                     md__pj_time(q->ruled_at), "closed_at", md__pj_time(q->closed_at), "decision",
                     md__pj_enumj(decisions, N_(decisions), q->decision), "refund_amount",
                     (json_int_t)q->refund_amount, "released", (json_int_t)q->released,
                     "closed_by_sanction", md__pj_strj(q->sanction_id), "filed_seq",
                     (json_int_t)q->filed_seq, "updated_seq", (json_int_t)q->updated_seq);
}

static json_t *sanction_json(const pj_sanction_t *x, int64_t as_of)
{
    bool on = x->measure != M_NOTICE &&
              md__pj_in_effect(x->applied_at, x->expires_at, x->lifted_at, as_of);
    json_t *j = json_pack(
        "{s:o, s:o, s:s, s:s, s:s, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:I, s:I}", "measure",
        md__pj_enumj(md__pj_measures, md__pj_nmeasures, x->measure), "target_type",
        md__pj_enumj(target_types, N_(target_types), x->target_type), "target_id", x->target_id,
        "clause", x->clause, "reason", x->reason, "applied_at", md__pj_time(x->applied_at),
        "expires_at", md__pj_time(x->expires_at), "in_effect", (int)on, "lifted_at",
        md__pj_time(x->lifted_at), "lift_reason", md__pj_strj(x->lift_reason), "appealed_at",
        md__pj_time(x->appealed_at), "appellant", md__pj_strj(x->appellant), "applied_seq",
        (json_int_t)x->applied_seq, "updated_seq", (json_int_t)x->updated_seq);
    json_t *cons = json_object(); /* consequences, by target type */
    if (x->buyer[0])
        md_json_set(cons, "buyer", json_string(x->buyer));
    if (x->provider[0])
        md_json_set(cons, "provider", json_string(x->provider));
    if (x->owner[0])
        md_json_set(cons, "owner", json_string(x->owner));
    if (x->complaint_id[0])
        md_json_set(cons, "complaint_id", json_string(x->complaint_id));
    if (x->target_type == 3)
        md_json_set(cons, "refunded", json_integer(x->refunded));
    md_json_set(j, "consequences", cons);
    return j;
}

static json_t *voucher_json(const pj_voucher_t *v, int64_t as_of)
{
    const char *st = v->redeemed                                          ? "redeemed"
                     : v->expires_at != PJ_NONE && as_of >= v->expires_at ? "expired"
                                                                          : "available";
    return json_pack("{s:s, s:s, s:I, s:o, s:b, s:o, s:I, s:o, s:o, s:o, s:I, s:I}", "status", st,
                     "holder", v->holder, "value", (json_int_t)v->value, "expires_at",
                     md__pj_time(v->expires_at), "new_member_promo", (int)v->promo, "order_id",
                     md__pj_strj(v->redeemed ? v->order_id : ""), "discount",
                     (json_int_t)(v->redeemed ? v->discount : 0), "issued_at",
                     md__pj_time(v->issued_at), "redeemed_at", md__pj_time(v->redeemed_at),
                     "restored_at", md__pj_time(v->restored_at), "issued_seq",
                     (json_int_t)v->issued_seq, "updated_seq", (json_int_t)v->updated_seq);
}

static const char *kind_word(char kind)
{
    switch (kind) {
    case 'S': return "store";
    case 'P': return "product";
    case 'C': return "complaint";
    case 'X': return "sanction";
    default: return "voucher";
    }
}

md_err_t md__pj_record_get(md_proj_t *p, MDB_txn *txn, char kind, const char *id, int64_t as_of,
                           json_t **out, md_error_t *err)
{
    pj_key_t k;
    bool found;
    union {
        pj_store_t s;
        pj_product_t p;
        pj_complaint_t q;
        pj_sanction_t x;
        pj_voucher_t v;
    } r;
    md__pj_key_init(&k);
    md__pj_key_byte(&k, (unsigned char)kind);
    md__pj_key_str(&k, id);
    md_err_t rc =
        md__pj_read(txn, p->dbi[PJ_DB_RECORDS], k.b, k.n - 1, layout_of(kind), &r, &found, err);
    if (rc != MD_OK)
        return rc;
    if (!found)
        return md_error_set(err, MD_ENOTFOUND, "%s '%s' not found", kind_word(kind), id);
    json_t *j = kind == 'S'   ? store_json(&r.s, as_of)
                : kind == 'P' ? product_json(&r.p, as_of)
                : kind == 'C' ? complaint_json(&r.q)
                : kind == 'X' ? sanction_json(&r.x, as_of)
                              : voucher_json(&r.v, as_of);
    char idkey[16];
    snprintf(idkey, sizeof idkey, "%s_id", kind_word(kind));
    md_json_set(j, idkey, json_string(id));
    *out = j;
    return MD_OK;
}
