/*
 * accounts.c - the accounts projection: one record per member (p_accounts,
 * keyed by member id) and per-member lists (p_account_idx):
 *   'x' member NUL sanction_id -> member sanction (removed when lifted)
 *   's' member NUL store_id    -> "" (stores the member opened)
 *   'l' member NUL category_id -> "" (licences held)
 * Money follows the table of docs/events.md: balances and the escrow a
 * member holds as buyer move with the events that carry the amounts.
 */
#include <string.h>

#include "pj.h"

typedef struct pj_account {
    int64_t fmt, registered_seq, updated_seq, registered_at, kind, operator_, provider_status;
    int64_t provider_at, agreement_version, agreement_mode, agreement_at, declined_version;
    int64_t declined_at, balance, escrow, deposited, withdrawn, spent, earned, refunds;
    int64_t orders_buyer, orders_provider, notices, sanctions;
    int64_t held; /* released to it as provider, still held (settlement) */
    char name[PJ_NAME], business_name[PJ_NAME];
    char email[PJ_NAME], phone[33], identity_hash[65]; /* personal data (§6) */
} pj_account_t;

static const pj_str_desc_t account_strs[] = {
    {offsetof(pj_account_t, name), PJ_NAME},     {offsetof(pj_account_t, business_name), PJ_NAME},
    {offsetof(pj_account_t, email), PJ_NAME},    {offsetof(pj_account_t, phone), 33},
    {offsetof(pj_account_t, identity_hash), 65},
};

static const pj_layout_t account_layout = {
    ('A' << 8) | PJ_FORMAT, offsetof(pj_account_t, name), sizeof(pj_account_t), 5, account_strs,
};

/* A sanction on a member, kept while it may be in effect. */
typedef struct pj_msanction {
    int64_t fmt, measure, applied_seq, applied_at, expires_at;
    char clause[PJ_CLAUSE];
} pj_msanction_t;

static const pj_str_desc_t msanction_strs[] = {{offsetof(pj_msanction_t, clause), PJ_CLAUSE}};
static const pj_layout_t msanction_layout = {
    ('M' << 8) | PJ_FORMAT, offsetof(pj_msanction_t, clause), sizeof(pj_msanction_t), 1,
    msanction_strs,
};

static const char *const kind_names[] = {"individual", "organization"};
static const char *const provider_names[] = {"none", "applied", "approved", "rejected"};
static const char *const mode_names[] = {"none", "explicit", "use", "continued_use"};
#define N_(a) (sizeof a / sizeof a[0])

/* One member record being changed by one event. */
typedef struct acct_op {
    pj_ctx_t *c;
    pj_account_t a;
    char id[PJ_ID];
} acct_op_t;

/* ---- per-member index ------------------------------------------------------------ */

static void idx_key(pj_key_t *k, char kind, const char *member, const char *id)
{
    md__pj_key_init(k);
    md__pj_key_byte(k, (unsigned char)kind);
    md__pj_key_str(k, member);
    md__pj_key_str(k, id);
    k->n--; /* no separator after the last part */
}

/* Puts (or deletes) member-kind-id from the data fields @p mf and @p idf. */
static md_err_t idx_flag(pj_ctx_t *c, char kind, const char *mf, const char *idf, bool put)
{
    char member[PJ_ID], id[PJ_ID];
    pj_key_t k;
    if (!md__pj_str(c, mf, member, PJ_ID) || !md__pj_str(c, idf, id, PJ_ID))
        return MD_OK;
    idx_key(&k, kind, member, id);
    return put ? md__pj_put(c, PJ_DB_ACCOUNT_IDX, k.b, k.n, "", 0)
               : md__pj_del(c, PJ_DB_ACCOUNT_IDX, k.b, k.n);
}

/* ---- record changes -------------------------------------------------------------- */

static void on_registered(acct_op_t *x)
{
    pj_ctx_t *c = x->c;
    x->a.registered_seq = (int64_t)c->ev->seq;
    x->a.registered_at = c->ev->recorded_at;
    x->a.kind = md__pj_enum(c, "kind", kind_names, N_(kind_names));
    md__pj_str(c, "name", x->a.name, PJ_NAME);
    md__pj_str(c, "email", x->a.email, PJ_NAME);
    md__pj_str(c, "phone", x->a.phone, sizeof x->a.phone);
    md__pj_str(c, "identity_hash", x->a.identity_hash, sizeof x->a.identity_hash);
    x->a.provider_at = x->a.agreement_at = x->a.declined_at = PJ_NONE;
}

static void on_operator(acct_op_t *x)
{
    x->a.operator_ = x->c->type == PJ_T_OperatorGranted;
}

static void on_accepted(acct_op_t *x)
{
    x->a.agreement_version = md__pj_int(x->c, "version");
    x->a.agreement_mode = md__pj_enum(x->c, "mode", mode_names, N_(mode_names));
    x->a.agreement_at = x->c->ev->recorded_at;
}

static void on_declined(acct_op_t *x)
{
    x->a.declined_version = md__pj_int(x->c, "version");
    x->a.declined_at = x->c->ev->recorded_at;
}

static void on_provider(acct_op_t *x)
{
    pj_type_t t = x->c->type;
    x->a.provider_status = t == PJ_T_ProviderApplied ? 1 : t == PJ_T_ProviderApproved ? 2 : 3;
    x->a.provider_at = x->c->ev->recorded_at;
    if (t == PJ_T_ProviderApplied)
        md__pj_str(x->c, "business_name", x->a.business_name, PJ_NAME);
}

static void on_deposit(acct_op_t *x)
{
    int64_t a = md__pj_int(x->c, "amount");
    x->a.balance += a;
    x->a.deposited += a;
}

static void on_withdraw(acct_op_t *x)
{
    int64_t a = md__pj_int(x->c, "amount");
    x->a.balance -= a;
    x->a.withdrawn += a;
}

static void on_placed_buyer(acct_op_t *x)
{
    x->a.orders_buyer++;
}

static void on_placed_provider(acct_op_t *x)
{
    x->a.orders_provider++;
}

static void on_paid(acct_op_t *x)
{
    int64_t a = md__pj_int(x->c, "amount");
    x->a.balance -= a;
    x->a.escrow += a;
}

static void on_completed_buyer(acct_op_t *x)
{
    int64_t r = md__pj_int(x->c, "released");
    x->a.escrow -= r;
    x->a.spent += r;
}

/* A release goes into the hold when the event carries held_until. */
static void on_released_provider(acct_op_t *x)
{
    int64_t r = md__pj_int(x->c, "released");
    if (md__pj_opt_int(x->c, "held_until") != PJ_NONE)
        x->a.held += r;
    else
        x->a.balance += r;
    x->a.earned += r;
}

/* An after-sales ruling refunds the buyer from the provider's hold. */
static void on_ruled_provider(acct_op_t *x)
{
    if (md__pj_int(x->c, "after_sales") == 0) {
        on_released_provider(x);
        return;
    }
    int64_t r = md__pj_int(x->c, "refund_amount");
    x->a.held -= r;
    x->a.earned -= r;
}

static void on_settled(acct_op_t *x)
{
    int64_t a = md__pj_int(x->c, "amount");
    x->a.held -= a;
    x->a.balance += a;
}

/* OrderCancelled and a close_order sanction: escrow back to the buyer. */
static void on_refunded_buyer(acct_op_t *x)
{
    int64_t r = md__pj_int(x->c, "refunded");
    x->a.escrow -= r;
    x->a.balance += r;
    x->a.refunds += r;
}

static void on_ruled_buyer(acct_op_t *x)
{
    int64_t r = md__pj_int(x->c, "refund_amount"), rel = md__pj_int(x->c, "released");
    if (md__pj_int(x->c, "after_sales") != 0) { /* from the hold, not escrow */
        x->a.balance += r;
        x->a.refunds += r;
        x->a.spent -= r;
        return;
    }
    x->a.escrow -= r + rel;
    x->a.balance += r;
    x->a.refunds += r;
    x->a.spent += rel;
}

static void on_sanctioned(acct_op_t *x)
{
    x->a.sanctions++;
    if (md__pj_enum(x->c, "measure", md__pj_measures, md__pj_nmeasures) == 0)
        x->a.notices++;
}

typedef struct update {
    pj_type_t type;
    const char *field;  /* the data field naming the member */
    const char *target; /* NULL, or the target_type required */
    void (*fn)(acct_op_t *x);
} update_t;

static const update_t updates[] = {
    {PJ_T_MemberRegistered, "member_id", NULL, on_registered},
    {PJ_T_OperatorGranted, "member_id", NULL, on_operator},
    {PJ_T_OperatorRevoked, "member_id", NULL, on_operator},
    {PJ_T_AgreementAccepted, "member_id", NULL, on_accepted},
    {PJ_T_AgreementDeclined, "member_id", NULL, on_declined},
    {PJ_T_ProviderApplied, "member_id", NULL, on_provider},
    {PJ_T_ProviderApproved, "member_id", NULL, on_provider},
    {PJ_T_ProviderRejected, "member_id", NULL, on_provider},
    {PJ_T_FundsDeposited, "member_id", NULL, on_deposit},
    {PJ_T_FundsWithdrawn, "member_id", NULL, on_withdraw},
    {PJ_T_OrderPlaced, "buyer", NULL, on_placed_buyer},
    {PJ_T_OrderPlaced, "provider", NULL, on_placed_provider},
    {PJ_T_OrderPaid, "buyer", NULL, on_paid},
    {PJ_T_OrderCompleted, "buyer", NULL, on_completed_buyer},
    {PJ_T_OrderCompleted, "provider", NULL, on_released_provider},
    {PJ_T_OrderCancelled, "buyer", NULL, on_refunded_buyer},
    {PJ_T_DisputeRuled, "buyer", NULL, on_ruled_buyer},
    {PJ_T_DisputeRuled, "provider", NULL, on_ruled_provider},
    {PJ_T_SettlementReleased, "provider", NULL, on_settled},
    {PJ_T_SanctionApplied, "buyer", "order", on_refunded_buyer},
    {PJ_T_SanctionApplied, "target_id", "member", on_sanctioned},
};

static bool field_is(pj_ctx_t *c, const char *key, const char *want)
{
    const pj_field_t *f = md__pj_field(c, key);
    return f && f->kind == PJ_V_STR && f->slen == strlen(want) && memcmp(f->s, want, f->slen) == 0;
}

static md_err_t run_update(pj_ctx_t *c, const update_t *u)
{
    acct_op_t x;
    bool found;
    x.c = c;
    if ((u->target && !field_is(c, "target_type", u->target)) ||
        !md__pj_str(c, u->field, x.id, PJ_ID))
        return MD_OK;
    md_err_t rc = md__pj_load(c, PJ_DB_ACCOUNTS, x.id, strlen(x.id), &account_layout, &x.a, &found);
    if (rc != MD_OK || (!found && c->type != PJ_T_MemberRegistered))
        return rc; /* money or roles of a member never registered: nothing to hold them */
    u->fn(&x);
    x.a.updated_seq = (int64_t)c->ev->seq;
    return md__pj_save(c, PJ_DB_ACCOUNTS, x.id, strlen(x.id), &account_layout, &x.a);
}

/* ---- member sanctions (the 'x' index) ----------------------------------------------- */

static md_err_t sanction_idx(pj_ctx_t *c)
{
    char member[PJ_ID], sid[PJ_ID];
    pj_key_t k;
    if (!field_is(c, "target_type", "member") || !md__pj_str(c, "target_id", member, PJ_ID) ||
        !md__pj_str(c, "sanction_id", sid, PJ_ID))
        return MD_OK;
    idx_key(&k, 'x', member, sid);
    if (c->type == PJ_T_SanctionLifted)
        return md__pj_del(c, PJ_DB_ACCOUNT_IDX, k.b, k.n);
    pj_msanction_t s;
    memset(&s, 0, sizeof s);
    s.fmt = msanction_layout.fmt;
    s.measure = md__pj_enum(c, "measure", md__pj_measures, md__pj_nmeasures);
    if (s.measure == 0)
        return MD_OK; /* a notice is recorded only (counted on the account) */
    s.applied_seq = (int64_t)c->ev->seq;
    s.applied_at = c->ev->recorded_at;
    s.expires_at = md__pj_opt_int(c, "expires_at");
    md__pj_str(c, "clause", s.clause, PJ_CLAUSE);
    return md__pj_save(c, PJ_DB_ACCOUNT_IDX, k.b, k.n, &msanction_layout, &s);
}

md_err_t md__pj_accounts_apply(pj_ctx_t *c)
{
    md_err_t rc = MD_OK;
    if (c->type == PJ_T_UNKNOWN)
        return MD_OK;
    for (size_t i = 0; i < N_(updates) && rc == MD_OK; i++)
        if (updates[i].type == c->type)
            rc = run_update(c, &updates[i]);
    if (rc != MD_OK)
        return rc;
    switch (c->type) {
    case PJ_T_StoreOpened: return idx_flag(c, 's', "owner", "store_id", true);
    case PJ_T_LicenseGranted: return idx_flag(c, 'l', "member_id", "category_id", true);
    case PJ_T_LicenseRevoked: return idx_flag(c, 'l', "member_id", "category_id", false);
    case PJ_T_SanctionApplied:
    case PJ_T_SanctionLifted: return sanction_idx(c);
    default: return MD_OK;
    }
}

/* ---- queries ------------------------------------------------------------------------ */

typedef struct acct_lists {
    json_t *sanctions, *restrictions, *stores, *licences;
    int64_t as_of;
} acct_lists_t;

/* Appends one 'x', 's' or 'l' entry (key = kind member NUL id) to its list. */
static md_err_t add_entry(acct_lists_t *l, const MDB_val *k, const MDB_val *v, size_t plen,
                          md_error_t *err)
{
    const char *kb = k->mv_data;
    json_t *id = json_stringn(kb + plen, k->mv_size - plen);
    if (kb[0] == 's')
        return md_json_append(l->stores, id), MD_OK;
    if (kb[0] == 'l')
        return md_json_append(l->licences, id), MD_OK;
    pj_msanction_t s;
    if (md__pj_unpack(&msanction_layout, v->mv_data, v->mv_size, &s) != 0) {
        json_decref(id);
        return md_error_set(err, MD_ECORRUPT, "member sanction entry has another layout");
    }
    bool on = md__pj_in_effect(s.applied_at, s.expires_at, PJ_NONE, l->as_of);
    md_json_append(l->sanctions,
                   json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "sanction_id", id, "measure",
                             md__pj_enumj(md__pj_measures, md__pj_nmeasures, s.measure), "clause",
                             md__pj_strj(s.clause), "applied_at", md__pj_time(s.applied_at),
                             "expires_at", md__pj_time(s.expires_at), "applied_seq",
                             (json_int_t)s.applied_seq, "in_effect", on));
    if (on && s.measure >= 0 && (size_t)s.measure < md__pj_nmeasures)
        md_json_append(l->restrictions, json_string(md__pj_measures[s.measure]));
    return MD_OK;
}

/* Fills the lists of member @p id from the three index prefixes. */
static md_err_t read_lists(md_proj_t *p, MDB_txn *txn, const char *id, acct_lists_t *l,
                           md_error_t *err)
{
    static const char kinds[] = "xsl";
    MDB_cursor *cur = NULL;
    md_err_t rc = md_store_err(mdb_cursor_open(txn, p->dbi[PJ_DB_ACCOUNT_IDX], &cur), err,
                               "account index cursor");
    for (size_t i = 0; i < 3 && rc == MD_OK; i++) {
        pj_key_t pre;
        md__pj_key_init(&pre);
        md__pj_key_byte(&pre, (unsigned char)kinds[i]);
        md__pj_key_str(&pre, id);
        MDB_val k = {pre.n, pre.b}, v;
        int mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        for (; mrc == MDB_SUCCESS && rc == MD_OK; mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size < pre.n || memcmp(k.mv_data, pre.b, pre.n) != 0)
                break;
            rc = add_entry(l, &k, &v, pre.n, err);
        }
        if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
            rc = md_store_err(mrc, err, "account index");
    }
    mdb_cursor_close(cur);
    return rc;
}

static json_t *account_json(const char *id, const pj_account_t *a, acct_lists_t *l)
{
    json_t *j = json_object();
    md_json_set(j, "member_id", json_string(id));
    md_json_set(j, "kind", md__pj_enumj(kind_names, N_(kind_names), a->kind));
    md_json_set(j, "name", md__pj_strj(a->name));
    md_json_set(j, "registered_at", md__pj_time(a->registered_at));
    md_json_set(j, "operator", json_boolean(a->operator_));
    md_json_set(j, "provider_status",
                md__pj_enumj(provider_names, N_(provider_names), a->provider_status));
    md_json_set(j, "business_name", md__pj_strj(a->business_name));
    md_json_set(j, "email", md__pj_strj(a->email));
    md_json_set(j, "phone", md__pj_strj(a->phone));
    md_json_set(j, "identity_hash", md__pj_strj(a->identity_hash));
    md_json_set(j, "provider_since", md__pj_time(a->provider_at));
    md_json_set(j, "agreement_version", json_integer(a->agreement_version));
    md_json_set(j, "agreement_mode", md__pj_enumj(mode_names, N_(mode_names), a->agreement_mode));
    md_json_set(j, "agreement_accepted_at", md__pj_time(a->agreement_at));
    md_json_set(j, "declined_version", json_integer(a->declined_version));
    md_json_set(j, "declined_at", md__pj_time(a->declined_at));
    md_json_set(j, "balance", json_integer(a->balance));
    md_json_set(j, "held", json_integer(a->held));
    md_json_set(j, "escrow_held", json_integer(a->escrow));
    md_json_set(j, "deposited", json_integer(a->deposited));
    md_json_set(j, "withdrawn", json_integer(a->withdrawn));
    md_json_set(j, "spent", json_integer(a->spent));
    md_json_set(j, "earned", json_integer(a->earned));
    md_json_set(j, "refunds", json_integer(a->refunds));
    md_json_set(j, "orders_as_buyer", json_integer(a->orders_buyer));
    md_json_set(j, "orders_as_provider", json_integer(a->orders_provider));
    md_json_set(j, "notices", json_integer(a->notices));
    md_json_set(j, "sanctions_total", json_integer(a->sanctions));
    md_json_set(j, "sanctions", l->sanctions);
    md_json_set(j, "restrictions", l->restrictions);
    md_json_set(j, "stores", l->stores);
    md_json_set(j, "licences", l->licences);
    md_json_set(j, "registered_seq", json_integer(a->registered_seq));
    md_json_set(j, "updated_seq", json_integer(a->updated_seq));
    return j;
}

md_err_t md__pj_account_get(md_proj_t *p, MDB_txn *txn, const char *id, int64_t as_of, json_t **out,
                            md_error_t *err)
{
    pj_account_t a;
    bool found;
    acct_lists_t l = {json_array(), json_array(), json_array(), json_array(), as_of};
    md_err_t rc =
        md__pj_read(txn, p->dbi[PJ_DB_ACCOUNTS], id, strlen(id), &account_layout, &a, &found, err);
    if (rc == MD_OK && !found)
        rc = md_error_set(err, MD_ENOTFOUND, "account '%s' not found", id);
    if (rc == MD_OK)
        rc = read_lists(p, txn, id, &l, err);
    if (rc != MD_OK) {
        json_decref(l.sanctions), json_decref(l.restrictions);
        json_decref(l.stores), json_decref(l.licences);
        return rc;
    }
    *out = account_json(id, &a, &l);
    return MD_OK;
}
