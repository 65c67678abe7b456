/*
 * load.h - what the files of market-load share (market-load.c has the tool's
 * usage and behaviour; this header is private to it, not in include/).
 *
 *   market-load.c   main, set-up and tear-down (signals, files, clients)
 *   load_args.c     the command line: usage, options, their checks
 *   load_idset.c    the set of produced command_ids
 *   load_kafka.c    librdkafka configuration, callbacks, the results
 *                   topic's start at its end
 *   load_produce.c  input lines to messages, producing, pacing, draining
 *   load_results.c  results matched to produced ids, latency, summary, verdict
 *
 * Threads: everything runs on the main thread (delivery reports and results
 * are served between produce calls), so nothing here needs a lock; only
 * load_interrupted is written by a signal handler.
 */
#ifndef MD_TOOLS_LOAD_H
#define MD_TOOLS_LOAD_H

#include <librdkafka/rdkafka.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_base.h"
#include "md_command.h"
#include "md_error.h"

#define LOAD_KEY_MAX 256 /* a target stream is "<prefix>:<id>", < 80 bytes */
/* marketd answers a message longer than this MALFORMED without parsing it
 * (the engine's default max_message_bytes), so its result has no command_id. */
#define LOAD_MAX_MESSAGE ((size_t)1 << 20)
#define LOAD_SERVICE_EVERY 256      /* unpaced: serve callbacks every N lines */
#define LOAD_CONSUME_BATCH 10000    /* results handled per service call at most */
#define LOAD_REFRESH_NS 500000000LL /* results topic metadata refresh period */
#define LOAD_RETRY_MS 200           /* pause between start-up query attempts */
#define LOAD_NS 1000000000LL

/* Set by SIGINT/SIGTERM; the loops stop and the summary is still printed. */
extern volatile sig_atomic_t load_interrupted;

/* ---- options ------------------------------------------------------------- */

typedef struct load_opts {
    const char *bootstrap, *input, *topic, *results_topic;
    const char *results_out, *latency_out;
    bool wait, msgpack, quiet;
    double timeout_s;
    uint64_t rate;      /* messages per second; 0 = unpaced */
    int create_topics;  /* > 0: create both topics with that many partitions */
    const char **props; /* -X NAME=VALUE, in order */
    size_t nprops;
} load_opts_t;

/* ---- the set of produced command_ids (open addressing, linear probing) ---- */

typedef struct load_ent {
    char *id;          /* NUL-terminated, in the arena; NULL = empty */
    int64_t sent_ns;   /* monotonic time of the first produce call */
    uint32_t seq;      /* the line number (from 0) of that call: l->stg[seq] */
    uint32_t hash;     /* kept so that growing never rehashes strings */
    uint32_t expected; /* lines produced with this id */
    uint32_t matched;  /* results counted against them */
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
    size_t cap; /* a power of two */
    size_t count;
    load_blk_t *blocks;
} load_set_t;

/* ---- the run ------------------------------------------------------------- */

/* Where one command's time went (--latency-out): wall-clock µs since the
 * epoch, 0 when unknown. The broker's append times have ms resolution. */
typedef struct load_stage {
    int64_t produce;    /* the produce call */
    int64_t ack;        /* its delivery report seen */
    int64_t daemon[5];  /* marketd's header: the command's LogAppendTime, fetched,
                         * batch start, commit, publish */
    int64_t res_append; /* the results topic's LogAppendTime */
    int64_t consumed;   /* the result seen */
    int64_t lat_us;     /* produce call to result seen, monotonic; 0: no result */
} load_stage_t;

#define LOAD_STAGE_HEADER "marketd-stage-us" /* MD_STAGE_HEADER, md_publisher.h */

typedef struct load {
    load_opts_t o;
    rd_kafka_t *prod, *cons;
    rd_kafka_topic_t *rkt;     /* commands topic, on prod */
    rd_kafka_topic_t *res_rkt; /* results topic, on cons (metadata only) */
    FILE *in, *results_out, *latency_out;
    md_error_t err;

    load_set_t set;
    uint64_t anon_expected, anon_seen; /* lines without a valid command_id */
    uint64_t outstanding;              /* results still expected */

    uint64_t produced, delivered, failed;
    uint64_t results, duplicates, other;
    bool halt; /* stop producing: failure or signal */
    bool fatal;
    char first_failure[256];

    int32_t res_parts; /* partitions of the results topic assigned */
    int64_t next_refresh_ns;

    int64_t t_start, t_last; /* produce start; last delivery or result */
    int64_t *lat;            /* ns, first result of each command */
    size_t nlat, lat_cap;
    load_stage_t *stg; /* --latency-out: per line produced, in order */
    size_t stg_cap;

    rd_kafka_resp_err_t last_err; /* to quiet repeated transient errors */
    int64_t last_err_ns;

    md_command_t cmd; /* decoder scratch, ~5 KB */
    md_buf_t mp;
} load_t;

/* One input line ready to produce. */
typedef struct load_msg {
    const void *val;
    size_t len;
    char key[LOAD_KEY_MAX];
    size_t keylen;
    bool has_id; /* a result will carry command_id (else null) */
    bool is_msgpack;
    char id[MD_COMMAND_ID_MAX + 1]; /* the command_id when has_id */
} load_msg_t;

/* ---- load_args.c --------------------------------------------------------- */

/* Parses the command line into @p o: 0 to run, -1 after --help (exit 0),
 * 2 on bad usage (said on stderr). o->props is malloc'd (free it). */
int load_parse_args(int argc, char **argv, load_opts_t *o);

/* ---- load_idset.c -------------------------------------------------------- */

/* Finds @p id of @p n bytes, or inserts it with expected = 0; the entry is
 * valid until the next insertion (the set may grow). Never fails. */
load_ent_t *load_set_add(load_set_t *s, const char *id, size_t n);
/* The entry of @p id, or NULL. */
load_ent_t *load_set_find(const load_set_t *s, const char *id, size_t n);
void load_set_release(load_set_t *s);

/* ---- load_kafka.c -------------------------------------------------------- */

/* Counts a failed message; the first reason recorded is the one reported. */
void load_fail(load_t *l, const char *what, const char *why);
md_err_t load_producer_new(load_t *l);
md_err_t load_consumer_new(load_t *l);
/* Milliseconds until @p deadline (monotonic ns), clamped to 0..1000. */
int load_ms_left(int64_t deadline);
/* --create-topics: creates both topics (LogAppendTime) unless they exist
 * (load_producer_new calls it). */
md_err_t load_create_topics(load_t *l);
/* Assigns the results partitions at their end (before the first line). */
md_err_t load_results_start(load_t *l);
/* Assigns a results topic that appeared after start-up, from its beginning. */
void load_results_refresh(load_t *l);

/* ---- load_produce.c ------------------------------------------------------ */

/* Produces every input line; MD_OK, or an error in l->err. */
md_err_t load_produce_all(load_t *l);
/* Waits for the outstanding deliveries and, with --wait, results. */
void load_drain(load_t *l);

/* ---- load_results.c ------------------------------------------------------ */

/* Waits up to timeout_ms for results, then takes what is queued. */
void load_consume(load_t *l, int timeout_ms);
/* Serves delivery reports and errors, and with --wait reads results. */
void load_service(load_t *l, int timeout_ms);
void load_summary(load_t *l);
/* Writes --latency-out: one line per command answered, in the order produced. */
void load_write_latency(load_t *l);
/* 0 when all went through, else 1 with the reasons on stderr. */
int load_verdict(load_t *l);

#endif
