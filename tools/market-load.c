/*
 * market-load - load generator and result collector for marketd.
 *
 *   market-load --bootstrap HOST:PORT --input FILE|- [--topic market.commands]
 *               [--results-topic market.results] [--wait] [--timeout SECONDS]
 *               [--rate N] [--msgpack] [--results-out FILE] [--latency-out FILE]
 *               [--quiet] [-X librdkafka.prop=value ...]
 *
 * Each non-blank input line (blank exactly as in `marketd --input`) becomes one
 * message on the commands topic, keyed by the command's target stream (the
 * aggregate, so one aggregate's commands stay in order on one partition).
 * With --wait the tool also reads the results topic from its end as of start-up
 * and waits until every produced line has its result, matching them by
 * command_id; it then prints throughput and latency percentiles.
 *
 * Everything runs on one thread: the producer's delivery reports and the
 * results consumer are served between (and while waiting for) produce calls,
 * so the id set needs no lock and latency is measured where the result is seen.
 *
 * Exit status: 0 when every line was delivered (and, with --wait, every result
 * seen), 1 otherwise, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_command.h"
#include "md_error.h"
#include "md_base.h"
#include "md_version.h"

#define LOAD_KEY_MAX 256              /* a target stream is "<prefix>:<id>", < 80 bytes */
/* marketd answers a message longer than this MALFORMED without parsing it
 * (the engine's default max_message_bytes), so its result has no command_id. */
#define LOAD_MAX_MESSAGE ((size_t)1 << 20)
#define LOAD_SERVICE_EVERY 256        /* unpaced: serve callbacks every N lines */
#define LOAD_CONSUME_BATCH 10000      /* results handled per service call at most */
#define LOAD_REFRESH_NS 500000000LL   /* results topic metadata refresh period */
#define LOAD_RETRY_MS 200             /* pause between start-up query attempts */
#define LOAD_NS 1000000000LL

/* Set by SIGINT/SIGTERM; the loops stop and the summary is still printed. */
static volatile sig_atomic_t load_interrupted;

/* ---- options ------------------------------------------------------------- */

typedef struct load_opts {
    const char *bootstrap, *input, *topic, *results_topic;
    const char *results_out, *latency_out;
    bool wait, msgpack, quiet;
    double timeout_s;
    uint64_t rate;                    /* messages per second; 0 = unpaced */
    const char **props;               /* -X NAME=VALUE, in order */
    size_t nprops;
} load_opts_t;

/* ---- the set of produced command_ids (open addressing, linear probing) ---- */

typedef struct load_ent {
    char *id;                         /* NUL-terminated, in the arena; NULL = empty */
    int64_t sent_ns;                  /* monotonic time of the first produce call */
    uint32_t hash;                    /* kept so that growing never rehashes strings */
    uint32_t expected;                /* lines produced with this id */
    uint32_t matched;                 /* results counted against them */
} load_ent_t;

/* Ids are copied into large blocks rather than malloc'd one by one: a million
 * small allocations would cost more in headers than the ids themselves. */
typedef struct load_blk {
    struct load_blk *next;
    size_t used, cap;
    char data[];
} load_blk_t;

typedef struct load_set {
    load_ent_t *slots;
    size_t cap;                       /* a power of two */
    size_t count;
    load_blk_t *blocks;
} load_set_t;

/* ---- the run ------------------------------------------------------------- */

typedef struct load {
    load_opts_t o;
    rd_kafka_t *prod, *cons;
    rd_kafka_topic_t *rkt;            /* commands topic, on prod */
    rd_kafka_topic_t *res_rkt;        /* results topic, on cons (metadata only) */
    FILE *in, *results_out, *latency_out;
    md_error_t err;

    load_set_t set;
    uint64_t anon_expected, anon_seen; /* lines without a valid command_id */
    uint64_t outstanding;             /* results still expected */

    uint64_t produced, delivered, failed;
    uint64_t results, duplicates, other;
    bool halt;                        /* stop producing: failure or signal */
    bool fatal;
    char first_failure[256];

    int32_t res_parts;                /* partitions of the results topic assigned */
    int64_t next_refresh_ns;

    int64_t t_start, t_last;          /* produce start; last delivery or result */
    int64_t *lat;                     /* ns, first result of each command */
    size_t nlat, lat_cap;

    rd_kafka_resp_err_t last_err;     /* to quiet repeated transient errors */
    int64_t last_err_ns;

    md_command_t cmd;                 /* decoder scratch, ~5 KB */
    md_buf_t mp;
} load_t;

/* One input line ready to produce. */
typedef struct load_msg {
    const void *val;
    size_t len;
    char key[LOAD_KEY_MAX];
    size_t keylen;
    bool has_id;                      /* a result will carry command_id (else null) */
    bool is_msgpack;
    char id[MD_COMMAND_ID_MAX + 1];   /* the command_id when has_id */
} load_msg_t;

/* ---- id set -------------------------------------------------------------- */

/* FNV-1a, then murmur3's finaliser: command ids often differ only in their
 * last digits, and linear probing needs those differences spread out. */
static uint32_t load_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

static char *load_arena_copy(load_set_t *s, const char *id, size_t n)
{
    load_blk_t *b = s->blocks;
    if (b == NULL || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        b = md_malloc(sizeof *b + cap);
        b->next = s->blocks;
        b->used = 0;
        b->cap = cap;
        s->blocks = b;
    }
    char *p = b->data + b->used;
    memcpy(p, id, n);
    p[n] = '\0';
    b->used += n + 1;
    return p;
}

/* The slot holding id, or the empty slot where it would go. */
static load_ent_t *load_set_slot(const load_set_t *s, const char *id, size_t n, uint32_t h)
{
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        load_ent_t *e = &s->slots[i];
        if (e->id == NULL)
            return e;
        if (e->hash == h && strncmp(e->id, id, n) == 0 && e->id[n] == '\0')
            return e;
    }
}

static void load_set_grow(load_set_t *s)
{
    load_set_t bigger = {.cap = s->cap ? s->cap * 2 : 1024};
    bigger.slots = md_calloc(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < s->cap; i++) {
        const load_ent_t *e = &s->slots[i];
        if (e->id == NULL)
            continue;
        size_t mask = bigger.cap - 1, j = e->hash & mask;
        while (bigger.slots[j].id != NULL)
            j = (j + 1) & mask;
        bigger.slots[j] = *e;
    }
    free(s->slots);
    s->slots = bigger.slots;
    s->cap = bigger.cap;
}

/* Finds id, or inserts it with expected = 0; never fails (md_* aborts on OOM). */
static load_ent_t *load_set_add(load_set_t *s, const char *id, size_t n)
{
    /* Keep the load factor under 0.7 so that probe runs stay short. */
    if ((s->count + 1) * 10 > s->cap * 7)
        load_set_grow(s);
    uint32_t h = load_hash(id, n);
    load_ent_t *e = load_set_slot(s, id, n, h);
    if (e->id == NULL) {
        *e = (load_ent_t){.id = load_arena_copy(s, id, n), .hash = h};
        s->count++;
    }
    return e;
}

static load_ent_t *load_set_find(const load_set_t *s, const char *id, size_t n)
{
    if (s->cap == 0)
        return NULL;
    load_ent_t *e = load_set_slot(s, id, n, load_hash(id, n));
    return e->id ? e : NULL;
}

static void load_set_release(load_set_t *s)
{
    while (s->blocks) {
        load_blk_t *next = s->blocks->next;
        free(s->blocks);
        s->blocks = next;
    }
    free(s->slots);
    *s = (load_set_t){0};
}

/* ---- usage and options ---------------------------------------------------- */

static void load_usage(FILE *f)
{
    fputs("usage: market-load --bootstrap HOST:PORT --input FILE|- [options]\n"
          "\n"
          "Produces each non-blank JSON line of the input as one message (key = the\n"
          "command's target stream) and, with --wait, collects a result per command.\n"
          "\n"
          "  --bootstrap HOST:PORT  Kafka bootstrap servers (required)\n"
          "  --input FILE|-         JSON-lines commands; - reads stdin (required)\n"
          "  --topic NAME           commands topic (default market.commands)\n"
          "  --results-topic NAME   results topic (default market.results)\n"
          "  --wait                 wait for a result for every line produced, reading\n"
          "                         the results topic from its end at start-up\n"
          "  --timeout SECONDS      how long to wait for the broker at start-up, and for\n"
          "                         deliveries and results after the last line (default 60)\n"
          "  --rate N               produce N messages per second (default: unpaced)\n"
          "  --msgpack              send each JSON envelope as a msgpack map with header\n"
          "                         content-type: application/msgpack (invalid JSON is\n"
          "                         sent as it is)\n"
          "  --results-out FILE     write every result value received, one per line,\n"
          "                         duplicates included (needs --wait)\n"
          "  --latency-out FILE     write each command's latency in microseconds, one\n"
          "                         per line (needs --wait)\n"
          "  --quiet                no summary line, no librdkafka warnings\n"
          "  -X PROP=VALUE          librdkafka property for producer and consumer\n"
          "                         (repeatable; defaults: enable.idempotence=true,\n"
          "                         linger.ms=5, message.timeout.ms=the timeout)\n"
          "  -h, --help             this text\n"
          "\n"
          "Exit status: 0 when every line was delivered (and, with --wait, every result\n"
          "seen), 1 otherwise, 2 on bad usage.\n",
          f);
}

/* Bad usage gets the reason and a pointer to --help, not the whole text. */
static int load_bad_usage(void)
{
    fputs("usage: market-load --bootstrap HOST:PORT --input FILE|- [options]; "
          "see market-load --help\n",
          stderr);
    return 2;
}

static bool load_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
        return false;
    *out = v;
    return true;
}

static bool load_parse_seconds(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* An upper bound keeps the ms and ns conversions far from overflow. */
    if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 1e6)
        return false;
    *out = v;
    return true;
}

enum {
    LOAD_OPT_BOOTSTRAP = 256, LOAD_OPT_INPUT, LOAD_OPT_TOPIC, LOAD_OPT_RESULTS_TOPIC,
    LOAD_OPT_WAIT, LOAD_OPT_TIMEOUT, LOAD_OPT_RATE, LOAD_OPT_MSGPACK,
    LOAD_OPT_RESULTS_OUT, LOAD_OPT_LATENCY_OUT, LOAD_OPT_QUIET
};

static const struct option load_long_opts[] = {
    {"bootstrap", required_argument, NULL, LOAD_OPT_BOOTSTRAP},
    {"input", required_argument, NULL, LOAD_OPT_INPUT},
    {"topic", required_argument, NULL, LOAD_OPT_TOPIC},
    {"results-topic", required_argument, NULL, LOAD_OPT_RESULTS_TOPIC},
    {"wait", no_argument, NULL, LOAD_OPT_WAIT},
    {"timeout", required_argument, NULL, LOAD_OPT_TIMEOUT},
    {"rate", required_argument, NULL, LOAD_OPT_RATE},
    {"msgpack", no_argument, NULL, LOAD_OPT_MSGPACK},
    {"results-out", required_argument, NULL, LOAD_OPT_RESULTS_OUT},
    {"latency-out", required_argument, NULL, LOAD_OPT_LATENCY_OUT},
    {"quiet", no_argument, NULL, LOAD_OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0}};

/* Applies one option; returns false (after saying why) when it is invalid. */
static bool load_apply_opt(load_opts_t *o, int c, const char *arg)
{
    switch (c) {
    case LOAD_OPT_BOOTSTRAP: o->bootstrap = arg; return true;
    case LOAD_OPT_INPUT: o->input = arg; return true;
    case LOAD_OPT_TOPIC: o->topic = arg; return true;
    case LOAD_OPT_RESULTS_TOPIC: o->results_topic = arg; return true;
    case LOAD_OPT_WAIT: o->wait = true; return true;
    case LOAD_OPT_MSGPACK: o->msgpack = true; return true;
    case LOAD_OPT_RESULTS_OUT: o->results_out = arg; return true;
    case LOAD_OPT_LATENCY_OUT: o->latency_out = arg; return true;
    case LOAD_OPT_QUIET: o->quiet = true; return true;
    case LOAD_OPT_TIMEOUT:
        if (load_parse_seconds(arg, &o->timeout_s))
            return true;
        fprintf(stderr, "market-load: --timeout '%s': expected seconds > 0\n", arg);
        return false;
    case LOAD_OPT_RATE:
        if (load_parse_u64(arg, &o->rate) && o->rate > 0 && o->rate <= 100000000)
            return true;
        fprintf(stderr, "market-load: --rate '%s': expected 1..100000000\n", arg);
        return false;
    case 'X':
        if (strchr(arg, '=') != NULL && arg[0] != '=') {
            o->props[o->nprops++] = arg;
            return true;
        }
        fprintf(stderr, "market-load: -X '%s': expected PROP=VALUE\n", arg);
        return false;
    default:
        return false;
    }
}

static bool load_check_opts(const load_opts_t *o)
{
    const char *why = NULL;
    if (o->bootstrap == NULL || o->input == NULL)
        why = "--bootstrap and --input are required";
    else if (!*o->topic || !*o->results_topic)
        why = "topic names must not be empty";
    else if ((o->results_out || o->latency_out) && !o->wait)
        why = "--results-out and --latency-out need --wait";
    if (why)
        fprintf(stderr, "market-load: %s\n", why);
    return why == NULL;
}

/* Returns 0 to run, 2 on bad usage, -1 after --help. */
static int load_parse_args(int argc, char **argv, load_opts_t *o)
{
    *o = (load_opts_t){.topic = "market.commands", .results_topic = "market.results",
                       .timeout_s = 60};
    /* At most one -X per argument pair, so argc bounds their number. */
    o->props = md_calloc((size_t)argc + 1, sizeof *o->props);
    int c;
    while ((c = getopt_long(argc, argv, "hX:", load_long_opts, NULL)) != -1) {
        if (c == 'h') {
            load_usage(stdout);
            return -1;
        }
        if (c == '?' || !load_apply_opt(o, c, optarg))
            return load_bad_usage();
    }
    if (optind < argc) {
        fprintf(stderr, "market-load: unexpected argument '%s'\n", argv[optind]);
        return load_bad_usage();
    }
    return load_check_opts(o) ? 0 : load_bad_usage();
}

/* ---- librdkafka configuration --------------------------------------------- */

static md_err_t load_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value,
                              md_error_t *err)
{
    char msg[512];
    if (rd_kafka_conf_set(conf, name, value, msg, sizeof msg) != RD_KAFKA_CONF_OK)
        return md_error_set(err, MD_ECONFIG, "property '%s': %s", name, msg);
    return MD_OK;
}

/* Applies the -X properties, "NAME=VALUE" each, after the defaults, so that
 * they override them. */
static md_err_t load_conf_user(rd_kafka_conf_t *conf, const load_opts_t *o, md_error_t *err)
{
    for (size_t i = 0; i < o->nprops; i++) {
        const char *eq = strchr(o->props[i], '=');
        char name[256];
        size_t n = (size_t)(eq - o->props[i]);
        if (n >= sizeof name)
            return md_error_set(err, MD_ECONFIG, "property name '%.40s...' too long",
                                o->props[i]);
        memcpy(name, o->props[i], n);
        name[n] = '\0';
        md_err_t rc = load_conf_set(conf, name, eq + 1, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* Counts a failed message; the first reason recorded is the one reported. */
static void load_fail(load_t *l, const char *what, const char *why)
{
    l->failed++;
    if (l->first_failure[0] == '\0')
        snprintf(l->first_failure, sizeof l->first_failure, "%s: %s", what, why);
}

/* Transient errors (broker down, connection refused) repeat for as long as
 * the broker is away; one line per error code every 5 s is enough. */
static void load_on_error(rd_kafka_t *rk, int code, const char *reason, void *opaque)
{
    load_t *l = opaque;
    char fatal_msg[512];
    if (code == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal_msg, sizeof fatal_msg);
        fprintf(stderr, "market-load: kafka fatal error: %s\n", fatal_msg);
        l->fatal = l->halt = true;
        return;
    }
    int64_t now = md_mono_ns();
    /* librdkafka logs transport failures itself (FAIL lines); do not repeat. */
    if (l->o.quiet || code == RD_KAFKA_RESP_ERR__TRANSPORT ||
        (code == (int)l->last_err && now - l->last_err_ns < 5 * LOAD_NS))
        return;
    l->last_err = (rd_kafka_resp_err_t)code;
    l->last_err_ns = now;
    fprintf(stderr, "market-load: kafka: %s\n", reason);
}

/* Delivery report, served by rd_kafka_poll() on the main thread. A failed
 * delivery stops production: the run has failed already, and with the
 * broker gone every further line would only wait out message.timeout.ms. */
static void load_on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    load_t *l = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        l->delivered++;
        if (!l->o.wait)
            l->t_last = md_mono_ns();
        return;
    }
    load_fail(l, "delivery failed", rd_kafka_err2str(m->err));
    l->halt = true;
}

/* Settings both clients share: servers, quietness, callbacks. (The -X
 * properties come last, in load_new_client, so that they override.) */
static md_err_t load_conf_common(load_t *l, rd_kafka_conf_t *conf)
{
    md_err_t rc = load_conf_set(conf, "bootstrap.servers", l->o.bootstrap, &l->err);
    if (rc == MD_OK && l->o.quiet)
        rc = load_conf_set(conf, "log_level", "0", &l->err);
    if (rc != MD_OK)
        return rc;
    rd_kafka_conf_set_opaque(conf, l);
    rd_kafka_conf_set_error_cb(conf, load_on_error);
    return MD_OK;
}

static md_err_t load_new_client(load_t *l, rd_kafka_type_t type, rd_kafka_conf_t *conf,
                                rd_kafka_t **out)
{
    char msg[512];
    md_err_t rc = load_conf_user(conf, &l->o, &l->err);
    if (rc == MD_OK) {
        *out = rd_kafka_new(type, conf, msg, sizeof msg);
        if (*out != NULL)
            return MD_OK; /* conf is owned by the handle now */
        rc = md_error_set(&l->err, MD_EKAFKA, "rd_kafka_new: %s", msg);
    }
    rd_kafka_conf_destroy(conf); /* rd_kafka_new frees conf only on success */
    return rc;
}

static md_err_t load_producer_new(load_t *l)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char tmo[32];
    /* Undeliverable messages fail after the timeout instead of librdkafka's
     * 300 s, so that an absent broker is reported within --timeout. */
    snprintf(tmo, sizeof tmo, "%.0f", l->o.timeout_s * 1000 < 1 ? 1 : l->o.timeout_s * 1000);
    md_err_t rc = load_conf_common(l, conf);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.idempotence", "true", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "linger.ms", "5", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "message.timeout.ms", tmo, &l->err);
    if (rc != MD_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, load_on_delivery);
    rc = load_new_client(l, RD_KAFKA_PRODUCER, conf, &l->prod);
    if (rc != MD_OK)
        return rc;
    l->rkt = rd_kafka_topic_new(l->prod, l->o.topic, NULL);
    if (l->rkt == NULL)
        return md_error_set(&l->err, MD_EKAFKA, "topic '%s': %s", l->o.topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
    return MD_OK;
}

/* The consumer never joins a group and never commits: librdkafka 2.0 needs a
 * group.id for rd_kafka_assign() and rd_kafka_consumer_poll() all the same, so
 * it gets a unique throwaway one with auto-commit off. */
static md_err_t load_consumer_new(load_t *l)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char group[96];
    snprintf(group, sizeof group, "market-load-%ld-%" PRId64, (long)getpid(), md_mono_ns());
    md_err_t rc = load_conf_common(l, conf);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "group.id", group, &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.auto.commit", "false", &l->err);
    if (rc == MD_OK)
        rc = load_conf_set(conf, "enable.auto.offset.store", "false", &l->err);
    /* Should an assigned offset vanish, reading old results (counted as
     * "other") is better than skipping new ones. */
    if (rc == MD_OK)
        rc = load_conf_set(conf, "auto.offset.reset", "earliest", &l->err);
    if (rc != MD_OK) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rc = load_new_client(l, RD_KAFKA_CONSUMER, conf, &l->cons);
    if (rc != MD_OK)
        return rc;
    /* Errors and logs then come out of rd_kafka_consumer_poll() too, instead
     * of piling up in a main queue nobody polls. */
    rd_kafka_resp_err_t e = rd_kafka_poll_set_consumer(l->cons);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return md_error_set(&l->err, MD_EKAFKA, "rd_kafka_poll_set_consumer: %s",
                            rd_kafka_err2str(e));
    l->res_rkt = rd_kafka_topic_new(l->cons, l->o.results_topic, NULL);
    if (l->res_rkt == NULL)
        return md_error_set(&l->err, MD_EKAFKA, "topic '%s': %s", l->o.results_topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
    return MD_OK;
}

/* ---- results topic: start at the end ------------------------------------- */

static void load_consume(load_t *l, int timeout_ms);

/* Metadata of the results topic: *nparts = 0 when the topic does not exist
 * (yet). Returns a librdkafka error to retry on, or NO_ERROR. */
static rd_kafka_resp_err_t load_results_parts(load_t *l, int timeout_ms, int32_t *nparts)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(l->cons, 0, l->res_rkt, &md, timeout_ms);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return e;
    *nparts = 0;
    if (md->topic_cnt == 1) {
        const struct rd_kafka_metadata_topic *t = &md->topics[0];
        e = t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ? RD_KAFKA_RESP_ERR_NO_ERROR
                                                              : t->err;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && t->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            *nparts = t->partition_cnt;
        for (int i = 0; e == RD_KAFKA_RESP_ERR_NO_ERROR && i < t->partition_cnt; i++)
            if (t->partitions[i].leader < 0) /* being created: ask again */
                e = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
    }
    rd_kafka_metadata_destroy(md);
    return e;
}

/* The high watermark of every partition, as assignment offsets. */
static rd_kafka_resp_err_t load_results_ends(load_t *l, int32_t nparts, int timeout_ms,
                                             rd_kafka_topic_partition_list_t *list)
{
    for (int32_t p = 0; p < nparts; p++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            l->cons, l->o.results_topic, p, &lo, &hi, timeout_ms);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            return e;
        rd_kafka_topic_partition_list_add(list, l->o.results_topic, p)->offset = hi;
    }
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

static int load_ms_left(int64_t deadline)
{
    int64_t left = (deadline - md_mono_ns()) / 1000000;
    return left <= 0 ? 0 : left > 1000 ? 1000 : (int)left;
}

/* One attempt: metadata, watermarks, assign. */
static rd_kafka_resp_err_t load_results_try(load_t *l, int64_t deadline)
{
    int32_t nparts = 0;
    rd_kafka_resp_err_t e = load_results_parts(l, load_ms_left(deadline), &nparts);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        return e;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts + 1);
    e = load_results_ends(l, nparts, load_ms_left(deadline), list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        e = rd_kafka_assign(l->cons, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        l->res_parts = nparts;
    return e;
}

/* Assigns every results partition at its current end, before anything is
 * produced, so that every result of this run is read and none of an earlier
 * one. A topic that does not exist yet is assigned when it appears (see
 * load_results_refresh). The broker may not be up yet: retry until the
 * timeout. */
static md_err_t load_results_start(load_t *l)
{
    int64_t deadline = md_mono_ns() + (int64_t)(l->o.timeout_s * 1e9);
    rd_kafka_resp_err_t e;
    while ((e = load_results_try(l, deadline)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (load_interrupted)
            return md_error_set(&l->err, MD_ESTOP, "interrupted");
        if (md_mono_ns() >= deadline)
            return md_error_set(&l->err, MD_EKAFKA,
                                "results topic '%s': no answer within %g s: %s",
                                l->o.results_topic, l->o.timeout_s, rd_kafka_err2str(e));
        load_consume(l, LOAD_RETRY_MS); /* serves error_cb while waiting */
    }
    l->next_refresh_ns = md_mono_ns() + LOAD_REFRESH_NS;
    return MD_OK;
}

/* While the results topic had no partitions, looks again every 0.5 s; a topic
 * created after start-up holds only results of this run, so it is read from
 * its beginning. (Partitions added to an existing topic during a run are not
 * picked up.) */
static void load_results_refresh(load_t *l)
{
    int32_t nparts = 0;
    if (l->res_parts > 0 || md_mono_ns() < l->next_refresh_ns)
        return;
    l->next_refresh_ns = md_mono_ns() + LOAD_REFRESH_NS;
    if (load_results_parts(l, 500, &nparts) != RD_KAFKA_RESP_ERR_NO_ERROR || nparts == 0)
        return;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(nparts);
    for (int32_t p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(list, l->o.results_topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(l->cons, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR)
        l->res_parts = nparts;
    else
        fprintf(stderr, "market-load: assign '%s': %s\n", l->o.results_topic,
                rd_kafka_err2str(e));
}

/* ---- results -------------------------------------------------------------- */

static void load_record_latency(load_t *l, int64_t ns)
{
    if (l->nlat == l->lat_cap) {
        l->lat_cap = l->lat_cap ? l->lat_cap * 2 : 4096;
        l->lat = md_realloc(l->lat, l->lat_cap * sizeof *l->lat);
    }
    l->lat[l->nlat++] = ns;
    if (l->latency_out)
        fprintf(l->latency_out, "%" PRId64 "\n", ns / 1000);
}

/* Counts one result for command_id id (NULL: a null command_id). */
static void load_match(load_t *l, const char *id, size_t n, int64_t now)
{
    if (id == NULL) {
        /* MALFORMED lines have no id to tell them apart: only their number. */
        if (l->anon_seen == l->anon_expected) {
            l->duplicates++;
            return;
        }
        l->anon_seen++;
    } else {
        load_ent_t *e = load_set_find(&l->set, id, n);
        if (e == NULL) {
            l->other++; /* not ours: another producer's command */
            return;
        }
        /* More results than lines produced so far: at-least-once
         * publication. (A line repeating the id later expects one more.) */
        if (e->matched == e->expected) {
            l->duplicates++;
            return;
        }
        if (e->matched++ == 0)
            load_record_latency(l, now - e->sent_ns);
    }
    l->outstanding--;
    l->t_last = now;
}

static void load_on_result(load_t *l, const rd_kafka_message_t *m, int64_t now)
{
    json_error_t jerr;
    l->results++;
    /* Write errors are caught by ferror() when the file is closed. */
    if (l->results_out) {
        fwrite(m->payload, 1, m->len, l->results_out);
        fputc('\n', l->results_out);
    }
    json_t *j = m->payload ? json_loadb(m->payload, m->len, 0, &jerr) : NULL;
    json_t *id = json_object_get(j, "command_id"); /* NULL-safe */
    if (json_is_string(id))
        load_match(l, json_string_value(id), json_string_length(id), now);
    else if (json_is_null(id))
        load_match(l, NULL, 0, now);
    else
        l->other++; /* not a result at all */
    json_decref(j);
}

static void load_on_consumer_msg(load_t *l, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        load_on_result(l, m, md_mono_ns());
        return;
    }
    if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && !l->o.quiet)
        fprintf(stderr, "market-load: consume '%s': %s\n", l->o.results_topic,
                rd_kafka_message_errstr(m));
}

/* Waits up to timeout_ms for results, then takes what is queued. */
static void load_consume(load_t *l, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(l->cons, timeout_ms);
    for (int n = 0; m != NULL; n++) {
        load_on_consumer_msg(l, m);
        rd_kafka_message_destroy(m);
        m = n < LOAD_CONSUME_BATCH ? rd_kafka_consumer_poll(l->cons, 0) : NULL;
    }
}

/* Serves delivery reports and errors, and with --wait reads results; blocks
 * up to timeout_ms when there is nothing to do. */
static void load_service(load_t *l, int timeout_ms)
{
    if (l->cons == NULL) {
        rd_kafka_poll(l->prod, timeout_ms);
        return;
    }
    rd_kafka_poll(l->prod, 0);
    load_results_refresh(l);
    load_consume(l, timeout_ms);
}

/* ---- input lines ----------------------------------------------------------- */

/* Blank exactly as offline mode (daemon/offline.c) counts it. */
static bool load_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n' && s[i] != '\f' &&
            s[i] != '\v')
            return false;
    return true;
}

/* Re-encodes line as msgpack into l->mp (md_json_to_msgpack); false when the
 * line is not JSON (decoded as strictly as marketd does), which is then sent
 * as it is. */
static bool load_to_msgpack(load_t *l, const char *line, size_t len)
{
    json_error_t jerr;
    json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (j == NULL)
        return false;
    md_buf_reset(&l->mp);
    md_json_to_msgpack(j, &l->mp);
    json_decref(j);
    return true;
}

/* Works out the key and whether the result will carry the command_id, with
 * marketd's own decoder. */
static void load_classify(load_t *l, const char *line, size_t len, load_msg_t *m)
{
    md_command_t *c = &l->cmd;
    md_command_decode_json(line, len, NULL, c);
    /* Only a MALFORMED command is answered with a null command_id. */
    m->has_id = c->status != MD_DECODE_MALFORMED;
    m->keylen = 0;
    m->id[0] = '\0';
    if (!m->has_id)
        return;
    snprintf(m->id, sizeof m->id, "%s", c->command_id);
    if (c->spec != NULL && md_cmd_target_stream(c, m->key, sizeof m->key))
        m->keylen = strlen(m->key);
    else
        m->keylen = (size_t)snprintf(m->key, sizeof m->key, "%s", m->id);
}

static void load_prepare(load_t *l, const char *line, size_t len, load_msg_t *m)
{
    load_classify(l, line, len, m);
    m->is_msgpack = l->o.msgpack && load_to_msgpack(l, line, len);
    m->val = m->is_msgpack ? (const void *)l->mp.p : (const void *)line;
    m->len = m->is_msgpack ? l->mp.len : len;
    if (m->len > LOAD_MAX_MESSAGE)
        m->has_id = false;
}

/* ---- producing ------------------------------------------------------------- */

static size_t load_build_vu(load_t *l, const load_msg_t *m, rd_kafka_vu_t *vu)
{
    size_t n = 0;
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = l->rkt;
    vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
    vu[n].u.mem.ptr = (void *)(uintptr_t)m->val; /* copied: RD_KAFKA_MSG_F_COPY */
    vu[n++].u.mem.size = m->len;
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    if (m->keylen > 0) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)(uintptr_t)m->key;
        vu[n++].u.mem.size = m->keylen;
    }
    if (m->is_msgpack) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = "content-type";
        vu[n].u.header.val = "application/msgpack";
        vu[n++].u.header.size = -1;
    }
    return n;
}

/* Produces one message, waiting while the local queue is full. Returns
 * MD_OK with *sent_ns = the time of the successful call, MD_ESTOP when told
 * to stop while waiting, MD_EKAFKA (counted as a failure) otherwise. */
static md_err_t load_produce(load_t *l, const load_msg_t *m, int64_t *sent_ns)
{
    rd_kafka_vu_t vu[5];
    size_t n = load_build_vu(l, m, vu);
    for (;;) {
        *sent_ns = md_mono_ns();
        rd_kafka_error_t *e = rd_kafka_produceva(l->prod, vu, n);
        if (e == NULL)
            return MD_OK;
        bool full = rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL;
        if (!full)
            load_fail(l, "produce", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        if (!full)
            return MD_EKAFKA;
        if (l->halt || load_interrupted)
            return MD_ESTOP;
        load_service(l, 10); /* delivery reports make room in the queue */
    }
}

/* Remembers what a produced line will be answered with. */
static void load_expect(load_t *l, const load_msg_t *m, int64_t sent_ns)
{
    l->outstanding++;
    if (!m->has_id) {
        l->anon_expected++;
        return;
    }
    load_ent_t *e = load_set_add(&l->set, m->id, strlen(m->id));
    if (e->expected++ == 0)
        e->sent_ns = sent_ns;
}

/* Waits until line number l->produced is due under --rate. The schedule is
 * absolute (start + i/rate), so short sleeps that overrun are caught up by
 * the next burst and the average rate stays exact; waits are at least 1 ms,
 * so fast rates go out in small bursts instead of spinning a core. */
static void load_pace(load_t *l)
{
    if (l->o.rate == 0) {
        if (l->produced % LOAD_SERVICE_EVERY == 0)
            load_service(l, 0);
        return;
    }
    int64_t due = l->t_start + (int64_t)((double)l->produced * 1e9 / (double)l->o.rate);
    for (int64_t now = md_mono_ns(); now < due && !l->halt && !load_interrupted;
         now = md_mono_ns())
        load_service(l, (int)((due - now + 999999) / 1000000));
}

static void load_send_line(load_t *l, const char *line, size_t len)
{
    load_msg_t m;
    int64_t sent_ns;
    load_prepare(l, line, len, &m);
    load_pace(l);
    if (l->halt || load_interrupted)
        return;
    if (load_produce(l, &m, &sent_ns) != MD_OK)
        return;
    l->produced++;
    if (l->cons)
        load_expect(l, &m, sent_ns);
}

static md_err_t load_produce_all(load_t *l)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    l->t_start = l->t_last = md_mono_ns();
    while (!l->halt && !load_interrupted && (n = getline(&line, &cap, l->in)) >= 0) {
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (!load_is_blank(line, len))
            load_send_line(l, line, len);
    }
    /* A signal interrupts a blocking read of stdin (EINTR): not an error. */
    bool bad = ferror(l->in) != 0 && !load_interrupted;
    free(line);
    if (bad)
        return md_error_set(&l->err, MD_EIO, "read '%s': %s", l->o.input, strerror(errno));
    return MD_OK;
}

/* ---- after the last line --------------------------------------------------- */

/* Deliveries are always waited for (within the timeout); results not after
 * an interruption, nor after a failed delivery, whose result cannot come. */
static bool load_finished(load_t *l)
{
    if (l->fatal)
        return true;
    if (rd_kafka_outq_len(l->prod) > 0)
        return false;
    return load_interrupted || l->cons == NULL || l->outstanding == 0 || l->failed > 0;
}

/* Undelivered messages are purged after the timeout, so that their delivery
 * reports (as failures) are counted before the summary. */
static void load_purge(load_t *l)
{
    if (rd_kafka_outq_len(l->prod) == 0)
        return;
    /* Say why, rather than librdkafka's "Purged in queue". */
    if (l->first_failure[0] == '\0' && (load_interrupted || l->fatal))
        snprintf(l->first_failure, sizeof l->first_failure, "not delivered: %s",
                 l->fatal ? "fatal error" : "interrupted");
    else if (l->first_failure[0] == '\0')
        snprintf(l->first_failure, sizeof l->first_failure,
                 "not delivered within the %g s timeout", l->o.timeout_s);
    rd_kafka_resp_err_t e =
        rd_kafka_purge(l->prod, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "market-load: purge: %s\n", rd_kafka_err2str(e));
    e = rd_kafka_flush(l->prod, 2000);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        fprintf(stderr, "market-load: flush: %s\n", rd_kafka_err2str(e));
}

/* Waits for the outstanding deliveries and, with --wait, results. */
static void load_drain(load_t *l)
{
    int64_t deadline = md_mono_ns() + (int64_t)(l->o.timeout_s * 1e9);
    while (!load_finished(l) && md_mono_ns() < deadline) {
        /* After ^C, deliveries get 5 s more at most, not a whole timeout. */
        if (load_interrupted && deadline - md_mono_ns() > 5 * LOAD_NS)
            deadline = md_mono_ns() + 5 * LOAD_NS;
        load_service(l, load_ms_left(deadline) < 50 ? load_ms_left(deadline) : 50);
    }
    load_purge(l);
}

/* ---- summary --------------------------------------------------------------- */

static int load_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile; q in 1/10000 (p99.9 = 9990). */
static double load_pct_ms(const int64_t *v, size_t n, uint64_t q)
{
    size_t k = (size_t)(((uint64_t)n * q + 9999) / 10000);
    return (double)v[k ? k - 1 : 0] / 1e6;
}

static void load_print_latency(load_t *l)
{
    if (l->nlat == 0)
        return;
    qsort(l->lat, l->nlat, sizeof *l->lat, load_cmp_i64);
    fprintf(stderr,
            " latency_ms p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f",
            load_pct_ms(l->lat, l->nlat, 5000), load_pct_ms(l->lat, l->nlat, 9000),
            load_pct_ms(l->lat, l->nlat, 9900), load_pct_ms(l->lat, l->nlat, 9990),
            (double)l->lat[l->nlat - 1] / 1e6);
}

static void load_summary(load_t *l)
{
    double secs = (double)(l->t_last - l->t_start) / 1e9;
    uint64_t done = l->cons ? l->produced - l->outstanding : l->delivered;
    fprintf(stderr, "market-load: produced=%" PRIu64 " delivered=%" PRIu64 " failed=%" PRIu64,
            l->produced, l->delivered, l->failed);
    if (l->cons)
        fprintf(stderr,
                " results=%" PRIu64 " duplicates=%" PRIu64 " other=%" PRIu64
                " missing=%" PRIu64,
                l->results, l->duplicates, l->other, l->outstanding);
    fprintf(stderr, " seconds=%.3f commands_per_s=%.0f", secs,
            secs > 0 ? (double)done / secs : 0.0);
    load_print_latency(l);
    fputc('\n', stderr);
}

/* The verdict: 0 when all went through, else 1 with the reasons on stderr. */
static int load_verdict(load_t *l)
{
    uint64_t unreported = l->produced - l->delivered; /* failed or no report */
    if (load_interrupted)
        fprintf(stderr, "market-load: interrupted\n");
    if (l->failed > 0)
        fprintf(stderr, "market-load: %" PRIu64 " messages failed, first: %s\n", l->failed,
                l->first_failure);
    else if (unreported > 0)
        fprintf(stderr, "market-load: %" PRIu64 " messages without a delivery report\n",
                unreported);
    if (l->cons && l->outstanding > 0 && l->failed == 0 && !load_interrupted)
        fprintf(stderr, "market-load: %" PRIu64 " of %" PRIu64
                        " results missing after waiting %g s\n",
                l->outstanding, l->produced, l->o.timeout_s);
    bool ok = !load_interrupted && !l->fatal && l->failed == 0 && unreported == 0 &&
              (l->cons == NULL || l->outstanding == 0);
    return ok ? 0 : 1;
}

/* ---- set-up and tear-down -------------------------------------------------- */

static void load_on_signal(int sig)
{
    (void)sig;
    load_interrupted = 1;
}

static md_err_t load_signals(load_t *l)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = load_on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return md_error_set(&l->err, MD_EIO, "sigaction: %s", strerror(errno));
    return MD_OK;
}

static md_err_t load_open_out(load_t *l, const char *path, FILE **f)
{
    if (path == NULL)
        return MD_OK;
    *f = fopen(path, "w");
    if (*f == NULL)
        return md_error_set(&l->err, MD_EIO, "open '%s': %s", path, strerror(errno));
    return MD_OK;
}

static md_err_t load_open_files(load_t *l)
{
    l->in = strcmp(l->o.input, "-") == 0 ? stdin : fopen(l->o.input, "r");
    if (l->in == NULL)
        return md_error_set(&l->err, MD_EIO, "open '%s': %s", l->o.input, strerror(errno));
    md_err_t rc = load_open_out(l, l->o.results_out, &l->results_out);
    if (rc == MD_OK)
        rc = load_open_out(l, l->o.latency_out, &l->latency_out);
    return rc;
}

static md_err_t load_close_out(load_t *l, FILE **f, const char *path)
{
    if (*f == NULL)
        return MD_OK;
    bool bad = ferror(*f) != 0;
    errno = 0;
    bad = fclose(*f) != 0 || bad;
    *f = NULL;
    if (bad)
        return md_error_set(&l->err, MD_EIO, "write '%s': %s", path,
                            errno ? strerror(errno) : "failed");
    return MD_OK;
}

/* Closes the outputs; returns MD_EIO when one could not be written. */
static md_err_t load_close_files(load_t *l)
{
    md_err_t a = load_close_out(l, &l->results_out, l->o.results_out);
    md_err_t b = load_close_out(l, &l->latency_out, l->o.latency_out);
    if (l->in && l->in != stdin)
        fclose(l->in);
    l->in = NULL;
    return a != MD_OK ? a : b;
}

/* Shutdown order from librdkafka's INTRODUCTION: close the consumer, then
 * destroy the handles (the producer was flushed or purged by load_drain). */
static void load_release(load_t *l)
{
    if (l->res_rkt)
        rd_kafka_topic_destroy(l->res_rkt);
    if (l->cons) {
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(l->cons);
        if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
            fprintf(stderr, "market-load: consumer close: %s\n", rd_kafka_err2str(e));
        rd_kafka_destroy(l->cons);
    }
    if (l->rkt)
        rd_kafka_topic_destroy(l->rkt);
    if (l->prod)
        rd_kafka_destroy(l->prod);
    load_close_files(l);
    load_set_release(&l->set);
    md_buf_release(&l->mp);
    free(l->lat);
    free(l->o.props);
}

static md_err_t load_setup(load_t *l)
{
    md_err_t rc = load_signals(l);
    if (rc == MD_OK)
        rc = load_open_files(l);
    if (rc == MD_OK && l->o.wait)
        rc = load_consumer_new(l);
    if (rc == MD_OK)
        rc = load_producer_new(l);
    /* The results partitions are placed at their end before the first line
     * is produced, so no result of this run can be missed. */
    if (rc == MD_OK && l->o.wait)
        rc = load_results_start(l);
    return rc;
}

static int load_run(load_t *l)
{
    md_err_t rc = load_setup(l);
    if (rc != MD_OK) {
        fprintf(stderr, "market-load: %s\n", l->err.msg);
        return 1;
    }
    rc = load_produce_all(l);
    load_drain(l);
    if (!l->o.quiet)
        load_summary(l);
    md_err_t crc = load_close_files(l);
    int status = load_verdict(l);
    if (rc == MD_OK)
        rc = crc;
    if (rc != MD_OK)
        fprintf(stderr, "market-load: %s\n", l->err.msg);
    return rc == MD_OK ? status : 1;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        return md_version_print(stdout, "market-load") == 0 ? 0 : 1;
    load_t *l = md_calloc(1, sizeof *l);
    int status = load_parse_args(argc, argv, &l->o);
    if (status == 0) {
        md_buf_init(&l->mp);
        status = load_run(l);
        load_release(l);
    } else {
        free(l->o.props);
        status = status < 0 ? 0 : status;
    }
    free(l);
    return status;
}
