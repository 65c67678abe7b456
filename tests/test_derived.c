/*
 * test_derived.c - md_derived_verify and `marketctl verify` against tampered
 * rules' state and outcomes (real LMDB files): the demo day (timers fired,
 * Ticks) verifies; a deleted outcome, a rewritten
 * outcome, a deleted payment-reference record each fail naming the record; a
 * moved offset fails too (the intake records show it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "md_derived.h"
#include "md_rules.h"
#include "proj_fixture.h"

static int demo_setup(void **state)
{
    proj_fx_t *f = proj_fx_new(true);
    if (proj_fx_run_file(f, proj_fx_demo_path(), 16, 0) <= 0)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    proj_fx_free(*state);
    return 0;
}

static md_err_t verify(proj_fx_t *f, md_derived_report_t *rep)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    md_err_t rc = md_derived_verify(t, NULL, NULL, rep, &err);
    md_txn_end(t);
    return rc;
}

/* ---- tampering: one write transaction on a database of the store ------------------ */

typedef struct tamper {
    md_db_t db;
    const char *key;
    const char *val; /* NULL: delete */
} tamper_t;

static md_err_t tamper_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    const tamper_t *tp = ctx;
    MDB_val k = {strlen(tp->key), (void *)tp->key};
    MDB_val v = {tp->val ? strlen(tp->val) : 0, (void *)tp->val};
    int rc = tp->val ? mdb_put(md_txn_mdb(t), md_txn_dbi(t, tp->db), &k, &v, 0)
                     : mdb_del(md_txn_mdb(t), md_txn_dbi(t, tp->db), &k, NULL);
    return md_store_err(rc, err, "tamper");
}

static void tamper(proj_fx_t *f, md_db_t db, const char *key, const char *val)
{
    tamper_t tp = {db, key, val};
    md_error_t err = {0};
    assert_int_equal(md_store_write(f->store, tamper_fn, &tp, &err), MD_OK);
}

/* The first event's command id of a given type (copied to @p out). */
typedef struct find {
    const char *type;
    char *out;
} find_t;

static md_err_t find_fn(const md_event_t *ev, const void *body, size_t len, void *ctx,
                        md_error_t *err)
{
    find_t *fd = ctx;
    (void)body, (void)len, (void)err;
    if (strcmp(ev->type, fd->type) != 0 || !ev->has_command_id)
        return MD_OK;
    snprintf(fd->out, MD_CMDID_MAX + 1, "%s", ev->command_id);
    return MD_ESTOP;
}

static void command_of(proj_fx_t *f, const char *type, char out[MD_CMDID_MAX + 1])
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    find_t fd = {type, out};
    out[0] = '\0';
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_scan(t, 1, 0, find_fn, &fd, &err), MD_OK);
    md_txn_end(t);
    assert_true(out[0] != '\0');
}

/* The number of events appended by timers (command_id "timer:..."). */
static md_err_t count_timer_fn(const md_event_t *ev, const void *body, size_t len, void *ctx,
                               md_error_t *err)
{
    (void)body, (void)len, (void)err;
    *(int *)ctx += ev->has_command_id && strncmp(ev->command_id, MD_TIMER_CMDID_PREFIX,
                                                 strlen(MD_TIMER_CMDID_PREFIX)) == 0;
    return MD_OK;
}

static int timer_events(proj_fx_t *f)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    int n = 0;
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_txn_scan(t, 1, 0, count_timer_fn, &n, &err), MD_OK);
    md_txn_end(t);
    return n;
}

/* Runs `marketctl verify` on the fixture's store: its exit status, and
 * whether stdout holds @p needle. */
static int marketctl_verify(proj_fx_t *f, const char *needle, bool *found)
{
    const char *build = getenv("MARKETD_BUILD");
    char cmd[1024], line[8192];
    snprintf(cmd, sizeof cmd, "'%s/marketctl' --data-dir '%s' verify 2>/dev/null",
             build && *build ? build : "build", f->dir);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    *found = false;
    while (fgets(line, sizeof line, p))
        if (needle && strstr(line, needle))
            *found = true;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_difference(proj_fx_t *f, md_derived_db_t db, const char *key, const char *diff)
{
    md_derived_report_t rep;
    char needle[512];
    bool found = false;
    assert_int_equal(verify(f, &rep), MD_ECORRUPT);
    assert_int_equal(rep.bad, db);
    assert_string_equal(rep.key, key);
    assert_string_equal(rep.diff, diff);
    snprintf(needle, sizeof needle, "\"db\":\"%s\",\"first_differing_key\":\"%s\"",
             md_derived_name(db), key);
    assert_int_equal(marketctl_verify(f, needle, &found), 1);
    assert_true(found);
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_derived_clean_store_verifies(void **state)
{
    proj_fx_t *f = *state;
    md_derived_report_t rep;
    bool found = false;
    assert_int_equal(verify(f, &rep), MD_OK);
    assert_int_equal(rep.bad, -1);
    assert_true(rep.events > 60);
    assert_true(rep.live_entries[MD_DERIVED_STATE] > 10);
    assert_true(rep.live_entries[MD_DERIVED_OUTCOMES] > 50);
    for (int i = 0; i < MD_DERIVED_COUNT_; i++) {
        assert_int_equal(rep.live_entries[i], rep.derived_entries[i]);
        assert_memory_equal(rep.live[i], rep.derived[i], MD_HASH_LEN);
    }
    assert_int_equal(marketctl_verify(f, "\"derived\":{\"state\":", &found), 0);
    assert_true(found);
    /* the demo day fires timers and sends two Ticks */
    assert_int_equal(timer_events(f), 2);
    assert_int_equal(rep.unlogged, 2);
    assert_int_equal(marketctl_verify(f, "\"unlogged\":2", &found), 0);
    assert_true(found);
}

/* The outcome of a command accepted with no events (Tick) is in no event: taken
 * as stored, unless an event records another outcome for that command_id. */
static void test_derived_unlogged_outcome(void **state)
{
    proj_fx_t *f = *state;
    md_derived_report_t rep;
    char id[MD_CMDID_MAX + 1];
    tamper(f, MD_DB_OUTCOMES, "tick-never-logged", MD_OUTCOME_UNLOGGED);
    assert_int_equal(verify(f, &rep), MD_OK);
    assert_int_equal(rep.unlogged, 3);
    command_of(f, "OrderPaid", id);
    tamper(f, MD_DB_OUTCOMES, id, MD_OUTCOME_UNLOGGED);
    expect_difference(f, MD_DERIVED_OUTCOMES, id, "value differs");
}

/* The command would be decided again: its outcome is missing. */
static void test_derived_deleted_outcome(void **state)
{
    proj_fx_t *f = *state;
    char id[MD_CMDID_MAX + 1];
    command_of(f, "OrderPlaced", id);
    tamper(f, MD_DB_OUTCOMES, id, NULL);
    expect_difference(f, MD_DERIVED_OUTCOMES, id, "missing from the store");
}

/* A repeated command_id would get a different `duplicate` answer. */
static void test_derived_rewritten_outcome(void **state)
{
    proj_fx_t *f = *state;
    char id[MD_CMDID_MAX + 1];
    command_of(f, "OrderPaid", id);
    tamper(f, MD_DB_OUTCOMES, id, "RNOT_FOUND");
    expect_difference(f, MD_DERIVED_OUTCOMES, id, "value differs");
}

/* An outcome the log never recorded (e.g. a command marked decided that was not). */
static void test_derived_invented_outcome(void **state)
{
    proj_fx_t *f = *state;
    tamper(f, MD_DB_OUTCOMES, "never-sent", "A");
    expect_difference(f, MD_DERIVED_OUTCOMES, "never-sent", "not derived from the log");
}

/* A reused payment_ref would be accepted: its record is gone. */
static void test_derived_deleted_payment_ref(void **state)
{
    proj_fx_t *f = *state;
    tamper(f, MD_DB_STATE, "pay:pay-bob-0001", NULL);
    expect_difference(f, MD_DERIVED_STATE, "pay:pay-bob-0001", "missing from the store");
}


static md_err_t wipe_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    int rc = mdb_drop(md_txn_mdb(t), md_txn_dbi(t, MD_DB_STATE), 0);
    if (rc == MDB_SUCCESS)
        rc = mdb_drop(md_txn_mdb(t), md_txn_dbi(t, MD_DB_OUTCOMES), 0);
    return md_store_err(rc, err, "wipe");
}

/* State and outcomes both emptied: only a replay's output may lack them. */
static void test_derived_wiped_store_is_not_a_replay(void **state)
{
    proj_fx_t *f = *state;
    md_error_t err = {0};
    bool found = false;
    assert_int_equal(md_store_write(f->store, wipe_fn, NULL, &err), MD_OK);
    assert_int_equal(marketctl_verify(f, "not a replay output", &found), 1);
    assert_true(found);
}
static md_err_t offset_fn(const char *topic, int32_t partition, int64_t next, void *ctx,
                          md_error_t *err)
{
    (void)err;
    char *out = ctx;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s/%d=%lld;", topic, (int)partition, (long long)next);
    return MD_OK;
}

/* The consumer's batch: offsets stored, and its intake record (md_store.h). */
static md_err_t offsets_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_intake_t r = {0};
    md_err_t rc = md_txn_offset_put(t, "market.commands", 0, *(int64_t *)ctx, err);
    if (rc == MD_OK)
        rc = md_txn_offset_put(t, "market.commands", 1, 7, err);
    md_intake_reset(&r, "market.commands");
    for (int64_t o = 0; o < *(int64_t *)ctx; o++)
        md_intake_add(&r, 0, o, MD_INTAKE_NONE);
    for (int64_t o = 0; o < 7; o++)
        md_intake_add(&r, 1, o, MD_INTAKE_NONE);
    if (rc == MD_OK)
        rc = md_txn_intake_put(t, &r, err);
    md_intake_release(&r);
    return rc;
}

static md_err_t move_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    return md_txn_offset_put(t, "market.commands", 0, *(int64_t *)ctx, err);
}

/* An offset moved forward is not provable from the log (it does not record
 * which message a command came from), but the intake records the consumer
 * wrote with each batch show it: the stored offsets are listed, and verify
 * fails naming the partition and the skipped offsets. */
static void test_derived_offsets_moved(void **state)
{
    proj_fx_t *f = *state;
    md_error_t err = {0};
    md_txn_t *t = NULL;
    char seen[256] = "";
    bool found = false;
    int64_t next = 66;
    assert_int_equal(md_store_write(f->store, offsets_fn, &next, &err), MD_OK);
    assert_int_equal(marketctl_verify(f, "\"intake\":{\"batches\":1,\"messages\":73", &found), 0);
    assert_true(found);
    next = 69; /* moved forward: three commands never decided */
    assert_int_equal(md_store_write(f->store, move_fn, &next, &err), MD_OK);
    assert_int_equal(md_store_read(f->store, &t, &err), MD_OK);
    assert_int_equal(md_derived_offsets(t, offset_fn, seen, &err), MD_OK);
    md_txn_end(t);
    assert_string_equal(seen, "market.commands/0=69;market.commands/1=7;");
    assert_int_equal(marketctl_verify(f,
                                      "\"check\":\"offsets\",\"error\":\"offsets: market.commands "
                                      "partition 0: the stored next offset is 69, but the last "
                                      "intake record (record 1, seq ",
                                      &found),
                     1);
    assert_true(found);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_derived_clean_store_verifies, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_deleted_outcome, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_unlogged_outcome, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_wiped_store_is_not_a_replay, demo_setup,
                                        fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_rewritten_outcome, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_invented_outcome, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_deleted_payment_ref, demo_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_derived_offsets_moved, demo_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
