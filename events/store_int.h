/*
 * store_int.h - what the files of the LMDB event store share, private to
 * events/ (the public API is include/md_store.h).
 *
 * The store is one concern per file:
 *   store.c          the environment: open/close, the map (growth, adoption,
 *                    failure), transactions and their grow lock, meta values
 *   store_guard.c    before and while LMDB opens: the data directory's lock,
 *                    the truncation check of data.mdb, the format and identity
 *   store_events.c   the chain head, the stream index, append and the scans
 *   store_outcomes.c the results of commands by command_id
 *   store_offsets.c  the consumed Kafka offsets
 *   store_intake.c   the intake records (what each consumed batch held)
 *   outbox.c         the outbox and its parked entries
 *
 * Invariants every file keeps:
 *   - a transaction is used under grow_lock held shared (begin_txn/end_txn in
 *     store.c); only store.c changes the map size, with it held exclusively;
 *   - the writer's md_txn_t (s->wtxn) is reused: t->rec is its scratch buffer,
 *     overwritten by the next write that needs it;
 *   - the meta values "head" and "outbox_next" live in the md_txn_t while it
 *     is open (head_*, outbox_*; *_dirty when changed) and are written once,
 *     before the commit (flush_meta in store.c); nothing else writes them.
 */
#ifndef MD_EVENTS_STORE_INT_H
#define MD_EVENTS_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

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
    bool converted; /* opening converted a format 1 store (store_migrate.c) */
    uint64_t migrated_streams, migrated_events;
    struct md_txn *wtxn; /* the writer's reusable transaction state */
    int lock_fd;         /* the data directory's lock file (opts.lock), or -1 */
    char path[4096];     /* the data file, for messages */
    char id[MD_STORE_ID_LEN + 1];
    /* Set (under grow_lock held exclusively) when LMDB lost its map in a
     * failed resize: no transaction may begin after that (it would fault). */
    _Atomic bool broken;
    char broken_msg[4608];
    /* The heads of the last write transactions of this process that appended
     * and committed (md_store_committed), newest at heads[(nheads - 1) % N]. */
    pthread_mutex_t heads_lock;
    struct {
        uint64_t seq;
        unsigned char hash[MD_HASH_LEN];
        uint64_t outbox_next; /* the transaction's next outbox id */
    } heads[MD_STORE_HEADS];
    uint64_t nheads;
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
    bool appended;       /* the write txn appended events (md_store_committed) */
    MDB_cursor *streams; /* the write txn's cursor on the stream index, opened once */
    md_buf_t rec;        /* scratch: record = prev_hash | hash | body */
    /* The write txn's stream versions, as read or appended in it (a hash
     * table over names kept in sv_names; emptied when a write txn begins). */
    struct sv_ent *sv;
    size_t sv_cap, sv_n;
    md_buf_t sv_names;
    /* The seqs appended to the streams kept in sv and not yet in the index
     * (each entry: seq, then the 1-based place of the stream's previous one,
     * 0 for none): written, a chunk per stream, by md__si_flush. */
    md_buf_t si;
    md_buf_t si_scratch; /* md__si_flush's sorted names and chunk */
};

/* Empties the write txn's stream versions (store_events.c); _free releases them. */
void md__sv_reset(md_txn_t *t);
void md__sv_free(md_txn_t *t);

/* Writes the seqs the write txn appended into the stream index (its chunks);
 * before the commit (store.c) and before the index is read in the txn. */
md_err_t md__si_flush(md_txn_t *t, md_error_t *err);

/* Converts a format 1 stream index (a key per event, in the database
 * "streams") into format 2's chunks and drops it (store_migrate.c). */
md_err_t md__store_migrate_index(md_store_t *s, MDB_txn *txn, md_error_t *err);

/* ---- byte order (keys and records are big-endian) -------------------------- */

static inline void be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline uint64_t get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static inline void be32(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

static inline uint32_t get_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A stream index chunk's value: 1..MD_STREAM_CHUNK seqs of 8 bytes. */
static inline bool chunk_sound(const MDB_val *v)
{
    return v->mv_size >= 8 && v->mv_size <= 8 * MD_STREAM_CHUNK && v->mv_size % 8 == 0;
}

/* ---- one key of one of the store's databases, in a transaction -------------- */

static inline int txn_get(md_txn_t *t, md_db_t db, const void *k, size_t klen, MDB_val *v)
{
    MDB_val key = {klen, (void *)k};
    return mdb_get(t->txn, t->s->dbi[db], &key, v);
}

static inline int txn_put(md_txn_t *t, md_db_t db, const void *k, size_t klen, const void *v,
                          size_t vlen, unsigned flags)
{
    MDB_val key = {klen, (void *)k}, val = {vlen, (void *)v};
    return mdb_put(t->txn, t->s->dbi[db], &key, &val, flags);
}

/* ---- store_guard.c -------------------------------------------------------------- */

/* What a meta page of an LMDB 0.9 data file says (lmdb's MDB_meta, 64-bit). */
typedef struct file_meta {
    uint64_t psize, last_pg, txnid, mapsize;
    uint64_t roots[2]; /* root pages of LMDB's free and main databases (~0: empty) */
} file_meta_t;

/* The newer of the two meta pages of @p fd (false: not an LMDB file LMDB
 * would accept either, so LMDB's own open reports it). */
bool md__store_newest_meta(int fd, file_meta_t *m);

/* MD_OK when @p path is missing or at least as long as its meta page says;
 * MD_ECORRUPT (truncated), MD_EIO. */
MD_MUST_CHECK
md_err_t md__store_check_data_file(const char *path, md_error_t *err);

/* Takes '<dir>/marketd.lock' for @p s (s->lock_fd); MD_EEXIST when another
 * process holds it, MD_EIO. */
MD_MUST_CHECK
md_err_t md__store_lock_dir(md_store_t *s, const char *dir, md_error_t *err);

/* Checks (or, in a @p fresh writable store, stamps) the store format:
 * MD_EVERSION, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md__store_check_format(md_store_t *s, MDB_txn *txn, bool fresh, md_error_t *err);

/* Loads (or makes, in a writable store) the store id into s->id:
 * MD_ECORRUPT, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md__store_load_id(md_store_t *s, MDB_txn *txn, md_error_t *err);

#endif
