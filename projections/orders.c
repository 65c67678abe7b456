/*
 * orders.c - the orders projection: one record per order (p_orders, keyed by
 * order id) and its indexes (p_order_idx):
 *   'b' epoch(4 BE) buyer NUL placed_seq(8 BE) -> order id
 *   'p' provider NUL placed_seq       -> order id
 *   's' status   NUL placed_seq       -> order id   (moved on each status change)
 *   'd' YYYY-MM-DD NUL placed_seq     -> order id   (UTC day of placement)
 * The placement seq makes index keys of one buyer/provider/day arrive in
 * order and lists come out in placement order. Buyers are many (every member
 * may buy), so their entries lead with the epoch of the placement seq
 * (epoch.h): a batch's new orders then go to the pages of the current epoch,
 * not to one page per buyer. Providers, days and statuses are few.
 */
#include <string.h>

#include "epoch.h"

#define DAY_MS 86400000LL /* rules.md: a day */

typedef struct pj_order {
    int64_t fmt, placed_seq, updated_seq, status, quantity, unit_price, discount, amount;
    int64_t escrow, paid, refunded, released;
    int64_t placed_at, paid_at, delivered_at, completed_at, cancelled_at, closed_at;
    int64_t refunded_at, disputed_at, ruled_at, dispute, ruling;
    int64_t auto_confirm_at, after_sales_until; /* PJ_NONE: no timer / no window */
    int64_t held, held_until, settled_at;       /* the settlement hold (PJ_NONE: none) */
    char buyer[PJ_ID], provider[PJ_ID], store_id[PJ_ID], product_id[PJ_ID];
    char category_id[PJ_ID], voucher_id[PJ_ID], complaint_id[PJ_ID], cancelled_by[PJ_ID];
    char sanction_id[PJ_ID];
} pj_order_t;

#define S_(f)                                                                                      \
    {                                                                                              \
        offsetof(pj_order_t, f), sizeof(((pj_order_t *)0)->f)                                      \
    }
static const pj_str_desc_t order_strs[] = {
    S_(buyer),      S_(provider),     S_(store_id),     S_(product_id),  S_(category_id),
    S_(voucher_id), S_(complaint_id), S_(cancelled_by), S_(sanction_id),
};
#undef S_

static const pj_layout_t order_layout = {
    ('O' << 8) | PJ_FORMAT,
    offsetof(pj_order_t, buyer),
    sizeof(pj_order_t),
    sizeof order_strs / sizeof order_strs[0],
    order_strs,
};

enum {
    ST_PLACED,
    ST_PAID,
    ST_DELIVERED,
    ST_COMPLETED,
    ST_CANCELLED,
    ST_CLOSED,
    ST_REFUNDED,
    ST_PARTIALLY_REFUNDED,
    ST_COUNT_
};
static const char *const status_names[ST_COUNT_] = {
    "placed",    "paid",   "delivered", "completed",
    "cancelled", "closed", "refunded",  "partially_refunded",
};

enum { DS_NONE, DS_OPEN, DS_ARBITRATION, DS_WITHDRAWN, DS_RULED, DS_CLOSED, DS_COUNT_ };
static const char *const dispute_names[DS_COUNT_] = {
    "none", "open", "arbitration", "withdrawn", "ruled", "closed",
};

static const char *const ruling_names[] = {"refund_buyer", "release_provider", "split"};
#define NRULINGS (sizeof ruling_names / sizeof ruling_names[0])

/* One order being updated by one event. */
typedef struct op {
    pj_ctx_t *c;
    pj_order_t o;
    char id[PJ_ID];
} op_t;

/* ---- index --------------------------------------------------------------------- */

static void idx_key(pj_key_t *k, char kind, const char *value, uint64_t seq)
{
    unsigned char head = (unsigned char)kind;
    if (kind == 'b') {
        md__pj_epoch_key(k, &head, 1, seq, value);
    } else {
        md__pj_key_init(k);
        md__pj_key_byte(k, head);
        md__pj_key_str(k, value);
    }
    md__pj_key_be64(k, seq);
}

static md_err_t idx_put(op_t *x, char kind, const char *value)
{
    pj_key_t k;
    idx_key(&k, kind, value, (uint64_t)x->o.placed_seq);
    return md__pj_put(x->c, PJ_DB_ORDER_IDX, k.b, k.n, x->id, strlen(x->id));
}

/* Moves the order to @p status in the record and the status index. */
static md_err_t set_status(op_t *x, int64_t status)
{
    pj_key_t k;
    if (x->o.status == status || status < 0 || status >= ST_COUNT_)
        return MD_OK;
    idx_key(&k, 's', status_names[x->o.status], (uint64_t)x->o.placed_seq);
    md_err_t rc = md__pj_del(x->c, PJ_DB_ORDER_IDX, k.b, k.n);
    x->o.status = status;
    return rc == MD_OK ? idx_put(x, 's', status_names[status]) : rc;
}

/* ---- handlers: each changes one loaded order --------------------------------------- */

static md_err_t on_paid(op_t *x)
{
    int64_t a = md__pj_int(x->c, "amount");
    x->o.escrow += a;
    x->o.paid += a;
    x->o.paid_at = x->c->ev->recorded_at;
    return set_status(x, ST_PAID);
}

static md_err_t on_delivered(op_t *x)
{
    x->o.delivered_at = x->c->ev->recorded_at;
    x->o.auto_confirm_at = md__pj_opt_int(x->c, "auto_confirm_at");
    return set_status(x, ST_DELIVERED);
}

/* A release to the provider: the hold (held_until) and the after-sales window. */
static void on_release(op_t *x, int64_t r)
{
    int64_t until = md__pj_opt_int(x->c, "held_until");
    int64_t window = md__pj_opt_int(x->c, "after_sales_until");
    if (until != PJ_NONE) {
        x->o.held = r;
        x->o.held_until = until;
    }
    if (window != PJ_NONE)
        x->o.after_sales_until = window;
}

static md_err_t on_completed(op_t *x)
{
    int64_t r = md__pj_int(x->c, "released");
    x->o.escrow -= r;
    x->o.released += r;
    on_release(x, r);
    x->o.completed_at = x->c->ev->recorded_at;
    return set_status(x, ST_COMPLETED);
}

static md_err_t on_cancelled(op_t *x)
{
    int64_t r = md__pj_int(x->c, "refunded");
    x->o.escrow -= r;
    x->o.refunded += r;
    x->o.cancelled_at = x->c->ev->recorded_at;
    md__pj_str(x->c, "cancelled_by", x->o.cancelled_by, PJ_ID);
    return set_status(x, ST_CANCELLED);
}

static md_err_t on_complaint(op_t *x)
{
    md__pj_str(x->c, "complaint_id", x->o.complaint_id, PJ_ID);
    x->o.disputed_at = x->c->ev->recorded_at;
    x->o.dispute = DS_OPEN;
    x->o.ruling = -1;
    return MD_OK;
}

static md_err_t on_arbitration(op_t *x)
{
    x->o.dispute = DS_ARBITRATION;
    return MD_OK;
}

/* A complaint ended at t: a timer that found it active is armed again by the
 * ending event (rules.md): auto_confirm at t + 1 day, settlement at t. */
static void complaint_ended(op_t *x)
{
    int64_t t = x->c->ev->recorded_at;
    if (x->o.status == ST_DELIVERED && x->o.auto_confirm_at != PJ_NONE && x->o.auto_confirm_at <= t)
        x->o.auto_confirm_at = t + DAY_MS;
    else if (x->o.held != PJ_NONE && x->o.settled_at == PJ_NONE && x->o.held_until <= t)
        x->o.held_until = t;
}

static md_err_t on_withdrawn(op_t *x)
{
    x->o.dispute = DS_WITHDRAWN;
    complaint_ended(x);
    return MD_OK;
}

static md_err_t on_settled(op_t *x)
{
    x->o.held = 0;
    x->o.settled_at = x->c->ev->recorded_at;
    return MD_OK;
}

static md_err_t on_ruled(op_t *x)
{
    int64_t refund = md__pj_int(x->c, "refund_amount"), rel = md__pj_int(x->c, "released");
    int64_t st = md__pj_enum(x->c, "order_status", status_names, ST_COUNT_);
    if (md__pj_int(x->c, "after_sales") != 0) { /* refunded from the hold */
        x->o.held -= refund;
        x->o.released -= refund;
    } else {
        x->o.escrow -= refund + rel;
        on_release(x, rel);
    }
    x->o.refunded += refund;
    x->o.released += rel;
    x->o.dispute = DS_RULED;
    x->o.ruling = md__pj_enum(x->c, "decision", ruling_names, NRULINGS);
    x->o.ruled_at = x->c->ev->recorded_at;
    if (st == ST_COMPLETED && x->o.status != ST_COMPLETED)
        x->o.completed_at = x->o.ruled_at;
    else if (st != ST_COMPLETED)
        x->o.refunded_at = x->o.ruled_at;
    if (st == ST_REFUNDED && x->o.held != PJ_NONE && x->o.settled_at == PJ_NONE)
        x->o.settled_at = x->o.ruled_at; /* the hold closed: all of it refunded */
    md_err_t rc = set_status(x, st);
    complaint_ended(x);
    return rc;
}

static md_err_t on_closed(op_t *x)
{
    int64_t r = md__pj_int(x->c, "refunded");
    x->o.escrow -= r;
    x->o.refunded += r;
    x->o.closed_at = x->c->ev->recorded_at;
    md__pj_str(x->c, "sanction_id", x->o.sanction_id, PJ_ID);
    if (x->o.dispute == DS_OPEN || x->o.dispute == DS_ARBITRATION)
        x->o.dispute = DS_CLOSED;
    return set_status(x, ST_CLOSED);
}

typedef struct handler {
    md_err_t (*fn)(op_t *x);
    const char *id_field; /* the data field holding the order id */
} handler_t;

static const handler_t handlers[PJ_T_COUNT_] = {
    [PJ_T_OrderPaid] = {on_paid, "order_id"},
    [PJ_T_OrderDelivered] = {on_delivered, "order_id"},
    [PJ_T_OrderCompleted] = {on_completed, "order_id"},
    [PJ_T_OrderCancelled] = {on_cancelled, "order_id"},
    [PJ_T_ComplaintFiled] = {on_complaint, "order_id"},
    [PJ_T_ArbitrationRequested] = {on_arbitration, "order_id"},
    [PJ_T_ComplaintWithdrawn] = {on_withdrawn, "order_id"},
    [PJ_T_DisputeRuled] = {on_ruled, "order_id"},
    [PJ_T_SettlementReleased] = {on_settled, "order_id"},
    [PJ_T_SanctionApplied] = {on_closed, "target_id"}, /* target_type order only */
};

/* OrderPlaced: a new record and its four index entries. */
static md_err_t placed(op_t *x)
{
    pj_ctx_t *c = x->c;
    char day[PJ_DAY];
    memset(&x->o, 0, sizeof x->o);
    x->o.fmt = order_layout.fmt;
    x->o.placed_seq = x->o.updated_seq = (int64_t)c->ev->seq;
    x->o.status = ST_PLACED;
    x->o.quantity = md__pj_int(c, "quantity");
    x->o.unit_price = md__pj_int(c, "unit_price");
    x->o.discount = md__pj_int(c, "discount");
    x->o.amount = md__pj_int(c, "amount");
    x->o.placed_at = c->ev->recorded_at;
    x->o.paid_at = x->o.delivered_at = x->o.completed_at = x->o.cancelled_at = PJ_NONE;
    x->o.closed_at = x->o.refunded_at = x->o.disputed_at = x->o.ruled_at = PJ_NONE;
    x->o.ruling = -1;
    x->o.auto_confirm_at = x->o.after_sales_until = PJ_NONE;
    x->o.held = x->o.held_until = x->o.settled_at = PJ_NONE;
    md__pj_str(c, "buyer", x->o.buyer, PJ_ID);
    md__pj_str(c, "provider", x->o.provider, PJ_ID);
    md__pj_str(c, "store_id", x->o.store_id, PJ_ID);
    md__pj_str(c, "product_id", x->o.product_id, PJ_ID);
    md__pj_str(c, "category_id", x->o.category_id, PJ_ID);
    md__pj_str(c, "voucher_id", x->o.voucher_id, PJ_ID);
    md__pj_day(x->o.placed_at, day);
    md_err_t rc = md__pj_save(c, PJ_DB_ORDERS, x->id, strlen(x->id), &order_layout, &x->o);
    if (rc == MD_OK)
        rc = idx_put(x, 'b', x->o.buyer);
    if (rc == MD_OK)
        rc = idx_put(x, 'p', x->o.provider);
    if (rc == MD_OK)
        rc = idx_put(x, 's', status_names[ST_PLACED]);
    return rc == MD_OK ? idx_put(x, 'd', day) : rc;
}

static bool targets_order(pj_ctx_t *c)
{
    const pj_field_t *f = md__pj_field(c, "target_type");
    return f && f->kind == PJ_V_STR && f->slen == 5 && memcmp(f->s, "order", 5) == 0;
}

md_err_t md__pj_orders_apply(pj_ctx_t *c)
{
    op_t x;
    bool found;
    x.c = c;
    if (c->type == PJ_T_UNKNOWN)
        return MD_OK;
    if (c->type == PJ_T_OrderPlaced)
        return md__pj_str(c, "order_id", x.id, PJ_ID) ? placed(&x) : MD_OK;
    const handler_t *h = &handlers[c->type];
    if (h->fn == NULL || (c->type == PJ_T_SanctionApplied && !targets_order(c)) ||
        !md__pj_str(c, h->id_field, x.id, PJ_ID))
        return MD_OK;
    md_err_t rc = md__pj_load(c, PJ_DB_ORDERS, x.id, strlen(x.id), &order_layout, &x.o, &found);
    if (rc != MD_OK || !found)
        return rc; /* an event about an order never placed changes nothing */
    if ((rc = h->fn(&x)) != MD_OK)
        return rc;
    x.o.updated_seq = (int64_t)c->ev->seq;
    return md__pj_save(c, PJ_DB_ORDERS, x.id, strlen(x.id), &order_layout, &x.o);
}

/* ---- queries ------------------------------------------------------------------------ */

static json_t *dispute_json(const pj_order_t *o)
{
    if (o->dispute == DS_NONE)
        return json_null();
    return json_pack("{s:s, s:o, s:o, s:o, s:o}", "complaint_id", o->complaint_id, "status",
                     md__pj_enumj(dispute_names, DS_COUNT_, o->dispute), "ruling",
                     md__pj_enumj(ruling_names, NRULINGS, o->ruling), "filed_at",
                     md__pj_time(o->disputed_at), "ruled_at", md__pj_time(o->ruled_at));
}

static json_t *order_json(const char *id, const pj_order_t *o)
{
    char day[PJ_DAY];
    md__pj_day(o->placed_at, day);
    json_t *j = json_object();
    md_json_set(j, "order_id", json_string(id));
    md_json_set(j, "status", md__pj_enumj(status_names, ST_COUNT_, o->status));
    md_json_set(j, "buyer", md__pj_strj(o->buyer));
    md_json_set(j, "provider", md__pj_strj(o->provider));
    md_json_set(j, "store_id", md__pj_strj(o->store_id));
    md_json_set(j, "product_id", md__pj_strj(o->product_id));
    md_json_set(j, "category_id", md__pj_strj(o->category_id));
    md_json_set(j, "quantity", json_integer(o->quantity));
    md_json_set(j, "unit_price", json_integer(o->unit_price));
    md_json_set(j, "discount", json_integer(o->discount));
    md_json_set(j, "amount", json_integer(o->amount));
    md_json_set(j, "voucher_id", md__pj_strj(o->voucher_id));
    md_json_set(j, "escrow", json_integer(o->escrow));
    md_json_set(j, "paid", json_integer(o->paid));
    md_json_set(j, "refunded", json_integer(o->refunded));
    md_json_set(j, "released", json_integer(o->released));
    md_json_set(j, "placed_at", md__pj_time(o->placed_at));
    md_json_set(j, "placed_day", json_string(day));
    md_json_set(j, "paid_at", md__pj_time(o->paid_at));
    md_json_set(j, "delivered_at", md__pj_time(o->delivered_at));
    md_json_set(j, "completed_at", md__pj_time(o->completed_at));
    md_json_set(j, "cancelled_at", md__pj_time(o->cancelled_at));
    md_json_set(j, "cancelled_by", md__pj_strj(o->cancelled_by));
    md_json_set(j, "closed_at", md__pj_time(o->closed_at));
    md_json_set(j, "closed_by_sanction", md__pj_strj(o->sanction_id));
    md_json_set(j, "refunded_at", md__pj_time(o->refunded_at));
    md_json_set(j, "auto_confirm_at", md__pj_time(o->auto_confirm_at));
    md_json_set(j, "after_sales_until", md__pj_time(o->after_sales_until));
    md_json_set(j, "held", md__pj_time(o->held));
    md_json_set(j, "held_until", md__pj_time(o->held_until));
    md_json_set(j, "settled_at", md__pj_time(o->settled_at));
    md_json_set(j, "dispute", dispute_json(o));
    md_json_set(j, "placed_seq", json_integer(o->placed_seq));
    md_json_set(j, "updated_seq", json_integer(o->updated_seq));
    return j;
}

static md_err_t read_order(md_proj_t *p, MDB_txn *txn, const char *id, size_t n, pj_order_t *o,
                           bool *found, md_error_t *err)
{
    return md__pj_read(txn, p->dbi[PJ_DB_ORDERS], id, n, &order_layout, o, found, err);
}

md_err_t md__pj_order_get(md_proj_t *p, MDB_txn *txn, const char *id, json_t **out, md_error_t *err)
{
    pj_order_t o;
    bool found;
    md_err_t rc = read_order(p, txn, id, strlen(id), &o, &found, err);
    if (rc == MD_OK && !found)
        rc = md_error_set(err, MD_ENOTFOUND, "order '%s' not found", id);
    if (rc == MD_OK)
        *out = order_json(id, &o);
    return rc;
}

typedef struct list {
    md_proj_t *p;
    MDB_txn *txn;
    const md_proj_order_filter_t *f;
    bool by_id; /* scanning p_orders itself */
    md_proj_row_fn fn;
    void *ctx;
} list_t;

static bool matches(const md_proj_order_filter_t *f, const pj_order_t *o)
{
    char day[PJ_DAY];
    md__pj_day(o->placed_at, day);
    return (!f->buyer || strcmp(f->buyer, o->buyer) == 0) &&
           (!f->provider || strcmp(f->provider, o->provider) == 0) &&
           (!f->status || (o->status >= 0 && o->status < ST_COUNT_ &&
                           strcmp(f->status, status_names[o->status]) == 0)) &&
           (!f->day || strcmp(f->day, day) == 0);
}

static md_err_t visit(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted, md_error_t *err)
{
    list_t *l = ctx;
    pj_order_t o;
    bool found = true;
    char id[PJ_ID];
    const MDB_val *idv = l->by_id ? k : v;
    if (idv->mv_size >= PJ_ID)
        return md_error_set(err, MD_ECORRUPT, "order index entry of %zu bytes", idv->mv_size);
    memcpy(id, idv->mv_data, idv->mv_size);
    id[idv->mv_size] = '\0';
    md_err_t rc = l->by_id
                      ? (md__pj_unpack(&order_layout, v->mv_data, v->mv_size, &o)
                             ? md_error_set(err, MD_ECORRUPT, "order '%s' has another layout", id)
                             : MD_OK)
                      : read_order(l->p, l->txn, id, strlen(id), &o, &found, err);
    if (rc != MD_OK)
        return rc;
    if (!found)
        return md_error_set(err, MD_ECORRUPT, "order index names missing order '%s'", id);
    if (!matches(l->f, &o))
        return MD_OK;
    *emitted = true;
    json_t *j = order_json(id, &o);
    rc = l->fn(j, l->ctx, err);
    json_decref(j);
    return rc;
}

static md_err_t orders_in(md_proj_t *p, md_txn_t *t, const md_proj_order_filter_t *f,
                          md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    static const md_proj_order_filter_t none = {0};
    list_t l = {p, md_txn_mdb(t), f ? f : &none, false, fn, ctx};
    pj_key_t k;
    f = l.f;
    if (f->status && md__pj_lookup(status_names, ST_COUNT_, f->status) < 0)
        return md_error_set(err, MD_EINVAL, "unknown order status '%s'", f->status);
    char kind = f->buyer ? 'b' : f->provider ? 'p' : f->day ? 'd' : f->status ? 's' : 0;
    const char *value = f->buyer      ? f->buyer
                        : f->provider ? f->provider
                        : f->day      ? f->day
                                      : f->status;
    if (kind == 0) {
        l.by_id = true;
        return md__pj_scan(l.txn, p->dbi[PJ_DB_ORDERS], "", 0, page, visit, &l, err);
    }
    if (kind == 'b')
        return md__pj_epoch_scan(l.txn, p->dbi[PJ_DB_ORDER_IDX], "b", 1, value, page, visit, &l,
                                 err);
    md__pj_key_init(&k);
    md__pj_key_byte(&k, (unsigned char)kind);
    md__pj_key_str(&k, value);
    return md__pj_scan(l.txn, p->dbi[PJ_DB_ORDER_IDX], k.b, k.n, page, visit, &l, err);
}

/* The projections' snapshot for @p t (a transaction of either environment). */
md_err_t md_proj_orders(md_proj_t *p, md_txn_t *t, const md_proj_order_filter_t *f,
                        md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = orders_in(p, t, f, page, fn, ctx, err);
    md_txn_end(own);
    return rc;
}
