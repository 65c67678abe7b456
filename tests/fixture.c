/*
 * fixture.c - see fixture.h.
 */
#include <stdbool.h>
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

md_err_t md_test_to_format_1(md_txn_t *t, void *ctx, md_error_t *err)
{
    bool gap = ctx != NULL;
    MDB_dbi old;
    uint64_t head = 0;
    unsigned char k[MD_STREAM_MAX + 9], v[8], f1[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    int mrc = mdb_dbi_open(md_txn_mdb(t), "streams", MDB_CREATE, &old);
    for (uint64_t seq = 1; rc == MD_OK && mrc == MDB_SUCCESS && seq <= head; seq++) {
        md_event_t ev;
        if ((rc = md_txn_event(t, seq, &ev, NULL, NULL, err)) != MD_OK)
            break;
        if (gap && ev.version == 2 && strcmp(ev.stream, "member:a") == 0)
            continue;
        size_t n = strlen(ev.stream);
        memcpy(k, ev.stream, n + 1);
        for (int i = 0; i < 8; i++) {
            k[n + 1 + i] = (unsigned char)(ev.version >> (56 - 8 * i));
            v[i] = (unsigned char)(seq >> (56 - 8 * i));
        }
        MDB_val key = {n + 9, k}, val = {8, v};
        mrc = mdb_put(md_txn_mdb(t), old, &key, &val, 0);
    }
    if (rc == MD_OK && mrc == MDB_SUCCESS)
        mrc = mdb_drop(md_txn_mdb(t), md_txn_dbi(t, MD_DB_STREAMS), 0);
    if (rc == MD_OK && mrc == MDB_SUCCESS)
        rc = md_txn_meta_put(t, "format", f1, 8, err);
    return rc == MD_OK ? md_store_err(mrc, err, "to format 1") : rc;
}
