/*
 * decide.c - md_rules_decide(): docs/rules-reference.md "Order of checks" steps 2-6 driven
 * by the command's row in table.c, then the command's own rule (step 7), the
 * implicit acceptance of the agreement (§1.2, §1.4) and, for a rejection, the
 * CommandRejected event. Reads state only.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- step 2: the actor ---------------------------------------------------- */

static int step_actor(md__ctx_t *c, const md__row_t *row)
{
    int rc = md__load(c, "m:", c->cmd->actor, &c->actor, sizeof c->actor, &c->actor_found);
    if (rc != MD_OK)
        return rc;
    if (!c->actor_found) {
        if (row->flags & MD__F_UNREGISTERED)
            return MD_OK;
        return md__reject(c, MD_CODE_MEMBER_NOT_REGISTERED, "actor '%s' is not a registered member",
                          c->cmd->actor);
    }
    if (c->actor.closed && !(row->flags & MD__F_WHILE_CLOSED))
        return md__reject(c, MD_CODE_ACCOUNT_CLOSED, "the account of '%s' is closed",
                          c->cmd->actor);
    if (md__member_suspended(&c->actor, c->now) && !(row->flags & MD__F_WHILE_SUSPENDED))
        return md__reject(c, MD_CODE_ACCOUNT_SUSPENDED,
                          "the account of '%s' is suspended by sanction '%s'", c->cmd->actor,
                          c->actor.slot[MD__SLOT_SUSPEND].sanction_id);
    return MD_OK;
}

/* ---- step 3: maintenance --------------------------------------------------- */

static int step_maintenance(md__ctx_t *c)
{
    const void *val = NULL;
    size_t len = 0;
    bool found = false;
    if (c->actor_found && c->actor.is_operator)
        return MD_OK;
    int rc = md__get_raw(c->st, "wins", &val, &len, &found, c->err);
    if (rc != MD_OK || !found || len < sizeof(md__winlist_t))
        return rc;
    md__winlist_t hdr;
    memcpy(&hdr, val, sizeof hdr);
    const unsigned char *p = (const unsigned char *)val + sizeof hdr;
    for (uint32_t i = 0; i < hdr.n && sizeof hdr + (i + 1) * sizeof(md__winent_t) <= len; i++) {
        md__winent_t w;
        memcpy(&w, p + i * sizeof w, sizeof w);
        if (w.starts_at <= c->now && c->now < w.ends_at) {
            char until[25];
            md_format_time(w.ends_at, until);
            return md__reject(c, MD_CODE_SERVICE_UNAVAILABLE,
                              "maintenance window '%s' until %s; retry later", w.window_id, until);
        }
    }
    return MD_OK;
}

/* ---- step 4: referenced ids -------------------------------------------------- */

static int step_refs(md__ctx_t *c, const md__row_t *row, bool creates)
{
    for (size_t i = 0; i < 3 && row->refs[i].field != NULL; i++) {
        const md__ref_t *r = &row->refs[i];
        const char *id = md__str(c, r->field);
        size_t size;
        bool found;
        if (r->creates != creates || id == NULL)
            continue;
        void *slot = md__ref_slot(c, r->kind, &size);
        int rc = md__load(c, md__ref_prefix(r->kind), id, slot, size, &found);
        if (rc != MD_OK)
            return rc;
        if (!creates && !found)
            return md__reject(c, MD_CODE_NOT_FOUND, "%s '%s' (data.%s) not found",
                              md__ref_word(r->kind), id, r->field);
        if (creates && found)
            return md__reject(c, MD_CODE_ALREADY_EXISTS, "%s '%s' (data.%s) already exists",
                              md__ref_word(r->kind), id, r->field);
    }
    return MD_OK;
}

static int step_target(md__ctx_t *c, const md__row_t *row)
{
    int rc = step_refs(c, row, false);
    if (rc == MD_OK && row->find != NULL)
        rc = row->find(c);
    if (rc == MD_OK)
        rc = step_refs(c, row, true);
    if (rc == MD_OK && row->dup != NULL)
        rc = row->dup(c);
    return rc;
}

/* ---- step 5: authorization ------------------------------------------------------ */

static bool is(const md__ctx_t *c, const char *member)
{
    return strcmp(c->cmd->actor, member) == 0;
}

static bool authorized(const md__ctx_t *c, md__auth_t a)
{
    switch (a) {
    case MD__A_MEMBER: return true;
    case MD__A_SELF: return is(c, md_cmd_str(c->cmd, "member_id"));
    case MD__A_OPERATOR: return c->actor_found && c->actor.is_operator;
    case MD__A_STORE_OWNER: return is(c, c->store.owner);
    case MD__A_PRODUCT_OWNER: return is(c, c->product.owner);
    case MD__A_BUYER: return is(c, c->order.buyer);
    case MD__A_PROVIDER: return is(c, c->order.provider);
    case MD__A_PARTY: return is(c, c->order.buyer) || is(c, c->order.provider);
    case MD__A_COMPLAINANT: return is(c, c->complaint.complainant);
    case MD__A_RESPONDENT: return is(c, c->complaint.respondent);
    case MD__A_COMPLAINT_PARTY:
        return is(c, c->complaint.complainant) || is(c, c->complaint.respondent);
    case MD__A_HOLDER: return is(c, c->voucher.holder);
    case MD__A_CONSENT_OWNER: return is(c, c->consent.subject);
    case MD__A_SANCTIONED: return is(c, c->sanction.party_a) || is(c, c->sanction.party_b);
    }
    return false;
}

static const char *const auth_words[] = {[MD__A_MEMBER] = "a member",
                                         [MD__A_SELF] = "the member being registered",
                                         [MD__A_OPERATOR] = "an operator",
                                         [MD__A_STORE_OWNER] = "the store's owner",
                                         [MD__A_PRODUCT_OWNER] = "the product's owner",
                                         [MD__A_BUYER] = "the order's buyer",
                                         [MD__A_PROVIDER] = "the order's provider",
                                         [MD__A_PARTY] = "the order's buyer or provider",
                                         [MD__A_COMPLAINANT] = "the complainant",
                                         [MD__A_RESPONDENT] = "the respondent",
                                         [MD__A_COMPLAINT_PARTY] =
                                             "the complainant or the respondent",
                                         [MD__A_HOLDER] = "the voucher's holder",
                                         [MD__A_CONSENT_OWNER] = "the consent's owner",
                                         [MD__A_SANCTIONED] = "the sanctioned member"};

const char *md__auth_word(md__auth_t a)
{
    size_t n = sizeof auth_words / sizeof auth_words[0];
    return (size_t)a < n ? auth_words[a] : NULL;
}

static int step_auth(md__ctx_t *c, const md__row_t *row)
{
    if (authorized(c, row->auth))
        return MD_OK;
    return md__reject(c, MD_CODE_FORBIDDEN, "%s is allowed only to %s", c->cmd->spec->name,
                      auth_words[row->auth]);
}

/* ---- step 6: expected_version --------------------------------------------------- */

static int step_version(md__ctx_t *c)
{
    char stream[MD_STREAM_MAX + 1];
    uint64_t v = 0;
    if (!c->cmd->has_expected_version || !md_cmd_target_stream(c->cmd, stream, sizeof stream))
        return MD_OK;
    md_err_t rc = c->st->stream_version(c->st->ctx, stream, &v);
    if (rc != MD_OK)
        return md_error_set(c->err, rc, "stream version of '%s' failed", stream);
    if ((uint64_t)c->cmd->expected_version != v)
        return md__reject(c, MD_CODE_VERSION_CONFLICT,
                          "expected_version %lld but stream '%s' is at version %llu",
                          (long long)c->cmd->expected_version, stream, (unsigned long long)v);
    return MD_OK;
}

/* ---- implicit acceptance (§1.2, §1.4) -------------------------------------------- */

static void implicit_acceptance(md__ctx_t *c, const md__row_t *row)
{
    int64_t cur = c->plat.agreement_version;
    if (!c->actor_found || c->actor.is_operator || (row->flags & MD__F_NO_IMPLICIT) || cur < 1 ||
        c->actor.accepted_version >= cur)
        return;
    bool earlier = c->actor.accepted_version > 0 || c->actor.declined_version == cur;
    md_data_t *d = md__emit(c, "AgreementAccepted", "member", c->cmd->actor);
    md_data_str(d, "member_id", c->cmd->actor);
    md_data_int(d, "version", cur);
    md_data_str(d, "mode", earlier ? "continued_use" : "use");
    /* It goes first: move it in front of the command's own events. */
    md_decision_t *dec = c->d;
    md_new_event_t tmp = dec->events[dec->n_events - 1];
    memmove(&dec->events[1], &dec->events[0], (dec->n_events - 1) * sizeof tmp);
    dec->events[0] = tmp;
}

static int run_steps(md__ctx_t *c)
{
    const md__row_t *row = md__row_of(c->cmd->spec->type);
    bool found;
    int rc = md__get(c->st, "plat", 4, &c->plat, sizeof c->plat, &found, c->err);
    if (rc == MD_OK)
        rc = step_actor(c, row);
    if (rc == MD_OK)
        rc = step_maintenance(c);
    if (rc == MD_OK)
        rc = step_target(c, row);
    if (rc == MD_OK)
        rc = step_auth(c, row);
    if (rc == MD_OK)
        rc = step_version(c);
    if (rc == MD_OK)
        rc = row->rule(c);
    if (rc == MD_OK) {
        c->d->accepted = true;
        implicit_acceptance(c, row);
    }
    return rc;
}

/* ---- rejections -------------------------------------------------------------------- */

/* Replaces whatever was emitted by the one CommandRejected event. */
static void rejection_event(md__ctx_t *c)
{
    md_decision_t *d = c->d;
    d->n_events = 0;
    d->arena_len = 0;
    md_data_t *data = md__emit(c, "CommandRejected", "rejections", NULL);
    md_data_str(data, "code", d->code_name);
    if (d->malformed) {
        md_hex(c->cmd->sha256, sizeof c->cmd->sha256, d->sha_hex);
        md_data_str(data, "sha256", d->sha_hex);
        return;
    }
    md_data_str(data, "clause", d->clause);
    md_data_str(data, "message", d->message);
    md_data_str(data, "command_type", d->command_type);
    md_data_bool(data, "retryable", d->retryable);
}

static void decode_rejection(md__ctx_t *c)
{
    const md_command_t *cmd = c->cmd;
    if (cmd->status == MD_DECODE_MALFORMED) {
        c->d->malformed = true;
        md__reject(c, MD_CODE_MALFORMED, "malformed input: %s", cmd->detail);
        return;
    }
    md_code_t code = md_code_find(cmd->reject_code != NULL ? cmd->reject_code : "");
    if (code == MD_CODE_NONE)
        code = MD_CODE_INVALID_FIELD;
    md__reject(c, code, "%s", cmd->reject_msg);
}

/* The events are not cleared: md__emit initialises each one it adds (stream,
 * type, empty data whose fields are zeroed as they are added); clearing all
 * MD_DECISION_EVENTS_MAX of them (88 KB) per command was ~5% of the engine. */
static void decision_clear(md_decision_t *d)
{
    memset(d, 0, offsetof(md_decision_t, events));
    d->arena_len = 0;
    d->code = MD_CODE_NONE;
    d->code_name = "";
    d->sha_hex[0] = '\0';
}

md_err_t md_rules_decide(const md_state_t *st, const md_command_t *cmd, int64_t now,
                         md_decision_t *d, md_error_t *err)
{
    md__ctx_t c;
    memset(&c, 0, sizeof c);
    c.st = st;
    c.cmd = cmd;
    c.now = now;
    c.d = d;
    c.err = err;
    decision_clear(d);
    d->command_type = cmd->spec != NULL ? cmd->spec->name : NULL;
    if (cmd->status != MD_DECODE_OK) {
        decode_rejection(&c);
        rejection_event(&c);
        return MD_OK;
    }
    int rc = run_steps(&c);
    if (rc < 0)
        return (md_err_t)rc;
    if (rc == MD__REJECT)
        rejection_event(&c);
    return MD_OK;
}

/* ---- bootstrap ---------------------------------------------------------------------- */

md_err_t md_rules_bootstrap(const md_state_t *st, const char *operator_id, int64_t now,
                            md_decision_t *d, md_error_t *err)
{
    md__ctx_t c;
    md__member_t m;
    bool found;
    (void)now;
    decision_clear(d);
    if (operator_id == NULL || !md_valid_id(operator_id, strlen(operator_id)))
        return md_error_set(err, MD_EINVAL, "operator id '%s' is not a valid id",
                            operator_id ? operator_id : "");
    memset(&c, 0, sizeof c);
    c.st = st;
    c.d = d;
    c.err = err;
    int rc = md__load(&c, "m:", operator_id, &m, sizeof m, &found);
    if (rc != MD_OK)
        return (md_err_t)rc;
    if (found)
        return md_error_set(err, MD_EEXIST, "member '%s' exists already", operator_id);
    const char *id = md__keep(d, operator_id);
    md_data_t *data = md__emit(&c, "MemberRegistered", "member", id);
    md_data_str(data, "member_id", id);
    md_data_str(data, "kind", "organization");
    md_data_str(data, "name", "marketplace operator");
    md_data_nil(data, "identity_hash");
    md_data_nil(data, "email");
    md_data_nil(data, "phone");
    data = md__emit(&c, "OperatorGranted", "member", id);
    md_data_str(data, "member_id", id);
    d->accepted = true;
    return MD_OK;
}
