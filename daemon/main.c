/*
 * main.c - the marketd command line.
 *
 *   marketd --input FILE|- --data-dir DIR [--results FILE|-] [--clock command|wall]
 *           [--operator ID] [--batch-max N] [--max-message-bytes N] [--log-level L]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_log.h"
#include "md_offline.h"

static void usage(FILE *f)
{
    fputs("usage: marketd --input FILE|- --data-dir DIR [--results FILE|-]\n"
          "               [--clock command|wall] [--operator ID] [--batch-max N]\n"
          "               [--max-message-bytes N] [--log-level error|warn|info|debug]\n"
          "               [--no-sync]\n"
          "Decides JSON-lines commands into the store in DIR and writes one result\n"
          "line per command. --no-sync skips fsync (benchmarks only: not durable).\n",
          f);
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v == 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

enum { OPT_BATCH = 256, OPT_MAXMSG, OPT_LOG, OPT_NOSYNC };

static const struct option long_opts[] = {
    {"input", required_argument, NULL, 'i'},
    {"data-dir", required_argument, NULL, 'd'},
    {"results", required_argument, NULL, 'r'},
    {"clock", required_argument, NULL, 'k'},
    {"operator", required_argument, NULL, 'o'},
    {"batch-max", required_argument, NULL, OPT_BATCH},
    {"max-message-bytes", required_argument, NULL, OPT_MAXMSG},
    {"log-level", required_argument, NULL, OPT_LOG},
    {"no-sync", no_argument, NULL, OPT_NOSYNC},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Applies one option; returns -1 on a bad value. */
static int apply_opt(int c, const char *arg, md_offline_opts_t *o)
{
    int lvl;
    switch (c) {
    case 'i': o->input = arg; return 0;
    case 'd': o->data_dir = arg; return 0;
    case 'r': o->results = arg; return 0;
    case 'o': o->engine.operator_id = arg; return 0;
    case 'k':
        if (strcmp(arg, "command") == 0)
            o->engine.clock = MD_CLOCK_COMMAND;
        else if (strcmp(arg, "wall") == 0)
            o->engine.clock = MD_CLOCK_WALL;
        else
            return -1;
        return 0;
    case OPT_BATCH: return parse_size(arg, &o->batch_max);
    case OPT_MAXMSG: return parse_size(arg, &o->engine.max_message_bytes);
    case OPT_NOSYNC: o->nosync = true; return 0;
    case OPT_LOG:
        if ((lvl = md_log_parse_level(arg)) < 0)
            return -1;
        md_log_threshold = (md_log_level_t)lvl;
        return 0;
    default: return -1;
    }
}

int main(int argc, char **argv)
{
    md_offline_opts_t o = {0};
    md_error_t err = {0};
    int c;
    while ((c = getopt_long(argc, argv, "h", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            return 0;
        }
        if (apply_opt(c, optarg, &o) != 0) {
            fprintf(stderr, "marketd: bad value for an option\n");
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc || o.input == NULL || o.data_dir == NULL) {
        usage(stderr);
        return 2;
    }
    if (md_offline_run(&o, &err) != MD_OK) {
        md_log_error("marketd stopped", "error=\"%s\"", err.msg);
        return 1;
    }
    return 0;
}
