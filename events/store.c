/*
 * store.c - the LMDB event store's environment (see md_store.h for the
 * layout, store_int.h for the files of the store): open and close, the map
 * (growth on MDB_MAP_FULL, adoption of another process's growth, failure),
 * transactions, and the meta values.
 *
 * One writer: md_store_write() reuses a single md_txn_t (and its scratch
 * buffer) for every write transaction, so an append allocates nothing once
 * the buffer has grown to the largest body. Readers get their own md_txn_t.
 *
 * Invariants:
 *   - every transaction of this process holds grow_lock shared from
 *     begin_txn() to end_txn(); the map size changes only under it held
 *     exclusively (resize_locked), as LMDB requires;
 *   - once the store is broken (LMDB lost its map in a failed resize) no
 *     transaction begins;
 *   - the head and the next outbox id a write transaction changed are written
 *     to meta (flush_meta) before it commits, and before meta is read in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "store_int.h"

static const char *const db_names[MD_DB_COUNT_] = {
    "events", "stream_chunks", "outcomes", "state",         "offsets",
    "outbox", "meta",          "intake",   "outbox_parked",
};

/* ---- small helpers ------------------------------------------------------- */

md_err_t md_store_err(int rc, md_error_t *err, const char *what)
{
    if (rc == MDB_SUCCESS)
        return MD_OK;
    if (rc == MDB_MAP_FULL)
        return md_error_set(err, MD_EMAPFULL, "%s: %s", what, mdb_strerror(rc));
    if (rc == MDB_NOTFOUND)
        return md_error_set(err, MD_ENOTFOUND, "%s: %s", what, mdb_strerror(rc));
    return md_error_set(err, MD_ESTORE, "%s: %s", what, mdb_strerror(rc));
}

static md_err_t make_dir(const char *dir, md_error_t *err)
{
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        return MD_OK;
    return md_error_set(err, MD_EIO, "mkdir '%s': %s", dir, strerror(errno));
}

/* ---- the map: growth, adoption, failure ------------------------------------------ */

static md_err_t broken_err(md_store_t *s, md_error_t *err)
{
    return md_error_set(err, MD_ESTORE, "%s", s->broken_msg);
}

/* Can @p size more bytes of address space be had? Asked before LMDB drops the
 * old map for a bigger one, since LMDB cannot go back when the new one fails. */
static bool address_space_for(size_t size)
{
    void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return false;
    munmap(p, size);
    return true;
}

/*
 * Sets the map size; the caller holds grow_lock exclusively (no transaction
 * of this process is open). A size that cannot be mapped is refused before
 * LMDB is asked; if LMDB fails anyway its old map is gone, and the store is
 * marked broken: every later transaction fails with the reason.
 */
static md_err_t resize_locked(md_store_t *s, size_t size, const char *what, md_error_t *err)
{
    if (atomic_load(&s->broken))
        return broken_err(s, err);
    if (!address_space_for(size))
        return md_error_set(err, MD_ESTORE, "%s to %zu bytes: %s (map unchanged)", what, size,
                            strerror(ENOMEM));
    int rc = mdb_env_set_mapsize(s->env, size);
    if (rc == MDB_SUCCESS || rc == EINVAL) /* EINVAL: refused before unmapping */
        return md_store_err(rc, err, what);
    snprintf(s->broken_msg, sizeof s->broken_msg,
             "store '%s' unusable: %s to %zu bytes failed (%s) after LMDB released the old map; "
             "restart the process",
             s->path, what, size, mdb_strerror(rc));
    atomic_store(&s->broken, true);
    return broken_err(s, err);
}

/* Doubles the map after MDB_MAP_FULL; waits for every open transaction. */
static md_err_t grow_map(md_store_t *s, md_error_t *err)
{
    MDB_envinfo info;
    pthread_rwlock_wrlock(&s->grow_lock);
    int rc = mdb_env_info(s->env, &info);
    md_err_t mrc = rc == MDB_SUCCESS ? resize_locked(s, info.me_mapsize * 2, "grow map", err)
                                     : md_store_err(rc, err, "env info");
    pthread_rwlock_unlock(&s->grow_lock);
    return mrc;
}

/*
 * Adopts the map size another process grew the file to (MDB_MAP_RESIZED):
 * waits until no transaction of this process is open (LMDB's rule: the old
 * map is unmapped), reads the new size from the file's meta page.
 */
static md_err_t adopt_map(md_store_t *s, md_error_t *err)
{
    file_meta_t m = {0};
    pthread_rwlock_wrlock(&s->grow_lock);
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    bool known = fd >= 0 && md__store_newest_meta(fd, &m);
    if (fd >= 0)
        close(fd);
    MDB_envinfo info;
    size_t size = known ? (size_t)m.mapsize : 0;
    if (known && mdb_env_info(s->env, &info) == MDB_SUCCESS && (m.last_pg + 1) * m.psize > size)
        size = (size_t)((m.last_pg + 1) * m.psize);
    md_err_t rc = known ? resize_locked(s, size, "adopt map", err)
                        : md_error_set(err, MD_ESTORE, "adopt map: cannot read '%s'", s->path);
    pthread_rwlock_unlock(&s->grow_lock);
    return rc;
}

/* Begins an LMDB txn; the caller holds grow_lock shared. */
static int begin_mdb(md_store_t *s, unsigned flags, MDB_txn **txn)
{
    int rc = mdb_txn_begin(s->env, NULL, flags, txn);
    /* LMDB never frees the reader slot of a process that died inside a read
     * transaction (a SIGKILLed marketctl, say): once 256 such slots pile up,
     * every read fails with MDB_READERS_FULL until the last process closes
     * the environment, and the daemon's publisher stops for good
     * (tests/integration/test_faults.sh). Clear the dead ones and try again. */
    int dead = 0;
    if (rc == MDB_READERS_FULL && mdb_reader_check(s->env, &dead) == MDB_SUCCESS && dead > 0)
        rc = mdb_txn_begin(s->env, NULL, flags, txn);
    return rc;
}

/*
 * Takes grow_lock shared and begins a transaction, adopting a map grown by
 * another process first when LMDB says so. On MD_OK the lock is held until
 * end_txn(); on failure it is not.
 */
static md_err_t begin_txn(md_store_t *s, unsigned flags, MDB_txn **txn, const char *what,
                          md_error_t *err)
{
    for (int tries = 0;; tries++) {
        pthread_rwlock_rdlock(&s->grow_lock);
        if (atomic_load(&s->broken)) {
            pthread_rwlock_unlock(&s->grow_lock);
            return broken_err(s, err);
        }
        int rc = begin_mdb(s, flags, txn);
        if (rc == MDB_SUCCESS)
            return MD_OK;
        pthread_rwlock_unlock(&s->grow_lock);
        if (rc != MDB_MAP_RESIZED || tries == 8)
            return md_store_err(rc, err, what);
        md_err_t arc = adopt_map(s, err);
        if (arc != MD_OK)
            return arc;
    }
}

static void end_txn(md_store_t *s)
{
    pthread_rwlock_unlock(&s->grow_lock);
}

bool md_store_broken(md_store_t *s)
{
    return atomic_load(&s->broken);
}

/* ---- open and close ---------------------------------------------------------------- */

/* A fresh environment has no named database yet (LMDB's main db is empty). */
static md_err_t is_fresh(MDB_txn *txn, bool *fresh, md_error_t *err)
{
    MDB_dbi main_db;
    MDB_stat st;
    int rc = mdb_dbi_open(txn, NULL, 0, &main_db);
    if (rc == MDB_SUCCESS)
        rc = mdb_stat(txn, main_db, &st);
    *fresh = rc == MDB_SUCCESS && st.ms_entries == 0;
    return md_store_err(rc, err, "main db");
}

/* Opens every named database once; the handles stay valid for the env. */
static md_err_t open_dbs_once(md_store_t *s, md_error_t *err)
{
    MDB_txn *txn = NULL;
    bool fresh = false;
    md_err_t rc = begin_txn(s, s->read_only ? MDB_RDONLY : 0, &txn, "begin", err);
    if (rc != MD_OK)
        return rc;
    if ((rc = is_fresh(txn, &fresh, err)) != MD_OK)
        goto fail;
    for (int i = 0; i < MD_DB_COUNT_; i++) {
        int mrc = mdb_dbi_open(txn, db_names[i], s->read_only ? 0 : MDB_CREATE, &s->dbi[i]);
        if (mrc == MDB_NOTFOUND && s->read_only && i == MD_DB_STREAMS) {
            s->dbi[i] = 0; /* format 1: the format check refuses it next */
            continue;
        }
        if (mrc == MDB_NOTFOUND && s->read_only && i == MD_DB_INTAKE) {
            s->no_intake = true; /* an older store: no intake records */
            continue;
        }
        if (mrc == MDB_NOTFOUND && s->read_only && i == MD_DB_OUTBOX_PARKED) {
            s->dbi[i] = 0; /* an older store: nothing parked yet */
            continue;
        }
        if (mrc != MDB_SUCCESS) {
            rc = md_store_err(mrc, err, db_names[i]);
            goto fail;
        }
    }
    if ((rc = md__store_check_format(s, txn, fresh, err)) != MD_OK ||
        (rc = md__store_load_id(s, txn, err)) != MD_OK)
        goto fail;
    rc = md_store_err(mdb_txn_commit(txn), err, "commit");
    end_txn(s);
    return rc;
fail:
    mdb_txn_abort(txn);
    end_txn(s);
    return rc;
}

/* The opening transaction may write much (a format 1 store's conversion):
 * a full map is grown and the whole open run again, as a batch is. */
static md_err_t open_dbs(md_store_t *s, md_error_t *err)
{
    md_err_t rc;
    while ((rc = open_dbs_once(s, err)) == MD_EMAPFULL && !s->read_only) {
        md_error_clear(err);
        if ((rc = grow_map(s, err)) != MD_OK)
            break;
    }
    return rc;
}

md_err_t md_store_open(const char *dir, const md_store_opts_t *opts, md_store_t **out,
                       md_error_t *err)
{
    md_store_opts_t o = {0};
    if (opts)
        o = *opts;
    if (dir == NULL || out == NULL)
        return md_error_set(err, MD_EINVAL, "md_store_open: no directory");
    md_err_t rc = o.read_only ? MD_OK : make_dir(dir, err);
    if (rc != MD_OK)
        return rc;
    md_store_t *s = md_calloc(1, sizeof *s);
    s->lock_fd = -1;
    snprintf(s->path, sizeof s->path, "%s/data.mdb", dir);
    /* Writer preference: under a steady stream of HTTP readers, a writer waiting
     * to grow the map must not be held off indefinitely. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->grow_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&s->write_lock, NULL);
    pthread_mutex_init(&s->heads_lock, NULL);
    s->read_only = o.read_only;
    if ((o.lock && (rc = md__store_lock_dir(s, dir, err)) != MD_OK) ||
        (rc = md__store_check_data_file(s->path, err)) != MD_OK)
        goto fail;
    unsigned flags = MDB_NOTLS | (o.nosync ? MDB_NOSYNC : 0) | (o.read_only ? MDB_RDONLY : 0);
    int mrc = mdb_env_create(&s->env);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxdbs(s->env, 64);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_mapsize(s->env, o.map_size ? o.map_size : DEFAULT_MAP_SIZE);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_set_maxreaders(s->env, 256);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_env_open(s->env, dir, flags, 0640);
    if (mrc != MDB_SUCCESS) {
        rc = md_error_set(err, MD_ESTORE, "open store '%s': %s", dir, mdb_strerror(mrc));
        goto fail;
    }
    if ((rc = open_dbs(s, err)) != MD_OK)
        goto fail;
    s->wtxn = md_calloc(1, sizeof *s->wtxn);
    s->wtxn->s = s;
    md_buf_init(&s->wtxn->rec);
    md_buf_init(&s->wtxn->sv_names);
    md_buf_init(&s->wtxn->si);
    md_buf_init(&s->wtxn->si_scratch);
    *out = s;
    return MD_OK;
fail:
    md_store_free(s);
    return rc;
}

void md_store_free(md_store_t *s)
{
    if (s == NULL)
        return;
    if (s->wtxn) {
        md_buf_release(&s->wtxn->rec);
        md__sv_free(s->wtxn);
        free(s->wtxn);
    }
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock; the file stays (no unlink race) */
    pthread_rwlock_destroy(&s->grow_lock);
    pthread_mutex_destroy(&s->write_lock);
    pthread_mutex_destroy(&s->heads_lock);
    free(s);
}

md_err_t md_store_sync(md_store_t *s, md_error_t *err)
{
    if (s == NULL || s->read_only)
        return md_error_set(err, MD_EINVAL, "md_store_sync: no store, or read-only");
    pthread_rwlock_rdlock(&s->grow_lock); /* the map stays while LMDB syncs */
    if (atomic_load(&s->broken)) {
        pthread_rwlock_unlock(&s->grow_lock);
        return broken_err(s, err);
    }
    int mrc = mdb_env_sync(s->env, 1);
    pthread_rwlock_unlock(&s->grow_lock);
    if (mrc != MDB_SUCCESS)
        return md_error_set(err, MD_ESTORE, "sync '%s': %s", s->path, mdb_strerror(mrc));
    return MD_OK;
}

MDB_env *md_store_env(md_store_t *s)
{
    return s->env;
}

const char *md_store_id(const md_store_t *s)
{
    return s->id;
}

bool md_store_converted(const md_store_t *s, uint64_t *streams, uint64_t *events)
{
    if (streams)
        *streams = s->migrated_streams;
    if (events)
        *events = s->migrated_events;
    return s->converted;
}

md_err_t md_store_dbi(md_store_t *s, const char *name, unsigned flags, MDB_dbi *out,
                      md_error_t *err)
{
    MDB_txn *txn = NULL;
    md_err_t rc = begin_txn(s, s->read_only ? MDB_RDONLY : 0, &txn, "begin", err);
    if (rc != MD_OK)
        return rc;
    int mrc = mdb_dbi_open(txn, name, flags | (s->read_only ? 0 : MDB_CREATE), out);
    if (mrc != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        end_txn(s);
        return md_store_err(mrc, err, name);
    }
    rc = md_store_err(mdb_txn_commit(txn), err, "commit");
    end_txn(s);
    return rc;
}

md_err_t md_store_usage(md_store_t *s, size_t *used, size_t *map_size, md_error_t *err)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(s->env, &info);
    if (rc == MDB_SUCCESS)
        rc = mdb_env_stat(s->env, &st);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "env info");
    *used = (info.me_last_pgno + 1) * (size_t)st.ms_psize;
    *map_size = info.me_mapsize;
    return MD_OK;
}

/* ---- transactions ------------------------------------------------------------ */

static void wtxn_reset(md_txn_t *t, MDB_txn *txn)
{
    t->txn = txn;
    t->write = true;
    t->head_loaded = false;
    t->outbox_loaded = false;
    t->head_dirty = false;
    t->appended = false;
    t->outbox_dirty = false;
    t->streams = NULL; /* LMDB frees a write txn's cursors when it ends */
    md__sv_reset(t);
}

static md_err_t flush_meta(md_txn_t *t, md_error_t *err);

/*
 * A failed commit, with the free space of the store's filesystem when the
 * failure looks like a full disk: LMDB reports a short write of its pages as
 * EIO ("Input/output error"), which on a full filesystem is what an operator
 * sees first (tests/integration/test_faults.sh), so say what is likely wrong.
 */
static md_err_t commit_err(md_store_t *s, int rc, md_error_t *err)
{
    const char *path = NULL;
    struct statvfs fs;
    if (rc == MDB_SUCCESS || (rc != EIO && rc != ENOSPC && rc != EDQUOT) ||
        mdb_env_get_path(s->env, &path) != MDB_SUCCESS || statvfs(path, &fs) != 0)
        return md_store_err(rc, err, "commit");
    unsigned long long avail = (unsigned long long)fs.f_bavail * fs.f_frsize;
    return md_error_set(err, MD_ESTORE, "commit: %s (%s: %llu bytes free in '%s')",
                        mdb_strerror(rc),
                        avail < ((unsigned long long)1 << 20) ? "disk full" : "I/O", avail, path);
}

/* A write transaction that appended committed with this head and this next
 * outbox id (md_store_committed). */
static void note_committed(md_store_t *s, const md_txn_t *t, uint64_t outbox_next)
{
    pthread_mutex_lock(&s->heads_lock);
    unsigned i = (unsigned)(s->nheads++ % MD_STORE_HEADS);
    s->heads[i].seq = t->head_seq;
    memcpy(s->heads[i].hash, t->head_hash, MD_HASH_LEN);
    s->heads[i].outbox_next = outbox_next;
    pthread_mutex_unlock(&s->heads_lock);
}

md_committed_t md_store_committed(md_store_t *s, uint64_t seq,
                                  const unsigned char hash[MD_HASH_LEN], uint64_t *outbox_next)
{
    md_committed_t r = MD_COMMITTED_NOT_YET;
    pthread_mutex_lock(&s->heads_lock);
    uint64_t n = s->nheads < MD_STORE_HEADS ? s->nheads : MD_STORE_HEADS;
    for (uint64_t k = 0; k < n && r != MD_COMMITTED_YES; k++) {
        unsigned i = (unsigned)((s->nheads - 1 - k) % MD_STORE_HEADS);
        if (s->heads[i].seq == seq && memcmp(s->heads[i].hash, hash, MD_HASH_LEN) == 0) {
            r = MD_COMMITTED_YES;
            if (outbox_next)
                *outbox_next = s->heads[i].outbox_next;
        } else if (s->heads[i].seq >= seq)
            r = MD_COMMITTED_NO;
    }
    pthread_mutex_unlock(&s->heads_lock);
    return r;
}

static md_err_t store_write_locked(md_store_t *s, md_write_fn fn, void *ctx, md_error_t *err)
{
    for (;;) {
        MDB_txn *txn = NULL;
        uint64_t onext = 0;
        md_err_t rc = begin_txn(s, 0, &txn, "begin write", err);
        if (rc != MD_OK)
            return rc;
        wtxn_reset(s->wtxn, txn);
        rc = fn(s->wtxn, ctx, err);
        if (rc == MD_OK)
            rc = md__si_flush(s->wtxn, err);
        if (rc == MD_OK)
            rc = flush_meta(s->wtxn, err);
        if (rc == MD_OK && s->wtxn->appended) /* its outbox ids end here */
            rc = md_txn_outbox_next(s->wtxn, &onext, err);
        if (rc == MD_OK)
            rc = commit_err(s, mdb_txn_commit(txn), err);
        else
            mdb_txn_abort(txn);
        if (rc == MD_OK && s->wtxn->appended)
            note_committed(s, s->wtxn, onext);
        s->wtxn->txn = NULL;
        end_txn(s);
        if (rc != MD_EMAPFULL)
            return rc;
        md_error_clear(err);
        if ((rc = grow_map(s, err)) != MD_OK)
            return rc;
    }
}

md_err_t md_store_write(md_store_t *s, md_write_fn fn, void *ctx, md_error_t *err)
{
    if (s->read_only)
        return md_error_set(err, MD_EINVAL, "store opened read-only");
    pthread_mutex_lock(&s->write_lock);
    md_err_t rc = store_write_locked(s, fn, ctx, err);
    pthread_mutex_unlock(&s->write_lock);
    return rc;
}

md_err_t md_store_read(md_store_t *s, md_txn_t **out, md_error_t *err)
{
    MDB_txn *txn = NULL;
    md_err_t rc = begin_txn(s, MDB_RDONLY, &txn, "begin read", err);
    if (rc != MD_OK)
        return rc;
    md_txn_t *t = md_calloc(1, sizeof *t);
    t->s = s;
    t->txn = txn;
    md_buf_init(&t->rec);
    *out = t;
    return MD_OK;
}

void md_txn_end(md_txn_t *t)
{
    if (t == NULL)
        return;
    mdb_txn_abort(t->txn);
    md_buf_release(&t->rec);
    end_txn(t->s);
    free(t);
}

MDB_txn *md_txn_mdb(md_txn_t *t)
{
    return t->txn;
}

MDB_dbi md_txn_dbi(md_txn_t *t, md_db_t db)
{
    return t->s->dbi[db];
}

md_store_t *md_txn_store(md_txn_t *t)
{
    return t->s;
}

/* ---- metadata ------------------------------------------------------------------ */

md_err_t md_txn_meta_get(md_txn_t *t, const char *name, const void **val, size_t *len,
                         md_error_t *err)
{
    MDB_val v;
    md_err_t mrc = t->write ? flush_meta(t, err) : MD_OK; /* read what was appended */
    if (mrc != MD_OK)
        return mrc;
    int rc = txn_get(t, MD_DB_META, name, strlen(name), &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, name);
    *val = v.mv_data;
    *len = v.mv_size;
    return MD_OK;
}

md_err_t md_txn_meta_put(md_txn_t *t, const char *name, const void *val, size_t len,
                         md_error_t *err)
{
    return md_store_err(txn_put(t, MD_DB_META, name, strlen(name), val, len, 0), err, name);
}

/* Writes the head and the next outbox id kept in the transaction. */
static md_err_t flush_meta(md_txn_t *t, md_error_t *err)
{
    md_err_t rc = MD_OK;
    if (t->head_dirty) {
        unsigned char head[8 + MD_HASH_LEN];
        be64(head, t->head_seq);
        memcpy(head + 8, t->head_hash, MD_HASH_LEN);
        rc = md_txn_meta_put(t, "head", head, sizeof head, err);
        t->head_dirty = rc != MD_OK;
    }
    if (rc == MD_OK && t->outbox_dirty) {
        unsigned char next[8];
        be64(next, t->outbox_next);
        rc = md_txn_meta_put(t, "outbox_next", next, 8, err);
        t->outbox_dirty = rc != MD_OK;
    }
    return rc;
}
