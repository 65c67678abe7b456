/*
 * load_args.c - market-load's command line: the usage text, the option table,
 * each option's check, and the checks of the whole (market-load.c has the
 * synopsis).
 *
 * Invariants: the usage and the option table list the same options; a bad
 * option is said on stderr and gives exit status 2, --help prints the usage
 * on stdout and exits 0; nothing is opened or connected here.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"

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
          "  --latency-out FILE     write one line per command answered, in the order\n"
          "                         produced (needs --wait): its latency (produce call\n"
          "                         to result seen) in microseconds, then when it passed\n"
          "                         each stage, wall-clock microseconds since the epoch\n"
          "                         (0: unknown): produce call, delivery report seen,\n"
          "                         then from marketd's marketd-stage-us header: the\n"
          "                         command appended by the broker (LogAppendTime\n"
          "                         topics), fetched, batch start, commit, publish;\n"
          "                         then the result appended by the broker\n"
          "                         (LogAppendTime topics), result seen\n"
          "  --create-topics N      create the commands and results topics with N\n"
          "                         partitions and message.timestamp.type=\n"
          "                         LogAppendTime (replication factor 1) unless they\n"
          "                         exist, before producing\n"
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
    LOAD_OPT_BOOTSTRAP = 256,
    LOAD_OPT_INPUT,
    LOAD_OPT_TOPIC,
    LOAD_OPT_RESULTS_TOPIC,
    LOAD_OPT_WAIT,
    LOAD_OPT_TIMEOUT,
    LOAD_OPT_RATE,
    LOAD_OPT_MSGPACK,
    LOAD_OPT_RESULTS_OUT,
    LOAD_OPT_LATENCY_OUT,
    LOAD_OPT_QUIET,
    LOAD_OPT_CREATE_TOPICS
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
    {"create-topics", required_argument, NULL, LOAD_OPT_CREATE_TOPICS},
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
    case LOAD_OPT_CREATE_TOPICS: {
        uint64_t n;
        if (load_parse_u64(arg, &n) && n > 0 && n <= 10000) {
            o->create_topics = (int)n;
            return true;
        }
        fprintf(stderr, "market-load: --create-topics '%s': expected 1..10000\n", arg);
        return false;
    }
    case 'X':
        if (strchr(arg, '=') != NULL && arg[0] != '=') {
            o->props[o->nprops++] = arg;
            return true;
        }
        fprintf(stderr, "market-load: -X '%s': expected PROP=VALUE\n", arg);
        return false;
    default: return false;
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
int load_parse_args(int argc, char **argv, load_opts_t *o)
{
    *o = (load_opts_t){
        .topic = "market.commands", .results_topic = "market.results", .timeout_s = 60};
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
