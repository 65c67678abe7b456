/*
 * test_intake.c - intake records (md_store.h) and the offsets check
 * (md_intake.h) on real LMDB files: batches recorded as the consumer records
 * them; a clean store passes; a stored offset moved forward fails naming the
 * partition and offsets (whether or not the daemon ran on from it); an
 * observed gap is accepted; a missing record, a removed offset fail; a store
 * without records verifies (absent) and one upgraded later gets a baseline;
 * the offsets of a checkpoint this store queued are compared with the intake
 * state at its mark.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_intake.h"

#define TOPIC "market.commands"

typedef struct fx {
    char *dir;
    md_store_t *s;
} fx_t;

static int setup(void **state)
{
    fx_t *f = md_calloc(1, sizeof *f);
    md_store_opts_t o = {.nosync = true};
    f->dir = md_test_tmpdir();
    if (md_store_open(f->dir, &o, &f->s, NULL) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* ---- a batch as the consumer writes it ------------------------------------------------ */

typedef struct batch {
    int32_t partition;
    int64_t from, first, last; /* messages first..last (every offset), `from` expected */
    int64_t skip;              /* an offset in first..last without a message (0: none) */
    const char *mark;          /* a replica: a checkpoint mark after the batch */
    uint64_t seq;              /* out: the head after the batch */
} batch_t;

static md_err_t batch_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    batch_t *b = ctx;
    md_event_t ev;
    md_buf_t buf;
    md_intake_t r = {0};
    md_buf_init(&buf);
    md_test_event(&ev, &buf, "s-1", "Thing", b->first);
    md_err_t rc = md_txn_append(t, &ev, err);
    md_buf_release(&buf);
    if (rc == MD_OK)
        rc = md_txn_offset_put(t, TOPIC, b->partition, b->last + 1, err);
    md_intake_reset(&r, TOPIC);
    for (int64_t o = b->first; o <= b->last; o++)
        if (o != b->skip || o == 0)
            md_intake_add(&r, b->partition, o, b->from);
    if (rc == MD_OK)
        rc = md_txn_intake_put(t, &r, err);
    b->seq = r.seq;
    md_intake_release(&r);
    if (rc == MD_OK && b->mark)
        rc = md_txn_intake_mark(t, b->mark, b->seq, err);
    return rc;
}

static uint64_t run(fx_t *f, int32_t partition, int64_t from, int64_t first, int64_t last)
{
    batch_t b = {partition, from, first, last, 0, NULL, 0};
    md_error_t err = {0};
    assert_int_equal(md_store_write(f->s, batch_fn, &b, &err), MD_OK);
    return b.seq;
}

static uint64_t run_marked(fx_t *f, int64_t from, int64_t first, int64_t last, const char *r)
{
    batch_t b = {0, from, first, last, 0, r, 0};
    md_error_t err = {0};
    assert_int_equal(md_store_write(f->s, batch_fn, &b, &err), MD_OK);
    return b.seq;
}

/* Three batches on partition 0 (0..9, 10..39, 40..65) and one on partition 1 (0..6). */
static void clean_history(fx_t *f)
{
    run(f, 0, MD_INTAKE_NONE, 0, 9);
    run(f, 1, MD_INTAKE_NONE, 0, 6);
    run(f, 0, 10, 10, 39);
    run(f, 0, 40, 40, 65);
}

static md_err_t verify(fx_t *f, md_intake_report_t *rep, md_error_t *err)
{
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->s, &t, err), MD_OK);
    md_err_t rc = md_intake_verify(t, rep, err);
    md_txn_end(t);
    return rc;
}

static void expect_failure(fx_t *f, const char *msg)
{
    md_intake_report_t rep;
    md_error_t err = {0};
    assert_int_equal(verify(f, &rep, &err), MD_ECORRUPT);
    if (strstr(err.msg, msg) == NULL)
        fail_msg("expected '%s' in '%s'", msg, err.msg);
}

typedef struct put {
    int32_t partition;
    int64_t next; /* < 0: delete */
} put_t;

static md_err_t put_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    const put_t *p = ctx;
    return md_txn_offset_put(t, TOPIC, p->partition, p->next, err);
}

/* The attack: the stored offset moved (daemon stopped). */
static void move_offset(fx_t *f, int32_t partition, int64_t next)
{
    put_t p = {partition, next};
    md_error_t err = {0};
    assert_int_equal(md_store_write(f->s, put_fn, &p, &err), MD_OK);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_intake_clean_store_passes(void **state)
{
    fx_t *f = *state;
    md_intake_report_t rep;
    md_error_t err = {0};
    clean_history(f);
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_false(rep.absent);
    assert_int_equal(rep.batches, 4);
    assert_int_equal(rep.messages, 10 + 7 + 30 + 26);
    assert_int_equal(rep.partitions, 2);
    assert_int_equal(rep.gaps, 0);
    assert_int_equal(rep.first_seq, 1);
}

static void test_intake_moved_offset_fails(void **state)
{
    fx_t *f = *state;
    clean_history(f);
    move_offset(f, 0, 69); /* three commands never decided */
    expect_failure(f, "offsets: market.commands partition 0: the stored next offset is 69, but the "
                      "last intake record (record 4, seq 4) stored 66: offsets 66..68 would never "
                      "be consumed");
}

/* The daemon restarted on the moved offset: its next batch begins there. */
static void test_intake_moved_offset_then_consumed_fails(void **state)
{
    fx_t *f = *state;
    clean_history(f);
    move_offset(f, 0, 69);
    run(f, 0, 69, 69, 80);
    expect_failure(f,
                   "offsets: market.commands partition 0: batch record 5 (seq 5) began at offset "
                   "69, but the previous batch (record 4, seq 4) ended at 66: offsets 66..68 "
                   "were never consumed");
}

/* The broker had no message at 66..67 (e.g. transaction markers), then reset the
 * position to the log's start: what the consumer observed is accepted. */
static void test_intake_observed_gap_accepted(void **state)
{
    fx_t *f = *state;
    md_intake_report_t rep;
    md_error_t err = {0};
    clean_history(f);
    run(f, 0, 66, 68, 70);
    batch_t b = {0, 71, 71, 75, 73, NULL, 0}; /* 73 missing inside a batch */
    assert_int_equal(md_store_write(f->s, batch_fn, &b, &err), MD_OK);
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_int_equal(rep.gaps, 1);
    assert_int_equal(rep.gap_offsets, 2);
    assert_int_equal(rep.messages, 73 + 3 + 4);
    assert_int_equal(rep.resets, 0);
    run(f, 0, 76, 0, 5); /* asked for 76, the broker reset to the log's start */
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_int_equal(rep.resets, 1);
}

/* An offset moved backwards: commands consumed twice (decided as duplicates). */
static void test_intake_moved_back_fails(void **state)
{
    fx_t *f = *state;
    clean_history(f);
    run(f, 0, 60, 60, 70);
    expect_failure(f, "began at offset 60, but the previous batch (record 4, seq 4) ended at 66: "
                      "offsets 60..65 were consumed twice");
}

static void test_intake_removed_offset_fails(void **state)
{
    fx_t *f = *state;
    clean_history(f);
    run(f, 1, MD_INTAKE_NONE, 0, 3); /* the consumer found nothing stored */
    expect_failure(f, "market.commands partition 1: batch record 5 (seq 5) began with no stored "
                      "offset, but record 2 had stored next 7: the stored offset was removed");
}

static md_err_t del_record_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    unsigned char k[8] = {0, 0, 0, 0, 0, 0, 0, *(unsigned char *)ctx};
    MDB_val key = {8, k};
    return md_store_err(mdb_del(md_txn_mdb(t), md_txn_dbi(t, MD_DB_INTAKE), &key, NULL), err,
                        "delete");
}

static void test_intake_missing_record_fails(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    unsigned char n = 3;
    clean_history(f);
    assert_int_equal(md_store_write(f->s, del_record_fn, &n, &err), MD_OK);
    expect_failure(f, "offsets: intake record 3 is missing (record 4 follows record 2)");
    n = 0;
    assert_int_equal(md_store_write(f->s, del_record_fn, &n, &err), MD_OK);
    expect_failure(f, "the intake records begin at record 1, without their baseline");
}

/* A store written before intake records: absent, passes; its first batch writes a baseline. */
static void test_intake_older_store(void **state)
{
    fx_t *f = *state;
    md_intake_report_t rep;
    md_error_t err = {0};
    move_offset(f, 0, 500);
    move_offset(f, 3, 40);
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_true(rep.absent);
    run(f, 0, 500, 500, 510);
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_false(rep.absent);
    assert_int_equal(rep.partitions, 2); /* 0 and 3, from the baseline */
    move_offset(f, 3, 45);
    expect_failure(f, "market.commands partition 3: the stored next offset is 45, but the last "
                      "intake record (record 0, seq 1) stored 40");
}

static md_err_t drop_intake_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    return md_store_err(mdb_drop(md_txn_mdb(t), md_txn_dbi(t, MD_DB_INTAKE), 1), err, "drop");
}

/* A store from before the intake database, opened read-only (as marketctl does): absent. */
static void test_intake_store_without_the_database(void **state)
{
    fx_t *f = *state;
    md_intake_report_t rep;
    md_error_t err = {0};
    md_store_opts_t ro = {.read_only = true};
    clean_history(f);
    assert_int_equal(md_store_write(f->s, drop_intake_fn, NULL, &err), MD_OK);
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, &ro, &f->s, &err), MD_OK);
    assert_int_equal(verify(f, &rep, &err), MD_OK);
    assert_true(rep.absent);
}

/* ---- checkpoints --------------------------------------------------------------------------- */

static md_err_t check_cps(fx_t *f, md_checkpoint_t *cps, size_t n, md_intake_cp_report_t *rep,
                          md_error_t *err)
{
    md_cp_set_t s = {.cps = cps, .n = n};
    md_txn_t *t = NULL;
    assert_int_equal(md_store_read(f->s, &t, err), MD_OK);
    md_err_t rc = md_intake_check_checkpoints(t, &s, rep, err);
    md_txn_end(t);
    return rc;
}

static void test_intake_checkpoint_offsets(void **state)
{
    fx_t *f = *state;
    md_intake_cp_report_t rep;
    md_error_t err = {0};
    md_cp_offset_t off[2] = {{TOPIC, 0, 40}, {TOPIC, 1, 7}}, other = {TOPIC, 0, 38};
    run(f, 1, MD_INTAKE_NONE, 0, 6);
    run(f, 0, MD_INTAKE_NONE, 0, 9);
    uint64_t s1 = run_marked(f, 10, 10, 39, "r1");
    run_marked(f, 40, 40, 49, "r1");
    md_checkpoint_t cps[2] = {{.replica = "r1", .seq = s1, .offsets = off, .noffsets = 2},
                              {.replica = "r2", .seq = s1, .offsets = &other, .noffsets = 1}};
    assert_int_equal(check_cps(f, cps, 2, &rep, &err), MD_OK);
    assert_int_equal(rep.compared, 1);
    assert_int_equal(rep.unmatched_marks, 1); /* the second mark's checkpoint is not in the set */
    assert_int_equal(rep.other, 1);           /* r2's, with its own batching: not compared */
    off[0].next = 43; /* the signed offset is not what the store's intake says */
    assert_int_equal(check_cps(f, cps, 1, &rep, &err), MD_ECORRUPT);
    assert_string_equal(err.msg, "offsets: checkpoint 1 (replica r1, seq 3, intake record 4): "
                                 "market.commands partition 0: signed next 43, but this store's "
                                 "intake there says next 40");
    off[0].next = 40;
    cps[0].noffsets = 1; /* partition 1 left out */
    md_error_clear(&err);
    assert_int_equal(check_cps(f, cps, 1, &rep, &err), MD_ECORRUPT);
    assert_non_null(strstr(err.msg, "partition 1: signed no offset, but this store's intake "
                                    "there says next 7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_intake_clean_store_passes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_moved_offset_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_moved_offset_then_consumed_fails, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_intake_observed_gap_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_moved_back_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_removed_offset_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_missing_record_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_older_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_store_without_the_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intake_checkpoint_offsets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
