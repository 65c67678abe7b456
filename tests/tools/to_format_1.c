/*
 * to_format_1.c - makes a data directory what store format 1 was, for the
 * upgrade test (built by mk/check.mk as build/tests/tools/to_format_1):
 *
 *   to_format_1 DATA_DIR
 *       Rewrites the log store of DATA_DIR, and its projections' environment
 *       DATA_DIR/proj when there is one, in store format 1: the stream index
 *       a key per event in "streams", no chunks, meta 'format' 1
 *       (md_test_to_format_1 in tests/fixture.c).
 */
#include <stdio.h>
#include <unistd.h>

#include "../fixture.h"

static int rewrite(const char *dir)
{
    md_store_t *s = NULL;
    md_error_t err = {0};
    md_err_t rc = md_store_open(dir, NULL, &s, &err);
    if (rc == MD_OK)
        rc = md_store_write(s, md_test_to_format_1, NULL, &err);
    md_store_free(s);
    if (rc != MD_OK) {
        fprintf(stderr, "to_format_1: %s: %s\n", dir, err.msg);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char proj[4200];
    if (argc != 2) {
        fprintf(stderr, "usage: to_format_1 DATA_DIR\n");
        return 2;
    }
    snprintf(proj, sizeof proj, "%s/proj", argv[1]);
    if (rewrite(argv[1]) != 0)
        return 1;
    return access(proj, F_OK) == 0 ? rewrite(proj) : 0;
}
