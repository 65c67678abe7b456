/*
 * version.c - the version of this build (md_version.h). MD_VERSION comes
 * from the VERSION file (mk/install.mk).
 */
#include "md_version.h"

#ifndef MD_VERSION
#define MD_VERSION "unknown"
#endif

const char *md_version(void)
{
    return MD_VERSION;
}
