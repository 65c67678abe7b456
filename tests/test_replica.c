/*
 * test_replica.c - the pieces of replicated mode that need no broker
 * (md_replica.h): the publication map (the leader's "published through", the
 * followers' drop), the fail-stop majority rule and the configuration rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "md_config.h"
#include "md_replica.h"

/*
 * A leader and a follower decide the same log; batches end at different
 * points. Outbox ids differ too (checkpoints interleave), but each replica's
 * tags are the heads at which its entries were queued.
 *
 * Replica A: batch 1 queued ids 1..9 (head 0 -> 5), batch 2 ids 10..19
 * (head 5 -> 12), batch 3 ids 20..24 (head 12 -> 15).
 */
static void note_three_batches(md_pubmap_t *p)
{
    md_pubmap_note(p, 10, 5);
    md_pubmap_note(p, 20, 12);
    md_pubmap_note(p, 25, 15);
}

static void test_leader_published_through_is_below_the_first_pending_entry(void **state)
{
    (void)state;
    md_pubmap_t p = {0};
    uint64_t S = 0;
    note_three_batches(&p);
    /* an entry queued before the first mark: its lower bound is unknown */
    assert_false(md_pubmap_published(&p, 3, &S));
    /* first pending id 12 (batch 2, tags >= 5): every tag <= 4 was delivered */
    assert_true(md_pubmap_published(&p, 12, &S));
    assert_int_equal(S, 4);
    /* the first of batch 3 pending (tags >= 12): through 11 */
    assert_true(md_pubmap_published(&p, 20, &S));
    assert_int_equal(S, 11);
    /* nothing pending: through head - 1 (a duplicate's answer may still be
     * queued at head 15, so 15 itself is not claimed) */
    assert_true(md_pubmap_published(&p, 25, &S));
    assert_int_equal(S, 14);
    md_pubmap_release(&p);
}

static void test_follower_drops_only_entries_tagged_at_most_the_published_seq(void **state)
{
    (void)state;
    md_pubmap_t p = {0};
    note_three_batches(&p);
    assert_int_equal(md_pubmap_drop_below(&p, 0), 0);
    assert_int_equal(md_pubmap_drop_below(&p, 4), 0);   /* batch 1 reaches tag 5 */
    assert_int_equal(md_pubmap_drop_below(&p, 5), 10);  /* batch 1 only */
    assert_int_equal(md_pubmap_drop_below(&p, 11), 10); /* batch 2 reaches 12 */
    assert_int_equal(md_pubmap_drop_below(&p, 14), 20);
    assert_int_equal(md_pubmap_drop_below(&p, 15), 25);
    assert_int_equal(md_pubmap_drop_below(&p, 1000), 25);
    md_pubmap_release(&p);
}

/* The leader's claim and the follower's drop agree: what a follower drops for
 * the leader's S was delivered by the leader, whatever the batch boundaries. */
static void test_leader_claim_never_lets_a_follower_drop_an_undelivered_entry(void **state)
{
    (void)state;
    /* tags of the same 40 publishable entries on both replicas (non-decreasing) */
    uint64_t tags[40];
    for (int i = 0; i < 40; i++)
        tags[i] = (uint64_t)(i / 3 + (i % 7 == 0)); /* repeats: duplicates' answers */
    for (int i = 1; i < 40; i++)
        if (tags[i] < tags[i - 1])
            tags[i] = tags[i - 1];
    for (int cut_l = 1; cut_l < 8; cut_l++) {
        for (int delivered = 0; delivered <= 40; delivered++) {
            md_pubmap_t lead = {0}, follow = {0};
            /* leader: batches of cut_l entries; ids = index + 1 */
            for (int i = cut_l; i <= 40; i += cut_l)
                md_pubmap_note(&lead, (uint64_t)i + 1, tags[i - 1]);
            /* follower: batches of 5 entries, ids offset by 100 */
            for (int i = 5; i <= 40; i += 5)
                md_pubmap_note(&follow, (uint64_t)i + 101, tags[i - 1]);
            uint64_t S;
            if (!md_pubmap_published(&lead, (uint64_t)delivered + 1, &S)) {
                md_pubmap_release(&lead);
                md_pubmap_release(&follow);
                continue;
            }
            uint64_t below = md_pubmap_drop_below(&follow, S);
            for (int i = 0; i < 40; i++) {
                if ((uint64_t)i + 101 < below)  /* dropped by the follower ... */
                    assert_true(i < delivered); /* ... was delivered by the leader */
                if (tags[i] <= S)
                    assert_true(i < delivered);
            }
            md_pubmap_release(&lead);
            md_pubmap_release(&follow);
        }
    }
}

static void test_note_is_idempotent_trim_and_merge_stay_safe(void **state)
{
    (void)state;
    md_pubmap_t p = {0};
    uint64_t S;
    note_three_batches(&p);
    md_pubmap_note(&p, 25, 15); /* a retried batch */
    assert_int_equal(p.n, 3);
    md_pubmap_note(&p, 25, 16); /* an idle transaction: head moved, nothing queued */
    assert_int_equal(p.n, 3);
    assert_true(md_pubmap_published(&p, 25, &S));
    assert_int_equal(S, 15);
    md_pubmap_note(&p, 22, 13); /* ids handed out again after an uncommitted batch */
    assert_int_equal(p.n, 3);
    assert_int_equal(p.m[2].next, 22);
    md_pubmap_trim(&p, 20);
    assert_int_equal(p.m[0].next, 20);
    assert_true(md_pubmap_published(&p, 20, &S));
    assert_int_equal(S, 11);
    md_pubmap_release(&p);
    /* past MD_PUBMAP_MAX marks, merging keeps both bounds true */
    for (uint64_t i = 1; i <= MD_PUBMAP_MAX + 100; i++)
        md_pubmap_note(&p, 10 * i, 2 * i);
    assert_int_equal(p.n, MD_PUBMAP_MAX);
    assert_true(md_pubmap_drop_below(&p, 2 * (MD_PUBMAP_MAX + 100)) == 10 * (MD_PUBMAP_MAX + 100));
    assert_true(md_pubmap_published(&p, 10 * (MD_PUBMAP_MAX + 50) + 5, &S));
    assert_true(S <= 2 * (MD_PUBMAP_MAX + 50) - 1);
    md_pubmap_release(&p);
}

static void test_fail_stop_needs_a_majority_of_the_configured_replicas(void **state)
{
    (void)state;
    assert_false(md_replica_must_stop(0, 3));
    assert_false(md_replica_must_stop(1, 3)); /* one peer disagrees: it may be the odd one */
    assert_true(md_replica_must_stop(2, 3));  /* both peers: this one is */
    assert_false(md_replica_must_stop(1, 2)); /* two replicas cannot tell who is wrong */
    assert_false(md_replica_must_stop(2, 5));
    assert_true(md_replica_must_stop(3, 5));
    assert_false(md_replica_must_stop(0, 0));
}

static void test_replicated_mode_config_rules(void **state)
{
    (void)state;
    md_config_t c;
    md_error_t err = {0};
    md_config_init(&c);
    assert_false(md_config_replicated(&c));
    assert_int_equal(md_config_set(&c, "replica.mode", "replicated", NULL), MD_OK);
    assert_true(md_config_replicated(&c));
    assert_int_equal(md_config_set(&c, "replica.mode", "sharded", &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "single or replicated"));
    /* the wall clock is refused, saying why */
    md_error_clear(&err);
    assert_int_equal(md_replica_check_config(&c, &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "clock = log or command"));
    assert_int_equal(md_config_set(&c, "clock", "log", NULL), MD_OK);
    md_error_clear(&err);
    assert_int_equal(md_replica_check_config(&c, &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "replica.key_file"));
    assert_int_equal(md_config_set(&c, "replica.key_file", "/k/r1.key", NULL), MD_OK);
    md_error_clear(&err);
    assert_int_equal(md_replica_check_config(&c, &err), MD_ECONFIG);
    assert_non_null(strstr(err.msg, "replica.peers_keys"));
    assert_int_equal(md_config_set(&c, "replica.peers_keys", "/k", NULL), MD_OK);
    md_error_clear(&err);
    assert_int_equal(md_replica_check_config(&c, &err), MD_OK);
    assert_int_equal(md_config_set(&c, "clock", "command", NULL), MD_OK);
    md_error_clear(&err);
    assert_int_equal(md_replica_check_config(&c, &err), MD_OK);
    md_config_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_leader_published_through_is_below_the_first_pending_entry),
        cmocka_unit_test(test_follower_drops_only_entries_tagged_at_most_the_published_seq),
        cmocka_unit_test(test_leader_claim_never_lets_a_follower_drop_an_undelivered_entry),
        cmocka_unit_test(test_note_is_idempotent_trim_and_merge_stay_safe),
        cmocka_unit_test(test_fail_stop_needs_a_majority_of_the_configured_replicas),
        cmocka_unit_test(test_replicated_mode_config_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
