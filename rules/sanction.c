/*
 * sanction.c - sanctions (§3.3.3): ApplySanction, LiftSanction and
 * AppealSanction, and the consequences of SanctionApplied / SanctionLifted on
 * their targets (removal, delisting, store closure, order closure with
 * refund, complaint closure, member slots).
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

static const md__ref_kind_t target_ref[] = {[MD__T_MEMBER] = MD__R_MEMBER,
                                            [MD__T_REVIEW] = MD__R_REVIEW,
                                            [MD__T_PRODUCT] = MD__R_PRODUCT,
                                            [MD__T_ORDER] = MD__R_ORDER,
                                            [MD__T_STORE] = MD__R_STORE};

int md__find_sanction_target(md__ctx_t *c)
{
    md__ref_kind_t k = target_ref[md__int(c, "target_type")];
    const char *id = md__str(c, "target_id");
    size_t size;
    bool found;
    void *slot = md__ref_slot(c, k, &size);
    int rc = md__load(c, md__ref_prefix(k), id, slot, size, &found);
    if (rc == MD_OK && !found)
        return md__reject(c, MD_CODE_NOT_FOUND, "%s '%s' (data.target_id) not found",
                          md__ref_word(k), id);
    return rc;
}

static bool order_open(const md__order_t *o)
{
    return o->status == MD__OS_PLACED || o->status == MD__OS_PAID || o->status == MD__OS_DELIVERED;
}

/* Whether the measure is already in effect on the loaded target. */
static bool measure_active(const md__ctx_t *c, int m)
{
    int slot = md__measure_info[m].member_slot;
    if (slot >= 0)
        return md__slot_active(&c->member.slot[slot], c->now);
    switch (m) {
    case MD__M_CLOSE_ACCOUNT: return c->member.closed;
    case MD__M_REMOVE_CONTENT:
        return md__int((md__ctx_t *)c, "target_type") == MD__T_REVIEW
                   ? c->review.removed
                   : c->product.status == MD__PS_REMOVED;
    case MD__M_DELIST_PRODUCT: return md__slot_active(&c->product.delisted, c->now);
    case MD__M_CLOSE_STORE: return md__slot_active(&c->store.closed, c->now);
    default: return false; /* notice may repeat; close_order: ORDER_STATE */
    }
}

static md_data_t *emit_sanction(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "sanction", md__str(c, "sanction_id"));
    md__put_str(c, d, "sanction_id");
    return d;
}

static void emit_lifted(md__ctx_t *c, const char *reason);

/* The consequences an observer needs, by target type (docs/events.md). */
static void applied_consequences(md__ctx_t *c, md_data_t *d, int m, int t)
{
    md_decision_t *dec = c->d;
    if (t == MD__T_ORDER) {
        md_data_str(d, "buyer", md__keep(dec, c->order.buyer));
        md_data_str(d, "provider", md__keep(dec, c->order.provider));
        md_data_int(d, "refunded", c->order.escrow);
        md_data_str(d, "complaint_id",
                    c->order.complaint[0] ? md__keep(dec, c->order.complaint) : NULL);
        md_data_str(d, "order_status", "closed");
    } else if (t == MD__T_PRODUCT) {
        int st = m == MD__M_REMOVE_CONTENT            ? MD__PS_REMOVED
                 : c->product.status == MD__PS_LISTED ? MD__PS_DELISTED
                                                      : c->product.status;
        md_data_str(d, "owner", md__keep(dec, c->product.owner));
        md_data_str(d, "store_id", md__keep(dec, c->product.store_id));
        md_data_str(d, "product_status", md__product_statuses[st]);
    } else if (t == MD__T_STORE) {
        md_data_str(d, "owner", md__keep(dec, c->store.owner));
    } else if (t == MD__T_REVIEW) {
        md_data_str(d, "author", md__keep(dec, c->review.author));
        md_data_str(d, "order_id", md__keep(dec, c->review.order_id));
    }
}

int md__rule_apply_sanction(md__ctx_t *c)
{
    int m = (int)md__int(c, "measure"), t = (int)md__int(c, "target_type");
    if (measure_active(c, m))
        return md__reject(c, MD_CODE_SANCTION_ACTIVE, "%s is already in effect on %s '%s'",
                          md__measures[m], md__target_types[t], md__str(c, "target_id"));
    if (m == MD__M_CLOSE_ORDER && !order_open(&c->order))
        return md__reject(c, MD_CODE_ORDER_STATE, "order '%s' is %s, not open",
                          md__str(c, "target_id"), md__order_statuses[c->order.status]);
    md_data_t *d = emit_sanction(c, "SanctionApplied");
    md__put_str(c, d, "measure");
    md__put_str(c, d, "target_type");
    md__put_str(c, d, "target_id");
    md__put_str(c, d, "reason");
    md__put_str(c, d, "clause");
    md__put_int(c, d, "expires_at");
    applied_consequences(c, d, m, t);
    if (m == MD__M_CLOSE_ORDER)
        md__emit_voucher_restored(c, &c->order, md__str(c, "target_id"));
    return MD_OK;
}

int md__rule_lift_sanction(md__ctx_t *c)
{
    const md__sanction_t *s = &c->sanction;
    const char *id = md__str(c, "sanction_id");
    if (!md__measure_info[s->measure].reversible)
        return md__reject(c, MD_CODE_SANCTION_IRREVERSIBLE,
                          "sanction '%s' (%s) cannot be "
                          "lifted",
                          id, md__measures[s->measure]);
    if (s->lifted || (s->has_exp && c->now >= s->expires_at))
        return md__reject(c, MD_CODE_SANCTION_NOT_ACTIVE, "sanction '%s' is %s", id,
                          s->lifted ? "already lifted" : "expired");
    emit_lifted(c, NULL);
    return MD_OK;
}

int md__rule_appeal_sanction(md__ctx_t *c)
{
    const md__sanction_t *s = &c->sanction;
    if (s->appealed)
        return md__reject(c, MD_CODE_APPEAL_EXISTS, "sanction '%s' was already appealed",
                          md__str(c, "sanction_id"));
    if (s->appeal_until != 0 && c->now >= s->appeal_until) {
        char until[25];
        md_format_time(s->appeal_until, until);
        return md__reject(c, MD_CODE_APPEAL_WINDOW_CLOSED,
                          "the appeal window of sanction "
                          "'%s' closed at %s",
                          md__str(c, "sanction_id"), until);
    }
    md_data_t *d = emit_sanction(c, "SanctionAppealed");
    md_data_str(d, "appellant", c->cmd->actor);
    md__put_str(c, d, "statement");
    return MD_OK;
}

static void emit_lifted(md__ctx_t *c, const char *reason)
{
    const md__sanction_t *s = &c->sanction;
    md_data_t *d = emit_sanction(c, "SanctionLifted");
    md_data_str(d, "measure", md__measures[s->measure]);
    md_data_str(d, "target_type", md__target_types[s->target_type]);
    md_data_str(d, "target_id", md__keep(c->d, s->target_id));
    if (reason != NULL)
        md_data_str(d, "reason", reason);
    else
        md__put_str(c, d, "reason");
}

/* §3.1.4: one ruling per appeal; an overturned reversible measure still in
 * effect is lifted with LiftSanction's effects. */
int md__rule_rule_on_appeal(md__ctx_t *c)
{
    const md__sanction_t *s = &c->sanction;
    if (!s->appealed || s->appeal_ruled)
        return md__reject(c, MD_CODE_APPEAL_STATE, "sanction '%s' has %s",
                          md__str(c, "sanction_id"),
                          s->appealed ? "an appeal already ruled" : "no appeal");
    md_data_t *d = emit_sanction(c, "AppealRuled");
    md__put_str(c, d, "decision");
    md__put_str(c, d, "reason");
    bool in_effect = md__measure_info[s->measure].reversible && !s->lifted &&
                     !(s->has_exp && c->now >= s->expires_at);
    if (md__int(c, "decision") == MD__APPEAL_OVERTURNED && in_effect)
        emit_lifted(c, "appeal");
    return MD_OK;
}

/* ---- evolve ---------------------------------------------------------------------- */

static md_err_t read_sanction(md__ev_t *e, char *id, md__sanction_t *s)
{
    char measure[24], type[16];
    md_err_t rc = md__ev_str(e, "sanction_id", id, MD_ID_MAX + 1);
    if (rc == MD_OK)
        rc = md__ev_str(e, "measure", measure, sizeof measure);
    if (rc == MD_OK)
        rc = md__ev_str(e, "target_type", type, sizeof type);
    if (rc == MD_OK)
        rc = md__ev_str(e, "target_id", s->target_id, sizeof s->target_id);
    if (rc != MD_OK)
        return rc;
    int m = md__vocab_index(md__measures, measure), t = md__vocab_index(md__target_types, type);
    if (m < 0 || t < 0)
        return md_error_set(e->err, MD_ECORRUPT, "sanction '%s': bad measure or target", id);
    s->measure = (uint8_t)m;
    s->target_type = (uint8_t)t;
    s->has_exp =
        md_data_get_int(e->ev->data, e->ev->data_len, "expires_at", &s->expires_at) == MD_OK;
    return MD_OK;
}

static void slot_set(md__slot_t *slot, const char *id, const md__sanction_t *s)
{
    memset(slot, 0, sizeof *slot);
    snprintf(slot->sanction_id, sizeof slot->sanction_id, "%s", id);
    slot->set = 1;
    slot->has_exp = s->has_exp;
    slot->expires_at = s->has_exp ? s->expires_at : 0;
}

/* Clears the slot when it still holds sanction id. */
static void slot_clear(md__slot_t *slot, const char *id)
{
    if (slot->set && strcmp(slot->sanction_id, id) == 0)
        memset(slot, 0, sizeof *slot);
}

/* Applies (lift = false) or lifts a member measure. */
static md_err_t on_member(md__ev_t *e, const char *id, md__sanction_t *s, bool lift)
{
    md__member_t m;
    int slot = md__measure_info[s->measure].member_slot;
    md_err_t rc = md__ev_load(e, "m:", s->target_id, &m, sizeof m);
    if (rc != MD_OK)
        return rc;
    snprintf(s->party_a, sizeof s->party_a, "%s", s->target_id);
    if (!lift) {
        m.sanctions++;
        if (s->measure == MD__M_CLOSE_ACCOUNT)
            m.closed = 1;
    }
    if (slot >= 0 && lift)
        slot_clear(&m.slot[slot], id);
    else if (slot >= 0)
        slot_set(&m.slot[slot], id, s);
    return md__ev_save(e, "m:", s->target_id, &m, sizeof m);
}

static md_err_t on_product(md__ev_t *e, const char *id, md__sanction_t *s, bool lift)
{
    md__product_t p;
    md_err_t rc = md__ev_load(e, "P:", s->target_id, &p, sizeof p);
    if (rc != MD_OK)
        return rc;
    snprintf(s->party_a, sizeof s->party_a, "%s", p.owner);
    if (lift)
        slot_clear(&p.delisted, id);
    else if (s->measure == MD__M_REMOVE_CONTENT)
        p.status = MD__PS_REMOVED;
    else {
        slot_set(&p.delisted, id, s);
        if (p.status == MD__PS_LISTED)
            p.status = MD__PS_DELISTED;
    }
    return md__ev_save(e, "P:", s->target_id, &p, sizeof p);
}

static md_err_t on_store(md__ev_t *e, const char *id, md__sanction_t *s, bool lift)
{
    md__store_t st;
    md_err_t rc = md__ev_load(e, "s:", s->target_id, &st, sizeof st);
    if (rc != MD_OK)
        return rc;
    snprintf(s->party_a, sizeof s->party_a, "%s", st.owner);
    if (lift)
        slot_clear(&st.closed, id);
    else
        slot_set(&st.closed, id, s);
    return md__ev_save(e, "s:", s->target_id, &st, sizeof st);
}

static md_err_t on_review(md__ev_t *e, const char *id, md__sanction_t *s, bool lift)
{
    md__review_t r;
    (void)id;
    md_err_t rc = md__ev_load(e, "r:", s->target_id, &r, sizeof r);
    if (rc != MD_OK || lift)
        return rc;
    snprintf(s->party_a, sizeof s->party_a, "%s", r.author);
    r.removed = 1;
    return md__ev_save(e, "r:", s->target_id, &r, sizeof r);
}

/* close_order: refund the escrow, close the order and its active complaint. */
static md_err_t on_order(md__ev_t *e, const char *id, md__sanction_t *s, bool lift)
{
    md__order_t o;
    md__complaint_t q;
    int64_t refunded = 0;
    (void)id;
    md_err_t rc = md__ev_load(e, "o:", s->target_id, &o, sizeof o);
    if (rc != MD_OK || lift)
        return rc;
    snprintf(s->party_a, sizeof s->party_a, "%s", o.buyer);
    snprintf(s->party_b, sizeof s->party_b, "%s", o.provider);
    rc = md__ev_int(e, "refunded", &refunded);
    if (rc == MD_OK)
        rc = md__ev_credit(e, o.buyer, refunded);
    if (rc == MD_OK && o.complaint[0] != '\0')
        rc = md__ev_load(e, "q:", o.complaint, &q, sizeof q);
    if (rc == MD_OK && o.complaint[0] != '\0') {
        q.status = MD__CS_CLOSED;
        rc = md__ev_save(e, "q:", o.complaint, &q, sizeof q);
    }
    if (rc != MD_OK)
        return rc;
    o.escrow -= refunded;
    o.status = MD__OS_CLOSED;
    memset(o.complaint, 0, sizeof o.complaint);
    return md__ev_save(e, "o:", s->target_id, &o, sizeof o);
}

typedef md_err_t (*target_fn)(md__ev_t *e, const char *id, md__sanction_t *s, bool lift);

static const target_fn on_target[] = {[MD__T_MEMBER] = on_member,
                                      [MD__T_REVIEW] = on_review,
                                      [MD__T_PRODUCT] = on_product,
                                      [MD__T_ORDER] = on_order,
                                      [MD__T_STORE] = on_store};

md_err_t md__evolve_SanctionApplied(md__ev_t *e)
{
    md__sanction_t s;
    char id[MD_ID_MAX + 1];
    memset(&s, 0, sizeof s);
    md_err_t rc = read_sanction(e, id, &s);
    md__platform_t p;
    if (rc == MD_OK)
        rc = md__ev_platform(e, &p);
    if (rc == MD_OK)
        s.appeal_until = md__deadline(e->ev->recorded_at, p.appeal_days);
    if (rc == MD_OK)
        rc = on_target[s.target_type](e, id, &s, false);
    return rc == MD_OK ? md__ev_save(e, "x:", id, &s, sizeof s) : rc;
}

md_err_t md__evolve_SanctionLifted(md__ev_t *e)
{
    md__sanction_t s;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "sanction_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "x:", id, &s, sizeof s);
    if (rc == MD_OK)
        rc = on_target[s.target_type](e, id, &s, true);
    if (rc != MD_OK)
        return rc;
    s.lifted = 1;
    return md__ev_save(e, "x:", id, &s, sizeof s);
}

md_err_t md__evolve_SanctionAppealed(md__ev_t *e)
{
    md__sanction_t s;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "sanction_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "x:", id, &s, sizeof s);
    if (rc != MD_OK)
        return rc;
    s.appealed = 1;
    return md__ev_save(e, "x:", id, &s, sizeof s);
}

md_err_t md__evolve_AppealRuled(md__ev_t *e)
{
    md__sanction_t s;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "sanction_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "x:", id, &s, sizeof s);
    if (rc != MD_OK)
        return rc;
    s.appeal_ruled = 1;
    return md__ev_save(e, "x:", id, &s, sizeof s);
}
