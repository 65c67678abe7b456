/*
 * md_version.h - the version of this build and the on-disk formats it reads.
 *
 * The version string is defined once, in the VERSION file at the top of the
 * repository; the build passes it to base/version.c as -DMD_VERSION
 * (mk/install.mk). The formats are the ones the store (MD_STORE_FORMAT) and
 * the projections (md_proj_layout_format) check when they open a data
 * directory: a build reads only stores of exactly these formats.
 *
 * md_version lives in base/ (every layer may ask for it); md_version_print is
 * inline, so that it runs in the caller's layer (daemon/, tools/), which may
 * use the store's and the projections' formats.
 *
 * Threads: every function here may be called from any thread.
 */
#ifndef MD_VERSION_H
#define MD_VERSION_H

#include <stdio.h>

#include "md_proj.h"
#include "md_store.h"

/** @brief The version of this build, e.g. "0.9.0" (static storage). */
const char *md_version(void);

/**
 * @brief Prints the `--version` text of @p program to @p f: "PROGRAM VERSION",
 * then "store format: N" and "projection layout format: N", one per line.
 * @returns 0, or -1 when writing failed.
 */
static inline int md_version_print(FILE *f, const char *program)
{
    int n = fprintf(f, "%s %s\nstore format: %d\nprojection layout format: %d\n", program,
                    md_version(), MD_STORE_FORMAT, md_proj_layout_format());
    return n < 0 || fflush(f) != 0 ? -1 : 0;
}

#endif
