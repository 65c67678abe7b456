/*
 * ctl_backup.c - `marketctl backup --out DIR`: a consistent hot copy of a
 * store. LMDB copies one read snapshot (mdb_env_copy2 with MDB_CP_COMPACT:
 * the pages in use, renumbered, free pages left out), so the copy holds the
 * events, state, outcomes, offsets, outbox and projections of one committed
 * transaction, whatever the daemon writes meanwhile; a daemon started on the
 * copy continues from its stored offsets (docs/reliability.md, "Backup").
 *
 * The projections' own environment (<data_dir>/proj) is copied FIRST, into
 * <out>/proj, then the log's: the copied log is never behind the copied
 * projections (their watermark is at most its head), and a daemon started on
 * the copy catches the projections up from their watermark.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ctl.h"

/* @p dir exists (created when missing, mode 0750) and holds no data.mdb. */
static md_err_t prepare_dir(const char *dir, md_error_t *err)
{
    char path[4096];
    struct stat st;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST)
        return md_error_set(err, MD_EIO, "mkdir '%s': %s", dir, strerror(errno));
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return md_error_set(err, MD_EIO, "'%s' is not a directory", dir);
    if ((size_t)snprintf(path, sizeof path, "%s/data.mdb", dir) >= sizeof path)
        return md_error_set(err, MD_EINVAL, "--out path too long");
    if (access(path, F_OK) == 0)
        return md_error_set(err, MD_EEXIST, "'%s' holds a store already", dir);
    return MD_OK;
}

static md_err_t put_identity(md_txn_t *t, void *ctx, md_error_t *err)
{
    (void)ctx;
    unsigned char raw[MD_STORE_ID_LEN / 2];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return md_error_set(err, MD_ESTORE, "store id: no random bytes");
    return md_txn_meta_put(t, "store_id", raw, sizeof raw, err);
}

/* --new-identity: the copy gets a random store identity of its own. */
static md_err_t new_identity(const char *dir, md_error_t *err)
{
    md_store_opts_t so = {.lock = true};
    md_store_t *s = NULL;
    md_err_t rc = md_store_open(dir, &so, &s, err);
    if (rc == MD_OK)
        rc = md_store_write(s, put_identity, NULL, err);
    md_store_free(s);
    return rc;
}

/* Opens the copy read-only and reads its head and identity (the copy is a store). */
static md_err_t copy_head(const char *dir, uint64_t *head, char hex[2 * MD_HASH_LEN + 1],
                          size_t *bytes, char id[MD_STORE_ID_LEN + 1], md_error_t *err)
{
    md_store_opts_t so = {.read_only = true};
    md_store_t *s = NULL;
    md_txn_t *t = NULL;
    unsigned char hash[MD_HASH_LEN];
    size_t map = 0;
    md_err_t rc = md_store_open(dir, &so, &s, err);
    if (rc == MD_OK)
        rc = md_store_read(s, &t, err);
    if (rc == MD_OK)
        rc = md_txn_head(t, head, hash, err);
    md_txn_end(t);
    if (rc == MD_OK)
        rc = md_store_usage(s, bytes, &map, err);
    if (rc == MD_OK)
        snprintf(id, MD_STORE_ID_LEN + 1, "%s", md_store_id(s));
    md_store_free(s);
    if (rc == MD_OK)
        md_hex(hash, MD_HASH_LEN, hex);
    return rc;
}

/* Copies <data_dir>/proj, when there is one, to <out_dir>/proj; *seq gets
 * the copied watermark (0 when none). */
static md_err_t copy_projections(const char *data_dir, const char *out_dir, uint64_t *seq,
                                 md_error_t *err)
{
    char src[4096], dst[4096];
    md_store_opts_t so = {.read_only = true};
    md_store_t *s = NULL;
    md_proj_t *p = NULL;
    md_txn_t *t = NULL;
    *seq = 0;
    if ((size_t)snprintf(src, sizeof src, "%s/proj/data.mdb", data_dir) >= sizeof src ||
        (size_t)snprintf(dst, sizeof dst, "%s/proj", out_dir) >= sizeof dst)
        return md_error_set(err, MD_EINVAL, "--out or --data-dir path too long");
    if (access(src, F_OK) != 0)
        return MD_OK; /* the projections live in the log's environment */
    snprintf(src, sizeof src, "%s/proj", data_dir);
    if (mkdir(dst, 0750) != 0 && errno != EEXIST)
        return md_error_set(err, MD_EIO, "mkdir '%s': %s", dst, strerror(errno));
    md_err_t rc = md_store_open(src, &so, &s, err);
    if (rc == MD_OK)
        rc = md_store_err(mdb_env_copy2(md_store_env(s), dst, MDB_CP_COMPACT), err,
                          "mdb_env_copy2 (projections)");
    md_store_free(s);
    s = NULL;
    if (rc == MD_OK && (rc = md_store_open(dst, &so, &s, err)) == MD_OK &&
        (rc = md_proj_open(s, &p, err)) == MD_OK && (rc = md_store_read(s, &t, err)) == MD_OK)
        rc = md_proj_seq(p, t, seq, err);
    md_txn_end(t);
    md_proj_free(p);
    md_store_free(s);
    return rc;
}

int ctl_backup(md_store_t *store, const char *data_dir, const char *out_dir, bool fresh_id,
               md_error_t *err)
{
    uint64_t pseq = 0;
    uint64_t head = 0;
    size_t bytes = 0;
    char hex[2 * MD_HASH_LEN + 1], id[MD_STORE_ID_LEN + 1] = "";
    if (out_dir == NULL) {
        md_error_set(err, MD_EINVAL, "usage: backup --out DIR");
        return 2;
    }
    if (prepare_dir(out_dir, err) != MD_OK ||
        copy_projections(data_dir, out_dir, &pseq, err) != MD_OK)
        return 1;
    int mrc = mdb_env_copy2(md_store_env(store), out_dir, MDB_CP_COMPACT);
    if (mrc != MDB_SUCCESS)
        return md_store_err(mrc, err, "mdb_env_copy2") != MD_OK;
    if (fresh_id && new_identity(out_dir, err) != MD_OK)
        return 1;
    if (copy_head(out_dir, &head, hex, &bytes, id, err) != MD_OK)
        return 1;
    json_t *j = json_pack("{s:b, s:s, s:I, s:s, s:I, s:s, s:I}", "ok", 1, "out", out_dir, "events",
                          (json_int_t)head, "head", hex, "bytes", (json_int_t)bytes, "store_id", id,
                          "projections_seq", (json_int_t)pseq);
    int rc = j ? json_dumpf(j, stdout, JSON_COMPACT) : -1;
    json_decref(j);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        md_error_set(err, MD_EIO, "write to stdout failed");
        return 1;
    }
    return 0;
}
