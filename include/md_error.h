/*
 * md_error.h - status codes, error details and the allocation policy shared by
 * every marketd module.
 *
 * Every fallible function returns an md_err_t (MD_OK = 0, failures negative)
 * and, when the caller passes a non-NULL md_error_t, fills in a message that
 * names what failed. The first error set wins: later calls to md_error_set()
 * on an already-set error keep the original message, so the root cause is
 * what a caller finally reports.
 *
 * Threads: an md_error_t belongs to the caller (one per thread of work);
 * md_strerror's texts are static. The allocators are thread-safe (malloc's).
 * The rest of the base layer is in md_base.h.
 */
#ifndef MD_ERROR_H
#define MD_ERROR_H

#include <stddef.h>

/*
 * MD_MUST_CHECK: a result the caller must look at. Every public function that
 * returns md_err_t carries it, so a dropped error is a compile error (with
 * -Werror); a caller that really has nothing to do with a failure says so with
 * an explicit test and a comment, never with a (void) cast alone.
 */
#if defined(__GNUC__) || defined(__clang__)
#define MD_MUST_CHECK __attribute__((warn_unused_result))
#else
#define MD_MUST_CHECK
#endif

typedef enum md_err {
    MD_OK = 0,
    MD_EINVAL = -1,    /* bad argument or malformed input */
    MD_ENOMEM = -2,    /* out of memory (only where aborting is not wanted) */
    MD_ESTORE = -3,    /* LMDB reported an error */
    MD_EMAPFULL = -4,  /* LMDB map is full: abort, grow and retry the txn */
    MD_ECODEC = -5,    /* msgpack/JSON encoding or decoding failed */
    MD_ENOTFOUND = -6, /* the key or object does not exist */
    MD_ECORRUPT = -7,  /* stored data fails a consistency check */
    MD_EIO = -8,       /* a file or socket operation failed */
    MD_EKAFKA = -9,    /* librdkafka reported an error */
    MD_ECONFIG = -10,  /* configuration is invalid */
    MD_EEXIST = -11,   /* the key or object exists already */
    MD_ESTOP = -12,    /* the operation was stopped on request */
    MD_EVERSION = -13, /* the store was written by an incompatible format */
    MD_ETIMEDOUT = -14 /* a bounded wait ended before its condition held */
} md_err_t;

/* Detail of a failure: the code and a lowercase message naming the subject. */
typedef struct md_error {
    md_err_t code;
    char msg[256];
} md_error_t;

/**
 * @brief Records an error in @p e unless one is recorded already.
 * @param e may be NULL, then only the code is returned.
 * @returns @p code, so that callers can `return md_error_set(...)`.
 */
md_err_t md_error_set(md_error_t *e, md_err_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief Clears @p e (code MD_OK, empty message). @p e may be NULL. */
void md_error_clear(md_error_t *e);

/** @brief Static text for a code; never NULL. */
const char *md_strerror(md_err_t code);

/*
 * Allocation: out of memory is not recoverable in a daemon that must not lose
 * a batch half-way, so these log to stderr and abort (the redis policy).
 * They never return NULL.
 */
void *md_malloc(size_t n);
void *md_calloc(size_t count, size_t n);
void *md_realloc(void *p, size_t n);
char *md_strdup(const char *s);
char *md_strndup(const char *s, size_t n);

#endif
