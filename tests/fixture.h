/*
 * fixture.h - helpers shared by the cmocka suites: temporary data
 * directories and small event builders.
 */
#ifndef MD_TEST_FIXTURE_H
#define MD_TEST_FIXTURE_H

#include <stddef.h>

#include "md_event.h"

/* Creates a fresh directory under $TMPDIR (or /tmp); returns a heap path. */
char *md_test_tmpdir(void);
/* Removes a directory tree made by md_test_tmpdir and frees the path. */
void md_test_rmdir(char *path);
/* Fills @p ev for appending to @p stream with a data map {n: i, note: "..."};
 * @p buf receives the packed data and must outlive the append. */
void md_test_event(md_event_t *ev, md_buf_t *buf, const char *stream, const char *type, int64_t i);

#endif
