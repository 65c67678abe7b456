/*
 * md_projector.h - the projector: a thread that applies the committed event
 * log to the projections in their own environment (md_proj_open_dir), off the
 * writer's transaction, in log order (docs/projections.md, "Their own
 * environment"; docs/operations.md, "Projection lag").
 *
 * Each step reads a snapshot of the committed log and applies the events past
 * the watermark, at most max_events in one projection transaction (bulk mode:
 * records written once, sorted; meta "seq" committed with them), so it merges
 * several writer batches when behind, with bounded memory. It never reads
 * beyond the committed log, so the watermark is never ahead of it. The writer
 * wakes it after each commit (md_projector_kick, an engine commit hook); it
 * also looks every 100 ms (writes that do not go through the engine).
 *
 * The gate (md_projector_set_sink): once the watermark covers a snapshot of
 * the log, every outbox entry committed by then (ids below that snapshot's
 * next outbox id) may leave: the sink receives that bound (the daemon passes
 * it to md_publisher_hold), so a result is published only once the
 * projections show its events.
 *
 * Durability (lazy sync, md_proj.h): the projections are derived from the
 * synced log, so a result waits for one fsync (the log's), not two: the
 * projector commits without fsync, behind the marker of un-synced commits
 * that makes a machine crash rebuild them at the next open. A second thread
 * (md-proj-sync) flushes the environment once the first un-synced commit is
 * sync_ms old, beside the projector's commits (never in their path); it
 * removes the marker only when no commit ran during that flush nor at its
 * start (under steady load the marker stays, and so a machine crash then
 * means a rebuild). md_projector_stop flushes last and removes it.
 *
 * Errors: a failed step is logged, counted (marketd_projection_failures_total)
 * and tried again after 100 ms; the watermark does not move meanwhile. A
 * failed flush is logged and tried again at the next look.
 *
 * Tests: MARKETD_TEST_PROJECTOR_DELAY_MS=N makes each step sleep N ms first,
 * so that kills land between the log's commit and the projections'
 * (tests/integration/test_crash_loop.sh). Never set it in production.
 *
 * Threads: the projector's and (sync_ms > 0) the flusher's;
 * start/stop/free on the main thread; md_projector_kick on the
 * writer (any thread; never blocks for long); md_projector_wait and
 * md_projector_seq from any thread.
 */
#ifndef MD_PROJECTOR_H
#define MD_PROJECTOR_H

#include <stdint.h>

#include "md_error.h"
#include "md_event.h"
#include "md_proj.h"
#include "md_store.h"

typedef struct md_projector md_projector_t;

/* Events per projection transaction at most (the memory bound: the
 * projections' dirty pages and bulk cache of one transaction). Draining a
 * backlog of 300,000 commands: peak RssAnon 48-49 MiB at 4096, 53-59 MiB at
 * 8192, the same drain time; offline, 4096 costs the projector ~20% more CPU
 * and ~40% more bytes written than 8192 (more commits of the same pages), off
 * the writer's core. */
#define MD_PROJECTOR_MAX_EVENTS 4096
/* Lazy sync: un-synced projection commits are flushed after this long (ms). */
#define MD_PROJECTOR_SYNC_MS 1000

/* The projector thread's scheduling (projections.priority): */
typedef enum md_priority {
    MD_PRIORITY_NORMAL, /* the process's */
    MD_PRIORITY_LOW,    /* nice 19 (setpriority(2); per thread on Linux) */
    MD_PRIORITY_IDLE    /* SCHED_IDLE (sched(7)): it runs when no other thread of the
                           machine wants the core, and a waking thread takes it at once */
} md_priority_t;

/** @brief "normal", "low" or "idle" (projections.priority). Any thread. */
const char *md_priority_name(md_priority_t p);
/** @brief The priority named @p s, or -1. Any thread. */
int md_priority_parse(const char *s);

/* md_projector_start's settings (zeroes: the defaults below, MD_PRIORITY_NORMAL). */
typedef struct md_projector_opts {
    uint64_t max_events; /* events per projection transaction at most; 0: MD_PROJECTOR_MAX_EVENTS */
    long sync_ms;        /* lazy sync (projections.sync_ms); 0: every commit synced */
    md_priority_t priority; /* below normal: the writer, whose commits every result waits
                               for, and the decoding helper get the cores first; the
                               projections catch up when a core is free */
} md_projector_opts_t;

/* Receives the first outbox id that may not leave yet (see the gate above). */
typedef void (*md_projector_sink_fn)(uint64_t below_id, void *ctx);

/**
 * @brief Starts the projector over @p proj (borrowed; opened with
 * md_proj_open_dir and caught up; must outlive the projector).
 * @param o max_events, sync_ms, priority (md_projector_opts_t; NULL: the
 *        defaults, every commit synced). Lazy sync (md_proj_lazy_sync;
 *        o->sync_ms > 0): the projections commit without fsync and are flushed by a thread of
 *        their own once the first un-synced commit is this old, and at a
 *        clean stop (md_projector_stop); MD_PROJECTOR_SYNC_MS is the
 *        configuration's default. A priority the kernel refuses is
 *        logged (a warning) and the projector runs at the process's.
 * @param out receives a new handle (md_projector_free).
 * @returns MD_OK, MD_EINVAL (projections without their own environment),
 *          MD_ESTORE (the first read), MD_EIO (thread).
 */
MD_MUST_CHECK
md_err_t md_projector_start(md_proj_t *proj, const md_projector_opts_t *o, md_projector_t **out,
                            md_error_t *err);

/** @brief A commit happened: step now. In the shape of md_commit_hook_fn.
 *  Any thread. */
void md_projector_kick(void *projector);

/*
 * The head start: the writer hands a batch's events over before its commit,
 * so that the projector applies them while the log's commit (its fsync) runs,
 * and commits them as soon as the log holds them (md_proj_apply_staged: the
 * event at the batch's last seq must carry the same hash; the watermark is
 * never ahead of the committed log). A result then waits for the projections'
 * commit only, not for their whole step (docs/performance.md, "Issue 17, ninth
 * pass"). Register the three with the engine:
 *   md_engine_add_batch_hooks(e, md_projector_stage_begin, md_projector_stage_end, pr, err);
 *   md_engine_add_hook(e, md_projector_stage_event, pr, err);
 * and md_projector_kick as its commit hook. Only batches of at most 1,024 events
 * and 1 MiB of event data are handed over (two at a time at most: the writer's
 * next while the projector commits one; more wait for the log as before), so
 * their copies cost the writer little; a batch that is not committed (its
 * transaction failed, or no commit within a second) is dropped, and the next
 * step applies the log as before. Its commits are counted in
 * marketd_projection_staged_commits_total.
 *
 * The gate opens to the next outbox id of the log's commit that holds the
 * batch (md_store_committed), so entries added after the hooks, or by a
 * retried batch with other results, are covered exactly.
 *
 * Threads: the three hooks on the writer's thread, inside its write
 * transaction; they never fail.
 */
MD_MUST_CHECK
md_err_t md_projector_stage_begin(md_txn_t *t, void *projector, md_error_t *err);
MD_MUST_CHECK
md_err_t md_projector_stage_event(md_txn_t *t, const md_event_t *ev, void *projector,
                                  md_error_t *err);
MD_MUST_CHECK
md_err_t md_projector_stage_end(md_txn_t *t, void *projector, md_error_t *err);

/** @brief Sets the gate's sink (NULL: none) and calls it at once with the
 *  current bound. @p ctx is borrowed. Main thread, before the consumer runs. */
void md_projector_set_sink(md_projector_t *pr, md_projector_sink_fn fn, void *ctx);

/** @brief The watermark (the last seq the projections show). Any thread. */
uint64_t md_projector_seq(md_projector_t *pr);

/**
 * @brief Waits until the watermark reaches @p seq, at most @p timeout_ms
 * (< 0: no bound). Any thread but the projector's. It gives up when the
 * projector's steps keep failing (10 in a row), with their error.
 * @returns MD_OK, MD_ETIMEDOUT, the failing step's error (MD_ESTORE, ...).
 */
MD_MUST_CHECK
md_err_t md_projector_wait(md_projector_t *pr, uint64_t seq, long timeout_ms, md_error_t *err);

/** @brief Stops the thread after its step in progress and flushes the
 *  un-synced commits (lazy sync); NULL does nothing. */
void md_projector_stop(md_projector_t *pr);
/** @brief Stops and frees; NULL does nothing. Main thread. */
void md_projector_free(md_projector_t *pr);

#endif
