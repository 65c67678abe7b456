/*
 * pj.h - private to projections/: the handle, the event context handed to
 * each projection, the record codec, keys and small shared helpers.
 *
 * Every projection module exports md__pj_<name>_apply (one switch-free table
 * of handlers indexed by event type) and its query functions.
 */
#ifndef MD_PROJ_PJ_H
#define MD_PROJ_PJ_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "md_proj.h"

#define PJ_FORMAT 6 /* bump on any change of a record layout or key */
#define PJ_ID 65    /* ids are 1..64 bytes */
#define PJ_NAME 201
#define PJ_TEXT 501
#define PJ_CLAUSE 16
#define PJ_NONE INT64_MIN /* an absent time or amount */
#define PJ_DAY 11         /* "YYYY-MM-DD" */
#define PJ_KEY_MAX 511    /* LMDB's default key limit */

typedef enum pj_db {
    PJ_DB_ORDERS,
    PJ_DB_ORDER_IDX,
    PJ_DB_ACCOUNTS,
    PJ_DB_ACCOUNT_IDX,
    PJ_DB_AUDIT,
    PJ_DB_AUDIT_ACTOR,
    PJ_DB_SALES,
    PJ_DB_RECORDS,
    PJ_DB_REJECTIONS,
    PJ_DB_META,
    PJ_DB_COUNT_
} pj_db_t;

/* Event types, sorted by name (bsearch; a test checks the order). */
/* clang-format off */
#define PJ_TYPES(X)                                                                                \
    X(AgreementAccepted)                                                                           \
    X(AgreementDeclined)                                                                           \
    X(AgreementPublished)                                                                          \
    X(AppealRuled)                                                                                 \
    X(ArbitrationRequested)                                                                        \
    X(CategoryDefined)                                                                             \
    X(CategoryRetired)                                                                             \
    X(CommandRejected)                                                                             \
    X(ComplaintFiled)                                                                              \
    X(ComplaintWithdrawn)                                                                          \
    X(ConsentGranted)                                                                              \
    X(ConsentRevoked)                                                                              \
    X(DefenseSubmitted)                                                                            \
    X(DisputeRuled)                                                                                \
    X(FundsDeposited)                                                                              \
    X(FundsWithdrawn)                                                                              \
    X(LicenseGranted)                                                                              \
    X(LicenseRevoked)                                                                              \
    X(MaintenanceCancelled)                                                                        \
    X(MaintenanceScheduled)                                                                        \
    X(MemberRegistered)                                                                            \
    X(MessageSent)                                                                                 \
    X(OperatorGranted)                                                                             \
    X(OperatorRevoked)                                                                             \
    X(OrderCancelled)                                                                              \
    X(OrderCompleted)                                                                              \
    X(OrderDelivered)                                                                              \
    X(OrderPaid)                                                                                   \
    X(OrderPlaced)                                                                                 \
    X(PersonalDataDisclosed)                                                                       \
    X(PolicySet)                                                                                   \
    X(PriceChanged)                                                                                \
    X(ProductApproved)                                                                             \
    X(ProductDelisted)                                                                             \
    X(ProductDenied)                                                                               \
    X(ProductPublished)                                                                            \
    X(ProductRelisted)                                                                             \
    X(ProviderApplied)                                                                             \
    X(ProviderApproved)                                                                            \
    X(ProviderRejected)                                                                            \
    X(RecordsDisclosed)                                                                            \
    X(ReviewPosted)                                                                                \
    X(SanctionAppealed)                                                                            \
    X(SanctionApplied)                                                                             \
    X(SanctionLifted)                                                                              \
    X(SettlementReleased)                                                                          \
    X(StoreClosed)                                                                                 \
    X(StoreOpened)                                                                                 \
    X(StoreReopened)                                                                               \
    X(TermAllowed)                                                                                 \
    X(TermProhibited)                                                                              \
    X(VoucherIssued)                                                                               \
    X(VoucherRedeemed)                                                                             \
    X(VoucherRestored)
/* clang-format on */

#define PJ_TYPE_ENUM_(n) PJ_T_##n,
typedef enum pj_type { PJ_T_UNKNOWN = -1, PJ_TYPES(PJ_TYPE_ENUM_) PJ_T_COUNT_ } pj_type_t;
#undef PJ_TYPE_ENUM_

/* The event type named @p s, or PJ_T_UNKNOWN. */
pj_type_t md__pj_type(const char *s);
/* The name of type @p t (static). */
const char *md__pj_type_name(pj_type_t t);

/* ---- event data, decoded once per event ------------------------------------- */

typedef enum pj_vkind { PJ_V_NIL, PJ_V_BOOL, PJ_V_INT, PJ_V_STR, PJ_V_OTHER } pj_vkind_t;

typedef struct pj_field {
    const char *key;
    uint32_t klen;
    pj_vkind_t kind;
    const char *s; /* PJ_V_STR: borrowed from the event data */
    uint32_t slen;
    int64_t i; /* PJ_V_INT, PJ_V_BOOL (0/1) */
} pj_field_t;

typedef struct pj_fields {
    pj_field_t f[MD_DATA_FIELDS_MAX];
    size_t n;
} pj_fields_t;

/* Parses a flat msgpack map; nested values are PJ_V_OTHER. Returns 0 or -1. */
int md__pj_fields_parse(pj_fields_t *fs, const void *data, size_t len);

struct md_proj {
    md_store_t *store; /* the projections' environment */
    /* The event log: store itself (one environment: a replay's output, a
     * store of the old layout opened read-only), or the data directory's
     * environment beside the projections' own (<data_dir>/proj, env.c). */
    md_store_t *evlog;
    md_store_t *own_env; /* the projections' environment when this handle opened it */
    md_txn_t *pinned;    /* md_proj_pin: the snapshot queries read */
    uint64_t caught_up_from, caught_up_to; /* what the open's catch-up applied */
    MDB_dbi dbi[PJ_DB_COUNT_];
    md_buf_t rec; /* scratch for packed records (writer only) */
    /* Replays (rebuild, verify, replay, catch-up) run in bulk mode: nothing
     * reaches LMDB while the events are applied. Puts and deletes go to a
     * log until the apply code first reads the database, then to a
     * write-back cache that md__pj_load reads; entries of insert-only
     * databases go to the spill (md__pj_put_new). All are written sorted by
     * key, appended where the keys follow the database's last key (see
     * "bulk mode" in bulk.c). */
    bool bulk;
    bool complete[PJ_DB_COUNT_]; /* empty in LMDB and not written since:
                                      * a key the cache lacks is absent */
    bool cached[PJ_DB_COUNT_];   /* read by the apply code: in the cache */
    bool spilled[PJ_DB_COUNT_];  /* has entries in the spill */
    struct pj_cache *cache;      /* (db, key) -> value or tombstone */
    struct pj_sort *sort;        /* scratch of the sorted writes */
    size_t bulk_max;             /* bytes of cache and log: beyond, written */
    size_t spill_max;            /* bytes of spill: beyond, written */
    md_buf_t spill;              /* db(1) klen(2) vlen(4) key val, ... */
    md_buf_t log;                /* the same; vlen 0xffffffff: a delete */
    struct pj_batch *own;        /* the batch of this handle's writes */
    /* Parallel replays (rebuild.c): a helper's handle applies some of the
     * projections (lanes) and hands its sorted writes to the writer, which
     * writes them in its transaction and hands the batches back for reuse. */
    unsigned lanes; /* bit (1 << md_proj_id_t): applied */
    md_err_t (*emit)(void *ctx, struct pj_batch *b, md_error_t *err);
    struct pj_batch *(*spare)(void *ctx); /* a written batch, or NULL */
    void *emit_ctx;
    /* The writer's, in a two-lane replay: a last log of at least aside_min
     * bytes is sorted on a thread of its own (bulk.c, "the last log"; 0:
     * never); asides counts the logs written that way by its replays and its
     * verify's (the tests look). sorts counts the helper's logs and spills
     * sorted by the helper ([0]) and by the writer ([1]) in its replays
     * (rebuild.c, lane_sorts_here; the tests look). */
    size_t aside_min;
    unsigned long asides;
    unsigned long sorts[2];
    /* The engine's batches (md_proj_batch_begin/end): the batch's events are
     * applied in bulk mode and written sorted at its end, with the seq. */
    bool batch;                             /* between md_proj_batch_begin and end */
    uint64_t batch_seq;                     /* the last seq applied in the batch */
    uint64_t batch_meta;                    /* meta "seq" when the batch began */
    size_t saved_bulk_max, saved_spill_max; /* the bounds outside the batch */
    /* Verify (rebuild.c): set, the sorted writes are compared with the live
     * projections instead of written (bulk.h, "comparison"). */
    struct pj_cmp *cmp;
    /* Lazy sync (env.c, md_proj_lazy_sync): commits without fsync, flushed
     * by md_proj_flush; the marker <data_dir>/proj/unsynced exists while
     * (possibly) un-synced commits do. */
    bool lazy;         /* the environment commits with MDB_NOSYNC */
    bool marked;       /* the marker file exists */
    char marker[4200]; /* its path ("" with one environment) */
};

/* Sorted writes: items point into data (a log or spill) or cache. */
typedef struct pj_batch {
    md_buf_t data;
    struct pj_cache *cache;
    md_buf_t items;              /* sorted, grouped by database */
    size_t at[PJ_DB_COUNT_ + 1]; /* database i: items [at[i], at[i + 1]) */
    struct pj_batch *next;       /* (queues of rebuild.c) */
    bool unsorted;               /* a helper's log or spill: the writer sorts it */
} pj_batch_t;

/* What a handler sees: one event, decoded. */
typedef struct pj_ctx {
    md_proj_t *p;
    MDB_txn *txn;
    md_txn_t *t;
    const md_event_t *ev;
    pj_type_t type;
    pj_fields_t f;
    md_error_t *err;
} pj_ctx_t;

typedef md_err_t (*pj_fn)(pj_ctx_t *c);

/* Field readers: a missing, nil or mistyped field reads as ""/0/false. They
 * are inline so that the key (a literal at every call) is measured and
 * compared at compile time: a replay calls them ~20 times an event. */
static inline const pj_field_t *md__pj_field(const pj_ctx_t *c, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < c->f.n; i++)
        if (c->f.f[i].klen == kl && memcmp(c->f.f[i].key, key, kl) == 0)
            return &c->f.f[i];
    return NULL;
}

static inline bool md__pj_str(const pj_ctx_t *c, const char *key, char *out, size_t cap)
{
    const pj_field_t *f = md__pj_field(c, key);
    size_t n = f && f->kind == PJ_V_STR ? f->slen : 0;
    if (n >= cap)
        n = cap - 1; /* longer than the record keeps: truncated */
    if (n)
        memcpy(out, f->s, n);
    out[n] = '\0';
    return n > 0;
}

static inline int64_t md__pj_int(const pj_ctx_t *c, const char *key)
{
    const pj_field_t *f = md__pj_field(c, key);
    return f && (f->kind == PJ_V_INT || f->kind == PJ_V_BOOL) ? f->i : 0;
}

/* An int field, or PJ_NONE when absent or nil. */
static inline int64_t md__pj_opt_int(const pj_ctx_t *c, const char *key)
{
    const pj_field_t *f = md__pj_field(c, key);
    return f && f->kind == PJ_V_INT ? f->i : PJ_NONE;
}
/* Index of the string field @p key in @p names, or -1. */
int64_t md__pj_enum(const pj_ctx_t *c, const char *key, const char *const *names, size_t n);
/* Index of @p s in @p names, or -1. */
int64_t md__pj_lookup(const char *const *names, size_t n, const char *s);

/* ---- records: fixed numeric prefix, then length-prefixed strings ------------- */

typedef struct pj_str_desc {
    uint16_t off, cap;
} pj_str_desc_t;

typedef struct pj_layout {
    int64_t fmt;  /* first int64_t of every record */
    size_t fixed; /* bytes of the numeric prefix (offset of 1st string) */
    size_t size;  /* sizeof the in-memory struct */
    size_t nstr;
    const pj_str_desc_t *str;
} pj_layout_t;

/* Loads key -> *rec (zeroed when absent: *found = false). MD_ECORRUPT on a
 * value of another layout. */
md_err_t md__pj_load(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const pj_layout_t *l,
                     void *rec, bool *found);
/* The same for readers of any transaction. */
md_err_t md__pj_read(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t klen, const pj_layout_t *l,
                     void *rec, bool *found, md_error_t *err);
int md__pj_unpack(const pj_layout_t *l, const void *val, size_t len, void *rec);
/* Packs @p rec into @p out (reset first): the format of md__pj_pack in core.c. */
void md__pj_pack(const pj_layout_t *l, const void *rec, md_buf_t *out);
md_err_t md__pj_save(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const pj_layout_t *l,
                     const void *rec);
md_err_t md__pj_put(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                    size_t vlen);
/* Puts a key that is never read, updated or deleted later by the apply
 * code (audit entries): in bulk mode it goes to the spill, written sorted. */
md_err_t md__pj_put_new(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen, const void *val,
                        size_t vlen);

/* Events between two writes of the spill in bulk mode: a multiple of the
 * epoch of epoch-led keys (PJ_EPOCH_BITS, epoch.h; the audit entries), so
 * each write's keys all follow the keys already written and are appended
 * (any other cadence is correct, only slower: keys at or before a database's
 * last key are put in place). */
#define PJ_SPILL_EVENTS 65536
#define PJ_BULK_MAX ((size_t)256 << 20) /* default p->bulk_max */
/* The bounds of an engine batch (md_proj_batch_begin): beyond them, what is
 * held is written early (still sorted), so the daemon's memory stays bounded
 * whatever the batch size (docs/performance.md, memory). */
#define PJ_LIVE_BULK_MAX ((size_t)8 << 20)
#define PJ_LIVE_SPILL_MAX ((size_t)1 << 20)
#define PJ_SPILL_MAX ((size_t)64 << 20) /* default p->spill_max */

/* Enters bulk mode for a replay in @p txn (the databases that are empty now
 * need no look-ups on a cache miss). */
md_err_t md__pj_bulk_begin(md_proj_t *p, MDB_txn *txn, md_error_t *err);
/* After event @p seq in bulk mode: writes the spill every PJ_SPILL_EVENTS
 * events, and the cache and log when they outgrow p->bulk_max. */
md_err_t md__pj_bulk_step(md_proj_t *p, MDB_txn *txn, uint64_t seq, md_error_t *err);
/* Leaves bulk mode: writes what is held (when @p write) and frees it. */
md_err_t md__pj_bulk_end(md_proj_t *p, MDB_txn *txn, bool write, md_error_t *err);
/* Frees the bulk buffers (md_proj_free). */
void md__pj_bulk_release(md_proj_t *p);
/* Enters bulk mode for a helper @p hp of writer @p p (the same databases empty). */
void md__pj_bulk_follow(md_proj_t *hp, const md_proj_t *p);
/* The writer's side of a helper's batch: writes it in @p txn (sorting it first
 * when the helper left it unsorted: a log or a spill); clear empties it
 * for reuse, free frees it. */
md_err_t md__pj_batch_write(md_proj_t *p, MDB_txn *txn, pj_batch_t *b, md_error_t *err);
void md__pj_batch_clear(pj_batch_t *b);
void md__pj_batch_free(pj_batch_t *b);
/* Deletes a key; a missing key is not an error. */
md_err_t md__pj_del(pj_ctx_t *c, pj_db_t db, const void *key, size_t klen);

/* ---- keys ------------------------------------------------------------------ */

typedef struct pj_key {
    unsigned char b[PJ_KEY_MAX];
    size_t n;
} pj_key_t;

void md__pj_key_init(pj_key_t *k);
void md__pj_key_byte(pj_key_t *k, unsigned char c);
/* Appends the string and a NUL separator (truncating to stay within the limit). */
void md__pj_key_str(pj_key_t *k, const char *s);
void md__pj_key_be64(pj_key_t *k, uint64_t v);
uint64_t md__pj_get_be64(const unsigned char *p);
/* Hex (as md_hex writes it) to at most @p cap bytes; 0, or -1 when malformed. */
int md__pj_unhex(const char *s, unsigned char *out, size_t cap, size_t *n);

/* "YYYY-MM-DD" (UTC) of @p ms into out[PJ_DAY]. */
void md__pj_day(int64_t ms, char out[PJ_DAY]);

/* ---- JSON helpers (queries) ---------------------------------------------- */

json_t *md__pj_time(int64_t ms);                                     /* null for PJ_NONE, else ms */
json_t *md__pj_strj(const char *s);                                  /* null for "" */
json_t *md__pj_enumj(const char *const *names, size_t n, int64_t i); /* null when out of range */

/* A list scan over one database: keys with @p prefix, from the cursor. */
typedef md_err_t (*pj_visit_fn)(const MDB_val *k, const MDB_val *v, void *ctx, bool *emitted,
                                md_error_t *err);
/* What a paged scan returns once its cursor is closed: MD_EINVAL for a refused
 * page cursor (@p bad), MD_OK when the visitor stopped it (MD_ESTOP), the LMDB
 * error @p mrc other than the end of the data, else @p rc. */
md_err_t md__pj_scan_result(md_err_t rc, int mrc, int bad, const md_proj_page_t *page,
                            md_error_t *err);
md_err_t md__pj_scan(MDB_txn *txn, MDB_dbi dbi, const void *prefix, size_t plen,
                     md_proj_page_t *page, pj_visit_fn fn, void *ctx, md_error_t *err);

/* ---- the handle (proj.c) and rebuild (rebuild.c) -------------------------- */

/* The databases of projection @p id (one or two), in digest order. */
size_t md__pj_proj_dbs(md_proj_id_t id, pj_db_t out[2]);
const char *md__pj_db_name(pj_db_t db);
/* Records the applied seq (and format) in p_meta. */
md_err_t md__pj_meta_set(md_proj_t *p, md_txn_t *t, uint64_t seq, md_error_t *err);
/* Runs every projection over one event, without seq bookkeeping. */
md_err_t md__pj_apply_one(md_proj_t *p, md_txn_t *t, const md_event_t *ev, md_error_t *err);
/* At open on a writable store: applies missed events or rebuilds (format). */
md_err_t md__pj_catch_up(md_proj_t *p, md_error_t *err);

/* A handle over the projections of @p env whose events are in @p log (the
 * same store for one environment), caught up with the log (proj.c). */
md_err_t md__pj_open(md_store_t *log, md_store_t *env, md_proj_t **out, md_error_t *err);

/* The projections' snapshot for a query handed @p *t (env.c): @p *t itself
 * when it is of the projections' environment, the pinned snapshot, or one
 * begun here (*own, to end with md_txn_end). *events receives the transaction
 * to read events from: the caller's when it is of the log, else NULL (begin
 * one on p->log when needed). */
md_err_t md__pj_snapshot(md_proj_t *p, md_txn_t **t, md_txn_t **own, md_txn_t **events,
                         md_error_t *err);

/* ---- the projections ----------------------------------------------------- */

md_err_t md__pj_orders_apply(pj_ctx_t *c);
md_err_t md__pj_accounts_apply(pj_ctx_t *c);
md_err_t md__pj_audit_apply(pj_ctx_t *c);
md_err_t md__pj_sales_apply(pj_ctx_t *c);
/* Rejections per day and code {day, code, count} (p_rejections), days in
 * [from, to] (NULL: open), in day then code order. */
md_err_t md__pj_rejections(md_proj_t *p, md_txn_t *t, const char *from, const char *to,
                           md_proj_row_fn fn, void *ctx, md_error_t *err);
md_err_t md__pj_records_apply(pj_ctx_t *c);

md_err_t md__pj_order_get(md_proj_t *p, MDB_txn *txn, const char *id, json_t **out,
                          md_error_t *err);
md_err_t md__pj_account_get(md_proj_t *p, MDB_txn *txn, const char *id, int64_t as_of, json_t **out,
                            md_error_t *err);
md_err_t md__pj_record_get(md_proj_t *p, MDB_txn *txn, char kind, const char *id, int64_t as_of,
                           json_t **out, md_error_t *err);

/* Shared vocabularies (static tables in records.c). */
extern const char *const md__pj_measures[];
extern const size_t md__pj_nmeasures;
bool md__pj_in_effect(int64_t applied_at, int64_t expires_at, int64_t lifted_at, int64_t as_of);

#endif
