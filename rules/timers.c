/*
 * timers.c - the policy and the timers (rules.md "Policy and timers"):
 * SetPolicy and Tick, the timer index and the three timers.
 *
 * A timer is state, not a thread. Its record (the order for auto_confirm and
 * settlement, the complaint for defense) keeps its deadline and the seq of the
 * event that armed it; the index key
 *   "~T" deadline (8 bytes BE, sign bit flipped) seq (8 bytes BE) kind (1) id
 * makes the first key under "~T" the next timer in (deadline, seq) order.
 *
 * The index is written by evolve only, so that the rules' state is a function
 * of the log (marketctl verify recomputes it): every save of an order or a
 * complaint record (md__ev_save) writes its timers' keys so that
 *   a key is present  <=>  the timer has a deadline and its condition holds
 * (the same condition functions the firing checks). A timer whose firing would
 * append nothing is thereby disarmed by the event that made it moot (the order
 * confirmed, cancelled, refunded or closed, the hold released, the defence
 * filed, the complaint ended), including the first event its own firing
 * appends; an order's timers pause while a complaint is active (the key goes,
 * the deadline stays) and come back when it ends (social.c complaint_ended).
 * The engine asks md_rules_timer_next() before each line and fires what is
 * due with md_rules_timer_fire(), which only decides the events.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define TKEY_HEAD 2
#define TKEY_FIXED (TKEY_HEAD + 8 + 8 + 1)

/* The timer kinds: what arms and fires each, and what its firing appends
 * (docs/commands.md "Timers" is printed from here by md_rules_timer_kind; the
 * events are checked against the firings by tests/test_rules.c). */
static const struct {
    char kind;
    const char *name;
    const char *what;
    const char *const *events; /* NULL-terminated */
} kinds[] = {
    {MD__TK_AUTO_CONFIRM, "auto_confirm",
     "armed by OrderDelivered when `auto_confirm_days` > 0; at the deadline, a delivered "
     "order nobody confirmed and no active complaint holds completes (`mode` `auto`)",
     (const char *const[]){"OrderCompleted", NULL}},
    {MD__TK_SETTLEMENT, "settlement",
     "armed by a release into the hold (`held_until`, `settlement_hold_days` > 0); at the "
     "deadline, what is still held for the order goes into the provider's balance",
     (const char *const[]){"SettlementReleased", NULL}},
    {MD__TK_DEFENSE, "defense",
     "armed by ComplaintFiled when `defense_days` > 0; at the deadline, an open complaint "
     "without a defence goes to arbitration (`by` `system`, `reason` `no_defense`)",
     (const char *const[]){"ArbitrationRequested", NULL}},
};

bool md_rules_timer_kind(size_t i, const char **name, const char **what, const char *const **events)
{
    if (i >= sizeof kinds / sizeof kinds[0])
        return false;
    *name = kinds[i].name;
    *what = kinds[i].what;
    *events = kinds[i].events;
    return true;
}

static const char *kind_name(int kind)
{
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (kinds[i].kind == kind)
            return kinds[i].name;
    }
    return NULL;
}

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)(v & 0xff);
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static size_t timer_key(unsigned char *key, int kind, const char *id, int64_t deadline, int64_t seq)
{
    size_t n = strlen(id);
    key[0] = '~', key[1] = 'T';
    be64(key + TKEY_HEAD, (uint64_t)deadline ^ (1ull << 63));
    be64(key + TKEY_HEAD + 8, (uint64_t)seq);
    key[TKEY_HEAD + 16] = (unsigned char)kind;
    memcpy(key + TKEY_FIXED, id, n);
    return TKEY_FIXED + n;
}

/* ---- the conditions (one place: the firing and the index both ask them) ---------- */

/* auto_confirm: the order is delivered and no complaint on it is active. */
static bool auto_confirm_holds(const md__order_t *o)
{
    return o->status == MD__OS_DELIVERED && o->complaint[0] == '\0';
}

/* settlement: the order's hold is open and no complaint on it is active. */
static bool settlement_holds(const md__order_t *o)
{
    return o->hold_open && o->complaint[0] == '\0';
}

/* defense: the complaint is open and its respondent has submitted no defence. */
static bool defense_holds(const md__complaint_t *q)
{
    return q->status == MD__CS_OPEN && !q->defended;
}

/* Makes the key of timer (kind, id) at (at, seq) present iff want (none when
 * at is 0: never armed). */
static md_err_t index_key(md__ev_t *e, int kind, const char *id, int64_t at, int64_t seq, bool want)
{
    unsigned char key[TKEY_FIXED + MD_ID_MAX];
    const void *v;
    size_t vl, kl;
    if (at == 0)
        return MD_OK;
    kl = timer_key(key, kind, id, at, seq);
    md_err_t rc = want ? e->st->get(e->st->ctx, key, kl, &v, &vl) : MD_OK;
    if (want && rc == MD_ENOTFOUND)
        rc = e->st->put(e->st->ctx, key, kl, "", 0);
    else if (!want)
        rc = e->st->del(e->st->ctx, key, kl);
    if (rc != MD_OK)
        return md_error_set(e->err, rc, "timer %s:%s: state write failed", kind_name(kind), id);
    return MD_OK;
}

static md_err_t index_order(md__ev_t *e, const char *id, const void *rec)
{
    const md__order_t *o = rec;
    md_err_t rc = index_key(e, MD__TK_AUTO_CONFIRM, id, o->ac_at, o->ac_seq, auto_confirm_holds(o));
    return rc == MD_OK
               ? index_key(e, MD__TK_SETTLEMENT, id, o->st_at, o->st_seq, settlement_holds(o))
               : rc;
}

static md_err_t index_complaint(md__ev_t *e, const char *id, const void *rec)
{
    const md__complaint_t *q = rec;
    return index_key(e, MD__TK_DEFENSE, id, q->df_at, q->df_seq, defense_holds(q));
}

static const struct {
    const char *prefix;
    size_t size;
    md_err_t (*index)(md__ev_t *e, const char *id, const void *rec);
} timed_records[] = {{"o:", sizeof(md__order_t), index_order},
                     {"q:", sizeof(md__complaint_t), index_complaint}};

md_err_t md__timers_index(md__ev_t *e, const char *prefix, const char *id, const void *rec,
                          size_t size)
{
    for (size_t i = 0; i < sizeof timed_records / sizeof timed_records[0]; i++) {
        if (strcmp(prefix, timed_records[i].prefix) == 0 && size == timed_records[i].size)
            return timed_records[i].index(e, id, rec);
    }
    return MD_OK;
}

md_err_t md__arm(md__ev_t *e, int kind, const char *id, int64_t deadline, int64_t *at, int64_t *seq)
{
    md_err_t rc = index_key(e, kind, id, *at, *seq, false);
    if (rc != MD_OK)
        return rc;
    *at = deadline;
    *seq = (int64_t)e->ev->seq;
    return MD_OK;
}

md_err_t md__ev_platform(md__ev_t *e, md__platform_t *p)
{
    bool found;
    return md__get(e->st, "plat", 4, p, sizeof *p, &found, e->err);
}

/* ---- SetPolicy and Tick --------------------------------------------------------- */

static const char *const policy_fields[] = {"after_sales_days", "auto_confirm_days", "defense_days",
                                            "settlement_hold_days", "appeal_days"};
#define NPOLICY (sizeof policy_fields / sizeof policy_fields[0])

static int64_t *policy_slot(md__platform_t *p, size_t i)
{
    int64_t *slots[NPOLICY] = {&p->after_sales_days, &p->auto_confirm_days, &p->defense_days,
                               &p->settlement_hold_days, &p->appeal_days};
    return slots[i];
}

int md__rule_set_policy(md__ctx_t *c)
{
    md_data_t *d = md__emit(c, "PolicySet", "platform", NULL);
    for (size_t i = 0; i < NPOLICY; i++)
        md__put_int(c, d, policy_fields[i]);
    return MD_OK;
}

/* Accepted with no events: the timers due at its now fired before it. */
int md__rule_tick(md__ctx_t *c)
{
    (void)c;
    return MD_OK;
}

md_err_t md__evolve_PolicySet(md__ev_t *e)
{
    md__platform_t p;
    md_err_t rc = md__ev_platform(e, &p);
    for (size_t i = 0; i < NPOLICY && rc == MD_OK; i++)
        rc = md__ev_int(e, policy_fields[i], policy_slot(&p, i));
    return rc == MD_OK ? md__put(e->st, "plat", 4, &p, sizeof p, e->err) : rc;
}

/* ---- the timers ------------------------------------------------------------------ */

md_err_t md_rules_timer_next(const md_state_t *st, int64_t now, md_timer_t *t, bool *due,
                             md_error_t *err)
{
    const void *k;
    size_t kl;
    *due = false;
    md_err_t rc = st->seek(st->ctx, "~T", TKEY_HEAD, &k, &kl);
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc != MD_OK)
        return md_error_set(err, rc, "timer index: seek failed");
    const unsigned char *p = k;
    if (kl < TKEY_HEAD || memcmp(p, "~T", TKEY_HEAD) != 0)
        return MD_OK;
    if (kl <= TKEY_FIXED || kl > TKEY_FIXED + MD_ID_MAX || kind_name(p[TKEY_HEAD + 16]) == NULL)
        return md_error_set(err, MD_ECORRUPT, "timer index: malformed key of %zu bytes", kl);
    memset(t, 0, sizeof *t);
    t->deadline = (int64_t)(get_be64(p + TKEY_HEAD) ^ (1ull << 63));
    t->seq = get_be64(p + TKEY_HEAD + 8);
    snprintf(t->kind, sizeof t->kind, "%s", kind_name(p[TKEY_HEAD + 16]));
    memcpy(t->id, p + TKEY_FIXED, kl - TKEY_FIXED);
    t->id[kl - TKEY_FIXED] = '\0';
    snprintf(t->command_id, sizeof t->command_id, MD_TIMER_CMDID_PREFIX "%s:%s", t->kind, t->id);
    *due = t->deadline <= now;
    return MD_OK;
}

/* A timer fires only while its condition holds (the index keeps that true); a
 * firing that finds it false appends nothing and *stale = true. */

/* auto_confirm: a delivered order nobody confirmed or disputes completes. */
static int fire_auto_confirm(md__ctx_t *c, const char *id, bool *stale)
{
    bool found;
    int rc = md__load(c, "o:", id, &c->order, sizeof c->order, &found);
    *stale = rc == MD_OK && !(found && auto_confirm_holds(&c->order));
    if (rc == MD_OK && !*stale)
        md__emit_completed(c, &c->order, id, "auto");
    return rc;
}

/* settlement: what is still held for the order goes into the balance. */
static int fire_settlement(md__ctx_t *c, const char *id, bool *stale)
{
    bool found;
    int rc = md__load(c, "o:", id, &c->order, sizeof c->order, &found);
    *stale = rc == MD_OK && !(found && settlement_holds(&c->order));
    if (rc != MD_OK || *stale)
        return rc;
    const char *oid = md__keep(c->d, id);
    md_data_t *d = md__emit(c, "SettlementReleased", "order", oid);
    md_data_str(d, "order_id", oid);
    md_data_str(d, "provider", md__keep(c->d, c->order.provider));
    md_data_int(d, "amount", c->order.held);
    return MD_OK;
}

/* defense: a respondent who stayed silent sends the complaint to arbitration. */
static int fire_defense(md__ctx_t *c, const char *id, bool *stale)
{
    bool found;
    int rc = md__load(c, "q:", id, &c->complaint, sizeof c->complaint, &found);
    *stale = rc == MD_OK && !(found && defense_holds(&c->complaint));
    if (rc != MD_OK || *stale)
        return rc;
    const char *qid = md__keep(c->d, id);
    md_data_t *d = md__emit(c, "ArbitrationRequested", "complaint", qid);
    md_data_str(d, "complaint_id", qid);
    md_data_str(d, "order_id", md__keep(c->d, c->complaint.order_id));
    md_data_str(d, "by", "system");
    md_data_str(d, "reason", "no_defense");
    return MD_OK;
}

md_err_t md_rules_timer_fire(const md_state_t *st, const md_timer_t *t, md_decision_t *d,
                             md_error_t *err)
{
    unsigned char key[TKEY_FIXED + MD_ID_MAX];
    md__ctx_t c;
    bool found, stale = false;
    int kind = 0;
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        kind = strcmp(kinds[i].name, t->kind) == 0 ? kinds[i].kind : kind;
    memset(d, 0, offsetof(md_decision_t, arena));
    d->arena_len = 0;
    d->code = MD_CODE_NONE;
    d->code_name = "";
    d->accepted = true;
    memset(&c, 0, sizeof c);
    c.st = st, c.d = d, c.err = err, c.now = t->deadline;
    int r = md__get(st, "plat", 4, &c.plat, sizeof c.plat, &found, err);
    if (r == MD_OK)
        r = kind == MD__TK_AUTO_CONFIRM ? fire_auto_confirm(&c, t->id, &stale)
            : kind == MD__TK_SETTLEMENT ? fire_settlement(&c, t->id, &stale)
                                        : fire_defense(&c, t->id, &stale);
    if (r != MD_OK || !stale)
        return (md_err_t)r;
    /* Defensive: only a state written before the index followed the conditions
     * (an older version left moot timers armed) gets here; such a timer is gone. */
    md_err_t rc = st->del(st->ctx, key, timer_key(key, kind, t->id, t->deadline, (int64_t)t->seq));
    return rc == MD_OK ? MD_OK
                       : md_error_set(err, rc, "timer %s: state delete failed", t->command_id);
}
