/*
 * catalog.c - stores and products (§2.1, §2.4, §3.1.1, §3.2.2, §3.3.3,
 * §4.1.4, §4.2.3, §4.2.6): the rules of step 7 and their evolution.
 */
#include <string.h>

#include "internal.h"

/* A store is open when its owner has not closed it and no close_store
 * sanction is in effect (Fine points). */
static bool store_open(const md__store_t *s, int64_t now)
{
    return !s->closed_by_owner && !md__slot_active(&s->closed, now);
}

static int require_store_open(md__ctx_t *c, const md__store_t *s, const char *id)
{
    if (store_open(s, c->now))
        return MD_OK;
    return md__reject(c, MD_CODE_STORE_CLOSED, "store '%s' is closed%s", id,
                      md__slot_active(&s->closed, c->now) ? " by sanction" : "");
}

static int require_category_live(md__ctx_t *c, const md__category_t *cat, const char *id)
{
    if (!cat->retired)
        return MD_OK;
    return md__reject(c, MD_CODE_CATEGORY_RETIRED, "category '%s' is retired", id);
}

/* ---- stores ------------------------------------------------------------------ */

static void emit_store(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "store", md__str(c, "store_id"));
    md__put_str(c, d, "store_id");
    md_data_str(d, "owner", c->cmd->actor);
    if (md_cmd_has(c->cmd, "name"))
        md__put_str(c, d, "name");
}

int md__rule_open_store(md__ctx_t *c)
{
    if (c->actor.provider != MD__PROV_APPROVED)
        return md__reject(c, MD_CODE_NOT_A_PROVIDER, "'%s' is not an approved provider",
                          c->cmd->actor);
    emit_store(c, "StoreOpened");
    return MD_OK;
}

int md__rule_close_store(md__ctx_t *c)
{
    int rc = require_store_open(c, &c->store, md__str(c, "store_id"));
    if (rc == MD_OK)
        emit_store(c, "StoreClosed");
    return rc;
}

int md__rule_reopen_store(md__ctx_t *c)
{
    const char *id = md__str(c, "store_id");
    if (md__slot_active(&c->store.closed, c->now))
        return md__reject(c, MD_CODE_SANCTIONED, "store '%s' is closed by sanction '%s'", id,
                          c->store.closed.sanction_id);
    if (!c->store.closed_by_owner)
        return md__reject(c, MD_CODE_STORE_STATE, "store '%s' is not closed", id);
    emit_store(c, "StoreReopened");
    return MD_OK;
}

/* ---- products -------------------------------------------------------------------- */

static int require_license(md__ctx_t *c, const char *category_id)
{
    char key[MD__KEY_MAX];
    md__flag_t f;
    bool found;
    if (!c->category.restricted)
        return MD_OK;
    size_t n = md__key3(key, "l:", c->cmd->actor, category_id, NULL);
    int rc = md__get(c->st, key, n, &f, sizeof f, &found, c->err);
    if (rc == MD_OK && !(found && f.on))
        return md__reject(c, MD_CODE_PRODUCT_RESTRICTED,
                          "category '%s' is restricted and '%s' holds no licence for it",
                          category_id, c->cmd->actor);
    return rc;
}

int md__rule_publish_product(md__ctx_t *c)
{
    int rc = require_store_open(c, &c->store, md__str(c, "store_id"));
    if (rc == MD_OK)
        rc = require_category_live(c, &c->category, md__str(c, "category_id"));
    if (rc == MD_OK)
        rc = require_license(c, md__str(c, "category_id"));
    if (rc == MD_OK)
        rc = md__check_content(c, "title");
    if (rc != MD_OK)
        return rc;
    md_data_t *d = md__emit(c, "ProductPublished", "product", md__str(c, "product_id"));
    md__put_str(c, d, "product_id");
    md__put_str(c, d, "store_id");
    md_data_str(d, "owner", c->cmd->actor);
    md__put_str(c, d, "category_id");
    md__put_str(c, d, "kind");
    md__put_str(c, d, "title");
    md__put_int(c, d, "price");
    md_data_str(d, "status", c->category.requires_review ? "pending_review" : "listed");
    return MD_OK;
}

static int product_state(md__ctx_t *c, const char *want)
{
    return md__reject(c, MD_CODE_PRODUCT_STATE, "product '%s' is %s, not %s",
                      md__str(c, "product_id"), md__product_statuses[c->product.status], want);
}

int md__rule_review_product(md__ctx_t *c)
{
    if (c->product.status != MD__PS_PENDING)
        return product_state(c, "pending_review");
    bool approve = md__int(c, "approve") != 0;
    md_data_t *d = md__emit(c, approve ? "ProductApproved" : "ProductDenied", "product",
                            md__str(c, "product_id"));
    md__put_str(c, d, "product_id");
    /* Approved while a delist_product sanction is in effect: the product stays
     * delisted (not orderable) and its owner relists it once the sanction ends. */
    bool held = approve && md__slot_active(&c->product.delisted, c->now);
    md_data_str(d, "status", !approve ? "denied" : held ? "delisted" : "listed");
    if (!approve)
        md__put_str(c, d, "reason");
    return MD_OK;
}

int md__rule_change_price(md__ctx_t *c)
{
    if (c->product.status == MD__PS_REMOVED)
        return md__reject(c, MD_CODE_PRODUCT_STATE, "product '%s' is removed",
                          md__str(c, "product_id"));
    md_data_t *d = md__emit(c, "PriceChanged", "product", md__str(c, "product_id"));
    md__put_str(c, d, "product_id");
    md__put_int(c, d, "price");
    md_data_int(d, "previous_price", c->product.price);
    return MD_OK;
}

static md_data_t *emit_product(md__ctx_t *c, const char *type)
{
    md_data_t *d = md__emit(c, type, "product", md__str(c, "product_id"));
    md__put_str(c, d, "product_id");
    return d;
}

int md__rule_delist_product(md__ctx_t *c)
{
    if (c->product.status != MD__PS_LISTED)
        return product_state(c, "listed");
    md_data_str(emit_product(c, "ProductDelisted"), "reason", "owner");
    return MD_OK;
}

int md__rule_relist_product(md__ctx_t *c)
{
    const md__product_t *p = &c->product;
    if (md__slot_active(&p->delisted, c->now))
        return md__reject(c, MD_CODE_SANCTIONED, "product '%s' is delisted by sanction '%s'",
                          md__str(c, "product_id"), p->delisted.sanction_id);
    if (p->status != MD__PS_DELISTED)
        return product_state(c, "delisted");
    bool found;
    int rc = md__load(c, "s:", p->store_id, &c->store, sizeof c->store, &found);
    if (rc == MD_OK)
        rc = require_store_open(c, &c->store, p->store_id);
    if (rc == MD_OK)
        rc = md__load(c, "c:", p->category_id, &c->category, sizeof c->category, &found);
    if (rc == MD_OK)
        rc = require_category_live(c, &c->category, p->category_id);
    if (rc == MD_OK)
        rc = require_license(c, p->category_id);
    if (rc == MD_OK)
        md_data_str(emit_product(c, "ProductRelisted"), "status",
                    p->delisted_pending ? "pending_review" : "listed");
    return rc;
}

/* ---- evolve ------------------------------------------------------------------------ */

md_err_t md__evolve_StoreOpened(md__ev_t *e)
{
    md__store_t s;
    char id[MD_ID_MAX + 1];
    memset(&s, 0, sizeof s);
    md_err_t rc = md__ev_str(e, "store_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "owner", s.owner, sizeof s.owner);
    return rc == MD_OK ? md__ev_save(e, "s:", id, &s, sizeof s) : rc;
}

static md_err_t store_closed_by_owner(md__ev_t *e, uint8_t closed)
{
    md__store_t s;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "store_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "s:", id, &s, sizeof s);
    if (rc != MD_OK)
        return rc;
    s.closed_by_owner = closed;
    return md__ev_save(e, "s:", id, &s, sizeof s);
}

md_err_t md__evolve_StoreClosed(md__ev_t *e)
{
    return store_closed_by_owner(e, 1);
}

md_err_t md__evolve_StoreReopened(md__ev_t *e)
{
    return store_closed_by_owner(e, 0);
}

static md_err_t read_vocab(md__ev_t *e, const char *key, const char *const *list, uint8_t *out)
{
    char s[32];
    md_err_t rc = md__ev_str(e, key, s, sizeof s);
    int i = rc == MD_OK ? md__vocab_index(list, s) : -1;
    if (rc == MD_OK && i < 0)
        return md_error_set(e->err, MD_ECORRUPT, "event %s: bad %s '%s'", e->ev->type, key, s);
    *out = (uint8_t)(i < 0 ? 0 : i);
    return rc;
}

md_err_t md__evolve_ProductPublished(md__ev_t *e)
{
    md__product_t p;
    char id[MD_ID_MAX + 1];
    memset(&p, 0, sizeof p);
    md_err_t rc = md__ev_str(e, "product_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "store_id", p.store_id, sizeof p.store_id);
    if (rc == MD_OK)
        rc = md__ev_str(e, "owner", p.owner, sizeof p.owner);
    if (rc == MD_OK)
        rc = md__ev_str(e, "category_id", p.category_id, sizeof p.category_id);
    if (rc == MD_OK)
        rc = md__ev_int(e, "price", &p.price);
    if (rc == MD_OK)
        rc = read_vocab(e, "kind", md__product_kinds, &p.kind);
    if (rc == MD_OK)
        rc = read_vocab(e, "status", md__product_statuses, &p.status);
    if (rc == MD_OK)
        rc = md__ev_save(e, "P:", id, &p, sizeof p);
    return rc == MD_OK ? md__index_product(e, &p, id) : rc;
}

/* Sets the product's status (and price when the event carries one). */
static md_err_t product_update(md__ev_t *e, int status)
{
    md__product_t p;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "product_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "P:", id, &p, sizeof p);
    if (rc == MD_OK && status < 0)
        rc = md__ev_int(e, "price", &p.price);
    if (rc != MD_OK)
        return rc;
    if (status >= 0)
        p.status = (uint8_t)status;
    return md__ev_save(e, "P:", id, &p, sizeof p);
}

md_err_t md__evolve_ProductApproved(md__ev_t *e)
{
    char status[16];
    md_err_t rc = md__ev_str(e, "status", status, sizeof status);
    if (rc != MD_OK)
        return rc;
    return product_update(e, strcmp(status, "delisted") == 0 ? MD__PS_DELISTED : MD__PS_LISTED);
}

md_err_t md__evolve_ProductDenied(md__ev_t *e)
{
    return product_update(e, MD__PS_DENIED);
}

md_err_t md__evolve_PriceChanged(md__ev_t *e)
{
    return product_update(e, -1);
}

/* Delisted while pending_review (a revoked licence): relisting needs review again. */
md_err_t md__evolve_ProductDelisted(md__ev_t *e)
{
    md__product_t p;
    char id[MD_ID_MAX + 1];
    md_err_t rc = md__ev_str(e, "product_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_load(e, "P:", id, &p, sizeof p);
    if (rc != MD_OK)
        return rc;
    p.delisted_pending = p.status == MD__PS_PENDING;
    p.status = MD__PS_DELISTED;
    return md__ev_save(e, "P:", id, &p, sizeof p);
}

md_err_t md__evolve_ProductRelisted(md__ev_t *e)
{
    md__product_t p;
    char id[MD_ID_MAX + 1], status[16];
    md_err_t rc = md__ev_str(e, "product_id", id, sizeof id);
    if (rc == MD_OK)
        rc = md__ev_str_opt(e, "status", status, sizeof status);
    if (rc == MD_OK)
        rc = md__ev_load(e, "P:", id, &p, sizeof p);
    if (rc != MD_OK)
        return rc;
    p.status = strcmp(status, "pending_review") == 0 ? MD__PS_PENDING : MD__PS_LISTED;
    p.delisted_pending = 0;
    return md__ev_save(e, "P:", id, &p, sizeof p);
}
