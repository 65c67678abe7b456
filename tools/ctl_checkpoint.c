/*
 * ctl_checkpoint.c - marketctl's checkpoint subcommands: keygen, reading the
 * checkpoints from Kafka, and verifying a store or an export against them
 * (ctl.h, docs/audit.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ctl.h"
#include "md_checkpoint.h"
#include "md_intake.h"

#define KAFKA_TIMEOUT_MS 15000

typedef struct opts {
    const char *id, *out, *bootstrap, *topic, *checkpoints, *keys, *file;
} opts_t;

static int fail_usage(const char *msg)
{
    fprintf(stderr,
            "marketctl: %s\nusage:\n"
            "  marketctl keygen --id ID --out DIR\n"
            "  marketctl checkpoints --bootstrap HOST:PORT [--topic market.heads]\n"
            "  marketctl verify-export FILE --checkpoints CPS.jsonl --keys DIR\n"
            "  marketctl --data-dir DIR verify --checkpoints CPS.jsonl --keys DIR\n",
            msg);
    return 2;
}

static void print_json(json_t *j)
{
    if (j != NULL && json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER) == 0)
        fputc('\n', stdout);
    json_decref(j);
    fflush(stdout);
}

/* A failed check: {"ok":false,...} on stdout, the reason on stderr; exit 1. */
static int report_failure(const char *check, const char *msg)
{
    print_json(json_pack("{s:b, s:s, s:s}", "ok", 0, "check", check, "error", msg));
    fprintf(stderr, "marketctl: verify failed: %s\n", msg);
    return 1;
}

/* ---- keygen -------------------------------------------------------------------------- */

static int cmd_keygen(const opts_t *o)
{
    md_error_t err = {0};
    if (o->id == NULL || o->out == NULL)
        return fail_usage("keygen needs --id and --out");
    if (mkdir(o->out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "marketctl: keygen: mkdir '%s': %s\n", o->out, strerror(errno));
        return 1;
    }
    md_err_t rc = md_keygen(o->id, o->out, &err);
    if (rc != MD_OK) {
        fprintf(stderr, "marketctl: keygen: %s\n", err.msg);
        return rc == MD_EINVAL ? 2 : 1;
    }
    char priv[4096], pub[4096];
    snprintf(priv, sizeof priv, "%s/%s.key", o->out, o->id);
    snprintf(pub, sizeof pub, "%s/%s.pub", o->out, o->id);
    print_json(
        json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "replica", o->id, "key", priv, "pub", pub));
    return 0;
}

/* ---- checkpoints: the heads topic to its end ---------------------------------------------- */

static rd_kafka_t *consumer(const char *bootstrap)
{
    const char *kv[] = {"bootstrap.servers",
                        bootstrap,
                        "group.id",
                        "marketctl-checkpoints",
                        "enable.auto.commit",
                        "false",
                        "enable.partition.eof",
                        "true",
                        "log_level",
                        "3",
                        NULL};
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (const char **p = kv; *p; p += 2) {
        if (rd_kafka_conf_set(conf, p[0], p[1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
            fprintf(stderr, "marketctl: checkpoints: %s: %s\n", p[0], errstr);
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL)
        fprintf(stderr, "marketctl: checkpoints: %s\n", errstr);
    return rk;
}

/* Every partition with messages, assigned from its low watermark; *ends
 * receives each partition's high watermark (indexed by partition). */
static int assign_all(rd_kafka_t *rk, const char *topic, int64_t **ends, int *nparts)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, KAFKA_TIMEOUT_MS);
    rd_kafka_topic_destroy(rkt);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR && (md->topic_cnt != 1 || md->topics[0].err))
        e = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (e) {
        fprintf(stderr, "marketctl: checkpoints: topic '%s': %s\n", topic, rd_kafka_err2str(e));
        if (md)
            rd_kafka_metadata_destroy(md);
        return -1;
    }
    int n = md->topics[0].partition_cnt, left = 0;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    *ends = md_calloc((size_t)n + 1, sizeof **ends);
    *nparts = n;
    for (int i = 0; i < n && e == 0; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo, hi;
        e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, KAFKA_TIMEOUT_MS);
        if (e == 0 && p >= 0 && p < n && hi > lo) {
            (*ends)[p] = hi;
            rd_kafka_topic_partition_list_add(l, topic, p)->offset = lo;
            left++;
        }
    }
    rd_kafka_metadata_destroy(md);
    if (e == 0 && left)
        e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        fprintf(stderr, "marketctl: checkpoints: %s\n", rd_kafka_err2str(e));
        return -1;
    }
    return left;
}

/* Prints every message value up to the ends (a partition's end is set to 0
 * once it is read); 0, or 1 on an error or a stall. */
static int read_to_end(rd_kafka_t *rk, int64_t *ends, int nparts, int left)
{
    time_t last = time(NULL);
    while (left > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        if (m == NULL) {
            if (time(NULL) - last > KAFKA_TIMEOUT_MS / 1000) {
                fprintf(stderr, "marketctl: checkpoints: no progress for %d s\n",
                        KAFKA_TIMEOUT_MS / 1000);
                return 1;
            }
            continue;
        }
        last = time(NULL);
        int32_t p = m->partition;
        bool in = p >= 0 && p < nparts && ends[p] > 0;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            fprintf(stderr, "marketctl: checkpoints: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return 1;
        }
        if (!m->err && in && m->offset < ends[p] && m->len)
            printf("%.*s\n", (int)m->len, (const char *)m->payload);
        if (in && (m->err || m->offset + 1 >= ends[p])) {
            ends[p] = 0; /* this partition is done */
            left--;
        }
        rd_kafka_message_destroy(m);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_checkpoints(const opts_t *o)
{
    if (o->bootstrap == NULL)
        return fail_usage("checkpoints needs --bootstrap HOST:PORT");
    rd_kafka_t *rk = consumer(o->bootstrap);
    if (rk == NULL)
        return 1;
    int64_t *ends = NULL;
    int nparts = 0;
    int left = assign_all(rk, o->topic ? o->topic : "market.heads", &ends, &nparts);
    int status = left < 0 ? 1 : read_to_end(rk, ends, nparts, left);
    free(ends);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return status;
}

/* ---- verification ------------------------------------------------------------------------ */

/* Loads and checks every signature; 0, or the exit status after reporting. */
static int load_and_check_signatures(md_cp_set_t *s, const char *cps, const char *keys)
{
    md_error_t err = {0};
    if (cps == NULL || keys == NULL)
        return fail_usage("--checkpoints and --keys go together");
    if (md_cp_set_load(s, cps, keys, &err) != MD_OK) {
        fprintf(stderr, "marketctl: %s\n", err.msg);
        return 1;
    }
    if (md_cp_set_verify_signatures(s, &err) != MD_OK) {
        md_cp_set_release(s);
        return report_failure("checkpoint_signatures", err.msg);
    }
    return 0;
}

static uint64_t highest_seq(const md_cp_set_t *s)
{
    uint64_t max = 0;
    for (size_t i = 0; i < s->n; i++)
        max = s->cps[i].seq > max ? s->cps[i].seq : max;
    return max;
}

/* Checks the chain against the loaded set; 0, or 1 after reporting. */
static int check_chain(md_cp_set_t *s, uint64_t head, md_hash_at_fn fn, void *ctx)
{
    md_error_t err = {0};
    md_err_t rc = md_cp_set_check_chain(s, head, fn, ctx, &err);
    if (rc == MD_ECORRUPT)
        return report_failure("checkpoints", err.msg);
    if (rc != MD_OK) {
        fprintf(stderr, "marketctl: verify: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "verify: %zu checkpoints match the chain (highest seq %" PRIu64 ")\n", s->n,
            highest_seq(s));
    return 0;
}

static md_err_t store_hash_at(uint64_t seq, unsigned char hash[MD_HASH_LEN], void *ctx,
                              md_error_t *err)
{
    md_event_t ev;
    md_err_t rc = md_txn_event(ctx, seq, &ev, NULL, NULL, err);
    if (rc == MD_OK)
        memcpy(hash, ev.hash, MD_HASH_LEN);
    return rc;
}

/* The offsets of the checkpoints this store queued against its intake records. */
static int check_offsets(md_txn_t *t, const md_cp_set_t *s)
{
    md_intake_cp_report_t rep;
    md_error_t err = {0};
    md_err_t rc = md_intake_check_checkpoints(t, s, &rep, &err);
    if (rc == MD_ECORRUPT)
        return report_failure("offsets", err.msg);
    if (rc != MD_OK) {
        fprintf(stderr, "marketctl: verify: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr,
            "verify: the offsets of %" PRIu64 " checkpoints this store signed match its intake "
            "records (%" PRIu64 " checkpoints of other stores not compared)\n",
            rep.compared, rep.other);
    return 0;
}

int ctl_verify_store_checkpoints(md_txn_t *t, const char *checkpoints, const char *keys)
{
    md_cp_set_t s;
    md_error_t err = {0};
    uint64_t head;
    int status = load_and_check_signatures(&s, checkpoints, keys);
    if (status != 0)
        return status;
    if (md_txn_head(t, &head, NULL, &err) != MD_OK) {
        fprintf(stderr, "marketctl: verify: %s\n", err.msg);
        status = 1;
    } else {
        status = check_chain(&s, head, store_hash_at, t);
        if (status == 0)
            status = check_offsets(t, &s);
    }
    md_cp_set_release(&s);
    return status;
}

/* ---- an export: its own chain, then the checkpoints ------------------------------------------ */

/* A partial export (marketctl export --from/--since) starts at seq first > 1:
 * it is anchored on its first line's prev_hash, the hash at seq first - 1. */
typedef struct export_chain {
    unsigned char (*hashes)[MD_HASH_LEN]; /* hashes[seq - first] */
    uint64_t n, cap;
    uint64_t first;                    /* the first line's seq (0: none yet) */
    unsigned char anchor[MD_HASH_LEN]; /* its prev_hash */
} export_chain_t;

static bool hex_to(const char *s, unsigned char *out, size_t n)
{
    if (s == NULL || strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (unsigned char)v;
    }
    return true;
}

/* The body of an export line (base64) into @p body; its length, or -1. */
static int decode_body(const char *b64, unsigned char **body)
{
    size_t blen = b64 ? strlen(b64) : 0;
    *body = md_malloc(blen / 4 * 3 + 3);
    if (b64 == NULL || blen % 4 != 0)
        return -1;
    int n = EVP_DecodeBlock(*body, (const unsigned char *)b64, (int)blen);
    return n < 0 ? -1 : n - (blen >= 2 ? (b64[blen - 1] == '=') + (b64[blen - 2] == '=') : 0);
}

/* Checks one export line as seq @p want: its link to the previous hash, its
 * hash over the body, and the body's own seq; fills @p hash. */
static md_err_t check_line(const export_chain_t *c, json_t *j, uint64_t want,
                           unsigned char hash[MD_HASH_LEN], md_error_t *err)
{
    static const unsigned char zero[MD_HASH_LEN];
    unsigned char prev[MD_HASH_LEN], got[MD_HASH_LEN], *body = NULL;
    md_event_t ev;
    md_err_t rc = MD_OK;
    int n = decode_body(json_string_value(json_object_get(j, "body")), &body);
    if (c->first == 0 && json_integer_value(json_object_get(j, "seq")) >= 1)
        want = (uint64_t)json_integer_value(json_object_get(j, "seq")); /* maybe a partial export */
    if (json_integer_value(json_object_get(j, "seq")) != (json_int_t)want || n < 0 ||
        !hex_to(json_string_value(json_object_get(j, "prev_hash")), prev, MD_HASH_LEN) ||
        !hex_to(json_string_value(json_object_get(j, "hash")), hash, MD_HASH_LEN)) {
        rc = md_error_set(err, MD_ECORRUPT, "line %" PRIu64 ": not the export line of seq %" PRIu64,
                          want, want);
    } else if (memcmp(prev,
                      want == 1       ? zero
                      : c->first == 0 ? prev
                                      : c->hashes[want - c->first - 1],
                      MD_HASH_LEN) != 0) {
        rc = md_error_set(err, MD_ECORRUPT, "seq %" PRIu64 ": broken link", want);
    } else {
        md_chain_hash(prev, body, (size_t)n, got);
        if (memcmp(got, hash, MD_HASH_LEN) != 0)
            rc = md_error_set(err, MD_ECORRUPT, "seq %" PRIu64 ": hash mismatch", want);
        else if (md_event_decode_body(body, (size_t)n, &ev, NULL) != MD_OK || ev.seq != want)
            rc = md_error_set(err, MD_ECORRUPT, "seq %" PRIu64 ": body is not that event", want);
    }
    free(body);
    return rc;
}

static md_err_t export_line(export_chain_t *c, const char *line, size_t len, md_error_t *err)
{
    unsigned char hash[MD_HASH_LEN];
    json_t *j = json_loadb(line, len, 0, NULL);
    md_err_t rc = check_line(c, j, c->first + c->n, hash, err);
    if (rc == MD_OK && c->first == 0) {
        c->first = (uint64_t)json_integer_value(json_object_get(j, "seq"));
        if (!hex_to(json_string_value(json_object_get(j, "prev_hash")), c->anchor, MD_HASH_LEN))
            rc = md_error_set(err, MD_ECORRUPT, "first line: bad prev_hash");
    }
    json_decref(j);
    if (rc != MD_OK)
        return rc;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->hashes = md_realloc(c->hashes, c->cap * sizeof *c->hashes);
    }
    memcpy(c->hashes[c->n++], hash, MD_HASH_LEN);
    return MD_OK;
}

static md_err_t read_export(export_chain_t *c, const char *path, md_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return md_error_set(err, MD_EIO, "open '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    md_err_t rc = MD_OK;
    while (rc == MD_OK && (n = getline(&line, &cap, f)) >= 0)
        if (n > 1)
            rc = export_line(c, line, (size_t)n, err);
    free(line);
    fclose(f);
    return rc;
}

static md_err_t export_hash_at(uint64_t seq, unsigned char hash[MD_HASH_LEN], void *ctx,
                               md_error_t *err)
{
    export_chain_t *c = ctx;
    (void)err;
    memcpy(hash, seq + 1 == c->first ? c->anchor : c->hashes[seq - c->first], MD_HASH_LEN);
    return MD_OK;
}

/* Leaves out the checkpoints below a partial export's anchor (seq first - 1),
 * which it cannot check; returns how many. */
static size_t drop_before(md_cp_set_t *s, uint64_t first)
{
    size_t kept = 0, n = s->n;
    for (size_t i = 0; i < n; i++)
        if (s->cps[i].seq + 1 >= first) { /* swapped, so that release frees each once */
            md_checkpoint_t t = s->cps[kept];
            s->cps[kept++] = s->cps[i];
            s->cps[i] = t;
        }
    s->n = kept;
    return n - kept;
}

static int cmd_verify_export(const opts_t *o)
{
    md_cp_set_t s;
    md_error_t err = {0};
    export_chain_t c = {0};
    if (o->file == NULL)
        return fail_usage("verify-export needs FILE");
    int status = load_and_check_signatures(&s, o->checkpoints, o->keys);
    if (status != 0)
        return status;
    md_err_t rc = read_export(&c, o->file, &err);
    if (rc == MD_ECORRUPT)
        status = report_failure("chain", err.msg);
    else if (rc != MD_OK)
        status = (fprintf(stderr, "marketctl: %s\n", err.msg), 1);
    size_t skipped = 0, total = s.n;
    if (rc == MD_OK && c.n) {
        skipped = drop_before(&s, c.first);
        status = check_chain(&s, c.first + c.n - 1, export_hash_at, &c);
    } else if (rc == MD_OK) {
        status = (fprintf(stderr, "marketctl: verify-export: empty export\n"), 1);
    }
    s.n = total; /* md_cp_set_release frees every one */
    if (status == 0) {
        char hex[2 * MD_HASH_LEN + 1] = "", anchor[2 * MD_HASH_LEN + 1];
        md_hex(c.hashes[c.n - 1], MD_HASH_LEN, hex);
        md_hex(c.anchor, MD_HASH_LEN, anchor);
        print_json(json_pack("{s:b, s:I, s:I, s:s, s:s, s:I, s:I}", "ok", 1, "events",
                             (json_int_t)c.n, "first", (json_int_t)c.first, "prev_hash", anchor,
                             "head", hex, "checkpoints", (json_int_t)(total - skipped),
                             "checkpoints_before_export", (json_int_t)skipped));
    }
    free(c.hashes);
    md_cp_set_release(&s);
    return status;
}

/* ---- dispatch --------------------------------------------------------------------------------- */

typedef struct sub {
    const char *name;
    int (*run)(const opts_t *o);
} sub_t;

static const sub_t subs[] = {
    {"keygen", cmd_keygen},
    {"checkpoints", cmd_checkpoints},
    {"verify-export", cmd_verify_export},
};

static const sub_t *find(const char *name)
{
    for (size_t i = 0; i < sizeof subs / sizeof subs[0]; i++)
        if (strcmp(subs[i].name, name) == 0)
            return &subs[i];
    return NULL;
}

bool ctl_checkpoint_is_sub(const char *name)
{
    return name != NULL && find(name) != NULL;
}

int ctl_checkpoint_main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"id", required_argument, NULL, 'i'},
        {"out", required_argument, NULL, 'o'},
        {"bootstrap", required_argument, NULL, 'b'},
        {"topic", required_argument, NULL, 't'},
        {"checkpoints", required_argument, NULL, 'c'},
        {"keys", required_argument, NULL, 'k'},
        {NULL, 0, NULL, 0},
    };
    const sub_t *sub = find(argv[0]);
    opts_t o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        const char **slot = c == 'i'   ? &o.id
                            : c == 'o' ? &o.out
                            : c == 'b' ? &o.bootstrap
                            : c == 't' ? &o.topic
                            : c == 'c' ? &o.checkpoints
                            : c == 'k' ? &o.keys
                                       : NULL;
        if (slot == NULL)
            return fail_usage("unknown option");
        *slot = optarg;
    }
    if (sub->run == cmd_verify_export && optind == argc - 1)
        o.file = argv[optind++];
    if (optind != argc)
        return fail_usage("unexpected argument");
    return sub->run(&o);
}
