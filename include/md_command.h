/*
 * md_command.h - the command schema table and the command decoder
 * (docs/rules-reference.md, "Command envelope", "Order of checks" step 1 and "Fine points").
 *
 * Every command type is described by a static const row (md_cmd_spec_t):
 * its name, its target stream, the field that names the target id, and its
 * data fields in declaration order with their types and limits. The decoder
 * turns one input message (JSON text, or the same envelope as a msgpack map)
 * into an md_command_t without any heap allocation that outlives the call:
 * strings are copied into a fixed arena inside the struct, so a command can be
 * copied with memcpy and needs no release.
 *
 * Outcome of decoding (md_command_t.status):
 *   MD_DECODE_MALFORMED  not decodable, not an object, or command_id is not a
 *                        string of 1..128 bytes; only sha256 (of the raw bytes)
 *                        and detail are meaningful; nothing is keyed on it.
 *   MD_DECODE_REJECTED   a valid command_id, but the envelope or data fails a
 *                        step-1 check: reject_code is UNKNOWN_COMMAND or
 *                        INVALID_FIELD. The rejection is deferred because the
 *                        engine checks duplicates (idempotency) first.
 *   MD_DECODE_OK         a fully decoded command.
 *
 * Thread safety: all functions are pure and may be called from any thread.
 */
#ifndef MD_COMMAND_H
#define MD_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_base.h"

#define MD_ID_MAX 64          /* ids are 1..64 bytes of [A-Za-z0-9._:-] */
#define MD_COMMAND_ID_MAX 128 /* command_id and correlation_id */
/* The command_id prefix of timer events ("timer:<kind>:<id>", md_rules.h),
 * reserved: a command whose command_id starts with it is MALFORMED (JSON and
 * msgpack alike). */
#define MD_TIMER_CMDID_PREFIX "timer:"
#define MD_CMD_NAME_MAX 40  /* longest command type name kept */
#define MD_CMD_FIELDS_MAX 8 /* most data fields of any command */
#define MD_CMD_ARENA 8192   /* room for every string field of one command */
/* An EVIDENCE field: 1..MD_EVIDENCE_MAX items {sha256 (64 hex), name (text
 * 1..MD_EVIDENCE_NAME_MAX bytes), bytes (1..MD_EVIDENCE_BYTES_MAX)}. */
#define MD_EVIDENCE_MAX 10
#define MD_EVIDENCE_NAME_MAX 200
#define MD_EVIDENCE_BYTES_MAX 10000000000LL
#define MD_MONEY_MAX 1000000000000LL /* amounts are 1..10^12 fen */

/* ---- field schema ------------------------------------------------------- */

typedef enum md_ftype {
    MD_FT_ID,      /* 1..64 bytes of [A-Za-z0-9._:-] */
    MD_FT_TEXT,    /* 1..max bytes of valid UTF-8 (optionally a pattern) */
    MD_FT_INT,     /* JSON integer in [min, max] (1.0, 1e3, true are not) */
    MD_FT_BOOL,    /* true / false */
    MD_FT_HEX64,   /* 64 hex digits, either case; kept lower-cased */
    MD_FT_TIME,    /* YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z, kept as ms since epoch */
    MD_FT_ENUM,    /* one of a list of strings; kept as string and index */
    MD_FT_EVIDENCE /* 1..10 {sha256, name, bytes}: kept as canonical msgpack (an array) */
} md_ftype_t;

typedef struct md_fspec {
    const char *name;
    md_ftype_t type;
    bool required;
    int64_t min, max; /* INT: value range; TEXT: max bytes (min 1) */
    bool has_default; /* INT/BOOL: value when absent */
    int64_t def;
    const char *const *enums; /* ENUM: NULL-terminated list */
    /* TEXT and ID: optional extra syntax check (an agreement clause, a reserved id). */
    bool (*pattern)(const char *s, size_t len);
} md_fspec_t;

/* Command types, in the order of docs/rules-reference.md. */
typedef enum md_cmd_type {
    MD_CMD_REGISTER_MEMBER,
    MD_CMD_PUBLISH_AGREEMENT,
    MD_CMD_ACCEPT_AGREEMENT,
    MD_CMD_DECLINE_AGREEMENT,
    MD_CMD_TRANSFER_ACCOUNT,
    MD_CMD_GRANT_OPERATOR,
    MD_CMD_REVOKE_OPERATOR,
    MD_CMD_APPLY_AS_PROVIDER,
    MD_CMD_APPROVE_PROVIDER,
    MD_CMD_REJECT_PROVIDER,
    MD_CMD_DEFINE_CATEGORY,
    MD_CMD_RETIRE_CATEGORY,
    MD_CMD_GRANT_LICENSE,
    MD_CMD_REVOKE_LICENSE,
    MD_CMD_PROHIBIT_TERM,
    MD_CMD_ALLOW_TERM,
    MD_CMD_OPEN_STORE,
    MD_CMD_CLOSE_STORE,
    MD_CMD_REOPEN_STORE,
    MD_CMD_PUBLISH_PRODUCT,
    MD_CMD_REVIEW_PRODUCT,
    MD_CMD_CHANGE_PRICE,
    MD_CMD_DELIST_PRODUCT,
    MD_CMD_RELIST_PRODUCT,
    MD_CMD_DEPOSIT_FUNDS,
    MD_CMD_WITHDRAW_FUNDS,
    MD_CMD_PLACE_ORDER,
    MD_CMD_PAY_ORDER,
    MD_CMD_DELIVER_ORDER,
    MD_CMD_CONFIRM_ORDER,
    MD_CMD_CANCEL_ORDER,
    MD_CMD_ISSUE_VOUCHER,
    MD_CMD_TRANSFER_VOUCHER,
    MD_CMD_POST_REVIEW,
    MD_CMD_SEND_MESSAGE,
    MD_CMD_FILE_COMPLAINT,
    MD_CMD_APPLY_ARBITRATION,
    MD_CMD_SUBMIT_DEFENSE,
    MD_CMD_WITHDRAW_COMPLAINT,
    MD_CMD_RULE_ON_DISPUTE,
    MD_CMD_APPLY_SANCTION,
    MD_CMD_LIFT_SANCTION,
    MD_CMD_APPEAL_SANCTION,
    MD_CMD_RULE_ON_APPEAL,
    MD_CMD_GRANT_CONSENT,
    MD_CMD_REVOKE_CONSENT,
    MD_CMD_DISCLOSE_RECORDS,
    MD_CMD_SCHEDULE_MAINTENANCE,
    MD_CMD_CANCEL_MAINTENANCE,
    MD_CMD_SET_POLICY,
    MD_CMD_TICK,
    MD_CMD_COUNT_
} md_cmd_type_t;

struct md_command;

typedef struct md_cmd_spec {
    md_cmd_type_t type;
    const char *name;   /* "PlaceOrder" */
    const char *stream; /* target stream prefix: "order", "platform", ... */
    /* Field whose value is the target id (stream "<stream>:<id>"); NULL means
     * the actor for "member" and no id for "platform". */
    const char *target_field;
    const md_fspec_t *fields; /* data fields in declaration order */
    size_t nfields;
    /* Step-1 checks across fields (data alone), run after every field is
     * valid. Returns the name of the bad field and writes why into msg, or
     * returns NULL. May be NULL. */
    const char *(*xcheck)(const struct md_command *c, char *msg, size_t cap);
} md_cmd_spec_t;

/** @brief The spec of command type @p name, or NULL when unknown. */
const md_cmd_spec_t *md_cmd_spec_find(const char *name, size_t len);
/** @brief The spec of @p type (never NULL for a valid type). */
const md_cmd_spec_t *md_cmd_spec_of(md_cmd_type_t type);

/**
 * @brief The decoder's envelope table (after command_id and type, in the
 * order errors are reported): field @p i's name and what its value must be.
 * Returns false past the last. For the generated docs (tools/md_docgen.c).
 */
bool md_envelope_field(size_t i, const char **name, const char **expect);

/* ---- decoded command ------------------------------------------------------ */

typedef enum md_decode_status {
    MD_DECODE_OK = 0,
    MD_DECODE_MALFORMED,
    MD_DECODE_REJECTED
} md_decode_status_t;

/* A decoded data field value. Strings live in md_command_t.arena. */
typedef struct md_cval {
    bool present;      /* given, or filled from its default */
    int64_t i;         /* INT, BOOL (0/1), TIME (ms), ENUM (index) */
    uint16_t off, len; /* ID, TEXT, HEX64, ENUM: bytes in arena */
} md_cval_t;

typedef struct md_command {
    md_decode_status_t status;
    /* MALFORMED: SHA-256 of the raw bytes and the decoder's reason. */
    unsigned char sha256[32];
    char detail[200]; /* why MALFORMED / REJECTED (for logs) */

    char command_id[MD_COMMAND_ID_MAX + 1];
    const md_cmd_spec_t *spec; /* NULL when the type is unknown */

    /* Envelope fields; each has_* is true only when present and valid. */
    bool has_actor;
    char actor[MD_ID_MAX + 1];
    bool has_issued_at;
    int64_t issued_at; /* ms since epoch, UTC */
    bool has_expected_version;
    int64_t expected_version;
    bool has_correlation_id;
    char correlation_id[MD_COMMAND_ID_MAX + 1];

    /* REJECTED: "UNKNOWN_COMMAND" or "INVALID_FIELD" (static strings) and a
     * message naming the field, e.g. "data.price: expected an integer ...". */
    const char *reject_code;
    char reject_msg[240];

    md_cval_t v[MD_CMD_FIELDS_MAX]; /* parallel to spec->fields */
    char arena[MD_CMD_ARENA];
    size_t arena_len;
} md_command_t;

typedef struct md_decode_opts {
    bool require_issued_at; /* clock = command: issued_at is required */
} md_decode_opts_t;

/**
 * @brief Decodes one JSON command (jansson, JSON_REJECT_DUPLICATES).
 * @param buf, len the raw bytes (not necessarily NUL-terminated).
 * @param opts may be NULL (issued_at optional).
 * @param out  caller-owned; fully overwritten. No release needed.
 * @returns out->status.
 */
md_decode_status_t md_command_decode_json(const void *buf, size_t len, const md_decode_opts_t *opts,
                                          md_command_t *out);

/**
 * @brief Decodes the same envelope given as one msgpack map, with the same
 * strictness as JSON: duplicate keys, non-string keys, invalid UTF-8 or NUL in
 * strings, bin/ext values, integers beyond int64, NaN/infinite floats and
 * trailing bytes are MALFORMED; a float where an integer is expected is
 * INVALID_FIELD, as 1.0 is in JSON.
 * @returns out->status.
 */
md_decode_status_t md_command_decode_msgpack(const void *buf, size_t len,
                                             const md_decode_opts_t *opts, md_command_t *out);

/* ---- reading a decoded command (status OK) ------------------------------- */

/** @brief A string field (ID, TEXT, HEX64, ENUM), NUL-terminated and borrowed
 *  from @p c; NULL when absent or not a field of the command. */
const char *md_cmd_str(const md_command_t *c, const char *field);
/** @brief The bytes of a string or EVIDENCE field (msgpack) and their length;
 *  NULL when absent. */
const char *md_cmd_bytes(const md_command_t *c, const char *field, size_t *len);
/** @brief An INT, BOOL, TIME or ENUM (index) field; false when absent. */
bool md_cmd_int(const md_command_t *c, const char *field, int64_t *v);
/** @brief Whether @p field was given (or defaulted). */
bool md_cmd_has(const md_command_t *c, const char *field);

/**
 * @brief Writes the command's target stream ("order:o-1", "member:<actor>",
 * "platform") into @p out. Needs spec and, for member commands without a
 * member_id field, the actor.
 * @returns false when it cannot be formed (unknown type, missing id) or does
 * not fit @p cap.
 */
bool md_cmd_target_stream(const md_command_t *c, char *out, size_t cap);

/* ---- validators shared with the rules ------------------------------------ */

/** @brief Whether s[0..len) is 1..64 bytes of [A-Za-z0-9._:-]. */
bool md_valid_id(const char *s, size_t len);
/* md_valid_utf8 (whether s[0..len) is valid UTF-8 without NUL) is in md_base.h. */
/**
 * @brief Parses an RFC 3339 UTC time as the Fine points define it
 * (YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z, real date, no leap second).
 * @param ms receives ms since epoch (extra fraction digits truncated).
 */
bool md_parse_time(const char *s, size_t len, int64_t *ms);
/** @brief Formats @p ms as YYYY-MM-DDTHH:MM:SS.mmmZ into out[25]. */
void md_format_time(int64_t ms, char out[25]);

#endif
