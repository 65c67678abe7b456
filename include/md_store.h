/*
 * md_store.h - the LMDB event store: one environment per data directory.
 *
 * Named databases (docs/architecture.md, "Store"):
 *   events    seq (8 bytes big-endian) -> prev_hash(32) | hash(32) | body
 *             appended with MDB_APPEND, never updated or deleted
 *   stream_chunks  stream '\0' chunk (4 bytes BE) -> the seqs (8 bytes BE each) of
 *             the stream's versions chunk * MD_STREAM_CHUNK + 1, + 2, ...: the
 *             stream index. Every chunk but a stream's last holds
 *             MD_STREAM_CHUNK seqs, the last 1 to MD_STREAM_CHUNK (store format
 *             2; format 1 kept a key per event in "streams", converted when a
 *             format 1 store is first opened for writing)
 *   outcomes  command_id -> result (opaque bytes, written by the engine)
 *   state     aggregate key -> aggregate bytes (opaque, owned by the rules)
 *   offsets   topic '\0' partition (4 bytes BE) -> next offset (8 bytes BE)
 *   outbox    id (8 bytes BE) -> topic '\0' key_len(4 BE) key hdr_len(4 BE) headers value,
 *             or, for a reference to an event: 0x01 seq(8 BE) topic '\0' key_len key
 *             hdr_len headers (no value: the publisher renders the event)
 *   meta      name -> value ("format", "head", "bootstrap", ...)
 *   intake    batch number (8 bytes BE) -> an intake record: what the consumer
 *             took from Kafka in one batch (see "intake records" below)
 * Other modules (projections) open more databases with md_store_dbi().
 *
 * Threads: one writer at a time (md_store_write is serialised by LMDB);
 * read transactions may be used from any thread (MDB_NOTLS) and see a
 * consistent snapshot while the writer appends.
 * Changing the map size - growing it on MDB_MAP_FULL, or adopting the size
 * another process (marketctl rebuild, a second opener) grew it to, which
 * LMDB reports as MDB_MAP_RESIZED - waits until no transaction of this
 * process (reader or writer) is open, on every path, as LMDB requires. So a
 * thread must end its read transactions before it calls md_store_write, and
 * must not begin a second read transaction while it holds one.
 * A resize that cannot be mapped is refused before LMDB drops its old map
 * (the write fails with MD_ESTORE, the map and every reader stay valid). If
 * LMDB fails anyway, the store is "broken": every later transaction fails
 * with MD_ESTORE and the reason (md_store_broken), never a fault.
 *
 * Files: data.mdb is checked against its meta pages before it is mapped: a
 * truncated file is refused (MD_ECORRUPT naming the file, its size and the
 * size its meta page needs) instead of faulting with SIGBUS.
 *
 * Durability: every committed write transaction is synced to disk before
 * md_store_write() returns (unless the store was opened with nosync, for
 * tests and benchmarks that say so, and for derived data that is flushed
 * later with md_store_sync: the projections' environment).
 *
 * Errors (every md_err_t function; a function's own list adds to these):
 *   MD_ESTORE     LMDB reported an error (the message names the call);
 *   MD_EMAPFULL   in a write transaction: the map is full (md_store_write
 *                 grows it and calls its function again).
 * Out of memory aborts (md_malloc). On an error the outputs are unspecified.
 *
 * Ownership: a pointer a read returns (event data and bodies, outcome, meta
 * and outbox bytes) borrows from the transaction and is valid until it ends
 * or, in a write transaction, until the next write to the same database.
 * Inputs are copied; nothing is kept after a call returns.
 */
#ifndef MD_STORE_H
#define MD_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "md_error.h"
#include "md_event.h"

#define MD_STORE_FORMAT 2
#define MD_STREAM_CHUNK 64 /* seqs per stream index chunk (format 2) */
#define MD_STORE_ID_LEN 32 /* hex digits of a store's identity */

typedef struct md_store md_store_t;
typedef struct md_txn md_txn_t;

typedef struct md_store_opts {
    size_t map_size; /* initial map size in bytes; 0 = 64 MiB */
    bool nosync;     /* MDB_NOSYNC: only for tests and benchmarks */
    bool read_only;  /* MDB_RDONLY: marketctl on a live store */
    /* Take the data directory's lock file '<dir>/marketd.lock' (an exclusive
     * flock holding the pid; the kernel releases it when the process dies):
     * a second holder is refused with MD_EEXIST naming the first's pid.
     * marketd sets it; marketctl does not, so it works beside the daemon. */
    bool lock;
} md_store_opts_t;

typedef enum md_db {
    MD_DB_EVENTS,
    MD_DB_STREAMS,
    MD_DB_OUTCOMES,
    MD_DB_STATE,
    MD_DB_OFFSETS,
    MD_DB_OUTBOX,
    MD_DB_META,
    MD_DB_INTAKE,        /* absent from a store written before it: see "intake records" */
    MD_DB_OUTBOX_PARKED, /* absent in a read-only store written before it existed */
    MD_DB_COUNT_
} md_db_t;

/**
 * @brief Opens (creating when missing, unless read_only) the store in @p dir.
 * @param opts may be NULL for defaults.
 * @param out receives a new handle owned by the caller (md_store_free).
 * A new store is stamped with MD_STORE_FORMAT and a random identity
 * (md_store_id); an existing store without a 'format' key is refused. A
 * format 1 store opened for writing has its stream index converted to
 * chunks and is stamped format 2, in the opening transaction (one pass over
 * the old index; all or nothing); opened read-only it is refused.
 * @returns MD_OK, MD_EIO (directory), MD_ESTORE (LMDB), MD_EVERSION (format
 *          other than MD_STORE_FORMAT, or none, or 1 read-only), MD_ECORRUPT
 *          (truncated data file; a format 1 index whose versions have a gap),
 *          MD_EEXIST (opts.lock: the directory is locked by another process).
 */
MD_MUST_CHECK
md_err_t md_store_open(const char *dir, const md_store_opts_t *opts, md_store_t **out,
                       md_error_t *err);

/** @brief Closes the store; NULL does nothing. No transaction may be open. */
void md_store_free(md_store_t *s);
/* The old name of md_store_free (one free verb: *_free), kept while branches written
 * against it merge; remove once none is left. */
static inline void md_store_close(md_store_t *s)
{
    md_store_free(s);
}

/**
 * @brief The store's identity: MD_STORE_ID_LEN hex digits made at random once,
 * when the store was created (borrowed; "" for a read-only open of a store
 * that has none yet). Tells two stores apart, e.g. in Kafka commit metadata.
 */
const char *md_store_id(const md_store_t *s);

/** @brief True when opening converted a format 1 store to format 2 (its
 * stream index into chunks); @p streams and @p events (may be NULL) receive
 * what the old index held. */
bool md_store_converted(const md_store_t *s, uint64_t *streams, uint64_t *events);

/** @brief True once a failed map resize left LMDB without a map (see above):
 *  every transaction fails from then on; the process should stop. Any thread. */
bool md_store_broken(md_store_t *s);

/* How many committed heads md_store_committed remembers. */
#define MD_STORE_HEADS 8

/* md_store_committed's answers. */
typedef enum md_committed {
    MD_COMMITTED_NOT_YET, /* no head at or past @p seq committed here yet */
    MD_COMMITTED_YES,     /* a transaction committed (and synced) with that head */
    MD_COMMITTED_NO       /* past @p seq without that head among the last
                             MD_STORE_HEADS (another head there, or too old) */
} md_committed_t;

/**
 * @brief Whether a write transaction of this process that appended events
 * committed with its head (last event) at @p seq with hash @p hash: answered
 * from the heads of the last MD_STORE_HEADS such commits, without a
 * transaction (no lock of the store's but a mutex of its own), so a thread
 * inside another environment's write transaction may ask. Any thread.
 * @param outbox_next on MD_COMMITTED_YES receives that transaction's next
 *        outbox id (every id below it was committed by then); may be NULL.
 */
md_committed_t md_store_committed(md_store_t *s, uint64_t seq,
                                  const unsigned char hash[MD_HASH_LEN], uint64_t *outbox_next);

/**
 * @brief Flushes every committed write transaction to disk (mdb_env_sync,
 * forced): for a store opened with nosync, whose commits reach the disk
 * only through the page cache until this call. Any thread; it may run
 * beside the writer (commits that race with it may or may not be covered).
 * @returns MD_OK (what was committed before the call is on disk),
 *          MD_EINVAL (read-only store), MD_ESTORE (LMDB, or broken).
 */
MD_MUST_CHECK
md_err_t md_store_sync(md_store_t *s, md_error_t *err);

/** @brief The LMDB environment (borrowed, valid until md_store_free), for
 * modules that keep their own dbs. Any thread. Never fails. */
MDB_env *md_store_env(md_store_t *s);

/**
 * @brief Opens (creating when missing) an extra named database.
 * Must be called before any transaction of another thread is running
 * (at start-up). @p flags are mdb_dbi_open flags (e.g. MDB_DUPSORT).
 * @returns MD_OK, MD_ENOTFOUND (read-only store without that database),
 *          MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_store_dbi(md_store_t *s, const char *name, unsigned flags, MDB_dbi *out,
                      md_error_t *err);

/* ---- transactions -------------------------------------------------------- */

/*
 * A write: fn is called with a fresh write transaction and may call the
 * md_txn_* functions; returning MD_OK commits (and syncs). When anything
 * (fn, or the commit) reports MD_EMAPFULL the transaction is aborted, the map
 * doubled and fn called again from scratch, so fn must rebuild all of its
 * outputs on each call. Any other failure aborts and is returned.
 */
typedef md_err_t (*md_write_fn)(md_txn_t *txn, void *ctx, md_error_t *err);

/**
 * @brief Runs @p fn in a write transaction and commits (see md_write_fn).
 * Threads: one writer at a time (LMDB serialises); the calling thread must
 * hold no read transaction of this store (the map cannot grow under it).
 * @returns MD_OK (committed and synced); whatever @p fn returned (aborted,
 *          nothing written); MD_EMAPFULL when the map cannot grow further;
 *          MD_ESTORE (begin or commit failed); MD_EINVAL on a read-only store.
 */
MD_MUST_CHECK
md_err_t md_store_write(md_store_t *s, md_write_fn fn, void *ctx, md_error_t *err);

/** @brief Begins a read-only snapshot, owned by the caller: end it with
 * md_txn_end(). Any thread (MDB_NOTLS); a thread may hold several.
 * @returns MD_OK or MD_ESTORE (e.g. MDB_READERS_FULL). */
MD_MUST_CHECK
md_err_t md_store_read(md_store_t *s, md_txn_t **out, md_error_t *err);
/** @brief Ends a read transaction; NULL does nothing. */
void md_txn_end(md_txn_t *t);

/** @brief The underlying LMDB transaction, a database handle and the store
 * (all borrowed, valid while @p t is). Never fail. */
MDB_txn *md_txn_mdb(md_txn_t *t);
MDB_dbi md_txn_dbi(md_txn_t *t, md_db_t db);
md_store_t *md_txn_store(md_txn_t *t);

/** @brief Maps an LMDB return code to md_err_t: MDB_SUCCESS -> MD_OK,
 * MDB_MAP_FULL -> MD_EMAPFULL, MDB_NOTFOUND -> MD_ENOTFOUND, any other ->
 * MD_ESTORE; sets @p err ("WHAT: LMDB's message") unless MD_OK. */
MD_MUST_CHECK
md_err_t md_store_err(int rc, md_error_t *err, const char *what);

/* ---- events ---------------------------------------------------------------- */

/**
 * @brief Appends one event in a write transaction.
 * In: stream, type, recorded_at, command_id/actor, data (a canonical map).
 * Out: seq, version, prev_hash and hash are filled in.
 * @returns MD_OK, MD_EINVAL (bad stream/type/data), MD_EMAPFULL, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_txn_append(md_txn_t *t, md_event_t *ev, md_error_t *err);

/** @brief The chain head: last seq (0 when empty) and its hash (@p hash may
 * be NULL; all zero when empty). @returns MD_OK, MD_ECORRUPT (bad meta
 * head), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_head(md_txn_t *t, uint64_t *seq, unsigned char hash[MD_HASH_LEN], md_error_t *err);

/** @brief Current version of @p stream (0 when it has no events).
 * @returns MD_OK, MD_EINVAL (stream too long), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_stream_version(md_txn_t *t, const char *stream, uint64_t *version, md_error_t *err);

/** @brief The stream index key of @p stream's chunk @p chunk (stream, a NUL,
 * the chunk number big-endian) in @p k; returns its length (strlen + 5). */
size_t md_stream_chunk_key(unsigned char k[MD_STREAM_MAX + 5], const char *stream, uint64_t chunk);

/**
 * @brief Takes the last event of @p stream, of version @p version, out of the
 * stream index (write transaction): for tools that cut a store's tail (the
 * tests' attackers), which delete the event themselves.
 * @returns MD_OK, MD_ENOTFOUND (@p version is not the stream's last),
 *          MD_EINVAL (stream name), MD_ECORRUPT (a malformed chunk).
 */
MD_MUST_CHECK
md_err_t md_txn_unindex_last(md_txn_t *t, const char *stream, uint64_t version, md_error_t *err);

/**
 * @brief Reads event @p seq; ev->data and *body borrow from the transaction.
 * @param body, body_len may be NULL.
 * @returns MD_OK, MD_ENOTFOUND, MD_ECORRUPT (undecodable record).
 */
MD_MUST_CHECK
md_err_t md_txn_event(md_txn_t *t, uint64_t seq, md_event_t *ev, const void **body,
                      size_t *body_len, md_error_t *err);

/*
 * Iteration. The callback gets the event (data and body borrowed until it
 * returns) and returns MD_OK to go on, MD_ESTOP to stop (not an error), or
 * an error, which is returned.
 */
typedef md_err_t (*md_event_fn)(const md_event_t *ev, const void *body, size_t body_len, void *ctx,
                                md_error_t *err);

/** @brief Events with seq >= from, at most @p limit (0 = no limit), in order.
 * @returns MD_OK (also when @p fn stopped with MD_ESTOP), what @p fn
 *          returned, MD_ECORRUPT (undecodable record), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_event_fn fn, void *ctx,
                     md_error_t *err);

/** @brief Events of @p stream with version >= from_version, at most @p limit
 * (0 = no limit), in order. @returns as md_txn_scan, and MD_EINVAL (stream
 * too long). */
MD_MUST_CHECK
md_err_t md_txn_scan_stream(md_txn_t *t, const char *stream, uint64_t from_version, uint64_t limit,
                            md_event_fn fn, void *ctx, md_error_t *err);

/* ---- command outcomes (idempotency) ------------------------------------------ */

/** @brief Looks up the recorded outcome of @p command_id (borrowed bytes).
 *  @returns MD_OK or MD_ENOTFOUND. */
MD_MUST_CHECK
md_err_t md_txn_outcome_get(md_txn_t *t, const char *command_id, const void **val, size_t *len,
                            md_error_t *err);
/** @brief Records the outcome of @p command_id (write transaction; bytes
 * copied; an existing outcome is replaced). @returns MD_OK, MD_EINVAL
 * (command_id empty or too long), MD_EMAPFULL, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_outcome_put(md_txn_t *t, const char *command_id, const void *val, size_t len,
                            md_error_t *err);

/* ---- consumed offsets ------------------------------------------------------ */

/** @brief Next offset to consume for topic/partition; MD_ENOTFOUND when none stored. */
MD_MUST_CHECK
md_err_t md_txn_offset_get(md_txn_t *t, const char *topic, int32_t partition, int64_t *next,
                           md_error_t *err);
/** @brief Stores the next offset to consume (write transaction).
 * @returns MD_OK, MD_EINVAL (topic too long), MD_EMAPFULL, MD_ESTORE.
 * (offset_get: MD_ENOTFOUND when none stored, MD_ECORRUPT, MD_EINVAL.) */
MD_MUST_CHECK
md_err_t md_txn_offset_put(md_txn_t *t, const char *topic, int32_t partition, int64_t next,
                           md_error_t *err);

/* A stored consumer offset: the next offset to consume of @p topic / @p partition
 * (borrowed until the callback returns). MD_OK goes on, MD_ESTOP stops. */
typedef md_err_t (*md_offset_fn)(const char *topic, int32_t partition, int64_t next, void *ctx,
                                 md_error_t *err);

/** @brief Visits every stored offset, by topic (bytes) then partition.
 * @returns MD_OK, the callback's error, MD_ECORRUPT (a record not topic, NUL,
 *          partition(4), next(8)), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_offset_scan(md_txn_t *t, md_offset_fn fn, void *ctx, md_error_t *err);

/* ---- intake records ---------------------------------------------------------
 *
 * The consumed offsets are not a function of the event log (an event does not
 * say which Kafka message it came from), so each batch also records what was
 * taken from Kafka, in the batch's own write transaction: one small record per
 * batch, outside the hash chain (docs/verify.md, "Offsets"). The database
 * "intake" maps a record number (8 bytes BE; 0, 1, 2, ... in commit order)
 * to a record, one of three kinds:
 *   'S' baseline   number 0, written with the store's first batch record: the
 *                  offsets stored before intake records existed (empty for a
 *                  store that had them from its first batch), each part with
 *                  from = first = next = that offset, count 0;
 *   'B' batch      per partition of the batch: from (the next offset the
 *                  consumer expected: the stored one it started from, or the
 *                  previous batch's next; MD_INTAKE_NONE when nothing was
 *                  stored), first (the offset of its first message: above
 *                  `from` only when the broker had no message in between, an
 *                  observed gap, e.g. a transaction marker or compaction),
 *                  next (after its last message: what the batch stored) and
 *                  count (messages);
 *   'C' checkpoint the transaction queued a signed checkpoint of seq `seq` by
 *                  replica `name` (its offsets are the state at this record).
 * Value: kind(1) seq(8 BE: the chain head in that transaction) name_len(1) name
 * (the topic of 'S'/'B', the replica of 'C') nparts(4 BE), then per part:
 * partition(4) from(8) first(8) next(8) count(4), all big-endian (offsets as
 * two's complement). One partition and "market.commands": 61 bytes a batch.
 * A read-only store without the database (written before it existed) has no
 * records: a scan visits none, and md_txn_dbi(MD_DB_INTAKE) is not a handle to use.
 */

#define MD_INTAKE_NONE (-1) /* from: no offset was stored (the consumer began at the log's start) */
#define MD_INTAKE_NAME_MAX 255

typedef enum md_intake_kind {
    MD_INTAKE_BASELINE = 'S',
    MD_INTAKE_BATCH = 'B',
    MD_INTAKE_CHECKPOINT = 'C',
} md_intake_kind_t;

typedef struct md_intake_part {
    int32_t partition;
    int64_t from, first, next;
    uint32_t count;
} md_intake_part_t;

typedef struct md_intake {
    uint64_t number; /* its key (set by put; read by scan) */
    md_intake_kind_t kind;
    uint64_t seq;                      /* the chain head when it was written (set by put) */
    char name[MD_INTAKE_NAME_MAX + 1]; /* topic, or replica for a checkpoint mark */
    md_intake_part_t *parts;           /* owned: md_intake_release */
    size_t nparts, cap;
} md_intake_t;

/** @brief Empties @p r (keeping its memory) as a batch record of @p topic
 * (truncated to MD_INTAKE_NAME_MAX). @p r must be zeroed before its first use. */
void md_intake_reset(md_intake_t *r, const char *topic);
/** @brief Adds one consumed message (messages of a partition in offset order);
 * @p from is the offset the consumer expected first on that partition (used
 * when the partition is new to @p r). */
void md_intake_add(md_intake_t *r, int32_t partition, int64_t offset, int64_t from);
/** @brief Frees what @p r owns and zeroes it. */
void md_intake_release(md_intake_t *r);

/** @brief Appends the batch record @p r (write transaction) with the next
 * number and the current head as its seq (both set in @p r). When the store
 * has no intake record yet, the baseline is written first: the offsets of
 * r->name stored before this batch (those of its partitions as their `from`).
 * @returns MD_OK, MD_EINVAL (not a batch, or no part), MD_ECORRUPT (a record
 *          or offset that does not decode), MD_EMAPFULL, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_intake_put(md_txn_t *t, md_intake_t *r, md_error_t *err);

/** @brief Records that this transaction queued @p replica's checkpoint of
 * @p seq (a 'C' record; nothing when the store has no intake record yet).
 * @returns as md_txn_intake_put. */
MD_MUST_CHECK
md_err_t md_txn_intake_mark(md_txn_t *t, const char *replica, uint64_t seq, md_error_t *err);

/* The record is borrowed (its parts reused) until the callback returns;
 * MD_OK goes on, MD_ESTOP stops (not an error), another error is returned. */
typedef md_err_t (*md_intake_fn)(const md_intake_t *r, void *ctx, md_error_t *err);

/** @brief Visits every intake record in number order.
 * @returns MD_OK, the callback's error, MD_ECORRUPT (naming the record number
 *          that does not decode), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_intake_scan(md_txn_t *t, md_intake_fn fn, void *ctx, md_error_t *err);

/* ---- outbox ---------------------------------------------------------------- */

typedef struct md_outbox_msg {
    uint64_t id;
    const char *topic; /* borrowed from the transaction */
    const void *key;
    size_t key_len;
    /* Kafka headers as name '\0' value '\0' pairs (NULL/0: none). */
    const void *headers;
    size_t headers_len;
    const void *value;
    size_t value_len;
    /* Non-zero: publish event event_seq of the log as its JSON
     * (md_event_json_append), rendered when it is sent; value is then empty.
     * The event is in the log already, so the outbox holds only the reference. */
    uint64_t event_seq;
} md_outbox_msg_t;

/** @brief Queues @p m (its id is ignored) for publication after commit;
 *  the assigned id goes to *id (may be NULL). Everything is copied.
 *  @returns MD_OK, MD_ECORRUPT (bad meta outbox_next), MD_EMAPFULL, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_outbox_put(md_txn_t *t, const md_outbox_msg_t *m, uint64_t *id, md_error_t *err);

typedef md_err_t (*md_outbox_fn)(const md_outbox_msg_t *m, void *ctx, md_error_t *err);

/** @brief Visits queued messages with id >= from in order, at most limit (0 = all);
 * @p m borrows from the transaction until @p fn returns.
 * @returns as md_txn_scan (MD_ECORRUPT: an entry that does not decode). */
MD_MUST_CHECK
md_err_t md_txn_outbox_scan(md_txn_t *t, uint64_t from, uint64_t limit, md_outbox_fn fn, void *ctx,
                            md_error_t *err);
/** @brief The id the next md_txn_outbox_put of @p t would assign (ids never
 *  repeat). @returns MD_OK, MD_ECORRUPT (bad meta outbox_next), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_outbox_next(md_txn_t *t, uint64_t *next, md_error_t *err);
/** @brief Removes a delivered message; a missing id is not an error. */
MD_MUST_CHECK
md_err_t md_txn_outbox_del(md_txn_t *t, uint64_t id, md_error_t *err);

/*
 * Parked entries: an entry the publisher cannot deliver for a permanent reason
 * (the broker refuses it: too large, invalid, not authorised) is moved aside,
 * with the reason, so that the entries behind it keep flowing. An operator
 * moves it back (md_txn_outbox_unpark) once the cause is fixed.
 */

/** @brief Moves queued entry @p id, with @p reason, to the parked area; a
 *  missing id (delivered, parked already) is not an error. Write transaction. */
md_err_t md_txn_outbox_park(md_txn_t *t, uint64_t id, const char *reason, md_error_t *err);

typedef md_err_t (*md_parked_fn)(const md_outbox_msg_t *m, const char *reason, void *ctx,
                                 md_error_t *err);
/** @brief Visits every parked entry in id order (MD_ESTOP from @p fn ends early). */
md_err_t md_txn_outbox_parked_scan(md_txn_t *t, md_parked_fn fn, void *ctx, md_error_t *err);

/** @brief Queues parked entry @p id (0: every one) again at the end of the outbox,
 *  under a new id; *moved gets the count. MD_ENOTFOUND: @p id is not parked. */
md_err_t md_txn_outbox_unpark(md_txn_t *t, uint64_t id, uint64_t *moved, md_error_t *err);

/** @brief Entries queued for publication and entries parked. */
md_err_t md_txn_outbox_counts(md_txn_t *t, uint64_t *queued, uint64_t *parked, md_error_t *err);

/* ---- metadata -------------------------------------------------------------- */

/** @brief Reads (borrowed bytes) or writes (write transaction, copied) the
 * meta value @p name. @returns MD_OK, MD_ENOTFOUND (get: no such name),
 * MD_EMAPFULL (put), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_txn_meta_get(md_txn_t *t, const char *name, const void **val, size_t *len,
                         md_error_t *err);
MD_MUST_CHECK
md_err_t md_txn_meta_put(md_txn_t *t, const char *name, const void *val, size_t len,
                         md_error_t *err);

/* Meta key of a `marketctl replay` output: the seq it was replayed until
 * (uint64_t, native order). Such a store has no rules state nor outcomes. */
#define MD_META_REPLAY_UNTIL "replay_until"

/** @brief Bytes used by the map (pages in use * page size) and the map size.
 * Any thread. @returns MD_OK or MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_store_usage(md_store_t *s, size_t *used, size_t *map_size, md_error_t *err);


/* ---- verification ------------------------------------------------------------- */

/* Progress of a long walk: done of total (total may be 0 when unknown). */
typedef void (*md_progress_fn)(uint64_t done, uint64_t total, void *ctx);

/**
 * @brief Recomputes the hash chain over every stored event.
 * Each record must decode canonically, seqs must run 1..head without a gap,
 * each prev_hash must equal the previous hash, each hash must equal
 * SHA-256(prev_hash || body), each stream index entry must point at an event
 * of that stream and version, and the meta head must match the last event.
 * @param count receives the number of events checked (may be NULL).
 * @param bad_seq receives the first bad seq on MD_ECORRUPT (may be NULL).
 * @param progress called every 65536 events (may be NULL).
 * @returns MD_OK, MD_ECORRUPT (message names the seq and what differs), MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_txn_verify_chain(md_txn_t *t, uint64_t *count, uint64_t *bad_seq,
                             md_progress_fn progress, void *pctx, md_error_t *err);
#endif
