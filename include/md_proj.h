/*
 * md_proj.h - read projections built from the events (docs/architecture.md,
 * "projections/"; docs/projections.md describes every record, key and field).
 *
 * Projections and their LMDB databases (opened with md_store_dbi):
 *   orders    p_orders (order id -> order), p_order_idx (by buyer, provider,
 *             status, placement day)
 *   accounts  p_accounts (member id -> account), p_account_idx (sanctions in
 *             force, stores, licences of a member)
 *   audit     p_audit (subject id, seq, kind -> entry), p_audit_actor (actor, seq)
 *   sales     p_sales (provider, UTC day -> counters), p_rejections (UTC
 *             day, rejection code -> count)
 *   records   p_records (stores, products, complaints, sanctions, vouchers)
 * plus p_meta (the last applied seq and the layout format), outside any digest.
 *
 * Environments (docs/projections.md, "Their own environment"): a data
 * directory keeps its projections in an LMDB environment of their own,
 * <data_dir>/proj (md_proj_open_dir), applied after the event log's commit by
 * the daemon's projector thread (md_proj_advance), from read snapshots of the
 * committed log, in log order: p_meta "seq" (the watermark) is committed with
 * the records and is never ahead of the log. A reader may see the log ahead of
 * the projections; md_proj_wait waits, bounded, for a seq. A store written
 * before (layout format 6, projections inside the log's environment) is
 * migrated on its first writable open: rebuilt into <data_dir>/proj from the
 * log, then its old p_* databases are dropped. A replay's output
 * (md_proj_replay) and verify's temporary store keep both in one environment
 * (md_proj_open), which every function here also accepts.
 *
 * Consistency inside one environment (md_proj_open): the engine may call
 * md_proj_apply for every appended event inside the batch's write
 * transaction (md_proj_event_hook). A rebuild replays the event log into
 * empty databases; md_proj_verify compares the live databases with a rebuild
 * by a SHA-256 digest per projection.
 *
 * Transactions: a query takes @p t of either environment. Given a
 * transaction of the log, it reads a snapshot of the projections begun in
 * the call (or the one md_proj_pin holds); audit rows whose event the log
 * snapshot does not hold yet are left out.
 *
 * Values are compact fixed-layout C records (native byte order, as the rules'
 * state); JSON is produced only by the query functions.
 *
 * Threads: a md_proj_t holds only database handles and scratch space used by
 * md_proj_apply, so apply is for the writer thread; queries only read their
 * transaction and may run on any thread with its own read transaction.
 */
#ifndef MD_PROJ_H
#define MD_PROJ_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_error.h"
#include "md_event.h"
#include "md_store.h"

typedef struct md_proj md_proj_t;

typedef enum md_proj_id {
    MD_PROJ_ORDERS,
    MD_PROJ_ACCOUNTS,
    MD_PROJ_AUDIT,
    MD_PROJ_SALES,
    MD_PROJ_RECORDS,
    MD_PROJ_COUNT_
} md_proj_id_t;

/** @brief "orders", "accounts", "audit", "sales", "records"; "" when invalid. */
const char *md_proj_name(md_proj_id_t id);

/* ---- lifecycle ------------------------------------------------------------ */

/**
 * @brief Opens the projection databases of @p store (creating them unless the
 * store is read-only). On a writable store whose projections are behind the
 * event log (a store written before projections existed) or of another
 * layout format, the missing events are applied, or everything is rebuilt,
 * in one write transaction before returning.
 * @param store borrowed; must outlive the handle.
 * @param out receives a new handle owned by the caller (md_proj_free).
 * @locality at start-up, before other threads run transactions (md_store_dbi).
 * @returns MD_OK; MD_ENOTFOUND on a read-only store that has no projections
 *          (run `marketctl rebuild`); MD_ESTORE, MD_EMAPFULL, MD_ECORRUPT.
 */
MD_MUST_CHECK
md_err_t md_proj_open(md_store_t *store, md_proj_t **out, md_error_t *err);

/**
 * @brief Opens the projections of the data directory @p data_dir whose event
 * log is @p log: the environment <data_dir>/proj (created, with its catch-up
 * from the watermark or a rebuild, unless @p log is read-only), migrating a
 * store of the old layout (see the top of this file). A read-only @p log
 * without <data_dir>/proj falls back to md_proj_open(log) (a replay's output,
 * a store not yet migrated).
 * @param so the options @p log was opened with (read_only, nosync; lock and
 *        map_size are not used: the data directory's lock covers both).
 * @param out receives a new handle owned by the caller (md_proj_free, which
 *        closes the environment it opened).
 * A marker of un-synced commits (see "Lazy sync" below) of another boot:
 * discarded and rebuilt (writable), refused (read-only).
 * @locality at start-up, before other threads run transactions.
 * @returns as md_proj_open, and MD_EIO (the directory, the marker),
 *          MD_ECORRUPT (read-only: un-synced commits of another boot).
 */
MD_MUST_CHECK
md_err_t md_proj_open_dir(md_store_t *log, const char *data_dir, const md_store_opts_t *so,
                          md_proj_t **out, md_error_t *err);

/*
 * Lazy sync (the projector's mode; docs/projections.md, "Their own
 * environment", Durability): the projections are derived from the synced
 * event log, so their commits need not wait for the disk. After
 * md_proj_lazy_sync, md_proj_advance commits without fsync; md_proj_flush
 * (or md_proj_sync and md_proj_unmark, on another thread) writes them to
 * disk. Before the first such
 * commit after a flush, the marker <data_dir>/proj/unsynced is written and
 * synced (with its directory), holding the kernel's boot id
 * (/proc/sys/kernel/random/boot_id); a successful flush removes it. At
 * md_proj_open_dir, a marker of another boot means the machine stopped with
 * commits that never reached the disk (LMDB may be torn, and has no
 * checksums): a writable open discards the environment and rebuilds it from
 * the log (saying so on stderr); a read-only open refuses it (MD_ECORRUPT:
 * run marketd or `marketctl rebuild`). A marker of this boot means only the
 * process died: the page cache holds every commit, the environment is kept
 * and caught up from its watermark.
 * Tests: MARKETD_TEST_BOOT_ID=ID replaces the kernel's boot id (read only
 * when the marker is written or checked). Never set it in production.
 */

/**
 * @brief Switches the projections' own environment to lazy sync (above).
 * Does nothing with one environment, or when it was opened nosync (the log
 * is nosync too: nothing is synced, nothing to mark).
 * @locality the projector's thread (or before it starts), no transaction of
 *           this process open in the projections' environment.
 * @returns MD_OK, MD_EINVAL (read-only), MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_lazy_sync(md_proj_t *p, md_error_t *err);

/** @brief True while commits may not be on disk yet (the marker exists).
 *  Same threading as md_proj_unmark. */
bool md_proj_unsynced(const md_proj_t *p);

/**
 * @brief Writes the un-synced commits to disk (md_proj_sync), then removes
 * the marker (md_proj_unmark). Nothing to do (not lazy, or nothing since the
 * last flush): MD_OK.
 * @locality the thread that calls md_proj_advance, between its calls.
 * @returns MD_OK, MD_ESTORE (the marker stays), MD_EIO (the marker's removal).
 */
MD_MUST_CHECK
md_err_t md_proj_flush(md_proj_t *p, md_error_t *err);

/**
 * @brief The two halves of md_proj_flush, for a flush off the applying
 * thread: md_proj_sync writes what was committed before the call to disk
 * (md_store_sync; any thread, also while md_proj_advance commits; nothing
 * when not lazy). md_proj_unmark removes the marker; call it only when a
 * md_proj_sync begun after the last commit ended succeeded, and never while
 * md_proj_advance runs (the caller serialises them).
 * @returns MD_OK, MD_ESTORE (sync), MD_EIO (the marker's removal).
 */
MD_MUST_CHECK
md_err_t md_proj_sync(md_proj_t *p, md_error_t *err);
MD_MUST_CHECK
md_err_t md_proj_unmark(md_proj_t *p, md_error_t *err);

/** @brief The projections' environment (borrowed): the log's own store when
 * both are one environment. Any thread. */
md_store_t *md_proj_store(md_proj_t *p);

/** @brief The event log the projections are derived from (borrowed). Any thread. */
md_store_t *md_proj_log(md_proj_t *p);

/** @brief True when the projections have an environment of their own. */
bool md_proj_split(const md_proj_t *p);

/** @brief What the open's catch-up applied: returns the seq it caught up to
 * (0: the projections were up to date) and sets *from_seq (may be NULL) to
 * the watermark it started from (0 also for a rebuild). After a crash between
 * the log's commit and the projections', from_seq < the returned seq. */
uint64_t md_proj_caught_up(const md_proj_t *p, uint64_t *from_seq);

/**
 * @brief Begins a read snapshot of the projections that later queries given
 * a transaction of the log read (until md_proj_free). Begin the log's
 * transaction after it: the log's snapshot then holds every event the
 * projections' does. For single-threaded tools (marketctl).
 * @returns MD_OK (also with one environment: nothing to pin), MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_pin(md_proj_t *p, md_error_t *err);

/**
 * @brief Applies committed events beyond the watermark, at most
 * @p max_events (0: no bound), in one write transaction of the
 * projections' environment (bulk mode: records written once, sorted, with
 * meta "seq"). Reads the events from a read snapshot of the log.
 * @param seq receives the watermark after the call; @p head the log's head
 *        and @p outbox_next its next outbox id in the snapshot that was read
 *        (any may be NULL).
 * @locality one thread at a time (the projector); it must hold no read
 *           transaction of the projections' environment.
 * @returns MD_OK, MD_EINVAL (one environment, or read-only), MD_ECORRUPT,
 *          MD_EMAPFULL, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_advance(md_proj_t *p, uint64_t max_events, uint64_t *seq, uint64_t *head,
                         uint64_t *outbox_next, md_error_t *err);

/* md_proj_apply_staged's wait. With @p held false, the log does not hold the
 * staged events yet: return MD_OK once it may hold them (look again), an
 * error to give up. With @p held true (once), it does: the transaction is
 * about to commit (after the marker of un-synced commits, md_proj_lazy_sync),
 * so a caller that serialises commits with md_proj_unmark counts it now. An
 * error aborts the projections' transaction and is returned. */
typedef md_err_t (*md_proj_wait_fn)(void *ctx, bool held, md_error_t *err);

/**
 * @brief The projector's head start: applies @p n events handed over by the
 * writer before its batch committed (consecutive seqs, the first one past the
 * watermark) in one write transaction of the projections' environment, as
 * md_proj_advance would from the log (bulk mode, meta "seq"), and commits only
 * once the log holds the same events (its event at the last staged seq has the
 * staged hash; the chain makes the earlier ones the same too), calling
 * @p wait until it does: the watermark is never ahead of the committed log.
 * @param evs borrowed; their data is read, nothing is kept.
 * @param outbox_next on MD_OK receives the next outbox id of the log's commit
 *        that holds them (the gate's bound: md_store_committed); may be NULL.
 * @locality as md_proj_advance (the projector's thread).
 * @returns MD_OK (the watermark is now evs[n-1].seq); MD_EINVAL (no events,
 *          seqs not consecutive, one environment); MD_ENOTFOUND (the first
 *          event is not the one after the watermark, or the log holds other
 *          events at those seqs); what @p wait returned; as md_proj_advance otherwise. On any error
 *          nothing was committed.
 */
MD_MUST_CHECK
md_err_t md_proj_apply_staged(md_proj_t *p, const md_event_t *evs, size_t n, md_proj_wait_fn wait,
                              void *ctx, uint64_t *outbox_next, md_error_t *err);

/**
 * @brief Waits until the projections' watermark reaches @p seq, at most
 * @p timeout_ms (polls meta "seq" every few ms; works from another process).
 * @param reached receives the last watermark seen (may be NULL).
 * @locality any thread holding no read transaction of the projections.
 * @returns MD_OK, MD_ETIMEDOUT, MD_ESTORE, MD_ECORRUPT.
 */
MD_MUST_CHECK
md_err_t md_proj_wait(md_proj_t *p, uint64_t seq, long timeout_ms, uint64_t *reached,
                      md_error_t *err);

/** @brief Frees the handle (the databases stay; an environment it opened is
 * closed, a pinned snapshot ended); NULL does nothing. */
void md_proj_free(md_proj_t *p);

/**
 * @brief The layout format of the projection records this build writes and
 * reads (p_meta "format"); a store of another format is rebuilt on open.
 */
int md_proj_layout_format(void);

/**
 * @brief md_proj_apply in the shape of an engine event hook
 * (md_event_hook_fn): the process registers it with
 * `md_engine_add_hook(engine, md_proj_event_hook, proj, err)`, so projections
 * are updated in each batch's write transaction. A read model never registers
 * itself: the daemon (daemon/daemon.c) and offline mode (daemon/offline.c)
 * wire it, and free the handle after the engine.
 * @param proj the md_proj_t (borrowed; must outlive the engine).
 * @returns as md_proj_apply.
 */
MD_MUST_CHECK
md_err_t md_proj_event_hook(md_txn_t *txn, const md_event_t *ev, void *proj, md_error_t *err);
/**
 * @brief The engine's batch hooks (md_engine_add_batch_hooks, in the shape of
 * md_batch_hook_fn), registered beside md_proj_event_hook: between begin and
 * end the batch's events are applied in bulk mode (records read once, written
 * once per batch, sorted by key, meta "seq" once), all in the batch's write
 * transaction, so readers still see events and projections together. A begin
 * after a batch that did not end drops what that batch held. Without them,
 * every event is written through as it is applied.
 * @param proj the md_proj_t (borrowed; must outlive the engine).
 * @returns MD_OK, MD_EMAPFULL, MD_ECORRUPT, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_batch_begin(md_txn_t *txn, void *proj, md_error_t *err);
/** @brief See md_proj_batch_begin: writes what the batch's events changed. */
MD_MUST_CHECK
md_err_t md_proj_batch_end(md_txn_t *txn, void *proj, md_error_t *err);

/**
 * @brief Applies one appended event to every projection in write txn @p t.
 * Idempotent by seq: an event at or below the last applied seq is skipped; a
 * gap (events appended without the hook) is first filled from the log.
 * @param ev borrowed; its data is read, nothing is kept.
 * @returns MD_OK, MD_EINVAL (read transaction), MD_ECODEC (data not a map),
 *          MD_ECORRUPT (a stored record of another layout), MD_EMAPFULL, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_apply(md_proj_t *p, md_txn_t *t, const md_event_t *ev, md_error_t *err);

/** @brief The last seq applied to the projections read in @p t (0: none).
 * @returns MD_OK, MD_ECORRUPT (a meta value of another size), MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_proj_seq(md_proj_t *p, md_txn_t *t, uint64_t *seq, md_error_t *err);

/* ---- queries (read transaction; JSON only here) --------------------------- */

/*
 * A row callback: @p row is borrowed (valid until the callback returns; take
 * a reference with json_incref to keep it). Return MD_OK to go on, MD_ESTOP to
 * stop early (not an error), or an error, which the query returns.
 */
typedef md_err_t (*md_proj_row_fn)(json_t *row, void *ctx, md_error_t *err);

#define MD_PROJ_CURSOR_MAX 1040 /* hex of the longest index key, plus NUL */

/*
 * Paging of list queries. limit 0 = no limit. cursor NULL or "" = from the
 * start; otherwise the `next` of the previous page. After the query, next is
 * "" when the list is exhausted, else the opaque cursor of the following page.
 */
typedef struct md_proj_page {
    uint64_t limit;
    const char *cursor;
    char next[MD_PROJ_CURSOR_MAX];
} md_proj_page_t;

/**
 * @brief One record as a new JSON object (owned by the caller).
 * @param kind "order", "account", "store", "product", "complaint", "sanction"
 *        or "voucher".
 * @param as_of_ms the time against which expiring sanctions are judged
 *        ("in_effect", store "open").
 * @returns MD_OK, MD_ENOTFOUND (no such object), MD_EINVAL (unknown kind),
 *          MD_ECORRUPT, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_get(md_proj_t *p, md_txn_t *t, const char *kind, const char *id, int64_t as_of_ms,
                     json_t **out, md_error_t *err);

/* Filters: NULL = any. With several, the first index of buyer, provider, day,
 * status is scanned and the others filter; rows come in placement order. */
typedef struct md_proj_order_filter {
    const char *buyer, *provider, *status, *day; /* day: YYYY-MM-DD, UTC */
} md_proj_order_filter_t;

/** @brief Orders as JSON objects (the `get order` shape), one per callback.
 *  @returns MD_OK, MD_EINVAL (bad cursor), the callback's error, MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_proj_orders(md_proj_t *p, md_txn_t *t, const md_proj_order_filter_t *f,
                        md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err);

/* subject: an id ("bob") or kind:id ("member:bob"); actor: a member id.
 * At least one is required; with both, the subject index is scanned. */
typedef struct md_proj_audit_filter {
    const char *subject, *actor;
} md_proj_audit_filter_t;

/** @brief Audit entries in seq order: {seq, recorded_at, action, clause, actor,
 *  subject, subject_kind, role, stream, command_id} (+ message for rejections).
 *  @returns MD_OK, MD_EINVAL (no filter, bad cursor), the callback's error. */
MD_MUST_CHECK
md_err_t md_proj_audit(md_proj_t *p, md_txn_t *t, const md_proj_audit_filter_t *f,
                       md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err);

/* provider NULL = every provider; from/to: inclusive YYYY-MM-DD bounds or NULL. */
typedef struct md_proj_sales_filter {
    const char *provider, *from_day, *to_day;
} md_proj_sales_filter_t;

/** @brief Sales rows {provider, day, orders, completed, cancelled, refunded,
 *  closed, gross, net, refunded_amount}, by provider then day.
 *  @returns MD_OK, MD_EINVAL (bad cursor), MD_ECORRUPT,
 *           MD_ESTORE, the callback's error. */
MD_MUST_CHECK
md_err_t md_proj_sales(md_proj_t *p, md_txn_t *t, const md_proj_sales_filter_t *f,
                       md_proj_page_t *page, md_proj_row_fn fn, void *ctx, md_error_t *err);

/* ---- summaries (summary.c; docs/projections.md "Summaries") --------------- */

typedef enum md_proj_summary_kind {
    MD_SUMMARY_ORDER_STATUS,   /* {provider, status, orders} */
    MD_SUMMARY_PRODUCTS,       /* {product_id, category_id, provider, orders, units, gross,
                                *  paid, refunded, revenue}; revenue = paid - refunded */
    MD_SUMMARY_CATEGORIES,     /* {category_id, orders, units, gross, paid, refunded, revenue} */
    MD_SUMMARY_TOP_PRODUCTS,   /* products by revenue, highest first, at most top */
    MD_SUMMARY_PROVIDER_RATES, /* {provider, orders, refunded, disputed, refund_rate,
                                *  dispute_rate} */
    MD_SUMMARY_REJECTIONS,     /* {day, code, count} */
    MD_SUMMARY_COUNT_
} md_proj_summary_kind_t;

/* All but rejections cover the orders placed on days from_day..to_day
 * (required, inclusive, at most 366 days), of one provider when set;
 * rejections: days from..to, either may be NULL. */
typedef struct md_proj_summary_q {
    md_proj_summary_kind_t kind;
    const char *provider, *from_day, *to_day;
    uint64_t top; /* top-products: at most this many (0: all) */
} md_proj_summary_q_t;

/** @brief The kind named "order-status", "products", "categories",
 *  "top-products", "provider-rates" or "rejections"; false otherwise. */
bool md_proj_summary_kind(const char *name, md_proj_summary_kind_t *out);

/** @brief The rows of a summary, one per callback, in group order.
 *  @returns MD_OK, MD_EINVAL (days missing, not dates, reversed or too far
 *           apart), MD_ECORRUPT, MD_ESTORE, the callback's error. */
MD_MUST_CHECK
md_err_t md_proj_summary(md_proj_t *p, md_txn_t *t, const md_proj_summary_q_t *q, md_proj_row_fn fn,
                         void *ctx, md_error_t *err);

/** @brief {seq, format, projections: {name: {entries, bytes}}} as a new
 * object, owned by the caller (json_decref). @returns MD_OK, MD_ECORRUPT,
 * MD_ESTORE (then *out is not set). */
MD_MUST_CHECK
md_err_t md_proj_stats(md_proj_t *p, md_txn_t *t, json_t **out, md_error_t *err);

/* ---- rebuild, digests, verification, point in time ------------------------ */

/**
 * @brief Drops every projection database and replays the whole event log
 * into them, in one write transaction (readers see the old projections until
 * it commits).
 * @param progress called every 65536 events (may be NULL).
 * @param events receives the number of events replayed (may be NULL).
 * @locality the writer; the store must be writable.
 * @returns MD_OK, MD_EINVAL (read-only store), MD_ESTORE, MD_ECORRUPT.
 */
MD_MUST_CHECK
md_err_t md_proj_rebuild(md_proj_t *p, md_progress_fn progress, void *pctx, uint64_t *events,
                         md_error_t *err);

/* SHA-256 over the sorted key/value pairs of each projection's databases:
 * for each database in a fixed order, for each pair, the 4-byte big-endian
 * key length, the key, the 4-byte value length, the value. */
typedef struct md_proj_digest {
    unsigned char sha[MD_PROJ_COUNT_][MD_HASH_LEN];
    uint64_t entries[MD_PROJ_COUNT_];
} md_proj_digest_t;

/** @brief Digests of the projections read in @p t (any thread with its own
 * transaction). @returns MD_OK or MD_ESTORE. */
MD_MUST_CHECK
md_err_t md_proj_digest(md_proj_t *p, md_txn_t *t, md_proj_digest_t *out, md_error_t *err);

/* What md_proj_verify found. */
typedef struct md_proj_report {
    uint64_t events; /* events replayed */
    uint64_t seq;    /* the live projections' watermark (rebuilt up to it) */
    md_proj_digest_t live, rebuilt;
    int bad;                      /* -1, or the first projection that differs */
    char db[16];                  /* its database */
    char key[MD_PROJ_CURSOR_MAX]; /* printable form of the first differing key */
} md_proj_report_t;

/**
 * @brief Rebuilds the projections from the events of @p t into a temporary
 * LMDB environment (under $TMPDIR, removed afterwards) up to the live
 * projections' watermark and compares digests with the live ones. With one
 * environment the watermark must equal the head of @p t; with their own
 * (md_proj_open_dir) it must not be beyond it (MD_ECORRUPT) and may be
 * behind (the projector's lag): rep->seq receives it.
 * @param progress called every 65536 events (may be NULL).
 * @returns MD_OK when equal; MD_ECORRUPT naming the projection, database and
 *          first differing key (also in @p rep); MD_EIO, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_proj_verify(md_proj_t *p, md_txn_t *t, md_progress_fn progress, void *pctx,
                        md_proj_report_t *rep, md_error_t *err);

/**
 * @brief Point in time: creates a new store in @p out_dir holding events
 * 1..@p until of @p src (re-appended, so seqs, versions and hashes are the
 * same, which is checked) and the projections as they stood after @p until.
 * The new store is for reading (marketctl); it carries no aggregate state,
 * outcomes or offsets, so marketd must not be run on it.
 * @param events receives the number of events copied (may be NULL).
 * @returns MD_OK, MD_EINVAL (until beyond the head, or 0), MD_EEXIST (out_dir
 *          holds events already), MD_ECORRUPT (a hash differs), MD_ESTORE, MD_EIO.
 */
MD_MUST_CHECK
md_err_t md_proj_replay(md_txn_t *src, uint64_t until, const char *out_dir, md_progress_fn progress,
                        void *pctx, uint64_t *events, md_error_t *err);

#endif
