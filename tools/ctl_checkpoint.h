/*
 * ctl_checkpoint.h - marketctl's checkpoint subcommands (docs/audit.md):
 *
 *   marketctl keygen --id ID --out DIR
 *   marketctl checkpoints --bootstrap HOST:PORT [--topic market.heads]
 *   marketctl verify-export FILE --checkpoints CPS.jsonl --keys DIR
 *   marketctl --data-dir DIR verify --checkpoints CPS.jsonl --keys DIR
 *
 * Exit status: 0 success, 1 a verification failed (the first failure named on
 * stderr and as {"ok":false,...} on stdout) or an I/O error, 2 misuse.
 * Threads: single-threaded (marketctl's main thread).
 */
#ifndef CTL_CHECKPOINT_H
#define CTL_CHECKPOINT_H

#include <stdbool.h>

#include "md_store.h"

/** @brief true when @p name is one of the subcommands that need no store
 *  (keygen, checkpoints, verify-export). */
bool ctl_checkpoint_is_sub(const char *name);

/** @brief Runs such a subcommand; argv[0] is its name. @returns the exit status. */
int ctl_checkpoint_main(int argc, char **argv);

/**
 * @brief The checkpoint half of `verify` on a store whose chain was verified
 * in @p t: every signature, then the store's hash at every checkpointed seq.
 * @returns 0, 1 (the first failure reported), 2 (--keys missing).
 */
int ctl_verify_store_checkpoints(md_txn_t *t, const char *checkpoints, const char *keys);

#endif
