/*
 * state.h - aggregate records kept in md_state_t and their keys (private to
 * rules/). Records are fixed-size structs; their bytes, compacted as below,
 * ARE the store format of the "state" database, so every record begins with
 * fmt == MD__REC_FMT, and a change of layout must bump it. Strings are
 * NUL-terminated ids (65 bytes); unused bytes are zero so that equal records
 * are equal bytes.
 *
 * md__put stores a record compactly, as its bytes after fmt with the runs of
 * zero bytes squeezed out (most of a record is unused id space):
 *
 *   0xFE 'z' size(2, little-endian)      MD__REC_ZMARK0/1, then the struct size
 *   L(varint) L literal bytes  [Z(varint)]  repeated: a literal run, then a
 *                                           run of Z zero bytes
 *
 * Varints are LEB128 (7 bits a byte, low first, at most 3 bytes, minimal).
 * The groups cover the struct bytes from offset 4 (fmt is implied); zeros
 * after the last literal run are implied by the size and never written. The
 * encoder is canonical, so equal records are equal values: a zero run is cut
 * out only when it is 3 bytes or longer, only the first literal run may be
 * empty (the record starts with such a zero run), every zero run is non-empty
 * and followed by a literal run; the reader rejects anything else. md__get
 * also reads the raw form older versions wrote (exactly size bytes, first
 * uint32_t == MD__REC_FMT). A value of another size, marker or fmt, or a
 * malformed one, is MD_ECORRUPT. md__get_raw/md__put_raw values (terms,
 * wins) are stored as they are.
 *
 * Keys (ids never contain '/', so '/' separates composite keys):
 *   plat                      md__platform_t
 *   terms                     prohibited terms, lower-cased, each NUL-terminated
 *   wins                      md__winlist_t header + entries (windows not cancelled)
 *   m:<member>                md__member_t
 *   l:<member>/<category>     md__flag_t (licence held)
 *   c:<category>              md__category_t
 *   s:<store>                 md__store_t
 *   P:<product>               md__product_t
 *   o:<order>                 md__order_t
 *   v:<voucher>               md__voucher_t
 *   r:<review>                md__review_t
 *   q:<complaint>             md__complaint_t
 *   x:<sanction>              md__sanction_t
 *   k:<consent>               md__consent_t
 *   K:<subject>/<scope>/<recipient>  md__count_t (active consents)
 *   w:<window>                md__window_t
 *   g:<message>, d:<disclosure>      md__flag_t (exists)
 *   pay:<payment_ref>, promo:<identity_hash>  md__flag_t (seen / claimed)
 *   Pc:<owner>/<category>/<product>  md__flag_t (products by owner and category)
 *   ~T<deadline><seq><kind><id>     "" (the timer index, timers.c)
 */
#ifndef MD_RULES_STATE_H
#define MD_RULES_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "md_command.h"
#include "md_rules.h"

#define MD__REC_FMT 1u
#define MD__REC_ZMARK0 0xFEu /* first two bytes of a compact record */
#define MD__REC_ZMARK1 0x7Au /* 'z' */
#define MD__REC_MAX 1024     /* the largest record md__put compacts (state.c checks) */
#define MD__KEY_MAX 512

typedef char md__id_t[MD_ID_MAX + 1];

/* An active-sanction slot: which sanction holds a measure on a target. */
typedef struct md__slot {
    md__id_t sanction_id;
    uint8_t set;
    uint8_t has_exp;
    int64_t expires_at;
} md__slot_t;

enum { MD__SLOT_MUTE, MD__SLOT_RESTRICT, MD__SLOT_FREEZE, MD__SLOT_SUSPEND, MD__SLOT_COUNT_ };

enum md__provider { MD__PROV_NONE, MD__PROV_PENDING, MD__PROV_APPROVED, MD__PROV_REJECTED };

typedef struct md__platform {
    uint32_t fmt;
    int64_t agreement_version; /* current published, 0 = none */
    int64_t operators;         /* members holding the operator role */
    /* The policy (SetPolicy), all 0 until set: days of each limit. */
    int64_t after_sales_days, auto_confirm_days, defense_days, settlement_hold_days, appeal_days;
} md__platform_t;

typedef struct md__member {
    uint32_t fmt;
    uint8_t kind, is_operator, provider, closed;
    int64_t accepted_version, declined_version;
    int64_t balance;
    int64_t sanctions; /* sanctions ever applied to this member */
    char identity_hash[65];
    md__slot_t slot[MD__SLOT_COUNT_];
    int64_t held; /* released to this provider, still held (settlement) */
} md__member_t;

/* Explicit padding members: an initialiser zeroes them, so no stack garbage
 * reaches the file (padding bytes proper are left indeterminate by C). */
typedef struct md__flag {
    uint32_t fmt;
    uint8_t on;
    uint8_t pad[3];
} md__flag_t;

typedef struct md__count {
    uint32_t fmt;
    uint32_t pad;
    int64_t n;
} md__count_t;

typedef struct md__category {
    uint32_t fmt;
    uint8_t restricted, requires_review, retired;
} md__category_t;

typedef struct md__store {
    uint32_t fmt;
    uint8_t closed_by_owner;
    md__id_t owner;
    md__slot_t closed; /* close_store sanction */
} md__store_t;

enum md__product_status {
    MD__PS_LISTED,
    MD__PS_PENDING,
    MD__PS_DENIED,
    MD__PS_DELISTED,
    MD__PS_REMOVED
};
extern const char *const md__product_statuses[];

typedef struct md__product {
    uint32_t fmt;
    uint8_t status, kind;
    md__id_t store_id, owner, category_id;
    int64_t price;
    md__slot_t delisted;      /* delist_product sanction */
    uint8_t delisted_pending; /* delisted while pending_review: relists to it */
} md__product_t;

enum md__order_status {
    MD__OS_PLACED,
    MD__OS_PAID,
    MD__OS_DELIVERED,
    MD__OS_COMPLETED,
    MD__OS_CANCELLED,
    MD__OS_CLOSED,
    MD__OS_REFUNDED,
    MD__OS_PARTIALLY_REFUNDED
};
extern const char *const md__order_statuses[];

typedef struct md__order {
    uint32_t fmt;
    uint8_t status, has_review;
    md__id_t buyer, provider, store_id, product_id, voucher_id;
    md__id_t complaint; /* active complaint, "" when none */
    int64_t unit_price, quantity, discount, amount;
    int64_t escrow; /* paid and not yet released or refunded */
    /* Timers and windows (0: none). ac: auto_confirm, st: settlement; *_seq: the
     * seq of the arming event (the timer index key). */
    int64_t ac_at, ac_seq, st_at, st_seq;
    int64_t after_sales_until; /* the after-sales window closes */
    int64_t held;              /* still held for the provider while hold_open */
    uint8_t hold_open;
} md__order_t;

typedef struct md__voucher {
    uint32_t fmt;
    uint8_t promo;
    md__id_t holder, used_by; /* used_by: order that redeemed it, or "" */
    int64_t value, expires_at;
} md__voucher_t;

typedef struct md__review {
    uint32_t fmt;
    uint8_t removed;
    md__id_t order_id, author;
} md__review_t;

enum md__complaint_status {
    MD__CS_OPEN,
    MD__CS_ARBITRATION,
    MD__CS_WITHDRAWN,
    MD__CS_RULED,
    MD__CS_CLOSED
};
extern const char *const md__complaint_statuses[];

typedef struct md__complaint {
    uint32_t fmt;
    uint8_t status;
    md__id_t order_id, complainant, respondent;
    int64_t df_at, df_seq; /* the defense timer (0: none) */
    uint8_t after_sales, defended;
} md__complaint_t;

typedef struct md__sanction {
    uint32_t fmt;
    uint8_t measure, target_type, has_exp, lifted, appealed;
    md__id_t target_id;
    md__id_t party_a, party_b; /* members who may appeal */
    int64_t expires_at;
    int64_t appeal_until; /* 0: no appeal window */
    uint8_t appeal_ruled;
} md__sanction_t;

typedef struct md__consent {
    uint32_t fmt;
    uint8_t scope, revoked;
    md__id_t subject;
    char recipient[201];
} md__consent_t;

typedef struct md__window {
    uint32_t fmt;
    uint8_t cancelled;
    int64_t starts_at, ends_at;
} md__window_t;

typedef struct md__winent {
    int64_t starts_at, ends_at;
    md__id_t window_id;
} md__winent_t;

typedef struct md__winlist {
    uint32_t fmt;
    uint32_t n; /* followed by n md__winent_t */
} md__winlist_t;

/* ---- access ------------------------------------------------------------- */

/* Key "<prefix><id>" into key[MD__KEY_MAX]; returns its length. */
size_t md__key(char *key, const char *prefix, const char *id);
/* Key "<prefix><a>/<b>" (or "<prefix><a>/<b>/<c>" when c is not NULL). */
size_t md__key3(char *key, const char *prefix, const char *a, const char *b, const char *c);

/*
 * Reads a fixed-size record into rec (zeroed first), compact or raw (see the
 * top). *found tells whether it exists. MD_ECORRUPT when the stored size,
 * marker or fmt differs or the value is malformed.
 */
md_err_t md__get(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                 bool *found, md_error_t *err);
/* Like md__get, but a missing record is MD_ECORRUPT (evolve's references). */
md_err_t md__get_must(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                      md_error_t *err);
/* Stores a fixed-size record in the compact form (sets fmt). */
md_err_t md__put(const md_state_t *st, const char *key, size_t klen, void *rec, size_t size,
                 md_error_t *err);
/* Raw variable-length access (terms, windows). *val borrowed: copy it. */
md_err_t md__get_raw(const md_state_t *st, const char *key, const void **val, size_t *len,
                     bool *found, md_error_t *err);
md_err_t md__put_raw(const md_state_t *st, const char *key, const void *val, size_t len,
                     md_error_t *err);

/* The compact form of rec[size] (fmt is implied) into out[cap]: its length,
 * or 0 when it does not fit or size is not 4..MD__REC_MAX. Canonical. */
size_t md__rec_encode(const void *rec, size_t size, unsigned char *out, size_t cap);
/* Decodes a compact value into rec[size] (zeroed first, fmt set): 0, or -1
 * when it is malformed or of another size; never reads past val[len]. */
int md__rec_decode(const void *val, size_t len, void *rec, size_t size);

/* Whether a slot holds a sanction in effect at now. */
bool md__slot_active(const md__slot_t *s, int64_t now);

#endif
