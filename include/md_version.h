/*
 * md_version.h - the version of this build and the on-disk formats it reads.
 *
 * The version string is defined once, in the VERSION file at the top of the
 * repository; the build passes it to daemon/version.c as -DMD_VERSION
 * (mk/install.mk). The formats are the ones the store (MD_STORE_FORMAT) and
 * the projections (md_proj_layout_format) check when they open a data
 * directory: a build reads only stores of exactly these formats.
 *
 * Threads: every function here is pure and may be called from any thread.
 */
#ifndef MD_VERSION_H
#define MD_VERSION_H

#include <stdio.h>

/** @brief The version of this build, e.g. "0.9.0" (static storage). */
const char *md_version(void);

/**
 * @brief Prints the `--version` text of @p program to @p f: "PROGRAM VERSION",
 * then "store format: N" and "projection layout format: N", one per line.
 * @returns 0, or -1 when writing failed.
 */
int md_version_print(FILE *f, const char *program);

#endif
