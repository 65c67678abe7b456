/*
 * social.c - reviews, messages, complaints and arbitration (§3.1.2, §3.1.4,
 * §3.3.3 mute, §3.3.5, §4.1.4, §4.2.4, §4.2.6): step-7 rules and evolution.
 */
#include <string.h>

#include "internal.h"

static int not_muted(md__ctx_t *c)
{
    const md__slot_t *s = &c->actor.slot[MD__SLOT_MUTE];
    if (!md__slot_active(s, c->now))
        return MD_OK;
    return md__reject(c, MD_CODE_MEMBER_MUTED, "'%s' is muted by sanction '%s'", c->cmd->actor,
                      s->sanction_id);
}

/* ---- reviews and messages ---------------------------------------------------- */

int md__rule_post_review(md__ctx_t *c)
{
    const md__order_t *o = &c->order;
    int rc = not_muted(c);
    if (rc != MD_OK)
        return rc;
    if (o->status != MD__OS_COMPLETED)
        return md__reject(c, MD_CODE_ORDER_STATE, "order '%s' is %s, not completed",
                          md__str(c, "order_id"), md__order_statuses[o->status]);
    if (o->has_review)
        return md__reject(c, MD_CODE_REVIEW_EXISTS, "order '%s' already has a review",
                          md__str(c, "order_id"));
    rc = md__check_content(c, "text");
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "ReviewPosted", "review", md__str(c, "review_id"));
    md__put_str(c, d, "review_id");
    md__put_str(c, d, "order_id");
    md_data_str(d, "author", c->cmd->actor);
    md_data_str(d, "provider", md__keep(c->d, o->provider));
    md_data_str(d, "product_id", md__keep(c->d, o->product_id));
    md_data_str(d, "store_id", md__keep(c->d, o->store_id));
    md__put_int(c, d, "rating");
    md__put_str(c, d, "text");
    return MD_OK;
}

int md__rule_send_message(md__ctx_t *c)
{
    int rc = not_muted(c);
    if (rc == MD_OK)
        rc = md__check_content(c, "text");
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "MessageSent", "message", md__str(c, "message_id"));
    md__put_str(c, d, "message_id");
    md_data_str(d, "from", c->cmd->actor);
    md__put_str(c, d, "to");
    md__put_str(c, d, "text");
    md__put_str(c, d, "order_id");
    return MD_OK;
}

/* ---- complaints -------------------------------------------------------------------- */

/* Copies the command's evidence (canonical msgpack) into the event, when given. */
static void put_evidence(md__ctx_t *c, md_data_t *d)
{
    size_t len = 0;
    const char *ev = md_cmd_bytes(c->cmd, "evidence", &len);
    if (ev != NULL)
        md_data_raw(d, "evidence", ev, len);
}

/* Whether the order may take a complaint from the actor (ORDER_STATE and
 * AFTER_SALES_CLOSED, §3.1.4, §3.2.3). */
static int complainable(md__ctx_t *c, bool by_buyer)
{
    const md__order_t *o = &c->order;
    bool open = o->status == MD__OS_PAID || o->status == MD__OS_DELIVERED;
    bool after_sales = o->status == MD__OS_COMPLETED && o->after_sales_until != 0 && by_buyer;
    if (!open && !after_sales)
        return md__reject(c, MD_CODE_ORDER_STATE, "order '%s' is %s, not paid or delivered",
                          md__str(c, "order_id"), md__order_statuses[o->status]);
    if (after_sales && c->now >= o->after_sales_until) {
        char until[25];
        md_format_time(o->after_sales_until, until);
        return md__reject(c, MD_CODE_AFTER_SALES_CLOSED,
                          "the after-sales window of order '%s' closed at %s",
                          md__str(c, "order_id"), until);
    }
    return MD_OK;
}

int md__rule_file_complaint(md__ctx_t *c)
{
    const md__order_t *o = &c->order;
    bool by_buyer = strcmp(c->cmd->actor, o->buyer) == 0;
    int rc = complainable(c, by_buyer);
    if (rc != MD_OK)
        return rc;
    if (o->complaint[0] != '\0')
        return md__reject(c, MD_CODE_COMPLAINT_EXISTS,
                          "order '%s' already has the active complaint '%s'",
                          md__str(c, "order_id"), o->complaint);
    md_data_t *d = md__emit(c, "ComplaintFiled", "complaint", md__str(c, "complaint_id"));
    md__put_str(c, d, "complaint_id");
    md__put_str(c, d, "order_id");
    md_data_str(d, "complainant", c->cmd->actor);
    md_data_str(d, "respondent", md__keep(c->d, by_buyer ? o->provider : o->buyer));
    md__put_str(c, d, "reason");
    md_data_bool(d, "after_sales", o->status == MD__OS_COMPLETED);
    put_evidence(c, d);
    return MD_OK;
}

/* Rejects unless the complaint's status is in the mask (1 << status). */
static int complaint_in(md__ctx_t *c, unsigned mask, const char *want)
{
    if (mask & (1u << c->complaint.status))
        return MD_OK;
    return md__reject(c, MD_CODE_COMPLAINT_STATE, "complaint '%s' is %s, not %s",
                      md__str(c, "complaint_id"), md__complaint_statuses[c->complaint.status],
                      want);
}

#define ACTIVE ((1u << MD__CS_OPEN) | (1u << MD__CS_ARBITRATION))

static md_data_t *emit_complaint(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "complaint", md__str(c, "complaint_id"));
    md__put_str(c, d, "complaint_id");
    md_data_str(d, "order_id", md__keep(c->d, c->complaint.order_id));
    return d;
}

int md__rule_apply_arbitration(md__ctx_t *c)
{
    int rc = complaint_in(c, 1u << MD__CS_OPEN, "open");
    if (rc != MD_OK)
        return rc;
    md_data_t *d = emit_complaint(c, "ArbitrationRequested");
    md_data_str(d, "by", c->cmd->actor);
    md_data_str(d, "reason", "requested");
    return MD_OK;
}

int md__rule_submit_defense(md__ctx_t *c)
{
    int rc = complaint_in(c, ACTIVE, "open or in arbitration");
    if (rc != MD_OK)
        return rc;
    md_data_t *d = emit_complaint(c, "DefenseSubmitted");
    md_data_str(d, "respondent", c->cmd->actor);
    md__put_str(c, d, "statement");
    put_evidence(c, d);
    return MD_OK;
}

int md__rule_withdraw_complaint(md__ctx_t *c)
{
    int rc = complaint_in(c, ACTIVE, "open or in arbitration");
    if (rc == MD_OK)
        emit_complaint(c, "ComplaintWithdrawn");
    return rc;
}

/* Splits the disputed funds by the ruling: *refund to the buyer, *release to the
 * provider (nothing is released from an after-sales hold: it runs on). */
static void ruling_split(int64_t decision, int64_t funds, int64_t asked, bool after_sales,
                         int64_t *refund, int64_t *release)
{
    *refund = decision == MD__RULE_REFUND_BUYER ? funds : decision == MD__RULE_SPLIT ? asked : 0;
    *release = after_sales ? 0 : funds - *refund;
}

static const char *const ruling_status[] = {"refunded", "completed", "partially_refunded"};

int md__rule_rule_on_dispute(md__ctx_t *c)
{
    bool found;
    int64_t decision = md__int(c, "decision"), refund, release;
    int rc = complaint_in(c, 1u << MD__CS_ARBITRATION, "in arbitration");
    if (rc == MD_OK)
        rc = md__load(c, "o:", c->complaint.order_id, &c->order, sizeof c->order, &found);
    if (rc != MD_OK)
        return rc;
    const md__order_t *o = &c->order;
    bool as = c->complaint.after_sales;
    int64_t funds = as ? o->held : o->escrow;
    if (decision == MD__RULE_SPLIT && md__int(c, "refund_amount") >= funds)
        return md__reject(c, MD_CODE_INVALID_FIELD,
                          "data.refund_amount: %lld is not below the %s %lld",
                          (long long)md__int(c, "refund_amount"),
                          as ? "amount still held" : "escrow", (long long)funds);
    ruling_split(decision, funds, md__int(c, "refund_amount"), as, &refund, &release);
    md_data_t *d = emit_complaint(c, "DisputeRuled");
    md__put_str(c, d, "decision");
    md_data_bool(d, "after_sales", as);
    md_data_int(d, "refund_amount", refund);
    if (as || decision == MD__RULE_REFUND_BUYER)
        md_data_int(d, "released", release);
    else
        md__put_release(c, d, release, decision == MD__RULE_RELEASE_PROVIDER);
    md_data_str(d, "buyer", md__keep(c->d, o->buyer));
    md_data_str(d, "provider", md__keep(c->d, o->provider));
    md_data_str(d, "order_status", ruling_status[decision]);
    if (decision == MD__RULE_REFUND_BUYER)
        md__emit_voucher_restored(c, o, c->complaint.order_id);
    return MD_OK;
}

/* ---- evolve ------------------------------------------------------------------------ */

md_err_t md__evolve_ReviewPosted(md__ev_t *e)
{
    md__review_t r;
    md__order_t o;
    char id[MD_ID_MAX + 1];
    memset(&r, 0, sizeof r);
    md_err_t rc = md__ev_str(e, "review_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "order_id", r.order_id, sizeof r.order_id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "author", r.author, sizeof r.author);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", r.order_id, &o, sizeof o);
    if (rc == MD_OK)
        rc = md__ev_save(e, "r:", id, &r, sizeof r);
    if (rc != MD_OK)
        return rc;
    o.has_review = 1;
    return md__ev_save(e, "o:", r.order_id, &o, sizeof o);
}

md_err_t md__evolve_MessageSent(md__ev_t *e)
{
    char id[MD_ID_MAX + 1];
    md__flag_t f = {.fmt = 0, .on = 1};
    md_err_t rc = md__ev_str(e, "message_id", id, sizeof id);
    return rc == MD_OK ? md__ev_save(e, "g:", id, &f, sizeof f) : rc;
}

/* Sets the order's active complaint ("" clears it). */
static md_err_t order_complaint(md__ev_t *e, const char *order_id, const char *complaint)
{
    md__order_t o;
    md_err_t rc = md__ev_load(e, "o:", order_id, &o, sizeof o);
    if (rc != MD_OK)
        return rc;
    memset(o.complaint, 0, sizeof o.complaint);
    strcpy(o.complaint, complaint);
    return md__ev_save(e, "o:", order_id, &o, sizeof o);
}

md_err_t md__evolve_ComplaintFiled(md__ev_t *e)
{
    md__complaint_t q;
    md__platform_t p;
    char id[MD_ID_MAX + 1];
    bool as = false;
    memset(&q, 0, sizeof q);
    md_err_t rc = md__ev_str(e, "complaint_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "order_id", q.order_id, sizeof q.order_id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "complainant", q.complainant, sizeof q.complainant);
    if (rc == MD_OK)
        rc = md__ev_str(e, "respondent", q.respondent, sizeof q.respondent);
    if (rc == MD_OK)
        rc = md__ev_platform(e, &p);
    if (rc != MD_OK)
        return rc;
    if (md_data_get_bool(e->ev->data, e->ev->data_len, "after_sales", &as) != MD_OK)
        as = false; /* absent (events before after-sales existed) */
    q.after_sales = as;
    if (p.defense_days > 0)
        rc = md__arm(e, MD__TK_DEFENSE, id, md__deadline(e->ev->recorded_at, p.defense_days),
                     &q.df_at, &q.df_seq);
    if (rc == MD_OK)
        rc = md__ev_save(e, "q:", id, &q, sizeof q);
    return rc == MD_OK ? order_complaint(e, q.order_id, id) : rc;
}

/*
 * A complaint ended at t (the event's recorded_at): the order has no active
 * complaint, and a timer that found it active (its deadline <= t) is armed again
 * by this event: auto_confirm for t + 1 day while the order is delivered,
 * settlement for t while the hold is open. A timer paused by the complaint whose
 * deadline is still ahead keeps it (and its arming seq): saving the order puts
 * its index key back (timers.c).
 */
static md_err_t complaint_ended(md__ev_t *e, md__order_t *o, const char *order_id)
{
    int64_t t = e->ev->recorded_at;
    memset(o->complaint, 0, sizeof o->complaint);
    md_err_t rc = MD_OK;
    if (o->status == MD__OS_DELIVERED && o->ac_at != 0 && o->ac_at <= t)
        rc = md__arm(e, MD__TK_AUTO_CONFIRM, order_id, t + MD_DAY_MS, &o->ac_at, &o->ac_seq);
    else if (o->hold_open && o->st_at != 0 && o->st_at <= t)
        rc = md__arm(e, MD__TK_SETTLEMENT, order_id, t, &o->st_at, &o->st_seq);
    return rc;
}

/* Moves a complaint to status; ending it clears the order's active complaint. */
static md_err_t complaint_status(md__ev_t *e, int status, md__complaint_t *q)
{
    char id[MD_ID_MAX + 1];
    md__order_t o;
    md_err_t rc = md__ev_str(e, "complaint_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "q:", id, q, sizeof *q);
    if (rc != MD_OK)
        return rc;
    q->status = (uint8_t)status;
    rc = md__ev_save(e, "q:", id, q, sizeof *q);
    if (rc != MD_OK || status == MD__CS_ARBITRATION)
        return rc;
    rc = md__ev_load(e, "o:", q->order_id, &o, sizeof o);
    if (rc == MD_OK)
        rc = complaint_ended(e, &o, q->order_id);
    return rc == MD_OK ? md__ev_save(e, "o:", q->order_id, &o, sizeof o) : rc;
}

md_err_t md__evolve_ArbitrationRequested(md__ev_t *e)
{
    md__complaint_t q;
    return complaint_status(e, MD__CS_ARBITRATION, &q);
}

md_err_t md__evolve_DefenseSubmitted(md__ev_t *e)
{
    md__complaint_t q;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "complaint_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "q:", id, &q, sizeof q);
    if (rc != MD_OK)
        return rc;
    q.defended = 1;
    return md__ev_save(e, "q:", id, &q, sizeof q);
}

md_err_t md__evolve_ComplaintWithdrawn(md__ev_t *e)
{
    md__complaint_t q;
    return complaint_status(e, MD__CS_WITHDRAWN, &q);
}

/* The ruling's money: an after-sales ruling refunds from the hold; any other
 * refunds from escrow and releases the rest to the provider. */
static md_err_t ruling_money(md__ev_t *e, md__order_t *o, const char *order_id)
{
    int64_t refund, release;
    bool as = false;
    md_err_t rc = md__ev_int(e, "refund_amount", &refund);
    if (rc == MD_OK)
        rc = md__ev_int(e, "released", &release);
    if (rc == MD_OK)
        rc = md__ev_credit(e, o->buyer, refund);
    if (rc != MD_OK)
        return rc;
    if (md_data_get_bool(e->ev->data, e->ev->data_len, "after_sales", &as) != MD_OK)
        as = false; /* absent (events before after-sales existed) */
    if (as) {
        o->held -= refund;
        return md__ev_hold(e, o->provider, -refund);
    }
    o->escrow -= refund + release;
    return md__ev_release(e, o, order_id, release);
}

md_err_t md__evolve_DisputeRuled(md__ev_t *e)
{
    md__complaint_t q;
    md__order_t o;
    char id[MD_ID_MAX + 1], status[24];
    md_err_t rc = md__ev_str(e, "complaint_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "order_status", status, sizeof status);
    if (rc == MD_OK)
        rc = md__ev_load(e, "q:", id, &q, sizeof q);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", q.order_id, &o, sizeof o);
    if (rc == MD_OK)
        rc = ruling_money(e, &o, q.order_id);
    if (rc != MD_OK)
        return rc;
    int st = md__vocab_index(md__order_statuses, status);
    o.status = (uint8_t)(st < 0 ? MD__OS_COMPLETED : st);
    if (q.after_sales && o.status == MD__OS_REFUNDED)
        o.hold_open = 0;
    q.status = MD__CS_RULED;
    rc = md__ev_save(e, "q:", id, &q, sizeof q);
    if (rc == MD_OK)
        rc = complaint_ended(e, &o, q.order_id);
    return rc == MD_OK ? md__ev_save(e, "o:", q.order_id, &o, sizeof o) : rc;
}
