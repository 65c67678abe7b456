/*
 * md_rules.h - the decider: decide(state, command) -> events | rejection and
 * evolve(state, event) (docs/rules-reference.md; docs/architecture.md "rules/").
 *
 * Pure: no I/O, no clock reads, no mutable globals. Time comes in as `now`
 * (ms since epoch). All state that decide needs is reached through md_state_t,
 * a small key/value interface the engine implements over its LMDB write
 * transaction (tests use tests/rules_mem.c). Decide and the timers only read
 * state; evolve is the only writer (the timer index included), so the state
 * is a function of the log. Aggregate records are fixed-size C structs (each
 * begins with a uint32_t format number), stored with their runs of zero bytes
 * squeezed out (rules/state.h); see docs/rules.md for the keys.
 *
 * Engine loop for one input message (see docs/rules.md for the full recipe):
 *   md_command_decode_json(raw, len, &opts, &cmd);
 *   if cmd is not MALFORMED (and, with clock = command, has issued_at): fire the
 *       timers due at now (md_rules_timer_next / md_rules_timer_fire, below);
 *   if cmd.status != MALFORMED: look up cmd.command_id in the outcomes
 *       ("bootstrap" is always taken) -> answer duplicate, append nothing;
 *   now = clock == command ? cmd.issued_at : wall clock;
 *   md_rules_decide(&state, &cmd, now, &d, &err);
 *   for each d.events[i]: append with recorded_at = now, command_id and actor
 *       (nil when !cmd has them), then md_rules_evolve(&state, &appended, &err);
 *   d.accepted -> result accepted; else result rejected with d.code_name,
 *       d.clause, d.message; record md_outcome_of_decision unless d.retryable
 *       or MALFORMED.
 * Whether accepted or not, d.events holds exactly what to append: a rejection
 * yields one CommandRejected event on stream "rejections".
 *
 * Thread safety: the functions are reentrant; a state handle must not be used
 * by two threads at once (it is the engine's write transaction).
 */
#ifndef MD_RULES_H
#define MD_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_command.h"
#include "md_error.h"
#include "md_event.h"

/* ---- rejection codes (docs/rules-reference.md "Codes and clauses") ----------------------- */

/* clang-format off */
#define MD_CODES(X)                                                                                \
    X(MALFORMED)                                                                                   \
    X(UNKNOWN_COMMAND)                                                                             \
    X(INVALID_FIELD)                                                                               \
    X(VERSION_CONFLICT)                                                                            \
    X(NOT_FOUND)                                                                                   \
    X(ALREADY_EXISTS)                                                                              \
    X(FORBIDDEN)                                                                                   \
    X(STORE_STATE)                                                                                 \
    X(CONSENT_STATE)                                                                               \
    X(ALREADY_OPERATOR)                                                                            \
    X(NOT_OPERATOR)                                                                                \
    X(LAST_OPERATOR)                                                                               \
    X(ALREADY_ACCEPTED)                                                                            \
    X(APPLICATION_PENDING)                                                                         \
    X(APPLICATION_NOT_PENDING)                                                                     \
    X(AGREEMENT_VERSION)                                                                           \
    X(CATEGORY_RETIRED)                                                                            \
    X(MEMBER_NOT_REGISTERED)                                                                       \
    X(ALREADY_PROVIDER)                                                                            \
    X(NOT_A_PROVIDER)                                                                              \
    X(PRODUCT_STATE)                                                                               \
    X(PRODUCT_UNAVAILABLE)                                                                         \
    X(ORDER_STATE)                                                                                 \
    X(DUPLICATE_PAYMENT)                                                                           \
    X(COMPLAINT_EXISTS)                                                                            \
    X(COMPLAINT_STATE)                                                                             \
    X(APPEAL_EXISTS)                                                                               \
    X(INSUFFICIENT_FUNDS)                                                                          \
    X(ACCOUNT_SUSPENDED)                                                                           \
    X(ACCOUNT_CLOSED)                                                                              \
    X(STORE_CLOSED)                                                                                \
    X(SANCTIONED)                                                                                  \
    X(ORDERING_RESTRICTED)                                                                         \
    X(PROVIDER_UNAVAILABLE)                                                                        \
    X(BALANCE_FROZEN)                                                                              \
    X(MEMBER_MUTED)                                                                                \
    X(SANCTION_ACTIVE)                                                                             \
    X(SANCTION_NOT_ACTIVE)                                                                         \
    X(SANCTION_IRREVERSIBLE)                                                                       \
    X(ORDER_IN_DISPUTE)                                                                            \
    X(SERVICE_UNAVAILABLE)                                                                         \
    X(PROHIBITED_CONTENT)                                                                          \
    X(PRODUCT_RESTRICTED)                                                                          \
    X(SELF_DEALING)                                                                                \
    X(REVIEW_EXISTS)                                                                               \
    X(VOUCHER_NOT_HELD)                                                                            \
    X(VOUCHER_USED)                                                                                \
    X(VOUCHER_EXPIRED)                                                                             \
    X(VOUCHER_NOT_TRANSFERABLE)                                                                    \
    X(ACCOUNT_NOT_TRANSFERABLE)                                                                    \
    X(PROMO_ALREADY_CLAIMED)                                                                       \
    X(OFF_PLATFORM_TRADE)                                                                          \
    X(CONSENT_REQUIRED)                                                                            \
    X(NO_VIOLATION_ON_RECORD)                                                                      \
    X(AFTER_SALES_CLOSED)                                                                          \
    X(APPEAL_WINDOW_CLOSED)                                                                        \
    X(APPEAL_STATE)
/* clang-format on */

#define MD_CODE_ENUM_(name) MD_CODE_##name,
typedef enum md_code { MD_CODE_NONE = -1, MD_CODES(MD_CODE_ENUM_) MD_CODE_COUNT_ } md_code_t;
#undef MD_CODE_ENUM_

/** @brief "INSUFFICIENT_FUNDS" for MD_CODE_INSUFFICIENT_FUNDS; "" when invalid. */
const char *md_code_name(md_code_t code);
/** @brief The code's clause ("3.2.1"), or NULL when the table says null. */
const char *md_code_clause(md_code_t code);
/** @brief The code named @p name, or MD_CODE_NONE. */
md_code_t md_code_find(const char *name);
/** @brief Whether a rejection with @p code may succeed when sent again unchanged
 *  (not recorded as the command's outcome): SERVICE_UNAVAILABLE. */
bool md_code_retryable(md_code_t code);

/* ---- the contract of each command type (docs/commands.md) ----------------------
 * What a command of each type can answer and append, from the rules table
 * (rules/table.c: its flags, authorization and referenced ids imply the codes
 * of docs/rules-reference.md "Order of checks" steps 2-6) and the contract table
 * beside it (rules/contract.c: what each command's own rule, step 7, can
 * answer and append). md-docgen prints them; tests/test_rules.c checks both
 * ways that its cases produce exactly these (a listed code or event no case
 * produces fails, as does a produced one that is not listed). Static data:
 * reentrant, no allocation. */

/* Codes a command can get before its type is known or checked (step 1 and the
 * generic steps), listed once as "any command" in docs/commands.md; the
 * commands whose row exempts them say so (md_rules_codes_of leaves them out). */
/* clang-format off */
#define MD_ANY_CODES(X)                                                                            \
    X(MALFORMED)                                                                                   \
    X(UNKNOWN_COMMAND)                                                                             \
    X(INVALID_FIELD)                                                                               \
    X(MEMBER_NOT_REGISTERED)                                                                       \
    X(ACCOUNT_CLOSED)                                                                              \
    X(ACCOUNT_SUSPENDED)                                                                           \
    X(SERVICE_UNAVAILABLE)                                                                         \
    X(VERSION_CONFLICT)
/* clang-format on */

#define MD_CONTRACT_EVENTS_MAX 8

/** @brief Whether @p code is one of MD_ANY_CODES. */
bool md_rules_code_any(md_code_t code);

/**
 * @brief The codes a command of type @p type can be answered with, in the
 * order the checks run (steps 1-7), each once: the MD_ANY_CODES its row does
 * not exempt (never MALFORMED or UNKNOWN_COMMAND, which precede any type),
 * NOT_FOUND / ALREADY_EXISTS / FORBIDDEN as its row implies, then its rule's.
 * @param out room for MD_CODE_COUNT_ codes.
 * @returns how many were written (0 for a type past the table).
 */
size_t md_rules_codes_of(md_cmd_type_t type, md_code_t out[MD_CODE_COUNT_]);

/**
 * @brief The event types an accepted command of type @p type can append
 * (static strings), in the order it appends them; the implicit
 * AgreementAccepted (docs/rules-reference.md §1.2) first when it can apply.
 * A rejection appends one CommandRejected whatever the type.
 * @param out room for MD_CONTRACT_EVENTS_MAX names.
 * @returns how many were written (0: the command is never accepted, or is
 *          accepted with no events: Tick).
 */
size_t md_rules_events_of(md_cmd_type_t type, const char *out[MD_CONTRACT_EVENTS_MAX]);

/** @brief A remark on the type's contract in words ("always rejected: ..."),
 *  or NULL (static). */
const char *md_rules_contract_note(md_cmd_type_t type);

/**
 * @brief The @p i-th timer kind (rules/timers.c's table): its @p name
 * ("auto_confirm"), what arms and fires it in words (@p what), and the event
 * types its firing can append (@p events, NULL-terminated). All static.
 * @returns false past the last kind.
 */
bool md_rules_timer_kind(size_t i, const char **name, const char **what,
                         const char *const **events);

/* ---- state interface -------------------------------------------------------- */

/*
 * Aggregate state, implemented by the engine over its write transaction.
 * get:  MD_OK with the value (*val, *vlen) borrowed until the next put (copy it), or
 *       MD_ENOTFOUND, or an error (propagated by decide/evolve).
 * put:  stores a copy of the bytes; a later get in the same batch sees them.
 * stream_version: the number of events in @p stream so far (0 when none),
 *       including events appended earlier in the same batch.
 * Keys are binary-safe byte strings of at most 511 bytes (LMDB's limit).
 */
typedef struct md_state {
    void *ctx;
    md_err_t (*get)(void *ctx, const void *key, size_t klen, const void **val, size_t *vlen);
    md_err_t (*put)(void *ctx, const void *key, size_t klen, const void *val, size_t vlen);
    md_err_t (*stream_version)(void *ctx, const char *stream, uint64_t *version);
    /* seek: the first key >= key (bytewise) in *okey, *oklen (borrowed until the
     *       next put, del or seek), or MD_ENOTFOUND when there is none.
     * del:  removes key; a missing key is MD_OK. */
    md_err_t (*seek)(void *ctx, const void *key, size_t klen, const void **okey, size_t *oklen);
    md_err_t (*del)(void *ctx, const void *key, size_t klen);
} md_state_t;

/* ---- decision ---------------------------------------------------------------- */

#define MD_DECISION_EVENTS_MAX 64 /* RevokeLicense delists at most 60 products at once */
#define MD_DECISION_ARENA 16384

/* One event to append. data borrows strings from the command passed to
 * decide and from the decision's own arena: keep both alive until packed. */
typedef struct md_new_event {
    char stream[MD_STREAM_MAX + 1];
    const char *type; /* static string */
    md_data_t data;
} md_new_event_t;

typedef struct md_decision {
    bool accepted;
    /* When rejected: */
    md_code_t code;
    const char *code_name;    /* static */
    const char *clause;       /* static, NULL when none */
    char message[256];        /* names the field / amount / state */
    bool retryable;           /* SERVICE_UNAVAILABLE: do not bind command_id */
    bool malformed;           /* result has command_id null */
    const char *command_type; /* static spec name, NULL when unknown */
    /* Events to append, in order (a rejection: one CommandRejected). */
    size_t n_events;
    md_new_event_t events[MD_DECISION_EVENTS_MAX];
    /* Private: string storage for event data. */
    char arena[MD_DECISION_ARENA];
    size_t arena_len;
    char sha_hex[65];
} md_decision_t;

/**
 * @brief Decides @p cmd at time @p now against @p st (read only).
 *
 * Handles every decode status: MALFORMED yields the MALFORMED rejection with
 * {code, sha256}; REJECTED yields the deferred UNKNOWN_COMMAND/INVALID_FIELD;
 * OK runs docs/rules-reference.md "Order of checks" steps 2-7, then prepends the implicit
 * AgreementAccepted when it applies. The caller must have answered duplicates
 * (including command_id "bootstrap") before calling.
 *
 * @param d caller-owned, fully overwritten. Its events borrow from @p cmd.
 * @returns MD_OK (see d->accepted), or the state's error (MD_ESTORE,
 *          MD_EMAPFULL, MD_ECORRUPT for a record of the wrong size/format).
 */
MD_MUST_CHECK
md_err_t md_rules_decide(const md_state_t *st, const md_command_t *cmd, int64_t now,
                         md_decision_t *d, md_error_t *err);

/**
 * @brief Applies one appended event to the aggregates in @p st (the only
 * writer). Deterministic: uses only the event (type, stream, recorded_at,
 * actor, data) and the current state. Unknown types are ignored
 * (CommandRejected changes nothing).
 * @param ev an event as appended or read back; ev->data borrowed.
 * @returns MD_OK, MD_ECORRUPT (data lacks a field the type requires, or a
 *          record it refers to is missing), or the state's error.
 */
MD_MUST_CHECK
md_err_t md_rules_evolve(const md_state_t *st, const md_event_t *ev, md_error_t *err);

/**
 * @brief The bootstrap of an empty store: MemberRegistered{kind organization,
 * name "marketplace operator"} and OperatorGranted on member:<operator_id>.
 * The engine appends them with command_id and actor "bootstrap", evolves
 * them, and records command_id "bootstrap" as accepted. @p now is only
 * checked to be the recorded_at the engine will use (not otherwise read).
 * @returns MD_OK, MD_EINVAL (operator_id is not a valid id), MD_EEXIST (the
 *          member exists), or the state's error.
 */
MD_MUST_CHECK
md_err_t md_rules_bootstrap(const md_state_t *st, const char *operator_id, int64_t now,
                            md_decision_t *d, md_error_t *err);

/* ---- stored outcomes (idempotency) ------------------------------------------
 * The engine records, per command_id, "A" (accepted) or "R" followed by the
 * code name (rejected); a retryable rejection and a MALFORMED one record
 * nothing. The outcomes are thereby a function of the log: the last event of
 * a command_id says what was recorded (marketctl verify recomputes them),
 * except MD_OUTCOME_UNLOGGED (accepted, no events: Tick). */

#define MD_OUTCOME_MAX 64

/* The one outcome the log cannot show: a command accepted with no events
 * (Tick) binds its command_id like any command but appends nothing, so it is
 * recorded as "A0" (read as accepted) and a recompute takes it as stored. */
#define MD_OUTCOME_UNLOGGED "A0"

/** @brief The outcome to record for @p d into @p out ("A", "A0" when accepted
 *  with no events, or "R"+code); its length, or 0 when none is recorded
 *  (retryable or MALFORMED). */
size_t md_outcome_of_decision(const md_decision_t *d, char out[MD_OUTCOME_MAX]);

/** @brief Whether a stored outcome is MD_OUTCOME_UNLOGGED (not implied by any event). */
bool md_outcome_unlogged(const void *val, size_t len);

/**
 * @brief The outcome that appended event @p ev records for ev->command_id:
 * "A" for an event of an accepted command, "R"+code for a CommandRejected.
 * @returns its length, or 0 when the event records none (no command_id, a
 *          timer's event (command_id "timer:..."), or a retryable rejection).
 */
size_t md_outcome_of_event(const md_event_t *ev, char out[MD_OUTCOME_MAX]);

/* ---- timers (rules.md "Policy and timers") ------------------------------------ */

#define MD_DAY_MS 86400000LL

/* An armed timer: kind "auto_confirm", "settlement" or "defense", the id of its
 * order or complaint, its deadline and the seq of the event that armed it. */
typedef struct md_timer {
    char kind[16];
    char id[MD_ID_MAX + 1];
    int64_t deadline;
    uint64_t seq;
    char command_id[MD_CMDID_MAX + 1]; /* "timer:<kind>:<id>", its events' command_id */
} md_timer_t;

/**
 * @brief The first armed timer in (deadline, arming seq) order, when its
 * deadline is <= @p now (*due = true); otherwise *due = false. Reads only.
 * @returns MD_OK, MD_ECORRUPT for a malformed timer key, or the state's error.
 */
md_err_t md_rules_timer_next(const md_state_t *st, int64_t now, md_timer_t *t, bool *due,
                             md_error_t *err);

/**
 * @brief Decides what the due timer @p t appends (@p d, accepted). Writes
 * nothing: the timer index is written by evolve only, which keeps a timer
 * armed exactly while its condition holds, so a firing appends 1..n events and
 * evolving the first of them disarms it (the rules' state stays a function of
 * the log; marketctl verify recomputes it). The engine appends d's events with
 * recorded_at = t->deadline, command_id = t->command_id and actor "system",
 * evolving each, and writes no result and no outcome (md_outcome_of_event is
 * 0 for them).
 * Defensive: a timer whose condition does not hold (a state written by an
 * older version, which left moot timers armed) appends nothing and its key
 * is removed here, so the engine's firing loop always ends.
 * @returns MD_OK or the state's error.
 */
md_err_t md_rules_timer_fire(const md_state_t *st, const md_timer_t *t, md_decision_t *d,
                             md_error_t *err);

#endif
