/*
 * http.c - the read API (docs/api.md): routing, access control, privacy,
 * JSON responses from one read transaction per request, and the operations
 * endpoints /healthz, /readyz and /metrics.
 */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "md_base.h"
#include "md_command.h"
#include "md_http.h"
#include "md_log.h"
#include "md_metrics.h"
#include "md_rowfmt.h"

#define DEFAULT_LIMIT 100
#define MAX_LIMIT 1000
#define DEFAULT_WAIT_MS 2000 /* min_seq: how long a request waits for the projections */
#define MAX_WAIT_MS 30000

struct md_http {
    struct MHD_Daemon *d;
    md_store_t *store;
    md_proj_t *proj;
    md_tokens_t *tokens;
};

typedef struct req {
    md_http_t *h;
    struct MHD_Connection *c;
    md_principal_t who;
    const char *id; /* the path segment after a collection, or NULL */
    md_txn_t *txn;
    md_error_t err;
} req_t;

/* A handler fills *body and returns the HTTP status. */
typedef unsigned (*handler_fn)(req_t *r, json_t **body);

/* ---- responses ------------------------------------------------------------------ */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type,
                                 const void *p, size_t n)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(n, (void *)p, MHD_RESPMEM_MUST_COPY);
    if (resp == NULL)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"marketd\"");
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE) /* not yet (min_seq, /readyz): try again */
        MHD_add_response_header(resp, "Retry-After", "1");
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (s == NULL)
        return send_text(c, 500, "application/json", "{\"error\":\"encoding\"}", 20);
    enum MHD_Result rc = send_text(c, status, "application/json", s, strlen(s));
    free(s);
    return rc;
}

/* Whether the client asked for CSV (an Accept header naming text/csv). */
static bool wants_csv(struct MHD_Connection *c)
{
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
    return a && strstr(a, "text/csv") != NULL;
}

/* A listing's items as CSV (md_rowfmt.h), its next cursor in the header
 * X-Next-Cursor; any other answer (an error, one object) stays JSON. */
static enum MHD_Result send_csv(struct MHD_Connection *c, unsigned status, json_t *body)
{
    json_t *items = json_object_get(body, "items"), *row, *next = json_object_get(body, "next");
    if (status != 200 || !json_is_array(items))
        return send_json(c, status, body);
    md_rowfmt_t *f = md_rowfmt_new(MD_ROWFMT_CSV, NULL);
    md_buf_t out;
    size_t i;
    md_buf_init(&out);
    json_array_foreach (items, i, row)
        md_rowfmt_row(f, row, &out);
    md_rowfmt_free(f);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(out.len, out.p, MHD_RESPMEM_MUST_COPY);
    md_buf_release(&out);
    if (resp == NULL) {
        json_decref(body);
        return MHD_NO;
    }
    char nx[MD_PROJ_CURSOR_MAX];
    if (json_is_string(next))
        snprintf(nx, sizeof nx, "%s", json_string_value(next));
    else if (json_is_integer(next))
        snprintf(nx, sizeof nx, "%" JSON_INTEGER_FORMAT, json_integer_value(next));
    else
        nx[0] = '\0';
    json_decref(body);
    MHD_add_response_header(resp, "Content-Type", "text/csv; charset=utf-8; header=present");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (nx[0])
        MHD_add_response_header(resp, "X-Next-Cursor", nx);
    enum MHD_Result rc = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static unsigned fail(json_t **body, unsigned status, const char *msg)
{
    *body = json_pack("{s:s}", "error", msg);
    return status;
}

/* ---- request parameters -------------------------------------------------------------- */

static const char *arg(req_t *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->c, MHD_GET_ARGUMENT_KIND, name);
    return v && *v ? v : NULL;
}

static bool arg_limit(req_t *r, uint64_t *limit)
{
    const char *v = arg(r, "limit");
    char *end;
    if (v == NULL) {
        *limit = DEFAULT_LIMIT;
        return true;
    }
    unsigned long long n = strtoull(v, &end, 10);
    if (*end != '\0' || n == 0 || n > MAX_LIMIT)
        return false;
    *limit = n;
    return true;
}

/* A number parameter in 1..@p max, or @p dflt when absent; false when malformed. */
static bool arg_u64(req_t *r, const char *name, uint64_t dflt, uint64_t max, uint64_t *out)
{
    const char *v = arg(r, name);
    char *end;
    if (v == NULL) {
        *out = dflt;
        return true;
    }
    unsigned long long n = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end != '\0' || n == 0 || n > max)
        return false;
    *out = n;
    return true;
}

/*
 * min_seq (read-your-writes; docs/api.md): the projections live in their own
 * environment, applied shortly after each commit of the log. A request naming
 * the seq of its write waits, at most wait_ms, until the projections show it;
 * then 503 with Retry-After. Before the request's transactions are begun: a
 * waiting reader holds no snapshot. Returns 0 or the status to answer.
 */
static unsigned wait_min_seq(req_t *r, json_t **body)
{
    uint64_t seq = 0, ms = 0, reached = 0;
    if (!arg_u64(r, "min_seq", 0, UINT64_MAX, &seq) ||
        !arg_u64(r, "wait_ms", DEFAULT_WAIT_MS, MAX_WAIT_MS, &ms)) {
        *body = json_pack("{s:s}", "error", "min_seq must be a seq (>= 1), wait_ms 1..30000");
        return 400;
    }
    if (seq == 0)
        return 0;
    md_err_t rc = md_proj_wait(r->h->proj, seq, (long)ms, &reached, &r->err);
    if (rc == MD_OK)
        return 0;
    if (rc != MD_ETIMEDOUT) {
        *body = json_pack("{s:s}", "error", "store unavailable");
        return 503;
    }
    *body = json_pack("{s:s, s:I, s:I, s:I}", "error",
                      "the projections do not show min_seq yet; retry (Retry-After)", "min_seq",
                      (json_int_t)seq, "projections_seq", (json_int_t)reached, "waited_ms",
                      (json_int_t)ms);
    return 503;
}

static bool is_me(const req_t *r, const char *member)
{
    return r->who.role == MD_ROLE_MEMBER && member && strcmp(r->who.member, member) == 0;
}

static const char *str_field(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* ---- privacy ---------------------------------------------------------------------------- */

/*
 * Personal data (agreement §4.2.7, §6): hidden from analysts wherever it
 * appears, at any depth. business_name is included because a sole trader's
 * business name is usually their own name. A redacted field keeps its key
 * (stable field names) and always reads "[redacted]", null or not, so that
 * not even the presence of a phone number shows.
 */
static const char *const personal_keys[] = {"name",          "business_name", "email", "phone",
                                            "identity_hash", "buyer_contact", NULL};

static bool is_personal(const char *k)
{
    for (size_t i = 0; personal_keys[i]; i++)
        if (strcmp(k, personal_keys[i]) == 0)
            return true;
    return false;
}

/* Plain loops rather than jansson's foreach macros, which cppcheck cannot expand. */
static void redact(json_t *v)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            redact(json_array_get(v, i));
        return;
    }
    for (void *it = json_object_iter(v); it != NULL; it = json_object_iter_next(v, it)) {
        if (is_personal(json_object_iter_key(it)))
            json_object_iter_set_new(v, it, json_string("[redacted]"));
        else
            redact(json_object_iter_value(it));
    }
}

static json_t *for_viewer(req_t *r, json_t *v)
{
    if (r->who.role == MD_ROLE_ANALYST)
        redact(v);
    return v;
}

/*
 * The buyer's contact details (§6.3): PlaceOrder discloses them to the
 * order's provider (a PersonalDataDisclosed event in the buyer's audit
 * trail), so they are shown to that provider and to auditors, on the order
 * and in order lists; never to analysts or to the buyer's other
 * counterparties. Fields the account does not carry read null.
 */
static void add_buyer_contact(req_t *r, json_t *order)
{
    json_t *acct = NULL;
    const char *buyer = str_field(order, "buyer");
    if (r->who.role != MD_ROLE_AUDITOR && !is_me(r, str_field(order, "provider")))
        return;
    if (buyer == NULL || md_proj_get(r->h->proj, r->txn, "account", buyer, 0, &acct, NULL) != MD_OK)
        return;
    json_t *contact = json_object();
    const char *keys[] = {"name", "email", "phone"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(acct, keys[i]);
        json_object_set(contact, keys[i], v ? v : json_null());
    }
    md_json_set(order, "buyer_contact", contact);
    json_decref(acct);
}

/* ---- handlers ----------------------------------------------------------------------------- */

static unsigned get_status(md_err_t rc, json_t **body)
{
    if (rc == MD_ENOTFOUND)
        return fail(body, 404, "not found");
    return fail(body, 500, "store error");
}

/* A calendar date YYYY-MM-DD (UTC; 2026-02-30 is not one), or absent. */
static bool valid_day(const char *s)
{
    char t[32];
    int64_t ms;
    return s == NULL || (strlen(s) == 10 && snprintf(t, sizeof t, "%sT00:00:00Z", s) == 20 &&
                         md_parse_time(t, 20, &ms));
}

/* 400 naming the first of the day parameters @p names (NULL-ended) that is
 * not a calendar date, or 0 when all are (or absent). */
static unsigned check_days(req_t *r, const char *const *names, json_t **body)
{
    for (; *names; names++) {
        const char *v = arg(r, *names);
        if (!valid_day(v)) {
            *body = json_pack("{s:s, s:s, s:s}", "error", "not a calendar date YYYY-MM-DD",
                              "parameter", *names, "value", v);
            return 400;
        }
    }
    return 0;
}

static unsigned h_order(req_t *r, json_t **body)
{
    json_t *o = NULL;
    md_err_t rc = md_proj_get(r->h->proj, r->txn, "order", r->id, md_wall_ms(), &o, &r->err);
    bool member = r->who.role == MD_ROLE_MEMBER;
    if (member && (rc != MD_OK ||
                   (!is_me(r, str_field(o, "buyer")) && !is_me(r, str_field(o, "provider"))))) {
        json_decref(o);
        return fail(body, 403, "forbidden"); /* never reveals whether it exists */
    }
    if (rc != MD_OK)
        return get_status(rc, body);
    add_buyer_contact(r, o);
    *body = for_viewer(r, o);
    return 200;
}

static unsigned h_account(req_t *r, json_t **body)
{
    json_t *a = NULL;
    if (r->who.role == MD_ROLE_MEMBER && !is_me(r, r->id))
        return fail(body, 403, "forbidden");
    md_err_t rc = md_proj_get(r->h->proj, r->txn, "account", r->id, md_wall_ms(), &a, &r->err);
    if (rc != MD_OK)
        return get_status(rc, body);
    *body = for_viewer(r, a);
    return 200;
}

typedef struct rows {
    req_t *r;
    json_t *items;
    const char *from_day, *to_day; /* orders: inclusive placement day range */
} rows_t;

static md_err_t add_row(json_t *row, void *ctx, md_error_t *err)
{
    (void)err;
    rows_t *rs = ctx;
    json_array_append(rs->items, for_viewer(rs->r, row));
    return MD_OK;
}

/* Orders: the day range (which the projection's filter lacks), then the
 * buyer's contact where the viewer may see it. */
static md_err_t add_order(json_t *row, void *ctx, md_error_t *err)
{
    rows_t *rs = ctx;
    const char *day = str_field(row, "placed_day");
    if (day && ((rs->from_day && strcmp(day, rs->from_day) < 0) ||
                (rs->to_day && strcmp(day, rs->to_day) > 0)))
        return MD_OK;
    add_buyer_contact(rs->r, row);
    return add_row(row, ctx, err);
}

static unsigned list_reply(md_err_t rc, rows_t *rs, const char *next, json_t **body)
{
    if (rc != MD_OK) {
        json_decref(rs->items);
        return rc == MD_EINVAL ? fail(body, 400, "bad cursor or filter")
                               : fail(body, 500, "store error");
    }
    *body = json_pack("{s:o, s:o}", "items", rs->items, "next",
                      next[0] ? json_string(next) : json_null());
    return 200;
}

/* Rows an orders request may examine before it answers a short page (with a
 * cursor): bounds the length of its read transaction whatever the filter. */
#define ORDERS_SCAN_BUDGET 20000

static unsigned h_orders(req_t *r, json_t **body)
{
    md_proj_order_filter_t f = {arg(r, "buyer"), arg(r, "provider"), arg(r, "status"),
                                arg(r, "day")};
    md_proj_page_t page = {.cursor = arg(r, "cursor")};
    rows_t rs = {r, NULL, arg(r, "from"), arg(r, "to")};
    char cursor[MD_PROJ_CURSOR_MAX];
    uint64_t limit, scanned = 0;
    md_err_t rc;
    if (!arg_limit(r, &limit))
        return fail(body, 400, "limit must be 1..1000");
    static const char *const days[] = {"day", "from", "to", NULL};
    unsigned bad = check_days(r, days, body);
    if (bad)
        return bad;
    if (r->who.role == MD_ROLE_MEMBER && !is_me(r, f.buyer) && !is_me(r, f.provider))
        return fail(body, 403, "members list their own orders: set buyer or provider to yourself");
    if (f.day == NULL && rs.from_day && rs.to_day && strcmp(rs.from_day, rs.to_day) == 0)
        f.day = rs.from_day; /* a one-day range uses the day index */
    rs.items = json_array();
    /* Rows outside the day range are skipped after the projection counted
     * them, so a page is topped up from where the last query stopped. */
    do {
        page.limit = limit - json_array_size(rs.items);
        scanned += page.limit;
        rc = md_proj_orders(r->h->proj, r->txn, &f, &page, add_order, &rs, &r->err);
        snprintf(cursor, sizeof cursor, "%s", page.next);
        page.cursor = cursor;
    } while (rc == MD_OK && cursor[0] && json_array_size(rs.items) < limit &&
             scanned < ORDERS_SCAN_BUDGET);
    return list_reply(rc, &rs, cursor, body);
}

/* A member reads the trail about themself: a bare id names their member
 * record (an order or store could bear the same id). */
static const char *member_subject(req_t *r, const char *subject, char *buf, size_t n)
{
    if (r->who.role != MD_ROLE_MEMBER || subject == NULL)
        return subject;
    if (is_me(r, subject) || (strncmp(subject, "member:", 7) == 0 && is_me(r, subject + 7))) {
        snprintf(buf, n, "member:%s", r->who.member);
        return buf;
    }
    return subject;
}

static unsigned h_audit(req_t *r, json_t **body)
{
    char subj[80];
    md_proj_audit_filter_t f = {arg(r, "subject"), arg(r, "actor")};
    md_proj_page_t page = {.cursor = arg(r, "cursor")};
    bool own_subject = f.subject != NULL && member_subject(r, f.subject, subj, sizeof subj) == subj;
    if (r->who.role == MD_ROLE_ANALYST)
        return fail(body, 403, "the audit trail is for auditors and the member concerned");
    if (r->who.role == MD_ROLE_MEMBER && !own_subject && !is_me(r, f.actor))
        return fail(body, 403, "members read their own trail: set subject or actor to yourself");
    if (own_subject)
        f.subject = subj;
    if (f.subject == NULL && f.actor == NULL)
        return fail(body, 400, "set subject or actor");
    if (!arg_limit(r, &page.limit))
        return fail(body, 400, "limit must be 1..1000");
    rows_t rs = {r, json_array(), NULL, NULL};
    md_err_t rc = md_proj_audit(r->h->proj, r->txn, &f, &page, add_row, &rs, &r->err);
    return list_reply(rc, &rs, page.next, body);
}

static unsigned h_sales(req_t *r, json_t **body)
{
    md_proj_sales_filter_t f = {arg(r, "provider"), arg(r, "from"), arg(r, "to")};
    md_proj_page_t page = {.cursor = arg(r, "cursor")};
    if (r->who.role == MD_ROLE_MEMBER && !is_me(r, f.provider))
        return fail(body, 403, "providers read their own sales: set provider to yourself");
    static const char *const days[] = {"from", "to", NULL};
    unsigned bad = check_days(r, days, body);
    if (bad)
        return bad;
    if (!arg_limit(r, &page.limit))
        return fail(body, 400, "limit must be 1..1000");
    rows_t rs = {r, json_array(), NULL, NULL};
    md_err_t rc = md_proj_sales(r->h->proj, r->txn, &f, &page, add_row, &rs, &r->err);
    return list_reply(rc, &rs, page.next, body);
}

typedef struct events_ctx {
    json_t *items;
    uint64_t last;
} events_ctx_t;

static md_err_t add_event(const md_event_t *ev, const void *b, size_t n, void *ctx, md_error_t *err)
{
    events_ctx_t *e = ctx;
    json_t *j = md_event_to_json(ev, b, n);
    if (j == NULL)
        return md_error_set(err, MD_ECODEC, "event %llu", (unsigned long long)ev->seq);
    md_json_append(e->items, j);
    e->last = ev->seq;
    return MD_OK;
}

static unsigned h_events(req_t *r, json_t **body)
{
    uint64_t from = 1, limit, head = 0;
    const char *v = arg(r, "from");
    char *end = NULL;
    if (r->who.role != MD_ROLE_AUDITOR)
        return fail(body, 403, "events are for auditors");
    if (v && ((from = strtoull(v, &end, 10)) == 0 || *end != '\0' || v[0] == '-'))
        return fail(body, 400, "from must be a seq >= 1");
    if (!arg_limit(r, &limit))
        return fail(body, 400, "limit must be 1..1000");
    events_ctx_t e = {json_array(), 0};
    if (md_txn_head(r->txn, &head, NULL, &r->err) != MD_OK ||
        md_txn_scan(r->txn, from, limit, add_event, &e, &r->err) != MD_OK) {
        json_decref(e.items);
        return fail(body, 500, "store error");
    }
    /* next: the seq to ask for next, null once the head of this snapshot is read. */
    *body = json_pack("{s:o, s:o, s:I}", "items", e.items, "next",
                      e.last && e.last < head ? json_integer((json_int_t)e.last + 1) : json_null(),
                      "head", (json_int_t)head);
    return 200;
}

/* Summaries (md_proj_summary): the same roles as sales; rejections are the
 * platform's, so a member may not read them. */
static unsigned h_summary(req_t *r, json_t **body)
{
    md_proj_summary_q_t q = {0};
    uint64_t top = 10;
    if (!md_proj_summary_kind(r->id, &q.kind))
        return fail(body, 404, "no such summary");
    static const char *const days[] = {"from", "to", NULL};
    unsigned bad = check_days(r, days, body);
    if (bad)
        return bad;
    q.provider = arg(r, "provider");
    q.from_day = arg(r, "from");
    q.to_day = arg(r, "to");
    const char *t = arg(r, "top");
    char *end = NULL;
    if (t &&
        (t[0] < '0' || t[0] > '9' || (top = strtoull(t, &end, 10)) == 0 || *end || top > MAX_LIMIT))
        return fail(body, 400, "top must be 1..1000");
    q.top = top;
    if (r->who.role == MD_ROLE_MEMBER && (q.kind == MD_SUMMARY_REJECTIONS || !is_me(r, q.provider)))
        return fail(body, 403,
                    "members read summaries of their own sales: set provider to yourself");
    rows_t rs = {r, json_array(), NULL, NULL};
    md_err_t rc = md_proj_summary(r->h->proj, r->txn, &q, add_row, &rs, &r->err);
    if (rc == MD_EINVAL) {
        json_decref(rs.items);
        *body = json_pack("{s:s}", "error", r->err.msg);
        return 400;
    }
    return list_reply(rc, &rs, "", body);
}

/* ---- routing and access ------------------------------------------------------------------ */

typedef struct route {
    const char *path; /* exact path, or a prefix ending in '/' taking an id */
    handler_fn fn;
    const char *params; /* the query parameters it takes, space-separated */
} route_t;

/* Each endpoint takes exactly its own parameters: any other is a 400 naming
 * it (a filter silently ignored would answer a question nobody asked). */
static const route_t routes[] = {
    {"/v1/orders/", h_order, "min_seq wait_ms"},
    {"/v1/orders", h_orders, "buyer provider status day from to limit cursor min_seq wait_ms"},
    {"/v1/accounts/", h_account, "min_seq wait_ms"},
    {"/v1/audit", h_audit, "subject actor limit cursor min_seq wait_ms"},
    {"/v1/sales", h_sales, "provider from to limit cursor min_seq wait_ms"},
    {"/v1/events", h_events, "from limit"},
    {"/v1/summaries/", h_summary, "provider from to top min_seq wait_ms"},
};

/* True when @p name is a word of the space-separated list @p list. */
static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        size_t w = strcspn(p, " ");
        if (w == n && strncmp(p, name, n) == 0)
            return true;
        p += w;
        p += *p == ' ';
    }
    return false;
}

typedef struct param_check {
    const route_t *rt;
    const char *unknown;
} param_check_t;

static enum MHD_Result check_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    (void)kind, (void)value;
    param_check_t *pc = cls;
    if (key == NULL || in_list(pc->rt->params, key))
        return MHD_YES;
    pc->unknown = key;
    return MHD_NO;
}

/* 400 naming a query parameter the endpoint does not take, or 0. */
static unsigned check_params(struct MHD_Connection *c, const route_t *rt, json_t **body)
{
    param_check_t pc = {rt, NULL};
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_param, &pc);
    if (pc.unknown == NULL)
        return 0;
    *body = json_pack("{s:s, s:s, s:s}", "error", "unknown parameter", "parameter", pc.unknown,
                      "accepted", rt->params);
    return 400;
}

static const route_t *find_route(const char *url, const char **id)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        size_t n = strlen(routes[i].path);
        bool prefix = routes[i].path[n - 1] == '/';
        if (prefix && strncmp(url, routes[i].path, n) == 0 && url[n] && !strchr(url + n, '/')) {
            *id = url + n;
            return &routes[i];
        }
        if (!prefix && strcmp(url, routes[i].path) == 0) {
            *id = NULL;
            return &routes[i];
        }
    }
    return NULL;
}

static bool authenticate(md_http_t *h, struct MHD_Connection *c, md_principal_t *who)
{
    /* The scheme is case-insensitive (RFC 9110 §11.1); the token is never logged. */
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return false;
    for (a += 7; *a == ' '; a++)
        ;
    return md_tokens_check(h->tokens, a, who);
}

static enum MHD_Result serve_metrics(md_http_t *h, struct MHD_Connection *c)
{
    md_txn_t *t = NULL;
    md_buf_t out;
    size_t used = 0, map = 0;
    uint64_t head = 0, queued = 0, parked = 0;
    md_buf_init(&out);
    if (md_store_read(h->store, &t, NULL) == MD_OK) {
        if (md_txn_outbox_counts(t, &queued, &parked, NULL) != MD_OK)
            queued = parked = 0; /* best effort, as below */
        if (md_txn_head(t, &head, NULL, NULL) != MD_OK)
            head = 0; /* metrics are best effort: an unreadable head shows as 0 */
        md_txn_end(t);
    }
    if (md_store_usage(h->store, &used, &map, NULL) != MD_OK)
        used = map = 0;
    md_metrics_render(&out, queued, parked, used, map, head);
    enum MHD_Result rc = send_text(c, 200, "text/plain; version=0.0.4", out.p, out.len);
    md_buf_release(&out);
    return rc;
}

static enum MHD_Result serve_ops(md_http_t *h, struct MHD_Connection *c, const char *url,
                                 bool *handled)
{
    *handled = true;
    if (strcmp(url, "/healthz") == 0)
        return send_json(c, 200, json_pack("{s:s}", "status", "ok"));
    if (strcmp(url, "/readyz") == 0) {
        bool ready = md_metrics_ready();
        return send_json(c, ready ? 200 : 503, json_pack("{s:b}", "ready", ready));
    }
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(h, c);
    *handled = false;
    return MHD_YES;
}

static enum MHD_Result serve_api(md_http_t *h, struct MHD_Connection *c, const char *url)
{
    req_t r = {.h = h, .c = c};
    json_t *body = NULL;
    const route_t *rt = find_route(url, &r.id);
    if (!authenticate(h, c, &r.who))
        return send_json(c, 401, json_pack("{s:s}", "error", "missing or unknown bearer token"));
    if (rt == NULL)
        return send_json(c, 404, json_pack("{s:s}", "error", "no such endpoint"));
    unsigned status = check_params(c, rt, &body);
    if (status == 0)
        status = wait_min_seq(&r, &body);
    if (status)
        return send_json(c, status, body);
    if (md_store_read(h->store, &r.txn, &r.err) != MD_OK)
        return send_json(c, 503, json_pack("{s:s}", "error", "store unavailable"));
    status = rt->fn(&r, &body);
    md_txn_end(r.txn);
    if (status >= 500)
        md_log_warn("http request failed", "path=%s status=%u error=\"%s\"", url, status,
                    r.err.msg);
    md_log_debug("http request", "path=%s status=%u", url, status);
    return wants_csv(c) ? send_csv(c, status, body) : send_json(c, status, body);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    static int first;
    (void)version, (void)upload;
    if (*state == NULL) { /* headers only so far: answer on the next call */
        *state = &first;
        return MHD_YES;
    }
    if (*upload_size != 0)
        return MHD_NO;
    if (strcmp(method, "GET") != 0)
        return send_json(c, 405, json_pack("{s:s}", "error", "read-only API: GET only"));
    bool handled;
    enum MHD_Result rc = serve_ops(cls, c, url, &handled);
    return handled ? rc : serve_api(cls, c, url);
}

/* ---- lifecycle -------------------------------------------------------------------------------- */

static md_err_t parse_listen(const char *s, struct sockaddr_in *sa, md_error_t *err)
{
    const char *colon = strrchr(s, ':');
    char host[64];
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    long port = colon ? strtol(colon + 1, NULL, 10) : 0;
    size_t hl = colon ? (size_t)(colon - s) : 0;
    if (colon == NULL || port <= 0 || port > 65535 || hl >= sizeof host)
        return md_error_set(err, MD_ECONFIG, "http.listen '%s' must be HOST:PORT", s);
    memcpy(host, s, hl);
    host[hl] = '\0';
    sa->sin_port = htons((uint16_t)port);
    if (hl == 0)
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (inet_pton(AF_INET, strcmp(host, "localhost") == 0 ? "127.0.0.1" : host,
                       &sa->sin_addr) != 1)
        return md_error_set(err, MD_ECONFIG, "http.listen host '%s' is not an IPv4 address", host);
    return MD_OK;
}

md_err_t md_http_start(const md_http_opts_t *o, md_store_t *store, md_proj_t *proj, md_http_t **out,
                       md_error_t *err)
{
    struct sockaddr_in sa;
    md_err_t rc = parse_listen(o->listen, &sa, err);
    if (rc != MD_OK)
        return rc;
    if (o->tokens_file == NULL || o->tokens_file[0] == '\0')
        return md_error_set(err, MD_ECONFIG, "http.tokens must name a tokens file");
    md_http_t *h = md_calloc(1, sizeof *h);
    h->store = store;
    h->proj = proj;
    if ((rc = md_tokens_load(o->tokens_file, &h->tokens, err)) != MD_OK) {
        free(h);
        return rc;
    }
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
                            on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads ? o->threads : 4),
                            MHD_OPTION_CONNECTION_LIMIT, 4096U, MHD_OPTION_CONNECTION_TIMEOUT, 30U,
                            MHD_OPTION_END);
    if (h->d == NULL) {
        md_tokens_free(h->tokens);
        free(h);
        return md_error_set(err, MD_EIO, "cannot listen on '%s'", o->listen);
    }
    md_log_info("http read API listening", "listen=%s", o->listen);
    *out = h;
    return MD_OK;
}

void md_http_free(md_http_t *h)
{
    if (h == NULL)
        return;
    MHD_stop_daemon(h->d);
    md_tokens_free(h->tokens);
    free(h);
}
