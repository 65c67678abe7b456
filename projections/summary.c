/*
 * summary.c - the summaries analysts ask for (md_proj_summary, md_proj.h),
 * computed from the projections:
 *   order-status, products, categories, top-products, provider-rates
 *       the orders placed in a day range: the day index of p_order_idx is read
 *       day by day (with a provider, the orders of that provider on the day),
 *       so a summary reads the range's orders only, never the whole store;
 *   rejections
 *       p_rejections (day, code -> count), kept by the sales projection (sales.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pj.h"

#define SUMMARY_MAX_DAYS 366
#define DAY_MS 86400000LL

static const char *const kind_names[MD_SUMMARY_COUNT_] = {
    "order-status", "products", "categories", "top-products", "provider-rates", "rejections",
};

bool md_proj_summary_kind(const char *name, md_proj_summary_kind_t *out)
{
    for (int i = 0; i < MD_SUMMARY_COUNT_; i++)
        if (name && strcmp(name, kind_names[i]) == 0) {
            *out = (md_proj_summary_kind_t)i;
            return true;
        }
    return false;
}

/* Midnight UTC of YYYY-MM-DD in ms; false when it is not a calendar date. */
static bool day_ms(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    char back[PJ_DAY];
    if (s == NULL || strlen(s) != 10 ||
        sscanf(s, "%4d-%2d-%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday) != 3)
        return false;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *ms = (int64_t)timegm(&tm) * 1000;
    md__pj_day(*ms, back);
    return strcmp(back, s) == 0;
}

/* ---- aggregation of the range's orders ------------------------------------------------- */

typedef struct agg {
    const md_proj_summary_q_t *q;
    json_t *groups; /* group key -> row */
} agg_t;

static json_int_t num(json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void add(json_t *row, const char *k, json_int_t v)
{
    md_json_set(row, k, json_integer(num(row, k) + v));
}

/* The row of group @p key, created with the label fields @p a (and @p b). */
static json_t *group(agg_t *g, const char *key, const char *ka, const char *a, const char *kb,
                     const char *b)
{
    json_t *row = json_object_get(g->groups, key);
    if (row)
        return row;
    row = json_object();
    md_json_set(row, ka, json_string(a ? a : ""));
    if (kb)
        md_json_set(row, kb, json_string(b ? b : ""));
    md_json_set(g->groups, key, row);
    return row;
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void add_sales(json_t *row, json_t *order)
{
    add(row, "orders", 1);
    add(row, "units", num(order, "quantity"));
    add(row, "gross", num(order, "amount"));
    add(row, "paid", num(order, "paid"));
    add(row, "refunded", num(order, "refunded"));
    add(row, "revenue", num(order, "paid") - num(order, "refunded"));
}

static md_err_t take_order(json_t *order, void *ctx, md_error_t *err)
{
    agg_t *g = ctx;
    char key[2 * PJ_ID + 2];
    const char *prov = str(order, "provider"), *st = str(order, "status");
    json_t *row;
    (void)err;
    switch (g->q->kind) {
    case MD_SUMMARY_ORDER_STATUS:
        snprintf(key, sizeof key, "%s%c%s", prov, 1, st);
        add(group(g, key, "provider", prov, "status", st), "orders", 1);
        break;
    case MD_SUMMARY_PRODUCTS:
    case MD_SUMMARY_TOP_PRODUCTS:
        row = group(g, str(order, "product_id"), "product_id", str(order, "product_id"),
                    "category_id", str(order, "category_id"));
        md_json_set(row, "provider", json_string(prov));
        add_sales(row, order);
        break;
    case MD_SUMMARY_CATEGORIES:
        add_sales(group(g, str(order, "category_id"), "category_id", str(order, "category_id"),
                        NULL, NULL),
                  order);
        break;
    case MD_SUMMARY_PROVIDER_RATES:
        row = group(g, prov, "provider", prov, NULL, NULL);
        add(row, "orders", 1);
        add(row, "refunded", num(order, "refunded") > 0 || strstr(st, "refunded") != NULL);
        add(row, "disputed", json_is_object(json_object_get(order, "dispute")));
        break;
    default: break;
    }
    return MD_OK;
}

static int by_key(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int by_revenue(const void *a, const void *b)
{
    json_int_t x = num(*(json_t *const *)a, "revenue"), y = num(*(json_t *const *)b, "revenue");
    return x < y   ? 1
           : x > y ? -1
                   : strcmp(str(*(json_t *const *)a, "product_id"),
                            str(*(json_t *const *)b, "product_id"));
}

/* Rates as fractions with 4 decimals (0 when there is no order). */
static void add_rates(json_t *row)
{
    double n = (double)num(row, "orders");
    md_json_set(
        row, "refund_rate",
        json_real(n > 0 ? (double)(long long)(10000.0 * (double)num(row, "refunded") / n + 0.5) /
                              10000.0
                        : 0));
    md_json_set(
        row, "dispute_rate",
        json_real(n > 0 ? (double)(long long)(10000.0 * (double)num(row, "disputed") / n + 0.5) /
                              10000.0
                        : 0));
}

/* The groups in key order (top-products: by revenue, at most q->top). */
static md_err_t emit_groups(agg_t *g, md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    size_t n = json_object_size(g->groups), i = 0;
    json_t **rows = md_calloc(n ? n : 1, sizeof *rows);
    const char **keys = md_calloc(n ? n : 1, sizeof *keys);
    const char *k;
    json_t *v;
    json_object_foreach (g->groups, k, v)
        keys[i++] = k;
    qsort(keys, n, sizeof *keys, by_key);
    for (i = 0; i < n; i++)
        rows[i] = json_object_get(g->groups, keys[i]);
    if (g->q->kind == MD_SUMMARY_TOP_PRODUCTS) {
        qsort(rows, n, sizeof *rows, by_revenue);
        if (g->q->top && n > g->q->top)
            n = (size_t)g->q->top;
    }
    md_err_t rc = MD_OK;
    for (i = 0; i < n && rc == MD_OK; i++) {
        if (g->q->kind == MD_SUMMARY_PROVIDER_RATES)
            add_rates(rows[i]);
        rc = fn(rows[i], ctx, err);
    }
    free(rows);
    free(keys);
    return rc == MD_ESTOP ? MD_OK : rc;
}

static md_err_t order_summary(md_proj_t *p, md_txn_t *t, const md_proj_summary_q_t *q,
                              md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    int64_t from, to;
    if (!day_ms(q->from_day, &from) || !day_ms(q->to_day, &to) || to < from)
        return md_error_set(err, MD_EINVAL,
                            "a summary of orders needs from <= to, days YYYY-MM-DD");
    if ((to - from) / DAY_MS >= SUMMARY_MAX_DAYS)
        return md_error_set(err, MD_EINVAL, "a summary covers at most %d days", SUMMARY_MAX_DAYS);
    agg_t g = {q, json_object()};
    md_err_t rc = MD_OK;
    for (int64_t ms = from; ms <= to && rc == MD_OK; ms += DAY_MS) {
        char day[PJ_DAY];
        md__pj_day(ms, day);
        md_proj_order_filter_t f = {NULL, q->provider, NULL, day};
        md_proj_page_t page = {0};
        rc = md_proj_orders(p, t, &f, &page, take_order, &g, err);
    }
    if (rc == MD_OK)
        rc = emit_groups(&g, fn, ctx, err);
    json_decref(g.groups);
    return rc;
}

static md_err_t summary_in(md_proj_t *p, md_txn_t *t, const md_proj_summary_q_t *q,
                           md_proj_row_fn fn, void *ctx, md_error_t *err)
{
    if (q->kind == MD_SUMMARY_REJECTIONS)
        return md__pj_rejections(p, t, q->from_day, q->to_day, fn, ctx, err);
    if (q->kind < 0 || q->kind >= MD_SUMMARY_COUNT_)
        return md_error_set(err, MD_EINVAL, "unknown summary");
    return order_summary(p, t, q, fn, ctx, err);
}

/* The projections' snapshot for @p t (a transaction of either environment). */
md_err_t md_proj_summary(md_proj_t *p, md_txn_t *t, const md_proj_summary_q_t *q, md_proj_row_fn fn,
                         void *ctx, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = summary_in(p, t, q, fn, ctx, err);
    md_txn_end(own);
    return rc;
}
