/*
 * fixture.h - helpers shared by the cmocka suites: temporary data
 * directories and small event builders.
 */
#ifndef MD_TEST_FIXTURE_H
#define MD_TEST_FIXTURE_H

#include <stddef.h>

#include "md_event.h"
#include "md_store.h"

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a heap path. */
char *md_test_tmpdir(void);
/* Removes a directory tree made by md_test_tmpdir and frees the path. */
void md_test_rmdir(char *path);
/* Fills @p ev for appending to @p stream with a data map {n: i, note: "..."};
 * @p buf receives the packed data and must outlive the append. */
void md_test_event(md_event_t *ev, md_buf_t *buf, const char *stream, const char *type, int64_t i);
/* A write function (md_store_write) that makes a store what store format 1 was:
 * the stream index a key per event (stream '\0' version BE8 -> seq BE8) in
 * "streams" from the events, no chunks, meta 'format' 1. With a non-NULL
 * @p ctx (a bool, true) the old index misses version 2 of "member:a". Used by
 * test_store.c and by tests/tools/to_format_1 (the upgrade test). */
md_err_t md_test_to_format_1(md_txn_t *t, void *ctx, md_error_t *err);

#endif
