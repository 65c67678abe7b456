/*
 * store.c - the LMDB event store (see md_store.h for the layout).
 *
 * One writer: md_store_write() reuses a single md_txn_t (and its scratch
 * buffer) for every write transaction, so an append allocates nothing once
 * the buffer has grown to the largest body. Readers get their own md_txn_t.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "md_store.h"

#define OUTBOX_EVENT_REF 0x01 /* first byte of an event reference (topics are text) */
#define DEFAULT_MAP_SIZE ((size_t)256 << 20)
#define RECORD_HDR (2 * MD_HASH_LEN)

struct md_store {
    MDB_env *env;
    /* Every transaction of this process (readers and the writer) holds it
     * shared while it is open; changing the map size (growing it, or adopting
     * another process's growth) takes it exclusively, as LMDB requires. */
    pthread_rwlock_t grow_lock;
    pthread_mutex_t write_lock; /* one md_store_write at a time (it reuses wtxn) */
    MDB_dbi dbi[MD_DB_COUNT_];
    bool read_only;
    bool no_intake; /* read-only store written before the intake database existed */
    struct md_txn *wtxn; /* the writer's reusable transaction state */
    int lock_fd;         /* the data directory's lock file (opts.lock), or -1 */
    char path[4096];     /* the data file, for messages */
    char id[MD_STORE_ID_LEN + 1];
    /* Set (under grow_lock held exclusively) when LMDB lost its map in a
     * failed resize: no transaction may begin after that (it would fault). */
    _Atomic bool broken;
    char broken_msg[4608];
};

struct md_txn {
    md_store_t *s;
    MDB_txn *txn;
    bool write;
    bool head_loaded;
    uint64_t head_seq;
    unsigned char head_hash[MD_HASH_LEN];
    bool outbox_loaded;
    uint64_t outbox_next;
    /* The meta values "head" and "outbox_next" change with every append and
     * outbox entry; they are kept here and written once, just before the
     * commit (flush_meta), rather than rewritten per event. */
    bool head_dirty, outbox_dirty;
    MDB_cursor *streams; /* the write txn's cursor on streams, opened once */
    md_buf_t rec; /* scratch: record = prev_hash | hash | body */
};

static const char *const db_names[MD_DB_COUNT_] = {
    "events", "streams", "outcomes", "state", "offsets", "outbox", "meta", "intake",
    "outbox_parked",
};

/* ---- small helpers ------------------------------------------------------- */

static void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

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

/* ---- the data file, checked before LMDB maps it -------------------------------- */

/* What a meta page of an LMDB 0.9 data file says (lmdb's MDB_meta, 64-bit). */
typedef struct file_meta {
    uint64_t psize, last_pg, txnid, mapsize;
    uint64_t roots[2]; /* root pages of LMDB's free and main databases (~0: empty) */
} file_meta_t;

#define META_MAGIC 0xBEEFC0DEu
#define META_AT 16 /* the page header before the meta */

static bool read_meta(int fd, off_t page, file_meta_t *m)
{
    unsigned char b[160];
    uint32_t magic, psize;
    if (pread(fd, b, sizeof b, page) != (ssize_t)sizeof b)
        return false;
    memcpy(&magic, b + META_AT, 4);
    memcpy(&m->mapsize, b + META_AT + 16, 8);
    memcpy(&psize, b + META_AT + 24, 4); /* mm_dbs[FREE_DBI].md_pad */
    memcpy(&m->roots[0], b + META_AT + 64, 8);  /* mm_dbs[FREE_DBI].md_root */
    memcpy(&m->roots[1], b + META_AT + 112, 8); /* mm_dbs[MAIN_DBI].md_root */
    memcpy(&m->last_pg, b + META_AT + 120, 8);
    memcpy(&m->txnid, b + META_AT + 128, 8);
    m->psize = psize;
    return magic == META_MAGIC && psize >= 512 && (psize & (psize - 1)) == 0;
}

/* The newer of the two meta pages of @p fd (false: not an LMDB file LMDB
 * would accept either, so LMDB's own open reports it). */
static bool newest_meta(int fd, file_meta_t *m)
{
    file_meta_t m1;
    if (!read_meta(fd, 0, m))
        return false;
    if (read_meta(fd, (off_t)m->psize, &m1) && m1.txnid > m->txnid)
        *m = m1;
    return true;
}

/*
 * Is a file of @p size bytes too short for @p m? LMDB does not write the
 * pages a transaction allocated and freed again ("loose" pages), so the last
 * few pages counted by the meta may lie beyond the end of a sound file: the
 * file is truncated when a root page (always written at commit) lies beyond
 * its end, or when more than TRUNC_SLACK pages are missing.
 */
#define TRUNC_SLACK 256

static bool too_short(const file_meta_t *m, uint64_t size)
{
    uint64_t pages = size / m->psize;
    if (pages < 2 || pages + TRUNC_SLACK < m->last_pg + 1)
        return true;
    for (int i = 0; i < 2; i++)
        if (m->roots[i] != UINT64_MAX && m->roots[i] >= pages)
            return true;
    return false;
}

/*
 * A data file shorter than its meta pages say would be mapped and then fault
 * (SIGBUS) on the first page beyond its end: refuse it with what is wrong.
 */
static md_err_t check_data_file(const char *path, md_error_t *err)
{
    struct stat st;
    file_meta_t m;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? MD_OK : md_error_set(err, MD_EIO, "open '%s': %s", path,
                                                      strerror(errno));
    md_err_t rc = MD_OK;
    /* The meta first, then the size: a writer of another process extends the
     * file before it writes the meta page that counts the new pages. */
    bool known = newest_meta(fd, &m);
    if (fstat(fd, &st) != 0)
        rc = md_error_set(err, MD_EIO, "stat '%s': %s", path, strerror(errno));
    else if (known && st.st_size > 0) {
        uint64_t need = (m.last_pg + 1) * m.psize;
        if (too_short(&m, (uint64_t)st.st_size))
            rc = md_error_set(err, MD_ECORRUPT,
                              "data file '%s' is %lld bytes but its meta page says it holds "
                              "%llu pages of %llu bytes (%llu bytes): the file was truncated; "
                              "restore it from a backup",
                              path, (long long)st.st_size, (unsigned long long)(m.last_pg + 1),
                              (unsigned long long)m.psize, (unsigned long long)need);
    }
    close(fd);
    return rc;
}

/* ---- the lock of the data directory ---------------------------------------------- */

/*
 * One marketd per data directory: an exclusive flock on '<dir>/marketd.lock',
 * which holds the holder's pid. The kernel drops the lock when the process
 * dies, however it dies, so a stale file never blocks a restart.
 */
static md_err_t lock_dir(md_store_t *s, const char *dir, md_error_t *err)
{
    char path[4200], pid[32] = "";
    snprintf(path, sizeof path, "%s/marketd.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        return md_error_set(err, MD_EIO, "open '%s': %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        ssize_t n = e == EWOULDBLOCK ? pread(fd, pid, sizeof pid - 1, 0) : -1;
        close(fd);
        if (e != EWOULDBLOCK)
            return md_error_set(err, MD_EIO, "lock '%s': %s", path, strerror(e));
        pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
        return md_error_set(err, MD_EEXIST,
                            "data directory '%s' is in use by another marketd (pid %s, lock "
                            "file '%s'); one daemon per data directory",
                            dir, pid[0] ? pid : "unknown", path);
    }
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len) {
        md_error_set(err, MD_EIO, "write '%s': %s", path, strerror(errno));
        close(fd);
        return MD_EIO;
    }
    s->lock_fd = fd;
    return MD_OK;
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
             "restart the process", s->path, what, size, mdb_strerror(rc));
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
    bool known = fd >= 0 && newest_meta(fd, &m);
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

static md_err_t put_meta_raw(md_store_t *s, MDB_txn *txn, const char *name, const void *v,
                             size_t len, md_error_t *err)
{
    MDB_val k = {strlen(name), (void *)name}, val = {len, (void *)v};
    return md_store_err(mdb_put(txn, s->dbi[MD_DB_META], &k, &val, 0), err, name);
}

/* A store is stamped with its format when it is created; a store without it
 * was not written by this program (or lost its meta): refuse it. */
static md_err_t check_format(md_store_t *s, MDB_txn *txn, bool fresh, md_error_t *err)
{
    MDB_val k = {6, (void *)"format"}, v;
    int rc = mdb_get(txn, s->dbi[MD_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND && fresh && !s->read_only) {
        unsigned char f[8];
        be64(f, MD_STORE_FORMAT);
        return put_meta_raw(s, txn, "format", f, 8, err);
    }
    if (rc == MDB_NOTFOUND)
        return md_error_set(err, MD_EVERSION,
                            "store '%s' has no 'format' key: it was not written by this "
                            "version of marketd (expected format %d)", s->path, MD_STORE_FORMAT);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get 'format'");
    if (v.mv_size != 8 || get_be64(v.mv_data) != MD_STORE_FORMAT)
        return md_error_set(err, MD_EVERSION, "store format is not %d", MD_STORE_FORMAT);
    return MD_OK;
}

/*
 * The store's identity: 16 random bytes made once, when the store is created
 * (or first opened for writing by a version that did not make one), kept in
 * meta 'store_id' and shown as 32 hex digits. Read-only opens of a store
 * without one leave it empty.
 */
static md_err_t load_id(md_store_t *s, MDB_txn *txn, md_error_t *err)
{
    MDB_val k = {8, (void *)"store_id"}, v;
    unsigned char raw[MD_STORE_ID_LEN / 2];
    int rc = mdb_get(txn, s->dbi[MD_DB_META], &k, &v);
    if (rc == MDB_NOTFOUND && s->read_only)
        return MD_OK;
    if (rc == MDB_NOTFOUND) {
        if (RAND_bytes(raw, sizeof raw) != 1)
            return md_error_set(err, MD_ESTORE, "store id: no random bytes");
        md_err_t mrc = put_meta_raw(s, txn, "store_id", raw, sizeof raw, err);
        if (mrc != MD_OK)
            return mrc;
        v.mv_size = sizeof raw, v.mv_data = raw;
    } else if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get 'store_id'");
    if (v.mv_size != sizeof raw)
        return md_error_set(err, MD_ECORRUPT, "meta 'store_id' has %zu bytes", v.mv_size);
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(s->id + 2 * i, 3, "%02x", ((const unsigned char *)v.mv_data)[i]);
    return MD_OK;
}

/* Opens every named database once; the handles stay valid for the env. */
static md_err_t open_dbs(md_store_t *s, md_error_t *err)
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
    if ((rc = check_format(s, txn, fresh, err)) != MD_OK || (rc = load_id(s, txn, err)) != MD_OK)
        goto fail;
    rc = md_store_err(mdb_txn_commit(txn), err, "commit");
    end_txn(s);
    return rc;
fail:
    mdb_txn_abort(txn);
    end_txn(s);
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
    s->read_only = o.read_only;
    if ((o.lock && (rc = lock_dir(s, dir, err)) != MD_OK) ||
        (rc = check_data_file(s->path, err)) != MD_OK)
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
        free(s->wtxn);
    }
    if (s->env)
        mdb_env_close(s->env);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock; the file stays (no unlink race) */
    pthread_rwlock_destroy(&s->grow_lock);
    pthread_mutex_destroy(&s->write_lock);
    free(s);
}

MDB_env *md_store_env(md_store_t *s)
{
    return s->env;
}

const char *md_store_id(const md_store_t *s)
{
    return s->id;
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
    t->outbox_dirty = false;
    t->streams = NULL; /* LMDB frees a write txn's cursors when it ends */
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
                        mdb_strerror(rc), avail < ((unsigned long long)1 << 20) ? "disk full" : "I/O",
                        avail, path);
}

static md_err_t store_write_locked(md_store_t *s, md_write_fn fn, void *ctx, md_error_t *err)
{
    for (;;) {
        MDB_txn *txn = NULL;
        md_err_t rc = begin_txn(s, 0, &txn, "begin write", err);
        if (rc != MD_OK)
            return rc;
        wtxn_reset(s->wtxn, txn);
        rc = fn(s->wtxn, ctx, err);
        if (rc == MD_OK)
            rc = flush_meta(s->wtxn, err);
        if (rc == MD_OK)
            rc = commit_err(s, mdb_txn_commit(txn), err);
        else
            mdb_txn_abort(txn);
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

static int txn_get(md_txn_t *t, md_db_t db, const void *k, size_t klen, MDB_val *v)
{
    MDB_val key = {klen, (void *)k};
    return mdb_get(t->txn, t->s->dbi[db], &key, v);
}

static int txn_put(md_txn_t *t, md_db_t db, const void *k, size_t klen, const void *v,
                   size_t vlen, unsigned flags)
{
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    return mdb_put(t->txn, t->s->dbi[db], &key, &val, flags);
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

/* ---- the chain head and stream versions ------------------------------------------ */

static md_err_t load_head(md_txn_t *t, md_error_t *err)
{
    const void *v;
    size_t len;
    if (t->head_loaded)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, "head", &v, &len, err);
    if (rc == MD_ENOTFOUND) {
        t->head_seq = 0;
        memset(t->head_hash, 0, MD_HASH_LEN);
    } else if (rc != MD_OK) {
        return rc;
    } else if (len != 8 + MD_HASH_LEN) {
        return md_error_set(err, MD_ECORRUPT, "meta 'head' has %zu bytes", len);
    } else {
        t->head_seq = get_be64(v);
        memcpy(t->head_hash, (const unsigned char *)v + 8, MD_HASH_LEN);
    }
    t->head_loaded = true;
    return MD_OK;
}

md_err_t md_txn_head(md_txn_t *t, uint64_t *seq, unsigned char hash[MD_HASH_LEN],
                     md_error_t *err)
{
    md_err_t rc = load_head(t, err);
    if (rc != MD_OK)
        return rc;
    *seq = t->head_seq;
    if (hash)
        memcpy(hash, t->head_hash, MD_HASH_LEN);
    return MD_OK;
}

/* Stream index key: stream bytes, a NUL, the version big-endian. */
static size_t stream_key(unsigned char *k, const char *stream, uint64_t version)
{
    size_t n = strlen(stream);
    memcpy(k, stream, n);
    k[n] = '\0';
    be64(k + n + 1, version);
    return n + 9;
}

md_err_t md_txn_stream_version(md_txn_t *t, const char *stream, uint64_t *version,
                               md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9];
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    /* The writer keeps one cursor for the whole transaction (an open and a
     * close per append showed in profiles); readers open their own. */
    MDB_cursor *c = t->write ? t->streams : NULL;
    int rc = c ? MDB_SUCCESS : mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "cursor streams");
    if (t->write)
        t->streams = c;
    MDB_val key = {stream_key(k, stream, UINT64_MAX), k}, val;
    rc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE);
    rc = mdb_cursor_get(c, &key, &val, rc == MDB_SUCCESS ? MDB_PREV : MDB_LAST);
    *version = 0;
    if (rc == MDB_SUCCESS && key.mv_size == n + 9 && memcmp(key.mv_data, k, n + 1) == 0)
        *version = get_be64((const unsigned char *)key.mv_data + n + 1);
    if (!t->write)
        mdb_cursor_close(c);
    return rc == MDB_SUCCESS || rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "streams");
}

/* ---- append ------------------------------------------------------------------------ */

static md_err_t check_event(const md_event_t *ev, md_error_t *err)
{
    size_t sl = strnlen(ev->stream, sizeof ev->stream), tl = strnlen(ev->type, sizeof ev->type);
    if (sl == 0 || sl > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "event stream must be 1..%d bytes", MD_STREAM_MAX);
    if (tl == 0 || tl > MD_TYPE_MAX)
        return md_error_set(err, MD_EINVAL, "event type must be 1..%d bytes", MD_TYPE_MAX);
    if ((ev->has_command_id && ev->command_id[0] == '\0') || (ev->has_actor && ev->actor[0] == '\0'))
        return md_error_set(err, MD_EINVAL, "event command_id and actor must not be empty");
    return MD_OK;
}

/* Writes the record and its stream index entry, then advances the head. */
static md_err_t put_record(md_txn_t *t, md_event_t *ev, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9], seqk[8];
    be64(seqk, ev->seq);
    int rc = txn_put(t, MD_DB_EVENTS, seqk, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "append event");
    rc = txn_put(t, MD_DB_STREAMS, k, stream_key(k, ev->stream, ev->version), seqk, 8,
                 MDB_NOOVERWRITE);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "index stream");
    t->head_dirty = true;
    t->head_seq = ev->seq;
    memcpy(t->head_hash, ev->hash, MD_HASH_LEN);
    return MD_OK;
}

md_err_t md_txn_append(md_txn_t *t, md_event_t *ev, md_error_t *err)
{
    md_err_t rc;
    if (!t->write)
        return md_error_set(err, MD_EINVAL, "append in a read transaction");
    if ((rc = check_event(ev, err)) != MD_OK || (rc = load_head(t, err)) != MD_OK ||
        (rc = md_txn_stream_version(t, ev->stream, &ev->version, err)) != MD_OK)
        return rc;
    ev->seq = t->head_seq + 1;
    ev->version += 1;
    memcpy(ev->prev_hash, t->head_hash, MD_HASH_LEN);
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, ev->prev_hash, MD_HASH_LEN);
    md_buf_append(&t->rec, ev->prev_hash, MD_HASH_LEN); /* room for the hash */
    if ((rc = md_event_body(ev, &t->rec, err)) != MD_OK)
        return rc;
    md_chain_hash(ev->prev_hash, t->rec.p + RECORD_HDR, t->rec.len - RECORD_HDR, ev->hash);
    memcpy(t->rec.p + MD_HASH_LEN, ev->hash, MD_HASH_LEN);
    return put_record(t, ev, err);
}

/* ---- reading events ------------------------------------------------------------------ */

static md_err_t decode_record(const MDB_val *v, uint64_t seq, md_event_t *ev, const void **body,
                              size_t *body_len, md_error_t *err)
{
    if (v->mv_size <= RECORD_HDR)
        return md_error_set(err, MD_ECORRUPT, "event %llu: record too short",
                            (unsigned long long)seq);
    const unsigned char *p = v->mv_data;
    md_error_t derr = {0};
    if (md_event_decode_body(p + RECORD_HDR, v->mv_size - RECORD_HDR, ev, &derr) != MD_OK)
        return md_error_set(err, MD_ECORRUPT, "event %llu: %s", (unsigned long long)seq,
                            derr.msg);
    memcpy(ev->prev_hash, p, MD_HASH_LEN);
    memcpy(ev->hash, p + MD_HASH_LEN, MD_HASH_LEN);
    if (body)
        *body = p + RECORD_HDR;
    if (body_len)
        *body_len = v->mv_size - RECORD_HDR;
    return MD_OK;
}

md_err_t md_txn_event(md_txn_t *t, uint64_t seq, md_event_t *ev, const void **body,
                      size_t *body_len, md_error_t *err)
{
    unsigned char k[8];
    MDB_val v;
    be64(k, seq);
    int rc = txn_get(t, MD_DB_EVENTS, k, 8, &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get event");
    return decode_record(&v, seq, ev, body, body_len, err);
}

/* Calls fn on one stored record; a key of the wrong size is corruption. */
static md_err_t visit_record(const MDB_val *k, const MDB_val *v, md_event_fn fn, void *ctx,
                             md_error_t *err)
{
    md_event_t ev;
    const void *body;
    size_t blen;
    if (k->mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "event key of %zu bytes", k->mv_size);
    uint64_t seq = get_be64(k->mv_data);
    md_err_t rc = decode_record(v, seq, &ev, &body, &blen, err);
    if (rc == MD_OK && ev.seq != seq)
        rc = md_error_set(err, MD_ECORRUPT, "event %llu: body says seq %llu",
                          (unsigned long long)seq, (unsigned long long)ev.seq);
    return rc == MD_OK ? fn(&ev, body, blen, ctx, err) : rc;
}

md_err_t md_txn_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_event_fn fn, void *ctx,
                     md_error_t *err)
{
    unsigned char k[8];
    MDB_cursor *c = NULL;
    be64(k, from);
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_EVENTS], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor events");
    MDB_val key = {8, k}, val;
    md_err_t rc = MD_OK;
    uint64_t n = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if ((limit && n++ == limit) || (rc = visit_record(&key, &val, fn, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan events");
    return rc;
}

md_err_t md_txn_scan_stream(md_txn_t *t, const char *stream, uint64_t from_version,
                            uint64_t limit, md_event_fn fn, void *ctx, md_error_t *err)
{
    unsigned char k[MD_STREAM_MAX + 9];
    size_t n = strlen(stream);
    if (n == 0 || n > MD_STREAM_MAX)
        return md_error_set(err, MD_EINVAL, "stream name of %zu bytes", n);
    MDB_cursor *c = NULL;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_STREAMS], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor streams");
    MDB_val key = {stream_key(k, stream, from_version), k}, val;
    md_err_t rc = MD_OK;
    uint64_t count = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        if (key.mv_size != n + 9 || memcmp(key.mv_data, k, n + 1) != 0 || val.mv_size != 8)
            break;
        if (limit && count++ == limit)
            break;
        MDB_val ek = {8, val.mv_data}, ev;
        mrc = mdb_get(t->txn, t->s->dbi[MD_DB_EVENTS], &ek, &ev);
        if (mrc != MDB_SUCCESS) {
            rc = md_error_set(err, MD_ECORRUPT, "stream '%s' indexes a missing event", stream);
            break;
        }
        if ((rc = visit_record(&ek, &ev, fn, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan stream");
    return rc;
}

/* ---- outcomes and offsets ------------------------------------------------------------ */

md_err_t md_txn_outcome_get(md_txn_t *t, const char *command_id, const void **val, size_t *len,
                            md_error_t *err)
{
    MDB_val v;
    int rc = txn_get(t, MD_DB_OUTCOMES, command_id, strlen(command_id), &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get outcome");
    *val = v.mv_data;
    *len = v.mv_size;
    return MD_OK;
}

md_err_t md_txn_outcome_put(md_txn_t *t, const char *command_id, const void *val, size_t len,
                            md_error_t *err)
{
    size_t n = strlen(command_id);
    if (n == 0 || n > MD_CMDID_MAX)
        return md_error_set(err, MD_EINVAL, "command_id of %zu bytes", n);
    return md_store_err(txn_put(t, MD_DB_OUTCOMES, command_id, n, val, len, 0), err,
                        "put outcome");
}

static size_t offset_key(unsigned char *k, const char *topic, int32_t partition)
{
    size_t n = strlen(topic);
    memcpy(k, topic, n);
    k[n] = '\0';
    be32(k + n + 1, (uint32_t)partition);
    return n + 5;
}

md_err_t md_txn_offset_get(md_txn_t *t, const char *topic, int32_t partition, int64_t *next,
                           md_error_t *err)
{
    unsigned char k[256 + 5];
    MDB_val v;
    if (strlen(topic) > 255)
        return md_error_set(err, MD_EINVAL, "topic name too long");
    int rc = txn_get(t, MD_DB_OFFSETS, k, offset_key(k, topic, partition), &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get offset");
    if (v.mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "offset of %zu bytes", v.mv_size);
    *next = (int64_t)get_be64(v.mv_data);
    return MD_OK;
}

md_err_t md_txn_offset_put(md_txn_t *t, const char *topic, int32_t partition, int64_t next,
                           md_error_t *err)
{
    unsigned char k[256 + 5], v[8];
    if (strlen(topic) > 255)
        return md_error_set(err, MD_EINVAL, "topic name too long");
    be64(v, (uint64_t)next);
    return md_store_err(txn_put(t, MD_DB_OFFSETS, k, offset_key(k, topic, partition), v, 8, 0),
                        err, "put offset");
}

md_err_t md_txn_offset_scan(md_txn_t *t, md_offset_fn fn, void *ctx, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    md_err_t rc = MD_OK;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OFFSETS], &cur);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "offsets cursor");
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data, *nul = memchr(p, 0, k.mv_size);
        if (nul == NULL || k.mv_size - (size_t)(nul - p) != 5 || v.mv_size != 8) {
            rc = md_error_set(err, MD_ECORRUPT, "an offsets record is not topic, NUL, "
                                                "partition(4), next(8)");
            break;
        }
        char topic[256];
        snprintf(topic, sizeof topic, "%.*s", (int)(nul - p), (const char *)p);
        rc = fn(topic, (int32_t)(uint32_t)(nul[1] << 24 | nul[2] << 16 | nul[3] << 8 | nul[4]),
                (int64_t)get_be64(v.mv_data), ctx, err);
    }
    mdb_cursor_close(cur);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc != MD_OK)
        return rc;
    return mrc == MDB_NOTFOUND ? MD_OK : md_store_err(mrc, err, "offsets scan");
}

/* ---- outbox ---------------------------------------------------------------------------- */

/* The next outbox id survives deletions (meta 'outbox_next'), so ids never repeat. */
static md_err_t load_outbox_next(md_txn_t *t, md_error_t *err)
{
    const void *v;
    size_t len;
    if (t->outbox_loaded)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, "outbox_next", &v, &len, err);
    if (rc == MD_ENOTFOUND)
        t->outbox_next = 1;
    else if (rc != MD_OK)
        return rc;
    else if (len != 8)
        return md_error_set(err, MD_ECORRUPT, "meta 'outbox_next' has %zu bytes", len);
    else
        t->outbox_next = get_be64(v);
    t->outbox_loaded = true;
    return MD_OK;
}

md_err_t md_txn_outbox_put(md_txn_t *t, const md_outbox_msg_t *m, uint64_t *id, md_error_t *err)
{
    md_err_t rc = load_outbox_next(t, err);
    if (rc != MD_OK)
        return rc;
    unsigned char len[4], k[8], ref[9] = {OUTBOX_EVENT_REF};
    md_buf_reset(&t->rec);
    if (m->event_seq) {
        be64(ref + 1, m->event_seq);
        md_buf_append(&t->rec, ref, sizeof ref);
    }
    md_buf_append(&t->rec, m->topic, strlen(m->topic) + 1);
    be32(len, (uint32_t)m->key_len);
    md_buf_append(&t->rec, len, 4);
    md_buf_append(&t->rec, m->key, m->key_len);
    be32(len, (uint32_t)m->headers_len);
    md_buf_append(&t->rec, len, 4);
    md_buf_append(&t->rec, m->headers, m->headers_len);
    if (m->event_seq == 0)
        md_buf_append(&t->rec, m->value, m->value_len);
    be64(k, t->outbox_next);
    int mrc = txn_put(t, MD_DB_OUTBOX, k, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "put outbox");
    if (id)
        *id = t->outbox_next;
    t->outbox_next++;
    t->outbox_dirty = true;
    return MD_OK;
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

static uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Takes a 4-byte length and that many bytes from [*p, end). */
static int take_sized(const unsigned char **p, const unsigned char *end, const void **out,
                      size_t *len)
{
    if (end - *p < 4 || (size_t)(end - *p - 4) < get_be32(*p))
        return -1;
    *len = get_be32(*p);
    *out = *p + 4;
    *p += 4 + *len;
    return 0;
}

static md_err_t decode_outbox(const MDB_val *k, const MDB_val *v, md_outbox_msg_t *m,
                              md_error_t *err)
{
    const unsigned char *p = v->mv_data, *end = p + v->mv_size;
    m->event_seq = 0;
    if (v->mv_size >= 9 && p[0] == OUTBOX_EVENT_REF) {
        m->event_seq = get_be64(p + 1);
        p += 9;
        if (m->event_seq == 0)
            return md_error_set(err, MD_ECORRUPT, "outbox entry refers to event 0");
    }
    const unsigned char *nul = k->mv_size == 8 ? memchr(p, 0, (size_t)(end - p)) : NULL;
    const unsigned char *q = nul ? nul + 1 : NULL;
    if (nul == NULL || take_sized(&q, end, &m->key, &m->key_len) ||
        take_sized(&q, end, &m->headers, &m->headers_len))
        return md_error_set(err, MD_ECORRUPT, "outbox entry is malformed");
    m->id = get_be64(k->mv_data);
    m->topic = (const char *)p;
    m->value = q;
    m->value_len = (size_t)(end - q);
    if (m->event_seq && m->value_len)
        return md_error_set(err, MD_ECORRUPT, "outbox event reference with a value");
    return MD_OK;
}

md_err_t md_txn_outbox_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_outbox_fn fn,
                            void *ctx, md_error_t *err)
{
    unsigned char k[8];
    MDB_cursor *c = NULL;
    be64(k, from);
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OUTBOX], &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor outbox");
    MDB_val key = {8, k}, val;
    md_err_t rc = MD_OK;
    uint64_t n = 0;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        md_outbox_msg_t m;
        if (limit && n++ == limit)
            break;
        if ((rc = decode_outbox(&key, &val, &m, err)) != MD_OK || (rc = fn(&m, ctx, err)) != MD_OK)
            break;
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan outbox");
    return rc;
}

md_err_t md_txn_outbox_del(md_txn_t *t, uint64_t id, md_error_t *err)
{
    unsigned char k[8];
    be64(k, id);
    MDB_val key = {8, k};
    int rc = mdb_del(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, NULL);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "delete outbox");
}

md_err_t md_txn_outbox_next(md_txn_t *t, uint64_t *next, md_error_t *err)
{
    md_err_t rc = load_outbox_next(t, err);
    if (rc == MD_OK)
        *next = t->outbox_next;
    return rc;
}

/* ---- intake records (md_store.h) --------------------------------------------------------- */

#define INTAKE_PART_LEN 32 /* partition(4) from(8) first(8) next(8) count(4) */

void md_intake_reset(md_intake_t *r, const char *topic)
{
    r->number = 0;
    r->kind = MD_INTAKE_BATCH;
    r->seq = 0;
    snprintf(r->name, sizeof r->name, "%s", topic);
    r->nparts = 0;
}

static md_intake_part_t *intake_part(md_intake_t *r, int32_t partition, int64_t from)
{
    for (size_t i = 0; i < r->nparts; i++)
        if (r->parts[i].partition == partition)
            return &r->parts[i];
    if (r->nparts == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 4;
        r->parts = md_realloc(r->parts, r->cap * sizeof *r->parts);
    }
    md_intake_part_t *p = &r->parts[r->nparts++];
    *p = (md_intake_part_t){.partition = partition, .from = from, .first = -1, .next = -1};
    return p;
}

void md_intake_add(md_intake_t *r, int32_t partition, int64_t offset, int64_t from)
{
    md_intake_part_t *p = intake_part(r, partition, from);
    if (p->count++ == 0)
        p->first = offset;
    if (offset + 1 > p->next)
        p->next = offset + 1;
}

void md_intake_release(md_intake_t *r)
{
    free(r->parts);
    memset(r, 0, sizeof *r);
}

static void intake_encode(const md_intake_t *r, md_buf_t *out)
{
    unsigned char h[1 + 8 + 1], n[4], part[INTAKE_PART_LEN];
    size_t nlen = strlen(r->name);
    h[0] = (unsigned char)r->kind;
    be64(h + 1, r->seq);
    h[9] = (unsigned char)nlen;
    md_buf_reset(out);
    md_buf_append(out, h, sizeof h);
    md_buf_append(out, r->name, nlen);
    be32(n, (uint32_t)r->nparts);
    md_buf_append(out, n, 4);
    for (size_t i = 0; i < r->nparts; i++) {
        const md_intake_part_t *p = &r->parts[i];
        be32(part, (uint32_t)p->partition);
        be64(part + 4, (uint64_t)p->from);
        be64(part + 12, (uint64_t)p->first);
        be64(part + 20, (uint64_t)p->next);
        be32(part + 28, p->count);
        md_buf_append(out, part, sizeof part);
    }
}

static uint32_t intake_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static md_err_t intake_decode(uint64_t number, const MDB_val *v, md_intake_t *r, md_error_t *err)
{
    const unsigned char *p = v->mv_data;
    size_t len = v->mv_size, nlen = len >= 10 ? p[9] : 0;
    if (len < 14 + nlen || (p[0] != MD_INTAKE_BASELINE && p[0] != MD_INTAKE_BATCH &&
                            p[0] != MD_INTAKE_CHECKPOINT))
        return md_error_set(err, MD_ECORRUPT, "intake record %" PRIu64 " does not decode", number);
    uint32_t nparts = intake_be32(p + 10 + nlen);
    if ((len - 14 - nlen) / INTAKE_PART_LEN != nparts || (len - 14 - nlen) % INTAKE_PART_LEN)
        return md_error_set(err, MD_ECORRUPT, "intake record %" PRIu64 " has a bad length",
                            number);
    r->number = number;
    r->kind = (md_intake_kind_t)p[0];
    r->seq = get_be64(p + 1);
    memcpy(r->name, p + 10, nlen);
    r->name[nlen] = '\0';
    r->nparts = 0;
    for (const unsigned char *q = p + 14 + nlen; nparts--; q += INTAKE_PART_LEN) {
        md_intake_part_t *pt = intake_part(r, (int32_t)intake_be32(q), (int64_t)get_be64(q + 4));
        pt->first = (int64_t)get_be64(q + 12);
        pt->next = (int64_t)get_be64(q + 20);
        pt->count = intake_be32(q + 28);
    }
    return MD_OK;
}

/* The number of the last intake record (*none when there is none). */
static md_err_t intake_last(md_txn_t *t, uint64_t *last, bool *none, md_error_t *err)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_INTAKE], &c);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (c)
        mdb_cursor_close(c);
    *none = mrc == MDB_NOTFOUND;
    if (*none)
        return MD_OK;
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "intake: last record");
    if (k.mv_size != 8)
        return md_error_set(err, MD_ECORRUPT, "an intake key of %zu bytes", k.mv_size);
    *last = get_be64(k.mv_data);
    return MD_OK;
}

static md_err_t intake_append(md_txn_t *t, md_intake_t *r, uint64_t number, md_error_t *err)
{
    unsigned char k[8];
    md_err_t rc = md_txn_head(t, &r->seq, NULL, err);
    if (rc != MD_OK)
        return rc;
    r->number = number;
    intake_encode(r, &t->rec);
    be64(k, number);
    return md_store_err(txn_put(t, MD_DB_INTAKE, k, 8, t->rec.p, t->rec.len, MDB_APPEND), err,
                        "put intake");
}

/* The baseline: the offsets of the batch's topic stored before it (its own
 * partitions as the `from` it began at). */
static md_err_t intake_baseline(md_txn_t *t, const md_intake_t *batch, md_error_t *err)
{
    md_intake_t b = {0};
    MDB_cursor *c = NULL;
    MDB_val k, v;
    size_t tlen = strlen(batch->name);
    md_err_t rc = MD_OK;
    md_intake_reset(&b, batch->name);
    b.kind = MD_INTAKE_BASELINE;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_OFFSETS], &c);
    for (mrc = mrc ? mrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != tlen + 5 || memcmp(k.mv_data, batch->name, tlen + 1) != 0)
            continue; /* another topic */
        if (v.mv_size != 8) {
            rc = md_error_set(err, MD_ECORRUPT, "offset of %zu bytes", v.mv_size);
            break;
        }
        int32_t part = (int32_t)intake_be32((const unsigned char *)k.mv_data + tlen + 1);
        int64_t next = (int64_t)get_be64(v.mv_data);
        for (size_t i = 0; i < batch->nparts; i++)
            if (batch->parts[i].partition == part)
                next = batch->parts[i].from; /* the batch stored over it */
        if (next == MD_INTAKE_NONE)
            continue;
        md_intake_part_t *p = intake_part(&b, part, next);
        p->first = p->next = next;
    }
    if (c)
        mdb_cursor_close(c);
    if (rc == MD_OK && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "intake: offsets scan");
    if (rc == MD_OK)
        rc = intake_append(t, &b, 0, err);
    md_intake_release(&b);
    return rc;
}

md_err_t md_txn_intake_put(md_txn_t *t, md_intake_t *r, md_error_t *err)
{
    uint64_t last = 0;
    bool none = true;
    if (r->kind != MD_INTAKE_BATCH || r->nparts == 0)
        return md_error_set(err, MD_EINVAL, "an intake batch record needs a partition");
    md_err_t rc = intake_last(t, &last, &none, err);
    if (rc == MD_OK && none)
        rc = intake_baseline(t, r, err);
    return rc == MD_OK ? intake_append(t, r, none ? 1 : last + 1, err) : rc;
}

md_err_t md_txn_intake_mark(md_txn_t *t, const char *replica, uint64_t seq, md_error_t *err)
{
    uint64_t last = 0;
    bool none = true;
    md_intake_t m = {0};
    md_err_t rc = intake_last(t, &last, &none, err);
    if (rc != MD_OK || none)
        return rc; /* no intake yet: the checkpoint is not covered */
    md_intake_reset(&m, replica);
    m.kind = MD_INTAKE_CHECKPOINT;
    rc = intake_append(t, &m, last + 1, err);
    if (rc == MD_OK)
        rc = m.seq == seq ? MD_OK
                          : md_error_set(err, MD_EINVAL, "checkpoint of seq %" PRIu64
                                         " is not the head %" PRIu64, seq, m.seq);
    md_intake_release(&m);
    return rc;
}

md_err_t md_txn_intake_scan(md_txn_t *t, md_intake_fn fn, void *ctx, md_error_t *err)
{
    md_intake_t r = {0};
    MDB_cursor *c = NULL;
    MDB_val k, v;
    md_err_t rc = MD_OK;
    if (t->s->no_intake)
        return MD_OK;
    int mrc = mdb_cursor_open(t->txn, t->s->dbi[MD_DB_INTAKE], &c);
    for (mrc = mrc ? mrc : mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        rc = k.mv_size == 8 ? intake_decode(get_be64(k.mv_data), &v, &r, err)
                            : md_error_set(err, MD_ECORRUPT, "an intake key of %zu bytes",
                                           k.mv_size);
        if (rc == MD_OK)
            rc = fn(&r, ctx, err);
    }
    if (c)
        mdb_cursor_close(c);
    md_intake_release(&r);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc != MD_OK)
        return rc;
    return mrc == MDB_NOTFOUND ? MD_OK : md_store_err(mrc, err, "intake scan");
}

/* ---- parked outbox entries ------------------------------------------------------------ */

/* The parked area's handle; MD_ENOTFOUND in a read-only store that has none. */
static md_err_t parked_dbi(md_txn_t *t, MDB_dbi *dbi, md_error_t *err)
{
    *dbi = t->s->dbi[MD_DB_OUTBOX_PARKED];
    return *dbi ? MD_OK : md_error_set(err, MD_ENOTFOUND, "no parked outbox entries");
}

md_err_t md_txn_outbox_park(md_txn_t *t, uint64_t id, const char *reason, md_error_t *err)
{
    unsigned char k[8];
    MDB_dbi dbi;
    md_err_t rc = parked_dbi(t, &dbi, err);
    if (rc != MD_OK)
        return rc;
    be64(k, id);
    MDB_val key = {8, k}, val, pval;
    int mrc = mdb_get(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, &val);
    if (mrc == MDB_NOTFOUND)
        return MD_OK; /* delivered, parked or retried already */
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "get outbox");
    /* reason '\0' then the entry as it was queued */
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, reason, strlen(reason) + 1);
    md_buf_append(&t->rec, val.mv_data, val.mv_size);
    pval = (MDB_val){t->rec.len, t->rec.p};
    mrc = mdb_put(t->txn, dbi, &key, &pval, 0);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_del(t->txn, t->s->dbi[MD_DB_OUTBOX], &key, NULL);
    return md_store_err(mrc, err, "park outbox entry");
}

/* Splits a parked record into its reason and its outbox entry. */
static md_err_t decode_parked(const MDB_val *k, const MDB_val *v, const char **reason,
                              md_outbox_msg_t *m, md_error_t *err)
{
    const unsigned char *nul = k->mv_size == 8 ? memchr(v->mv_data, 0, v->mv_size) : NULL;
    if (nul == NULL)
        return md_error_set(err, MD_ECORRUPT, "parked outbox entry is malformed");
    MDB_val entry = {v->mv_size - (size_t)(nul + 1 - (const unsigned char *)v->mv_data),
                     (void *)(nul + 1)};
    *reason = v->mv_data;
    return decode_outbox(k, &entry, m, err);
}

md_err_t md_txn_outbox_parked_scan(md_txn_t *t, md_parked_fn fn, void *ctx, md_error_t *err)
{
    MDB_dbi dbi;
    MDB_cursor *c = NULL;
    md_error_t ignored = {0};
    if (parked_dbi(t, &dbi, &ignored) != MD_OK)
        return MD_OK; /* nothing parked */
    int mrc = mdb_cursor_open(t->txn, dbi, &c);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "cursor parked outbox");
    MDB_val key, val;
    md_err_t rc = MD_OK;
    for (mrc = mdb_cursor_get(c, &key, &val, MDB_FIRST); mrc == MDB_SUCCESS && rc == MD_OK;
         mrc = mdb_cursor_get(c, &key, &val, MDB_NEXT)) {
        md_outbox_msg_t m;
        const char *reason = "";
        if ((rc = decode_parked(&key, &val, &reason, &m, err)) == MD_OK)
            rc = fn(&m, reason, ctx, err);
    }
    mdb_cursor_close(c);
    if (rc == MD_ESTOP)
        return MD_OK;
    if (rc == MD_OK && mrc != MDB_NOTFOUND)
        rc = md_store_err(mrc, err, "scan parked outbox");
    return rc;
}

/* Moves one parked record (key @p k) back to the end of the outbox. */
static md_err_t unpark_one(md_txn_t *t, MDB_dbi dbi, MDB_val *k, md_error_t *err)
{
    MDB_val v;
    unsigned char nk[8];
    int mrc = mdb_get(t->txn, dbi, k, &v);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "get parked outbox");
    const unsigned char *nul = memchr(v.mv_data, 0, v.mv_size);
    if (nul == NULL)
        return md_error_set(err, MD_ECORRUPT, "parked outbox entry is malformed");
    size_t skip = (size_t)(nul + 1 - (const unsigned char *)v.mv_data);
    md_err_t rc = load_outbox_next(t, err);
    if (rc != MD_OK)
        return rc;
    md_buf_reset(&t->rec);
    md_buf_append(&t->rec, nul + 1, v.mv_size - skip);
    be64(nk, t->outbox_next);
    mrc = txn_put(t, MD_DB_OUTBOX, nk, 8, t->rec.p, t->rec.len, MDB_APPEND);
    if (mrc == MDB_SUCCESS)
        mrc = mdb_del(t->txn, dbi, k, NULL);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "retry parked outbox entry");
    t->outbox_next++;
    t->outbox_dirty = true;
    return MD_OK;
}

md_err_t md_txn_outbox_unpark(md_txn_t *t, uint64_t id, uint64_t *moved, md_error_t *err)
{
    MDB_dbi dbi;
    unsigned char k[8];
    md_err_t rc = parked_dbi(t, &dbi, err);
    *moved = 0;
    if (rc != MD_OK)
        return rc;
    for (;;) {
        MDB_cursor *c = NULL;
        MDB_val key, val;
        int mrc = mdb_cursor_open(t->txn, dbi, &c);
        if (mrc != MDB_SUCCESS)
            return md_store_err(mrc, err, "cursor parked outbox");
        be64(k, id);
        key = (MDB_val){8, k};
        mrc = mdb_cursor_get(c, &key, &val, id ? MDB_SET_KEY : MDB_FIRST);
        if (mrc == MDB_SUCCESS)
            memcpy(k, key.mv_data, 8);
        mdb_cursor_close(c);
        if (mrc == MDB_NOTFOUND)
            return id && *moved == 0
                       ? md_error_set(err, MD_ENOTFOUND, "no parked outbox entry %llu",
                                      (unsigned long long)id)
                       : MD_OK;
        if (mrc != MDB_SUCCESS)
            return md_store_err(mrc, err, "scan parked outbox");
        key = (MDB_val){8, k};
        if ((rc = unpark_one(t, dbi, &key, err)) != MD_OK)
            return rc;
        ++*moved;
        if (id)
            return MD_OK;
    }
}

md_err_t md_txn_outbox_counts(md_txn_t *t, uint64_t *queued, uint64_t *parked, md_error_t *err)
{
    MDB_stat st;
    MDB_dbi dbi;
    md_error_t ignored = {0};
    int mrc = mdb_stat(t->txn, t->s->dbi[MD_DB_OUTBOX], &st);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "stat outbox");
    *queued = st.ms_entries;
    *parked = 0;
    if (parked_dbi(t, &dbi, &ignored) != MD_OK)
        return MD_OK;
    if ((mrc = mdb_stat(t->txn, dbi, &st)) != MDB_SUCCESS)
        return md_store_err(mrc, err, "stat parked outbox");
    *parked = st.ms_entries;
    return MD_OK;
}
