/*
 * marketctl - the operator's, auditor's and analyst's command line.
 *
 *   marketctl --data-dir DIR events [--stream S] [--from SEQ] [--limit N]
 *   marketctl --data-dir DIR export [--from SEQ] [--limit N]
 *   marketctl --data-dir DIR verify
 *   marketctl --data-dir DIR stats
 *
 * Output is JSON lines on stdout; errors go to stderr; the exit status is 0 on
 * success, 1 when verification fails or an object is missing, 2 on misuse.
 * The store is opened read-only, so marketctl is safe beside a running daemon.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_store.h"

typedef struct ctl {
    const char *dir;
    md_store_t *store;
    md_txn_t *txn;
    const char *stream;
    uint64_t from, limit;
    md_error_t err;
    /* progress on a terminal */
    bool tty;
    double t0;
    uint64_t done, total;
} ctl_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- progress (stderr, only when it is a terminal) ------------------------------- */

static void progress(uint64_t done, uint64_t total, void *ctx)
{
    ctl_t *c = ctx;
    c->done = done;
    if (!c->tty || total == 0)
        return;
    double el = now_s() - c->t0, rate = el > 0 ? (double)done / el : 0;
    int width = 30, fill = (int)((double)width * (double)done / (double)total);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    fprintf(stderr, "\r[%s] %llu/%llu events  %.0f/s  %.0fs left ", bar,
            (unsigned long long)done, (unsigned long long)total, rate,
            rate > 0 ? (double)(total - done) / rate : 0.0);
}

static void progress_end(ctl_t *c, const char *what)
{
    double el = now_s() - c->t0;
    if (c->tty)
        fputc('\n', stderr);
    fprintf(stderr, "%s: %llu events in %.3f s (%.0f events/s)\n", what,
            (unsigned long long)c->done, el, el > 0 ? (double)c->done / el : 0.0);
}

/* ---- output ---------------------------------------------------------------------- */

static md_err_t print_json(json_t *j, md_error_t *err)
{
    if (j == NULL)
        return md_error_set(err, MD_ECODEC, "value is not representable as JSON");
    int rc = json_dumpf(j, stdout, JSON_COMPACT);
    json_decref(j);
    if (rc != 0 || fputc('\n', stdout) == EOF)
        return md_error_set(err, MD_EIO, "write to stdout failed");
    return MD_OK;
}

static md_err_t print_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                            md_error_t *err)
{
    (void)body, (void)len, (void)ctx;
    return print_json(md_event_to_json(ev, NULL, 0), err);
}

static md_err_t export_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                             md_error_t *err)
{
    ctl_t *c = ctx;
    md_err_t rc = print_json(md_event_to_json(ev, body, len), err);
    if (rc == MD_OK && (++c->done & 0xffff) == 0)
        progress(c->done, c->total, c);
    return rc;
}

/* ---- subcommands ------------------------------------------------------------------- */

static int cmd_events(ctl_t *c)
{
    md_err_t rc = c->stream ? md_txn_scan_stream(c->txn, c->stream, c->from ? c->from : 1,
                                                 c->limit, print_event, c, &c->err)
                            : md_txn_scan(c->txn, c->from ? c->from : 1, c->limit, print_event,
                                          c, &c->err);
    return rc == MD_OK ? 0 : 1;
}

static int cmd_export(ctl_t *c)
{
    uint64_t head;
    if (md_txn_head(c->txn, &head, NULL, &c->err) != MD_OK)
        return 1;
    c->total = head;
    md_err_t rc = md_txn_scan(c->txn, c->from ? c->from : 1, c->limit, export_event, c, &c->err);
    if (fflush(stdout) != 0)
        rc = md_error_set(&c->err, MD_EIO, "write to stdout failed");
    progress_end(c, "export");
    return rc == MD_OK ? 0 : 1;
}

static int cmd_verify(ctl_t *c)
{
    uint64_t n = 0, bad = 0, head;
    unsigned char hash[MD_HASH_LEN];
    char hex[2 * MD_HASH_LEN + 1];
    md_err_t rc = md_txn_verify_chain(c->txn, &n, &bad, progress, c, &c->err);
    progress_end(c, "verify");
    if (rc == MD_ECORRUPT) {
        json_t *j = json_pack("{s:b, s:s, s:I, s:s}", "ok", 0, "check", "chain", "first_bad_seq",
                              (json_int_t)bad, "error", c->err.msg);
        print_json(j, NULL);
        fprintf(stderr, "marketctl: verify failed at seq %llu: %s\n", (unsigned long long)bad,
                c->err.msg);
        c->err.code = MD_OK; /* reported already */
        return 1;
    }
    if (rc != MD_OK || md_txn_head(c->txn, &head, hash, &c->err) != MD_OK)
        return 1;
    md_hex(hash, MD_HASH_LEN, hex);
    print_json(json_pack("{s:b, s:I, s:s}", "ok", 1, "events", (json_int_t)n, "head", hex), NULL);
    return 0;
}

/* Every stored consumer offset as {topic, partition, next}. */
static json_t *offsets_json(md_txn_t *t)
{
    json_t *arr = json_array();
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    if (mdb_cursor_open(md_txn_mdb(t), md_txn_dbi(t, MD_DB_OFFSETS), &cur) != MDB_SUCCESS)
        return arr;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data, *nul = memchr(p, 0, k.mv_size);
        if (nul == NULL || k.mv_size - (size_t)(nul - p) != 5 || v.mv_size != 8)
            continue;
        uint32_t part = (uint32_t)nul[1] << 24 | (uint32_t)nul[2] << 16 | (uint32_t)nul[3] << 8 | nul[4];
        int64_t next = 0;
        for (int i = 0; i < 8; i++)
            next = (int64_t)((uint64_t)next << 8 | ((const unsigned char *)v.mv_data)[i]);
        json_array_append_new(arr, json_pack("{s:s%, s:i, s:I}", "topic", (const char *)p,
                                             (size_t)(nul - p), "partition", (int)part,
                                             "next", (json_int_t)next));
    }
    mdb_cursor_close(cur);
    return arr;
}

static size_t db_entries(md_txn_t *t, md_db_t db)
{
    MDB_stat st;
    return mdb_stat(md_txn_mdb(t), md_txn_dbi(t, db), &st) == MDB_SUCCESS ? st.ms_entries : 0;
}

static int cmd_stats(ctl_t *c)
{
    uint64_t head;
    unsigned char hash[MD_HASH_LEN];
    char hex[2 * MD_HASH_LEN + 1];
    size_t used, map;
    if (md_txn_head(c->txn, &head, hash, &c->err) != MD_OK ||
        md_store_usage(c->store, &used, &map, &c->err) != MD_OK)
        return 1;
    md_hex(hash, MD_HASH_LEN, hex);
    json_t *j = json_pack("{s:I, s:s, s:I, s:I, s:I, s:f, s:I, s:o}", "events", (json_int_t)head,
                          "head", hex, "commands_decided",
                          (json_int_t)db_entries(c->txn, MD_DB_OUTCOMES), "store_bytes",
                          (json_int_t)used, "map_bytes", (json_int_t)map, "bytes_per_event",
                          head ? (double)used / (double)head : 0.0, "outbox_depth",
                          (json_int_t)db_entries(c->txn, MD_DB_OUTBOX), "offsets",
                          offsets_json(c->txn));
    return print_json(j, &c->err) == MD_OK ? 0 : 1;
}

typedef struct subcommand {
    const char *name;
    int (*run)(ctl_t *c);
    const char *help;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"events", cmd_events, "events [--stream S] [--from SEQ] [--limit N]"},
    {"export", cmd_export, "export [--from SEQ] [--limit N]  (with body, prev_hash, hash)"},
    {"verify", cmd_verify, "verify  (hash chain; exit 1 naming the first bad seq)"},
    {"stats", cmd_stats, "stats"},
};

#define NSUB (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *f)
{
    fputs("usage: marketctl --data-dir DIR SUBCOMMAND [options]\n", f);
    for (size_t i = 0; i < NSUB; i++)
        fprintf(f, "  %s\n", subcommands[i].help);
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || *s == '-')
        return -1;
    *out = v;
    return 0;
}

static const struct option long_opts[] = {
    {"data-dir", required_argument, NULL, 'd'}, {"stream", required_argument, NULL, 's'},
    {"from", required_argument, NULL, 'f'},     {"limit", required_argument, NULL, 'l'},
    {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
};

static int parse_args(int argc, char **argv, ctl_t *c)
{
    int o;
    while ((o = getopt_long(argc, argv, "+h", long_opts, NULL)) != -1) {
        if (o == 'd')
            c->dir = optarg;
        else if (o == 's')
            c->stream = optarg;
        else if ((o == 'f' && parse_u64(optarg, &c->from) == 0) ||
                 (o == 'l' && parse_u64(optarg, &c->limit) == 0))
            continue;
        else
            return -1;
    }
    return 0;
}

static const subcommand_t *find_sub(const char *name)
{
    for (size_t i = 0; i < NSUB; i++)
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    ctl_t c = {0};
    md_store_opts_t so = {.read_only = true};
    const subcommand_t *sub;
    if (parse_args(argc, argv, &c) != 0 || optind >= argc || c.dir == NULL ||
        (sub = find_sub(argv[optind])) == NULL) {
        usage(stderr);
        return 2;
    }
    optind++;
    if (parse_args(argc, argv, &c) != 0 || optind != argc) {
        usage(stderr);
        return 2;
    }
    c.tty = isatty(STDERR_FILENO);
    c.t0 = now_s();
    int status = 1;
    if (md_store_open(c.dir, &so, &c.store, &c.err) == MD_OK &&
        md_store_read(c.store, &c.txn, &c.err) == MD_OK)
        status = sub->run(&c);
    if (status != 0 && c.err.code != MD_OK)
        fprintf(stderr, "marketctl: %s: %s\n", sub->name, c.err.msg);
    md_txn_end(c.txn);
    md_store_close(c.store);
    return status;
}
