/*
 * md_derived.h - what the rules derive, recomputed from the event log and
 * compared with the store (marketctl verify; docs/verify.md).
 *
 * Two databases of the store are a function of the log, like the
 * projections:
 *   state     the rules' aggregate records: every event from seq 1 evolved
 *             with md_rules_evolve (the engine's own evolve; decide never
 *             writes), over an in-memory state;
 *   outcomes  command_id -> md_outcome_of_event of the last event that
 *             records one (the engine's own encoding). A command accepted
 *             with no events (Tick) is in no event: its stored outcome
 *             (MD_OUTCOME_UNLOGGED) is taken as it is when no event records an
 *             outcome for its command_id (counted in the report's unlogged).
 * md_derived_verify recomputes both and compares a SHA-256 digest of each with
 * the live database (the digest format of md_proj_digest: for each pair in key
 * order, 4-byte big-endian key length, key, 4-byte value length, value), and
 * names the first differing key.
 *
 * The consumed offsets are not a function of the log (the log does not
 * record which Kafka message a command came from): md_derived_offsets lists
 * them for a check against signed checkpoints' offsets.
 *
 * Memory: the recomputed records are held in memory (about the state's and
 * the outcomes' size: ~120 MB for 1M commands), in tables sized at the start
 * for the live databases' entries (at most one per event).
 *
 * Threads: a call uses only its read transaction and its own memory; run it
 * on any one thread (e.g. beside md_proj_verify, with another transaction).
 */
#ifndef MD_DERIVED_H
#define MD_DERIVED_H

#include <stdint.h>

#include "md_error.h"
#include "md_event.h"
#include "md_store.h"

typedef enum md_derived_db {
    MD_DERIVED_STATE,
    MD_DERIVED_OUTCOMES,
    MD_DERIVED_COUNT_
} md_derived_db_t;

/** @brief "state" or "outcomes" (the store's database names); "" when invalid. */
const char *md_derived_name(md_derived_db_t db);

#define MD_DERIVED_KEY_MAX 1040 /* printable form of the longest key, plus NUL */

/* What md_derived_verify found. */
typedef struct md_derived_report {
    uint64_t events;   /* events evolved */
    uint64_t unlogged; /* outcomes taken as stored (MD_OUTCOME_UNLOGGED) */
    unsigned char live[MD_DERIVED_COUNT_][MD_HASH_LEN];
    unsigned char derived[MD_DERIVED_COUNT_][MD_HASH_LEN];
    uint64_t live_entries[MD_DERIVED_COUNT_], derived_entries[MD_DERIVED_COUNT_];
    int bad;                      /* -1, or the first md_derived_db_t that differs */
    char key[MD_DERIVED_KEY_MAX]; /* printable form of its first differing key
                                     * (bytes 0x20..0x7e as they are, '\\' and
                                     * others as \xHH) */
    const char *diff;             /* static: "missing from the store", "not
                                     * derived from the log", "value differs" */
} md_derived_report_t;

/**
 * @brief Recomputes the rules' state and the command outcomes from events
 * 1..head of @p t and compares them with the state and outcomes of @p t.
 * @param progress called every 65536 events (may be NULL).
 * @param rep filled in (also on MD_ECORRUPT).
 * @returns MD_OK when both are equal; MD_ECORRUPT naming the database and the
 *          first differing key (also in @p rep), or an event the rules cannot
 *          evolve; MD_ENOTFOUND when the store has events but neither state
 *          nor outcomes (md_proj_replay's output: nothing to compare);
 *          MD_ESTORE.
 */
md_err_t md_derived_verify(md_txn_t *t, md_progress_fn progress, void *pctx,
                           md_derived_report_t *rep, md_error_t *err);

/**
 * @brief Visits every stored consumer offset of @p t, by topic then partition
 * (md_txn_offset_scan; kept for its callers).
 * @returns MD_OK, the callback's error, MD_ECORRUPT (a record not in the
 *          offsets format), MD_ESTORE.
 */
md_err_t md_derived_offsets(md_txn_t *t, md_offset_fn fn, void *ctx, md_error_t *err);

#endif
