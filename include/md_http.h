/*
 * md_http.h - the read-only HTTP API for analytics consumers and auditors
 * (docs/api.md), served by libmicrohttpd from its own thread pool. Every
 * request reads one LMDB snapshot (a read transaction), so reads never block
 * the writer.
 *
 * Access: bearer tokens from a file, one "TOKEN ROLE" per line, ROLE one of
 * auditor (everything, events included), analyst (orders, accounts, sales;
 * personal data redacted) or member:ID (that member's own account, orders and
 * audit trail). Tokens are kept as SHA-256 digests, compared in constant time
 * and never logged. /healthz, /readyz and /metrics need no token.
 *
 * Threads: md_http_start/md_http_free on the main thread; requests run on
 * libmicrohttpd's pool, each with its own read transaction. md_tokens_* are
 * read-only after md_tokens_load: any thread.
 */
#ifndef MD_HTTP_H
#define MD_HTTP_H

#include "md_error.h"
#include "md_proj.h"
#include "md_store.h"

typedef struct md_http md_http_t;

typedef struct md_http_opts {
    const char *listen;      /* "HOST:PORT" or ":PORT" (all interfaces) */
    const char *tokens_file; /* required */
    unsigned threads;        /* worker threads; 0 = 4 */
} md_http_opts_t;

/**
 * @brief Starts serving. @p store and @p proj are borrowed and must outlive
 * the server (md_http_free first).
 * @returns MD_OK, MD_ECONFIG (listen address, tokens file), MD_EIO (bind).
 */
MD_MUST_CHECK
md_err_t md_http_start(const md_http_opts_t *o, md_store_t *store, md_proj_t *proj, md_http_t **out,
                       md_error_t *err);

/** @brief Stops the server and frees it; NULL does nothing. */
void md_http_free(md_http_t *h);
/* The old name of md_http_free (one free verb: *_free), kept while branches written
 * against it merge; remove once none is left. */
static inline void md_http_stop(md_http_t *h)
{
    md_http_free(h);
}

/* ---- access control (exposed for tests) ---------------------------------------- */

typedef enum md_role { MD_ROLE_NONE, MD_ROLE_AUDITOR, MD_ROLE_ANALYST, MD_ROLE_MEMBER } md_role_t;

typedef struct md_principal {
    md_role_t role;
    char member[65]; /* MD_ROLE_MEMBER: the member id */
} md_principal_t;

typedef struct md_tokens md_tokens_t;

/** @brief Loads a tokens file. A file accessible by others is refused
 *  (MD_ECONFIG, like ssh with a private key); one accessible by its group is
 *  loaded with a warning. @returns MD_OK, MD_EIO, MD_ECONFIG (file:line, mode). */
MD_MUST_CHECK
md_err_t md_tokens_load(const char *path, md_tokens_t **out, md_error_t *err);
/** @brief Frees what md_tokens_load made; NULL does nothing. */
void md_tokens_free(md_tokens_t *t);

/**
 * @brief Finds the principal of a presented token, comparing its digest with
 * every stored digest in constant time. @returns false when unknown.
 */
bool md_tokens_check(const md_tokens_t *t, const char *token, md_principal_t *who);

#endif
