/*
 * ctl.h - marketctl subcommands kept in files of their own (tools/ctl_*.c,
 * linked into marketctl by the Makefile). Each takes what it needs as plain
 * arguments; marketctl.c holds only their table entries and thin wrappers.
 * Output: JSON on stdout, messages on stderr; the int results are exit
 * statuses (0 ok, 1 failure or verification failed).
 */
#ifndef MD_CTL_H
#define MD_CTL_H

#include <jansson.h>
#include <stdbool.h>

#include "md_error.h"
#include "md_store.h"

/* ---- verify: what the rules derive (ctl_verify.c) ----------------------------------- */

typedef struct ctl_derived ctl_derived_t;

/**
 * @brief Starts recomputing the rules' state and outcomes of @p store
 * (md_derived_verify) in a read transaction of its own, on a thread of its
 * own (in ctl_derived_end instead with MARKETD_REPLAY_THREADS=1).
 * @returns a handle for ctl_derived_end (never NULL; failures are reported there).
 */
ctl_derived_t *ctl_derived_start(md_store_t *store);

/**
 * @brief Waits for the recompute and frees @p d. With @p ok (the verify
 * report so far, stolen; NULL when verify failed already: nothing is printed)
 * it prints either @p ok with "derived" (digests of state and outcomes) and
 * "offsets" (the stored consumer offsets) and "intake" (md_intake_verify: the
 * offsets checked against the intake records; docs/verify.md) added,
 * or a failure object naming the database and first differing key.
 * @returns 0 when ok was printed, 1 otherwise (@p err set on an error other
 *          than a difference, which is reported on stdout and stderr).
 */
int ctl_derived_end(ctl_derived_t *d, json_t *ok, md_error_t *err);

/* ---- backup (ctl_backup.c) ---------------------------------------------------------- */

/**
 * @brief A consistent hot copy of @p store into the new or empty directory
 * @p out_dir (mdb_env_copy2 with MDB_CP_COMPACT: one read snapshot, free pages
 * left out), safe beside a running daemon; prints {ok, out, events, head,
 * bytes, store_id}. With @p new_identity the copy gets a store identity of its
 * own (a replica seeded from it, docs/replication.md): a copy that keeps the
 * original's identity is, for the fencing of md_consumer.h, the same store.
 * @returns 0, 1 (@p err set), 2 (no --out).
 */
int ctl_backup(md_store_t *store, const char *out_dir, bool new_identity, md_error_t *err);

/* ---- signed checkpoints (ctl_checkpoint.c; docs/audit.md) --------------------------------
 *
 *   marketctl keygen --id ID --out DIR
 *   marketctl checkpoints --bootstrap HOST:PORT [--topic market.heads]
 *   marketctl verify-export FILE --checkpoints CPS.jsonl --keys DIR
 *   marketctl --data-dir DIR verify --checkpoints CPS.jsonl --keys DIR
 *
 * Exit status: 0 success, 1 a verification failed (the first failure named on
 * stderr and as {"ok":false,...} on stdout) or an I/O error, 2 misuse.
 */

/** @brief true when @p name is one of the subcommands that need no store
 *  (keygen, checkpoints, verify-export). */
bool ctl_checkpoint_is_sub(const char *name);

/** @brief Runs such a subcommand; argv[0] is its name. @returns the exit status. */
int ctl_checkpoint_main(int argc, char **argv);

/**
 * @brief The checkpoint half of `verify` on a store whose chain was verified
 * in @p t: every signature, then the store's hash at every checkpointed seq,
 * then the offsets of the checkpoints this store queued (md_intake_check_checkpoints).
 * @returns 0, 1 (the first failure reported), 2 (--keys missing).
 */
int ctl_verify_store_checkpoints(md_txn_t *t, const char *checkpoints, const char *keys);

#endif
