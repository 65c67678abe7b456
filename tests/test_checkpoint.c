/*
 * test_checkpoint.c - signed checkpoints: keygen, the canonical encoding (the
 * exact bytes docs/audit.md specifies), the JSON form and its strict parser,
 * signatures (a wrong key, an altered field), the check of a chain against
 * checkpoints (cut tail, different hash), and the checkpointer in a store
 * transaction (interval, only when the head moved, outbox entry).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fixture.h"
#include "md_checkpointer.h"

typedef struct fx {
    char *dir;
    EVP_PKEY *priv, *pub, *other_pub;
} fx_t;

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = md_malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static EVP_PKEY *load(const char *dir, const char *name, bool private_key)
{
    char *p = path_in(dir, name);
    EVP_PKEY *k = NULL;
    assert_int_equal(md_key_load(p, private_key, &k, NULL), MD_OK);
    free(p);
    return k;
}

static int setup(void **state)
{
    fx_t *f = md_calloc(1, sizeof *f);
    f->dir = md_test_tmpdir();
    if (md_keygen("r1", f->dir, NULL) != MD_OK || md_keygen("r2", f->dir, NULL) != MD_OK)
        return -1;
    f->priv = load(f->dir, "r1.key", true);
    f->pub = load(f->dir, "r1.pub", false);
    f->other_pub = load(f->dir, "r2.pub", false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    EVP_PKEY_free(f->priv);
    EVP_PKEY_free(f->pub);
    EVP_PKEY_free(f->other_pub);
    md_test_rmdir(f->dir);
    free(f);
    return 0;
}

static void sample(md_checkpoint_t *cp)
{
    memset(cp, 0, sizeof *cp);
    cp->version = 1;
    strcpy(cp->replica, "r1");
    cp->seq = 1234;
    for (int i = 0; i < MD_HASH_LEN; i++)
        cp->hash[i] = (unsigned char)(0xa0 + i);
    cp->recorded_at = 1795687200000;
    cp->noffsets = 2;
    cp->offsets = md_calloc(2, sizeof *cp->offsets);
    cp->offsets[0] = (md_cp_offset_t){"market.commands", 0, 1201};
    cp->offsets[1] = (md_cp_offset_t){"market.commands", 1, 7};
}

static void test_keygen_writes_a_0600_private_key_and_never_overwrites(void **state)
{
    fx_t *f = *state;
    struct stat st;
    char *priv = path_in(f->dir, "r1.key"), *pub = path_in(f->dir, "r1.pub");
    assert_int_equal(stat(priv, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(pub, &st), 0);
    md_error_t err = {0};
    assert_int_equal(md_keygen("r1", f->dir, &err), MD_EEXIST);
    assert_int_equal(md_keygen("bad id", f->dir, NULL), MD_EINVAL);
    /* a public key is not a private key */
    EVP_PKEY *k = NULL;
    assert_int_equal(md_key_load(pub, true, &k, NULL), MD_EINVAL);
    assert_null(k);
    free(priv);
    free(pub);
}

static void test_canonical_encoding_is_the_documented_text(void **state)
{
    (void)state;
    md_checkpoint_t cp;
    md_buf_t b;
    sample(&cp);
    md_buf_init(&b);
    md_checkpoint_encode(&cp, &b);
    const char *want = "marketd checkpoint v1\n"
                       "replica r1\n"
                       "seq 1234\n"
                       "hash a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n"
                       "recorded_at 1795687200000\n"
                       "offset market.commands 0 1201\n"
                       "offset market.commands 1 7\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    md_buf_release(&b);
    md_checkpoint_release(&cp);
}

static void test_json_round_trip_and_signature(void **state)
{
    fx_t *f = *state;
    md_checkpoint_t cp, back = {0};
    md_buf_t j;
    sample(&cp);
    md_buf_init(&j);
    assert_int_equal(md_checkpoint_sign(&cp, f->priv, NULL), MD_OK);
    assert_int_equal(md_checkpoint_to_json(&cp, &j, NULL), MD_OK);
    assert_int_equal(md_checkpoint_from_json((const char *)j.p, j.len, &back, NULL), MD_OK);
    assert_int_equal(back.seq, 1234);
    assert_int_equal(back.noffsets, 2);
    assert_memory_equal(back.hash, cp.hash, MD_HASH_LEN);
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_OK);
    /* a wrong key, an altered hash, seq or offset: refused */
    assert_int_equal(md_checkpoint_verify(&back, f->other_pub, NULL), MD_ECORRUPT);
    back.hash[5] ^= 1;
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_ECORRUPT);
    back.hash[5] ^= 1;
    back.seq++;
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_ECORRUPT);
    back.seq--;
    back.offsets[1].next = 8;
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_ECORRUPT);
    md_checkpoint_release(&back);
    md_checkpoint_release(&cp);
    md_buf_release(&j);
}

#define SIG_F                                                                                      \
    "\"signature\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"                    \
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAA==\""
#define HASH_F                                                                                     \
    "\"hash\":\""                                                                                  \
    "0000000000000000000000000000000000000000000000000000000000000000\""

static void test_parser_is_strict(void **state)
{
    (void)state;
    const char *good = "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F
                       ",\"recorded_at\":5,\"offsets\":[]," SIG_F "}";
    md_checkpoint_t cp = {0};
    assert_int_equal(md_checkpoint_from_json(good, strlen(good), &cp, NULL), MD_OK);
    md_checkpoint_release(&cp);
    const char *bad[] = {
        "{\"version\":2,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r 1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":0," HASH_F
        ",\"recorded_at\":5,\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"offsets\":[]," SIG_F ",\"x\":1}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":\"5\",\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"offsets\":[{\"topic\":"
        "\"b\",\"partition\":0,\"next\":1},{\"topic\":\"a\",\"partition\":0,\"next\":1}]," SIG_F
        "}",
        /* upper-case hex; a short signature */
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3,\"hash\":"
        "\"00000000000000000000000000000000000000"
        "000000000000000000000000AA\",\"recorded_at\":5,\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F ",\"recorded_at\":5,\"offsets\":[],"
        "\"signature\":\"AAAA\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        md_error_t err = {0};
        assert_int_equal(md_checkpoint_from_json(bad[i], strlen(bad[i]), &cp, &err), MD_EINVAL);
    }
}


/* Version 2 (the replicated leader's): a "published" line after recorded_at,
 * signed like the rest; version 1 encodes and verifies as before. */
static void test_version_2_adds_the_published_line(void **state)
{
    fx_t *f = *state;
    md_checkpoint_t cp, back = {0};
    md_buf_t b, j;
    sample(&cp);
    cp.version = 2;
    cp.published = 1200;
    md_buf_init(&b);
    md_buf_init(&j);
    md_checkpoint_encode(&cp, &b);
    const char *want = "marketd checkpoint v2\n"
                       "replica r1\n"
                       "seq 1234\n"
                       "hash a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf\n"
                       "recorded_at 1795687200000\n"
                       "published 1200\n"
                       "offset market.commands 0 1201\n"
                       "offset market.commands 1 7\n";
    assert_int_equal(b.len, strlen(want));
    assert_memory_equal(b.p, want, b.len);
    assert_int_equal(md_checkpoint_sign(&cp, f->priv, NULL), MD_OK);
    assert_int_equal(md_checkpoint_to_json(&cp, &j, NULL), MD_OK);
    md_buf_append(&j, "", 1);
    assert_non_null(strstr((const char *)j.p, "\"recorded_at\":1795687200000,\"published\":1200,"));
    assert_int_equal(md_checkpoint_from_json((const char *)j.p, j.len - 1, &back, NULL), MD_OK);
    assert_int_equal(back.version, 2);
    assert_int_equal(back.published, 1200);
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_OK);
    back.published = 1201; /* the published seq is signed */
    assert_int_equal(md_checkpoint_verify(&back, f->pub, NULL), MD_ECORRUPT);
    md_checkpoint_release(&back);
    const char *bad[] = {
        /* v2 without "published"; v1 with it; a negative one; version 3 */
        "{\"version\":2,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"offsets\":[]," SIG_F "}",
        "{\"version\":1,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"published\":2,\"offsets\":[]," SIG_F "}",
        "{\"version\":2,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"published\":-1,\"offsets\":[]," SIG_F "}",
        "{\"version\":3,\"replica\":\"r1\",\"seq\":3," HASH_F
        ",\"recorded_at\":5,\"published\":2,\"offsets\":[]," SIG_F "}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(md_checkpoint_from_json(bad[i], strlen(bad[i]), &back, NULL), MD_EINVAL);
    md_buf_release(&b);
    md_buf_release(&j);
    md_checkpoint_release(&cp);
}
/* A chain of three hashes: hash i has every byte = i. */
static md_err_t hash_at(uint64_t seq, unsigned char hash[MD_HASH_LEN], void *ctx, md_error_t *err)
{
    (void)ctx, (void)err;
    memset(hash, (int)seq, MD_HASH_LEN);
    return MD_OK;
}

static void test_chain_check_names_cut_tail_and_different_hash(void **state)
{
    (void)state;
    md_checkpoint_t cps[2];
    md_cp_set_t s = {.cps = cps, .n = 2};
    md_error_t err = {0};
    sample(&cps[0]);
    sample(&cps[1]);
    cps[0].seq = 2;
    memset(cps[0].hash, 2, MD_HASH_LEN);
    cps[1].seq = 3;
    memset(cps[1].hash, 3, MD_HASH_LEN);
    assert_int_equal(md_cp_set_check_chain(&s, 3, hash_at, NULL, &err), MD_OK);
    assert_int_equal(md_cp_set_check_chain(&s, 2, hash_at, NULL, &err), MD_ECORRUPT);
    assert_string_equal(err.msg, "the store ends at seq 2 but replica r1 signed seq 3 > 2");
    md_error_clear(&err);
    cps[0].hash[0] = 9;
    assert_int_equal(md_cp_set_check_chain(&s, 3, hash_at, NULL, &err), MD_ECORRUPT);
    assert_non_null(strstr(err.msg, "different hash at seq 2"));
    md_checkpoint_release(&cps[0]);
    md_checkpoint_release(&cps[1]);
}

static md_err_t append_n(md_txn_t *t, void *ctx, md_error_t *err)
{
    int *n = ctx;
    for (int i = 0; i < *n; i++) {
        md_event_t ev;
        md_buf_t data;
        md_buf_init(&data);
        md_test_event(&ev, &data, "s:1", "Thing", i);
        md_err_t rc = md_txn_append(t, &ev, err);
        md_buf_release(&data);
        if (rc != MD_OK)
            return rc;
    }
    return md_txn_offset_put(t, "market.commands", 0, 10, err);
}

typedef struct cp_ctx {
    md_checkpointer_t *c;
    bool final;
} cp_ctx_t;

static md_err_t run_checkpointer(md_txn_t *t, void *ctx, md_error_t *err)
{
    cp_ctx_t *x = ctx;
    return md_checkpointer_batch(x->c, t, x->final, err);
}

static md_err_t count_outbox(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    md_buf_t *last = ctx;
    assert_string_equal(m->topic, "heads");
    md_buf_reset(last);
    md_buf_append(last, m->value, m->value_len);
    return MD_OK;
}

/* The checkpoints queued in the store's outbox; the last value in @p last. */
static size_t outbox(md_store_t *s, md_buf_t *last)
{
    md_txn_t *t = NULL;
    MDB_stat st;
    assert_int_equal(md_store_read(s, &t, NULL), MD_OK);
    assert_int_equal(md_txn_outbox_scan(t, 0, 0, count_outbox, last, NULL), MD_OK);
    assert_int_equal(mdb_stat(md_txn_mdb(t), md_txn_dbi(t, MD_DB_OUTBOX), &st), 0);
    md_txn_end(t);
    return st.ms_entries;
}

static void test_checkpointer_in_the_batch_transaction(void **state)
{
    fx_t *f = *state;
    char *store_dir = md_test_tmpdir(), *key = path_in(f->dir, "r1.key");
    md_store_t *s = NULL;
    md_store_opts_t so = {.nosync = true};
    md_checkpointer_opts_t o = {.replica_id = "r1",
                                .key_file = key,
                                .topic = "heads",
                                .interval_events = 5,
                                .interval_ms = 3600000};
    cp_ctx_t x = {0};
    md_buf_t last;
    int n;
    md_buf_init(&last);
    assert_int_equal(md_store_open(store_dir, &so, &s, NULL), MD_OK);
    assert_int_equal(md_checkpointer_new(&o, &x.c, NULL), MD_OK);
    n = 3; /* 3 events: below interval_events */
    assert_int_equal(md_store_write(s, append_n, &n, NULL), MD_OK);
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 0);
    assert_false(md_checkpointer_due(x.c, false));
    assert_true(md_checkpointer_due(x.c, true));
    n = 2; /* 5 events since the start: one checkpoint */
    assert_int_equal(md_store_write(s, append_n, &n, NULL), MD_OK);
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 1);
    md_checkpoint_t cp = {0};
    assert_int_equal(md_checkpoint_from_json((const char *)last.p, last.len, &cp, NULL), MD_OK);
    assert_int_equal(cp.seq, 5);
    assert_int_equal(cp.noffsets, 1);
    assert_int_equal(cp.offsets[0].next, 10);
    assert_int_equal(md_checkpoint_verify(&cp, f->pub, NULL), MD_OK);
    md_checkpoint_release(&cp);
    /* the head did not move: nothing, even when final */
    x.final = true;
    assert_false(md_checkpointer_due(x.c, true));
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 1);
    n = 1; /* final: the moved head is checkpointed at once */
    assert_int_equal(md_store_write(s, append_n, &n, NULL), MD_OK);
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 2);
    md_checkpointer_free(x.c);
    md_store_free(s);
    md_buf_release(&last);
    md_test_rmdir(store_dir);
    free(key);
}


/* Replicated mode: the announcement at start (the stored head again), and
 * version 2 checkpoints carrying the leader's published seq, one also when
 * only that seq moved. */
static void test_checkpointer_announces_and_signs_the_published_seq(void **state)
{
    fx_t *f = *state;
    char *store_dir = md_test_tmpdir(), *key = path_in(f->dir, "r1.key");
    md_store_t *s = NULL;
    md_store_opts_t so = {.nosync = true};
    md_checkpointer_opts_t o = {.replica_id = "r1",
                                .key_file = key,
                                .topic = "heads",
                                .interval_events = 1000,
                                .interval_ms = 3600000};
    cp_ctx_t x = {0};
    md_buf_t last;
    md_checkpoint_t cp = {0};
    int n = 4;
    md_buf_init(&last);
    assert_int_equal(md_store_open(store_dir, &so, &s, NULL), MD_OK);
    assert_int_equal(md_checkpointer_new(&o, &x.c, NULL), MD_OK);
    assert_int_equal(md_store_write(s, append_n, &n, NULL), MD_OK);
    x.final = true; /* a clean stop: seq 4 checkpointed and stored */
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 1);
    md_checkpointer_free(x.c);
    x.final = false;
    /* a restart without announce: nothing; with it, the same head once more */
    assert_int_equal(md_checkpointer_new(&o, &x.c, NULL), MD_OK);
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 1);
    md_checkpointer_free(x.c);
    o.announce = true;
    assert_int_equal(md_checkpointer_new(&o, &x.c, NULL), MD_OK);
    assert_true(md_checkpointer_due(x.c, false));
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 2);
    assert_int_equal(md_checkpoint_from_json((const char *)last.p, last.len, &cp, NULL), MD_OK);
    assert_int_equal(cp.seq, 4);
    assert_int_equal(cp.version, 1);
    md_checkpoint_release(&cp);
    assert_false(md_checkpointer_due(x.c, false)); /* announced once */
    /* the leader's published seq moved: due (after interval_ms, or when final), version 2 */
    md_checkpointer_set_published(x.c, true, 3);
    assert_true(md_checkpointer_due(x.c, true));
    x.final = true;
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 3);
    assert_int_equal(md_checkpoint_from_json((const char *)last.p, last.len, &cp, NULL), MD_OK);
    assert_int_equal(cp.version, 2);
    assert_int_equal(cp.seq, 4);
    assert_int_equal(cp.published, 3);
    assert_int_equal(md_checkpoint_verify(&cp, f->pub, NULL), MD_OK);
    md_checkpoint_release(&cp);
    /* unchanged: nothing more */
    assert_false(md_checkpointer_due(x.c, true));
    assert_int_equal(md_store_write(s, run_checkpointer, &x, NULL), MD_OK);
    assert_int_equal(outbox(s, &last), 3);
    md_checkpointer_free(x.c);
    md_store_free(s);
    md_buf_release(&last);
    md_test_rmdir(store_dir);
    free(key);
}
int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_writes_a_0600_private_key_and_never_overwrites,
                                        setup, teardown),
        cmocka_unit_test(test_canonical_encoding_is_the_documented_text),
        cmocka_unit_test_setup_teardown(test_json_round_trip_and_signature, setup, teardown),
        cmocka_unit_test(test_parser_is_strict),
        cmocka_unit_test_setup_teardown(test_version_2_adds_the_published_line, setup, teardown),
        cmocka_unit_test(test_chain_check_names_cut_tail_and_different_hash),
        cmocka_unit_test_setup_teardown(test_checkpointer_announces_and_signs_the_published_seq,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpointer_in_the_batch_transaction, setup,
                                        teardown),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}
