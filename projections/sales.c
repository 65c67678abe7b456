/*
 * sales.c - the sales projection (p_sales): per provider and UTC day,
 *   key provider NUL YYYY-MM-DD -> counters
 * Each counter is booked on the day of the event that moves it:
 *   orders, gross            OrderPlaced (gross = sum of order amounts)
 *   completed, net           OrderCompleted; net also DisputeRuled's released
 *                            (net = money released to the provider)
 *   cancelled                OrderCancelled
 *   refunded, refunded_amount  DisputeRuled ending refunded/partially_refunded
 *   closed                   SanctionApplied close_order
 * and p_rejections (same projection): per UTC day and rejection code,
 *   key YYYY-MM-DD NUL code -> count of CommandRejected
 */
#include <string.h>

#include "pj.h"

typedef struct pj_sales {
    int64_t fmt, orders, completed, cancelled, refunded, closed, gross, net, refunded_amount;
} pj_sales_t;

static const pj_layout_t sales_layout = {
    ('D' << 8) | PJ_FORMAT, sizeof(pj_sales_t), sizeof(pj_sales_t), 0, NULL,
};

static void on_placed(pj_ctx_t *c, pj_sales_t *s)
{
    s->orders++;
    s->gross += md__pj_int(c, "amount");
}

static void on_completed(pj_ctx_t *c, pj_sales_t *s)
{
    s->completed++;
    s->net += md__pj_int(c, "released");
}

static void on_cancelled(pj_ctx_t *c, pj_sales_t *s)
{
    (void)c;
    s->cancelled++;
}

static void on_ruled(pj_ctx_t *c, pj_sales_t *s)
{
    const pj_field_t *st = md__pj_field(c, "order_status");
    s->net += md__pj_int(c, "released");
    s->refunded_amount += md__pj_int(c, "refund_amount");
    if (st && st->kind == PJ_V_STR && st->slen >= 8 &&
        memcmp(st->s + st->slen - 8, "refunded", 8) == 0)
        s->refunded++;
}

static void on_sanction(pj_ctx_t *c, pj_sales_t *s)
{
    s->closed++;
    s->refunded_amount += md__pj_int(c, "refunded");
}

typedef void (*sales_fn)(pj_ctx_t *c, pj_sales_t *s);

static const sales_fn sales_fns[PJ_T_COUNT_] = {
    [PJ_T_OrderPlaced] = on_placed,       [PJ_T_OrderCompleted] = on_completed,
    [PJ_T_OrderCancelled] = on_cancelled, [PJ_T_DisputeRuled] = on_ruled,
    [PJ_T_SanctionApplied] = on_sanction, /* close_order only, see below */
};

typedef struct pj_rejections {
    int64_t fmt, count;
} pj_rejections_t;

static const pj_layout_t rejections_layout = {
    ('J' << 8) | PJ_FORMAT, sizeof(pj_rejections_t), sizeof(pj_rejections_t), 0, NULL,
};

static md_err_t on_rejected(pj_ctx_t *c)
{
    char day[PJ_DAY], code[PJ_ID];
    pj_rejections_t r;
    pj_key_t k;
    bool found;
    if (!md__pj_str(c, "code", code, PJ_ID))
        return MD_OK;
    md__pj_day(c->ev->recorded_at, day);
    md__pj_key_init(&k);
    md__pj_key_str(&k, day);
    md__pj_key_str(&k, code);
    k.n--;
    md_err_t rc = md__pj_load(c, PJ_DB_REJECTIONS, k.b, k.n, &rejections_layout, &r, &found);
    if (rc != MD_OK)
        return rc;
    r.count++;
    return md__pj_save(c, PJ_DB_REJECTIONS, k.b, k.n, &rejections_layout, &r);
}

md_err_t md__pj_sales_apply(pj_ctx_t *c)
{
    char provider[PJ_ID], day[PJ_DAY];
    pj_sales_t s;
    pj_key_t k;
    bool found;
    if (c->type == PJ_T_CommandRejected)
        return on_rejected(c);
    if (c->type == PJ_T_UNKNOWN || sales_fns[c->type] == NULL)
        return MD_OK;
    if (c->type == PJ_T_SanctionApplied) {
        const pj_field_t *t = md__pj_field(c, "target_type");
        if (!t || t->kind != PJ_V_STR || t->slen != 5 || memcmp(t->s, "order", 5) != 0)
            return MD_OK;
    }
    if (!md__pj_str(c, "provider", provider, PJ_ID))
        return MD_OK;
    md__pj_day(c->ev->recorded_at, day);
    md__pj_key_init(&k);
    md__pj_key_str(&k, provider);
    md__pj_key_str(&k, day);
    k.n--;
    md_err_t rc = md__pj_load(c, PJ_DB_SALES, k.b, k.n, &sales_layout, &s, &found);
    if (rc != MD_OK)
        return rc;
    sales_fns[c->type](c, &s);
    return md__pj_save(c, PJ_DB_SALES, k.b, k.n, &sales_layout, &s);
}

/* ---- queries ------------------------------------------------------------------------ */

typedef struct query {
    const md_proj_sales_filter_t *f;
    md_proj_row_fn fn;
    void *ctx;
} query_t;

static md_err_t visit(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted, md_error_t *err)
{
    query_t *q = ctx;
    pj_sales_t s;
    const char *kb = k->mv_data, *nul = memchr(kb, 0, k->mv_size);
    char day[PJ_DAY];
    if (nul == NULL || k->mv_size - (size_t)(nul - kb) != PJ_DAY ||
        md__pj_unpack(&sales_layout, v->mv_data, v->mv_size, &s) != 0)
        return md_error_set(err, MD_ECORRUPT, "sales entry is malformed");
    memcpy(day, nul + 1, PJ_DAY - 1);
    day[PJ_DAY - 1] = '\0';
    if ((q->f->from_day && strcmp(day, q->f->from_day) < 0) ||
        (q->f->to_day && strcmp(day, q->f->to_day) > 0))
        return MD_OK;
    *emitted = true;
    json_t *j = json_pack("{s:s%, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "provider", kb,
                          (size_t)(nul - kb), "day", day, "orders", (json_int_t)s.orders,
                          "completed", (json_int_t)s.completed, "cancelled",
                          (json_int_t)s.cancelled, "refunded", (json_int_t)s.refunded, "closed",
                          (json_int_t)s.closed, "gross", (json_int_t)s.gross, "net",
                          (json_int_t)s.net, "refunded_amount", (json_int_t)s.refunded_amount);
    md_err_t rc = q->fn(j, q->ctx, err);
    json_decref(j);
    return rc;
}

static md_err_t sales_in(md_proj_t *p, md_txn_t *t, const md_proj_sales_filter_t *f,
                         md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    static const md_proj_sales_filter_t none = {0};
    query_t q = {f ? f : &none, fn, ctx};
    pj_key_t k;
    md__pj_key_init(&k);
    if (q.f->provider)
        md__pj_key_str(&k, q.f->provider);
    return md__pj_scan(md_txn_mdb(t), p->dbi[PJ_DB_SALES], k.b, k.n, page, visit, &q, err);
}

/* ---- rejections by code per day ------------------------------------------------------- */

typedef struct rej_query {
    const char *from, *to;
    md_proj_row_fn fn;
    void *ctx;
} rej_query_t;

static md_err_t visit_rejection(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted,
                                md_error_t *err)
{
    rej_query_t *r = ctx;
    const char *kb = k->mv_data;
    pj_rejections_t rec;
    if (k->mv_size <= PJ_DAY || kb[PJ_DAY - 1] != '\0' ||
        md__pj_unpack(&rejections_layout, v->mv_data, v->mv_size, &rec) != 0)
        return md_error_set(err, MD_ECORRUPT, "rejections entry is malformed");
    if ((r->from && strcmp(kb, r->from) < 0) || (r->to && strcmp(kb, r->to) > 0))
        return MD_OK;
    *emitted = true;
    json_t *j = json_pack("{s:s, s:s%, s:I}", "day", kb, "code", kb + PJ_DAY, k->mv_size - PJ_DAY,
                          "count", (json_int_t)rec.count);
    md_err_t rc = r->fn(j, r->ctx, err);
    json_decref(j);
    return rc;
}

md_err_t md__pj_rejections(md_proj_t *p, md_txn_t *t, const char *from, const char *to,
                           md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    rej_query_t r = {from, to, fn, ctx};
    md_proj_page_t page = {0};
    return md__pj_scan(md_txn_mdb(t), p->dbi[PJ_DB_REJECTIONS], "", 0, &page, visit_rejection, &r,
                       err);
}

/* The projections' snapshot for @p t (a transaction of either environment). */
md_err_t md_proj_sales(md_proj_t *p, md_txn_t *t, const md_proj_sales_filter_t *f,
                       md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = sales_in(p, t, f, page, fn, ctx, err);
    md_txn_end(own);
    return rc;
}
