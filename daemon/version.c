/*
 * version.c - the build's version and the on-disk formats it reads
 * (md_version.h). MD_VERSION comes from the VERSION file (mk/install.mk).
 */
#include "md_version.h"

#include "md_proj.h"
#include "md_store.h"

#ifndef MD_VERSION
#define MD_VERSION "unknown"
#endif

const char *md_version(void)
{
    return MD_VERSION;
}

int md_version_print(FILE *f, const char *program)
{
    int n = fprintf(f, "%s %s\nstore format: %d\nprojection layout format: %d\n", program,
                    md_version(), MD_STORE_FORMAT, md_proj_layout_format());
    return n < 0 || fflush(f) != 0 ? -1 : 0;
}
