/*
 * proj_fixture.h - helpers for the projection suites: a temporary store with
 * an engine (clock = command) whose projections are attached, fed with
 * JSON-lines commands, and small readers of the projections.
 */
#ifndef MD_TEST_PROJ_FIXTURE_H
#define MD_TEST_PROJ_FIXTURE_H

#include <jansson.h>
#include <stddef.h>

#include "md_engine.h"
#include "md_proj.h"
#include "md_store.h"

typedef struct proj_fx {
    char *dir;
    md_store_t *store;
    md_engine_t *eng;
    md_proj_t *proj;
} proj_fx_t;

/** @brief A fresh store under $TMPDIR; @p attach: projections hooked to the engine. */
proj_fx_t *proj_fx_new(bool attach);
/** @brief Closes everything and removes the directory. */
void proj_fx_free(proj_fx_t *f);

/** @brief Runs @p n command lines as one batch; returns md_engine_process's code. */
md_err_t proj_fx_run(proj_fx_t *f, const char *const *lines, size_t n);
/** @brief Runs the first @p max (0 = all) lines of a JSON-lines file in batches of
 *  @p batch; returns the number of commands run, or -1. */
long proj_fx_run_file(proj_fx_t *f, const char *path, size_t batch, size_t max);

/** @brief md_proj_get in a fresh read transaction: a new object, or NULL when missing. */
json_t *proj_fx_get(proj_fx_t *f, const char *kind, const char *id);
/** @brief An integer field of proj_fx_get (or -1 when the object is missing). */
long long proj_fx_int(proj_fx_t *f, const char *kind, const char *id, const char *field);
/** @brief A string field of proj_fx_get copied into a static buffer ("" when null/missing). */
const char *proj_fx_str(proj_fx_t *f, const char *kind, const char *id, const char *field);

/** @brief The number of rows of a list query (0 limit = all) and the ids in @p ids
 *  (comma-separated `field` values, may be NULL). */
size_t proj_fx_orders(proj_fx_t *f, const md_proj_order_filter_t *flt, char *ids, size_t cap);
size_t proj_fx_audit(proj_fx_t *f, const md_proj_audit_filter_t *flt, const char *action,
                     const char *role);

/** @brief md_proj_verify in a fresh read transaction (report may be NULL). */
md_err_t proj_fx_verify(proj_fx_t *f, md_proj_report_t *rep);
/** @brief Digest of the live projections and the head seq. */
void proj_fx_digest(proj_fx_t *f, md_proj_digest_t *d, uint64_t *head);
/** @brief Digest of the projections of the store in @p dir (e.g. a replay's output). */
void proj_fx_dir_digest(const char *dir, md_proj_digest_t *d);

/** @brief The demo day, wherever the tests run from. */
const char *proj_fx_demo_path(void);
/** @brief The demo day's command lines, at most @p max (each a new string the
 *  caller frees); returns how many. */
size_t proj_fx_demo_lines(char **lines, size_t max);
/** @brief The log's head seq, read in a transaction of its own. */
uint64_t proj_fx_head(proj_fx_t *f);

#endif
