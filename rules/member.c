/*
 * member.c - membership, the agreement, operators, providers, categories,
 * licences and prohibited terms (§1.2, §1.4, §2, §4.2.3, §4.1.4): the rules
 * of step 7 and the evolution of the member, platform and category records.
 */
#include <string.h>

#include "internal.h"
#include "text.h"

/* ---- decide ----------------------------------------------------------------- */

int md__rule_register_member(md__ctx_t *c)
{
    const char *id = md__str(c, "member_id");
    md_data_t *d = md__emit(c, "MemberRegistered", "member", id);
    md__put_str(c, d, "member_id");
    md__put_str(c, d, "kind");
    md__put_str(c, d, "name");
    md__put_str(c, d, "identity_hash");
    md__put_str(c, d, "email");
    md__put_str(c, d, "phone");
    return MD_OK;
}

int md__rule_publish_agreement(md__ctx_t *c)
{
    int64_t v = md__int(c, "version");
    if (v <= c->plat.agreement_version)
        return md__reject(c, MD_CODE_AGREEMENT_VERSION,
                          "version %lld is not above the current version %lld", (long long)v,
                          (long long)c->plat.agreement_version);
    md_data_t *d = md__emit(c, "AgreementPublished", "platform", NULL);
    md__put_int(c, d, "version");
    md__put_str(c, d, "title");
    md__put_str(c, d, "digest");
    return MD_OK;
}

/* The version named must be the one currently published. */
static int current_version(md__ctx_t *c)
{
    int64_t v = md__int(c, "version");
    if (v != c->plat.agreement_version)
        return md__reject(c, MD_CODE_AGREEMENT_VERSION,
                          "version %lld is not the current version %lld", (long long)v,
                          (long long)c->plat.agreement_version);
    if (c->actor.accepted_version == v)
        return md__reject(c, MD_CODE_ALREADY_ACCEPTED, "version %lld is already accepted",
                          (long long)v);
    return MD_OK;
}

int md__rule_accept_agreement(md__ctx_t *c)
{
    int rc = current_version(c);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "AgreementAccepted", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md__put_int(c, d, "version");
    md_data_str(d, "mode", "explicit");
    return MD_OK;
}

int md__rule_decline_agreement(md__ctx_t *c)
{
    int rc = current_version(c);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "AgreementDeclined", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md__put_int(c, d, "version");
    return MD_OK;
}

int md__rule_transfer_account(md__ctx_t *c)
{
    return md__reject(c, MD_CODE_ACCOUNT_NOT_TRANSFERABLE,
                      "an account cannot be transferred (to '%s')", md__str(c, "to"));
}

/* Emits "<type>{member_id}" on member:<member_id>. */
static void emit_member(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "member", md__str(c, "member_id"));
    md__put_str(c, d, "member_id");
}

int md__rule_grant_operator(md__ctx_t *c)
{
    if (c->member.is_operator)
        return md__reject(c, MD_CODE_ALREADY_OPERATOR, "'%s' is already an operator",
                          md__str(c, "member_id"));
    emit_member(c, "OperatorGranted");
    return MD_OK;
}

int md__rule_revoke_operator(md__ctx_t *c)
{
    if (!c->member.is_operator)
        return md__reject(c, MD_CODE_NOT_OPERATOR, "'%s' is not an operator",
                          md__str(c, "member_id"));
    if (c->plat.operators <= 1)
        return md__reject(c, MD_CODE_LAST_OPERATOR, "'%s' is the last operator",
                          md__str(c, "member_id"));
    emit_member(c, "OperatorRevoked");
    return MD_OK;
}

int md__rule_apply_as_provider(md__ctx_t *c)
{
    if (c->actor.provider == MD__PROV_APPROVED)
        return md__reject(c, MD_CODE_ALREADY_PROVIDER, "'%s' is already a provider", c->cmd->actor);
    if (c->actor.provider == MD__PROV_PENDING)
        return md__reject(c, MD_CODE_APPLICATION_PENDING,
                          "the application of '%s' is pending review", c->cmd->actor);
    md_data_t *d = md__emit(c, "ProviderApplied", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md__put_str(c, d, "business_name");
    return MD_OK;
}

static int pending_application(md__ctx_t *c)
{
    if (c->member.provider != MD__PROV_PENDING)
        return md__reject(c, MD_CODE_APPLICATION_NOT_PENDING,
                          "'%s' has no pending provider application", md__str(c, "member_id"));
    return MD_OK;
}

int md__rule_approve_provider(md__ctx_t *c)
{
    int rc = pending_application(c);
    if (rc == MD_OK)
        emit_member(c, "ProviderApproved");
    return rc;
}

int md__rule_reject_provider(md__ctx_t *c)
{
    int rc = pending_application(c);
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "ProviderRejected", "member", md__str(c, "member_id"));
    md__put_str(c, d, "member_id");
    md__put_str(c, d, "reason");
    return MD_OK;
}

int md__rule_define_category(md__ctx_t *c)
{
    md_data_t *d = md__emit(c, "CategoryDefined", "category", md__str(c, "category_id"));
    md__put_str(c, d, "category_id");
    md__put_str(c, d, "name");
    md_data_bool(d, "restricted", md__int(c, "restricted") != 0);
    md_data_bool(d, "requires_review", md__int(c, "requires_review") != 0);
    return MD_OK;
}

int md__rule_retire_category(md__ctx_t *c)
{
    if (c->category.retired)
        return md__reject(c, MD_CODE_CATEGORY_RETIRED, "category '%s' is already retired",
                          md__str(c, "category_id"));
    md_data_t *d = md__emit(c, "CategoryRetired", "category", md__str(c, "category_id"));
    md__put_str(c, d, "category_id");
    return MD_OK;
}

/* Whether member_id holds a licence for category_id. */
static int license_held(md__ctx_t *c, bool *held)
{
    char key[MD__KEY_MAX];
    md__flag_t f;
    bool found;
    size_t n = md__key3(key, "l:", md__str(c, "member_id"), md__str(c, "category_id"), NULL);
    int rc = md__get(c->st, key, n, &f, sizeof f, &found, c->err);
    *held = found && f.on;
    return rc;
}

int md__dup_license(md__ctx_t *c)
{
    bool held;
    int rc = license_held(c, &held);
    if (rc == MD_OK && held)
        return md__reject(c, MD_CODE_ALREADY_EXISTS,
                          "'%s' already holds a licence for category '%s'", md__str(c, "member_id"),
                          md__str(c, "category_id"));
    return rc;
}

int md__find_license(md__ctx_t *c)
{
    bool held;
    int rc = license_held(c, &held);
    if (rc == MD_OK && !held)
        return md__reject(c, MD_CODE_NOT_FOUND, "'%s' holds no licence for category '%s'",
                          md__str(c, "member_id"), md__str(c, "category_id"));
    return rc;
}

static int emit_license(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "member", md__str(c, "member_id"));
    md__put_str(c, d, "member_id");
    md__put_str(c, d, "category_id");
    return MD_OK;
}

int md__rule_grant_license(md__ctx_t *c)
{
    return emit_license(c, "LicenseGranted");
}

md_err_t md__index_product(md__ev_t *e, const md__product_t *p, const char *id)
{
    char key[MD__KEY_MAX];
    md__flag_t f = {.fmt = 0, .on = 1};
    size_t n = md__key3(key, "Pc:", p->owner, p->category_id, id);
    return md__put(e->st, key, n, &f, sizeof f, e->err);
}

/* The product id of an index key "Pc:<owner>/<category>/<id>" after prefix[pn]. */
static int next_indexed(md__ctx_t *c, char *key, size_t *kn, size_t pn, char *pid, bool *more)
{
    const void *k;
    size_t kl;
    md_err_t rc = c->st->seek(c->st->ctx, key, *kn, &k, &kl);
    *more = false;
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc != MD_OK)
        return md_error_set(c->err, rc, "state seek failed");
    if (kl <= pn || kl - pn > MD_ID_MAX || kl + 1 >= MD__KEY_MAX || memcmp(k, key, pn) != 0)
        return MD_OK;
    memcpy(pid, (const char *)k + pn, kl - pn);
    pid[kl - pn] = '\0';
    memcpy(key, k, kl);
    key[kl] = '\0';
    *kn = kl + 1; /* the next key after this one */
    *more = true;
    return MD_OK;
}

/* §4.2.3: the member's listed or pending products in the restricted category,
 * by ascending product id, are delisted with the licence. */
static int delist_unlicensed(md__ctx_t *c)
{
    char key[MD__KEY_MAX], pid[MD_ID_MAX + 1];
    size_t pn = md__key3(key, "Pc:", md__str(c, "member_id"), md__str(c, "category_id"), "");
    size_t kn = pn;
    bool more = true, found;
    int rc = MD_OK;
    while (rc == MD_OK && more) {
        md__product_t p;
        memset(&p, 0, sizeof p);
        rc = next_indexed(c, key, &kn, pn, pid, &more);
        if (rc != MD_OK || !more)
            continue;
        rc = md__load(c, "P:", pid, &p, sizeof p, &found);
        if (rc != MD_OK || (p.status != MD__PS_LISTED && p.status != MD__PS_PENDING))
            continue;
        if (c->d->n_events == MD_DECISION_EVENTS_MAX)
            return md__reject(c, MD_CODE_INVALID_FIELD,
                              "data.category_id: more than %d "
                              "products to delist at once; delist some first",
                              MD_DECISION_EVENTS_MAX - 1);
        const char *id = md__keep(c->d, pid);
        md_data_t *d = md__emit(c, "ProductDelisted", "product", id);
        md_data_str(d, "product_id", id);
        md_data_str(d, "reason", "license_revoked");
    }
    return rc;
}

int md__rule_revoke_license(md__ctx_t *c)
{
    emit_license(c, "LicenseRevoked");
    return c->category.restricted ? delist_unlicensed(c) : MD_OK;
}

/* Whether the lower-cased term is in the "terms" record. */
static int term_listed(md__ctx_t *c, const char *term, bool *listed)
{
    const void *val;
    size_t len, off = 0;
    bool found;
    *listed = false;
    int rc = md__get_raw(c->st, "terms", &val, &len, &found, c->err);
    while (rc == MD_OK && found && off < len && !*listed) {
        const char *t = (const char *)val + off;
        *listed = strcmp(t, term) == 0;
        off += strlen(t) + 1;
    }
    return rc;
}

/* The command's term, lower-cased, kept in the decision's arena. */
static const char *lower_term(md__ctx_t *c)
{
    char folded[101], buf[101];
    md__fold(md__str(c, "term"), folded, sizeof folded);
    md__lower(folded, buf, sizeof buf);
    return md__keep(c->d, buf);
}

int md__dup_term(md__ctx_t *c)
{
    bool listed;
    const char *t = lower_term(c);
    int rc = term_listed(c, t, &listed);
    if (rc == MD_OK && listed)
        return md__reject(c, MD_CODE_ALREADY_EXISTS, "term '%s' is already prohibited", t);
    return rc;
}

int md__find_term(md__ctx_t *c)
{
    bool listed;
    const char *t = lower_term(c);
    int rc = term_listed(c, t, &listed);
    if (rc == MD_OK && !listed)
        return md__reject(c, MD_CODE_NOT_FOUND, "term '%s' is not prohibited", t);
    return rc;
}

int md__rule_prohibit_term(md__ctx_t *c)
{
    md_data_str(md__emit(c, "TermProhibited", "platform", NULL), "term", lower_term(c));
    return MD_OK;
}

int md__rule_allow_term(md__ctx_t *c)
{
    md_data_str(md__emit(c, "TermAllowed", "platform", NULL), "term", lower_term(c));
    return MD_OK;
}

/* ---- evolve ---------------------------------------------------------------------- */

static md_err_t load_platform(md__ev_t *e, md__platform_t *p)
{
    bool found;
    return md__get(e->st, "plat", 4, p, sizeof *p, &found, e->err);
}

static md_err_t save_platform(md__ev_t *e, md__platform_t *p)
{
    return md__put(e->st, "plat", 4, p, sizeof *p, e->err);
}

md_err_t md__evolve_MemberRegistered(md__ev_t *e)
{
    md__member_t m;
    char id[MD_ID_MAX + 1], kind[16];
    memset(&m, 0, sizeof m);
    md_err_t rc = md__ev_str(e, "member_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "kind", kind, sizeof kind);
    if (rc == MD_OK)
        rc = md__ev_str_opt(e, "identity_hash", m.identity_hash, sizeof m.identity_hash);
    if (rc != MD_OK)
        return rc;
    m.kind = strcmp(kind, "organization") == 0 ? MD__KIND_ORGANIZATION : MD__KIND_INDIVIDUAL;
    return md__ev_save(e, "m:", id, &m, sizeof m);
}

md_err_t md__evolve_AgreementPublished(md__ev_t *e)
{
    md__platform_t p;
    md_err_t rc = load_platform(e, &p);
    if (rc == MD_OK)
        rc = md__ev_int(e, "version", &p.agreement_version);
    return rc == MD_OK ? save_platform(e, &p) : rc;
}

/* Loads member_id's record, applies fn, stores it. */
typedef void (*member_fn)(md__member_t *m, int64_t v);

static md_err_t update_member(md__ev_t *e, const char *int_key, member_fn fn)
{
    md__member_t m;
    char id[MD_ID_MAX + 1];
    int64_t v = 0;
    md_err_t rc = md__ev_str(e, "member_id", id, sizeof id);
    if (rc == MD_OK && int_key != NULL)
        rc = md__ev_int(e, int_key, &v);
    if (rc == MD_OK)
        rc = md__ev_load(e, "m:", id, &m, sizeof m);
    if (rc != MD_OK)
        return rc;
    fn(&m, v);
    return md__ev_save(e, "m:", id, &m, sizeof m);
}

static void set_accepted(md__member_t *m, int64_t v)
{
    m->accepted_version = v;
}
static void set_declined(md__member_t *m, int64_t v)
{
    m->declined_version = v;
}
static void set_applied(md__member_t *m, int64_t v)
{
    (void)v;
    m->provider = MD__PROV_PENDING;
}
static void set_approved(md__member_t *m, int64_t v)
{
    (void)v;
    m->provider = MD__PROV_APPROVED;
}
static void set_rejected(md__member_t *m, int64_t v)
{
    (void)v;
    m->provider = MD__PROV_REJECTED;
}
static void set_operator(md__member_t *m, int64_t v)
{
    m->is_operator = (uint8_t)v;
}

md_err_t md__evolve_AgreementAccepted(md__ev_t *e)
{
    return update_member(e, "version", set_accepted);
}

md_err_t md__evolve_AgreementDeclined(md__ev_t *e)
{
    return update_member(e, "version", set_declined);
}

md_err_t md__evolve_ProviderApplied(md__ev_t *e)
{
    return update_member(e, NULL, set_applied);
}

md_err_t md__evolve_ProviderApproved(md__ev_t *e)
{
    return update_member(e, NULL, set_approved);
}

md_err_t md__evolve_ProviderRejected(md__ev_t *e)
{
    return update_member(e, NULL, set_rejected);
}

/* The operator role and the platform's operator count move together. */
static md_err_t operator_role(md__ev_t *e, bool grant)
{
    md__member_t m;
    md__platform_t p;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "member_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "m:", id, &m, sizeof m);
    if (rc == MD_OK)
        rc = load_platform(e, &p);
    if (rc != MD_OK)
        return rc;
    if (m.is_operator != grant)
        p.operators += grant ? 1 : -1;
    set_operator(&m, grant);
    rc = md__ev_save(e, "m:", id, &m, sizeof m);
    return rc == MD_OK ? save_platform(e, &p) : rc;
}

md_err_t md__evolve_OperatorGranted(md__ev_t *e)
{
    return operator_role(e, true);
}

md_err_t md__evolve_OperatorRevoked(md__ev_t *e)
{
    return operator_role(e, false);
}

md_err_t md__evolve_CategoryDefined(md__ev_t *e)
{
    md__category_t cat;
    char id[MD_ID_MAX + 1];
    bool restricted = false, review = false;
    memset(&cat, 0, sizeof cat);
    md_err_t rc = md__ev_str(e, "category_id", id, sizeof id);
    if (rc == MD_OK &&
        md_data_get_bool(e->ev->data, e->ev->data_len, "restricted", &restricted) != MD_OK)
        rc = md_error_set(e->err, MD_ECORRUPT, "CategoryDefined lacks 'restricted'");
    if (rc == MD_OK &&
        md_data_get_bool(e->ev->data, e->ev->data_len, "requires_review", &review) != MD_OK)
        rc = md_error_set(e->err, MD_ECORRUPT, "CategoryDefined lacks 'requires_review'");
    if (rc != MD_OK)
        return rc;
    cat.restricted = restricted;
    cat.requires_review = review;
    return md__ev_save(e, "c:", id, &cat, sizeof cat);
}

md_err_t md__evolve_CategoryRetired(md__ev_t *e)
{
    md__category_t cat;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "category_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "c:", id, &cat, sizeof cat);
    if (rc != MD_OK)
        return rc;
    cat.retired = 1;
    return md__ev_save(e, "c:", id, &cat, sizeof cat);
}

static md_err_t license(md__ev_t *e, uint8_t on)
{
    char m[MD_ID_MAX + 1], cat[MD_ID_MAX + 1], key[MD__KEY_MAX];
    md__flag_t f = {.fmt = 0, .on = on};
    md_err_t rc = md__ev_str(e, "member_id", m, sizeof m);
    if (rc == MD_OK)
        rc = md__ev_str(e, "category_id", cat, sizeof cat);
    if (rc != MD_OK)
        return rc;
    size_t n = md__key3(key, "l:", m, cat, NULL);
    return md__put(e->st, key, n, &f, sizeof f, e->err);
}

md_err_t md__evolve_LicenseGranted(md__ev_t *e)
{
    return license(e, 1);
}

md_err_t md__evolve_LicenseRevoked(md__ev_t *e)
{
    return license(e, 0);
}

/* Rewrites the "terms" record with the term added or removed. */
static md_err_t terms_update(md__ev_t *e, bool add)
{
    char term[101];
    const void *val;
    size_t len = 0;
    bool found;
    md_buf_t out;
    md_err_t rc = md__ev_str(e, "term", term, sizeof term);
    if (rc == MD_OK)
        rc = md__get_raw(e->st, "terms", &val, &len, &found, e->err);
    if (rc != MD_OK)
        return rc;
    md_buf_init(&out);
    for (size_t off = 0; found && off < len;) {
        const char *t = (const char *)val + off;
        size_t n = strlen(t) + 1;
        if (strcmp(t, term) != 0)
            md_buf_append(&out, t, n);
        off += n;
    }
    if (add)
        md_buf_append(&out, term, strlen(term) + 1);
    rc = md__put_raw(e->st, "terms", out.p != NULL ? (const void *)out.p : "", out.len, e->err);
    md_buf_release(&out);
    return rc;
}

md_err_t md__evolve_TermProhibited(md__ev_t *e)
{
    return terms_update(e, true);
}

md_err_t md__evolve_TermAllowed(md__ev_t *e)
{
    return terms_update(e, false);
}
