/*
 * privacy.c - consents and disclosures of personal data (§3.3.4, §6) and
 * maintenance windows (§3.4.2): step-7 rules and evolution.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- consents ---------------------------------------------------------------- */

static md_data_t *emit_consent(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "consent", md__str(c, "consent_id"));
    md__put_str(c, d, "consent_id");
    return d;
}

int md__rule_grant_consent(md__ctx_t *c)
{
    md_data_t *d = emit_consent(c, "ConsentGranted");
    md_data_str(d, "subject", c->cmd->actor);
    md__put_str(c, d, "recipient");
    md__put_str(c, d, "scope");
    return MD_OK;
}

int md__rule_revoke_consent(md__ctx_t *c)
{
    const md__consent_t *k = &c->consent;
    if (k->revoked)
        return md__reject(c, MD_CODE_CONSENT_STATE, "consent '%s' is already revoked",
                          md__str(c, "consent_id"));
    md_data_t *d = emit_consent(c, "ConsentRevoked");
    md_data_str(d, "subject", md__keep(c->d, k->subject));
    md_data_str(d, "recipient", md__keep(c->d, k->recipient));
    md_data_str(d, "scope", md__scopes[k->scope]);
    return MD_OK;
}

/* Active consents of subject for recipient with exactly this scope. */
static int consent_count(md__ctx_t *c, int scope, int64_t *n)
{
    char key[MD__KEY_MAX];
    md__count_t cnt;
    bool found;
    size_t len =
        md__key3(key, "K:", md__str(c, "subject"), md__scopes[scope], md__str(c, "recipient"));
    int rc = md__get(c->st, key, len, &cnt, sizeof cnt, &found, c->err);
    *n = found ? cnt.n : 0;
    return rc;
}

/* basis consent: a consent for the recipient covering the scope ("all" covers all). */
static int consent_on_record(md__ctx_t *c)
{
    int64_t exact = 0, all = 0;
    int scope = (int)md__int(c, "scope");
    int rc = consent_count(c, scope, &exact);
    if (rc == MD_OK && scope != MD__SCOPE_ALL)
        rc = consent_count(c, MD__SCOPE_ALL, &all);
    if (rc == MD_OK && exact + all == 0)
        return md__reject(c, MD_CODE_CONSENT_REQUIRED,
                          "'%s' has no active consent for recipient '%s' covering scope %s",
                          md__str(c, "subject"), md__str(c, "recipient"), md__scopes[scope]);
    return rc;
}

/* The clause each legal basis of a disclosure rests on (docs/rules-reference.md,
 * §6.2, §3.3.4). */
static const char *const basis_clause[] = {
    [MD__B_CONSENT] = "6.2.1",        [MD__B_LAW] = "6.2.2",     [MD__B_AUTHORITY] = "3.3.4",
    [MD__B_VIOLATION] = "6.2.3",      [MD__B_SERVICE] = "6.2.4", [MD__B_POLICY] = "6.2.5",
    [MD__B_IP_INFRINGEMENT] = "3.3.4"};

int md__rule_disclose_records(md__ctx_t *c)
{
    int64_t basis = md__int(c, "basis");
    int rc = basis == MD__B_CONSENT ? consent_on_record(c) : MD_OK;
    if (rc != MD_OK)
        return rc;
    if (basis == MD__B_VIOLATION && c->member.sanctions == 0)
        return md__reject(c, MD_CODE_NO_VIOLATION_ON_RECORD, "no sanction was ever applied to '%s'",
                          md__str(c, "subject"));
    md_data_t *d = md__emit(c, "RecordsDisclosed", "disclosure", md__str(c, "disclosure_id"));
    md__put_str(c, d, "disclosure_id");
    md__put_str(c, d, "subject");
    md__put_str(c, d, "recipient");
    md__put_str(c, d, "basis");
    md__put_str(c, d, "scope");
    md__put_str(c, d, "reference");
    md_data_str(d, "clause", basis_clause[basis]);
    return MD_OK;
}

/* ---- maintenance ------------------------------------------------------------------ */

int md__find_window(md__ctx_t *c)
{
    if (!c->window.cancelled)
        return MD_OK;
    return md__reject(c, MD_CODE_NOT_FOUND, "maintenance window '%s' is already cancelled",
                      md__str(c, "window_id"));
}

int md__rule_schedule_maintenance(md__ctx_t *c)
{
    md_data_t *d = md__emit(c, "MaintenanceScheduled", "maintenance", md__str(c, "window_id"));
    md__put_str(c, d, "window_id");
    md__put_int(c, d, "starts_at");
    md__put_int(c, d, "ends_at");
    return MD_OK;
}

int md__rule_cancel_maintenance(md__ctx_t *c)
{
    md_data_t *d = md__emit(c, "MaintenanceCancelled", "maintenance", md__str(c, "window_id"));
    md__put_str(c, d, "window_id");
    return MD_OK;
}

/* ---- evolve ------------------------------------------------------------------------ */

static md_err_t consent_count_add(md__ev_t *e, const md__consent_t *k, int64_t delta)
{
    char key[MD__KEY_MAX];
    md__count_t cnt;
    bool found;
    size_t len = md__key3(key, "K:", k->subject, md__scopes[k->scope], k->recipient);
    md_err_t rc = md__get(e->st, key, len, &cnt, sizeof cnt, &found, e->err);
    if (rc != MD_OK)
        return rc;
    cnt.n += delta;
    return md__put(e->st, key, len, &cnt, sizeof cnt, e->err);
}

md_err_t md__evolve_ConsentGranted(md__ev_t *e)
{
    md__consent_t k;
    char id[MD_ID_MAX + 1], scope[16];
    memset(&k, 0, sizeof k);
    md_err_t rc = md__ev_str(e, "consent_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "subject", k.subject, sizeof k.subject);
    if (rc == MD_OK)
        rc = md__ev_str(e, "recipient", k.recipient, sizeof k.recipient);
    if (rc == MD_OK)
        rc = md__ev_str(e, "scope", scope, sizeof scope);
    if (rc != MD_OK)
        return rc;
    int s = md__vocab_index(md__scopes, scope);
    k.scope = (uint8_t)(s < 0 ? 0 : s);
    rc = md__ev_save(e, "k:", id, &k, sizeof k);
    return rc == MD_OK ? consent_count_add(e, &k, 1) : rc;
}

md_err_t md__evolve_ConsentRevoked(md__ev_t *e)
{
    md__consent_t k;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "consent_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "k:", id, &k, sizeof k);
    if (rc != MD_OK || k.revoked)
        return rc;
    k.revoked = 1;
    rc = md__ev_save(e, "k:", id, &k, sizeof k);
    return rc == MD_OK ? consent_count_add(e, &k, -1) : rc;
}

md_err_t md__evolve_RecordsDisclosed(md__ev_t *e)
{
    char id[MD_ID_MAX + 1];
    md__flag_t f = {.fmt = 0, .on = 1};
    md_err_t rc = md__ev_str(e, "disclosure_id", id, sizeof id);
    return rc == MD_OK ? md__ev_save(e, "d:", id, &f, sizeof f) : rc;
}

/*
 * Rewrites the "wins" list (windows not cancelled) without window id, and
 * with `add` appended when not NULL. Ended windows stay listed: with
 * clock = command, time may go back, so only cancellation removes one.
 */
static md_err_t winlist_update(md__ev_t *e, const char *id, const md__winent_t *add)
{
    const void *val;
    size_t len = 0;
    bool found;
    md__winlist_t hdr = {MD__REC_FMT, 0};
    md_buf_t out;
    md_err_t rc = md__get_raw(e->st, "wins", &val, &len, &found, e->err);
    if (rc != MD_OK)
        return rc;
    md_buf_init(&out);
    md_buf_append(&out, &hdr, sizeof hdr);
    for (size_t off = sizeof hdr; found && off + sizeof(md__winent_t) <= len;
         off += sizeof(md__winent_t)) {
        md__winent_t w;
        memcpy(&w, (const char *)val + off, sizeof w);
        if (strcmp(w.window_id, id) != 0) {
            md_buf_append(&out, &w, sizeof w);
            hdr.n++;
        }
    }
    if (add != NULL) {
        md_buf_append(&out, add, sizeof *add);
        hdr.n++;
    }
    memcpy(out.p, &hdr, sizeof hdr);
    rc = md__put_raw(e->st, "wins", out.p, out.len, e->err);
    md_buf_release(&out);
    return rc;
}

md_err_t md__evolve_MaintenanceScheduled(md__ev_t *e)
{
    md__window_t w;
    md__winent_t ent;
    memset(&w, 0, sizeof w);
    memset(&ent, 0, sizeof ent);
    md_err_t rc = md__ev_str(e, "window_id", ent.window_id, sizeof ent.window_id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "starts_at", &w.starts_at);
    if (rc == MD_OK)
        rc = md__ev_int(e, "ends_at", &w.ends_at);
    if (rc == MD_OK)
        rc = md__ev_save(e, "w:", ent.window_id, &w, sizeof w);
    if (rc != MD_OK)
        return rc;
    ent.starts_at = w.starts_at;
    ent.ends_at = w.ends_at;
    return winlist_update(e, ent.window_id, &ent);
}

md_err_t md__evolve_MaintenanceCancelled(md__ev_t *e)
{
    md__window_t w;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "window_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "w:", id, &w, sizeof w);
    if (rc != MD_OK)
        return rc;
    w.cancelled = 1;
    rc = md__ev_save(e, "w:", id, &w, sizeof w);
    return rc == MD_OK ? winlist_update(e, id, NULL) : rc;
}
