/*
 * marketctl - the operator's, auditor's and analyst's command line.
 *
 *   marketctl --data-dir DIR SUBCOMMAND [ARGS] [options]
 *   marketctl --help | marketctl SUBCOMMAND --help
 *
 * Each subcommand accepts exactly its own options (the table below and
 * ctl.h); anything else is a usage error naming the option (exit 2). Lists
 * take --limit N and --cursor C; when more rows may follow, the last line on
 * stderr is `next_cursor: C`. `get` judges expiring sanctions at --as-of (ms
 * or YYYY-MM-DDTHH:MM:SSZ; default: now).
 *
 * Output is JSON (one object) or JSON lines on stdout; errors go to stderr;
 * the exit status is 0 on success, 1 when verification fails or an object is
 * missing, 2 on misuse. The store is opened read-only (rebuild and outbox
 * retry excepted), so marketctl is safe beside a running daemon.
 */
#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "md_base.h"
#include "md_command.h"
#include "md_version.h"

/* ---- progress (stderr, only when it is a terminal) ------------------------------- */

void ctl_progress(uint64_t done, uint64_t total, void *ctx)
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
    fprintf(stderr, "\r[%s] %llu/%llu events  %.0f/s  %.0fs left ", bar, (unsigned long long)done,
            (unsigned long long)total, rate, rate > 0 ? (double)(total - done) / rate : 0.0);
}

void ctl_progress_end(ctl_t *c, const char *what)
{
    double el = md_mono_s() - c->t0;
    if (c->tty)
        fputc('\n', stderr);
    fprintf(stderr, "%s: %llu events in %.3f s (%.0f events/s)\n", what,
            (unsigned long long)c->done, el, el > 0 ? (double)c->done / el : 0.0);
}

/* ---- output ---------------------------------------------------------------------- */

md_err_t ctl_print_json(json_t *j, md_error_t *err)
{
    if (j == NULL)
        return md_error_set(err, MD_ECODEC, "value is not representable as JSON");
    int rc = json_dumpf(j, stdout, JSON_COMPACT);
    json_decref(j);
    if (rc != 0 || fputc('\n', stdout) == EOF)
        return md_error_set(err, MD_EIO, "write to stdout failed");
    return MD_OK;
}

/* Writes what the formatter has so far; EPIPE (a closed pipe) keeps errno. */
static md_err_t emit_flush(ctl_t *c, md_error_t *err)
{
    size_t n = c->out.len;
    c->out.len = 0;
    if (n && fwrite(c->out.p, 1, n, stdout) != n)
        return md_error_set(err, MD_EIO, "write to stdout failed");
    return MD_OK;
}

md_err_t ctl_emit(ctl_t *c, const json_t *row, md_error_t *err)
{
    if (c->fmt == NULL) {
        md_rowfmt_kind_t k = MD_ROWFMT_JSON;
        const char *name = ctl_str(c, "format");
        if (name && !md_rowfmt_parse(name, &k))
            return md_error_set(err, MD_EINVAL, "unknown format '%s'", name);
        c->fmt = md_rowfmt_new(k, c->sub->money);
    }
    md_rowfmt_row(c->fmt, row, &c->out);
    return emit_flush(c, err);
}

md_err_t ctl_emit_end(ctl_t *c, md_error_t *err)
{
    if (c->fmt)
        md_rowfmt_end(c->fmt, &c->out);
    md_err_t rc = emit_flush(c, err);
    if (rc == MD_OK && fflush(stdout) != 0)
        rc = md_error_set(err, MD_EIO, "write to stdout failed");
    return rc;
}

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
                    json_pack("{s:s, s:I}", "sha256", hex, "entries", (json_int_t)d->entries[i]));
    }
    return j;
}

/* The projection half of verify: live digests against a rebuild. */
static int verify_projections(ctl_t *c, uint64_t n, const char *head, ctl_derived_t *dv)
{
    md_proj_report_t *rep = md_calloc(1, sizeof *rep);
    int status = 0;
    progress_phase(c, n);
    md_err_t rc = md_proj_verify(c->proj, c->txn, ctl_progress, c, rep, &c->err);
    c->done = n;
    ctl_progress_end(c, "verify");
    if (rc == MD_ECORRUPT) {
        json_t *j = json_pack("{s:b, s:s, s:s, s:s, s:s, s:s}", "ok", 0, "check", "projections",
                              "projection", rep->bad >= 0 ? md_proj_name(rep->bad) : "all", "db",
                              rep->db, "first_differing_key", rep->key, "error", c->err.msg);
        ctl_print_json(j, NULL);
        fprintf(stderr, "marketctl: verify failed: %s\n", c->err.msg);
        c->err.code = MD_OK;
        status = 1;
    } else if (rc != MD_OK) {
        status = 1;
    } else {
        status =
            ctl_derived_end(dv,
                            json_pack("{s:b, s:I, s:s, s:I, s:o}", "ok", 1, "events", (json_int_t)n,
                                      "head", head, "projections_seq", (json_int_t)rep->seq,
                                      "projections", digest_json(&rep->live)),
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
    md_err_t rc = md_txn_verify_chain(c->txn, &n, &bad, ctl_progress, c, &c->err);
    if (rc == MD_ECORRUPT) {
        ctl_progress_end(c, "verify");
        json_t *j = json_pack("{s:b, s:s, s:I, s:s}", "ok", 0, "check", "chain", "first_bad_seq",
                              (json_int_t)bad, "error", c->err.msg);
        ctl_print_json(j, NULL);
        fprintf(stderr, "marketctl: verify failed at seq %llu: %s\n", (unsigned long long)bad,
                c->err.msg);
        c->err.code = MD_OK; /* reported already */
        return ctl_derived_end(dv, NULL, &c->err);
    }
    if (rc != MD_OK || md_txn_head(c->txn, &head, hash, &c->err) != MD_OK)
        return ctl_derived_end(dv, NULL, &c->err);
    const char *cps = ctl_str(c, "checkpoints"), *keys = ctl_str(c, "keys");
    if (cps || keys) { /* signed checkpoints, external to the store */
        int st = ctl_verify_store_checkpoints(c->txn, cps, keys);
        if (st != 0) {
            ctl_derived_end(dv, NULL, &c->err);
            return st;
        }
    }
    md_hex(hash, MD_HASH_LEN, hex);
    if (c->proj == NULL) {
        ctl_progress_end(c, "verify");
        fprintf(stderr, "marketctl: verify: store has no projections; chain checked only\n");
        return ctl_derived_end(dv,
                               json_pack("{s:b, s:I, s:s, s:s}", "ok", 1, "events", (json_int_t)n,
                                         "head", hex, "projections", "absent"),
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
        uint32_t part =
            (uint32_t)nul[1] << 24 | (uint32_t)nul[2] << 16 | (uint32_t)nul[3] << 8 | nul[4];
        int64_t next = 0;
        for (int i = 0; i < 8; i++)
            next = (int64_t)((uint64_t)next << 8 | ((const unsigned char *)v.mv_data)[i]);
        md_json_append(arr,
                       json_pack("{s:s%, s:i, s:I}", "topic", (const char *)p, (size_t)(nul - p),
                                 "partition", (int)part, "next", (json_int_t)next));
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
    json_t *j =
        json_pack("{s:I, s:s, s:I, s:I, s:I, s:f, s:I, s:o}", "events", (json_int_t)head, "head",
                  hex, "commands_decided", (json_int_t)db_entries(c->txn, MD_DB_OUTCOMES),
                  "store_bytes", (json_int_t)used, "map_bytes", (json_int_t)map, "bytes_per_event",
                  head ? (double)used / (double)head : 0.0, "outbox_depth",
                  (json_int_t)db_entries(c->txn, MD_DB_OUTBOX), "offsets", offsets_json(c->txn));
    uint64_t queued, parked;
    if (md_txn_outbox_counts(c->txn, &queued, &parked, &c->err) != MD_OK) {
        json_decref(j);
        return 1;
    }
    md_json_set(j, "outbox_parked", json_integer((json_int_t)parked));
    json_t *pj = NULL;
    if (c->proj && md_proj_stats(c->proj, c->txn, &pj, &c->err) != MD_OK) {
        json_decref(j);
        return 1;
    }
    md_json_set(j, "projections", pj ? pj : json_null());
    return ctl_print_json(j, &c->err) == MD_OK ? 0 : 1;
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
    md_err_t rc = md_proj_rebuild(c->proj, ctl_progress, c, &n, &c->err);
    c->done = n;
    ctl_progress_end(c, "rebuild");
    if (rc != MD_OK)
        return 1;
    return ctl_print_json(json_pack("{s:b, s:I}", "ok", 1, "events", (json_int_t)n), &c->err) ==
                   MD_OK
               ? 0
               : 1;
}

/* The last event recorded at or before @p as_of (the log is in recorded order). */
static md_err_t last_before(const md_event_t *ev, const void *b, size_t n, void *ctx,
                            md_error_t *err)
{
    (void)b, (void)n, (void)err;
    uint64_t *v = ctx; /* v[0]: the time, v[1]: the seq found */
    if (ev->recorded_at > (int64_t)v[0])
        return MD_ESTOP;
    v[1] = ev->seq;
    return MD_OK;
}

static int cmd_replay(ctl_t *c)
{
    uint64_t n = 0, until = ctl_u64(c, "until", 0);
    const char *out = ctl_str(c, "out");
    if ((until == 0) == (ctl_str(c, "as-of") == NULL) || out == NULL) {
        md_error_set(&c->err, MD_EINVAL,
                     "replay needs one of --until SEQ, --as-of TIME, and --out DIR");
        return 2;
    }
    if (until == 0) {
        uint64_t v[2] = {(uint64_t)ctl_time(c, "as-of", 0), 0};
        if (md_txn_scan(c->txn, 1, 0, last_before, v, &c->err) != MD_OK)
            return 1;
        if (v[1] == 0) {
            md_error_set(&c->err, MD_ENOTFOUND, "no event was recorded at or before --as-of");
            return 1;
        }
        until = v[1];
    }
    progress_phase(c, until);
    md_err_t rc = md_proj_replay(c->txn, until, out, ctl_progress, c, &n, &c->err);
    c->done = n;
    ctl_progress_end(c, "replay");
    if (rc != MD_OK)
        return 1;
    return ctl_print_json(
               json_pack("{s:b, s:I, s:s}", "ok", 1, "events", (json_int_t)n, "out", out),
               &c->err) == MD_OK
               ? 0
               : 1;
}

static int cmd_backup(ctl_t *c)
{
    return ctl_backup(c->store, c->dir, ctl_str(c, "out"), ctl_given(c, "new-identity"), &c->err);
}

/* The subcommands without a store (keygen, checkpoints, verify-export;
 * ctl_checkpoint.c): the options checked here are handed on as an argv. */
static int cmd_storeless(ctl_t *c)
{
    char *argv[2 + 2 * CTL_MAX_OPTS + CTL_MAX_ARGS];
    char names[CTL_MAX_OPTS][64];
    int argc = 0;
    argv[argc++] = (char *)c->sub->name;
    for (int i = 0; c->sub->opts && c->sub->opts[i].name; i++) {
        if (!c->set[i])
            continue;
        snprintf(names[i], sizeof names[i], "--%s", c->sub->opts[i].name);
        argv[argc++] = names[i];
        argv[argc++] = (char *)c->str[i];
    }
    for (int i = 0; i < c->nargs; i++)
        argv[argc++] = (char *)c->args[i];
    argv[argc] = NULL;
    return ctl_checkpoint_main(argc, argv);
}

/* ---- the subcommands and their options ------------------------------------------------ */

#define FORMAT_OPT                                                                                 \
    {                                                                                              \
        "format", CTL_FORMAT, "json|csv|table",                                                    \
            "JSON lines (default), CSV with a header row, or an aligned table (money in yuan)"     \
    }
#define MIN_SEQ_OPTS                                                                               \
    {"min-seq", CTL_SEQ, "SEQ",                                                                    \
     "read-your-writes: wait until the projections show seq SEQ (bounded by --wait-ms)"},          \
    {                                                                                              \
        "wait-ms", CTL_U64, "MS", "how long --min-seq waits at most (default 5000), then fails"    \
    }
#define LIST_OPTS                                                                                  \
    {"limit", CTL_LIMIT, "N", "at most N rows (1..1000000; default: all)"},                        \
        {"cursor", CTL_STR, "C", "continue after the page that printed next_cursor: C"},           \
        MIN_SEQ_OPTS, FORMAT_OPT

/* Columns in fen (--format table shows them in yuan). */
static const char *const order_money[] = {
    "unit_price", "discount",    "amount",    "escrow",    "paid",  "refunded", "released", "held",
    "balance",    "escrow_held", "deposited", "withdrawn", "spent", "earned",   "refunds",  NULL};
static const char *const sales_money[] = {"gross", "net", "refunded_amount", "revenue", NULL};

#define SLICE_OPTS                                                                                 \
    {"to", CTL_SEQ, "SEQ", "last seq"},                                                            \
        {"since", CTL_TIME, "T", "events recorded at or after T (ms or YYYY-MM-DDTHH:MM:SSZ)"},    \
        {"until", CTL_TIME, "T", "events recorded at or before T"},                                \
    {                                                                                              \
        "limit", CTL_LIMIT, "N", "at most N events (1..1000000; default: all)"                     \
    }

static const ctl_opt_t events_opts[] = {
    {"stream", CTL_STR, "S", "one stream's events (e.g. order:o-1); alone, --from is its version"},
    {"from", CTL_SEQ, "N", "first seq (or stream version) to print (default 1)"},
    SLICE_OPTS,
    {"follow", CTL_FLAG, NULL, "then print new events as they are committed, until SIGINT"},
    FORMAT_OPT,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t export_opts[] = {
    {"stream", CTL_STR, "S", "only this stream's events (each line still carries prev_hash)"},
    {"from", CTL_SEQ, "SEQ", "first seq to export (default 1)"},
    SLICE_OPTS,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t get_opts[] = {
    {"as-of", CTL_TIME, "T",
     "judge expiring sanctions at T (ms or YYYY-MM-DDTHH:MM:SSZ; default now)"},
    MIN_SEQ_OPTS,
    FORMAT_OPT,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t orders_opts[] = {
    {"buyer", CTL_STR, "M", "orders placed by member M"},
    {"provider", CTL_STR, "M", "orders of provider M"},
    {"status", CTL_STR, "S", "orders in status S"},
    {"day", CTL_DAY, "DAY", "orders placed on DAY (YYYY-MM-DD, UTC)"},
    LIST_OPTS,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t audit_opts[] = {
    {"subject", CTL_STR, "ID|KIND:ID", "entries about this subject"},
    {"actor", CTL_STR, "M", "entries done by member M"},
    {"follow", CTL_FLAG, NULL, "then print new entries as they are committed, until SIGINT"},
    LIST_OPTS,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t sales_opts[] = {
    {"provider", CTL_STR, "M", "one provider's sales"},
    {"from", CTL_DAY, "DAY", "first day (YYYY-MM-DD, inclusive)"},
    {"to", CTL_DAY, "DAY", "last day (YYYY-MM-DD, inclusive)"},
    LIST_OPTS,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t summary_opts[] = {
    {"from", CTL_DAY, "DAY", "first day (YYYY-MM-DD, UTC, inclusive; required but for rejections)"},
    {"to", CTL_DAY, "DAY", "last day (inclusive; at most 366 days after --from)"},
    {"provider", CTL_STR, "M", "one provider's orders"},
    {"top", CTL_LIMIT, "N", "top-products: the N best by revenue (default 10)"},
    MIN_SEQ_OPTS,
    FORMAT_OPT,
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t verify_opts[] = {
    {"checkpoints", CTL_STR, "CPS.jsonl",
     "signed checkpoints (marketctl checkpoints) to verify the "
     "store against; with --keys"},
    {"keys", CTL_STR, "DIR", "the replicas' public keys (REPLICA.pub)"},
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t keygen_opts[] = {
    {"id", CTL_STR, "ID", "the replica id (required)"},
    {"out", CTL_STR, "DIR", "where ID.key (0600) and ID.pub go (required)"},
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t checkpoints_opts[] = {
    {"bootstrap", CTL_STR, "HOST:PORT", "Kafka bootstrap servers (required)"},
    {"topic", CTL_STR, "T", "the heads topic (default market.heads)"},
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t verify_export_opts[] = {
    {"checkpoints", CTL_STR, "CPS.jsonl", "signed checkpoints (required)"},
    {"keys", CTL_STR, "DIR", "the replicas' public keys (required)"},
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t backup_opts[] = {
    {"out", CTL_STR, "DIR", "a new or empty directory for the copy (required)"},
    {"new-identity", CTL_FLAG, "",
     "give the copy a store identity of its own (to seed a "
     "replica, docs/replication.md)"},
    {NULL, 0, NULL, NULL},
};
static const ctl_opt_t replay_opts[] = {
    {"until", CTL_SEQ, "SEQ", "the last event to replay (or --as-of)"},
    {"as-of", CTL_TIME, "T",
     "replay the events recorded at or before T (ms or YYYY-MM-DDTHH:MM:SSZ)"},
    {"out", CTL_STR, "DIR", "a new store for the projections as of SEQ (required)"},
    {NULL, 0, NULL, NULL},
};

/* Every subcommand; one entry each (their code may live in tools/ctl_NAME.c). */
static const ctl_sub_t *const subcommands[] = {
    &(const ctl_sub_t){"events", ctl_cmd_events, 0, NULL, 0, 0, "events as JSON lines", events_opts,
                       NULL},
    &(const ctl_sub_t){"export", ctl_cmd_export, 0, NULL, 0, 0,
                       "events with body, prev_hash and hash (scripts/audit-export.sh checks it)",
                       export_opts, NULL},
    &(const ctl_sub_t){"verify", cmd_verify, CTL_PROJ_OPTIONAL, NULL, 0, 0,
                       "hash chain, signed checkpoints, projections, rules' state and outcomes, "
                       "consumed offsets; exit 1 naming the first failure",
                       verify_opts, NULL},
    &(const ctl_sub_t){"stats", cmd_stats, CTL_PROJ_OPTIONAL, NULL, 0, 0,
                       "events, head, store size, outbox depth and parked entries, offsets", NULL,
                       NULL},
    &(const ctl_sub_t){"get", ctl_cmd_get, CTL_NEEDS_PROJ,
                       "order|account|store|product|complaint|sanction|voucher ID", 2, 2,
                       "one object", get_opts, order_money},
    &(const ctl_sub_t){"orders", ctl_cmd_orders, CTL_NEEDS_PROJ, NULL, 0, 0, "orders, by filter",
                       orders_opts, order_money},
    &(const ctl_sub_t){"audit", ctl_cmd_audit, CTL_NEEDS_PROJ, NULL, 0, 0,
                       "the audit trail of a subject or an actor", audit_opts, NULL},
    &(const ctl_sub_t){"sales", ctl_cmd_sales, CTL_NEEDS_PROJ, NULL, 0, 0,
                       "sales per provider and day", sales_opts, sales_money},
    &(const ctl_sub_t){"summary", ctl_cmd_summary, CTL_NEEDS_PROJ,
                       "order-status|products|categories|top-products|provider-rates|rejections", 1,
                       1, "what analysts ask for: counts, sales, rates, rejections", summary_opts,
                       sales_money},
    &(const ctl_sub_t){"rebuild", cmd_rebuild, CTL_NEEDS_PROJ | CTL_WRITES, NULL, 0, 0,
                       "recompute every projection", NULL, NULL},
    &(const ctl_sub_t){"replay", cmd_replay, 0, NULL, 0, 0,
                       "projections as of a seq, in a new store", replay_opts, NULL},
    &(const ctl_sub_t){"backup", cmd_backup, 0, NULL, 0, 0,
                       "a consistent hot copy, compacted (--out DIR)", backup_opts, NULL},
    &ctl_sub_outbox,
    &(const ctl_sub_t){"keygen", cmd_storeless, CTL_NO_STORE, NULL, 0, 0,
                       "an Ed25519 key pair for a replica's signed checkpoints (docs/audit.md)",
                       keygen_opts, NULL},
    &(const ctl_sub_t){"checkpoints", cmd_storeless, CTL_NO_STORE, NULL, 0, 0,
                       "the signed checkpoints of the heads topic, as JSON lines", checkpoints_opts,
                       NULL},
    &(const ctl_sub_t){"verify-export", cmd_storeless, CTL_NO_STORE, "FILE", 1, 1,
                       "an export (marketctl export) against signed checkpoints",
                       verify_export_opts, NULL},
};

#define NSUB (sizeof subcommands / sizeof subcommands[0])

/* "marketctl NAME [ARGS] --opt METAVAR ..." of a subcommand without a store. */
static void storeless_line(FILE *f, const ctl_sub_t *sub, const char *lead)
{
    fprintf(f, "%smarketctl %s%s%s", lead, sub->name, sub->args ? " " : "",
            sub->args ? sub->args : "");
    for (const ctl_opt_t *o = sub->opts; o && o->name; o++)
        fprintf(f, " --%s%s%s", o->name, o->metavar ? " " : "", o->metavar ? o->metavar : "");
    fputc('\n', f);
}

static void usage(FILE *f)
{
    fputs("usage: marketctl --data-dir DIR SUBCOMMAND [ARGS] [options]\n", f);
    for (size_t i = 0; i < NSUB; i++)
        if (!(subcommands[i]->needs & CTL_NO_STORE))
            fprintf(f, "  %-8s %s%s%s\n", subcommands[i]->name,
                    subcommands[i]->args ? subcommands[i]->args : "",
                    subcommands[i]->args ? "  " : "", subcommands[i]->summary);
    const char *lead = "usage: ";
    for (size_t i = 0; i < NSUB; i++)
        if (subcommands[i]->needs & CTL_NO_STORE) {
            storeless_line(f, subcommands[i], lead);
            lead = "       ";
        }
    fputs("       marketctl SUBCOMMAND --help   (its options)\n"
          "       marketctl --version\n"
          "lists: when more rows may follow, stderr ends with `next_cursor: C`\n"
          "exit status: 0 ok, 1 failed or not found, 2 usage error\n",
          f);
}

static void sub_usage(FILE *f, const ctl_sub_t *sub)
{
    fprintf(f, "usage: marketctl %s%s%s%s%s\n\n%s\n",
            sub->needs & CTL_NO_STORE ? "" : "--data-dir DIR ", sub->name, sub->args ? " " : "",
            sub->args ? sub->args : "", sub->opts ? " [options]" : "", sub->summary);
    if (sub->opts)
        fputs("\noptions:\n", f);
    for (const ctl_opt_t *o = sub->opts; o && o->name; o++) {
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", o->name, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(f, "  %-20s %s\n", lhs, o->help);
    }
}

/* A usage error: what was wrong, then where to look. Returns 2. */
static int bad_usage(const ctl_sub_t *sub, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int bad_usage(const ctl_sub_t *sub, const char *fmt, ...)
{
    va_list ap;
    fputs("marketctl: ", stderr);
    if (sub)
        fprintf(stderr, "%s: ", sub->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nsee: marketctl %s%s--help\n", sub ? sub->name : "", sub ? " " : "");
    return 2;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end != '\0' || errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

/* A calendar date YYYY-MM-DD (2026-02-30 is not one). */
static bool valid_day(const char *s)
{
    char t[32];
    int64_t ms;
    return strlen(s) == 10 && snprintf(t, sizeof t, "%sT00:00:00Z", s) == 20 &&
           md_parse_time(t, 20, &ms);
}

/* Checks and stores the value of option @p i; returns a reason when refused. */
static const char *take_value(ctl_t *c, int i, const char *v)
{
    const ctl_opt_t *o = &c->sub->opts[i];
    uint64_t n = 0;
    c->set[i] = true;
    c->str[i] = v;
    switch (o->kind) {
    case CTL_STR: return *v ? NULL : "must not be empty";
    case CTL_FLAG: return NULL;
    case CTL_FORMAT: {
        md_rowfmt_kind_t k;
        return md_rowfmt_parse(v, &k) ? NULL : "is not one of json, csv, table";
    }
    case CTL_U64: return parse_u64(v, &c->num[i]) ? "must be an unsigned integer" : NULL;
    case CTL_SEQ:
        if (parse_u64(v, &n) || n == 0)
            return "must be an integer >= 1";
        c->num[i] = n;
        return NULL;
    case CTL_LIMIT:
        if (parse_u64(v, &n) || n == 0 || n > CTL_MAX_LIMIT)
            return "must be an integer in 1..1000000";
        c->num[i] = n;
        return NULL;
    case CTL_DAY: return valid_day(v) ? NULL : "is not a calendar date YYYY-MM-DD";
    case CTL_TIME:
        if (parse_u64(v, &n) == 0) {
            c->time[i] = (int64_t)n;
            return n > INT64_MAX ? "is out of range" : NULL;
        }
        return md_parse_time(v, strlen(v), &c->time[i])
                   ? NULL
                   : "is neither milliseconds nor a time YYYY-MM-DDTHH:MM:SSZ";
    }
    return "has an unknown kind";
}

static int find_opt(const ctl_sub_t *sub, const char *name, size_t len)
{
    for (int i = 0; sub->opts && sub->opts[i].name; i++)
        if (strlen(sub->opts[i].name) == len && strncmp(sub->opts[i].name, name, len) == 0)
            return i;
    return -1;
}

static const ctl_sub_t *find_sub(const char *name)
{
    for (size_t i = 0; i < NSUB; i++)
        if (strcmp(subcommands[i]->name, name) == 0)
            return subcommands[i];
    return NULL;
}

/* --data-dir DIR or --data-dir=DIR at @p *i; returns 1 when it was one, -1 when its value is missing. */
static int take_data_dir(ctl_t *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strncmp(a, "--data-dir=", 11) == 0) {
        c->dir = a + 11;
        return 1;
    }
    if (strcmp(a, "--data-dir") != 0)
        return 0;
    if (*i + 1 >= argc)
        return -1;
    c->dir = argv[++*i];
    return 1;
}

/* One "--name[=value]" of the subcommand at argv[*i]. Returns 0, 2 (usage) or -1 (help). */
static int take_option(ctl_t *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i] + 2, *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a) : strlen(a);
    if (strcmp(a, "help") == 0)
        return -1;
    int k = find_opt(c->sub, a, len);
    if (k < 0)
        return bad_usage(c->sub, "unknown option --%.*s", (int)len, a);
    const ctl_opt_t *o = &c->sub->opts[k];
    if (c->set[k])
        return bad_usage(c->sub, "--%s given twice", o->name);
    if (o->kind == CTL_FLAG) {
        if (eq)
            return bad_usage(c->sub, "--%s takes no value", o->name);
        c->set[k] = true;
        c->str[k] = ""; /* ctl_str: non-NULL when given */
        return 0;
    }
    const char *v = eq ? eq + 1 : NULL;
    if (v == NULL && *i + 1 < argc)
        v = argv[++*i];
    if (v == NULL)
        return bad_usage(c->sub, "--%s needs a value %s", o->name, o->metavar);
    const char *why = take_value(c, k, v);
    return why ? bad_usage(c->sub, "--%s '%s' %s", o->name, v, why) : 0;
}

/* Global options, the subcommand, then its arguments and options in any
 * order. Returns 0 to run, 2 on misuse, -1 after printing help. */
static int parse_args(ctl_t *c, int argc, char **argv)
{
    int i = 1, r;
    for (; i < argc && c->sub == NULL; i++) {
        if ((r = take_data_dir(c, argc, argv, &i)) < 0)
            return bad_usage(NULL, "--data-dir needs a value DIR");
        if (r > 0)
            continue;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return usage(stdout), -1;
        if (argv[i][0] == '-')
            return bad_usage(NULL, "unknown option %s before the subcommand", argv[i]);
        if ((c->sub = find_sub(argv[i])) == NULL)
            return bad_usage(NULL, "unknown subcommand '%s'", argv[i]);
    }
    if (c->sub == NULL)
        return usage(stderr), 2;
    for (; i < argc; i++) {
        if ((r = take_data_dir(c, argc, argv, &i)) < 0)
            return bad_usage(c->sub, "--data-dir needs a value DIR");
        if (r > 0)
            continue;
        if (strcmp(argv[i], "-h") == 0 || (argv[i][0] == '-' && argv[i][1] == '-')) {
            r = strcmp(argv[i], "-h") == 0 ? -1 : take_option(c, argc, argv, &i);
            if (r == -1)
                sub_usage(stdout, c->sub);
            if (r != 0)
                return r;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1])
            return bad_usage(c->sub, "unknown option %s", argv[i]);
        if (c->nargs == c->sub->max_args)
            return bad_usage(c->sub, "unexpected argument '%s'", argv[i]);
        c->args[c->nargs++] = argv[i];
    }
    if (c->nargs < c->sub->min_args)
        return bad_usage(c->sub, "needs %s", c->sub->args);
    if (c->dir == NULL && !(c->sub->needs & CTL_NO_STORE))
        return bad_usage(c->sub, "--data-dir DIR is required");
    if (c->dir != NULL && (c->sub->needs & CTL_NO_STORE))
        return bad_usage(c->sub, "takes no --data-dir");
    return 0;
}

#define MIN_SEQ_WAIT_MS 5000

/* --min-seq: waits, bounded, until the projections show that seq. */
static int wait_min_seq(ctl_t *c)
{
    uint64_t seq = ctl_u64(c, "min-seq", 0), reached = 0;
    if (seq == 0 || c->proj == NULL)
        return 0;
    long ms = (long)ctl_u64(c, "wait-ms", MIN_SEQ_WAIT_MS);
    md_error_t e = {0};
    md_err_t rc = md_proj_wait(c->proj, seq, ms, &reached, &e);
    if (rc == MD_ETIMEDOUT)
        md_error_set(&c->err, rc,
                     "--min-seq %llu: the projections are at seq %llu after %ld ms (the "
                     "projector is behind the log); retry later or raise --wait-ms",
                     (unsigned long long)seq, (unsigned long long)reached, ms);
    else if (rc != MD_OK)
        md_error_set(&c->err, rc, "%s", e.msg);
    return rc == MD_OK ? 0 : -1;
}

/* A writing subcommand converts a format 1 store when it opens it: say so. */
static void note_converted(const md_store_t *s)
{
    uint64_t streams = 0, events = 0;
    if (md_store_converted(s, &streams, &events))
        fprintf(stderr,
                "marketctl: store converted from format 1 to %d (stream index of %llu "
                "streams, %llu events)\n",
                MD_STORE_FORMAT, (unsigned long long)streams, (unsigned long long)events);
}

/* Opens the store (read-only unless the subcommand writes) and the
 * projections (their own environment when the data directory has one); the
 * projections' snapshot is pinned before the log's is begun, so the log's
 * holds every event the projections show. */
static int open_all(ctl_t *c, const ctl_sub_t *sub)
{
    md_store_opts_t so = {.read_only = !(sub->needs & CTL_WRITES)};
    if (md_store_open(c->dir, &so, &c->store, &c->err) != MD_OK)
        return -1;
    note_converted(c->store);
    if (sub->needs & (CTL_NEEDS_PROJ | CTL_PROJ_OPTIONAL)) {
        md_error_t e = {0};
        md_err_t rc = md_proj_open_dir(c->store, c->dir, &so, &c->proj, &e);
        if (rc != MD_OK && (rc != MD_ENOTFOUND || (sub->needs & CTL_NEEDS_PROJ))) {
            md_error_set(&c->err, rc, "%s", e.msg);
            return -1;
        }
        if (wait_min_seq(c) != 0)
            return -1;
        if (c->proj && !(sub->needs & CTL_WRITES) && md_proj_pin(c->proj, &c->err) != MD_OK)
            return -1;
    }
    return md_store_read(c->store, &c->txn, &c->err) == MD_OK ? 0 : -1;
}

/* ---- option accessors (ctl.h) ------------------------------------------------------------- */

static int opt_index(const ctl_t *c, const char *name)
{
    int k = find_opt(c->sub, name, strlen(name));
    return k >= 0 && c->set[k] ? k : -1;
}

const char *ctl_str(const ctl_t *c, const char *name)
{
    int k = opt_index(c, name);
    return k >= 0 ? c->str[k] : NULL;
}

bool ctl_given(const ctl_t *c, const char *name)
{
    return opt_index(c, name) >= 0;
}

uint64_t ctl_u64(const ctl_t *c, const char *name, uint64_t dflt)
{
    int k = opt_index(c, name);
    return k >= 0 ? c->num[k] : dflt;
}

int64_t ctl_time(const ctl_t *c, const char *name, int64_t dflt)
{
    int k = opt_index(c, name);
    return k >= 0 ? c->time[k] : dflt;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        return md_version_print(stdout, "marketctl") == 0 ? 0 : 1;
    ctl_t c = {0};
    int status = parse_args(&c, argc, argv);
    if (status != 0)
        return status < 0 ? 0 : status;
    const ctl_sub_t *sub = c.sub;
    if (sub->needs & CTL_NO_STORE)
        return sub->run(&c);
    c.tty = isatty(STDERR_FILENO);
    c.t0 = md_mono_s();
    status = 1;
    if (open_all(&c, sub) == 0)
        status = sub->run(&c);
    if (status != 0 && c.err.code != MD_OK)
        fprintf(stderr, "marketctl: %s: %s\n", sub->name, c.err.msg);
    md_txn_end(c.txn);
    md_rowfmt_free(c.fmt);
    md_buf_release(&c.out);
    md_proj_free(c.proj);
    md_store_free(c.store);
    return status;
}
