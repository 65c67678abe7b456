/*
 * proj.c - the projections handle: opening the databases, catching up at
 * start-up, the engine hook, applying one event to every projection, the
 * `get` dispatch and stats.
 */
#include <stdlib.h>
#include <string.h>

#include "pj.h"

static const char *const db_names[PJ_DB_COUNT_] = {
    "p_orders",      "p_order_idx", "p_accounts", "p_account_idx", "p_audit",
    "p_audit_actor", "p_sales",     "p_records",  "p_rejections",  "p_meta",
};

/* Which databases make up each projection (digest and stats order). */
static const pj_db_t proj_dbs[MD_PROJ_COUNT_][2] = {
    [MD_PROJ_ORDERS] = {PJ_DB_ORDERS, PJ_DB_ORDER_IDX},
    [MD_PROJ_ACCOUNTS] = {PJ_DB_ACCOUNTS, PJ_DB_ACCOUNT_IDX},
    [MD_PROJ_AUDIT] = {PJ_DB_AUDIT, PJ_DB_AUDIT_ACTOR},
    [MD_PROJ_SALES] = {PJ_DB_SALES, PJ_DB_REJECTIONS},
    [MD_PROJ_RECORDS] = {PJ_DB_RECORDS, PJ_DB_COUNT_},
};

static const char *const proj_names[MD_PROJ_COUNT_] = {
    "orders", "accounts", "audit", "sales", "records",
};

/* Every projection sees every event, in this order. */
static const pj_fn appliers[MD_PROJ_COUNT_] = {
    md__pj_orders_apply, md__pj_accounts_apply, md__pj_audit_apply,
    md__pj_sales_apply,  md__pj_records_apply,
};

const char *md_proj_name(md_proj_id_t id)
{
    return id >= 0 && id < MD_PROJ_COUNT_ ? proj_names[id] : "";
}

size_t md__pj_proj_dbs(md_proj_id_t id, pj_db_t out[2])
{
    size_t n = 0;
    for (size_t i = 0; i < 2; i++)
        if (proj_dbs[id][i] != PJ_DB_COUNT_)
            out[n++] = proj_dbs[id][i];
    return n;
}

const char *md__pj_db_name(pj_db_t db)
{
    return db_names[db];
}

/* ---- meta: the last applied seq and the format --------------------------------- */

static md_err_t meta_get(MDB_txn *txn, md_proj_t *p, const char *name, uint64_t *v, md_error_t *err)
{
    MDB_val k = {strlen(name), (void *)name}, val;
    int rc = mdb_get(txn, p->dbi[PJ_DB_META], &k, &val);
    *v = 0;
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get projection meta");
    if (val.mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "projection meta '%s' has %zu bytes", name,
                            val.mv_size);
    *v = md__pj_get_be64(val.mv_data);
    return MD_OK;
}

static md_err_t meta_put(MDB_txn *txn, md_proj_t *p, const char *name, uint64_t v, md_error_t *err)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
    MDB_val k = {strlen(name), (void *)name}, val = {8, b};
    return md_store_err(mdb_put(txn, p->dbi[PJ_DB_META], &k, &val, 0), err, "put projection meta");
}

md_err_t md__pj_meta_set(md_proj_t *p, md_txn_t *t, uint64_t seq, md_error_t *err)
{
    md_err_t rc = meta_put(md_txn_mdb(t), p, "format", PJ_FORMAT, err);
    return rc == MD_OK ? meta_put(md_txn_mdb(t), p, "seq", seq, err) : rc;
}

md_err_t md_proj_seq(md_proj_t *p, md_txn_t *t, uint64_t *seq, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK && (rc = meta_get(md_txn_mdb(t), p, "seq", seq, err)) == MD_ENOTFOUND)
        rc = MD_OK;
    md_txn_end(own);
    return rc;
}

/* ---- applying one event ---------------------------------------------------------- */

/* Runs every projection over @p ev (no seq bookkeeping). */
md_err_t md__pj_apply_one(md_proj_t *p, md_txn_t *t, const md_event_t *ev, md_error_t *err)
{
    pj_ctx_t c;
    c.p = p;
    c.t = t;
    c.txn = md_txn_mdb(t);
    c.ev = ev;
    c.err = err;
    c.type = md__pj_type(ev->type);
    if (md__pj_fields_parse(&c.f, ev->data, ev->data_len) != 0)
        return md_error_set(err, MD_ECODEC, "event %llu: data is not a flat msgpack map",
                            (unsigned long long)ev->seq);
    for (int i = 0; i < MD_PROJ_COUNT_; i++) {
        md_err_t rc = p->lanes & (1u << i) ? appliers[i](&c) : MD_OK;
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* Applies the events the projections missed (appended without the hook). */
static md_err_t fill_gap(md_proj_t *p, md_txn_t *t, uint64_t from, uint64_t to, md_error_t *err)
{
    for (uint64_t s = from; s <= to; s++) {
        md_event_t ev;
        md_err_t rc = md_txn_event(t, s, &ev, NULL, NULL, err);
        if (rc == MD_ENOTFOUND)
            return md_error_set(err, MD_ECORRUPT, "event %llu missing from the log",
                                (unsigned long long)s);
        if (rc == MD_OK)
            rc = md__pj_apply_one(p, t, &ev, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* The last applied seq: the batch's (in an engine batch), else meta "seq". */
static md_err_t last_seq(md_proj_t *p, md_txn_t *t, uint64_t *last, md_error_t *err)
{
    if (p->batch) {
        *last = p->batch_seq;
        return MD_OK;
    }
    md_err_t rc = meta_get(md_txn_mdb(t), p, "seq", last, err);
    return rc == MD_ENOTFOUND ? MD_OK : rc;
}

md_err_t md_proj_apply(md_proj_t *p, md_txn_t *t, const md_event_t *ev, md_error_t *err)
{
    uint64_t last = 0;
    if (p == NULL || t == NULL || ev == NULL)
        return md_error_set(err, MD_EINVAL, "md_proj_apply: no handle, transaction or event");
    md_err_t rc = last_seq(p, t, &last, err);
    if (rc != MD_OK)
        return rc;
    if (ev->seq != 0 && ev->seq <= last)
        return MD_OK; /* applied already */
    if (ev->seq > last + 1 && (rc = fill_gap(p, t, last + 1, ev->seq - 1, err)) != MD_OK)
        return rc;
    if ((rc = md__pj_apply_one(p, t, ev, err)) != MD_OK)
        return rc;
    if (p->batch) {
        p->batch_seq = ev->seq;
        return md__pj_bulk_step(p, md_txn_mdb(t), ev->seq, err);
    }
    if (rc == MD_OK && last == 0)
        rc = meta_put(md_txn_mdb(t), p, "format", PJ_FORMAT, err);
    return rc == MD_OK ? meta_put(md_txn_mdb(t), p, "seq", ev->seq, err) : rc;
}

/*
 * An engine batch (md_engine_add_batch_hooks): its events are applied in bulk
 * mode (bulk.c), so the records a batch touches are read once and written
 * once, sorted by key, at its end, with meta "seq" written once instead of per
 * event. Everything still happens in the batch's write transaction. A batch
 * that does not reach its end (an error, a retry after MDB_MAP_FULL) leaves
 * bulk mode at the next begin, which drops what the aborted one held.
 */
md_err_t md_proj_batch_begin(md_txn_t *t, void *proj, md_error_t *err)
{
    md_proj_t *p = proj;
    if (p->batch) { /* the previous batch did not end: leave its bulk mode */
        p->batch = false;
        p->bulk_max = p->saved_bulk_max, p->spill_max = p->saved_spill_max;
        (void)md__pj_bulk_end(p, NULL, false, NULL);
    }
    md_err_t rc = meta_get(md_txn_mdb(t), p, "seq", &p->batch_meta, err);
    if (rc != MD_OK && rc != MD_ENOTFOUND)
        return rc;
    p->batch_seq = p->batch_meta;
    size_t max = p->bulk_max, smax = p->spill_max;
    p->bulk_max = PJ_LIVE_BULK_MAX;
    p->spill_max = PJ_LIVE_SPILL_MAX;
    rc = md__pj_bulk_begin(p, md_txn_mdb(t), err);
    p->saved_bulk_max = max, p->saved_spill_max = smax; /* a replay on this handle keeps its own */
    if (rc != MD_OK) {
        p->bulk_max = max, p->spill_max = smax;
        return rc;
    }
    p->batch = true;
    return MD_OK;
}

md_err_t md_proj_batch_end(md_txn_t *t, void *proj, md_error_t *err)
{
    md_proj_t *p = proj;
    if (!p->batch)
        return MD_OK;
    p->batch = false;
    md_err_t rc = md__pj_bulk_end(p, md_txn_mdb(t), true, err);
    p->bulk_max = p->saved_bulk_max, p->spill_max = p->saved_spill_max;
    if (rc != MD_OK || p->batch_seq == p->batch_meta)
        return rc;
    if (p->batch_meta == 0)
        rc = meta_put(md_txn_mdb(t), p, "format", PJ_FORMAT, err);
    return rc == MD_OK ? meta_put(md_txn_mdb(t), p, "seq", p->batch_seq, err) : rc;
}

/* ---- lifecycle ---------------------------------------------------------------------- */

static md_err_t open_dbs(md_proj_t *p, md_error_t *err)
{
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        md_error_t e = {0};
        md_err_t rc = md_store_dbi(p->store, db_names[i], 0, &p->dbi[i], &e);
        if (rc == MD_ENOTFOUND)
            return md_error_set(err, MD_ENOTFOUND,
                                "store has no projections (database '%s'); run "
                                "`marketctl rebuild`",
                                db_names[i]);
        if (rc != MD_OK)
            return md_error_set(err, rc, "%s", e.msg);
    }
    return MD_OK;
}

md_err_t md_proj_open(md_store_t *store, md_proj_t **out, md_error_t *err)
{
    return md__pj_open(store, store, out, err);
}

md_err_t md__pj_open(md_store_t *log, md_store_t *store, md_proj_t **out, md_error_t *err)
{
    if (store == NULL || log == NULL || out == NULL)
        return md_error_set(err, MD_EINVAL, "md_proj_open: no store");
    md_proj_t *p = md_calloc(1, sizeof *p);
    p->store = store;
    p->evlog = log;
    md_buf_init(&p->rec);
    md_buf_init(&p->spill);
    md_buf_init(&p->log);
    p->lanes = ~0u;
    md_err_t rc = open_dbs(p, err);
    if (rc == MD_OK)
        rc = md__pj_catch_up(p, err);
    if (rc != MD_OK) {
        md_proj_free(p);
        return rc;
    }
    *out = p;
    return MD_OK;
}

void md_proj_free(md_proj_t *p)
{
    if (p == NULL)
        return;
    md_txn_end(p->pinned);
    md_buf_release(&p->rec);
    md__pj_bulk_release(p);
    md_store_free(p->own_env);
    free(p);
}


/* ---- get and stats ---------------------------------------------------------------- */

typedef struct get_kind {
    const char *name;
    char rec; /* p_records prefix; 0: its own database */
} get_kind_t;

static const get_kind_t get_kinds[] = {
    {"order", 0},       {"account", 0},    {"store", 'S'},   {"product", 'P'},
    {"complaint", 'C'}, {"sanction", 'X'}, {"voucher", 'V'},
};

static md_err_t get_in(md_proj_t *p, MDB_txn *txn, const char *kind, const char *id,
                       int64_t as_of_ms, json_t **out, md_error_t *err);

md_err_t md_proj_get(md_proj_t *p, md_txn_t *t, const char *kind, const char *id, int64_t as_of_ms,
                     json_t **out, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    if (p == NULL || t == NULL || kind == NULL || id == NULL || *id == '\0' || out == NULL)
        return md_error_set(err, MD_EINVAL, "md_proj_get: missing argument");
    if (strlen(id) >= PJ_ID)
        return md_error_set(err, MD_ENOTFOUND, "%s '%.64s...' not found (ids are 1..64 bytes)",
                            kind, id);
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = get_in(p, md_txn_mdb(t), kind, id, as_of_ms, out, err);
    md_txn_end(own);
    return rc;
}

/* md_proj_get in the projections' snapshot @p txn. */
static md_err_t get_in(md_proj_t *p, MDB_txn *txn, const char *kind, const char *id,
                       int64_t as_of_ms, json_t **out, md_error_t *err)
{
    if (strcmp(kind, "order") == 0)
        return md__pj_order_get(p, txn, id, out, err);
    if (strcmp(kind, "account") == 0)
        return md__pj_account_get(p, txn, id, as_of_ms, out, err);
    for (size_t i = 2; i < sizeof get_kinds / sizeof get_kinds[0]; i++)
        if (strcmp(kind, get_kinds[i].name) == 0)
            return md__pj_record_get(p, txn, get_kinds[i].rec, id, as_of_ms, out, err);
    return md_error_set(err, MD_EINVAL, "unknown object kind '%s'", kind);
}

static md_err_t stats_in(md_proj_t *p, md_txn_t *t, json_t **out, md_error_t *err);

md_err_t md_proj_stats(md_proj_t *p, md_txn_t *t, json_t **out, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = stats_in(p, t, out, err);
    md_txn_end(own);
    return rc;
}

/* md_proj_stats in the projections' snapshot @p t. */
static md_err_t stats_in(md_proj_t *p, md_txn_t *t, json_t **out, md_error_t *err)
{
    uint64_t seq = 0, fmt = 0;
    MDB_txn *txn = md_txn_mdb(t);
    md_err_t rc = md_proj_seq(p, t, &seq, err);
    if (rc == MD_OK && (rc = meta_get(txn, p, "format", &fmt, err)) == MD_ENOTFOUND)
        rc = MD_OK;
    if (rc != MD_OK)
        return rc;
    json_t *projs = json_object();
    for (int i = 0; i < MD_PROJ_COUNT_; i++) {
        pj_db_t dbs[2];
        size_t n = md__pj_proj_dbs((md_proj_id_t)i, dbs);
        uint64_t entries = 0, bytes = 0;
        for (size_t j = 0; j < n; j++) {
            MDB_stat st;
            int mrc = mdb_stat(txn, p->dbi[dbs[j]], &st);
            if (mrc != MDB_SUCCESS) {
                json_decref(projs);
                return md_store_err(mrc, err, "projection stat");
            }
            entries += st.ms_entries;
            bytes += (uint64_t)(st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) *
                     st.ms_psize;
        }
        md_json_set(
            projs, proj_names[i],
            json_pack("{s:I, s:I}", "entries", (json_int_t)entries, "bytes", (json_int_t)bytes));
    }
    *out = json_pack("{s:I, s:I, s:s, s:o}", "seq", (json_int_t)seq, "format", (json_int_t)fmt,
                     "environment", p->evlog == p->store ? "log" : "proj", "projections", projs);
    return MD_OK;
}

md_err_t md_proj_event_hook(md_txn_t *txn, const md_event_t *ev, void *proj, md_error_t *err)
{
    return md_proj_apply(proj, txn, ev, err);
}

int md_proj_layout_format(void)
{
    return PJ_FORMAT;
}
