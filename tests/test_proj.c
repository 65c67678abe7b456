/*
 * test_proj.c - the projections on the demo day and on the rules' fixture
 * world: every projection's records and indexes, paging, verification
 * (including a tampered record), point-in-time replay, catch-up of a store
 * written without the hook, and independence from batching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../projections/pj.h"
#include "fixture.h"
#include "proj_fixture.h"
#include "rules_mem.h"

static int demo_setup(void **state)
{
    proj_fx_t *f = proj_fx_new(true);
    if (proj_fx_run_file(f, proj_fx_demo_path(), 1000, 0) <= 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    proj_fx_free(*state);
    return 0;
}

/* ---- pure helpers -------------------------------------------------------------- */

static void test_proj_types_sorted(void **state)
{
    (void)state;
    for (int i = 1; i < PJ_T_COUNT_; i++)
        assert_true(strcmp(md__pj_type_name(i - 1), md__pj_type_name(i)) < 0);
    for (int i = 0; i < PJ_T_COUNT_; i++)
        assert_int_equal(md__pj_type(md__pj_type_name(i)), i);
    assert_int_equal(md__pj_type("NoSuchEvent"), PJ_T_UNKNOWN);
}

static void test_proj_days(void **state)
{
    char d[PJ_DAY];
    (void)state;
    md__pj_day(0, d);
    assert_string_equal(d, "1970-01-01");
    md__pj_day(-1, d);
    assert_string_equal(d, "1969-12-31");
    md__pj_day(1795687200000LL, d);
    assert_string_equal(d, "2026-11-26");
    md__pj_day(951782400000LL, d); /* 2000-02-29T00:00:00Z */
    assert_string_equal(d, "2000-02-29");
    md__pj_day(951868799999LL, d);
    assert_string_equal(d, "2000-02-29");
}

/* ---- the demo day ----------------------------------------------------------------- */

static void test_proj_demo_orders(void **state)
{
    proj_fx_t *f = *state;
    char ids[512];
    assert_string_equal(proj_fx_str(f, "order", "o-1001", "status"), "completed");
    assert_int_equal(proj_fx_int(f, "order", "o-1001", "released"), 19900);
    assert_string_equal(proj_fx_str(f, "order", "o-1002", "status"), "partially_refunded");
    json_t *o = proj_fx_get(f, "order", "o-1002");
    json_t *d = json_object_get(o, "dispute");
    assert_string_equal(json_string_value(json_object_get(d, "complaint_id")), "cp-1");
    assert_string_equal(json_string_value(json_object_get(d, "ruling")), "split");
    assert_int_equal(json_integer_value(json_object_get(o, "escrow")), 0);
    assert_int_equal(json_integer_value(json_object_get(o, "refunded")), 4900);
    json_decref(o);
    assert_string_equal(proj_fx_str(f, "order", "o-1004", "voucher_id"), "v-bob");
    assert_string_equal(proj_fx_str(f, "order", "o-1004", "cancelled_by"), "bob");
    /* o-1009: delivered after the demo day set its policy, auto-confirmed by the timer
     * ten days later, its money held fifteen days, then released (SettlementReleased). */
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "escrow"), 0);
    assert_string_equal(proj_fx_str(f, "order", "o-1009", "status"), "completed");
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "auto_confirm_at"), 1796572140000LL);
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "completed_at"), 1796572140000LL);
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "after_sales_until"), 1797868140000LL);
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "held_until"), 1797868140000LL);
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "settled_at"), 1797868140000LL);
    assert_int_equal(proj_fx_int(f, "order", "o-1009", "held"), 0);
    json_t *o1 = proj_fx_get(f, "order", "o-1001");
    assert_true(json_is_null(json_object_get(o1, "held"))); /* before the policy: no hold */
    assert_true(json_is_null(json_object_get(o1, "auto_confirm_at")));
    json_decref(o1);
    assert_null(proj_fx_get(f, "order", "o-nope"));

    md_proj_order_filter_t by_buyer = {.buyer = "bob"};
    assert_int_equal(proj_fx_orders(f, &by_buyer, ids, sizeof ids), 2);
    assert_string_equal(ids, "o-1001,o-1004");
    md_proj_order_filter_t by_provider = {.provider = "dave"};
    assert_int_equal(proj_fx_orders(f, &by_provider, ids, sizeof ids), 2);
    md_proj_order_filter_t by_status = {.status = "delivered"};
    assert_int_equal(proj_fx_orders(f, &by_status, ids, sizeof ids), 0);
    md_proj_order_filter_t completed = {.status = "completed"};
    assert_int_equal(proj_fx_orders(f, &completed, ids, sizeof ids), 2);
    assert_string_equal(ids, "o-1001,o-1009");
    md_proj_order_filter_t placed = {.status = "placed"};
    assert_int_equal(proj_fx_orders(f, &placed, ids, sizeof ids), 0); /* moved on */
    md_proj_order_filter_t by_day = {.day = "2026-11-26", .buyer = "eve"};
    assert_int_equal(proj_fx_orders(f, &by_day, ids, sizeof ids), 2);
    assert_string_equal(ids, "o-1002,o-1009");
    md_proj_order_filter_t other_day = {.day = "2026-11-25"};
    assert_int_equal(proj_fx_orders(f, &other_day, NULL, 0), 0);
    assert_int_equal(proj_fx_orders(f, NULL, NULL, 0), 4);
}

static void test_proj_demo_accounts(void **state)
{
    proj_fx_t *f = *state;
    assert_int_equal(proj_fx_int(f, "account", "bob", "balance"), 80100);
    assert_int_equal(proj_fx_int(f, "account", "bob", "spent"), 19900);
    assert_string_equal(proj_fx_str(f, "account", "bob", "agreement_mode"), "explicit");
    assert_string_equal(proj_fx_str(f, "account", "eve", "agreement_mode"), "use");
    assert_int_equal(proj_fx_int(f, "account", "eve", "escrow_held"), 0);
    assert_int_equal(proj_fx_int(f, "account", "eve", "spent"), 19900 + 4900);
    assert_int_equal(proj_fx_int(f, "account", "carol", "held"), 0);
    assert_int_equal(proj_fx_int(f, "account", "carol", "balance"), 9800);
    assert_int_equal(proj_fx_int(f, "account", "carol", "earned"), 39800);
    assert_int_equal(proj_fx_int(f, "account", "dave", "earned"), 4900);
    assert_string_equal(proj_fx_str(f, "account", "dave", "provider_status"), "approved");
    assert_int_equal(proj_fx_int(f, "account", "carol", "orders_as_provider"), 2);
    json_t *op = proj_fx_get(f, "account", "operator");
    assert_true(json_is_true(json_object_get(op, "operator")));
    json_decref(op);
    json_t *b2 = proj_fx_get(f, "account", "bob2");
    json_t *r = json_object_get(b2, "restrictions");
    assert_int_equal(json_array_size(r), 1);
    assert_string_equal(json_string_value(json_array_get(r, 0)), "restrict_ordering");
    json_decref(b2);
    json_t *dave = proj_fx_get(f, "account", "dave");
    assert_int_equal(json_array_size(json_object_get(dave, "sanctions")), 0); /* lifted */
    assert_string_equal(json_string_value(json_array_get(json_object_get(dave, "stores"), 0)),
                        "s-dave");
    json_decref(dave);
}

static void test_proj_demo_audit(void **state)
{
    proj_fx_t *f = *state;
    md_proj_audit_filter_t bob = {.subject = "bob"};
    /* Both automatic disclosures of bob's data are under bob, as the subject. */
    assert_int_equal(proj_fx_audit(f, &bob, "PersonalDataDisclosed", "subject"), 2);
    assert_int_equal(proj_fx_audit(f, &bob, "rejected:", "actor"), 5);
    md_proj_audit_filter_t rej = {.subject = "rejections"};
    assert_int_equal(proj_fx_audit(f, &rej, "rejected:", NULL), 19);
    md_proj_audit_filter_t o9 = {.subject = "order:o-1009"};
    assert_int_equal(proj_fx_audit(f, &o9, "OrderCompleted", "stream"), 1); /* the timer's */
    assert_int_equal(proj_fx_audit(f, &o9, "SettlementReleased", "stream"), 1);
    md_proj_audit_filter_t carol = {.subject = "carol"};
    assert_int_equal(proj_fx_audit(f, &carol, "SettlementReleased", "provider"), 1);
    md_proj_audit_filter_t dave = {.subject = "member:dave"};
    assert_int_equal(proj_fx_audit(f, &dave, "SanctionApplied", "target_id"), 1);
    assert_int_equal(proj_fx_audit(f, &dave, "SanctionLifted", NULL), 1);
    md_proj_audit_filter_t order = {.subject = "order:o-1002"};
    assert_int_equal(proj_fx_audit(f, &order, "DisputeRuled", "order_id"), 1);
    md_proj_audit_filter_t actor = {.actor = "operator"};
    assert_true(proj_fx_audit(f, &actor, NULL, NULL) >= 10);
    md_proj_audit_filter_t both = {.subject = "bob", .actor = "carol"};
    assert_int_equal(proj_fx_audit(f, &both, "OrderDelivered", NULL), 1);
}

static md_err_t first_row(json_t *row, void *ctx, md_error_t *err)
{
    (void)err;
    *(json_t **)ctx = json_incref(row);
    return MD_ESTOP;
}

static void test_proj_demo_clause(void **state)
{
    proj_fx_t *f = *state;
    md_txn_t *t = NULL;
    json_t *row = NULL;
    md_proj_page_t page = {0};
    md_proj_audit_filter_t q = {.subject = "sn-1"};
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_audit(f->proj, t, &q, &page, first_row, &row, NULL), MD_OK);
    md_txn_end(t);
    assert_non_null(row);
    assert_string_equal(json_string_value(json_object_get(row, "action")), "SanctionApplied");
    assert_string_equal(json_string_value(json_object_get(row, "clause")), "4.2.6");
    json_decref(row);
}

static void test_proj_demo_sales_records(void **state)
{
    proj_fx_t *f = *state;
    assert_string_equal(proj_fx_str(f, "store", "s-carol", "status"), "open");
    assert_int_equal(proj_fx_int(f, "product", "p-debian", "units"), 3);
    assert_string_equal(proj_fx_str(f, "complaint", "cp-1", "decision"), "split");
    assert_string_equal(proj_fx_str(f, "sanction", "sn-2", "measure"), "restrict_ordering");
    assert_string_equal(proj_fx_str(f, "voucher", "v-bob", "status"), "available");
    assert_null(proj_fx_get(f, "store", "s-nope"));

    md_txn_t *t = NULL;
    json_t *row = NULL;
    md_proj_page_t page = {0};
    md_proj_sales_filter_t q = {
        .provider = "carol", .from_day = "2026-11-26", .to_day = "2026-11-26"};
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_sales(f->proj, t, &q, &page, first_row, &row, NULL), MD_OK);
    md_txn_end(t);
    assert_non_null(row);
    assert_int_equal(json_integer_value(json_object_get(row, "orders")), 2);
    assert_int_equal(json_integer_value(json_object_get(row, "gross")), 39800);
    assert_int_equal(json_integer_value(json_object_get(row, "net")), 19900);
    json_decref(row);
}

static md_err_t count_row(json_t *row, void *ctx, md_error_t *err)
{
    (void)row, (void)err;
    (*(size_t *)ctx)++;
    return MD_OK;
}

/* ---- the audit trail across epochs --------------------------------------------------- */

typedef struct crafted {
    pj_db_t db;
    uint32_t epoch;
    const char *id;
    uint64_t seq;
} crafted_t;

/* Entries put straight into the audit databases: the scan follows the epoch in
 * the key, whatever seq the entry points at, so the demo's events serve. */
static const crafted_t crafted[] = {
    {PJ_DB_AUDIT, 0, "zed", 3},        {PJ_DB_AUDIT, 1, "zed", 4},
    {PJ_DB_AUDIT, 1, "zed", 5},        {PJ_DB_AUDIT, 3, "zed", 6},
    {PJ_DB_AUDIT, 9, "zed", 7},        {PJ_DB_AUDIT, 2, "zea", 8},
    {PJ_DB_AUDIT, 3, "zz", 9},         {PJ_DB_AUDIT, 4, "a", 10},
    {PJ_DB_AUDIT, 9, "zf", 11},        {PJ_DB_AUDIT, 11, "zd", 12},
    {PJ_DB_AUDIT_ACTOR, 5, "zed", 13}, {PJ_DB_AUDIT_ACTOR, 6, "zed", 14},
    {PJ_DB_AUDIT_ACTOR, 6, "zf", 15},
};

static md_err_t put_crafted(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_proj_t *p = ctx;
    for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) {
        const crafted_t *c = &crafted[i];
        pj_key_t k;
        unsigned char role = 0xfe; /* stream */
        md__pj_key_init(&k);
        for (int b = 3; b >= 0; b--)
            md__pj_key_byte(&k, (unsigned char)(c->epoch >> (8 * b)));
        md__pj_key_str(&k, c->id);
        md__pj_key_be64(&k, c->seq);
        if (c->db == PJ_DB_AUDIT)
            md__pj_key_byte(&k, 0); /* member */
        MDB_val key = {k.n, k.b}, val = {1, &role};
        int rc = mdb_put(md_txn_mdb(t), p->dbi[c->db], &key, &val, 0);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, "crafted audit entry");
    }
    return MD_OK;
}

typedef struct seqs {
    char s[256];
} seqs_t;

static md_err_t seq_row(json_t *row, void *ctx, md_error_t *err)
{
    (void)err;
    seqs_t *q = ctx;
    size_t n = strlen(q->s);
    snprintf(q->s + n, sizeof q->s - n, "%s%lld", n ? "," : "",
             (long long)json_integer_value(json_object_get(row, "seq")));
    return MD_OK;
}

/* The seqs listed for @p flt, @p limit rows per page (0: one page). */
static void audit_seqs(proj_fx_t *f, const md_proj_audit_filter_t *flt, uint64_t limit, seqs_t *out)
{
    char cursor[MD_PROJ_CURSOR_MAX] = "";
    md_txn_t *t = NULL;
    out->s[0] = '\0';
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    do {
        md_proj_page_t page = {.limit = limit, .cursor = cursor};
        assert_int_equal(md_proj_audit(f->proj, t, flt, &page, seq_row, out, NULL), MD_OK);
        snprintf(cursor, sizeof cursor, "%s", page.next);
    } while (cursor[0]);
    md_txn_end(t);
}

static void test_proj_audit_epochs(void **state)
{
    proj_fx_t *f = *state;
    seqs_t got;
    assert_int_equal(md_store_write(f->store, put_crafted, f->proj, NULL), MD_OK);
    md_proj_audit_filter_t zed = {.subject = "zed"}, zed_actor = {.actor = "zed"};
    for (uint64_t limit = 0; limit <= 6; limit++) {
        audit_seqs(f, &zed, limit, &got);
        assert_string_equal(got.s, "3,4,5,6,7");
        audit_seqs(f, &zed_actor, limit, &got);
        assert_string_equal(got.s, "13,14");
    }
    md_proj_audit_filter_t zf = {.subject = "zf"}, none = {.subject = "zee"};
    audit_seqs(f, &zf, 1, &got);
    assert_string_equal(got.s, "11");
    audit_seqs(f, &none, 1, &got);
    assert_string_equal(got.s, "");
    /* A cursor of another subject is refused, one of the same subject resumes. */
    md_txn_t *t = NULL;
    seqs_t rows = {""};
    md_proj_page_t first = {.limit = 2};
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_audit(f->proj, t, &zed, &first, seq_row, &rows, NULL), MD_OK);
    assert_string_equal(rows.s, "3,4");
    md_proj_page_t other = {.limit = 2, .cursor = first.next};
    assert_int_equal(md_proj_audit(f->proj, t, &zf, &other, seq_row, &rows, NULL), MD_EINVAL);
    md_txn_end(t);
}

/* Buyer index entries ('b' epoch buyer NUL seq) in later epochs, beside the
 * demo's own (epoch 0), between keys of other heads: listed after them, on
 * every page size. */
static md_err_t put_buyer_entries(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_proj_t *p = ctx;
    static const struct {
        uint32_t epoch;
        const char *buyer;
    } e[] = {
        {2, "bob"}, {7, "bob"}, {3, "bo"}, {7, "bobby"}, {9, "alice"},
    };
    for (size_t i = 0; i < sizeof e / sizeof e[0]; i++) {
        pj_key_t k;
        md__pj_key_init(&k);
        md__pj_key_byte(&k, 'b');
        for (int b = 3; b >= 0; b--)
            md__pj_key_byte(&k, (unsigned char)(e[i].epoch >> (8 * b)));
        md__pj_key_str(&k, e[i].buyer);
        md__pj_key_be64(&k, ((uint64_t)e[i].epoch << 13) + 1);
        MDB_val key = {k.n, k.b}, val = {6, (void *)"o-1001"};
        int rc = mdb_put(md_txn_mdb(t), p->dbi[PJ_DB_ORDER_IDX], &key, &val, 0);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, "crafted buyer entry");
    }
    return MD_OK;
}

static void test_proj_orders_by_buyer_epochs(void **state)
{
    proj_fx_t *f = *state;
    md_proj_order_filter_t bob = {.buyer = "bob"};
    char before[512] = "", after[512] = "";
    size_t n = proj_fx_orders(f, &bob, before, sizeof before);
    assert_true(n > 0);
    assert_int_equal(md_store_write(f->store, put_buyer_entries, f->proj, NULL), MD_OK);
    assert_int_equal(proj_fx_orders(f, &bob, after, sizeof after), n + 2);
    assert_non_null(strstr(after, before));
    for (uint64_t limit = 1; limit <= n + 3; limit++) {
        char cursor[MD_PROJ_CURSOR_MAX] = "";
        size_t rows = 0;
        md_txn_t *t = NULL;
        assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
        do {
            md_proj_page_t page = {.limit = limit, .cursor = cursor};
            assert_int_equal(md_proj_orders(f->proj, t, &bob, &page, count_row, &rows, NULL),
                             MD_OK);
            snprintf(cursor, sizeof cursor, "%s", page.next);
        } while (cursor[0]);
        md_txn_end(t);
        assert_int_equal(rows, n + 2);
    }
}

static void test_proj_paging(void **state)
{
    proj_fx_t *f = *state;
    md_txn_t *t = NULL;
    char cursor[MD_PROJ_CURSOR_MAX] = "";
    size_t rows = 0, pages = 0;
    md_proj_audit_filter_t q = {.subject = "bob"};
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    do {
        md_proj_page_t page = {.limit = 3, .cursor = cursor};
        assert_int_equal(md_proj_audit(f->proj, t, &q, &page, count_row, &rows, NULL), MD_OK);
        snprintf(cursor, sizeof cursor, "%s", page.next);
        pages++;
    } while (cursor[0]);
    md_txn_end(t);
    assert_int_equal(rows, proj_fx_audit(f, &q, NULL, NULL));
    assert_int_equal(pages, (rows + 2) / 3);
    /* A cursor of another query is refused. */
    md_proj_page_t bad = {.limit = 1, .cursor = "zz"};
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_audit(f->proj, t, &q, &bad, count_row, &rows, NULL), MD_EINVAL);
    md_txn_end(t);
}

/* ---- verification, tampering, replay ----------------------------------------------- */

static void test_proj_verify_ok(void **state)
{
    assert_int_equal(proj_fx_verify(*state, NULL), MD_OK);
}

typedef struct tamper {
    MDB_dbi dbi;
    const char *key;
} tamper_t;

static md_err_t tamper_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    tamper_t *x = ctx;
    MDB_val k = {strlen(x->key), (void *)x->key}, v;
    unsigned char buf[4096];
    if (mdb_get(md_txn_mdb(t), x->dbi, &k, &v) != MDB_SUCCESS || v.mv_size > sizeof buf)
        return md_error_set(err, MD_ENOTFOUND, "no record to tamper with");
    memcpy(buf, v.mv_data, v.mv_size);
    buf[v.mv_size / 2] ^= 0x01;
    v.mv_data = buf;
    return md_store_err(mdb_put(md_txn_mdb(t), x->dbi, &k, &v, 0), err, "tamper");
}

static void test_proj_verify_detects_tamper(void **state)
{
    proj_fx_t *f = *state;
    tamper_t x = {0, "bob"};
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    assert_int_equal(md_store_dbi(f->store, "p_accounts", 0, &x.dbi, NULL), MD_OK);
    assert_int_equal(md_store_write(f->store, tamper_fn, &x, NULL), MD_OK);
    assert_int_equal(proj_fx_verify(f, rep), MD_ECORRUPT);
    assert_int_equal(rep->bad, MD_PROJ_ACCOUNTS);
    assert_string_equal(rep->db, "p_accounts");
    assert_string_equal(rep->key, "bob");
    /* A rebuild repairs it. */
    assert_int_equal(md_proj_rebuild(f->proj, NULL, NULL, NULL, NULL), MD_OK);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
    free(rep);
}

static void set_threads(const char *v);

typedef struct tamper_op {
    MDB_dbi dbi;
    const char *key;
    int op; /* 0: flip a bit of the value, 1: delete, 2: insert */
} tamper_op_t;

static md_err_t tamper_op_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    tamper_op_t *x = ctx;
    MDB_val k = {strlen(x->key), (void *)x->key}, v = {1, (void *)"x"};
    if (x->op == 0) {
        tamper_t flip = {x->dbi, x->key};
        return tamper_fn(t, &flip, err);
    }
    int rc = x->op == 1 ? mdb_del(md_txn_mdb(t), x->dbi, &k, NULL)
                        : mdb_put(md_txn_mdb(t), x->dbi, &k, &v, MDB_NOOVERWRITE);
    return md_store_err(rc, err, "tamper");
}

/* Verify compares the rebuild with the live projections as it is made, or
 * (when the rebuild's writes are not in key order, e.g. under tight bounds)
 * in LMDB: either way a changed, a missing and an extra entry (first, in the
 * middle, last) are found and named, in one thread and in two. */
static void test_proj_verify_names_each_difference(void **state)
{
    proj_fx_t *f = *state;
    static const struct {
        const char *key;
        int op;
        const char *named;
    } cases[] = {{"bob", 0, "bob"},
                 {"bob", 1, "bob"},
                 {"bob-extra", 2, "bob-extra"},
                 {"\x01", 2, "\\x01"},
                 {"\x7f\x7f", 2, "\\x7f\\x7f"}};
    static const char *threads[] = {"1", "2"};
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (size_t tight = 0; tight < 6; tight++) {
            tamper_op_t x = {0, cases[ci].key, cases[ci].op};
            set_threads(threads[tight & 1]);
            assert_int_equal(md_store_dbi(f->store, "p_accounts", 0, &x.dbi, NULL), MD_OK);
            assert_int_equal(md_store_write(f->store, tamper_op_fn, &x, NULL), MD_OK);
            /* tight spills: compared, then unsure (audit keys out of order);
             * tight records as well: made in LMDB at once (compare_fits) */
            f->proj->bulk_max = tight >= 4 ? 1 : PJ_BULK_MAX;
            f->proj->spill_max = tight >= 2 ? 1 : PJ_SPILL_MAX;
            memset(rep, 0, sizeof *rep);
            assert_int_equal(proj_fx_verify(f, rep), MD_ECORRUPT);
            assert_int_equal(rep->bad, MD_PROJ_ACCOUNTS);
            assert_string_equal(rep->db, "p_accounts");
            assert_string_equal(rep->key, cases[ci].named);
            f->proj->bulk_max = PJ_BULK_MAX;
            f->proj->spill_max = PJ_SPILL_MAX;
            assert_int_equal(md_proj_rebuild(f->proj, NULL, NULL, NULL, NULL), MD_OK);
            assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
        }
    }
    set_threads(NULL);
    free(rep);
}

/* The same in the databases of the writer's lane, under two threads: the
 * orders' index, which the writer logs and sorts aside at the end (bulk.c,
 * "the last log"), and the orders, which it caches. */
static void test_proj_verify_names_writer_lane_difference(void **state)
{
    proj_fx_t *f = *state;
    static const char *dbs[] = {"p_order_idx", "p_orders"};
    static const struct {
        const char *key, *named;
    } keys[] = {{"\x01", "\\x01"}, {"\x7f\x7f", "\\x7f\\x7f"}};
    static const char *threads[] = {"1", "2"};
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    for (size_t di = 0; di < 2; di++) {
        for (size_t ki = 0; ki < 2; ki++) {
            for (size_t ti = 0; ti < 2; ti++) {
                tamper_op_t x = {0, keys[ki].key, 2};
                unsigned long asides = f->proj->asides;
                set_threads(threads[ti]);
                assert_int_equal(md_store_dbi(f->store, dbs[di], 0, &x.dbi, NULL), MD_OK);
                assert_int_equal(md_store_write(f->store, tamper_op_fn, &x, NULL), MD_OK);
                memset(rep, 0, sizeof *rep);
                assert_int_equal(proj_fx_verify(f, rep), MD_ECORRUPT);
                assert_int_equal(rep->bad, MD_PROJ_ORDERS);
                assert_string_equal(rep->db, dbs[di]);
                assert_string_equal(rep->key, keys[ki].named);
                if (ti == 1) /* two threads: the index log was sorted aside */
                    assert_true(f->proj->asides > asides);
                else
                    assert_int_equal(f->proj->asides, asides);
                assert_int_equal(md_proj_rebuild(f->proj, NULL, NULL, NULL, NULL), MD_OK);
                assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
            }
        }
    }
    set_threads(NULL);
    free(rep);
}

static void test_proj_replay_matches_live(void **state)
{
    proj_fx_t *f = proj_fx_new(true), *g = *state;
    md_proj_digest_t live, replayed;
    uint64_t head, n = 0;
    md_txn_t *t = NULL;
    char *dir = md_test_tmpdir();
    /* f saw the first 40 commands only: its live projections are what a
     * replay of the whole day --until f's head must show. */
    assert_int_equal(proj_fx_run_file(f, proj_fx_demo_path(), 7, 40), 40);
    proj_fx_digest(f, &live, &head);
    assert_int_equal(md_store_read(g->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_replay(t, head, dir, NULL, NULL, &n, NULL), MD_OK);
    assert_int_equal(md_proj_replay(t, head, dir, NULL, NULL, &n, NULL), MD_EEXIST);
    assert_int_equal(md_proj_replay(t, 100000, dir, NULL, NULL, &n, NULL), MD_EINVAL);
    md_txn_end(t);
    assert_int_equal(n, head);
    proj_fx_dir_digest(dir, &replayed);
    assert_memory_equal(&live, &replayed, sizeof live);
    md_test_rmdir(dir);
    proj_fx_free(f);
}

/* Batching must not change the projections: one command per batch vs the whole day. */
static void test_proj_batching_independent(void **state)
{
    proj_fx_t *f = proj_fx_new(true);
    md_proj_digest_t a, b;
    uint64_t ha, hb;
    assert_true(proj_fx_run_file(f, proj_fx_demo_path(), 1, 0) > 0);
    proj_fx_digest(f, &a, &ha);
    proj_fx_digest(*state, &b, &hb);
    assert_int_equal(ha, hb);
    assert_memory_equal(&a, &b, sizeof a);
    proj_fx_free(f);
}

/* A store written without the hook is caught up when the projections open. */
static void test_proj_catch_up(void **state)
{
    proj_fx_t *f = proj_fx_new(false);
    md_proj_digest_t a, b;
    uint64_t ha, hb;
    assert_true(proj_fx_run_file(f, proj_fx_demo_path(), 1000, 0) > 0);
    assert_int_equal(md_proj_open(f->store, &f->proj, NULL), MD_OK);
    proj_fx_digest(f, &a, &ha);
    proj_fx_digest(*state, &b, &hb);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
    proj_fx_free(f);
}

/* Projections in their own environment (<dir>/proj), applied by
 * md_proj_advance at most max_events per transaction: the watermark moves by
 * at most that much, never past the log's head; verify passes at every
 * watermark (behind the head), md_proj_wait times out beyond it, and the end
 * equals the projections applied inside the engine's batches (*state). */
static void test_proj_env_advance_bounded(void **state)
{
    proj_fx_t *f = proj_fx_new(false);
    md_store_opts_t so = {.nosync = true};
    md_proj_digest_t a, b;
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    md_error_t err = {0};
    uint64_t ha, hb, seq = 0, prev = 0, head = 0, onext = 0, steps = 0;
    assert_int_equal(md_proj_open_dir(f->store, f->dir, &so, &f->proj, &err), MD_OK);
    assert_true(md_proj_split(f->proj));
    assert_true(proj_fx_run_file(f, proj_fx_demo_path(), 1000, 0) > 0);
    do {
        assert_int_equal(md_proj_advance(f->proj, 7, &seq, &head, &onext, &err), MD_OK);
        assert_true(seq > prev && seq - prev <= 7 && seq <= head);
        assert_true(onext > 0);
        if (seq < head && steps % 3 == 0) { /* lagging: verified at the watermark */
            assert_int_equal(proj_fx_verify(f, rep), MD_OK);
            assert_int_equal(rep->seq, seq);
        }
        prev = seq;
        steps++;
    } while (seq < head);
    assert_true(steps >= head / 7);
    assert_int_equal(md_proj_advance(f->proj, 7, &seq, &head, NULL, &err), MD_OK);
    assert_int_equal(seq, head); /* nothing left: no transaction, same watermark */
    assert_int_equal(md_proj_wait(f->proj, head, 10, NULL, &err), MD_OK);
    assert_int_equal(md_proj_wait(f->proj, head + 1, 30, NULL, &err), MD_ETIMEDOUT);
    proj_fx_digest(f, &a, &ha);
    proj_fx_digest(*state, &b, &hb);
    assert_int_equal(ha, hb);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(proj_fx_verify(f, rep), MD_OK);
    assert_int_equal(rep->seq, head);
    free(rep);
    proj_fx_free(f);
}

/* An older layout format, projections caught up: format 2 and an order record of
 * another layout in p_orders. Opening rebuilds them instead of failing on the record. */
static md_err_t age_layout(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_proj_t *p = ctx;
    unsigned char fmt[8] = {0, 0, 0, 0, 0, 0, 0, 2}, junk[40] = {2, 'O'};
    MDB_val k = {6, (void *)"format"}, v = {8, fmt};
    MDB_val ok = {6, (void *)"o-1001"}, ov = {sizeof junk, junk};
    int rc = mdb_put(md_txn_mdb(t), p->dbi[PJ_DB_META], &k, &v, 0);
    if (rc == MDB_SUCCESS)
        rc = mdb_put(md_txn_mdb(t), p->dbi[PJ_DB_ORDERS], &ok, &ov, 0);
    return rc == MDB_SUCCESS ? MD_OK : md_store_err(rc, err, "age layout");
}

static void test_proj_old_format_rebuilt(void **state)
{
    proj_fx_t *f = *state;
    md_proj_digest_t a, b;
    uint64_t ha, hb;
    proj_fx_digest(f, &a, &ha);
    assert_int_equal(md_store_write(f->store, age_layout, f->proj, NULL), MD_OK);
    assert_int_not_equal(proj_fx_verify(f, NULL), MD_OK);
    md_proj_t *p = NULL;
    assert_int_equal(md_proj_open(f->store, &p, NULL), MD_OK);
    md_proj_free(p);
    proj_fx_digest(f, &b, &hb);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
}

/* A newer layout format (a newer marketd wrote them): refused, never downgraded. */
static md_err_t newer_layout(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_proj_t *p = ctx;
    unsigned char fmt[8] = {0, 0, 0, 0, 0, 0, 0, PJ_FORMAT + 1};
    MDB_val k = {6, (void *)"format"}, v = {8, fmt};
    return md_store_err(mdb_put(md_txn_mdb(t), p->dbi[PJ_DB_META], &k, &v, 0), err, "newer");
}

static void test_proj_newer_format_refused(void **state)
{
    proj_fx_t *f = *state;
    md_error_t err = {0};
    char want[64];
    assert_int_equal(md_store_write(f->store, newer_layout, f->proj, NULL), MD_OK);
    md_proj_t *p = NULL;
    assert_int_equal(md_proj_open(f->store, &p, &err), MD_EVERSION);
    assert_null(p);
    snprintf(want, sizeof want, "layout format %d by a newer marketd", PJ_FORMAT + 1);
    assert_non_null(strstr(err.msg, want));
    assert_non_null(strstr(err.msg, "downgrade"));
}

/* A read-only store written without projections: open says so (rebuild creates them). */
static void test_proj_absent_read_only(void **state)
{
    proj_fx_t *f = proj_fx_new(false);
    md_store_t *ro = NULL;
    md_proj_t *p = NULL;
    md_error_t err = {0};
    md_store_opts_t so = {.read_only = true};
    (void)state;
    assert_true(proj_fx_run_file(f, proj_fx_demo_path(), 1000, 0) > 0);
    md_engine_free(f->eng); /* LMDB: one open of an environment per process */
    md_store_free(f->store);
    f->eng = NULL, f->store = NULL;
    assert_int_equal(md_store_open(f->dir, &so, &ro, NULL), MD_OK);
    assert_int_equal(md_proj_open(ro, &p, &err), MD_ENOTFOUND);
    assert_non_null(strstr(err.msg, "rebuild"));
    assert_null(p);
    md_store_free(ro);
    proj_fx_free(f);
}

/* ---- the rules' fixture world ---------------------------------------------------------- */

typedef struct copy {
    const rules_mem_t *m;
    md_proj_t *p;
} copy_t;

static md_err_t copy_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    copy_t *c = ctx;
    md_err_t rc = MD_OK;
    for (size_t i = 0; i < rules_mem_count(c->m) && rc == MD_OK; i++) {
        md_event_t ev = rules_mem_event(c->m, i)->ev;
        rc = md_txn_append(t, &ev, err);
        if (rc == MD_OK)
            rc = md_proj_apply(c->p, t, &ev, err);
    }
    return rc;
}

static void test_proj_rules_world(void **state)
{
    fx_t *w = fx_world();
    proj_fx_t *f = proj_fx_new(true);
    (void)state;
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q1','order_id':'o-del','reason':'broken'");
    fx_ok(w, "alice", "ApplyArbitration", "'complaint_id':'q1'");
    fx_ok(w, "op", "RuleOnDispute", "'complaint_id':'q1','decision':'refund_buyer'");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'x1','measure':'close_order','target_type':'order','target_id':'o-paid','"
          "reason':'fraud','clause':'3.3.3'");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'x2','measure':'close_store','target_type':'store','target_id':'st1','"
          "reason':'abuse','clause':'3.3.3'");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'x3','measure':'freeze_balance','target_type':'member','target_id':'alice'"
          ",'reason':'check','clause':'3.3.3'");
    fx_ok(w, "op", "LiftSanction", "'sanction_id':'x2','reason':'fixed'");
    copy_t c = {w->m, f->proj};
    assert_int_equal(md_store_write(f->store, copy_fn, &c, NULL), MD_OK);

    assert_string_equal(proj_fx_str(f, "order", "o-del", "status"), "refunded");
    assert_string_equal(proj_fx_str(f, "order", "o-paid", "status"), "closed");
    assert_string_equal(proj_fx_str(f, "order", "o-paid", "closed_by_sanction"), "x1");
    assert_int_equal(proj_fx_int(f, "order", "o-paid", "escrow"), fx_escrow(w, "o-paid"));
    assert_int_equal(proj_fx_int(f, "account", "alice", "balance"), fx_balance(w, "alice"));
    assert_int_equal(proj_fx_int(f, "account", "bob", "balance"), fx_balance(w, "bob"));
    assert_string_equal(proj_fx_str(f, "complaint", "q1", "status"), "ruled");
    assert_string_equal(proj_fx_str(f, "store", "st1", "status"), "open");
    json_t *a = proj_fx_get(f, "account", "alice");
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "restrictions"), 0)),
                        "freeze_balance");
    json_decref(a);
    md_proj_audit_filter_t q = {.subject = "alice"};
    assert_int_equal(proj_fx_audit(f, &q, "SanctionApplied", "target_id"), 1);
    assert_int_equal(proj_fx_audit(f, &q, "SanctionApplied", "buyer"), 1);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
    proj_fx_free(f);
    fx_free(w);
}

/* ---- bulk mode (replays) ------------------------------------------------------------------ */

/* A record layout for the bulk tests: a number and a string. */
typedef struct trec {
    int64_t fmt, n;
    char s[40];
} trec_t;

static const pj_str_desc_t trec_strs[] = {{offsetof(trec_t, s), 40}};
static const pj_layout_t trec_layout = {('T' << 8) | PJ_FORMAT, offsetof(trec_t, s), sizeof(trec_t),
                                        1, trec_strs};

typedef enum { OP_LOAD, OP_SAVE, OP_PUT, OP_DEL, OP_NEW, OP_EVENT } op_kind_t;

typedef struct op {
    op_kind_t kind;
    pj_db_t db;
    unsigned char key[48];
    size_t klen;
    unsigned char val[300];
    size_t vlen;
    int64_t n;
} op_t;

typedef struct ops {
    op_t *v;
    size_t n;
    unsigned char *loads; /* per OP_LOAD: found, then the record, by run */
    size_t nloads;
} ops_t;

static uint64_t rnd_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Keys that exercise the sorted writes: the shapes of the projections' keys
 * (ids with shared heads, NUL separators, big-endian seqs: the groups of
 * core.c end at the first NUL from offset 4), keys that differ only past the
 * 16-byte window or only in its last bytes, prefixes of other keys, and raw
 * bytes. */
static size_t rnd_key(uint64_t *s, unsigned char *k, int pool)
{
    uint64_t id = rnd_next(s) % (uint64_t)pool, seq = id * 2654435761u % 100000;
    size_t n = 0;
    switch (id % 5) {
    case 0: /* 'b' epoch(4) id NUL seq(8) */
        k[n++] = 'b';
        for (int i = 3; i >= 0; i--)
            k[n++] = (unsigned char)((seq >> 13) >> (8 * i));
        n += (size_t)snprintf((char *)k + n, 12, "m-%llu", (unsigned long long)(id % 17));
        k[n++] = 0;
        for (int i = 7; i >= 0; i--)
            k[n++] = (unsigned char)(seq >> (8 * i));
        return n;
    case 1: /* an id */ return (size_t)snprintf((char *)k, 24, "o-%llu", (unsigned long long)id);
    case 2: /* 15 shared bytes, then one that differs */
        memcpy(k, "same-fifteen-by", 15);
        k[15] = (unsigned char)(id * 37);
        return 16 + id % 2; /* (and a 17th byte, 0 or not) */
    case 3:                 /* 16 shared bytes, then differing tails of several lengths */
        memcpy(k, "sixteen-shared-b", 16);
        n = 16 + id % 11;
        for (size_t i = 16; i < n; i++)
            k[i] = (unsigned char)(i == n - 1 ? id : 'x');
        return n;
    default: /* raw bytes, with NULs */
        n = 1 + id % 40;
        for (size_t i = 0; i < n; i++)
            k[i] = "\0\1ab\xff"[(id >> (i % 13)) % 5];
        return n;
    }
}

static void ops_gen(ops_t *o, uint64_t seed, size_t count, bool audit)
{
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    uint64_t seq = 1;
    o->v = md_calloc(count, sizeof *o->v);
    o->n = count;
    o->nloads = 0;
    for (size_t i = 0; i < count; i++) {
        op_t *x = &o->v[i];
        uint64_t r = rnd_next(&s) % 100;
        static const pj_db_t rmw[] = {PJ_DB_ORDERS, PJ_DB_ACCOUNTS};
        static const pj_db_t idx[] = {PJ_DB_ORDER_IDX, PJ_DB_ACCOUNT_IDX, PJ_DB_SALES};
        if (r < 8) {
            x->kind = OP_EVENT;
            continue;
        }
        if (audit && r < 30) { /* entries of an insert-only database, in seq order */
            x->kind = OP_NEW;
            x->db = rnd_next(&s) % 2 ? PJ_DB_AUDIT : PJ_DB_AUDIT_ACTOR;
            uint64_t at = rnd_next(&s) % 5 == 0 && seq > 3 ? seq - 2 : seq++; /* some twice */
            x->klen = 0;
            for (int b = 3; b >= 0; b--)
                x->key[x->klen++] = (unsigned char)((at >> 3) >> (8 * b));
            x->klen += (size_t)snprintf((char *)x->key + x->klen, 20, "s%llu",
                                        (unsigned long long)(rnd_next(&s) % 23));
            x->key[x->klen++] = 0;
            for (int b = 7; b >= 0; b--)
                x->key[x->klen++] = (unsigned char)(at >> (8 * b));
            x->vlen = 1;
            x->val[0] = (unsigned char)(rnd_next(&s) & 0xff);
            continue;
        }
        if (r < 65) {
            x->db = rmw[rnd_next(&s) % 2];
            x->klen = rnd_key(&s, x->key, 400);
            r = rnd_next(&s) % 100;
            x->kind = r < 40 ? OP_LOAD : r < 75 ? OP_SAVE : r < 85 ? OP_PUT : OP_DEL;
            x->n = (int64_t)(rnd_next(&s) % 1000000) - 500;
            x->vlen = rnd_next(&s) % 39; /* the string's length */
            memset(x->val, 'a' + (int)(x->n & 7), x->vlen);
            o->nloads += x->kind == OP_LOAD;
            continue;
        }
        x->db = idx[rnd_next(&s) % 3];
        x->klen = rnd_key(&s, x->key, 1000);
        x->kind = rnd_next(&s) % 3 ? OP_PUT : OP_DEL;
        x->vlen = rnd_next(&s) % (rnd_next(&s) % 8 ? 12 : 300);
        for (size_t b = 0; b < x->vlen; b++)
            x->val[b] = (unsigned char)rnd_next(&s);
    }
    o->loads = md_calloc(o->nloads + 1, 2 * (1 + sizeof(trec_t)));
}

typedef struct run {
    md_proj_t *p;
    ops_t *o;
    int which; /* 0 live, 1 bulk */
    bool bulk;
    size_t bulk_max, spill_max;
} run_t;

static md_err_t run_op(pj_ctx_t *c, const op_t *x, run_t *r, size_t *load, md_error_t *err)
{
    trec_t t;
    bool found;
    md_err_t rc = MD_OK;
    switch (x->kind) {
    case OP_LOAD:
        rc = md__pj_load(c, x->db, x->key, x->klen, &trec_layout, &t, &found);
        if (rc == MD_OK) {
            unsigned char *at = r->o->loads + (2 * *load + (size_t)r->which) * (1 + sizeof t);
            at[0] = found;
            memcpy(at + 1, &t, sizeof t);
            (*load)++;
        }
        return rc;
    case OP_SAVE:
    case OP_PUT:
        memset(&t, 0, sizeof t);
        t.fmt = trec_layout.fmt;
        t.n = x->n;
        memcpy(t.s, x->val, x->vlen < 39 ? x->vlen : 39);
        if (x->kind == OP_SAVE || x->db == PJ_DB_ORDERS || x->db == PJ_DB_ACCOUNTS) {
            if (x->kind == OP_SAVE)
                return md__pj_save(c, x->db, x->key, x->klen, &trec_layout, &t);
            md_buf_t b;
            md_buf_init(&b);
            md__pj_pack(&trec_layout, &t, &b);
            rc = md__pj_put(c, x->db, x->key, x->klen, b.p, b.len);
            md_buf_release(&b);
            return rc;
        }
        return md__pj_put(c, x->db, x->key, x->klen, x->val, x->vlen);
    case OP_DEL: return md__pj_del(c, x->db, x->key, x->klen);
    case OP_NEW: return md__pj_put_new(c, x->db, x->key, x->klen, x->val, x->vlen);
    case OP_EVENT: return MD_OK;
    }
    (void)err;
    return rc;
}

static md_err_t run_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    run_t *r = ctx;
    pj_ctx_t c = {.p = r->p, .txn = md_txn_mdb(t), .t = t, .err = err};
    size_t load = 0;
    uint64_t seq = 0;
    md_err_t rc = MD_OK;
    if (r->bulk) {
        r->p->bulk_max = r->bulk_max;
        r->p->spill_max = r->spill_max;
        rc = md__pj_bulk_begin(r->p, c.txn, err);
    }
    for (size_t i = 0; i < r->o->n && rc == MD_OK; i++) {
        rc = run_op(&c, &r->o->v[i], r, &load, err);
        if (rc == MD_OK && r->bulk && r->o->v[i].kind == OP_EVENT)
            rc = md__pj_bulk_step(r->p, c.txn, ++seq, err);
    }
    if (r->bulk) {
        md_err_t end = md__pj_bulk_end(r->p, c.txn, rc == MD_OK, err);
        rc = rc == MD_OK ? end : rc;
    }
    return rc;
}

/* Every key and value of every projection database, in order. */
static void assert_same_dbs(md_store_t *sa, md_proj_t *a, md_store_t *sb, md_proj_t *b)
{
    md_txn_t *ta = NULL, *tb = NULL;
    assert_int_equal(md_store_read(sa, &ta, NULL), MD_OK);
    assert_int_equal(md_store_read(sb, &tb, NULL), MD_OK);
    for (int db = 0; db < PJ_DB_COUNT_; db++) {
        MDB_cursor *ca = NULL, *cb = NULL;
        MDB_val ka, va, kb, vb;
        assert_int_equal(mdb_cursor_open(md_txn_mdb(ta), a->dbi[db], &ca), MDB_SUCCESS);
        assert_int_equal(mdb_cursor_open(md_txn_mdb(tb), b->dbi[db], &cb), MDB_SUCCESS);
        int ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST),
            rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
        size_t n = 0;
        for (; ra == MDB_SUCCESS && rb == MDB_SUCCESS; n++) {
            assert_int_equal(ka.mv_size, kb.mv_size);
            assert_memory_equal(ka.mv_data, kb.mv_data, ka.mv_size);
            assert_int_equal(va.mv_size, vb.mv_size);
            if (va.mv_size)
                assert_memory_equal(va.mv_data, vb.mv_data, va.mv_size);
            ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
            rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
        }
        assert_int_equal(ra, MDB_NOTFOUND);
        assert_int_equal(rb, MDB_NOTFOUND);
        mdb_cursor_close(ca);
        mdb_cursor_close(cb);
    }
    md_txn_end(ta);
    md_txn_end(tb);
}

/* Bulk mode (log, cache, spill, sorted writes, early writes under tight bounds,
 * into empty or filled databases) leaves every database as the live path (one
 * put or delete after another) does, and every load in between reads what the
 * live path reads. */
static void test_proj_bulk_matches_live(void **state)
{
    static const struct {
        uint64_t seed;
        size_t ops, bulk_max, spill_max;
        bool prefill;
    } cases[] = {
        {1, 6000, 0, 0, false},     {2, 6000, 0, 0, true},         {3, 6000, 2048, 512, false},
        {4, 6000, 2048, 512, true}, {5, 20000, 65536, 4096, true}, {6, 3000, 1, 1, true},
    };
    (void)state;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char *da = md_test_tmpdir(), *db = md_test_tmpdir();
        md_store_t *sa = NULL, *sb = NULL;
        md_proj_t *pa = NULL, *pb = NULL;
        ops_t pre = {0}, o = {0};
        assert_int_equal(md_store_open(da, NULL, &sa, NULL), MD_OK);
        assert_int_equal(md_store_open(db, NULL, &sb, NULL), MD_OK);
        assert_int_equal(md_proj_open(sa, &pa, NULL), MD_OK);
        assert_int_equal(md_proj_open(sb, &pb, NULL), MD_OK);
        if (cases[ci].prefill) { /* the same data in both, written live */
            ops_gen(&pre, cases[ci].seed + 100, 3000, true);
            run_t ra = {pa, &pre, 0, false, 0, 0}, rb = {pb, &pre, 1, false, 0, 0};
            assert_int_equal(md_store_write(sa, run_fn, &ra, NULL), MD_OK);
            assert_int_equal(md_store_write(sb, run_fn, &rb, NULL), MD_OK);
        }
        ops_gen(&o, cases[ci].seed, cases[ci].ops, true);
        run_t ra = {pa, &o, 0, false, 0, 0};
        run_t rb = {pb,
                    &o,
                    1,
                    true,
                    cases[ci].bulk_max ? cases[ci].bulk_max : PJ_BULK_MAX,
                    cases[ci].spill_max ? cases[ci].spill_max : PJ_SPILL_MAX};
        assert_int_equal(md_store_write(sa, run_fn, &ra, NULL), MD_OK);
        assert_int_equal(md_store_write(sb, run_fn, &rb, NULL), MD_OK);
        for (size_t i = 0; i < o.nloads; i++) {
            const unsigned char *l = o.loads + 2 * i * (1 + sizeof(trec_t));
            assert_memory_equal(l, l + 1 + sizeof(trec_t), 1 + sizeof(trec_t));
        }
        assert_false(pb->bulk);
        assert_same_dbs(sa, pa, sb, pb);
        free(pre.v), free(pre.loads), free(o.v), free(o.loads);
        md_proj_free(pa), md_proj_free(pb);
        md_store_free(sa), md_store_free(sb);
        md_test_rmdir(da), md_test_rmdir(db);
    }
}

static void set_threads(const char *v)
{
    if (v)
        setenv("MARKETD_REPLAY_THREADS", v, 1);
    else
        unsetenv("MARKETD_REPLAY_THREADS");
}

/* Rebuild, verify and replay give the live projections in one thread, with a
 * helper thread (forced: the demo is short), with writes forced early by tight
 * bounds, and when the helper gives up (its records outgrow the bound) and the
 * replay runs again in one thread. */
static void test_proj_lanes_match_live(void **state)
{
    proj_fx_t *f = *state;
    static const struct {
        const char *threads;
        size_t bulk_max, spill_max;
    } cases[] = {{"1", 0, 0}, {"2", 0, 0}, {"2", 0, 1}, {"2", 1, 1}, {"1", 1, 1}, {NULL, 0, 0}};
    md_proj_digest_t live, d;
    uint64_t head, n;
    proj_fx_digest(f, &live, &head);
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        set_threads(cases[ci].threads);
        f->proj->bulk_max = cases[ci].bulk_max ? cases[ci].bulk_max : PJ_BULK_MAX;
        f->proj->spill_max = cases[ci].spill_max ? cases[ci].spill_max : PJ_SPILL_MAX;
        n = 0;
        unsigned long asides = f->proj->asides, by_helper = f->proj->sorts[0],
                      by_writer = f->proj->sorts[1];
        assert_int_equal(md_proj_rebuild(f->proj, NULL, NULL, &n, NULL), MD_OK);
        assert_int_equal(n, head);
        if (cases[ci].threads && strcmp(cases[ci].threads, "2") == 0 && !cases[ci].bulk_max) {
            assert_true(f->proj->asides > asides); /* the writer's last log, aside */
            /* the helper's logs and spills: sorted by each lane in turn */
            assert_true(f->proj->sorts[0] > by_helper);
            assert_true(f->proj->sorts[1] > by_writer);
        } else if (!cases[ci].threads || strcmp(cases[ci].threads, "1") == 0) {
            assert_int_equal(f->proj->asides, asides); /* one thread: never */
            assert_int_equal(f->proj->sorts[0], by_helper);
            assert_int_equal(f->proj->sorts[1], by_writer);
        }
        proj_fx_digest(f, &d, &n);
        assert_memory_equal(&live, &d, sizeof d);
        assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
        /* a replay of the whole log */
        char *dir = md_test_tmpdir();
        md_txn_t *t = NULL;
        assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
        assert_int_equal(md_proj_replay(t, head, dir, NULL, NULL, &n, NULL), MD_OK);
        md_txn_end(t);
        proj_fx_dir_digest(dir, &d);
        assert_memory_equal(&live, &d, sizeof d);
        md_test_rmdir(dir);
    }
    set_threads(NULL);
    f->proj->bulk_max = PJ_BULK_MAX;
    f->proj->spill_max = PJ_SPILL_MAX;
}

/* Catch-up from the middle of the log runs in bulk mode over filled databases
 * (a miss reads LMDB, a delete is a tombstone): it must equal live application,
 * also with writes forced early. */
static void test_proj_catch_up_middle(void **state)
{
    md_proj_digest_t live, d;
    uint64_t head, h2;
    proj_fx_digest(*state, &live, &head);
    for (size_t tight = 0; tight < 2; tight++) {
        proj_fx_t *f = proj_fx_new(false);
        assert_int_equal(proj_fx_run_file(f, proj_fx_demo_path(), 7, 30), 30);
        assert_int_equal(md_proj_open(f->store, &f->proj, NULL), MD_OK); /* catch-up from 1 */
        /* the rest without the hook, then a catch-up from where the projections stand */
        assert_true(proj_fx_run_file(f, proj_fx_demo_path(), 5, 0) > 0);
        f->proj->bulk_max = tight ? 1 : PJ_BULK_MAX;
        f->proj->spill_max = tight ? 1 : PJ_SPILL_MAX;
        assert_int_equal(md__pj_catch_up(f->proj, NULL), MD_OK);
        proj_fx_digest(f, &d, &h2);
        assert_int_equal(h2, head);
        assert_memory_equal(&live, &d, sizeof d);
        assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
        proj_fx_free(f);
    }
}

/* ---- engine batches in bulk mode (md_proj_batch_begin/end) ----------------------------- */

/* The demo day's lines (a NULL-terminated array; free with free_lines). */
static char **demo_lines(size_t *n)
{
    FILE *fp = fopen(proj_fx_demo_path(), "r");
    char **v = md_calloc(256, sizeof *v), *line = NULL;
    size_t cap = 0;
    ssize_t len;
    assert_non_null(fp);
    *n = 0;
    while ((len = getline(&line, &cap, fp)) > 0 && *n < 255) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len > 0)
            v[(*n)++] = md_strdup(line);
    }
    free(line);
    fclose(fp);
    return v;
}

static void free_lines(char **v)
{
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* Runs lines [from, to) in batches of @p batch. */
static void run_range(proj_fx_t *f, char **v, size_t from, size_t to, size_t batch)
{
    for (size_t i = from; i < to; i += batch) {
        size_t n = to - i < batch ? to - i : batch;
        assert_int_equal(proj_fx_run(f, (const char *const *)v + i, n), MD_OK);
    }
}

/* Projections written per batch (bulk mode, sorted at the batch's end) are those
 * written event by event (the hook alone), seq included. */
static void test_proj_batch_mode_matches_per_event(void **state)
{
    proj_fx_t *f = proj_fx_new(true), *g = proj_fx_new(false);
    md_proj_digest_t a, b;
    uint64_t ha, hb, sa = 0, sb = 0;
    size_t n;
    char **v = demo_lines(&n);
    (void)state;
    assert_int_equal(md_proj_open(g->store, &g->proj, NULL), MD_OK);
    assert_int_equal(md_engine_add_hook(g->eng, md_proj_event_hook, g->proj, NULL), MD_OK);
    run_range(f, v, 0, n, 5);
    run_range(g, v, 0, n, 5);
    proj_fx_digest(f, &a, &ha);
    proj_fx_digest(g, &b, &hb);
    assert_true(ha > 50);
    assert_int_equal(ha, hb);
    assert_memory_equal(&a, &b, sizeof a);
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_seq(f->proj, t, &sa, NULL), MD_OK);
    md_txn_end(t);
    assert_int_equal(md_store_read(g->store, &t, NULL), MD_OK);
    assert_int_equal(md_proj_seq(g->proj, t, &sb, NULL), MD_OK);
    md_txn_end(t);
    assert_int_equal(sa, ha);
    assert_int_equal(sb, hb);
    assert_false(f->proj->bulk || f->proj->batch);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
    free_lines(v);
    proj_fx_free(f);
    proj_fx_free(g);
}

static int fail_events; /* events left before fail_hook fails; < 0: never */

static md_err_t fail_hook(md_txn_t *t, const md_event_t *ev, void *ctx, md_error_t *err)
{
    (void)t, (void)ev, (void)ctx;
    if (fail_events >= 0 && fail_events-- == 0)
        return md_error_set(err, MD_ESTORE, "failing on purpose");
    return MD_OK;
}

/* A batch that fails after its events were applied in bulk mode leaves nothing:
 * the next batch (other commands) starts clean, and the projections are those
 * of a store that never saw the failed batch. */
static void test_proj_failed_batch_leaves_nothing(void **state)
{
    proj_fx_t *f = proj_fx_new(true), *g = proj_fx_new(true);
    md_proj_digest_t a, b;
    uint64_t ha, hb;
    size_t n;
    char **v = demo_lines(&n);
    (void)state;
    assert_true(n > 45);
    assert_int_equal(md_engine_add_hook(f->eng, fail_hook, NULL, NULL), MD_OK);
    fail_events = -1;
    run_range(f, v, 0, 30, 10);
    fail_events = 8; /* the 9th event of the next batch fails, after 8 were applied */
    assert_int_equal(proj_fx_run(f, (const char *const *)v + 30, 15), MD_ESTORE);
    assert_true(f->proj->batch); /* its bulk mode was left open by the failure */
    fail_events = -1;
    run_range(f, v, 45, n, 10);
    run_range(g, v, 0, 30, 10);
    run_range(g, v, 45, n, 10);
    proj_fx_digest(f, &a, &ha);
    proj_fx_digest(g, &b, &hb);
    assert_int_equal(ha, hb);
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(proj_fx_verify(f, NULL), MD_OK);
    free_lines(v);
    proj_fx_free(f);
    proj_fx_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proj_types_sorted),
        cmocka_unit_test(test_proj_days),
        cmocka_unit_test_setup_teardown(test_proj_demo_orders, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_demo_accounts, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_demo_audit, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_demo_clause, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_demo_sales_records, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_paging, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_audit_epochs, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_orders_by_buyer_epochs, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_verify_ok, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_verify_detects_tamper, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_verify_names_each_difference, demo_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_verify_names_writer_lane_difference, demo_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_replay_matches_live, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_batching_independent, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_catch_up, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_env_advance_bounded, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_old_format_rebuilt, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_newer_format_refused, demo_setup, fx_teardown),
        cmocka_unit_test(test_proj_absent_read_only),
        cmocka_unit_test(test_proj_rules_world),
        cmocka_unit_test(test_proj_bulk_matches_live),
        cmocka_unit_test_setup_teardown(test_proj_lanes_match_live, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_proj_catch_up_middle, demo_setup, fx_teardown),
        cmocka_unit_test(test_proj_batch_mode_matches_per_event),
        cmocka_unit_test(test_proj_failed_batch_leaves_nothing),
    };
    return cmocka_run_group_tests_name("proj", tests, NULL, NULL);
}
