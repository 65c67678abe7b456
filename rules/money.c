/*
 * money.c - funds, orders and vouchers (§3.1.3, §3.2.1, §3.3.3, §3.3.5,
 * §4.2.4, §4.2.5, §6.3). Paying moves the amount from the buyer's balance into
 * the order's escrow; completion releases it to the provider; cancellation
 * returns it to the buyer. Events carry the amounts they move, and evolve
 * moves exactly those amounts.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- funds ------------------------------------------------------------------ */

int md__rule_deposit_funds(md__ctx_t *c)
{
    md__flag_t seen;
    bool found;
    const char *ref = md__str(c, "payment_ref");
    int64_t amount = md__int(c, "amount");
    int rc = md__load(c, "pay:", ref, &seen, sizeof seen, &found);
    if (rc != MD_OK)
        return rc;
    if (found)
        return md__reject(c, MD_CODE_DUPLICATE_PAYMENT, "payment_ref '%s' was already deposited",
                          ref);
    if (c->actor.balance > INT64_MAX - amount)
        return md__reject(c, MD_CODE_INVALID_FIELD, "data.amount: the balance would overflow");
    md_data_t *d = md__emit(c, "FundsDeposited", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md__put_int(c, d, "amount");
    md__put_str(c, d, "payment_ref");
    md_data_int(d, "balance", c->actor.balance + amount);
    return MD_OK;
}

/* Outflows need an unfrozen balance that covers the amount. */
static int can_pay(md__ctx_t *c, int64_t amount)
{
    const md__slot_t *f = &c->actor.slot[MD__SLOT_FREEZE];
    if (md__slot_active(f, c->now))
        return md__reject(c, MD_CODE_BALANCE_FROZEN,
                          "the balance of '%s' is frozen by "
                          "sanction '%s'",
                          c->cmd->actor, f->sanction_id);
    if (c->actor.balance < amount)
        return md__reject(c, MD_CODE_INSUFFICIENT_FUNDS, "balance %lld < amount %lld",
                          (long long)c->actor.balance, (long long)amount);
    return MD_OK;
}

int md__rule_withdraw_funds(md__ctx_t *c)
{
    int64_t amount = md__int(c, "amount");
    int rc = can_pay(c, amount);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "FundsWithdrawn", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md__put_int(c, d, "amount");
    md_data_int(d, "balance", c->actor.balance - amount);
    return MD_OK;
}

/* ---- placing an order ---------------------------------------------------------- */

/* Checks of PlaceOrder up to the voucher, in the order of its row. */
static int orderable(md__ctx_t *c)
{
    const md__product_t *p = &c->product;
    const char *pid = md__str(c, "product_id");
    md__member_t prov;
    bool found;
    if (strcmp(p->owner, c->cmd->actor) == 0)
        return md__reject(c, MD_CODE_SELF_DEALING, "'%s' owns the store of product '%s'",
                          c->cmd->actor, pid);
    int rc = md__load(c, "m:", p->owner, &prov, sizeof prov, &found);
    if (rc != MD_OK)
        return rc;
    if (c->actor.identity_hash[0] != '\0' &&
        strcmp(c->actor.identity_hash, prov.identity_hash) == 0)
        return md__reject(c, MD_CODE_SELF_DEALING,
                          "'%s' has the identity of '%s', who owns "
                          "the store of product '%s'",
                          c->cmd->actor, p->owner, pid);
    if (md__slot_active(&c->actor.slot[MD__SLOT_RESTRICT], c->now))
        return md__reject(c, MD_CODE_ORDERING_RESTRICTED,
                          "ordering by '%s' is restricted by "
                          "sanction '%s'",
                          c->cmd->actor, c->actor.slot[MD__SLOT_RESTRICT].sanction_id);
    if (p->status != MD__PS_LISTED)
        return md__reject(c, MD_CODE_PRODUCT_UNAVAILABLE, "product '%s' is %s, not listed", pid,
                          md__product_statuses[p->status]);
    rc = md__load(c, "s:", p->store_id, &c->store, sizeof c->store, &found);
    if (rc == MD_OK && (c->store.closed_by_owner || md__slot_active(&c->store.closed, c->now)))
        return md__reject(c, MD_CODE_STORE_CLOSED, "store '%s' is closed", p->store_id);
    if (rc == MD_OK && (prov.closed || md__member_suspended(&prov, c->now)))
        return md__reject(c, MD_CODE_PROVIDER_UNAVAILABLE, "provider '%s' is %s", p->owner,
                          prov.closed ? "closed" : "suspended");
    return rc;
}

static int usable_voucher(md__ctx_t *c, const char *vid)
{
    const md__voucher_t *v = &c->voucher;
    bool found;
    int rc = md__load(c, "v:", vid, &c->voucher, sizeof c->voucher, &found);
    if (rc != MD_OK)
        return rc;
    if (!found)
        return md__reject(c, MD_CODE_NOT_FOUND, "voucher '%s' (data.voucher_id) not found", vid);
    if (strcmp(v->holder, c->cmd->actor) != 0)
        return md__reject(c, MD_CODE_VOUCHER_NOT_HELD, "voucher '%s' is not held by '%s'", vid,
                          c->cmd->actor);
    if (v->used_by[0] != '\0')
        return md__reject(c, MD_CODE_VOUCHER_USED, "voucher '%s' was used by order '%s'", vid,
                          v->used_by);
    if (c->now >= v->expires_at)
        return md__reject(c, MD_CODE_VOUCHER_EXPIRED, "voucher '%s' has expired", vid);
    return MD_OK;
}

static void emit_order_placed(md__ctx_t *c, int64_t discount, int64_t amount)
{
    const md__product_t *p = &c->product;
    md_data_t *d = md__emit(c, "OrderPlaced", "order", md__str(c, "order_id"));
    md__put_str(c, d, "order_id");
    md_data_str(d, "buyer", c->cmd->actor);
    md_data_str(d, "provider", md__keep(c->d, p->owner));
    md_data_str(d, "store_id", md__keep(c->d, p->store_id));
    md__put_str(c, d, "product_id");
    md_data_str(d, "category_id", md__keep(c->d, p->category_id));
    md_data_int(d, "unit_price", p->price);
    md__put_int(c, d, "quantity");
    md_data_int(d, "discount", discount);
    md_data_int(d, "amount", amount);
    md__put_str(c, d, "voucher_id");
}

static void emit_redeemed(md__ctx_t *c, const char *vid, int64_t discount)
{
    md_data_t *d = md__emit(c, "VoucherRedeemed", "voucher", vid);
    md_data_str(d, "voucher_id", vid);
    md__put_str(c, d, "order_id");
    md_data_str(d, "holder", c->cmd->actor);
    md_data_int(d, "value", c->voucher.value);
    md_data_int(d, "discount", discount);
}

/* §6.3: the buyer's data goes to the provider to fulfil the order. */
static void emit_disclosed(md__ctx_t *c)
{
    md_data_t *d = md__emit(c, "PersonalDataDisclosed", "order", md__str(c, "order_id"));
    md__put_str(c, d, "order_id");
    md_data_str(d, "subject", c->cmd->actor);
    md_data_str(d, "recipient", md__keep(c->d, c->product.owner));
    md_data_str(d, "basis", "order_consent");
    md_data_str(d, "clause", "6.3");
}

int md__rule_place_order(md__ctx_t *c)
{
    const char *vid = md__str(c, "voucher_id");
    int rc = orderable(c);
    if (rc == MD_OK && vid != NULL)
        rc = usable_voucher(c, vid);
    if (rc != MD_OK)
        return rc;
    int64_t subtotal = c->product.price * md__int(c, "quantity");
    int64_t discount = vid == NULL ? 0 : c->voucher.value < subtotal ? c->voucher.value : subtotal;
    emit_order_placed(c, discount, subtotal - discount);
    if (vid != NULL)
        emit_redeemed(c, vid, discount);
    emit_disclosed(c);
    return MD_OK;
}

/* ---- the order's life ------------------------------------------------------------ */

static int order_state(md__ctx_t *c, const char *want)
{
    return md__reject(c, MD_CODE_ORDER_STATE, "order '%s' is %s, not %s", md__str(c, "order_id"),
                      md__order_statuses[c->order.status], want);
}

static int not_in_dispute(md__ctx_t *c)
{
    if (c->order.complaint[0] == '\0')
        return MD_OK;
    return md__reject(c, MD_CODE_ORDER_IN_DISPUTE, "order '%s' is in dispute (complaint '%s')",
                      md__str(c, "order_id"), c->order.complaint);
}

/* Starts an order event with order_id, buyer and provider. */
static md_data_t *emit_order(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "order", md__str(c, "order_id"));
    md__put_str(c, d, "order_id");
    md_data_str(d, "buyer", md__keep(c->d, c->order.buyer));
    md_data_str(d, "provider", md__keep(c->d, c->order.provider));
    return d;
}

int md__rule_pay_order(md__ctx_t *c)
{
    if (c->order.status != MD__OS_PLACED)
        return order_state(c, "placed");
    int rc = can_pay(c, c->order.amount);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = emit_order(c, "OrderPaid");
    md_data_int(d, "amount", c->order.amount);
    md_data_int(d, "balance", c->actor.balance - c->order.amount);
    return MD_OK;
}

int md__rule_deliver_order(md__ctx_t *c)
{
    if (c->order.status != MD__OS_PAID)
        return order_state(c, "paid");
    md_data_t *d = emit_order(c, "OrderDelivered");
    md__put_str(c, d, "note");
    if (c->plat.auto_confirm_days > 0)
        md_data_int(d, "auto_confirm_at", md__deadline(c->now, c->plat.auto_confirm_days));
    return MD_OK;
}

int md__rule_confirm_order(md__ctx_t *c)
{
    if (c->order.status != MD__OS_DELIVERED)
        return order_state(c, "delivered");
    int rc = not_in_dispute(c);
    if (rc == MD_OK)
        md__emit_completed(c, &c->order, md__str(c, "order_id"), "buyer");
    return rc;
}

int md__rule_cancel_order(md__ctx_t *c)
{
    if (c->order.status != MD__OS_PLACED && c->order.status != MD__OS_PAID)
        return order_state(c, "placed or paid");
    int rc = not_in_dispute(c);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = emit_order(c, "OrderCancelled");
    md_data_str(d, "cancelled_by", c->cmd->actor);
    md_data_int(d, "refunded", c->order.escrow);
    md__put_str(c, d, "reason");
    md__emit_voucher_restored(c, &c->order, md__str(c, "order_id"));
    return MD_OK;
}

/* ---- vouchers -------------------------------------------------------------------- */

int md__rule_issue_voucher(md__ctx_t *c)
{
    const md__member_t *m = &c->member;
    md__flag_t claimed;
    bool found = false;
    if (m->closed)
        return md__reject(c, MD_CODE_ACCOUNT_CLOSED, "the account of '%s' is closed",
                          md__str(c, "member_id"));
    int rc = MD_OK;
    if (md__int(c, "new_member_promo") && m->identity_hash[0] != '\0')
        rc = md__load(c, "promo:", m->identity_hash, &claimed, sizeof claimed, &found);
    if (rc == MD_OK && found)
        return md__reject(c, MD_CODE_PROMO_ALREADY_CLAIMED,
                          "a new-member promotion was already "
                          "issued to a member with the identity of '%s'",
                          md__str(c, "member_id"));
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "VoucherIssued", "voucher", md__str(c, "voucher_id"));
    md__put_str(c, d, "voucher_id");
    md__put_str(c, d, "member_id");
    md__put_int(c, d, "value");
    md__put_int(c, d, "expires_at");
    md_data_bool(d, "new_member_promo", md__int(c, "new_member_promo") != 0);
    return MD_OK;
}

int md__rule_transfer_voucher(md__ctx_t *c)
{
    return md__reject(c, MD_CODE_VOUCHER_NOT_TRANSFERABLE,
                      "voucher '%s' cannot be transferred (to '%s')", md__str(c, "voucher_id"),
                      md__str(c, "to"));
}

/* ---- evolve ------------------------------------------------------------------------ */

md_err_t md__evolve_FundsDeposited(md__ev_t *e)
{
    char id[MD_ID_MAX + 1], ref[129];
    int64_t amount;
    md__flag_t seen = {.fmt = 0, .on = 1};
    md_err_t rc = md__ev_str(e, "member_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "payment_ref", ref, sizeof ref);
    if (rc == MD_OK)
        rc = md__ev_int(e, "amount", &amount);
    if (rc == MD_OK)
        rc = md__ev_credit(e, id, amount);
    return rc == MD_OK ? md__ev_save(e, "pay:", ref, &seen, sizeof seen) : rc;
}

md_err_t md__evolve_FundsWithdrawn(md__ev_t *e)
{
    char id[MD_ID_MAX + 1];
    int64_t amount;
    md_err_t rc = md__ev_str(e, "member_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "amount", &amount);
    return rc == MD_OK ? md__ev_credit(e, id, -amount) : rc;
}

md_err_t md__evolve_OrderPlaced(md__ev_t *e)
{
    md__order_t o;
    char id[MD_ID_MAX + 1];
    memset(&o, 0, sizeof o);
    md_err_t rc = md__ev_str(e, "order_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "buyer", o.buyer, sizeof o.buyer);
    if (rc == MD_OK)
        rc = md__ev_str(e, "provider", o.provider, sizeof o.provider);
    if (rc == MD_OK)
        rc = md__ev_str(e, "store_id", o.store_id, sizeof o.store_id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "product_id", o.product_id, sizeof o.product_id);
    if (rc == MD_OK)
        rc = md__ev_str_opt(e, "voucher_id", o.voucher_id, sizeof o.voucher_id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "unit_price", &o.unit_price);
    if (rc == MD_OK)
        rc = md__ev_int(e, "quantity", &o.quantity);
    if (rc == MD_OK)
        rc = md__ev_int(e, "discount", &o.discount);
    if (rc == MD_OK)
        rc = md__ev_int(e, "amount", &o.amount);
    return rc == MD_OK ? md__ev_save(e, "o:", id, &o, sizeof o) : rc;
}

static md_err_t voucher_use(md__ev_t *e, bool use)
{
    md__voucher_t v;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "voucher_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "v:", id, &v, sizeof v);
    if (rc == MD_OK && use)
        rc = md__ev_str(e, "order_id", v.used_by, sizeof v.used_by);
    if (rc != MD_OK)
        return rc;
    if (!use)
        memset(v.used_by, 0, sizeof v.used_by);
    return md__ev_save(e, "v:", id, &v, sizeof v);
}

md_err_t md__evolve_VoucherRedeemed(md__ev_t *e)
{
    return voucher_use(e, true);
}

md_err_t md__evolve_VoucherRestored(md__ev_t *e)
{
    return voucher_use(e, false);
}

/*
 * Moves money of an order event: `key` names the amount in the data; the
 * amount goes from the buyer into escrow (to_escrow) or out of escrow to
 * `to` (the buyer or the provider). Sets the order's new status.
 */
static md_err_t order_money(md__ev_t *e, const char *key, bool to_escrow, bool to_buyer, int status)
{
    md__order_t o;
    char id[MD_ID_MAX + 1];
    int64_t amount = 0;
    md_err_t rc = md__ev_str(e, "order_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", id, &o, sizeof o);
    if (rc == MD_OK && key != NULL)
        rc = md__ev_int(e, key, &amount);
    if (rc == MD_OK && to_escrow)
        rc = md__ev_credit(e, o.buyer, -amount);
    else if (rc == MD_OK)
        rc = md__ev_credit(e, to_buyer ? o.buyer : o.provider, amount);
    if (rc != MD_OK)
        return rc;
    o.escrow += to_escrow ? amount : -amount;
    o.status = (uint8_t)status;
    return md__ev_save(e, "o:", id, &o, sizeof o);
}

md_err_t md__evolve_OrderPaid(md__ev_t *e)
{
    return order_money(e, "amount", true, false, MD__OS_PAID);
}

md_err_t md__evolve_OrderDelivered(md__ev_t *e)
{
    md__order_t o;
    char id[MD_ID_MAX + 1];
    int64_t at = 0;
    md_err_t rc = order_money(e, NULL, false, false, MD__OS_DELIVERED);
    if (rc != MD_OK || !md__ev_has(e, "auto_confirm_at"))
        return rc;
    rc = md__ev_str(e, "order_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "auto_confirm_at", &at);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", id, &o, sizeof o);
    if (rc == MD_OK)
        rc = md__arm(e, MD__TK_AUTO_CONFIRM, id, at, &o.ac_at, &o.ac_seq);
    return rc == MD_OK ? md__ev_save(e, "o:", id, &o, sizeof o) : rc;
}

md_err_t md__evolve_OrderCompleted(md__ev_t *e)
{
    md__order_t o;
    char id[MD_ID_MAX + 1];
    int64_t released = 0;
    md_err_t rc = md__ev_str(e, "order_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "released", &released);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", id, &o, sizeof o);
    if (rc != MD_OK)
        return rc;
    o.escrow -= released;
    o.status = MD__OS_COMPLETED;
    rc = md__ev_release(e, &o, id, released);
    return rc == MD_OK ? md__ev_save(e, "o:", id, &o, sizeof o) : rc;
}

md_err_t md__evolve_OrderCancelled(md__ev_t *e)
{
    return order_money(e, "refunded", false, true, MD__OS_CANCELLED);
}

md_err_t md__evolve_VoucherIssued(md__ev_t *e)
{
    md__voucher_t v;
    md__member_t m;
    md__flag_t claimed = {.fmt = 0, .on = 1};
    char id[MD_ID_MAX + 1];
    bool promo = false;
    memset(&v, 0, sizeof v);
    md_err_t rc = md__ev_str(e, "voucher_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "member_id", v.holder, sizeof v.holder);
    if (rc == MD_OK)
        rc = md__ev_int(e, "value", &v.value);
    if (rc == MD_OK)
        rc = md__ev_int(e, "expires_at", &v.expires_at);
    if (rc == MD_OK)
        rc = md__ev_load(e, "m:", v.holder, &m, sizeof m);
    if (rc != MD_OK)
        return rc;
    if (md_data_get_bool(e->ev->data, e->ev->data_len, "new_member_promo", &promo) != MD_OK)
        promo = false; /* absent: not a promotion voucher */
    v.promo = promo;
    rc = md__ev_save(e, "v:", id, &v, sizeof v);
    if (rc == MD_OK && promo && m.identity_hash[0] != '\0')
        rc = md__ev_save(e, "promo:", m.identity_hash, &claimed, sizeof claimed);
    return rc;
}

/* ---- completion, holds and after-sales (§3.1.3, §3.2.1, §3.2.3) ------------------ */

int64_t md__deadline(int64_t t, int64_t days)
{
    return days > 0 ? t + days * MD_DAY_MS : 0;
}

void md__put_release(md__ctx_t *c, md_data_t *d, int64_t released, bool completes)
{
    md_data_int(d, "released", released);
    if (c->plat.settlement_hold_days > 0)
        md_data_int(d, "held_until", md__deadline(c->now, c->plat.settlement_hold_days));
    if (completes && c->plat.after_sales_days > 0)
        md_data_int(d, "after_sales_until", md__deadline(c->now, c->plat.after_sales_days));
}

void md__emit_completed(md__ctx_t *c, const md__order_t *o, const char *order_id, const char *mode)
{
    const char *id = md__keep(c->d, order_id);
    md_data_t *d = md__emit(c, "OrderCompleted", "order", id);
    md_data_str(d, "order_id", id);
    md_data_str(d, "buyer", md__keep(c->d, o->buyer));
    md_data_str(d, "provider", md__keep(c->d, o->provider));
    md_data_str(d, "mode", mode);
    md__put_release(c, d, o->escrow, true);
}

/* The release of an event to the order's provider: into the hold when the event
 * carries held_until (and the settlement timer is armed), else the balance. */
md_err_t md__ev_release(md__ev_t *e, md__order_t *o, const char *order_id, int64_t amount)
{
    int64_t until = 0, after = 0;
    md_err_t rc = MD_OK;
    if (md__ev_has(e, "after_sales_until") &&
        (rc = md__ev_int(e, "after_sales_until", &after)) == MD_OK)
        o->after_sales_until = after;
    if (rc != MD_OK)
        return rc;
    if (!md__ev_has(e, "held_until"))
        return md__ev_credit(e, o->provider, amount);
    rc = md__ev_int(e, "held_until", &until);
    if (rc == MD_OK)
        rc = md__ev_hold(e, o->provider, amount);
    if (rc != MD_OK)
        return rc;
    o->held = amount;
    o->hold_open = 1;
    return md__arm(e, MD__TK_SETTLEMENT, order_id, until, &o->st_at, &o->st_seq);
}

md_err_t md__evolve_SettlementReleased(md__ev_t *e)
{
    md__order_t o;
    char id[MD_ID_MAX + 1];
    int64_t amount;
    md_err_t rc = md__ev_str(e, "order_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "amount", &amount);
    if (rc == MD_OK)
        rc = md__ev_load(e, "o:", id, &o, sizeof o);
    if (rc == MD_OK)
        rc = md__ev_hold(e, o.provider, -amount);
    if (rc == MD_OK)
        rc = md__ev_credit(e, o.provider, amount);
    if (rc != MD_OK)
        return rc;
    o.held = 0;
    o.hold_open = 0;
    return md__ev_save(e, "o:", id, &o, sizeof o);
}
