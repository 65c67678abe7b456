/*
 * store_guard.c - what the store checks before and while LMDB opens it: the
 * lock of the data directory, the truncation check of data.mdb, and the
 * store's format stamp and identity (meta 'format', 'store_id').
 *
 * Invariants:
 *   - one process per data directory holds '<dir>/marketd.lock' (flock, so the
 *     kernel drops it however the holder dies; the file is never unlinked);
 *   - data.mdb is never mapped when it is shorter than its newest meta page
 *     says (it would fault with SIGBUS): the meta is read before the size;
 *   - a store has a format stamp from its creation and a store id once it was
 *     opened for writing; neither changes afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store_int.h"

/* ---- the data file, checked before LMDB maps it -------------------------------- */

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
    memcpy(&psize, b + META_AT + 24, 4);        /* mm_dbs[FREE_DBI].md_pad */
    memcpy(&m->roots[0], b + META_AT + 64, 8);  /* mm_dbs[FREE_DBI].md_root */
    memcpy(&m->roots[1], b + META_AT + 112, 8); /* mm_dbs[MAIN_DBI].md_root */
    memcpy(&m->last_pg, b + META_AT + 120, 8);
    memcpy(&m->txnid, b + META_AT + 128, 8);
    m->psize = psize;
    return magic == META_MAGIC && psize >= 512 && (psize & (psize - 1)) == 0;
}

/* The newer of the two meta pages of @p fd (false: not an LMDB file LMDB
 * would accept either, so LMDB's own open reports it). */
bool md__store_newest_meta(int fd, file_meta_t *m)
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
md_err_t md__store_check_data_file(const char *path, md_error_t *err)
{
    struct stat st;
    file_meta_t m;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? MD_OK
                               : md_error_set(err, MD_EIO, "open '%s': %s", path, strerror(errno));
    md_err_t rc = MD_OK;
    /* The meta first, then the size: a writer of another process extends the
     * file before it writes the meta page that counts the new pages. */
    bool known = md__store_newest_meta(fd, &m);
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
md_err_t md__store_lock_dir(md_store_t *s, const char *dir, md_error_t *err)
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

/* ---- format and identity ------------------------------------------------------- */

static md_err_t put_meta_raw(md_store_t *s, MDB_txn *txn, const char *name, const void *v,
                             size_t len, md_error_t *err)
{
    MDB_val k = {strlen(name), (void *)name}, val = {len, (void *)v};
    return md_store_err(mdb_put(txn, s->dbi[MD_DB_META], &k, &val, 0), err, name);
}

/* A store is stamped with its format when it is created; a store without it
 * was not written by this program (or lost its meta): refuse it. */
md_err_t md__store_check_format(md_store_t *s, MDB_txn *txn, bool fresh, md_error_t *err)
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
                            "version of marketd (expected format %d)",
                            s->path, MD_STORE_FORMAT);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get 'format'");
    uint64_t format = v.mv_size == 8 ? get_be64(v.mv_data) : 0;
    if (format == 1 && s->read_only)
        return md_error_set(err, MD_EVERSION,
                            "store '%s' is in format 1 (this version reads format %d): open it "
                            "once with marketd or a writing marketctl command to convert it",
                            s->path, MD_STORE_FORMAT);
    if (format == 1) { /* the stream index in chunks: format 2 */
        unsigned char f[8];
        md_err_t mrc = md__store_migrate_index(s, txn, err);
        be64(f, MD_STORE_FORMAT);
        if (mrc == MD_OK)
            mrc = put_meta_raw(s, txn, "format", f, 8, err);
        s->converted = mrc == MD_OK;
        return mrc;
    }
    if (format != MD_STORE_FORMAT)
        return md_error_set(err, MD_EVERSION, "store format is not %d", MD_STORE_FORMAT);
    return MD_OK;
}

/*
 * The store's identity: 16 random bytes made once, when the store is created
 * (or first opened for writing by a version that did not make one), kept in
 * meta 'store_id' and shown as 32 hex digits. Read-only opens of a store
 * without one leave it empty.
 */
md_err_t md__store_load_id(md_store_t *s, MDB_txn *txn, md_error_t *err)
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
