/*
 * marketctl - the operator's, auditor's and analyst's command line.
 *
 *   marketctl --data-dir DIR events [--stream S] [--from SEQ] [--limit N]
 *   marketctl --data-dir DIR export [--from SEQ] [--limit N]
 *   marketctl --data-dir DIR verify [--checkpoints CPS.jsonl --keys DIR]
 *   marketctl keygen | checkpoints | verify-export ...   (ctl.h, ctl_checkpoint.c)
 *   marketctl --data-dir DIR stats
 *   marketctl --data-dir DIR get order|account|store|product|complaint|sanction|voucher ID
 *   marketctl --data-dir DIR orders [--buyer M] [--provider M] [--status S] [--day DAY]
 *   marketctl --data-dir DIR audit [--subject ID|KIND:ID] [--actor M]
 *   marketctl --data-dir DIR sales [--provider M] [--from DAY] [--to DAY]
 *   marketctl --data-dir DIR rebuild
 *   marketctl --data-dir DIR replay --until SEQ --out DIR2
 *   marketctl --data-dir DIR backup --out DIR2 [--new-identity]
 * Lists take --limit N and --cursor C; when more rows may follow, the last
 * line on stderr is `next_cursor: C`. `get` and `account` judge expiring
 * sanctions at --as-of (ms or YYYY-MM-DDTHH:MM:SSZ; default: now).
 *
 * Output is JSON (one object) or JSON lines on stdout; errors go to stderr;
 * the exit status is 0 on success, 1 when verification fails or an object is
 * missing, 2 on misuse. The store is opened read-only (rebuild excepted), so
 * marketctl is safe beside a running daemon.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "md_proj.h"
#include "md_store.h"
#include "md_base.h"
#include "md_version.h"

typedef struct ctl {
    const char *dir;
    md_store_t *store;
    md_txn_t *txn;
    md_proj_t *proj;
    const char *stream;
    uint64_t from, limit, until;
    const char *from_s, *to, *out, *cursor;
    const char *buyer, *provider, *status, *day, *subject, *actor;
    const char *args[3];          /* positional arguments after the subcommand */
    int nargs;
    int64_t as_of;
    const char *checkpoints, *keys; /* verify against signed checkpoints */
    bool new_identity;            /* backup --new-identity */
    md_error_t err;
    /* progress on a terminal */
    bool tty;
    double t0;
    uint64_t done, total;
} ctl_t;

/* ---- progress (stderr, only when it is a terminal) ------------------------------- */

static void progress(uint64_t done, uint64_t total, void *ctx)
{
    ctl_t *c = ctx;
    c->done = done;
    if (!c->tty || total == 0)
        return;
    double el = md_mono_s() - c->t0, rate = el > 0 ? (double)done / el : 0;
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
    double el = md_mono_s() - c->t0;
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

/* Progress of a phase that knows its total (verify's second walk restarts the bar). */
static void progress_phase(ctl_t *c, uint64_t total)
{
    c->total = total;
    c->done = 0;
}

static json_t *digest_json(const md_proj_digest_t *d)
{
    json_t *j = json_object();
    char hex[2 * MD_HASH_LEN + 1];
    for (int i = 0; i < MD_PROJ_COUNT_; i++) {
        md_hex(d->sha[i], MD_HASH_LEN, hex);
        md_json_set(j, md_proj_name((md_proj_id_t)i),
                    json_pack("{s:s, s:I}", "sha256", hex, "entries",
                              (json_int_t)d->entries[i]));
    }
    return j;
}

/* The projection half of verify: live digests against a rebuild. */
static int verify_projections(ctl_t *c, uint64_t n, const char *head, ctl_derived_t *dv)
{
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    int status = 0;
    progress_phase(c, n);
    md_err_t rc = md_proj_verify(c->proj, c->txn, progress, c, rep, &c->err);
    c->done = n;
    progress_end(c, "verify");
    if (rc == MD_ECORRUPT) {
        json_t *j = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s}", "ok", 0, "check", "projections",
                              "projection", rep->bad >= 0 ? md_proj_name(rep->bad) : "all",
                              "db", rep->db, "first_differing_key", rep->key, "error",
                              c->err.msg);
        print_json(j, NULL);
        fprintf(stderr, "marketctl: verify failed: %s\n", c->err.msg);
        c->err.code = MD_OK;
        status = 1;
    } else if (rc != MD_OK) {
        status = 1;
    } else {
        status = ctl_derived_end(dv, json_pack("{s:b, s:I, s:s, s:o}", "ok", 1, "events",
                                               (json_int_t)n, "head", head, "projections",
                                               digest_json(&rep->live)),
                                 &c->err);
        dv = NULL;
    }
    if (dv)
        ctl_derived_end(dv, NULL, &c->err);
    free(rep);
    return status;
}

static int cmd_verify(ctl_t *c)
{
    uint64_t n = 0, bad = 0, head;
    unsigned char hash[MD_HASH_LEN];
    char hex[2 * MD_HASH_LEN + 1];
    if (md_txn_head(c->txn, &head, NULL, &c->err) != MD_OK)
        return 1;
    ctl_derived_t *dv = ctl_derived_start(c->store); /* rules' state and outcomes, beside */
    progress_phase(c, head);
    md_err_t rc = md_txn_verify_chain(c->txn, &n, &bad, progress, c, &c->err);
    if (rc == MD_ECORRUPT) {
        progress_end(c, "verify");
        json_t *j = json_pack("{s:b, s:s, s:I, s:s}", "ok", 0, "check", "chain", "first_bad_seq",
                              (json_int_t)bad, "error", c->err.msg);
        print_json(j, NULL);
        fprintf(stderr, "marketctl: verify failed at seq %llu: %s\n", (unsigned long long)bad,
                c->err.msg);
        c->err.code = MD_OK; /* reported already */
        return ctl_derived_end(dv, NULL, &c->err);
    }
    if (rc != MD_OK || md_txn_head(c->txn, &head, hash, &c->err) != MD_OK)
        return ctl_derived_end(dv, NULL, &c->err);
    if (c->checkpoints || c->keys) { /* signed checkpoints, external to the store */
        int st = ctl_verify_store_checkpoints(c->txn, c->checkpoints, c->keys);
        if (st != 0) {
            ctl_derived_end(dv, NULL, &c->err);
            return st;
        }
    }
    md_hex(hash, MD_HASH_LEN, hex);
    if (c->proj == NULL) {
        progress_end(c, "verify");
        fprintf(stderr, "marketctl: verify: store has no projections; chain checked only\n");
        return ctl_derived_end(dv, json_pack("{s:b, s:I, s:s, s:s}", "ok", 1, "events",
                                             (json_int_t)n, "head", hex, "projections",
                                             "absent"),
                               &c->err);
    }
    return verify_projections(c, n, hex, dv);
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
        md_json_append(arr, json_pack("{s:s%, s:i, s:I}", "topic", (const char *)p,
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
    json_t *pj = NULL;
    if (c->proj && md_proj_stats(c->proj, c->txn, &pj, &c->err) != MD_OK) {
        json_decref(j);
        return 1;
    }
    md_json_set(j, "projections", pj ? pj : json_null());
    return print_json(j, &c->err) == MD_OK ? 0 : 1;
}

/* ---- projection queries ------------------------------------------------------------ */

static md_err_t print_row(json_t *row, void *ctx, md_error_t *err)
{
    (void)ctx;
    return print_json(json_incref(row), err);
}

/* Ends a list: flushes stdout and tells the next cursor on stderr. */
static int list_end(ctl_t *c, md_err_t rc, const md_proj_page_t *page)
{
    if (rc == MD_OK && fflush(stdout) != 0)
        rc = md_error_set(&c->err, MD_EIO, "write to stdout failed");
    if (rc == MD_OK && page->next[0])
        fprintf(stderr, "next_cursor: %s\n", page->next);
    return rc == MD_OK ? 0 : 1;
}

static int cmd_get(ctl_t *c)
{
    json_t *j = NULL;
    if (c->nargs != 2) {
        md_error_set(&c->err, MD_EINVAL, "usage: get order|account|store|product|complaint|"
                                         "sanction|voucher ID");
        return 2;
    }
    if (md_proj_get(c->proj, c->txn, c->args[0], c->args[1], c->as_of, &j, &c->err) != MD_OK)
        return c->err.code == MD_EINVAL ? 2 : 1;
    return print_json(j, &c->err) == MD_OK ? 0 : 1;
}

static int cmd_orders(ctl_t *c)
{
    md_proj_order_filter_t f = {c->buyer, c->provider, c->status, c->day};
    md_proj_page_t page = {.limit = c->limit, .cursor = c->cursor};
    return list_end(c, md_proj_orders(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

static int cmd_audit(ctl_t *c)
{
    md_proj_audit_filter_t f = {c->subject, c->actor};
    md_proj_page_t page = {.limit = c->limit, .cursor = c->cursor};
    return list_end(c, md_proj_audit(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

static int cmd_sales(ctl_t *c)
{
    md_proj_sales_filter_t f = {c->provider, c->from_s, c->to};
    md_proj_page_t page = {.limit = c->limit, .cursor = c->cursor};
    return list_end(c, md_proj_sales(c->proj, c->txn, &f, &page, print_row, c, &c->err), &page);
}

/* ---- rebuild and replay ------------------------------------------------------------------ */

static int cmd_rebuild(ctl_t *c)
{
    uint64_t n = 0, head = 0;
    md_txn_end(c->txn); /* the writer must hold no read transaction */
    c->txn = NULL;
    md_txn_t *t = NULL;
    if (md_store_read(c->store, &t, &c->err) == MD_OK &&
        md_txn_head(t, &head, NULL, &c->err) != MD_OK)
        head = 0; /* the progress total only: the rebuild below reports the store's error */
    md_txn_end(t);
    progress_phase(c, head);
    md_err_t rc = md_proj_rebuild(c->proj, progress, c, &n, &c->err);
    c->done = n;
    progress_end(c, "rebuild");
    if (rc != MD_OK)
        return 1;
    return print_json(json_pack("{s:b, s:I}", "ok", 1, "events", (json_int_t)n), &c->err) == MD_OK
               ? 0
               : 1;
}

static int cmd_replay(ctl_t *c)
{
    uint64_t n = 0;
    if (c->until == 0 || c->out == NULL) {
        md_error_set(&c->err, MD_EINVAL, "usage: replay --until SEQ --out DIR");
        return 2;
    }
    progress_phase(c, c->until);
    md_err_t rc = md_proj_replay(c->txn, c->until, c->out, progress, c, &n, &c->err);
    c->done = n;
    progress_end(c, "replay");
    if (rc != MD_OK)
        return 1;
    return print_json(json_pack("{s:b, s:I, s:s}", "ok", 1, "events", (json_int_t)n, "out",
                                c->out),
                      &c->err) == MD_OK
               ? 0
               : 1;
}

static int cmd_backup(ctl_t *c)
{
    return ctl_backup(c->store, c->out, c->new_identity, &c->err);
}

/* What a subcommand needs opened. */
enum { NEEDS_PROJ = 1, PROJ_OPTIONAL = 2, WRITES = 4 };

typedef struct subcommand {
    const char *name;
    int (*run)(ctl_t *c);
    int needs;
    const char *help;
} subcommand_t;

static const subcommand_t subcommands[] = {
    {"events", cmd_events, 0, "events [--stream S] [--from SEQ] [--limit N]"},
    {"export", cmd_export, 0, "export [--from SEQ] [--limit N]  (with body, prev_hash, hash)"},
    {"verify", cmd_verify, PROJ_OPTIONAL,
     "verify [--checkpoints CPS.jsonl --keys DIR]  (hash chain, signed checkpoints, projections,"
     " rules' state and outcomes, consumed offsets; exit 1 naming the first failure)"},
    {"stats", cmd_stats, PROJ_OPTIONAL, "stats"},
    {"get", cmd_get, NEEDS_PROJ,
     "get order|account|store|product|complaint|sanction|voucher ID [--as-of T]"},
    {"orders", cmd_orders, NEEDS_PROJ,
     "orders [--buyer M] [--provider M] [--status S] [--day YYYY-MM-DD] [--limit N] [--cursor C]"},
    {"audit", cmd_audit, NEEDS_PROJ,
     "audit [--subject ID|KIND:ID] [--actor M] [--limit N] [--cursor C]"},
    {"sales", cmd_sales, NEEDS_PROJ,
     "sales [--provider M] [--from DAY] [--to DAY] [--limit N] [--cursor C]"},
    {"rebuild", cmd_rebuild, NEEDS_PROJ | WRITES, "rebuild  (recompute every projection)"},
    {"replay", cmd_replay, 0, "replay --until SEQ --out DIR  (projections as of SEQ)"},
    {"backup", cmd_backup, 0, "backup --out DIR [--new-identity]  (consistent hot copy, compacted)"},
};

#define NSUB (sizeof subcommands / sizeof subcommands[0])

static void usage(FILE *f)
{
    fputs("usage: marketctl --data-dir DIR SUBCOMMAND [options]\n", f);
    for (size_t i = 0; i < NSUB; i++)
        fprintf(f, "  %s\n", subcommands[i].help);
    fputs("usage: marketctl keygen --id ID --out DIR\n"
          "       marketctl checkpoints --bootstrap HOST:PORT [--topic market.heads]\n"
          "       marketctl verify-export FILE --checkpoints CPS.jsonl --keys DIR\n", f);
    fputs("lists: when more rows may follow, stderr ends with `next_cursor: C`\n", f);
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

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* --as-of: milliseconds, or YYYY-MM-DDTHH:MM:SSZ. */
static int parse_time(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, sec;
    char z;
    uint64_t ms;
    if (parse_u64(s, &ms) == 0)
        return *out = (int64_t)ms, 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &sec, &z) != 7 || z != 'Z' ||
        mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 59)
        return -1;
    *out = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000;
    return 0;
}

enum { O_BUYER = 256, O_PROVIDER, O_STATUS, O_DAY, O_SUBJECT, O_ACTOR, O_TO, O_UNTIL, O_OUT,
       O_CURSOR, O_AS_OF, O_CHECKPOINTS, O_KEYS, O_NEW_IDENTITY };

static const struct option long_opts[] = {
    {"data-dir", required_argument, NULL, 'd'}, {"stream", required_argument, NULL, 's'},
    {"from", required_argument, NULL, 'f'},     {"limit", required_argument, NULL, 'l'},
    {"buyer", required_argument, NULL, O_BUYER}, {"provider", required_argument, NULL, O_PROVIDER},
    {"status", required_argument, NULL, O_STATUS}, {"day", required_argument, NULL, O_DAY},
    {"subject", required_argument, NULL, O_SUBJECT}, {"actor", required_argument, NULL, O_ACTOR},
    {"to", required_argument, NULL, O_TO},       {"until", required_argument, NULL, O_UNTIL},
    {"out", required_argument, NULL, O_OUT},     {"cursor", required_argument, NULL, O_CURSOR},
    {"as-of", required_argument, NULL, O_AS_OF}, {"help", no_argument, NULL, 'h'},
    {"checkpoints", required_argument, NULL, O_CHECKPOINTS},
    {"keys", required_argument, NULL, O_KEYS},
    {"new-identity", no_argument, NULL, O_NEW_IDENTITY},
    {NULL, 0, NULL, 0},
};

/* Stores a string option; returns -1 for an unknown one. */
static int string_opt(ctl_t *c, int o)
{
    const char **slot = o == 'd'          ? &c->dir
                        : o == 's'        ? &c->stream
                        : o == 'f'        ? &c->from_s
                        : o == O_BUYER    ? &c->buyer
                        : o == O_PROVIDER ? &c->provider
                        : o == O_STATUS   ? &c->status
                        : o == O_DAY      ? &c->day
                        : o == O_SUBJECT  ? &c->subject
                        : o == O_ACTOR    ? &c->actor
                        : o == O_TO       ? &c->to
                        : o == O_OUT      ? &c->out
                        : o == O_CURSOR   ? &c->cursor
                        : o == O_CHECKPOINTS ? &c->checkpoints
                        : o == O_KEYS     ? &c->keys
                                          : NULL;
    if (slot == NULL)
        return -1;
    *slot = optarg;
    return 0;
}

/* Options and (after the subcommand) positional arguments, in any order. */
static int parse_args(int argc, char **argv, ctl_t *c, bool positional)
{
    for (;;) {
        int o = getopt_long(argc, argv, "+h", long_opts, NULL);
        if (o == -1) {
            if (!positional || optind >= argc)
                return 0;
            if (c->nargs == 3)
                return -1;
            c->args[c->nargs++] = argv[optind++];
            continue;
        }
        if ((o == 'l' && parse_u64(optarg, &c->limit) == 0) ||
            (o == O_UNTIL && parse_u64(optarg, &c->until) == 0) ||
            (o == O_AS_OF && parse_time(optarg, &c->as_of) == 0) ||
            (o == O_NEW_IDENTITY && (c->new_identity = true)) ||
            (o != 'l' && o != O_UNTIL && o != O_AS_OF && o != O_NEW_IDENTITY && string_opt(c, o) == 0))
            continue;
        return -1;
    }
}

static const subcommand_t *find_sub(const char *name)
{
    for (size_t i = 0; i < NSUB; i++)
        if (strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    return NULL;
}

/* --from is a seq for events/export and a day for sales. */
static int check_args(ctl_t *c, const subcommand_t *sub)
{
    bool seq_from = sub->run == cmd_events || sub->run == cmd_export;
    if (seq_from && c->from_s && parse_u64(c->from_s, &c->from) != 0)
        return -1;
    return c->nargs == 0 || sub->run == cmd_get ? 0 : -1;
}

/* Opens the store (read-only unless the subcommand writes) and the projections. */
static int open_all(ctl_t *c, const subcommand_t *sub)
{
    md_store_opts_t so = {.read_only = !(sub->needs & WRITES)};
    if (md_store_open(c->dir, &so, &c->store, &c->err) != MD_OK)
        return -1;
    if (sub->needs & (NEEDS_PROJ | PROJ_OPTIONAL)) {
        md_error_t e = {0};
        md_err_t rc = md_proj_open(c->store, &c->proj, &e);
        if (rc != MD_OK && (rc != MD_ENOTFOUND || (sub->needs & NEEDS_PROJ))) {
            md_error_set(&c->err, rc, "%s", e.msg);
            return -1;
        }
    }
    return md_store_read(c->store, &c->txn, &c->err) == MD_OK ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        return md_version_print(stdout, "marketctl") == 0 ? 0 : 1;
    ctl_t c = {0};
    const subcommand_t *sub;
    c.as_of = md_wall_ms();
    if (argc > 1 && ctl_checkpoint_is_sub(argv[1])) /* subcommands without a store */
        return ctl_checkpoint_main(argc - 1, argv + 1);
    if (parse_args(argc, argv, &c, false) != 0 || optind >= argc || c.dir == NULL ||
        (sub = find_sub(argv[optind])) == NULL) {
        usage(stderr);
        return 2;
    }
    optind++;
    if (parse_args(argc, argv, &c, true) != 0 || check_args(&c, sub) != 0) {
        usage(stderr);
        return 2;
    }
    c.tty = isatty(STDERR_FILENO);
    c.t0 = md_mono_s();
    int status = 1;
    if (open_all(&c, sub) == 0)
        status = sub->run(&c);
    if (status != 0 && c.err.code != MD_OK)
        fprintf(stderr, "marketctl: %s: %s\n", sub->name, c.err.msg);
    md_txn_end(c.txn);
    md_proj_free(c.proj);
    md_store_free(c.store);
    return status;
}
