/*
 * md_event.h - the event record, its canonical msgpack body and the SHA-256
 * hash chain (docs/architecture.md, "Event record and hash chain").
 *
 * body = msgpack map with exactly eight keys in this order:
 *   seq, stream, version, type, recorded_at, command_id, actor, data
 * where data is a map whose keys are sorted bytewise (recursively).
 * hash = SHA-256(prev_hash || body); the prev_hash of seq 1 is 32 zero bytes.
 *
 * Event data is built with md_data_t, a small builder for flat maps that
 * sorts its keys when packed, and read back with md_data_get_*().
 *
 * Ownership: builders borrow what they are given until packed; readers
 * return pointers into the bytes they read (valid as long as those bytes);
 * md_msgpack_to_json and md_event_to_json return new jansson references.
 * Threads: no shared state; any thread, on distinct objects.
 */
#ifndef MD_EVENT_H
#define MD_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_base.h"

#define MD_HASH_LEN 32
#define MD_STREAM_MAX 96 /* "complaint:" + a 64-byte id fits */
#define MD_TYPE_MAX 40
#define MD_CMDID_MAX 128
#define MD_ACTOR_MAX 64
#define MD_DATA_FIELDS_MAX 32

/* ---- event data builder ------------------------------------------------ */

typedef enum md_val_kind {
    MD_VAL_NIL,
    MD_VAL_BOOL,
    MD_VAL_INT, /* int64_t */
    MD_VAL_STR, /* UTF-8 text, borrowed pointer + length */
    MD_VAL_RAW  /* pre-encoded canonical msgpack (e.g. a nested map), borrowed */
} md_val_kind_t;

typedef struct md_field {
    const char *key; /* borrowed; must outlive md_data_pack() */
    md_val_kind_t kind;
    bool b;
    int64_t i;
    const char *s; /* MD_VAL_STR and MD_VAL_RAW: borrowed */
    size_t len;
} md_field_t;

/* A flat map under construction. Caller-owned (init/release), no heap. */
typedef struct md_data {
    md_field_t f[MD_DATA_FIELDS_MAX];
    size_t n;
} md_data_t;

/* Empties @p d (no allocation: the fields live in the struct). */
void md_data_init(md_data_t *d);
/* Each adder borrows key and value; adding the same key twice or more than
 * MD_DATA_FIELDS_MAX fields is a programming error and aborts. */
void md_data_str(md_data_t *d, const char *key, const char *s);
void md_data_strn(md_data_t *d, const char *key, const char *s, size_t len);
void md_data_int(md_data_t *d, const char *key, int64_t v);
void md_data_bool(md_data_t *d, const char *key, bool v);
void md_data_nil(md_data_t *d, const char *key);
void md_data_raw(md_data_t *d, const char *key, const void *msgpack, size_t len);

/* md_buf_t, the growable byte buffer, is in the base layer (md_base.h). */

/**
 * @brief Appends the canonical msgpack map of @p d (keys sorted bytewise) to @p out.
 * Sorts d's fields in place.
 */
void md_data_pack(md_data_t *d, md_buf_t *out);

/* ---- event record -------------------------------------------------------- */

/*
 * An event. Strings are fixed arrays (no allocation per event). data points to
 * the canonical msgpack map: borrowed from the caller when appending, and from
 * the store (valid until the transaction ends) or a caller buffer when read.
 */
typedef struct md_event {
    uint64_t seq;
    char stream[MD_STREAM_MAX + 1];
    uint64_t version;
    char type[MD_TYPE_MAX + 1];
    int64_t recorded_at; /* ms since epoch, UTC */
    bool has_command_id; /* false: nil (MALFORMED rejection) */
    char command_id[MD_CMDID_MAX + 1];
    bool has_actor;
    char actor[MD_ACTOR_MAX + 1];
    const unsigned char *data;
    size_t data_len;
    unsigned char prev_hash[MD_HASH_LEN];
    unsigned char hash[MD_HASH_LEN];
} md_event_t;

/**
 * @brief Encodes the canonical body of @p ev (seq .. data) and appends it to @p out.
 * @returns MD_OK, or MD_EINVAL when data is not a msgpack map.
 */
MD_MUST_CHECK
md_err_t md_event_body(const md_event_t *ev, md_buf_t *out, md_error_t *err);

/** @brief hash = SHA-256(prev_hash || body). */
void md_chain_hash(const unsigned char prev[MD_HASH_LEN], const void *body, size_t len,
                   unsigned char out[MD_HASH_LEN]);

/**
 * @brief Decodes a canonical body into @p ev (data borrowed from @p body).
 * Checks that the body has exactly the eight keys in order and that the data
 * map is canonical (keys sorted, no duplicates).
 * @returns MD_OK or MD_ECODEC with the reason in @p err.
 */
MD_MUST_CHECK
md_err_t md_event_decode_body(const void *body, size_t len, md_event_t *ev, md_error_t *err);

/* ---- reading event data ---------------------------------------------------- */

/* Each returns MD_OK, MD_ENOTFOUND when the key is absent (or nil for str),
 * or MD_ECODEC when the value has another type. Strings are borrowed from data. */
MD_MUST_CHECK
md_err_t md_data_get_str(const void *data, size_t len, const char *key, const char **s,
                         size_t *slen);
MD_MUST_CHECK
md_err_t md_data_get_int(const void *data, size_t len, const char *key, int64_t *v);
MD_MUST_CHECK
md_err_t md_data_get_bool(const void *data, size_t len, const char *key, bool *v);

/**
 * @brief Copies a string field into @p out (NUL-terminated, at most cap-1 bytes).
 * @returns as md_data_get_str, and MD_EINVAL when it does not fit.
 */
MD_MUST_CHECK
md_err_t md_data_copy_str(const void *data, size_t len, const char *key, char *out, size_t cap);

/* ---- JSON views (export and marketctl) ------------------------------------- */

struct json_t;
/**
 * @brief Converts a msgpack value (e.g. event data) to a new jansson value.
 * @returns a new reference, or NULL when the bytes are not valid msgpack.
 */
struct json_t *md_msgpack_to_json(const void *p, size_t len);

/**
 * @brief The event as a JSON object with the eight body fields, plus, when
 * @p body is non-NULL, "body" (base64), "prev_hash" and "hash" (hex).
 * @returns a new reference, or NULL on a data decoding failure.
 */
struct json_t *md_event_to_json(const md_event_t *ev, const void *body, size_t body_len);

/**
 * @brief Appends the compact JSON of md_event_to_json(ev, NULL, 0), byte for
 * byte as json_dumpb(JSON_COMPACT) writes it, to @p out (no newline), mostly
 * without building a jansson tree (the outbox does this for every event).
 * @returns MD_OK, or MD_ECODEC when the data is not JSON-representable.
 */
MD_MUST_CHECK
md_err_t md_event_json_append(const md_event_t *ev, md_buf_t *out);

/**
 * @brief Appends s[0..n) as a JSON string exactly as jansson dumps it (no
 * JSON_ENSURE_ASCII). @returns 0, or -1 (nothing appended) when s is not
 * valid UTF-8 or holds a NUL.
 */
int md_json_put_str(md_buf_t *o, const char *s, size_t n);

/* Hex and base64 helpers: out must hold 2*n+1 / 4*((n+2)/3)+1 bytes. */
void md_hex(const unsigned char *p, size_t n, char *out);
void md_base64(const unsigned char *p, size_t n, char *out);

#endif
