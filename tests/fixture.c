/*
 * fixture.c - see fixture.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

char *md_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof tmpl, "%s/marketd-test-XXXXXX", base && *base ? base : "/tmp");
    if (mkdtemp(tmpl) == NULL) {
        perror("mkdtemp");
        abort();
    }
    return md_strdup(tmpl);
}

void md_test_rmdir(char *path)
{
    char cmd[600];
    if (path == NULL)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", path);
    free(path);
}

void md_test_event(md_event_t *ev, md_buf_t *buf, const char *stream, const char *type, int64_t i)
{
    md_data_t d;
    memset(ev, 0, sizeof *ev);
    snprintf(ev->stream, sizeof ev->stream, "%s", stream);
    snprintf(ev->type, sizeof ev->type, "%s", type);
    ev->recorded_at = 1764151200000 + i;
    ev->has_command_id = ev->has_actor = true;
    snprintf(ev->command_id, sizeof ev->command_id, "c-%lld", (long long)i);
    snprintf(ev->actor, sizeof ev->actor, "m-tester");
    md_data_init(&d);
    md_data_int(&d, "n", i);
    md_data_str(&d, "note", "a test event");
    md_buf_reset(buf);
    md_data_pack(&d, buf);
    ev->data = buf->p;
    ev->data_len = buf->len;
}
