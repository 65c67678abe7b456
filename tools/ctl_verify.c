/*
 * ctl_verify.c - the part of `marketctl verify` that recomputes what the
 * rules derive (md_derived_verify), beside the chain and projection checks,
 * lists the stored offsets (which the log cannot prove) and checks them against the
 * intake records (md_intake_verify; docs/verify.md, "Offsets").
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "md_derived.h"
#include "md_intake.h"

struct ctl_derived {
    md_store_t *store;
    md_txn_t *t;
    pthread_t th;
    bool threaded;
    md_derived_report_t rep;
    md_err_t rc;
    md_error_t err;
};

static void *derived_main(void *arg)
{
    ctl_derived_t *d = arg;
    d->rc = md_derived_verify(d->t, NULL, NULL, &d->rep, &d->err);
    return NULL;
}

ctl_derived_t *ctl_derived_start(md_store_t *store)
{
    ctl_derived_t *d = md_calloc(1, sizeof *d);
    const char *env = getenv("MARKETD_REPLAY_THREADS");
    d->store = store;
    d->rc = md_store_read(store, &d->t, &d->err);
    /* a read transaction may move to another thread (the store sets MDB_NOTLS) */
    if (d->rc == MD_OK && !(env && strcmp(env, "1") == 0))
        d->threaded = pthread_create(&d->th, NULL, derived_main, d) == 0;
    return d;
}

static json_t *digests_json(const md_derived_report_t *rep)
{
    json_t *j = json_object();
    char hex[2 * MD_HASH_LEN + 1];
    for (int i = 0; i < MD_DERIVED_COUNT_; i++) {
        md_hex(rep->live[i], MD_HASH_LEN, hex);
        json_object_set_new(
            j, md_derived_name((md_derived_db_t)i),
            json_pack("{s:s, s:I}", "sha256", hex, "entries", (json_int_t)rep->live_entries[i]));
    }
    json_object_set_new(json_object_get(j, md_derived_name(MD_DERIVED_OUTCOMES)), "unlogged",
                        json_integer((json_int_t)rep->unlogged));
    return j;
}

static md_err_t offset_json(const char *topic, int32_t partition, int64_t next, void *ctx,
                            md_error_t *err)
{
    (void)err;
    json_array_append_new(ctx, json_pack("{s:s, s:i, s:I}", "topic", topic, "partition",
                                         (int)partition, "next", (json_int_t)next));
    return MD_OK;
}

static int print_line(json_t *j)
{
    int rc = json_dumpf(j, stdout, JSON_COMPACT);
    json_decref(j);
    return rc == 0 && fputc('\n', stdout) != EOF && fflush(stdout) == 0 ? 0 : 1;
}

/* The failure object of a difference (printed) and its stderr line. */
static int report_difference(const ctl_derived_t *d)
{
    const md_derived_report_t *rep = &d->rep;
    json_t *j =
        rep->bad >= 0
            ? json_pack("{s:b, s:s, s:s, s:s, s:s, s:s}", "ok", 0, "check", "derived", "db",
                        md_derived_name((md_derived_db_t)rep->bad), "first_differing_key", rep->key,
                        "difference", rep->diff, "error", d->err.msg)
            : json_pack("{s:b, s:s, s:s}", "ok", 0, "check", "derived", "error", d->err.msg);
    print_line(j);
    fprintf(stderr, "marketctl: verify failed: %s\n", d->err.msg);
    return 1;
}

/*
 * The consumed offsets against the intake records (md_intake_verify): adds
 * "intake" to @p ok, or reports the first failure as check "offsets".
 * Returns 0 when they hold, 1 after a failure was reported.
 */
static int check_intake(md_txn_t *t, json_t *ok, md_error_t *err)
{
    md_intake_report_t r;
    md_error_t e = {0};
    md_err_t rc = md_intake_verify(t, &r, &e);
    if (rc == MD_ECORRUPT) {
        print_line(json_pack("{s:b, s:s, s:s}", "ok", 0, "check", "offsets", "error", e.msg));
        fprintf(stderr, "marketctl: verify failed: %s\n", e.msg);
        return 1;
    }
    if (rc != MD_OK) {
        md_error_set(err, rc, "intake records: %s", e.msg);
        return 1;
    }
    if (r.absent) {
        fprintf(stderr, "marketctl: verify: no intake records (a store written before them): "
                        "the stored offsets are not checked\n");
        json_object_set_new(ok, "intake", json_string("absent"));
        return 0;
    }
    json_object_set_new(ok, "intake",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "batches",
                                  (json_int_t)r.batches, "messages", (json_int_t)r.messages,
                                  "partitions", (json_int_t)r.partitions, "observed_gaps",
                                  (json_int_t)r.gaps, "gap_offsets", (json_int_t)r.gap_offsets,
                                  "observed_resets", (json_int_t)r.resets, "checkpoint_marks",
                                  (json_int_t)r.marks, "first_seq", (json_int_t)r.first_seq));
    if (r.uncovered)
        fprintf(stderr,
                "marketctl: verify: %llu stored offsets of topics without intake records "
                "are not checked\n",
                (unsigned long long)r.uncovered);
    return 0;
}

/* A store written by marketctl replay carries MD_META_REPLAY_UNTIL. */
static bool is_replay(md_txn_t *t)
{
    const void *v;
    size_t len;
    md_error_t e = {0};
    return md_txn_meta_get(t, MD_META_REPLAY_UNTIL, &v, &len, &e) == MD_OK;
}

/* Neither state nor outcomes in a store that is not a replay's output: they were removed. */
static int report_missing(ctl_derived_t *d)
{
    char msg[sizeof d->err.msg];
    snprintf(msg, sizeof msg, "%.200s, and the store is not a replay output", d->err.msg);
    md_error_clear(&d->err);
    md_error_set(&d->err, MD_ECORRUPT, "%s", msg);
    d->rep.bad = -1;
    return report_difference(d);
}

int ctl_derived_end(ctl_derived_t *d, json_t *ok, md_error_t *err)
{
    int status = 1;
    if (d->threaded)
        pthread_join(d->th, NULL);
    else if (d->rc == MD_OK && ok)
        derived_main(d);
    if (ok == NULL) {
        status = 1; /* verify failed already: nothing more to say */
    } else if (d->rc == MD_ECORRUPT) {
        status = report_difference(d);
    } else if (d->rc == MD_ENOTFOUND && !is_replay(d->t)) {
        status = report_missing(d); /* wiped state and outcomes are not a replay */
    } else if (d->rc == MD_ENOTFOUND) {
        fprintf(stderr, "marketctl: verify: %s; state and outcomes not checked\n", d->err.msg);
        json_object_set_new(ok, "derived", json_string("absent"));
        status = print_line(json_incref(ok));
    } else if (d->rc != MD_OK) {
        md_error_set(err, d->rc, "derived records: %s", d->err.msg);
    } else {
        json_t *offsets = json_array();
        md_err_t rc = md_derived_offsets(d->t, offset_json, offsets, err);
        json_object_set_new(ok, "derived", digests_json(&d->rep));
        json_object_set_new(ok, "offsets", offsets);
        bool held = rc == MD_OK && check_intake(d->t, ok, err) == 0;
        if (held)
            status = print_line(json_incref(ok));
        if (status != 0 && held)
            md_error_set(err, MD_EIO, "write to stdout failed");
    }
    json_decref(ok);
    md_txn_end(d->t);
    free(d);
    return status;
}
