/*
 * rebuild.c - replaying the event log into projections: catch-up at open,
 * `rebuild` (drop and recompute in place), digests, `verify` (live versus a
 * rebuild compared as it is made, or made in a temporary environment) and
 * point-in-time `replay`.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bulk.h"

#define PROGRESS_EVERY 0xffff

/* A replay of events from @p src into the projections of @p p over @p dst. */
typedef struct walk {
    md_proj_t *p;
    md_txn_t *src; /* where the events are read */
    md_txn_t *dst; /* the write transaction being filled */
    bool copy;     /* also append each event to dst (replay) */
    uint64_t from, until, n, total;
    size_t need_pages; /* free pages the map must offer first (0: no check) */
    bool parallel;     /* may run a helper thread (see "lanes") */
    bool serial_retry; /* the helper gave up: run again without one */
    struct lane *lane;
    md_progress_fn progress;
    void *pctx;
} walk_t;

/* ---- room in the map ----------------------------------------------------------------
 * A replay writes the projections at the end of one long transaction (bulk
 * mode, bulk.c); when that runs out of map, LMDB fails the commit with
 * MDB_MAP_FULL, md_store_write grows the map and replays everything again.
 * So the room is estimated first: the new projections take about as many
 * pages as the ones they replace (bulk-loaded pages are fuller, not emptier),
 * and a map without that room is grown before any event is applied. */

/* Pages held by the projections' databases in @p txn. */
static size_t proj_pages(md_proj_t *p, MDB_txn *txn)
{
    size_t n = 0;
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        MDB_stat st;
        if (mdb_stat(txn, p->dbi[i], &st) == MDB_SUCCESS)
            n += st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages;
    }
    return n;
}

/* Pages the map of @p txn's environment can still give: beyond the last page
 * in use, and the free list (dbi 0: a record per transaction id, a page list
 * led by its count) but for the record of the last transaction, which LMDB
 * does not reuse in the next one (nor while a reader holds its snapshot, as
 * a replay's helper does). */
static size_t room_pages(MDB_txn *txn)
{
    MDB_env *env = mdb_txn_env(txn);
    MDB_envinfo info;
    MDB_stat st;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    if (mdb_env_info(env, &info) != MDB_SUCCESS || mdb_env_stat(env, &st) != MDB_SUCCESS)
        return SIZE_MAX;
    size_t total = info.me_mapsize / st.ms_psize, used = info.me_last_pgno + 1;
    size_t n = total > used ? total - used : 0;
    if (mdb_cursor_open(txn, 0, &cur) != MDB_SUCCESS)
        return n;
    size_t last = mdb_txn_id(txn) - 1, id;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t count; /* an MDB_ID */
        if (k.mv_size != sizeof id)
            continue;
        memcpy(&id, k.mv_data, sizeof id);
        if (id < last && v.mv_size >= sizeof count) {
            memcpy(&count, v.mv_data, sizeof count);
            n += (size_t)count;
        }
    }
    mdb_cursor_close(cur);
    return n;
}

/* The pages to ask for before rebuilding projections that hold @p pages. */
static size_t with_slack(size_t pages)
{
    return pages + pages / 8 + 1024;
}

static md_err_t copy_event(walk_t *w, const md_event_t *ev, md_event_t *out, md_error_t *err)
{
    *out = *ev;
    md_err_t rc = md_txn_append(w->dst, out, err);
    if (rc == MD_OK && (out->seq != ev->seq || memcmp(out->hash, ev->hash, MD_HASH_LEN) != 0))
        rc = md_error_set(err, MD_ECORRUPT, "seq %llu: re-appended event differs (hash)",
                          (unsigned long long)ev->seq);
    return rc;
}

/* ---- lanes: a helper thread --------------------------------------------------------
 * A replay from the first event (rebuild, verify, replay) runs the projections
 * in two lanes. A helper thread reads and decodes the events through a read
 * transaction of its own, copies each decoded event into a ring for the
 * writer (the thread holding the write transaction), which applies orders and
 * records to them, and applies accounts, audit and sales to a handle of its
 * own, in bulk mode (bulk.c): their databases are empty at the start, so
 * nothing is read back from LMDB, and its writes (pj_batch_t; its logs and
 * spills sorted when it is ahead of the writer, else left for the writer to
 * sort: see lane_sorts_here) are handed to the writer, which writes them
 * between its own events and hands the batches back for reuse. A projection
 * reads and writes only its own databases, so the result is the one of a
 * single lane: the same keys and values, written in the same order per
 * database.
 *
 * MARKETD_REPLAY_THREADS=1 keeps a replay in one thread; =2 runs the helper
 * however short the replay, through a ring of LANE_TEST_RING slots so that a
 * replay of more events wraps it, has the helper sort every other log or
 * spill (lane_sorts_here) and sorts the writer's last log aside however
 * short, if not empty (tests); by default it runs from LANE_MIN_EVENTS
 * events. A helper that cannot open its read transaction, or whose records
 * outgrow p->bulk_max (it cannot write early: it does not see the writer's
 * writes), gives up, and the replay runs again in one thread. */

/* The writer's projections. Records moved here from the helper (issue 17, sixth
 * pass): the helper, which also decodes, was the slower lane; with records on
 * the writer both finish their events within ~0.1 s of each other. */
#define LANE_WRITER ((1u << MD_PROJ_ORDERS) | (1u << MD_PROJ_RECORDS))
#define LANE_QUEUE 2 /* batches waiting for the writer, at most */
#define LANE_MIN_EVENTS 50000
#define LANE_DRAIN_EVERY 1023 /* the writer looks for batches every 1,024 events */
/* Decoded events in flight to the writer (~440 bytes each: ~29 MB). Each lane has
 * bursts (the helper's batch handovers, the writer's batch writes) longer than a
 * ring of 2,048 covered, so each waited for the other: 0.7 s and 1.2 s of a
 * 3.2 s rebuild. At 65,536 neither waits for more than ~0.3 s. */
#define LANE_RING 65536   /* a power of two, as every ring size here */
#define LANE_TEST_RING 16 /* MARKETD_REPLAY_THREADS=2: the ring wraps in a short replay */
#define LANE_BLOCK 256    /* published to the writer this many at a time */
#define LANE_ASIDE_MIN ((size_t)4 << 20) /* the writer's last log sorted aside (bulk.c) */

typedef struct lane {
    md_proj_t hp;      /* the helper's handle */
    md_store_t *store; /* where it reads the events */
    uint64_t from, count;
    md_txn_t *t; /* its read transaction */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pj_batch_t *head, *tail; /* queued for the writer */
    pj_batch_t *spare;       /* written, for reuse */
    size_t queued;
    bool done, stop;
    bool gave_up; /* could not read, or outgrew its bound: run serially */
    atomic_bool stopping;
    md_err_t rc;
    md_error_t err;
    /* The events, decoded once: the helper copies each one it reads into the
     * ring (published a block at a time) and the writer applies them from
     * there instead of reading and decoding them again. Their data points into
     * the helper's read transaction, which stays open until lane_stop. */
    md_event_t *ring;
    uint64_t ring_mask;        /* its slots - 1: LANE_RING slots, fewer for a short
                                * replay (the power of two above its events) or
                                * LANE_TEST_RING under MARKETD_REPLAY_THREADS=2 */
    uint64_t produced;         /* events published (under mu) */
    _Atomic uint64_t consumed; /* applied by the writer: their slots are free */
    uint64_t fill;             /* the helper's: events copied, not yet published */
    bool fed_all;              /* the helper read its last event (or failed: feed_rc) */
    md_err_t feed_rc;
    md_error_t feed_err;
    unsigned emitted;     /* under MARKETD_REPLAY_THREADS=2: its unsorted batches */
    bool alternate;       /* MARKETD_REPLAY_THREADS=2: every other one sorted here */
    unsigned long sorted; /* its logs and spills it sorted itself (p->sorts[0]) */
} lane_t;

/* Whether the helper sorts its unsorted batch (a log or a spill) itself: when
 * it is ahead of the writer (half the ring or more not yet released by the
 * writer, which releases what it took at once, applied or not), the writer is
 * the slower lane and would sort it later on the replay's critical path; when
 * the writer is close behind, the helper's own events are what it waits for,
 * so the batch goes to it unsorted. After its last event (md__pj_bulk_end) the
 * helper always sorts: it has nothing else left to do (fed_all is its own
 * write, read on its own thread). The sorted items are the same whichever
 * thread sorts; a fixed share had one lane wait for the other either way
 * (docs/performance.md, issue 17's seventh pass). Under
 * MARKETD_REPLAY_THREADS=2 every other log or spill is sorted here, so that
 * tests run both paths whatever the timing (the fill is read all the same). */
static bool lane_sorts_here(lane_t *ln)
{
    bool writer_behind =
        ln->fed_all ||
        ln->fill - atomic_load_explicit(&ln->consumed, memory_order_acquire) > ln->ring_mask / 2;
    if (ln->alternate)
        return ++ln->emitted % 2 == 0;
    return writer_behind;
}

static md_err_t lane_emit(void *ctx, pj_batch_t *b, md_error_t *err)
{
    lane_t *ln = ctx;
    if (b->unsorted && !atomic_load_explicit(&ln->stopping, memory_order_relaxed) &&
        lane_sorts_here(ln)) {
        md__pj_log_sort(&ln->hp.sort, &b->data, &b->items, b->at);
        b->unsorted = false;
        ln->sorted++;
    }
    pthread_mutex_lock(&ln->mu);
    while (ln->queued >= LANE_QUEUE && !ln->stop)
        pthread_cond_wait(&ln->cv, &ln->mu);
    bool stop = ln->stop;
    if (!stop) {
        b->next = NULL;
        if (ln->tail)
            ln->tail->next = b;
        else
            ln->head = b;
        ln->tail = b;
        ln->queued++;
        pthread_cond_broadcast(&ln->cv);
    }
    pthread_mutex_unlock(&ln->mu);
    if (!stop)
        return MD_OK;
    md__pj_batch_free(b);
    return md_error_set(err, MD_ESTOP, "replay stopped");
}

static pj_batch_t *lane_spare(void *ctx)
{
    lane_t *ln = ctx;
    pthread_mutex_lock(&ln->mu);
    pj_batch_t *b = ln->spare;
    if (b)
        ln->spare = b->next;
    pthread_mutex_unlock(&ln->mu);
    return b;
}

/* Publishes the events copied so far to the writer. */
static void ring_publish(lane_t *ln)
{
    pthread_mutex_lock(&ln->mu);
    ln->produced = ln->fill;
    pthread_cond_broadcast(&ln->cv);
    pthread_mutex_unlock(&ln->mu);
}

/* Copies @p ev into the ring for the writer, waiting for room; false when
 * the replay stops. */
static bool ring_put(lane_t *ln, const md_event_t *ev)
{
    if (ln->fill - atomic_load_explicit(&ln->consumed, memory_order_acquire) > ln->ring_mask) {
        pthread_mutex_lock(&ln->mu);
        ln->produced = ln->fill;
        pthread_cond_broadcast(&ln->cv);
        while (ln->fill - atomic_load_explicit(&ln->consumed, memory_order_acquire) >
                   ln->ring_mask &&
               !ln->stop)
            pthread_cond_wait(&ln->cv, &ln->mu);
        bool stop = ln->stop;
        pthread_mutex_unlock(&ln->mu);
        if (stop)
            return false;
    }
    ln->ring[ln->fill & ln->ring_mask] = *ev;
    if (++ln->fill % LANE_BLOCK == 0)
        ring_publish(ln);
    return true;
}

static md_err_t lane_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                           md_error_t *err)
{
    lane_t *ln = ctx;
    (void)body, (void)len;
    if (atomic_load_explicit(&ln->stopping, memory_order_relaxed))
        return MD_ESTOP; /* (md_txn_scan stops quietly) */
    if (ln->ring && !ring_put(ln, ev))
        return MD_ESTOP;
    md_err_t rc = md__pj_apply_one(&ln->hp, ln->t, ev, err);
    return rc == MD_OK ? md__pj_bulk_step(&ln->hp, NULL, ev->seq, err) : rc;
}

static void *lane_main(void *arg)
{
    lane_t *ln = arg;
    md_error_t err = {0};
    md_err_t rc = md_store_read(ln->store, &ln->t, &err);
    bool gave_up = rc != MD_OK;
    if (rc == MD_OK)
        rc = md_txn_scan(ln->t, ln->from, ln->count, lane_event, ln, &err);
    gave_up = gave_up || rc == MD_ENOMEM;
    if (rc == MD_OK && atomic_load(&ln->stopping))
        rc = md_error_set(&err, MD_ESTOP, "replay stopped");
    pthread_mutex_lock(&ln->mu);
    ln->produced = ln->fill;
    ln->fed_all = true;
    ln->feed_rc = rc;
    ln->feed_err = err;
    ln->gave_up = gave_up;
    pthread_cond_broadcast(&ln->cv);
    pthread_mutex_unlock(&ln->mu);
    md_err_t end = md__pj_bulk_end(&ln->hp, NULL, rc == MD_OK, &err); /* hands the rest over */
    if (rc == MD_OK)
        rc = end;
    pthread_mutex_lock(&ln->mu);
    ln->rc = rc;
    ln->err = err;
    ln->done = true;
    pthread_cond_broadcast(&ln->cv);
    while (!ln->stop) /* the writer may still read the ring's events */
        pthread_cond_wait(&ln->cv, &ln->mu);
    pthread_mutex_unlock(&ln->mu);
    md_txn_end(ln->t);
    ln->t = NULL;
    return NULL;
}

static md_err_t walk_one(const md_event_t *ev, const void *body, size_t len, void *ctx,
                         md_error_t *err);
static md_err_t lane_drain(lane_t *ln, md_proj_t *p, MDB_txn *txn, bool wait, md_error_t *err);

/* The writer's walk over the helper's decoded events (instead of md_txn_scan):
 * writes the helper's batches while it waits for events. Fails with the
 * helper's error once the events before it are applied. */
static md_err_t lane_walk(struct walk *w, md_error_t *err)
{
    lane_t *ln = w->lane;
    uint64_t at = 0;
    for (;;) {
        pthread_mutex_lock(&ln->mu);
        atomic_store_explicit(&ln->consumed, at, memory_order_release);
        pthread_cond_broadcast(&ln->cv);
        while (ln->produced == at && !ln->fed_all && ln->head == NULL)
            pthread_cond_wait(&ln->cv, &ln->mu);
        uint64_t upto = ln->produced;
        bool all = ln->fed_all, batches = ln->head != NULL;
        md_err_t hrc = ln->feed_rc;
        pthread_mutex_unlock(&ln->mu);
        md_err_t rc = MD_OK;
        if (batches)
            rc = lane_drain(ln, w->p, md_txn_mdb(w->dst), false, err);
        for (; at < upto && rc == MD_OK; at++)
            rc = walk_one(&ln->ring[at & ln->ring_mask], NULL, 0, w, err);
        if (rc == MD_ESTOP)
            return MD_OK; /* as md_txn_scan: a quiet stop */
        if (rc != MD_OK)
            return rc;
        if (all && at == upto)
            return hrc == MD_OK ? MD_OK : md_error_set(err, hrc, "%s", ln->feed_err.msg);
    }
}

/* Writes the helper's queued batches; with @p wait, all of them until it is
 * done. Fails with the helper's error. */
static md_err_t lane_drain(lane_t *ln, md_proj_t *p, MDB_txn *txn, bool wait, md_error_t *err)
{
    for (;;) {
        pthread_mutex_lock(&ln->mu);
        while (wait && ln->head == NULL && !ln->done)
            pthread_cond_wait(&ln->cv, &ln->mu);
        pj_batch_t *b = ln->head;
        if (b) {
            ln->head = b->next;
            if (ln->head == NULL)
                ln->tail = NULL;
            ln->queued--;
            pthread_cond_broadcast(&ln->cv);
        }
        bool done = ln->done;
        md_err_t hrc = ln->rc;
        pthread_mutex_unlock(&ln->mu);
        if (b == NULL) {
            if (done && hrc != MD_OK)
                return md_error_set(err, hrc, "%s", ln->err.msg);
            if (!wait || done)
                return MD_OK;
            continue;
        }
        md_err_t rc = md__pj_batch_write(p, txn, b, err);
        md__pj_batch_clear(b);
        pthread_mutex_lock(&ln->mu);
        b->next = ln->spare;
        ln->spare = b;
        pthread_mutex_unlock(&ln->mu);
        if (rc != MD_OK)
            return rc;
    }
}

static void lane_free_list(pj_batch_t *b)
{
    while (b) {
        pj_batch_t *next = b->next;
        md__pj_batch_free(b);
        b = next;
    }
}

/* Stops the helper (when still running) and waits for it. */
static void lane_stop(lane_t *ln)
{
    if (ln->stop)
        return;
    pthread_mutex_lock(&ln->mu);
    ln->stop = true;
    pthread_cond_broadcast(&ln->cv);
    pthread_mutex_unlock(&ln->mu);
    atomic_store(&ln->stopping, true);
    pthread_join(ln->th, NULL);
}

/* Stops the helper, waits for it and frees it. */
static void lane_end(lane_t *ln, md_proj_t *p)
{
    lane_stop(ln);
    lane_free_list(ln->head);
    lane_free_list(ln->spare);
    md__pj_bulk_release(&ln->hp);
    md_buf_release(&ln->hp.rec);
    pthread_mutex_destroy(&ln->mu);
    pthread_cond_destroy(&ln->cv);
    p->sorts[0] += ln->sorted; /* (the helper has stopped) */
    free(ln->ring);
    free(ln);
    p->lanes = ~0u;
    p->aside_min = 0;
}

/* Starts a helper for the walk when it pays and is possible; NULL otherwise
 * (the writer then applies every projection). */
static lane_t *lane_start(walk_t *w, md_error_t *err)
{
    md_proj_t *p = w->p;
    const char *env = getenv("MARKETD_REPLAY_THREADS");
    bool test = env && strcmp(env, "2") == 0; /* (tests) */
    uint64_t head = 0;
    if (!w->parallel || w->from != 1 || (env && strcmp(env, "1") == 0))
        return NULL;
    if (md_txn_head(w->src, &head, NULL, err) != MD_OK) {
        md_error_clear(err);
        return NULL;
    }
    uint64_t last = w->until && w->until < head ? w->until : head;
    if (last < w->from || (last - w->from + 1 < LANE_MIN_EVENTS && !test))
        return NULL;
    for (int i = 0; i < PJ_DB_COUNT_; i++)
        if (i != PJ_DB_META && !p->complete[i])
            return NULL; /* the helper would have to read what it does not see */
    lane_t *ln = md_calloc(1, sizeof *ln);
    ln->store = md_txn_store(w->src);
    ln->from = w->from;
    ln->count = last - w->from + 1;
    ln->hp.store = p->store;
    memcpy(ln->hp.dbi, p->dbi, sizeof ln->hp.dbi);
    md_buf_init(&ln->hp.rec);
    md_buf_init(&ln->hp.spill);
    md_buf_init(&ln->hp.log);
    ln->hp.lanes = ~0u & ~LANE_WRITER;
    ln->hp.emit = lane_emit;
    ln->hp.spare = lane_spare;
    ln->hp.emit_ctx = ln;
    ln->alternate = test;
    uint64_t slots = ln->alternate ? LANE_TEST_RING : LANE_RING;
    while (slots / 2 >= ln->count && slots > 1)
        slots /= 2;
    ln->ring_mask = slots - 1;
    ln->ring = md_malloc(slots * sizeof *ln->ring);
    md__pj_bulk_follow(&ln->hp, p);
    atomic_init(&ln->stopping, false);
    atomic_init(&ln->consumed, 0);
    pthread_mutex_init(&ln->mu, NULL);
    pthread_cond_init(&ln->cv, NULL);
    if (pthread_create(&ln->th, NULL, lane_main, ln) != 0) {
        free(ln->ring);
        md__pj_bulk_release(&ln->hp);
        md_buf_release(&ln->hp.rec);
        pthread_mutex_destroy(&ln->mu);
        pthread_cond_destroy(&ln->cv);
        free(ln);
        return NULL;
    }
    p->lanes = LANE_WRITER;
    p->aside_min = test ? 1 : LANE_ASIDE_MIN; /* tests: always */
    return ln;
}

static md_err_t walk_one(const md_event_t *ev, const void *body, size_t len, void *ctx,
                         md_error_t *err)
{
    walk_t *w = ctx;
    md_event_t copy;
    (void)body, (void)len;
    if (w->until && ev->seq > w->until)
        return MD_ESTOP;
    md_err_t rc = w->copy ? copy_event(w, ev, &copy, err) : MD_OK;
    if (rc == MD_OK)
        rc = md__pj_apply_one(w->p, w->dst, w->copy ? &copy : ev, err);
    if (rc == MD_OK)
        rc = md__pj_bulk_step(w->p, md_txn_mdb(w->dst), ev->seq, err);
    if (rc == MD_OK && w->lane && (w->n & LANE_DRAIN_EVERY) == 0)
        rc = lane_drain(w->lane, w->p, md_txn_mdb(w->dst), false, err);
    if (rc == MD_OK && (++w->n & PROGRESS_EVERY) == 0 && w->progress)
        w->progress(w->n, w->total, w->pctx);
    return rc;
}

static md_err_t drop_all(md_proj_t *p, md_txn_t *t, md_error_t *err)
{
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        int rc = mdb_drop(md_txn_mdb(t), p->dbi[i], 0);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, md__pj_db_name((pj_db_t)i));
    }
    return MD_OK;
}

/* The write function of rebuild, catch-up, verify and replay. */
static md_err_t walk_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    walk_t *w = ctx;
    md_err_t rc = MD_OK;
    w->dst = t;
    w->n = 0;
    if (w->need_pages && room_pages(md_txn_mdb(t)) < w->need_pages)
        return md_error_set(err, MD_EMAPFULL, "map too small for the projections: grow first");
    if (w->src == NULL)
        w->src = t;
    if (w->from == 1 && !w->copy)
        rc = drop_all(w->p, t, err);
    if (rc == MD_OK)
        rc = md__pj_bulk_begin(w->p, md_txn_mdb(t), err);
    w->lane = rc == MD_OK ? lane_start(w, err) : NULL;
    if (rc == MD_OK)
        rc = w->lane ? lane_walk(w, err) : md_txn_scan(w->src, w->from, 0, walk_one, w, err);
    md_err_t end = md__pj_bulk_end(w->p, md_txn_mdb(t), rc == MD_OK, err);
    if (rc == MD_OK)
        rc = end;
    if (w->lane) {
        if (rc == MD_OK)
            rc = lane_drain(w->lane, w->p, md_txn_mdb(t), true, err);
        lane_stop(w->lane);
        w->serial_retry = rc != MD_OK && w->lane->gave_up;
        lane_end(w->lane, w->p);
        w->lane = NULL;
    }
    if (rc == MD_OK)
        rc = md__pj_meta_set(w->p, t, w->from - 1 + w->n, err);
    if (rc == MD_OK && w->progress)
        w->progress(w->n, w->total, w->pctx);
    if (w->src == t)
        w->src = NULL; /* a retried transaction must read its own snapshot */
    return rc;
}

/* md_store_write of a walk; again in one thread when its helper gave up. */
static md_err_t walk_write(md_store_t *s, walk_t *w, md_error_t *err)
{
    md_err_t rc = md_store_write(s, walk_fn, w, err);
    if (rc != MD_OK && w->serial_retry) {
        w->serial_retry = w->parallel = false;
        md_error_clear(err);
        rc = md_store_write(s, walk_fn, w, err);
    }
    return rc;
}

md_err_t md_proj_rebuild(md_proj_t *p, md_progress_fn progress, void *pctx, uint64_t *events,
                         md_error_t *err)
{
    md_txn_t *t = NULL, *lt = NULL;
    walk_t w = {.p = p, .from = 1, .parallel = true, .progress = progress, .pctx = pctx};
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc == MD_OK)
        w.need_pages = with_slack(proj_pages(p, md_txn_mdb(t)));
    if (rc == MD_OK && p->evlog == p->store)
        rc = md_txn_head(t, &w.total, NULL, err);
    md_txn_end(t); /* a writer must not hold a read transaction (map growth) */
    if (rc == MD_OK && p->evlog != p->store && (rc = md_store_read(p->evlog, &lt, err)) == MD_OK) {
        w.src = lt; /* the projections' own environment: events from the log */
        rc = md_txn_head(lt, &w.total, NULL, err);
    }
    if (rc == MD_OK)
        rc = walk_write(p->store, &w, err);
    md_txn_end(lt);
    if (rc == MD_OK && events)
        *events = w.n;
    return rc;
}

static md_err_t catch_up_from(md_proj_t *p, md_txn_t *lt, md_err_t rc, uint64_t head, uint64_t seq,
                              uint64_t fmt, md_error_t *err);

md_err_t md__pj_catch_up(md_proj_t *p, md_error_t *err)
{
    md_txn_t *t = NULL, *lt = NULL;
    uint64_t head = 0, seq = 0, fmt = 0;
    MDB_val k = {6, (void *)"format"}, v;
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc != MD_OK)
        return rc;
    rc = p->evlog == p->store ? md_txn_head(t, &head, NULL, err) : MD_OK;
    if (rc == MD_OK)
        rc = md_proj_seq(p, t, &seq, err);
    int mrc = mdb_get(md_txn_mdb(t), p->dbi[PJ_DB_META], &k, &v);
    if (mrc == MDB_SUCCESS && v.mv_size == 8)
        fmt = md__pj_get_be64(v.mv_data);
    md_txn_end(t);
    /* Their own environment: the events come from a snapshot of the log,
     * held through the catch-up (the walk's source). */
    if (rc == MD_OK && p->evlog != p->store && (rc = md_store_read(p->evlog, &lt, err)) == MD_OK)
        rc = md_txn_head(lt, &head, NULL, err);
    rc = catch_up_from(p, lt, rc, head, seq, fmt, err);
    md_txn_end(lt);
    return rc;
}

/* The catch-up proper: what the projections (at @p seq, layout @p fmt) miss
 * of the log (at @p head; its events in @p lt, or NULL: in the same store). */
static md_err_t catch_up_from(md_proj_t *p, md_txn_t *lt, md_err_t rc, uint64_t head, uint64_t seq,
                              uint64_t fmt, md_error_t *err)
{
    if (rc == MD_OK && fmt > PJ_FORMAT) /* never rebuild a newer layout in an older one */
        return md_error_set(err, MD_EVERSION,
                            "projections were written in layout format %llu by a newer marketd; "
                            "this binary knows format %d and will not downgrade them",
                            (unsigned long long)fmt, PJ_FORMAT);
    if (rc != MD_OK || (seq == head && (fmt == PJ_FORMAT || head == 0)))
        return rc; /* up to date (another layout format is rebuilt below) */
    /* Read-only: report lagging projections but let readers use what is there. */
    walk_t w = {
        .p = p, .src = lt, .from = fmt == PJ_FORMAT && seq < head ? seq + 1 : 1, .total = head};
    md_error_t e = {0};
    rc = md_store_write(p->store, walk_fn, &w, &e);
    if (rc == MD_EINVAL) /* read-only store */
        return MD_OK;
    if (rc == MD_OK) {
        p->caught_up_from = w.from - 1;
        p->caught_up_to = head;
    }
    return rc == MD_OK ? MD_OK : md_error_set(err, rc, "projection catch-up: %s", e.msg);
}

/* ---- digests ---------------------------------------------------------------------- */

static void be32(unsigned char *b, size_t v)
{
    b[0] = (unsigned char)(v >> 24), b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8), b[3] = (unsigned char)v;
}

static md_err_t digest_db(MDB_txn *txn, MDB_dbi dbi, EVP_MD_CTX *h, uint64_t *entries,
                          md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char len[4];
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "digest cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        be32(len, k.mv_size);
        EVP_DigestUpdate(h, len, 4);
        EVP_DigestUpdate(h, k.mv_data, k.mv_size);
        be32(len, v.mv_size);
        EVP_DigestUpdate(h, len, 4);
        EVP_DigestUpdate(h, v.mv_data, v.mv_size);
        (*entries)++;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "digest scan");
}

static md_err_t digest_in(md_proj_t *p, md_txn_t *t, md_proj_digest_t *out, md_error_t *err);

md_err_t md_proj_digest(md_proj_t *p, md_txn_t *t, md_proj_digest_t *out, md_error_t *err)
{
    md_txn_t *own = NULL, *events = NULL;
    md_err_t rc = md__pj_snapshot(p, &t, &own, &events, err);
    if (rc == MD_OK)
        rc = digest_in(p, t, out, err);
    md_txn_end(own);
    return rc;
}

/* md_proj_digest in the projections' snapshot @p t. */
static md_err_t digest_in(md_proj_t *p, md_txn_t *t, md_proj_digest_t *out, md_error_t *err)
{
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    md_err_t rc = MD_OK;
    if (h == NULL) {
        fprintf(stderr, "marketd: out of memory (EVP_MD_CTX_new)\n");
        abort();
    }
    memset(out, 0, sizeof *out);
    for (int i = 0; i < MD_PROJ_COUNT_ && rc == MD_OK; i++) {
        pj_db_t dbs[2];
        size_t n = md__pj_proj_dbs((md_proj_id_t)i, dbs);
        unsigned int len = 0;
        EVP_DigestInit_ex(h, EVP_sha256(), NULL);
        for (size_t j = 0; j < n && rc == MD_OK; j++)
            rc = digest_db(md_txn_mdb(t), p->dbi[dbs[j]], h, &out->entries[i], err);
        EVP_DigestFinal_ex(h, out->sha[i], &len);
    }
    EVP_MD_CTX_free(h);
    return rc;
}

/* ---- verify ------------------------------------------------------------------------ */

/* Printable form of a key: bytes 0x20..0x7e as they are ('\\' doubled), others \xHH. */
static void printable(const MDB_val *k, char *out, size_t cap)
{
    const unsigned char *b = k->mv_data;
    size_t o = 0;
    for (size_t i = 0; i < k->mv_size && o + 5 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '\\')
            out[o++] = (char)b[i];
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b[i]);
    }
    out[o] = '\0';
}

static int key_cmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

/* Finds the first key whose presence or value differs between two databases. */
static bool first_diff(MDB_txn *ta, MDB_dbi da, MDB_txn *tb, MDB_dbi db, char *out, size_t cap)
{
    MDB_cursor *ca = NULL, *cb = NULL;
    MDB_val ka, va, kb, vb;
    bool found = false;
    if (mdb_cursor_open(ta, da, &ca) != MDB_SUCCESS ||
        mdb_cursor_open(tb, db, &cb) != MDB_SUCCESS) {
        mdb_cursor_close(ca);
        return false;
    }
    int ra = mdb_cursor_get(ca, &ka, &va, MDB_FIRST), rb = mdb_cursor_get(cb, &kb, &vb, MDB_FIRST);
    while (!found && (ra == MDB_SUCCESS || rb == MDB_SUCCESS)) {
        int c = ra != MDB_SUCCESS ? 1 : rb != MDB_SUCCESS ? -1 : key_cmp(&ka, &kb);
        if (c != 0 || va.mv_size != vb.mv_size || memcmp(va.mv_data, vb.mv_data, va.mv_size)) {
            printable(c <= 0 ? &ka : &kb, out, cap);
            found = true;
        }
        ra = mdb_cursor_get(ca, &ka, &va, MDB_NEXT);
        rb = mdb_cursor_get(cb, &kb, &vb, MDB_NEXT);
    }
    mdb_cursor_close(ca);
    mdb_cursor_close(cb);
    return found;
}

/* Names the first projection, database and key that differ. */
static md_err_t report_diff(md_proj_t *live, md_txn_t *lt, md_proj_t *re, md_txn_t *rt,
                            md_proj_report_t *rep, md_error_t *err)
{
    for (int i = 0; i < MD_PROJ_COUNT_; i++) {
        pj_db_t dbs[2];
        size_t n = md__pj_proj_dbs((md_proj_id_t)i, dbs);
        if (memcmp(rep->live.sha[i], rep->rebuilt.sha[i], MD_HASH_LEN) == 0)
            continue;
        rep->bad = i;
        for (size_t j = 0; j < n; j++) {
            if (first_diff(md_txn_mdb(lt), live->dbi[dbs[j]], md_txn_mdb(rt), re->dbi[dbs[j]],
                           rep->key, sizeof rep->key)) {
                snprintf(rep->db, sizeof rep->db, "%s", md__pj_db_name(dbs[j]));
                break;
            }
        }
        return md_error_set(err, MD_ECORRUPT,
                            "projection '%s' differs from a rebuild: database '%s', first "
                            "differing key '%.120s'",
                            md_proj_name((md_proj_id_t)i), rep->db, rep->key);
    }
    return MD_OK;
}

static void remove_env(const char *dir)
{
    char path[600];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
}

/* The digest of the rebuilt projections, on a thread of its own. */
typedef struct digest_job {
    md_proj_t *p;
    md_txn_t *t;
    md_proj_digest_t *out;
    md_err_t rc;
    md_error_t err;
} digest_job_t;

static void *digest_main(void *arg)
{
    digest_job_t *j = arg;
    j->rc = md_proj_digest(j->p, j->t, j->out, &j->err);
    return NULL;
}

/* Digests the live (@p p, @p t) and the rebuilt (@p tp, @p rt) projections,
 * the two at once (each transaction is used by one thread: LMDB allows a
 * read-only transaction to move between threads under MDB_NOTLS, which the
 * store sets). */
static md_err_t digest_both(md_proj_t *p, md_txn_t *t, md_proj_t *tp, md_txn_t *rt,
                            md_proj_report_t *rep, md_error_t *err)
{
    digest_job_t j = {.p = tp, .t = rt, .out = &rep->rebuilt};
    pthread_t th;
    const char *env = getenv("MARKETD_REPLAY_THREADS");
    bool two = !(env && strcmp(env, "1") == 0) && pthread_create(&th, NULL, digest_main, &j) == 0;
    if (!two)
        digest_main(&j);
    md_err_t rc = md_proj_digest(p, t, &rep->live, err);
    if (two)
        pthread_join(th, NULL);
    if (rc == MD_OK && j.rc != MD_OK)
        rc = md_error_set(err, j.rc, "%s", j.err.msg);
    return rc;
}

/* The slow path: rebuilds into the temporary store and compares the
 * databases there, naming the first difference. */
static md_err_t verify_written(md_proj_t *p, md_txn_t *t, md_store_t *tmp, md_proj_t *tp, walk_t *w,
                               md_proj_report_t *rep, md_error_t *err)
{
    md_txn_t *rt = NULL;
    md_err_t rc = walk_write(tmp, w, err);
    if (rc == MD_OK)
        rc = md_store_read(tmp, &rt, err);
    if (rc == MD_OK)
        rc = digest_both(p, t, tp, rt, rep, err);
    if (rc == MD_OK)
        rc = report_diff(p, t, tp, rt, rep, err);
    md_txn_end(rt);
    return rc;
}

/* The live digests of the fast path, on a thread of its own over a second
 * read transaction when it sees the same snapshot as @p t (a transaction is
 * used by one thread at a time); else after the rebuild, over @p t. */
typedef struct live_digest {
    digest_job_t j;
    pthread_t th;
    bool threaded;
} live_digest_t;

static void live_digest_start(live_digest_t *ld, md_proj_t *p, md_txn_t *t, md_proj_report_t *rep)
{
    const char *env = getenv("MARKETD_REPLAY_THREADS");
    md_txn_t *t2 = NULL;
    md_error_t e = {0};
    *ld = (live_digest_t){.j = {.p = p, .t = t, .out = &rep->live}};
    if ((env && strcmp(env, "1") == 0) || md_store_read(p->store, &t2, &e) != MD_OK)
        return;
    if (mdb_txn_id(md_txn_mdb(t2)) == mdb_txn_id(md_txn_mdb(t))) {
        ld->j.t = t2;
        ld->threaded = pthread_create(&ld->th, NULL, digest_main, &ld->j) == 0;
    }
    if (!ld->threaded) {
        md_txn_end(t2);
        ld->j.t = t;
    }
}

static md_err_t live_digest_end(live_digest_t *ld, md_error_t *err)
{
    if (ld->threaded) {
        pthread_join(ld->th, NULL);
        md_txn_end(ld->j.t);
    } else {
        digest_main(&ld->j);
    }
    return ld->j.rc == MD_OK ? MD_OK : md_error_set(err, ld->j.rc, "%s", ld->j.err.msg);
}

/* Whether the fast path can hold the rebuilt records until the end: a
 * handle writes early once its records outgrow its bound (bulk_max), and a
 * database written early is read back from LMDB, where the comparison left
 * nothing (unsure: the work so far is lost). The records it holds take
 * about the pages of the live databases but for the audit's (spilled in key
 * order as it goes): with more than 3/4 of the bound, verify goes the slow
 * way at once (logs of ~2.5M commands and more, at the default bound). */
static bool compare_fits(md_proj_t *p, md_txn_t *t, size_t bulk_max)
{
    size_t bytes = 0;
    for (int i = 0; i < PJ_DB_COUNT_; i++) {
        MDB_stat st;
        if (i == PJ_DB_AUDIT || i == PJ_DB_AUDIT_ACTOR ||
            mdb_stat(md_txn_mdb(t), p->dbi[i], &st) != MDB_SUCCESS)
            continue;
        bytes += (st.ms_branch_pages + st.ms_leaf_pages + st.ms_overflow_pages) * st.ms_psize;
    }
    return bytes <= (bulk_max ? bulk_max : PJ_BULK_MAX) / 4 * 3;
}

/* The fast path: the rebuild's sorted writes are compared with the live
 * projections as they are made (bulk.h, "comparison"), nothing is written,
 * and the live digests are taken beside. *equal when the comparison proved
 * them equal; false when it could not or found a difference (the slow path
 * then names it). */
static md_err_t verify_compared(md_proj_t *p, md_txn_t *t, md_store_t *tmp, md_proj_t *tp,
                                walk_t *w, md_proj_report_t *rep, bool *equal, md_error_t *err)
{
    live_digest_t ld;
    *equal = false;
    if (w->from != 1 || w->copy || !compare_fits(p, t, tp->bulk_max))
        return MD_OK; /* (an until bound, the live projections' watermark, is fine) */
    live_digest_start(&ld, p, t, rep);
    tp->cmp = md__pj_cmp_new(md_txn_mdb(t), p->dbi);
    md_err_t rc = walk_write(tmp, w, err);
    if (md__pj_cmp_is_unsure(tp->cmp)) {
        md_error_clear(err);
        rc = MD_OK;
    } else if (rc == MD_OK) {
        rc = md__pj_cmp_end(tp->cmp, equal, err);
        *equal = *equal && w->n == w->total;
    }
    md__pj_cmp_free(tp->cmp);
    tp->cmp = NULL;
    md_err_t drc = live_digest_end(&ld, rc == MD_OK ? err : &(md_error_t){0});
    if (rc == MD_OK)
        rc = drc;
    if (rc == MD_OK && *equal) {
        memcpy(&rep->rebuilt, &rep->live, sizeof rep->rebuilt);
    }
    return rc;
}

/* Rebuilds from @p t and compares: compared as it is made, or (unsure or
 * different) into a fresh temporary store and compared there. */
static md_err_t verify_in(md_proj_t *p, md_txn_t *t, const char *dir, walk_t *w,
                          md_proj_report_t *rep, md_error_t *err)
{
    /* a map with room for the projections from the start (see room_pages) */
    MDB_stat st;
    size_t psize =
        mdb_env_stat(mdb_txn_env(md_txn_mdb(t)), &st) == MDB_SUCCESS ? st.ms_psize : 4096;
    md_store_opts_t so = {.nosync = true,
                          .map_size = (with_slack(proj_pages(p, md_txn_mdb(t))) + 16384) * psize};
    md_store_t *tmp = NULL;
    md_proj_t *tp = NULL;
    bool equal = false;
    md_err_t rc = md_store_open(dir, &so, &tmp, err);
    if (rc == MD_OK)
        rc = md_proj_open(tmp, &tp, err);
    if (rc == MD_OK) {
        tp->bulk_max = p->bulk_max; /* the live handle's bounds (tests set them tight) */
        tp->spill_max = p->spill_max;
        w->p = tp;
        rc = verify_compared(p, t, tmp, tp, w, rep, &equal, err);
    }
    if (rc == MD_OK && !equal) {
        memset(&rep->live, 0, sizeof rep->live);
        rc = verify_written(p, t, tmp, tp, w, rep, err);
    }
    rep->events = w->n;
    if (tp) { /* counted on the live handle (the tests look) */
        p->asides += tp->asides;
        p->sorts[0] += tp->sorts[0];
        p->sorts[1] += tp->sorts[1];
    }
    md_proj_free(tp);
    md_store_free(tmp);
    return rc;
}

static md_err_t verify_at(md_proj_t *p, md_txn_t *pt, md_txn_t *t, md_progress_fn progress,
                          void *pctx, md_proj_report_t *rep, md_error_t *err);

md_err_t md_proj_verify(md_proj_t *p, md_txn_t *t, md_progress_fn progress, void *pctx,
                        md_proj_report_t *rep, md_error_t *err)
{
    md_txn_t *pt = t, *own = NULL, *events = NULL;
    memset(rep, 0, sizeof *rep);
    rep->bad = -1;
    md_err_t rc = md__pj_snapshot(p, &pt, &own, &events, err);
    if (rc == MD_OK && events == NULL)
        rc = md_error_set(err, MD_EINVAL, "md_proj_verify: needs a transaction of the event log");
    if (rc == MD_OK)
        rc = verify_at(p, pt, events, progress, pctx, rep, err);
    md_txn_end(own);
    return rc;
}

/* Verify with the live projections in @p pt and the events in @p t: a rebuild
 * up to the projections' watermark. With one environment the watermark must
 * be the head; with their own it may be behind it (the projector's lag), never
 * beyond. */
static md_err_t verify_at(md_proj_t *p, md_txn_t *pt, md_txn_t *t, md_progress_fn progress,
                          void *pctx, md_proj_report_t *rep, md_error_t *err)
{
    uint64_t head = 0, seq = 0;
    char dir[512];
    const char *base = getenv("TMPDIR");
    walk_t w = {.src = t, .from = 1, .parallel = true, .progress = progress, .pctx = pctx};
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK)
        rc = md_proj_seq(p, pt, &seq, err);
    if (rc != MD_OK)
        return rc;
    rep->seq = seq;
    if (p->evlog == p->store ? seq != head : seq > head) {
        snprintf(rep->db, sizeof rep->db, "p_meta");
        snprintf(rep->key, sizeof rep->key, "seq");
        return md_error_set(err, MD_ECORRUPT,
                            "projections are at seq %llu but the event log at %llu",
                            (unsigned long long)seq, (unsigned long long)head);
    }
    w.total = seq;
    w.until = seq < head ? seq : 0; /* lagging: the rebuild stops at the watermark */
    if (seq == 0)
        w.from = head + 1; /* nothing applied yet: compare with empty projections */
    snprintf(dir, sizeof dir, "%s/marketd-verify-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(dir) == NULL)
        return md_error_set(err, MD_EIO, "mkdtemp '%s': %s", dir, strerror(errno));
    rc = verify_in(p, pt, dir, &w, rep, err);
    remove_env(dir);
    return rc;
}

/* ---- replay ------------------------------------------------------------------------- */
/* Marks a replay's output: it holds the events and projections up to a seq but
 * neither rules state nor outcomes, which `verify` accepts only with this mark. */
static md_err_t mark_replay(md_txn_t *t, void *ctx, md_error_t *err)
{
    return md_txn_meta_put(t, MD_META_REPLAY_UNTIL, ctx, sizeof(uint64_t), err);
}


md_err_t md_proj_replay(md_txn_t *src, uint64_t until, const char *out_dir, md_progress_fn progress,
                        void *pctx, uint64_t *events, md_error_t *err)
{
    md_store_t *out = NULL;
    md_proj_t *p = NULL;
    md_txn_t *t = NULL;
    uint64_t head = 0, out_head = 0;
    walk_t w = {.src = src,
                .copy = true,
                .from = 1,
                .until = until,
                .total = until,
                .parallel = true,
                .progress = progress,
                .pctx = pctx};
    md_err_t rc = md_txn_head(src, &head, NULL, err);
    if (rc != MD_OK)
        return rc;
    if (until == 0 || until > head)
        return md_error_set(err, MD_EINVAL, "--until %llu is not in 1..%llu",
                            (unsigned long long)until, (unsigned long long)head);
    /* a map with room for the copy from the start (see room_pages): the
     * source's pages in use, in proportion to the events copied */
    MDB_envinfo info;
    MDB_stat st;
    md_store_opts_t so = {0};
    if (mdb_env_info(mdb_txn_env(md_txn_mdb(src)), &info) == MDB_SUCCESS &&
        mdb_env_stat(mdb_txn_env(md_txn_mdb(src)), &st) == MDB_SUCCESS)
        so.map_size =
            (with_slack((size_t)((double)(info.me_last_pgno + 1) * until / head)) + 16384) *
            st.ms_psize;
    if ((rc = md_store_open(out_dir, &so, &out, err)) == MD_OK &&
        (rc = md_store_read(out, &t, err)) == MD_OK)
        rc = md_txn_head(t, &out_head, NULL, err);
    md_txn_end(t);
    if (rc == MD_OK && out_head != 0)
        rc = md_error_set(err, MD_EEXIST, "'%s' holds events already", out_dir);
    if (rc == MD_OK)
        rc = md_proj_open(out, &p, err);
    if (rc == MD_OK) {
        w.p = p;
        rc = walk_write(out, &w, err);
    }
    if (rc == MD_OK)
        rc = md_store_write(out, mark_replay, &until, err);
    if (rc == MD_OK && events)
        *events = w.n;
    md_proj_free(p);
    md_store_free(out);
    return rc;
}
