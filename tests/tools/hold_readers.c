/*
 * hold_readers.c - exhausts LMDB's reader table of a store, for
 * tests/integration/test_faults.sh (built by mk/check.mk).
 *
 *   hold_readers DIR TOPIC SECONDS
 *
 * Opens DIR read-only and begins read transactions until LMDB refuses one
 * (the store allows 256 readers), prints how many it holds and why the next
 * failed, waits SECONDS (taking back every slot a reader of the daemon frees
 * meanwhile, within a millisecond), then frees one slot just long enough to read the
 * chain head and the stored offset of TOPIC partition 0 (what the daemon's
 * writer committed while every slot was taken), takes every slot again and
 * waits to be killed. SIGKILL leaves its slots behind as stale readers, which
 * the store must clear by itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "md_store.h"

#define MAX_HELD 1024

static md_store_t *store;
static md_txn_t *held[MAX_HELD];

/* Begins read transactions from @p n on until one fails; returns the count. */
static int grab(int n, md_error_t *err)
{
    while (n < MAX_HELD && md_store_read(store, &held[n], err) == MD_OK)
        n++;
    return n;
}

int main(int argc, char **argv)
{
    md_error_t err = {0};
    md_store_opts_t o = {.read_only = true};
    if (argc != 4) {
        fprintf(stderr, "usage: hold_readers DIR TOPIC SECONDS\n");
        return 2;
    }
    if (md_store_open(argv[1], &o, &store, &err) != MD_OK) {
        fprintf(stderr, "hold_readers: %s\n", err.msg);
        return 1;
    }
    int n = grab(0, &err);
    printf("holding %d read transactions; the next one failed: %s\n", n, err.msg);
    fflush(stdout);
    /* The daemon's own readers (the projector's and publisher's snapshots)
     * come and go: a slot one of them frees is taken at once, so that the
     * table stays full for the whole wait. */
    struct timespec ms = {0, 1000000}, now, end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += atol(argv[3]);
    do {
        n = grab(n, &err);
        nanosleep(&ms, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while (now.tv_sec < end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec < end.tv_nsec));
    /* One slot back for a moment (the publisher may win it: try a while). */
    md_txn_end(held[--n]);
    md_txn_t *t = NULL;
    for (int i = 0; i < 500; i++) {
        md_error_clear(&err);
        if (md_store_read(store, &t, &err) == MD_OK)
            break;
        usleep(10000);
    }
    uint64_t head = 0;
    int64_t next = 0;
    if (t == NULL || md_txn_head(t, &head, NULL, &err) != MD_OK)
        fprintf(stderr, "hold_readers: %s\n", err.msg);
    if (t != NULL && md_txn_offset_get(t, argv[2], 0, &next, &err) != MD_OK)
        next = -1;
    printf("after the hold: head=%llu offset=%lld\n", (unsigned long long)head, (long long)next);
    fflush(stdout);
    held[n++] = t;
    n = grab(n, &err);
    printf("holding %d again\n", n);
    fflush(stdout);
    for (;;)
        pause();
}
