/*
 * env.c - the projections' own environment (<data_dir>/proj): opening it
 * beside the event log, migrating a store of the old layout, the projector's
 * step (md_proj_advance), its lazy sync (the marker of un-synced commits),
 * bounded waits for a watermark, and the snapshot a query reads when it is
 * handed a transaction of the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pj.h"

#define WAIT_POLL_MS 2 /* md_proj_wait: how often the watermark is read */

md_store_t *md_proj_store(md_proj_t *p)
{
    return p->store;
}

md_store_t *md_proj_log(md_proj_t *p)
{
    return p->evlog;
}

bool md_proj_split(const md_proj_t *p)
{
    return p->evlog != p->store;
}

uint64_t md_proj_caught_up(const md_proj_t *p, uint64_t *from_seq)
{
    if (from_seq)
        *from_seq = p->caught_up_from;
    return p->caught_up_to;
}

md_err_t md__pj_snapshot(md_proj_t *p, md_txn_t **t, md_txn_t **own, md_txn_t **events,
                         md_error_t *err)
{
    *own = NULL;
    *events = NULL;
    if (p == NULL || t == NULL || *t == NULL)
        return md_error_set(err, MD_EINVAL, "projection query: no handle or transaction");
    if (p->evlog == p->store) {
        *events = *t;
        return MD_OK;
    }
    if (md_txn_store(*t) == p->store)
        return MD_OK;
    *events = *t; /* a snapshot of the log */
    if (p->pinned) {
        *t = p->pinned;
        return MD_OK;
    }
    md_err_t rc = md_store_read(p->store, own, err);
    if (rc == MD_OK)
        *t = *own;
    return rc;
}

md_err_t md_proj_pin(md_proj_t *p, md_error_t *err)
{
    if (p->evlog == p->store)
        return MD_OK;
    md_txn_end(p->pinned);
    p->pinned = NULL;
    return md_store_read(p->store, &p->pinned, err);
}

/* ---- migration from the old layout -------------------------------------------------- */

/* The databases of layout format 6 and before, inside the log's environment. */
static const char *const old_dbs[] = {
    "p_orders",      "p_order_idx", "p_accounts", "p_account_idx", "p_audit",
    "p_audit_actor", "p_sales",     "p_records",  "p_rejections",  "p_meta",
};

static md_err_t drop_old_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof old_dbs / sizeof old_dbs[0]; i++) {
        MDB_dbi dbi;
        int rc = mdb_dbi_open(md_txn_mdb(t), old_dbs[i], 0, &dbi);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc == MDB_SUCCESS)
            rc = mdb_drop(md_txn_mdb(t), dbi, 1);
        if (rc != MDB_SUCCESS)
            return md_store_err(rc, err, old_dbs[i]);
    }
    return MD_OK;
}

/* Whether the log's environment still holds the old layout's p_meta. */
static bool has_old_layout(md_store_t *log)
{
    md_txn_t *t = NULL;
    MDB_dbi dbi;
    bool found = false;
    if (md_store_read(log, &t, NULL) == MD_OK)
        found = mdb_dbi_open(md_txn_mdb(t), "p_meta", 0, &dbi) == MDB_SUCCESS;
    md_txn_end(t);
    return found;
}

/* Once the projections were rebuilt in their own environment, the old ones
 * (if any) are dropped from the log's: nothing reads them any more. */
static md_err_t drop_old_layout(md_store_t *log, md_error_t *err)
{
    if (!has_old_layout(log))
        return MD_OK;
    md_err_t rc = md_store_write(log, drop_old_fn, NULL, err);
    if (rc == MD_OK)
        fprintf(stderr, "marketd: projections migrated to their own environment (proj/); "
                        "the old p_* databases of the event log were dropped\n");
    return rc;
}

/* ---- the marker of un-synced commits (md_proj.h, "Lazy sync") ------------------------ */

#define BOOT_ID_MAX 64
#define BOOT_ID_FILE "/proc/sys/kernel/random/boot_id"

/* Reads the first line of @p path into @p out (at most BOOT_ID_MAX - 1
 * bytes, without the newline). Returns false when it cannot be read. */
static bool read_line(const char *path, char out[BOOT_ID_MAX])
{
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    if (f == NULL)
        return false;
    bool ok = fgets(out, BOOT_ID_MAX, f) != NULL;
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
    return ok;
}

/* The kernel's boot id; MARKETD_TEST_BOOT_ID replaces it (tests only).
 * An unreadable one is "unknown" (never equal to a marker's: rebuilt). */
static void boot_id(char out[BOOT_ID_MAX])
{
    const char *test = getenv("MARKETD_TEST_BOOT_ID");
    if (test && *test)
        snprintf(out, BOOT_ID_MAX, "%s", test);
    else if (!read_line(BOOT_ID_FILE, out) || out[0] == '\0')
        snprintf(out, BOOT_ID_MAX, "unknown");
}

/* fsync of the directory holding @p path (a file created or renamed there). */
static bool sync_parent(const char *path)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    int fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

/* Writes the marker (this boot's id) and syncs it and its directory. */
static md_err_t write_marker(const char *path, md_error_t *err)
{
    char id[BOOT_ID_MAX], line[BOOT_ID_MAX + 1];
    boot_id(id);
    int n = snprintf(line, sizeof line, "%s\n", id);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    bool ok = fd >= 0 && write(fd, line, (size_t)n) == n;
    ok = ok && fsync(fd) == 0;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    if (!ok || !sync_parent(path)) {
        int e = errno;
        (void)unlink(path); /* a cut marker would read as another boot's (nothing un-synced yet) */
        return md_error_set(err, MD_EIO, "write '%s': %s", path, strerror(e));
    }
    return MD_OK;
}

/* The environment's data files, removed: it is rebuilt from the log. */
static md_err_t discard_env(const char *dir, md_error_t *err)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        if (unlink(path) != 0 && errno != ENOENT)
            return md_error_set(err, MD_EIO, "remove '%s': %s", path, strerror(errno));
    }
    return MD_OK;
}

/*
 * Looks at the marker before the environment is opened. No marker: nothing.
 * This boot's: *marked (a writable open keeps it until a flush). Another
 * boot's: refused read-only; else the environment is discarded and the marker
 * rewritten with this boot's id (the rebuild's own commits are un-synced too).
 */
static md_err_t check_marker(const char *dir, const char *marker, bool read_only, bool *marked,
                             md_error_t *err)
{
    char was[BOOT_ID_MAX], now[BOOT_ID_MAX];
    *marked = false;
    if (access(marker, F_OK) != 0)
        return MD_OK;
    /* Empty or cut: its write failed (a full disk) before any un-synced commit,
     * which waits for the marker to be whole: as if there were none. */
    if (!read_line(marker, was) || was[0] == '\0') {
        if (!read_only)
            (void)unlink(marker);
        return MD_OK;
    }
    boot_id(now);
    if (strcmp(was, now) == 0) {
        *marked = !read_only;
        return MD_OK;
    }
    if (read_only)
        return md_error_set(err, MD_ECORRUPT,
                            "projections in '%s' had commits not yet on disk when the machine "
                            "stopped (boot %s, now %s): they may be torn; start marketd or run "
                            "`marketctl rebuild` to rebuild them from the log",
                            dir, was[0] ? was : "?", now);
    fprintf(stderr,
            "marketd: projections in '%s' had commits not yet on disk when the machine "
            "stopped (boot %s, now %s): discarded, rebuilt from the event log\n",
            dir, was[0] ? was : "?", now);
    md_err_t rc = discard_env(dir, err);
    if (rc == MD_OK)
        rc = write_marker(marker, err);
    *marked = rc == MD_OK;
    return rc;
}

bool md_proj_unsynced(const md_proj_t *p)
{
    return p && p->marked;
}

md_err_t md_proj_lazy_sync(md_proj_t *p, md_error_t *err)
{
    unsigned flags = 0;
    if (p == NULL || p->evlog == p->store || p->lazy)
        return MD_OK;
    MDB_env *env = md_store_env(p->store);
    int mrc = mdb_env_get_flags(env, &flags);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "mdb_env_get_flags");
    if (flags & MDB_RDONLY)
        return md_error_set(err, MD_EINVAL, "md_proj_lazy_sync: read-only projections");
    if (flags & MDB_NOSYNC)
        return MD_OK; /* opened nosync: nothing is synced */
    if ((mrc = mdb_env_set_flags(env, MDB_NOSYNC, 1)) != MDB_SUCCESS)
        return md_store_err(mrc, err, "mdb_env_set_flags");
    p->lazy = true;
    return MD_OK;
}

md_err_t md_proj_sync(md_proj_t *p, md_error_t *err)
{
    if (p == NULL || !p->lazy)
        return MD_OK;
    return md_store_sync(p->store, err);
}

md_err_t md_proj_unmark(md_proj_t *p, md_error_t *err)
{
    if (p == NULL || !p->marked)
        return MD_OK;
    if (unlink(p->marker) != 0 && errno != ENOENT)
        return md_error_set(err, MD_EIO, "remove '%s': %s", p->marker, strerror(errno));
    p->marked = false; /* a lost removal (a crash now) costs a rebuild, never a torn read */
    return MD_OK;
}

md_err_t md_proj_flush(md_proj_t *p, md_error_t *err)
{
    if (p == NULL || !p->lazy || !p->marked)
        return MD_OK;
    md_err_t rc = md_proj_sync(p, err);
    return rc == MD_OK ? md_proj_unmark(p, err) : rc;
}

/* Before an un-synced commit: the marker, once per flush. */
static md_err_t mark_unsynced(md_proj_t *p, md_error_t *err)
{
    if (!p->lazy || p->marked)
        return MD_OK;
    md_err_t rc = write_marker(p->marker, err);
    p->marked = rc == MD_OK;
    return rc;
}

/* ---- opening ------------------------------------------------------------------------ */

md_err_t md_proj_open_dir(md_store_t *log, const char *data_dir, const md_store_opts_t *so,
                          md_proj_t **out, md_error_t *err)
{
    char dir[4096], file[4200], marker[4200];
    bool marked = false;
    md_store_opts_t o = {.nosync = so && so->nosync, .read_only = so && so->read_only};
    md_store_t *env = NULL;
    if (log == NULL || data_dir == NULL || out == NULL)
        return md_error_set(err, MD_EINVAL, "md_proj_open_dir: no store or directory");
    if ((size_t)snprintf(dir, sizeof dir, "%s/proj", data_dir) >= sizeof dir)
        return md_error_set(err, MD_EINVAL, "data directory '%.64s...' too long", data_dir);
    snprintf(file, sizeof file, "%s/data.mdb", dir);
    if (o.read_only && access(file, F_OK) != 0)
        return md_proj_open(log, out, err); /* one environment (or not migrated yet) */
    snprintf(marker, sizeof marker, "%s/unsynced", dir);
    md_err_t rc = check_marker(dir, marker, o.read_only, &marked, err);
    if (rc == MD_OK)
        rc = md_store_open(dir, &o, &env, err);
    if (rc == MD_OK)
        rc = md__pj_open(log, env, out, err);
    if (rc != MD_OK) {
        md_store_free(env);
        return rc;
    }
    (*out)->own_env = env;
    (*out)->marked = marked;
    snprintf((*out)->marker, sizeof(*out)->marker, "%s", marker);
    if (!o.read_only && (rc = drop_old_layout(log, err)) != MD_OK) {
        md_proj_free(*out);
        *out = NULL;
    }
    return rc;
}

/* ---- the projector's step ------------------------------------------------------------ */

typedef struct advance {
    md_proj_t *p;
    md_txn_t *src; /* a snapshot of the log */
    uint64_t head, max, seq;
} advance_t;

static md_err_t advance_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    advance_t *a = ctx;
    md_err_t rc = md_proj_batch_begin(t, a->p, err);
    uint64_t from = a->p->batch_meta + 1, to = a->head;
    if (a->max && to >= from && to - from + 1 > a->max)
        to = from + a->max - 1;
    for (uint64_t s = from; rc == MD_OK && s <= to; s++) {
        md_event_t ev;
        rc = md_txn_event(a->src, s, &ev, NULL, NULL, err);
        if (rc == MD_ENOTFOUND)
            rc = md_error_set(err, MD_ECORRUPT, "event %llu missing from the log",
                              (unsigned long long)s);
        if (rc == MD_OK)
            rc = md_proj_apply(a->p, t, &ev, err);
    }
    if (rc == MD_OK)
        rc = md_proj_batch_end(t, a->p, err);
    a->seq = rc == MD_OK && to >= from ? to : a->p->batch_meta;
    return rc;
}

/* ---- the projector's head start: events handed over before the log's commit ------------ */

typedef struct staged {
    md_proj_t *p;
    const md_event_t *evs;
    size_t n;
    md_proj_wait_fn wait;
    void *ctx;
    uint64_t outbox_next; /* the next outbox id of the log's commit that holds them */
} staged_t;

/* Whether the log holds event @p ev (its seq, with its hash) as the head of a
 * commit of this process (md_store_committed: no transaction of the log is
 * begun inside the projections' own): *held false while it does not yet;
 * MD_ENOTFOUND when it never will (the log went past that seq otherwise).
 * Held: *outbox_next is that commit's next outbox id. */
static md_err_t log_holds(md_proj_t *p, const md_event_t *ev, bool *held, uint64_t *outbox_next,
                          md_error_t *err)
{
    md_committed_t c = md_store_committed(p->evlog, ev->seq, ev->hash, outbox_next);
    *held = c == MD_COMMITTED_YES;
    if (c == MD_COMMITTED_NO)
        return md_error_set(err, MD_ENOTFOUND, "the log went past seq %llu without these events",
                            (unsigned long long)ev->seq);
    return MD_OK;
}

static md_err_t staged_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    staged_t *s = ctx;
    bool held = false;
    uint64_t seq = 0;
    md_err_t rc = md_proj_seq(s->p, t, &seq, err);
    if (rc == MD_OK && s->evs[0].seq != seq + 1) /* checked before the batch begins */
        return md_error_set(err, MD_ENOTFOUND,
                            "staged events begin at seq %llu, the projections at %llu",
                            (unsigned long long)s->evs[0].seq, (unsigned long long)seq);
    if (rc == MD_OK)
        rc = md_proj_batch_begin(t, s->p, err);
    for (size_t i = 0; rc == MD_OK && i < s->n; i++)
        rc = md_proj_apply(s->p, t, &s->evs[i], err);
    if (rc == MD_OK)
        rc = md_proj_batch_end(t, s->p, err);
    /* Committed only once the log holds the same events (their last hash). */
    while (rc == MD_OK &&
           (rc = log_holds(s->p, &s->evs[s->n - 1], &held, &s->outbox_next, err)) == MD_OK && !held)
        rc = s->wait(s->ctx, false, err);
    /* Only now is it a commit: the caller counts it, then the marker of
     * un-synced commits goes before it (a batch never committed writes none). */
    if (rc == MD_OK)
        rc = s->wait(s->ctx, true, err);
    return rc == MD_OK ? mark_unsynced(s->p, err) : rc;
}

md_err_t md_proj_apply_staged(md_proj_t *p, const md_event_t *evs, size_t n, md_proj_wait_fn wait,
                              void *ctx, uint64_t *outbox_next, md_error_t *err)
{
    staged_t s = {.p = p, .evs = evs, .n = n, .wait = wait, .ctx = ctx};
    if (p == NULL || p->evlog == p->store || evs == NULL || n == 0 || wait == NULL)
        return md_error_set(err, MD_EINVAL,
                            "md_proj_apply_staged: no events, wait or "
                            "environment of their own");
    for (size_t i = 1; i < n; i++)
        if (evs[i].seq != evs[i - 1].seq + 1)
            return md_error_set(err, MD_EINVAL, "md_proj_apply_staged: seq %llu after %llu",
                                (unsigned long long)evs[i].seq, (unsigned long long)evs[i - 1].seq);
    md_err_t rc = md_store_write(p->store, staged_fn, &s, err);
    if (rc == MD_OK && outbox_next)
        *outbox_next = s.outbox_next;
    return rc;
}

/* The watermark, read in a snapshot of its own. */
static md_err_t watermark(md_proj_t *p, uint64_t *seq, md_error_t *err)
{
    md_txn_t *t = NULL;
    md_err_t rc = md_store_read(p->store, &t, err);
    if (rc == MD_OK)
        rc = md_proj_seq(p, t, seq, err);
    md_txn_end(t);
    return rc;
}

md_err_t md_proj_advance(md_proj_t *p, uint64_t max_events, uint64_t *seq, uint64_t *head,
                         uint64_t *outbox_next, md_error_t *err)
{
    advance_t a = {.p = p, .max = max_events};
    uint64_t onext = 0;
    if (p == NULL || p->evlog == p->store)
        return md_error_set(err, MD_EINVAL,
                            "md_proj_advance: projections share the log's "
                            "environment");
    md_err_t rc = watermark(p, &a.seq, err);
    if (rc == MD_OK)
        rc = md_store_read(p->evlog, &a.src, err);
    if (rc == MD_OK)
        rc = md_txn_head(a.src, &a.head, NULL, err);
    if (rc == MD_OK)
        rc = md_txn_outbox_next(a.src, &onext, err);
    if (rc == MD_OK && a.head > a.seq)
        rc = mark_unsynced(p, err);
    if (rc == MD_OK && a.head > a.seq)
        rc = md_store_write(p->store, advance_fn, &a, err);
    md_txn_end(a.src);
    if (rc != MD_OK)
        return rc;
    if (seq)
        *seq = a.seq;
    if (head)
        *head = a.head;
    if (outbox_next)
        *outbox_next = onext;
    return MD_OK;
}

/* ---- waiting for a watermark ------------------------------------------------------------ */

md_err_t md_proj_wait(md_proj_t *p, uint64_t seq, long timeout_ms, uint64_t *reached,
                      md_error_t *err)
{
    int64_t deadline = md_mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        uint64_t w = 0;
        md_err_t rc = watermark(p, &w, err);
        if (reached)
            *reached = w;
        if (rc != MD_OK || w >= seq)
            return rc;
        if (md_mono_ms() >= deadline)
            return md_error_set(err, MD_ETIMEDOUT,
                                "projections are at seq %llu, not yet at %llu (waited %ld ms)",
                                (unsigned long long)w, (unsigned long long)seq, timeout_ms);
        md_sleep_ms(WAIT_POLL_MS);
    }
}
