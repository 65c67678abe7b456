/*
 * test_store.c - the LMDB event store on real files: appends, versions,
 * idempotency outcomes, offsets, outbox, reopen, map growth, snapshots and
 * tamper detection by the chain verifier.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "fixture.h"
#include "md_store.h"

typedef struct fx {
    char *dir;
    md_store_t *s;
} fx_t;

static int fx_setup(void **state)
{
    fx_t *f = md_calloc(1, sizeof *f);
    f->dir = md_test_tmpdir();
    if (md_store_open(f->dir, NULL, &f->s, NULL) != MD_OK)
        return -1;
    *state = f;
    return 0;
}

static int fx_teardown(void **state)
{
    fx_t *f = *state;
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

/* A batch to append: n events, stream chosen by i % nstreams. */
typedef struct batch {
    const char *const *streams;
    int nstreams;
    int64_t first, n;
    uint64_t last_seq, last_version;
} batch_t;

static md_err_t append_batch(md_txn_t *t, void *ctx, md_error_t *err)
{
    batch_t *b = ctx;
    md_buf_t buf;
    md_buf_init(&buf);
    md_err_t rc = MD_OK;
    for (int64_t i = b->first; i < b->first + b->n && rc == MD_OK; i++) {
        md_event_t ev;
        md_test_event(&ev, &buf, b->streams[i % b->nstreams], "Tested", i);
        rc = md_txn_append(t, &ev, err);
        b->last_seq = ev.seq;
        b->last_version = ev.version;
    }
    md_buf_release(&buf);
    return rc;
}

static void append_n(md_store_t *s, const char *const *streams, int nstreams, int64_t first,
                     int64_t n)
{
    batch_t b = {streams, nstreams, first, n, 0, 0};
    md_error_t err = {0};
    assert_int_equal(md_store_write(s, append_batch, &b, &err), MD_OK);
}

static const char *const two_streams[] = {"member:a", "member:ab"};

static md_err_t count_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                            md_error_t *err)
{
    (void)body, (void)len, (void)err, (void)ev;
    (*(uint64_t *)ctx)++;
    return MD_OK;
}

static uint64_t count_events(md_store_t *s)
{
    md_txn_t *t = NULL;
    uint64_t n = 0;
    assert_int_equal(md_store_read(s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_scan(t, 1, 0, count_event, &n, NULL), MD_OK);
    md_txn_end(t);
    return n;
}

static void test_store_append_assigns_seq_and_version(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    md_event_t ev;
    uint64_t v, head;
    append_n(f->s, two_streams, 2, 0, 5);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_stream_version(t, "member:a", &v, NULL), MD_OK);
    assert_int_equal(v, 3); /* events 0, 2, 4 */
    assert_int_equal(md_txn_stream_version(t, "member:ab", &v, NULL), MD_OK);
    assert_int_equal(v, 2);
    assert_int_equal(md_txn_stream_version(t, "member:b", &v, NULL), MD_OK);
    assert_int_equal(v, 0);
    assert_int_equal(md_txn_head(t, &head, NULL, NULL), MD_OK);
    assert_int_equal(head, 5);
    assert_int_equal(md_txn_event(t, 4, &ev, NULL, NULL, NULL), MD_OK);
    assert_string_equal(ev.stream, "member:ab");
    assert_int_equal(ev.version, 2);
    assert_int_equal(md_txn_event(t, 6, &ev, NULL, NULL, NULL), MD_ENOTFOUND);
    md_txn_end(t);
}

typedef struct seen {
    uint64_t seqs[16];
    int n;
} seen_t;

static md_err_t collect(const md_event_t *ev, const void *body, size_t len, void *ctx,
                        md_error_t *err)
{
    (void)body, (void)len, (void)err;
    seen_t *s = ctx;
    s->seqs[s->n++] = ev->seq;
    return s->n == 16 ? MD_ESTOP : MD_OK;
}

static void test_store_scan_by_range_and_stream(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    seen_t s = {0};
    append_n(f->s, two_streams, 2, 0, 10);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_scan(t, 4, 3, collect, &s, NULL), MD_OK);
    assert_int_equal(s.n, 3);
    assert_true(s.seqs[0] == 4 && s.seqs[2] == 6);
    memset(&s, 0, sizeof s);
    assert_int_equal(md_txn_scan_stream(t, "member:ab", 2, 0, collect, &s, NULL), MD_OK);
    assert_int_equal(s.n, 4); /* versions 2..5 of member:ab are seqs 4, 6, 8, 10 */
    assert_true(s.seqs[0] == 4 && s.seqs[3] == 10);
    md_txn_end(t);
}

typedef struct kv_ctx {
    int phase;
} kv_ctx_t;

static md_err_t write_kv(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    md_err_t rc = md_txn_outcome_put(t, "c-1", "accepted", 8, err);
    if (rc == MD_OK)
        rc = md_txn_offset_put(t, "market.commands", 2, 12345, err);
    return rc;
}

static void test_store_outcomes_and_offsets(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    const void *v;
    size_t len;
    int64_t off;
    assert_int_equal(md_store_write(f->s, write_kv, NULL, NULL), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_outcome_get(t, "c-1", &v, &len, NULL), MD_OK);
    assert_int_equal(len, 8);
    assert_memory_equal(v, "accepted", 8);
    assert_int_equal(md_txn_outcome_get(t, "c-2", &v, &len, NULL), MD_ENOTFOUND);
    assert_int_equal(md_txn_offset_get(t, "market.commands", 2, &off, NULL), MD_OK);
    assert_true(off == 12345);
    assert_int_equal(md_txn_offset_get(t, "market.commands", 1, &off, NULL), MD_ENOTFOUND);
    md_txn_end(t);
}

typedef struct ob {
    uint64_t ids[8];
    int n;
    char keys[8][16];
} ob_t;

static md_err_t outbox_put3(md_txn_t *t, void *ctx, md_error_t *err)
{
    ob_t *o = ctx;
    md_err_t rc = MD_OK;
    o->n = 0;
    for (int i = 0; i < 3 && rc == MD_OK; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        md_outbox_msg_t m = {.topic = "market.results",
                             .key = key,
                             .key_len = strlen(key),
                             .headers = "reason\0x\0",
                             .headers_len = 9,
                             .value = "{}",
                             .value_len = 2};
        rc = md_txn_outbox_put(t, &m, &o->ids[o->n++], err);
    }
    return rc;
}

static md_err_t outbox_collect(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    ob_t *o = ctx;
    o->ids[o->n] = m->id;
    snprintf(o->keys[o->n], sizeof o->keys[0], "%.*s", (int)m->key_len, (const char *)m->key);
    assert_string_equal(m->topic, "market.results");
    assert_int_equal(m->value_len, 2);
    assert_int_equal(m->headers_len, 9);
    assert_memory_equal(m->headers, "reason\0x\0", 9);
    o->n++;
    return MD_OK;
}

static md_err_t outbox_del_all(md_txn_t *t, void *ctx, md_error_t *err)
{
    ob_t *o = ctx;
    md_err_t rc = MD_OK;
    for (int i = 0; i < o->n && rc == MD_OK; i++)
        rc = md_txn_outbox_del(t, o->ids[i], err);
    return rc;
}

static void test_store_outbox_ids_never_repeat(void **state)
{
    fx_t *f = *state;
    ob_t put = {0}, got = {0};
    md_txn_t *t = NULL;
    assert_int_equal(md_store_write(f->s, outbox_put3, &put, NULL), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_outbox_scan(t, 0, 0, outbox_collect, &got, NULL), MD_OK);
    md_txn_end(t);
    assert_int_equal(got.n, 3);
    assert_string_equal(got.keys[2], "k2");
    assert_int_equal(md_store_write(f->s, outbox_del_all, &got, NULL), MD_OK);
    assert_int_equal(md_store_write(f->s, outbox_put3, &put, NULL), MD_OK);
    assert_true(put.ids[0] == got.ids[2] + 1);
}

static void test_store_reopen_continues_chain(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    md_event_t e3, e4;
    uint64_t n = 0;
    append_n(f->s, two_streams, 2, 0, 3);
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, NULL), MD_OK);
    append_n(f->s, two_streams, 2, 3, 2);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_event(t, 3, &e3, NULL, NULL, NULL), MD_OK);
    assert_int_equal(md_txn_event(t, 4, &e4, NULL, NULL, NULL), MD_OK);
    assert_memory_equal(e4.prev_hash, e3.hash, MD_HASH_LEN);
    assert_int_equal(e4.version, 2); /* member:ab had event 1 before the reopen */
    assert_int_equal(md_txn_verify_chain(t, &n, NULL, NULL, NULL, NULL), MD_OK);
    assert_int_equal(n, 5);
    md_txn_end(t);
}

static void test_store_map_grows_when_full(void **state)
{
    fx_t *f = *state;
    md_store_opts_t o = {.map_size = 64 * 1024, .nosync = true};
    size_t used, size;
    md_txn_t *t = NULL;
    md_store_free(f->s);
    md_test_rmdir(f->dir);
    f->dir = md_test_tmpdir();
    assert_int_equal(md_store_open(f->dir, &o, &f->s, NULL), MD_OK);
    static const char *const many[] = {"order:o-1", "order:o-2", "member:m-1", "store:s-9"};
    for (int64_t i = 0; i < 5000; i += 250)
        append_n(f->s, many, 4, i, 250);
    assert_int_equal(md_store_usage(f->s, &used, &size, NULL), MD_OK);
    assert_true(size > 64 * 1024);
    assert_int_equal(count_events(f->s), 5000);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_verify_chain(t, NULL, NULL, NULL, NULL, NULL), MD_OK);
    md_txn_end(t);
}

typedef struct rw {
    md_store_t *s;
    volatile int done;
    int snapshots, bad;
} rw_t;

/* Reader thread: every snapshot must be a whole chain with a matching head. */
static void *reader_main(void *arg)
{
    rw_t *rw = arg;
    while (!rw->done) {
        md_txn_t *t = NULL;
        uint64_t head, n = 0;
        if (md_store_read(rw->s, &t, NULL) != MD_OK) {
            rw->bad++;
            break;
        }
        if (md_txn_head(t, &head, NULL, NULL) != MD_OK ||
            md_txn_verify_chain(t, &n, NULL, NULL, NULL, NULL) != MD_OK || n != head)
            rw->bad++;
        md_txn_end(t);
        rw->snapshots++;
        /* Let the writer run: under valgrind threads take turns, and a reader
         * that never pauses can starve the writer for minutes. */
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    OPENSSL_thread_stop(); /* OpenSSL keeps per-thread state for the hashing */
    return NULL;
}

static void test_store_reader_sees_snapshot_during_writes(void **state)
{
    fx_t *f = *state;
    md_txn_t *old = NULL;
    uint64_t n = 0;
    append_n(f->s, two_streams, 2, 0, 10);
    assert_int_equal(md_store_read(f->s, &old, NULL), MD_OK);
    rw_t rw = {.s = f->s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reader_main, &rw), 0);
    for (int64_t i = 10; i < 1010; i += 50)
        append_n(f->s, two_streams, 2, i, 50);
    rw.done = 1;
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(rw.bad, 0);
    assert_true(rw.snapshots > 0);
    /* The snapshot taken before the writes still holds exactly ten events. */
    assert_int_equal(md_txn_scan(old, 1, 0, count_event, &n, NULL), MD_OK);
    assert_int_equal(n, 10);
    md_txn_end(old);
    assert_int_equal(count_events(f->s), 1010);
}

static md_err_t append_bad_second(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    md_buf_t buf;
    md_event_t ev;
    md_buf_init(&buf);
    md_test_event(&ev, &buf, "member:a", "Tested", 1);
    md_err_t rc = md_txn_append(t, &ev, err);
    md_test_event(&ev, &buf, "", "Tested", 2); /* no stream: refused */
    if (rc == MD_OK)
        rc = md_txn_append(t, &ev, err);
    md_buf_release(&buf);
    return rc;
}

static void test_store_failed_batch_appends_nothing(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    assert_int_equal(md_store_write(f->s, append_bad_second, NULL, &err), MD_EINVAL);
    assert_non_null(strstr(err.msg, "stream"));
    assert_int_equal(count_events(f->s), 0);
}

/* Versions asked for inside a write transaction (which keeps them: store_events.c)
 * follow the appends of that transaction, and a failed batch leaves nothing of
 * its versions to the next one. */
static md_err_t versions_in_txn(md_txn_t *t, void *ctx, md_error_t *err)
{
    bool *fail = ctx;
    md_buf_t buf;
    md_event_t ev;
    uint64_t v = 0, w = 0;
    md_buf_init(&buf);
    md_err_t rc = md_txn_stream_version(t, "member:a", &v, err);
    for (int i = 0; rc == MD_OK && i < 3; i++) {
        md_test_event(&ev, &buf, i == 1 ? "member:ab" : "member:a", "Tested", i);
        rc = md_txn_append(t, &ev, err);
        if (rc == MD_OK)
            rc = md_txn_stream_version(t, "member:a", &w, err);
        assert_int_equal(w, v + (i == 2 ? 2 : 1));
    }
    md_buf_release(&buf);
    return rc == MD_OK && *fail ? md_error_set(err, MD_EINVAL, "failed on purpose") : rc;
}

static void test_store_versions_within_and_across_batches(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    md_txn_t *t = NULL;
    uint64_t v;
    bool fail = false;
    append_n(f->s, two_streams, 2, 0, 5); /* member:a at 3, member:ab at 2 */
    assert_int_equal(md_store_write(f->s, versions_in_txn, &fail, &err), MD_OK);
    fail = true;
    assert_int_equal(md_store_write(f->s, versions_in_txn, &fail, &err), MD_EINVAL);
    md_error_clear(&err);
    fail = false;
    assert_int_equal(md_store_write(f->s, versions_in_txn, &fail, &err), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_stream_version(t, "member:a", &v, NULL), MD_OK);
    assert_int_equal(v, 7);
    assert_int_equal(md_txn_stream_version(t, "member:ab", &v, NULL), MD_OK);
    assert_int_equal(v, 4);
    md_txn_end(t);
}

/* One write transaction touching more streams than the kept versions hold
 * (SV_MAX / 2 = 32,768 names in store_events.c): a stream kept before the
 * table filled up still gets the next version, not one it already has
 * (marketctl replay of 180,000 events failed with MDB_KEYEXIST). */
static md_err_t many_streams_txn(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    md_buf_t buf;
    md_event_t ev;
    char name[32];
    md_err_t rc = MD_OK;
    md_buf_init(&buf);
    for (int i = 0; rc == MD_OK && i < 40000; i++) {
        snprintf(name, sizeof name, "member:%d", i);
        md_test_event(&ev, &buf, name, "Tested", i);
        rc = md_txn_append(t, &ev, err);
    }
    for (int round = 0; rc == MD_OK && round < 3; round++) {
        md_test_event(&ev, &buf, "member:7", "Tested", round);
        rc = md_txn_append(t, &ev, err);
        if (rc == MD_OK)
            assert_int_equal(ev.version, 2 + (uint64_t)round);
    }
    md_buf_release(&buf);
    return rc;
}

static void test_store_versions_past_the_kept_table(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    md_txn_t *t = NULL;
    uint64_t v;
    assert_int_equal(md_store_write(f->s, many_streams_txn, NULL, &err), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_stream_version(t, "member:7", &v, NULL), MD_OK);
    assert_int_equal(v, 4);
    md_txn_end(t);
}

/* Rewrites the stored record of @p seq with one byte of its body flipped. */
static md_err_t tamper_record(md_txn_t *t, void *ctx, md_error_t *err)
{
    uint64_t seq = *(uint64_t *)ctx;
    unsigned char k[8];
    for (int i = 0; i < 8; i++)
        k[i] = (unsigned char)(seq >> (56 - 8 * i));
    MDB_val key = {8, k}, val;
    int rc = mdb_get(md_txn_mdb(t), md_txn_dbi(t, MD_DB_EVENTS), &key, &val);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get");
    unsigned char *copy = md_malloc(val.mv_size);
    memcpy(copy, val.mv_data, val.mv_size);
    copy[val.mv_size - 3] ^= 0x01; /* a byte inside the data map's last string */
    MDB_val nv = {val.mv_size, copy};
    rc = mdb_put(md_txn_mdb(t), md_txn_dbi(t, MD_DB_EVENTS), &key, &nv, 0);
    free(copy);
    return md_store_err(rc, err, "put");
}

static void test_store_verify_names_first_altered_seq(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    uint64_t target = 7, bad = 0;
    md_error_t err = {0};
    append_n(f->s, two_streams, 2, 0, 20);
    assert_int_equal(md_store_write(f->s, tamper_record, &target, NULL), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_verify_chain(t, NULL, &bad, NULL, NULL, &err), MD_ECORRUPT);
    assert_int_equal(bad, 7);
    assert_non_null(strstr(err.msg, "seq 7"));
    md_txn_end(t);
}

/* Changes the stream index at event seq's place in its chunk: op 0 cuts the
 * chunk before it (its entry and its stream's later ones gone), 1 points it
 * at seq + 1, 2 leaves 4 bytes of it (a malformed chunk: every event the
 * chunk held breaks, the first named), 3 adds a chunk of another stream ("a",
 * sorted first) holding seq, 4 does both 0 and 3. */
typedef struct index_tamper {
    uint64_t seq;
    int op;
} index_tamper_t;

static md_err_t tamper_index(md_txn_t *t, void *ctx, md_error_t *err)
{
    index_tamper_t *x = ctx;
    md_event_t ev;
    unsigned char k[MD_STREAM_MAX + 5], v[8 * MD_STREAM_CHUNK];
    MDB_val key, val;
    md_err_t rc = md_txn_event(t, x->seq, &ev, NULL, NULL, err);
    if (rc == MD_OK && x->op == 4) {
        index_tamper_t del = {x->seq, 0}, add = {x->seq, 3};
        rc = tamper_index(t, &del, err);
        return rc == MD_OK ? tamper_index(t, &add, err) : rc;
    }
    if (rc != MD_OK)
        return rc;
    MDB_dbi dbi = md_txn_dbi(t, MD_DB_STREAMS);
    size_t slot = (size_t)((ev.version - 1) % MD_STREAM_CHUNK);
    key.mv_size = md_stream_chunk_key(k, x->op == 3 ? "a" : ev.stream,
                                      x->op == 3 ? 0 : (ev.version - 1) / MD_STREAM_CHUNK);
    key.mv_data = k;
    if (x->op == 3) {
        for (int i = 0; i < 8; i++)
            v[i] = (unsigned char)(x->seq >> (56 - 8 * i));
        val = (MDB_val){8, v};
        return md_store_err(mdb_put(md_txn_mdb(t), dbi, &key, &val, 0), err, "tamper index");
    }
    int mrc = mdb_get(md_txn_mdb(t), dbi, &key, &val);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "tamper index");
    memcpy(v, val.mv_data, val.mv_size);
    size_t len = x->op == 0 ? 8 * slot : x->op == 2 ? 8 * slot + 4 : val.mv_size;
    if (x->op == 1)
        v[8 * slot + 7]++; /* seq + 1: the test's seqs are small */
    val = (MDB_val){len, v};
    mrc =
        len ? mdb_put(md_txn_mdb(t), dbi, &key, &val, 0) : mdb_del(md_txn_mdb(t), dbi, &key, NULL);
    return md_store_err(mrc, err, "tamper index");
}

/* The chain walk checks every event's stream index entry (from the index's
 * side first, then by look-up): a missing, moved or malformed entry names the
 * first event it breaks; an extra entry pointing at an event breaks nothing. */
static void test_store_verify_checks_stream_index(void **state)
{
    static const struct {
        int op;
        uint64_t seq, bad; /* the event tampered with, the first one broken */
        const char *msg;   /* NULL: verify passes */
    } cases[] = {{0, 7, 7, "seq 7: stream index entry missing"},
                 {1, 7, 7, "seq 7: stream index points elsewhere"},
                 {2, 5, 1, "seq 1: stream index entry missing"},
                 {3, 3, 0, NULL},
                 {4, 9, 9, "seq 9: stream index entry missing"},
                 {0, 20, 20, "seq 20: stream index entry missing"}};
    (void)state;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        char *dir = md_test_tmpdir();
        md_store_t *s = NULL;
        md_txn_t *t = NULL;
        uint64_t bad = 0, n = 0;
        md_error_t err = {0};
        index_tamper_t x = {cases[ci].seq, cases[ci].op};
        assert_int_equal(md_store_open(dir, NULL, &s, NULL), MD_OK);
        append_n(s, two_streams, 2, 0, 20);
        assert_int_equal(md_store_write(s, tamper_index, &x, NULL), MD_OK);
        assert_int_equal(md_store_read(s, &t, NULL), MD_OK);
        md_err_t rc = md_txn_verify_chain(t, &n, &bad, NULL, NULL, &err);
        if (cases[ci].msg == NULL) {
            assert_int_equal(rc, MD_OK);
            assert_int_equal(n, 20);
        } else {
            assert_int_equal(rc, MD_ECORRUPT);
            assert_int_equal(bad, cases[ci].bad);
            assert_string_equal(err.msg, cases[ci].msg);
        }
        md_txn_end(t);
        md_store_free(s);
        md_test_rmdir(dir);
    }
}

/* Flips one byte of the data file itself, where the body of one event lies. */
static void flip_in_file(const char *dir, const char *needle)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    unsigned char *buf = md_malloc((size_t)size);
    fseek(fp, 0, SEEK_SET);
    assert_int_equal(fread(buf, 1, (size_t)size, fp), (size_t)size);
    size_t nl = strlen(needle);
    long at = -1;
    for (long i = 0; i + (long)nl <= size && at < 0; i++)
        if (memcmp(buf + i, needle, nl) == 0)
            at = i;
    assert_true(at >= 0);
    buf[at] ^= 0x20; /* 'c' of c-13 becomes 'C' */
    fseek(fp, at, SEEK_SET);
    assert_int_equal(fwrite(buf + at, 1, 1, fp), 1);
    fclose(fp);
    free(buf);
}

static void test_store_verify_detects_flipped_byte_on_disk(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    uint64_t bad = 0;
    append_n(f->s, two_streams, 2, 0, 20);
    md_store_free(f->s);
    f->s = NULL;
    flip_in_file(f->dir, "c-13"); /* the command_id of seq 14 */
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, NULL), MD_OK);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_verify_chain(t, NULL, &bad, NULL, NULL, NULL), MD_ECORRUPT);
    assert_int_equal(bad, 14);
    md_txn_end(t);
}

static void test_store_read_only_open(void **state)
{
    fx_t *f = *state;
    md_store_t *ro = NULL;
    md_store_opts_t o = {.read_only = true};
    md_error_t err = {0};
    append_n(f->s, two_streams, 2, 0, 3);
    assert_int_equal(md_store_open(f->dir, &o, &ro, NULL), MD_OK);
    assert_int_equal(count_events(ro), 3);
    assert_int_equal(md_store_write(ro, write_kv, NULL, &err), MD_EINVAL);
    md_store_free(ro);
    assert_int_not_equal(md_store_open("/nonexistent/marketd", &o, &ro, NULL), MD_OK);
}

/* ---- neighbours: other processes, failed growth, damaged files --------------------- */

/* Reopens the fixture's store with a small map (pages of 4 KiB: 64 KiB = 16 pages). */
static void reopen_small(fx_t *f, size_t map_size)
{
    md_store_opts_t o = {.map_size = map_size, .nosync = true};
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, &o, &f->s, NULL), MD_OK);
}

/* This program, to run a child role in a process of its own (exec'd, so
 * that it shares nothing with the suite; valgrind does not follow it). */
static const char *self_path;

/* Runs `self ROLE DIR` and returns its exit status (128 + signal when killed). */
static int run_child(const char *role, const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(self_path, self_path, role, dir, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Child role: opens @p dir with a 4 MiB map and appends 3000 events from 10,
 * growing the file beyond the parent's map. */
static int grow_child(const char *dir)
{
    md_store_opts_t o = {.map_size = (size_t)4 << 20, .nosync = true};
    md_store_t *s = NULL;
    static const char *const many[] = {"order:o-1", "order:o-2", "member:m-1"};
    batch_t b = {many, 3, 10, 3000, 0, 0};
    int rc = md_store_open(dir, &o, &s, NULL) == MD_OK &&
                     md_store_write(s, append_batch, &b, NULL) == MD_OK
                 ? 0
                 : 3;
    md_store_free(s);
    return rc;
}

typedef struct adopter {
    md_store_t *s;
    bool write;
    _Atomic int done; /* 1: ok, 2: failed */
    uint64_t events;
} adopter_t;

/* Begins a transaction on a store whose file another process grew. */
static void *adopter_main(void *arg)
{
    adopter_t *a = arg;
    md_error_t err = {0};
    bool ok;
    if (a->write) {
        batch_t b = {two_streams, 2, 100000, 3, 0, 0};
        ok = md_store_write(a->s, append_batch, &b, &err) == MD_OK;
    } else {
        md_txn_t *t = NULL;
        ok = md_store_read(a->s, &t, &err) == MD_OK &&
             md_txn_scan(t, 1, 0, count_event, &a->events, &err) == MD_OK;
        md_txn_end(t);
    }
    atomic_store(&a->done, ok ? 1 : 2);
    OPENSSL_thread_stop();
    return NULL;
}

/*
 * Defect 1: another process grows the map; a thread of this process that
 * notices (MDB_MAP_RESIZED) must not remap while another thread's read
 * transaction is open (its pages would vanish under it): it waits.
 */
static void resized_by_other_process(fx_t *f, bool write)
{
    md_txn_t *old = NULL;
    uint64_t head = 0, n = 0;
    reopen_small(f, 64 * 1024);
    append_n(f->s, two_streams, 2, 0, 10);
    assert_int_equal(md_store_read(f->s, &old, NULL), MD_OK);
    assert_int_equal(run_child("--grow-child", f->dir), 0);
    adopter_t a = {.s = f->s, .write = write};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, adopter_main, &a), 0);
    struct timespec pause = {0, 300 * 1000000};
    nanosleep(&pause, NULL);
    int early = atomic_load(&a.done);
    /* The old snapshot is still whole: its map was not pulled away. */
    assert_int_equal(md_txn_head(old, &head, NULL, NULL), MD_OK);
    assert_int_equal(head, 10);
    assert_int_equal(md_txn_scan(old, 1, 0, count_event, &n, NULL), MD_OK);
    assert_int_equal(n, 10);
    md_txn_end(old);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(early, 0); /* it waited for the open transaction */
    assert_int_equal(atomic_load(&a.done), 1);
    assert_int_equal(count_events(f->s), write ? 3013 : 3010);
    if (!write)
        assert_int_equal(a.events, 3010);
}

static void test_store_resize_by_other_process_waits_for_readers(void **state)
{
    resized_by_other_process(*state, false);
}

static void test_store_resize_by_other_process_waits_for_writer_too(void **state)
{
    resized_by_other_process(*state, true);
}

/* Writes one value too big for the map, so that the map must grow. */
static md_err_t write_blob(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_buf_t *b = ctx;
    return md_txn_meta_put(t, "blob", b->p, b->len, err);
}

/* Address space in use by this process, from /proc/self/statm. */
static size_t vm_size(void)
{
    unsigned long pages = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp == NULL || fscanf(fp, "%lu", &pages) != 1)
        pages = 0;
    if (fp)
        fclose(fp);
    return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* Child of the test below: 0 when the store survived the failed growth. */
static int failed_growth_child(const char *dir)
{
    md_store_opts_t o = {.map_size = (size_t)8 << 20, .nosync = true};
    md_store_t *s = NULL;
    md_buf_t blob;
    md_error_t err = {0};
    md_txn_t *t = NULL;
    uint64_t head = 0;
    md_buf_init(&blob);
    md_buf_reserve(&blob, (size_t)10 << 20);
    memset(blob.p, 'x', (size_t)10 << 20);
    blob.len = (size_t)10 << 20;
    if (md_store_open(dir, &o, &s, NULL) != MD_OK)
        return 10;
    batch_t b = {two_streams, 2, 0, 5, 0, 0};
    if (md_store_write(s, append_batch, &b, NULL) != MD_OK)
        return 11;
    /* Leave room for small allocations, not for a second map of 16 MiB. */
    struct rlimit rl = {vm_size() + ((size_t)6 << 20), RLIM_INFINITY};
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 12;
    if (md_store_write(s, write_blob, &blob, &err) != MD_ESTORE)
        return 13;
    if (strstr(err.msg, "grow map") == NULL)
        return 14;
    /* Every thread must still find a valid map. */
    if (md_store_read(s, &t, NULL) != MD_OK || md_txn_head(t, &head, NULL, NULL) != MD_OK ||
        head != 5 || md_txn_verify_chain(t, NULL, NULL, NULL, NULL, NULL) != MD_OK)
        return 15;
    md_txn_end(t);
    b.first = 5;
    if (md_store_write(s, append_batch, &b, NULL) != MD_OK)
        return 16;
    md_store_free(s);
    md_buf_release(&blob);
    OPENSSL_cleanup();
    return 0;
}

/*
 * Defect 2: growing the map fails (address space limited, as `ulimit -v`
 * does): the write fails, and the store stays usable by every thread
 * (before: LMDB had already dropped the old map; the next read faulted).
 */
static void test_store_failed_growth_keeps_a_valid_map(void **state)
{
    fx_t *f = *state;
    md_store_free(f->s);
    f->s = NULL;
    assert_int_equal(run_child("--failed-growth-child", f->dir), 0);
}

/* Defect 5: a truncated data file is refused with what is wrong, not SIGBUS. */
static void test_store_truncated_file_is_refused(void **state)
{
    fx_t *f = *state;
    md_store_opts_t ro = {.read_only = true};
    md_error_t err = {0};
    char path[600];
    static const char *const many[] = {"order:o-1", "order:o-2", "member:m-1", "store:s-9"};
    for (int64_t i = 0; i < 2000; i += 500)
        append_n(f->s, many, 4, i, 500);
    md_store_free(f->s);
    f->s = NULL;
    snprintf(path, sizeof path, "%s/data.mdb", f->dir);
    assert_int_equal(truncate(path, 32768), 0);
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, &err), MD_ECORRUPT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "is 32768 bytes"));
    assert_non_null(strstr(err.msg, "truncated"));
    md_error_clear(&err);
    assert_int_equal(md_store_open(f->dir, &ro, &f->s, &err), MD_ECORRUPT); /* marketctl */
    assert_non_null(strstr(err.msg, "is 32768 bytes"));
}

/* Defect 3: one daemon per data directory; readers (marketctl) still open it. */
static void test_store_lock_refuses_a_second_daemon(void **state)
{
    fx_t *f = *state;
    md_store_opts_t lk = {.lock = true, .nosync = true}, ro = {.read_only = true};
    md_store_t *second = NULL, *reader = NULL;
    md_error_t err = {0};
    char pid[32];
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, &lk, &f->s, NULL), MD_OK);
    assert_int_equal(md_store_open(f->dir, &lk, &second, &err), MD_EEXIST);
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    assert_non_null(strstr(err.msg, pid));
    assert_non_null(strstr(err.msg, "marketd.lock"));
    assert_int_equal(md_store_open(f->dir, &ro, &reader, NULL), MD_OK);
    md_store_free(reader);
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, &lk, &f->s, NULL), MD_OK); /* released */
}

/* Child role: takes the lock of @p dir, says 'y' (or 'n') on stdout, then
 * holds it until stdin ends (the parent closed it, or died). */
static int lock_child(const char *dir)
{
    md_store_opts_t lk = {.lock = true, .nosync = true};
    md_store_t *s = NULL;
    char c = md_store_open(dir, &lk, &s, NULL) == MD_OK ? 'y' : 'n';
    if (write(1, &c, 1) != 1)
        return 1;
    while (read(0, &c, 1) > 0)
        ;
    md_store_free(s);
    return 0;
}

/* The kernel releases the lock of a process killed with SIGKILL. */
static void test_store_lock_released_when_holder_is_killed(void **state)
{
    fx_t *f = *state;
    md_store_opts_t lk = {.lock = true, .nosync = true};
    md_error_t err = {0};
    int out[2], in[2];
    char c = 0, pid[32];
    md_store_free(f->s);
    f->s = NULL;
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(in), 0);
    pid_t child = fork();
    if (child == 0) {
        if (dup2(out[1], 1) < 0 || dup2(in[0], 0) < 0)
            _exit(126);
        close(out[0]), close(out[1]), close(in[0]), close(in[1]);
        execl(self_path, self_path, "--lock-child", f->dir, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    close(in[0]);
    assert_int_equal(read(out[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    assert_int_equal(md_store_open(f->dir, &lk, &f->s, &err), MD_EEXIST);
    snprintf(pid, sizeof pid, "pid %ld", (long)child);
    assert_non_null(strstr(err.msg, pid));
    assert_int_equal(kill(child, SIGKILL), 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    close(out[0]);
    close(in[1]);
    assert_int_equal(md_store_open(f->dir, &lk, &f->s, NULL), MD_OK);
}

/* Defect 6: a store without its 'format' key is not one this version wrote. */
static md_err_t drop_format(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    MDB_val k = {6, (void *)"format"};
    return md_store_err(mdb_del(md_txn_mdb(t), md_txn_dbi(t, MD_DB_META), &k, NULL), err, "del");
}

static void test_store_without_format_is_refused(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    append_n(f->s, two_streams, 2, 0, 3);
    assert_int_equal(md_store_write(f->s, drop_format, NULL, NULL), MD_OK);
    md_store_free(f->s);
    f->s = NULL;
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, &err), MD_EVERSION);
    assert_non_null(strstr(err.msg, "no 'format' key"));
}

/* Defect 4's base: each store has its own identity, made once. */
static void test_store_identity_is_random_and_kept(void **state)
{
    fx_t *f = *state;
    char id[MD_STORE_ID_LEN + 1];
    md_store_t *other = NULL;
    char *dir2 = md_test_tmpdir();
    snprintf(id, sizeof id, "%s", md_store_id(f->s));
    assert_int_equal(strlen(id), MD_STORE_ID_LEN);
    assert_int_equal(strspn(id, "0123456789abcdef"), MD_STORE_ID_LEN);
    md_store_free(f->s);
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, NULL), MD_OK);
    assert_string_equal(md_store_id(f->s), id);
    assert_int_equal(md_store_open(dir2, NULL, &other, NULL), MD_OK);
    assert_string_not_equal(md_store_id(other), id);
    md_store_free(other);
    md_test_rmdir(dir2);
}

/* The versions a scan of one stream visits, checked as it goes: each event
 * is of the stream and one version after the one before. */
typedef struct vwalk {
    const char *stream;
    uint64_t next, n;
} vwalk_t;

static md_err_t walk_versions(const md_event_t *ev, const void *body, size_t len, void *ctx,
                              md_error_t *err)
{
    (void)body, (void)len, (void)err;
    vwalk_t *w = ctx;
    assert_string_equal(ev->stream, w->stream);
    assert_int_equal(ev->version, w->next);
    w->next++;
    w->n++;
    return MD_OK;
}

/* Format 2's index keeps a stream's seqs in chunks of MD_STREAM_CHUNK: batches
 * that end inside a chunk, fill one exactly, or cross several give gapless
 * versions, and a scan from any version (with or without a limit) visits
 * exactly the versions asked for, within a write transaction too. */
static const int64_t chunk_batches[] = {1, 63, 2, 64, 20, 130};

static md_err_t scan_in_write(md_txn_t *t, void *ctx, md_error_t *err)
{
    vwalk_t *w = ctx;
    md_err_t rc = append_batch(t, &(batch_t){two_streams, 2, 1000, 2, 0, 0}, err);
    return rc == MD_OK ? md_txn_scan_stream(t, w->stream, w->next, 0, walk_versions, w, err) : rc;
}

static void test_store_index_chunks(void **state)
{
    fx_t *f = *state;
    md_txn_t *t = NULL;
    int64_t at = 0;
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof chunk_batches / sizeof chunk_batches[0]; i++) {
        append_n(f->s, two_streams, 2, at, chunk_batches[i]);
        at += chunk_batches[i];
    }
    assert_int_equal(at, 280); /* 140 events each */
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_stream_version(t, "member:a", &v, NULL), MD_OK);
    assert_int_equal(v, 140);
    static const uint64_t from[] = {0, 1, 63, 64, 65, 100, 128, 129, 140, 141};
    for (size_t i = 0; i < sizeof from / sizeof from[0]; i++) {
        for (uint64_t limit = 0; limit <= 70; limit += 70) {
            uint64_t first = from[i] ? from[i] : 1;
            uint64_t want = first > 140 ? 0 : 140 - first + 1;
            vwalk_t w = {"member:ab", first, 0};
            if (limit && want > limit)
                want = limit;
            assert_int_equal(
                md_txn_scan_stream(t, "member:ab", from[i], limit, walk_versions, &w, NULL), MD_OK);
            assert_int_equal(w.n, want);
        }
    }
    uint64_t n = 0, bad = 0;
    assert_int_equal(md_txn_verify_chain(t, &n, &bad, NULL, NULL, NULL), MD_OK);
    assert_int_equal(n, 280);
    md_txn_end(t);
    vwalk_t w = {"member:a", 120, 0}; /* sees its own transaction's appends */
    assert_int_equal(md_store_write(f->s, scan_in_write, &w, NULL), MD_OK);
    assert_int_equal(w.n, 22);
}


static uint64_t format_of(md_store_t *s)
{
    md_txn_t *t = NULL;
    const void *v = NULL;
    size_t len = 0;
    assert_int_equal(md_store_read(s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_meta_get(t, "format", &v, &len, NULL), MD_OK);
    assert_int_equal(len, 8);
    uint64_t f = ((const unsigned char *)v)[7];
    md_txn_end(t);
    return f;
}

/* A format 1 store (issue 17's eleventh pass changed the index's layout) is
 * refused read-only, naming what to do, and converted when opened for
 * writing: versions, scans and verify as before, the old index gone. */
static void test_store_format_1_is_converted(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    md_txn_t *t = NULL;
    /* A compacted copy (no free pages) in a map no larger than the file: the
     * conversion fills the map, grows it and runs again. */
    md_store_opts_t ro = {.read_only = true}, tiny = {.map_size = 4096};
    uint64_t v = 0, streams = 0, events = 0, n = 0;
    MDB_dbi old;
    char *copy = md_test_tmpdir(), from[600], to[600];
    append_n(f->s, two_streams, 2, 0, 150);
    append_n(f->s, (const char *const[]){"order:o-1"}, 1, 150, 3);
    assert_int_equal(md_store_write(f->s, md_test_to_format_1, NULL, NULL), MD_OK);
    assert_int_equal(mdb_env_copy2(md_store_env(f->s), copy, MDB_CP_COMPACT), MDB_SUCCESS);
    md_store_free(f->s);
    f->s = NULL;
    snprintf(from, sizeof from, "%s/data.mdb", copy);
    snprintf(to, sizeof to, "%s/data.mdb", f->dir);
    assert_int_equal(rename(from, to), 0);
    md_test_rmdir(copy);
    assert_int_equal(md_store_open(f->dir, &ro, &f->s, &err), MD_EVERSION);
    assert_non_null(strstr(err.msg, "format 1"));
    assert_int_equal(md_store_open(f->dir, &tiny, &f->s, &err), MD_OK);
    assert_true(md_store_converted(f->s, &streams, &events));
    assert_int_equal(streams, 3);
    assert_int_equal(events, 153);
    assert_int_equal(format_of(f->s), 2);
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(mdb_dbi_open(md_txn_mdb(t), "streams", 0, &old), MDB_NOTFOUND);
    assert_int_equal(md_txn_stream_version(t, "member:ab", &v, NULL), MD_OK);
    assert_int_equal(v, 75);
    vwalk_t w = {"member:a", 60, 0};
    assert_int_equal(md_txn_scan_stream(t, "member:a", 60, 10, walk_versions, &w, NULL), MD_OK);
    assert_int_equal(w.n, 10);
    assert_int_equal(md_txn_verify_chain(t, &n, NULL, NULL, NULL, NULL), MD_OK);
    assert_int_equal(n, 153);
    md_txn_end(t);
    append_n(f->s, two_streams, 2, 153, 4); /* and appends go on from there */
    md_store_free(f->s);
    f->s = NULL;
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, NULL), MD_OK);
    assert_false(md_store_converted(f->s, NULL, NULL));
    assert_int_equal(md_store_read(f->s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_stream_version(t, "member:a", &v, NULL), MD_OK);
    assert_int_equal(v, 77);
    assert_int_equal(md_txn_verify_chain(t, &n, NULL, NULL, NULL, NULL), MD_OK);
    md_txn_end(t);
}

/* A format 1 index with a gap is not converted: the open fails naming the
 * stream, and the store stays in format 1, as it was. */
static void test_store_format_1_with_a_gap_is_refused(void **state)
{
    fx_t *f = *state;
    md_error_t err = {0};
    append_n(f->s, two_streams, 2, 0, 10);
    bool gap = true;
    assert_int_equal(md_store_write(f->s, md_test_to_format_1, &gap, NULL), MD_OK);
    md_store_free(f->s);
    f->s = NULL;
    assert_int_equal(md_store_open(f->dir, NULL, &f->s, &err), MD_ECORRUPT);
    assert_non_null(strstr(err.msg, "stream 'member:a' has version 3 after 1"));
    md_store_opts_t ro = {.read_only = true};
    assert_int_equal(md_store_open(f->dir, &ro, &f->s, &err), MD_EVERSION);
    assert_non_null(strstr(err.msg, "format 1"));
}

#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)

int main(int argc, char **argv)
{
    self_path = argv[0];
    if (argc == 3 && strcmp(argv[1], "--grow-child") == 0)
        return grow_child(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--failed-growth-child") == 0)
        return failed_growth_child(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--lock-child") == 0)
        return lock_child(argv[2]);
    const struct CMUnitTest tests[] = {
        T(test_store_append_assigns_seq_and_version),
        T(test_store_scan_by_range_and_stream),
        T(test_store_outcomes_and_offsets),
        T(test_store_outbox_ids_never_repeat),
        T(test_store_reopen_continues_chain),
        T(test_store_map_grows_when_full),
        T(test_store_reader_sees_snapshot_during_writes),
        T(test_store_failed_batch_appends_nothing),
        T(test_store_versions_within_and_across_batches),
        T(test_store_versions_past_the_kept_table),
        T(test_store_verify_checks_stream_index),
        T(test_store_verify_names_first_altered_seq),
        T(test_store_verify_detects_flipped_byte_on_disk),
        T(test_store_read_only_open),
        T(test_store_resize_by_other_process_waits_for_readers),
        T(test_store_resize_by_other_process_waits_for_writer_too),
        T(test_store_failed_growth_keeps_a_valid_map),
        T(test_store_truncated_file_is_refused),
        T(test_store_lock_refuses_a_second_daemon),
        T(test_store_lock_released_when_holder_is_killed),
        T(test_store_without_format_is_refused),
        T(test_store_index_chunks),
        T(test_store_format_1_is_converted),
        T(test_store_format_1_with_a_gap_is_refused),
        T(test_store_identity_is_random_and_kept),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
