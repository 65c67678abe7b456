/*
 * ctl.h - what marketctl's subcommands share: the run context, the
 * per-subcommand option table and the accessors of parsed options.
 *
 * A subcommand is one ctl_sub_t (name, runner, what it opens, positional
 * arguments, its own options); adding one is one entry in marketctl.c's
 * table, its code may live in tools/ctl_NAME.c. The parser (marketctl.c)
 * accepts exactly the options of the subcommand's table (plus --data-dir and
 * --help), checks each value by its kind, and names the option and the value
 * in every usage error (exit 2). `marketctl SUB --help` prints the table.
 *
 * Threads: marketctl is single-threaded.
 */
#ifndef MD_CTL_H
#define MD_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "md_error.h"
#include "md_proj.h"
#include "md_rowfmt.h"
#include "md_store.h"

/* How an option's value is checked. */
typedef enum ctl_kind {
    CTL_STR,    /* any text */
    CTL_SEQ,    /* an event seq, >= 1 */
    CTL_U64,    /* an unsigned integer */
    CTL_LIMIT,  /* 1..CTL_MAX_LIMIT, as the HTTP API's limit */
    CTL_DAY,    /* a calendar date YYYY-MM-DD */
    CTL_TIME,   /* milliseconds, or YYYY-MM-DDTHH:MM:SS[.f]Z */
    CTL_FLAG,   /* no value */
    CTL_FORMAT, /* json, csv or table (md_rowfmt.h) */
} ctl_kind_t;

#define CTL_MAX_LIMIT 1000000
#define CTL_MAX_OPTS 16
#define CTL_MAX_ARGS 3

typedef struct ctl_opt {
    const char *name; /* without the leading "--" */
    ctl_kind_t kind;
    const char *metavar; /* e.g. "DAY"; NULL for a flag */
    const char *help;
} ctl_opt_t;

typedef struct ctl ctl_t;

/* What a subcommand needs opened. */
enum {
    CTL_NEEDS_PROJ = 1,
    CTL_PROJ_OPTIONAL = 2,
    CTL_WRITES = 4,
    CTL_NO_STORE = 8 /* no --data-dir: nothing is opened */
};

typedef struct ctl_sub {
    const char *name;
    int (*run)(ctl_t *c); /* exit status: 0, 1 (failed/missing), 2 (misuse) */
    int needs;
    const char *args; /* positional synopsis ("KIND ID"), or NULL */
    int min_args, max_args;
    const char *summary;
    const ctl_opt_t *opts;    /* ends with {NULL}; may be NULL */
    const char *const *money; /* columns in fen, shown in yuan by --format table */
} ctl_sub_t;

struct ctl {
    const char *dir;
    const ctl_sub_t *sub;
    md_store_t *store;
    md_txn_t *txn;
    md_proj_t *proj;
    const char *args[CTL_MAX_ARGS]; /* positional arguments after the subcommand */
    int nargs;
    /* parsed options, by index in sub->opts */
    bool set[CTL_MAX_OPTS];
    const char *str[CTL_MAX_OPTS];
    uint64_t num[CTL_MAX_OPTS];
    int64_t time[CTL_MAX_OPTS];
    md_error_t err;
    /* output of the listings (--format; ctl_emit) */
    md_rowfmt_t *fmt;
    md_buf_t out;
    /* progress on a terminal */
    bool tty;
    double t0;
    uint64_t done, total;
};

/** @brief The text of option @p name, or NULL when not given. */
const char *ctl_str(const ctl_t *c, const char *name);
/** @brief true when option @p name was given (a CTL_FLAG, or any other). */
bool ctl_given(const ctl_t *c, const char *name);
/** @brief The number of option @p name (CTL_SEQ/U64/LIMIT), or @p dflt. */
uint64_t ctl_u64(const ctl_t *c, const char *name, uint64_t dflt);
/** @brief The time of option @p name (CTL_TIME) in ms, or @p dflt. */
int64_t ctl_time(const ctl_t *c, const char *name, int64_t dflt);

/** @brief Prints @p j (stolen) as one compact JSON line on stdout. */
md_err_t ctl_print_json(json_t *j, md_error_t *err);

/**
 * @brief Writes one row of a listing (@p row borrowed) on stdout in the
 * subcommand's --format (JSON lines by default; md_rowfmt.h).
 * @returns MD_OK or MD_EIO (stdout closed: EPIPE keeps errno).
 */
md_err_t ctl_emit(ctl_t *c, const json_t *row, md_error_t *err);

/** @brief Ends a listing: the table (--format table) and a flush of stdout.
 *  @returns MD_OK or MD_EIO. */
md_err_t ctl_emit_end(ctl_t *c, md_error_t *err);

/* Progress on stderr when it is a terminal (md_progress_fn; ctx is the ctl_t),
 * and its closing summary line naming @p what. */
void ctl_progress(uint64_t done, uint64_t total, void *ctx);
void ctl_progress_end(ctl_t *c, const char *what);

/* Follow mode (tools/ctl_history.c): SIGINT/SIGTERM end it and SIGPIPE is
 * ignored; wait sleeps one poll interval and says whether to go on (false:
 * stopped, or *rc set); end turns the outcome into the exit status. */
void ctl_follow_signals(void);
bool ctl_follow_wait(ctl_t *c, md_err_t *rc);
int ctl_follow_end(ctl_t *c, md_err_t rc);

/* The log and projection subcommands (tools/ctl_history.c, tools/ctl_query.c):
 * each returns the exit status (0, 1 on a failed check or a missing object, 2
 * on misuse) after printing its output; errors are in c->err. */
int ctl_cmd_events(ctl_t *c);
int ctl_cmd_export(ctl_t *c);
int ctl_cmd_get(ctl_t *c);
int ctl_cmd_orders(ctl_t *c);
int ctl_cmd_audit(ctl_t *c);
int ctl_cmd_sales(ctl_t *c);
int ctl_cmd_summary(ctl_t *c);

/* Subcommands living in tools/ctl_*.c. */
extern const ctl_sub_t ctl_sub_outbox;

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
 * left out), safe beside a running daemon; the projections' environment of
 * @p data_dir (proj/) first, so the copied log is never behind the copied
 * projections; prints {ok, out, events, head, bytes, store_id, projections_seq}. With @p new_identity the copy gets a store identity of its
 * own (a replica seeded from it, docs/replication.md): a copy that keeps the
 * original's identity is, for the fencing of md_consumer.h, the same store.
 * @returns 0, 1 (@p err set), 2 (no --out).
 */
int ctl_backup(md_store_t *store, const char *data_dir, const char *out_dir, bool new_identity,
               md_error_t *err);

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
