/*
 * projector.c - the projector thread (md_projector.h): applies the committed
 * log to the projections' own environment and opens the publisher's gate as
 * the watermark moves.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "md_base.h"
#include "md_log.h"
#include "md_metrics.h"
#include "md_projector.h"

#define IDLE_MS 100 /* a look at the log without a kick; also the retry delay */
/* The head start (md_projector_stage_begin): a writer's batch of at most this
 * many events, with at most this many bytes of event data, is handed over
 * before its commit; a larger one is applied from the log after it, as before. */
#define STAGE_MAX_EVENTS 1024
#define STAGE_MAX_BYTES (1u << 20)
/* How long a batch handed over waits for the log's commit before it is dropped
 * (and applied from the log, if it was committed after all). */
#define STAGE_WAIT_MS 1000

/* One batch handed over. The writer fills an EMPTY slot (FILLING) and hands it
 * over (READY); the projector applies it and empties it. The events and their
 * data belong to the writer while FILLING and to the projector while READY. */
typedef enum stage_state { STAGE_EMPTY, STAGE_FILLING, STAGE_READY } stage_state_t;

typedef struct stage {
    stage_state_t state; /* under mu */
    md_event_t *evs;     /* STAGE_MAX_EVENTS (allocated by the writer at first use) */
    size_t *off;         /* each event's data offset in data, until READY */
    size_t n;
    md_buf_t data;
    uint64_t writes; /* the writer's transaction it belongs to (md_projector_t.writes) */
} stage_t;

struct md_projector {
    md_proj_t *proj;
    uint64_t max_events;
    long delay_ms; /* MARKETD_TEST_PROJECTOR_DELAY_MS: tests widen the window between commits */
    long sync_ms;  /* lazy sync: un-synced commits are flushed after this long; 0: none */
    md_priority_t priority; /* the projector thread's (md_projector_opts_t) */
    pthread_t flusher;      /* lazy sync: md_proj_sync off the applying thread */
    bool flusher_started;
    pthread_t thread;
    bool started;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* kicked, stop, or the watermark moved */
    bool kicked, stop;
    uint64_t seq;          /* the watermark */
    uint64_t below;        /* the gate: outbox ids below it may leave */
    uint64_t head_seen;    /* the furthest log head a step read (the lag gauges) */
    bool target_set;       /* a snapshot whose head the watermark has not reached */
    uint64_t target_head;  /* ... its head */
    uint64_t target_below; /* ... and its next outbox id */
    md_projector_sink_fn sink;
    void *sink_ctx;
    unsigned fails;      /* failed steps in a row */
    md_error_t last_err; /* the last one's error */
    /* Lazy sync: the marker is removed only after a sync begun while no step
     * was in md_proj_advance and followed by none (begun == done, unchanged). */
    uint64_t begun, done; /* md_proj_advance calls begun, and those that committed */
    int64_t dirty_ms;     /* when the first un-synced commit happened; 0: none */
    bool flusher_stop;
    /* The head start: two slots, so that the writer hands over its next batch
     * while the projector still commits the one before; both take them in
     * turn (the writer's w, the projector's r). Under mu: writes, kicks and
     * the wait's fields. */
    stage_t stage[2];
    unsigned w, r;
    bool staging;        /* the writer's own: the batch in progress is handed over */
    uint64_t writes;     /* write transactions the writer began */
    uint64_t kicks;      /* commits (md_projector_kick) */
    uint64_t wait_kicks; /* the wait's: the kicks it has seen */
    bool wait_over;      /* ... the writer moved on, or stop, or the deadline */
    bool stage_counted;  /* the batch applied is counted in begun (the log holds it) */
    struct timespec wait_deadline;
};

/* A waiter gives up after this many failed steps in a row (~1 s of retries). */
#define WAIT_MAX_FAILS 10

/* Opens the gate to @p below (lock held). */
static void open_gate(md_projector_t *pr, uint64_t below)
{
    if (below <= pr->below)
        return;
    pr->below = below;
    if (pr->sink)
        pr->sink(below, pr->sink_ctx);
}

/*
 * Records a step's outcome (lock held): the watermark, and the gate. A
 * snapshot's outbox bound may open the gate once the watermark reaches that
 * snapshot's head; when a step was capped (the watermark short of its
 * snapshot's head), the first such snapshot stays the target, so the gate
 * keeps moving while the projector works through a backlog.
 */
static void note_step(md_projector_t *pr, uint64_t seq, uint64_t head, uint64_t below)
{
    pr->seq = seq;
    if (pr->target_set && seq >= pr->target_head) {
        open_gate(pr, pr->target_below);
        pr->target_set = false;
    }
    if (seq >= head)
        open_gate(pr, below);
    else if (!pr->target_set) {
        pr->target_set = true;
        pr->target_head = head;
        pr->target_below = below;
    }
    if (head > pr->head_seen) /* a batch handed over reports its own last seq */
        pr->head_seen = head;
    atomic_store_explicit(&md_metrics.proj_seq, seq, memory_order_relaxed);
    atomic_store_explicit(&md_metrics.proj_head, pr->head_seen, memory_order_relaxed);
    if (seq >= pr->head_seen && !pr->kicked)
        atomic_store_explicit(&md_metrics.proj_behind_since_ms, 0, memory_order_relaxed);
    pthread_cond_broadcast(&pr->cv);
}

/*
 * How many events past @p from the next step applies (*max; 0: none): those up
 * to the log's head read here (*head, with its next outbox id *below), short of
 * a batch the writer has handed over (the head start), which goes first
 * (*held: nothing before it). The slots are read after the head: a batch
 * handed over later commits later, beyond that head.
 */
static md_err_t step_bound(md_projector_t *pr, uint64_t from, uint64_t *max, uint64_t *head,
                           uint64_t *below, bool *held, md_error_t *err)
{
    md_txn_t *t = NULL;
    uint64_t to;
    md_err_t rc = md_store_read(md_proj_log(pr->proj), &t, err);
    if (rc == MD_OK)
        rc = md_txn_head(t, head, NULL, err);
    if (rc == MD_OK)
        rc = md_txn_outbox_next(t, below, err);
    md_txn_end(t);
    if (rc != MD_OK)
        return rc;
    to = *head;
    *held = false;
    pthread_mutex_lock(&pr->mu);
    for (int i = 0; i < 2; i++) {
        const stage_t *s = &pr->stage[i];
        if (s->state == STAGE_READY && s->evs[0].seq > from && s->evs[0].seq - 1 < to) {
            to = s->evs[0].seq - 1;
            *held = true;
        }
    }
    pthread_mutex_unlock(&pr->mu);
    *max = to <= from ? 0 : to - from < pr->max_events ? to - from : pr->max_events;
    *held = *held && to <= from;
    return MD_OK;
}

/* Applies what the log holds beyond the watermark, a transaction at a time.
 * Returns false after a failure (the caller waits before the next try). */
static bool step(md_projector_t *pr)
{
    for (;;) {
        uint64_t seq = 0, head = 0, below = 0, before = md_projector_seq(pr), max = 0;
        bool held = false;
        md_error_t err = {0};
        if (pr->delay_ms > 0)
            md_sleep_ms(pr->delay_ms);
        md_err_t rc = step_bound(pr, before, &max, &head, &below, &held, &err);
        if (rc == MD_OK && held)
            return true;               /* the batch handed over goes first */
        if (rc == MD_OK && max == 0) { /* nothing to apply: the gate may still move */
            pthread_mutex_lock(&pr->mu);
            pr->fails = 0;
            note_step(pr, before, head, below);
            pthread_mutex_unlock(&pr->mu);
            return true;
        }
        pthread_mutex_lock(&pr->mu);
        pr->begun++;
        pthread_mutex_unlock(&pr->mu);
        if (rc == MD_OK)
            rc = md_proj_advance(pr->proj, max, &seq, &head, &below, &err);
        pthread_mutex_lock(&pr->mu);
        if (rc == MD_OK && seq > before)
            pr->done++;
        else
            pr->begun--; /* nothing committed: no reason to keep the marker */
        if (pr->dirty_ms == 0 && md_proj_unsynced(pr->proj))
            pr->dirty_ms = md_mono_ms();
        pthread_mutex_unlock(&pr->mu);
        if (rc != MD_OK) {
            pthread_mutex_lock(&pr->mu);
            pr->fails++;
            pr->last_err = err;
            pthread_cond_broadcast(&pr->cv);
            pthread_mutex_unlock(&pr->mu);
            atomic_fetch_add_explicit(&md_metrics.proj_failures, 1, memory_order_relaxed);
            md_log_error("projection step failed, will retry", "seq=%llu error=\"%s\"",
                         (unsigned long long)before, err.msg);
            return false;
        }
        if (seq > before)
            atomic_fetch_add_explicit(&md_metrics.proj_commits, 1, memory_order_relaxed);
        pthread_mutex_lock(&pr->mu);
        pr->fails = 0;
        note_step(pr, seq, head, below);
        bool more = seq < head && !pr->stop;
        pthread_mutex_unlock(&pr->mu);
        if (!more)
            return true;
    }
}

/* ---- the head start ---------------------------------------------------------------------- */

/* md_proj_apply_staged's wait (md_proj_wait_fn): until the next commit, the
 * writer's next transaction, stop or the deadline. Once the writer has moved on,
 * the log already holds the batch or never will: the look that follows is the
 * last, and the next call gives up. Held: the projections' commit is counted as
 * a step begun (the flusher keeps the marker), only now, so that a batch never
 * committed (a full disk's retries) holds the marker no longer than before. */
static md_err_t stage_wait(void *ctx, bool held, md_error_t *err)
{
    md_projector_t *pr = ctx;
    const stage_t *s = &pr->stage[pr->r];
    int wrc = 0;
    pthread_mutex_lock(&pr->mu);
    if (held) {
        pr->begun += pr->stage_counted ? 0 : 1;
        pr->stage_counted = true;
        pthread_mutex_unlock(&pr->mu);
        return MD_OK;
    }
    bool over = pr->wait_over;
    pr->wait_over = pr->writes != s->writes || pr->stop;
    while (!over && !pr->wait_over && pr->kicks == pr->wait_kicks && wrc == 0) {
        wrc = pthread_cond_timedwait(&pr->cv, &pr->mu, &pr->wait_deadline);
        pr->wait_over = pr->writes != s->writes || pr->stop || wrc != 0;
    }
    pr->wait_kicks = pr->kicks;
    pthread_mutex_unlock(&pr->mu);
    return over ? md_error_set(err, MD_ENOTFOUND, "the batch handed over was not committed")
                : MD_OK;
}

/* Applies the batch in slot r (READY), commits it once the log holds it, and
 * empties the slot. A batch that cannot go first (the projections behind it,
 * or not committed) is dropped: the next step applies the log as before. */
static void apply_stage(md_projector_t *pr)
{
    stage_t *s = &pr->stage[pr->r];
    md_error_t err = {0};
    pthread_mutex_lock(&pr->mu);
    pr->stage_counted = false;
    pr->wait_kicks = pr->kicks;
    pr->wait_over = false;
    md_deadline_ms(&pr->wait_deadline, STAGE_WAIT_MS);
    pthread_mutex_unlock(&pr->mu);
    if (pr->delay_ms > 0)
        md_sleep_ms(pr->delay_ms);
    uint64_t below = 0; /* the gate's bound: the next outbox id of the commit that holds them */
    md_err_t rc = md_proj_apply_staged(pr->proj, s->evs, s->n, stage_wait, pr, &below, &err);
    uint64_t last = s->evs[s->n - 1].seq;
    if (rc == MD_OK) { /* counted before the watermark moves: a waiter sees both */
        atomic_fetch_add_explicit(&md_metrics.proj_commits, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&md_metrics.proj_staged, 1, memory_order_relaxed);
    }
    pthread_mutex_lock(&pr->mu);
    if (rc == MD_OK) {
        pr->done++;
        pr->fails = 0;
        note_step(pr, last, last, below);
    } else {
        pr->begun -= pr->stage_counted ? 1 : 0; /* nothing committed */
        pr->kicked = true;                      /* the log, as before, in the step that follows */
    }
    if (pr->dirty_ms == 0 && md_proj_unsynced(pr->proj))
        pr->dirty_ms = md_mono_ms();
    s->state = STAGE_EMPTY;
    pr->r ^= 1;
    pthread_mutex_unlock(&pr->mu);
    if (rc != MD_OK && rc != MD_ENOTFOUND) {
        md_log_warn("projection head start failed, applying from the log", "seq=%llu error=\"%s\"",
                    (unsigned long long)last, err.msg);
    }
}

/* The writer drops the batch it was handing over (too large, or empty). */
static void stage_drop(md_projector_t *pr)
{
    pr->staging = false;
    pthread_mutex_lock(&pr->mu);
    pr->stage[pr->w].state = STAGE_EMPTY;
    pthread_mutex_unlock(&pr->mu);
}

md_err_t md_projector_stage_begin(md_txn_t *t, void *projector, md_error_t *err)
{
    md_projector_t *pr = projector;
    stage_t *s = &pr->stage[pr->w];
    (void)t;
    (void)err;
    pthread_mutex_lock(&pr->mu);
    pr->writes++; /* the transaction before has ended: its batch is in the log or never */
    pr->staging = s->state != STAGE_READY;
    if (pr->staging)
        s->state = STAGE_FILLING;
    pthread_cond_broadcast(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
    if (!pr->staging)
        return MD_OK;
    if (s->evs == NULL) {
        s->evs = md_calloc(STAGE_MAX_EVENTS, sizeof *s->evs);
        s->off = md_calloc(STAGE_MAX_EVENTS, sizeof *s->off);
    }
    s->n = 0;
    md_buf_reset(&s->data);
    return MD_OK;
}

/* The slot the writer fills for the batch in progress; NULL: not handed over. */
static stage_t *filling(md_projector_t *pr)
{
    return pr->staging ? &pr->stage[pr->w] : NULL;
}

md_err_t md_projector_stage_event(md_txn_t *t, const md_event_t *ev, void *projector,
                                  md_error_t *err)
{
    md_projector_t *pr = projector;
    stage_t *s = filling(pr);
    (void)t;
    (void)err;
    if (s == NULL)
        return MD_OK;
    if (s->n == STAGE_MAX_EVENTS || ev->data_len > STAGE_MAX_BYTES - s->data.len) {
        stage_drop(pr); /* applied from the log after the commit */
        return MD_OK;
    }
    s->evs[s->n] = *ev;
    s->off[s->n++] = s->data.len;
    md_buf_append(&s->data, ev->data, ev->data_len);
    return MD_OK;
}

md_err_t md_projector_stage_end(md_txn_t *t, void *projector, md_error_t *err)
{
    md_projector_t *pr = projector;
    stage_t *s = filling(pr);
    (void)t;
    (void)err;
    if (s == NULL)
        return MD_OK;
    if (s->n == 0) {
        stage_drop(pr); /* nothing to hand over */
        return MD_OK;
    }
    for (size_t i = 0; i < s->n; i++)
        s->evs[i].data = s->data.p + s->off[i];
    pr->staging = false;
    pthread_mutex_lock(&pr->mu);
    s->writes = pr->writes;
    s->state = STAGE_READY;
    pr->w ^= 1;
    pthread_cond_broadcast(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
    return MD_OK;
}

/* Lazy sync, one flush (lock held on entry and exit, released during the
 * sync): the commits are written to disk beside the applying thread; the
 * marker goes only when no step ran during the sync nor was running at its
 * start (under steady load it stays, and the next flush comes sync_ms later).
 * A failure is logged; the marker stays and the next flush tries again. */
static void flush_once(md_projector_t *pr)
{
    md_error_t err = {0};
    uint64_t begun = pr->begun;
    bool idle = pr->begun == pr->done;
    pthread_mutex_unlock(&pr->mu);
    md_err_t rc = md_proj_sync(pr->proj, &err);
    pthread_mutex_lock(&pr->mu);
    if (rc == MD_OK && idle && pr->begun == begun)
        rc = md_proj_unmark(pr->proj, &err);
    if (rc != MD_OK)
        md_log_error("projection flush failed, will retry", "error=\"%s\"", err.msg);
    pr->dirty_ms = md_proj_unsynced(pr->proj) ? md_mono_ms() : 0;
}

/* The flusher thread: a flush once the first un-synced commit is sync_ms
 * old; looks every IDLE_MS at most. */
static void *flusher_main(void *arg)
{
    md_projector_t *pr = arg;
    (void)prctl(PR_SET_NAME, "md-proj-sync", 0, 0, 0);
    pthread_mutex_lock(&pr->mu);
    while (!pr->flusher_stop) {
        int64_t now = md_mono_ms();
        if (pr->dirty_ms != 0 && now - pr->dirty_ms >= pr->sync_ms) {
            flush_once(pr);
            continue;
        }
        long wait = pr->dirty_ms ? (long)(pr->dirty_ms + pr->sync_ms - now) : IDLE_MS;
        struct timespec ts;
        md_deadline_ms(&ts, wait < IDLE_MS ? wait : IDLE_MS);
        (void)pthread_cond_timedwait(&pr->cv, &pr->mu, &ts);
    }
    pthread_mutex_unlock(&pr->mu);
    return NULL;
}

/* At a clean stop, both threads joined: nothing un-synced stays. */
static void final_flush(md_projector_t *pr)
{
    md_error_t err = {0};
    if (md_proj_flush(pr->proj, &err) != MD_OK)
        md_log_error("projection flush at stop failed", "error=\"%s\"", err.msg);
}

/* The calling thread's scheduling (Linux: nice values and policies are per
 * thread, and pid 0 is the calling thread). Deferred work yields the cores to
 * the writer and the decoding helper: make bench's offline JSON row went from
 * 77k to 86k/s at nice 19 and to 98k/s with SCHED_IDLE, whose threads a waking
 * writer preempts at once (docs/performance.md). */
#ifndef SCHED_IDLE
#define SCHED_IDLE 5 /* Linux's (<linux/sched.h>); glibc shows it only under _GNU_SOURCE */
#endif

static void lower_priority(md_priority_t prio)
{
    if (prio == MD_PRIORITY_IDLE) {
        struct sched_param sp = {.sched_priority = 0};
        if (sched_setscheduler(0, SCHED_IDLE, &sp) != 0)
            md_log_warn("projector priority unchanged", "policy=idle error=\"%s\"",
                        strerror(errno));
    } else if (prio == MD_PRIORITY_LOW && setpriority(PRIO_PROCESS, 0, 19) != 0) {
        md_log_warn("projector priority unchanged", "nice=19 error=\"%s\"", strerror(errno));
    }
}

static void *projector_main(void *arg)
{
    md_projector_t *pr = arg;
    bool ok = true;
    (void)prctl(PR_SET_NAME, "md-projector", 0, 0, 0); /* per-thread profiles name it */
    lower_priority(pr->priority);
    for (;;) {
        struct timespec ts;
        md_deadline_ms(&ts, IDLE_MS);
        pthread_mutex_lock(&pr->mu);
        while (!pr->stop && pr->stage[pr->r].state != STAGE_READY && (!pr->kicked || !ok))
            if (pthread_cond_timedwait(&pr->cv, &pr->mu, &ts) == ETIMEDOUT)
                break;
        bool stop = pr->stop, staged = pr->stage[pr->r].state == STAGE_READY;
        if (!staged)
            pr->kicked = false;
        pthread_mutex_unlock(&pr->mu);
        if (stop)
            break;
        if (staged)
            apply_stage(pr); /* then, kicked by its commit, a step for anything else */
        else
            ok = step(pr);
    }
    return NULL;
}

md_err_t md_projector_start(md_proj_t *proj, const md_projector_opts_t *o, md_projector_t **out,
                            md_error_t *err)
{
    static const md_projector_opts_t defaults = {0};
    if (o == NULL)
        o = &defaults;
    if (proj == NULL || !md_proj_split(proj))
        return md_error_set(err, MD_EINVAL,
                            "projector: projections without their own "
                            "environment");
    md_projector_t *pr = md_calloc(1, sizeof *pr);
    pr->proj = proj;
    pr->max_events = o->max_events ? o->max_events : MD_PROJECTOR_MAX_EVENTS;
    pr->priority = o->priority;
    const char *delay = getenv("MARKETD_TEST_PROJECTOR_DELAY_MS");
    pr->delay_ms = delay ? strtol(delay, NULL, 10) : 0;
    pr->sync_ms = o->sync_ms > 0 ? o->sync_ms : 0;
    pthread_mutex_init(&pr->mu, NULL);
    pthread_cond_init(&pr->cv, NULL);
    uint64_t seq = 0, head = 0, below = 0;
    md_err_t rc = pr->sync_ms ? md_proj_lazy_sync(proj, err) : MD_OK;
    if (rc == MD_OK) /* caught up at open */
        rc = md_proj_advance(proj, 0, &seq, &head, &below, err);
    if (rc == MD_OK && md_proj_unsynced(proj))
        pr->dirty_ms = md_mono_ms(); /* left by a process that died, or the catch-up */
    if (rc == MD_OK && pr->sync_ms) {
        if (pthread_create(&pr->flusher, NULL, flusher_main, pr) != 0)
            rc = md_error_set(err, MD_EIO, "projection flusher thread: %s", strerror(errno));
        else
            pr->flusher_started = true;
    }
    if (rc == MD_OK) {
        note_step(pr, seq, head, below);
        atomic_store_explicit(&md_metrics.proj_on, true, memory_order_relaxed);
        if (pthread_create(&pr->thread, NULL, projector_main, pr) != 0)
            rc = md_error_set(err, MD_EIO, "projector thread: %s", strerror(errno));
        else
            pr->started = true;
    }
    if (rc != MD_OK) {
        md_projector_free(pr);
        return rc;
    }
    md_log_info("projector started", "seq=%llu max_events=%llu sync_ms=%ld priority=%s",
                (unsigned long long)seq, (unsigned long long)pr->max_events, pr->sync_ms,
                md_priority_name(pr->priority));
    *out = pr;
    return MD_OK;
}

const char *md_priority_name(md_priority_t p)
{
    static const char *const names[] = {
        [MD_PRIORITY_NORMAL] = "normal", [MD_PRIORITY_LOW] = "low", [MD_PRIORITY_IDLE] = "idle"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

int md_priority_parse(const char *s)
{
    for (int p = MD_PRIORITY_NORMAL; p <= MD_PRIORITY_IDLE; p++)
        if (strcmp(s, md_priority_name((md_priority_t)p)) == 0)
            return p;
    return -1;
}

void md_projector_kick(void *projector)
{
    md_projector_t *pr = projector;
    long now = (long)md_mono_ms();
    pthread_mutex_lock(&pr->mu);
    pr->kicked = true;
    pr->kicks++;
    long zero = 0;
    atomic_compare_exchange_strong(&md_metrics.proj_behind_since_ms, &zero, now);
    pthread_cond_broadcast(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
}

void md_projector_set_sink(md_projector_t *pr, md_projector_sink_fn fn, void *ctx)
{
    pthread_mutex_lock(&pr->mu);
    pr->sink = fn;
    pr->sink_ctx = ctx;
    if (fn)
        fn(pr->below, ctx);
    pthread_mutex_unlock(&pr->mu);
}

uint64_t md_projector_seq(md_projector_t *pr)
{
    pthread_mutex_lock(&pr->mu);
    uint64_t s = pr->seq;
    pthread_mutex_unlock(&pr->mu);
    return s;
}

md_err_t md_projector_wait(md_projector_t *pr, uint64_t seq, long timeout_ms, md_error_t *err)
{
    struct timespec ts;
    md_err_t rc = MD_OK;
    md_projector_kick(pr);
    md_deadline_ms(&ts, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&pr->mu);
    while (pr->seq < seq && rc == MD_OK) {
        if (pr->fails >= WAIT_MAX_FAILS) {
            rc = md_error_set(err, pr->last_err.code ? pr->last_err.code : MD_ESTORE,
                              "projections stuck at seq %llu: %s", (unsigned long long)pr->seq,
                              pr->last_err.msg);
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&pr->cv, &pr->mu);
        else if (pthread_cond_timedwait(&pr->cv, &pr->mu, &ts) == ETIMEDOUT && pr->seq < seq)
            rc = md_error_set(err, MD_ETIMEDOUT, "projections at seq %llu, not yet at %llu",
                              (unsigned long long)pr->seq, (unsigned long long)seq);
    }
    pthread_mutex_unlock(&pr->mu);
    return rc;
}

void md_projector_stop(md_projector_t *pr)
{
    if (pr == NULL || (!pr->started && !pr->flusher_started))
        return;
    pthread_mutex_lock(&pr->mu);
    pr->stop = true;
    pr->flusher_stop = true;
    pthread_cond_broadcast(&pr->cv);
    pthread_mutex_unlock(&pr->mu);
    if (pr->started)
        pthread_join(pr->thread, NULL);
    if (pr->flusher_started)
        pthread_join(pr->flusher, NULL);
    pr->started = pr->flusher_started = false;
    final_flush(pr); /* a clean stop leaves nothing un-synced */
}

void md_projector_free(md_projector_t *pr)
{
    if (pr == NULL)
        return;
    md_projector_stop(pr);
    for (int i = 0; i < 2; i++) {
        free(pr->stage[i].evs);
        free(pr->stage[i].off);
        md_buf_release(&pr->stage[i].data);
    }
    pthread_mutex_destroy(&pr->mu);
    pthread_cond_destroy(&pr->cv);
    free(pr);
}
