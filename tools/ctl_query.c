/*
 * ctl_query.c - marketctl's projection queries: `get`, `orders`, `audit`
 * (with --follow), `sales` and `summary`, printed through ctl_emit in the
 * chosen format, with the next cursor on stderr when more rows may follow.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "md_base.h"

/* ---- projection queries ------------------------------------------------------------ */

static md_err_t print_row(json_t *row, void *ctx, md_error_t *err)
{
    return ctl_emit(ctx, row, err);
}

/* Ends a list: the table, a flush of stdout, and the next cursor on stderr. */
static int list_end(ctl_t *c, md_err_t rc, const md_proj_page_t *page)
{
    if (rc == MD_OK)
        rc = ctl_emit_end(c, &c->err);
    if (rc == MD_OK && page->next[0])
        fprintf(stderr, "next_cursor: %s\n", page->next);
    return rc == MD_OK ? 0 : 1;
}

int ctl_cmd_get(ctl_t *c)
{
    json_t *j = NULL;
    if (md_proj_get(c->proj, c->txn, c->args[0], c->args[1], ctl_time(c, "as-of", md_wall_ms()), &j,
                    &c->err) != MD_OK)
        return c->err.code == MD_EINVAL ? 2 : 1;
    md_err_t rc = ctl_emit(c, j, &c->err);
    json_decref(j);
    if (rc == MD_OK)
        rc = ctl_emit_end(c, &c->err);
    return rc == MD_OK ? 0 : 1;
}

int ctl_cmd_orders(ctl_t *c)
{
    md_proj_order_filter_t f = {ctl_str(c, "buyer"), ctl_str(c, "provider"), ctl_str(c, "status"),
                                ctl_str(c, "day")};
    md_proj_page_t page = {.limit = ctl_u64(c, "limit", 0), .cursor = ctl_str(c, "cursor")};
    return list_end(c, md_proj_orders(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

/* audit --follow: entries above the last seq printed, polled. */
typedef struct audit_follow {
    ctl_t *c;
    json_int_t seen, last; /* seen: the last seq of the polls before this one */
} audit_follow_t;

static md_err_t print_new_entry(json_t *row, void *ctx, md_error_t *err)
{
    audit_follow_t *a = ctx;
    json_int_t seq = json_integer_value(json_object_get(row, "seq"));
    if (seq <= a->seen) /* a seq's entries commit together: all in one poll */
        return MD_OK;
    a->last = seq > a->last ? seq : a->last;
    return ctl_emit(a->c, row, err);
}

static int audit_follow(ctl_t *c, const md_proj_audit_filter_t *f)
{
    audit_follow_t a = {c, 0, 0};
    md_err_t rc;
    ctl_follow_signals();
    do {
        md_proj_page_t page = {0};
        a.seen = a.last;
        rc = md_proj_audit(c->proj, c->txn, f, &page, print_new_entry, &a, &c->err);
        if (rc == MD_OK)
            rc = ctl_emit_end(c, &c->err);
    } while (ctl_follow_wait(c, &rc));
    return ctl_follow_end(c, rc);
}

int ctl_cmd_audit(ctl_t *c)
{
    md_proj_audit_filter_t f = {ctl_str(c, "subject"), ctl_str(c, "actor")};
    md_proj_page_t page = {.limit = ctl_u64(c, "limit", 0), .cursor = ctl_str(c, "cursor")};
    if (ctl_str(c, "follow"))
        return audit_follow(c, &f);
    return list_end(c, md_proj_audit(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

int ctl_cmd_sales(ctl_t *c)
{
    md_proj_sales_filter_t f = {ctl_str(c, "provider"), ctl_str(c, "from"), ctl_str(c, "to")};
    md_proj_page_t page = {.limit = ctl_u64(c, "limit", 0), .cursor = ctl_str(c, "cursor")};
    return list_end(c, md_proj_sales(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

/* summary KIND: md_proj_summary (docs/projections.md "Summaries"). */
int ctl_cmd_summary(ctl_t *c)
{
    md_proj_summary_q_t q = {0};
    if (!md_proj_summary_kind(c->args[0], &q.kind)) {
        md_error_set(&c->err, MD_EINVAL, "unknown summary '%s'", c->args[0]);
        return 2;
    }
    q.provider = ctl_str(c, "provider");
    q.from_day = ctl_str(c, "from");
    q.to_day = ctl_str(c, "to");
    q.top = ctl_u64(c, "top", 10);
    md_err_t rc = md_proj_summary(c->proj, c->txn, &q, print_row, c, &c->err);
    if (rc == MD_OK)
        rc = ctl_emit_end(c, &c->err);
    return rc == MD_OK ? 0 : rc == MD_EINVAL ? 2 : 1;
}
