/*
 * main.c - the marketd command line: offline mode (--input) or the daemon on
 * Kafka (-c FILE, or --embedded-kafka for a zero-setup demo).
 */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_config.h"
#include "md_daemon.h"
#include "md_kafka.h"
#include "md_log.h"
#include "md_offline.h"
#include "md_version.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fputs("usage: marketd -c FILE [--set KEY=VALUE ...] [--data-dir DIR] [--embedded-kafka]\n"
          "       marketd --input FILE|- --data-dir DIR [--results FILE|-]\n"
          "               [--clock command|wall|log] [--operator ID] [--batch-max N]\n"
          "               [--max-message-bytes N] [--log-level L] [--no-sync]\n"
          "               [--input-format json|msgpack]\n"
          "\n"
          "  -c FILE            configuration (key = value; see config/marketd.conf)\n"
          "  --set KEY=VALUE    override one configuration key (repeatable)\n"
          "  --embedded-kafka   start an in-process mock broker and print its address\n"
          "                     (demos only; tests use a real broker)\n"
          "  --input FILE|-     offline mode: decide JSON-lines commands, one result line\n"
          "                     per command, exit 0 at the end of the input\n"
          "  --input-format F   json (JSON lines, the default) or msgpack (frames: a\n"
          "                     4-byte big-endian length, then one msgpack command)\n"
          "  --batch-max N      commands per write transaction: offline.batch_max_commands\n"
          "                     with --input, batch.max_commands otherwise\n"
          "  --no-sync          skip fsync (benchmarks only: not durable)\n",
          f);
}

typedef struct cli {
    const char *config_file;
    const char *input, *results;
    bool embedded;
    bool msgpack_input;
    bool has_data_dir; /* --data-dir (or --set data_dir=) given */
    bool bad_format;
    const char *batch_max; /* --batch-max: the batch of the mode that runs */
    char **sets;
    int nsets;
    md_offline_opts_t off;
} cli_t;

enum { OPT_BATCH = 256, OPT_MAXMSG, OPT_LOG, OPT_NOSYNC, OPT_SET, OPT_EMBEDDED, OPT_INFMT };

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
    {"set", required_argument, NULL, OPT_SET},
    {"embedded-kafka", no_argument, NULL, OPT_EMBEDDED},
    {"input-format", required_argument, NULL, OPT_INFMT},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Options shared by both modes are kept as "key=value" overrides. */
static void add_set(cli_t *c, const char *key, const char *value)
{
    size_t n = strlen(key) + strlen(value) + 2;
    char *kv = md_malloc(n);
    snprintf(kv, n, "%s=%s", key, value);
    c->sets = md_realloc(c->sets, (size_t)(c->nsets + 1) * sizeof *c->sets);
    c->sets[c->nsets++] = kv;
}

static void apply_opt(cli_t *c, int o, const char *arg)
{
    static const char *const keys[] = {
        ['d'] = "data_dir",
        ['k'] = "clock",
        ['o'] = "operator",
    };
    switch (o) {
    case 'c': c->config_file = arg; break;
    case 'i': c->input = arg; break;
    case 'r': c->results = arg; break;
    case 'd':
        c->has_data_dir = true;
        add_set(c, keys[o], arg);
        break;
    case 'k':
    case 'o': add_set(c, keys[o], arg); break;
    case OPT_BATCH: c->batch_max = arg; break;
    case OPT_MAXMSG: add_set(c, "message.max_bytes", arg); break;
    case OPT_LOG: add_set(c, "log.level", arg); break;
    case OPT_NOSYNC: add_set(c, "store.nosync", "true"); break;
    case OPT_EMBEDDED: c->embedded = true; break;
    case OPT_INFMT:
        c->msgpack_input = strcmp(arg, "msgpack") == 0;
        c->bad_format = !c->msgpack_input && strcmp(arg, "json") != 0;
        break;
    case OPT_SET: {
        const char *eq = strchr(arg, '=');
        char *key = md_strndup(arg, eq ? (size_t)(eq - arg) : strlen(arg));
        c->has_data_dir |= strcmp(key, "data_dir") == 0;
        add_set(c, key, eq ? eq + 1 : "");
        free(key);
        break;
    }
    default: break;
    }
}

/* Builds the configuration: defaults, then the file, then the overrides. */
static md_err_t build_config(cli_t *c, md_config_t *cfg, md_error_t *err)
{
    md_config_init(cfg);
    md_err_t rc = c->config_file ? md_config_load(cfg, c->config_file, err) : MD_OK;
    for (int i = 0; i < c->nsets && rc == MD_OK; i++) {
        char *eq = strchr(c->sets[i], '=');
        *eq = '\0';
        rc = md_config_set(cfg, c->sets[i], eq + 1, err);
        *eq = '=';
    }
    if (rc == MD_OK)
        md_log_threshold = (md_log_level_t)cfg->log_level;
    return rc;
}

static md_err_t run_offline(cli_t *c, const md_config_t *cfg, md_error_t *err)
{
    /* Offline keeps the default dispositions: a signal ends it between or
     * inside batches, and an uncommitted batch is simply not there. */
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    if (stop_requested)
        return md_error_set(err, MD_EINVAL, "stopped by a signal before the input was read");
    md_offline_opts_t o = {.input = c->input,
                           .results = c->results,
                           .data_dir = cfg->data_dir,
                           .engine = {.operator_id = cfg->operator_id,
                                      .clock = cfg->clock,
                                      .max_message_bytes = (size_t)cfg->message_max_bytes},
                           .batch_max = (size_t)cfg->offline_batch_max_commands,
                           .projector = {.max_events = (uint64_t)cfg->proj_max_events,
                                         .sync_ms = cfg->proj_sync_ms,
                                         .priority = cfg->proj_priority},
                           .nosync = cfg->store_nosync,
                           .msgpack = c->msgpack_input};
    return md_offline_run(&o, err);
}

static md_err_t run_daemon(cli_t *c, md_config_t *cfg, md_error_t *err)
{
    md_embedded_t *emb = NULL;
    char bootstrap[256];
    if (c->embedded) {
        md_err_t rc = md_embedded_start(cfg, &emb, bootstrap, sizeof bootstrap, err);
        if (rc != MD_OK)
            return rc;
        rc = md_config_set(cfg, "kafka.bootstrap.servers", bootstrap, err);
        if (rc != MD_OK) {
            md_embedded_free(emb);
            return rc;
        }
        cfg->topics_exist = true;
        printf("embedded kafka bootstrap=%s\n", bootstrap);
        fflush(stdout);
    }
    md_err_t rc = md_daemon_run(cfg, &stop_requested, err);
    md_embedded_free(emb);
    return rc;
}

/* The usage error of the command line, or NULL when it can run. */
static const char *usage_error(const cli_t *c, int argc, char **argv)
{
    static char msg[160];
    if (optind != argc) {
        snprintf(msg, sizeof msg, "unexpected argument '%.100s'", argv[optind]);
        return msg;
    }
    if (c->bad_format)
        return "--input-format must be json or msgpack";
    /* Never the configured default (/var/lib/marketd): offline runs are
     * experiments and replays, and the usage line requires the option. */
    if (c->input && !c->has_data_dir)
        return "offline mode (--input) needs --data-dir DIR";
    if (c->input == NULL && c->config_file == NULL && !c->embedded)
        return "give -c FILE, --embedded-kafka or --input FILE";
    return NULL;
}

static void cli_release(cli_t *c)
{
    for (int i = 0; i < c->nsets; i++)
        free(c->sets[i]);
    free(c->sets);
}

/* One malloc arena for every thread. glibc gives each thread that allocates
 * its own arena (the writer, the decode helper, md-projector, the publisher,
 * librdkafka's threads), and each keeps the high-water mark of what its thread
 * once held: under a 300k backlog at 8000 commands per batch that was 68 MiB
 * of RssAnon in five arenas, 52 MiB in one, at the same drain rate and CPU
 * (docs/performance.md). GLIBC_TUNABLES=glibc.malloc.arena_max=N or
 * MALLOC_ARENA_MAX still choose, for experiments. */
static void limit_malloc_arenas(void)
{
    const char *t = getenv("GLIBC_TUNABLES");
    if (getenv("MALLOC_ARENA_MAX") != NULL || (t != NULL && strstr(t, "arena_max") != NULL))
        return;
    /* Refused under an allocator that replaces glibc's (ASan, valgrind): its own
     * arenas then, nothing to say (stderr of --version and the like stays clean). */
    (void)mallopt(M_ARENA_MAX, 1);
}

/* SIGTERM/SIGINT only set stop_requested; installed first thing in main, so
 * that a stop at any moment of start-up is seen (the daemon checks it in every
 * phase). Offline mode is unaffected: it reads to the end of its input. */
static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0 ||
        signal(SIGPIPE, SIG_IGN) == SIG_ERR)
        perror("marketd: sigaction");
}

int main(int argc, char **argv)
{
    install_signals();
    limit_malloc_arenas();
    if (argc > 1 && strcmp(argv[1], "--version") == 0)
        return md_version_print(stdout, "marketd") == 0 ? 0 : 1;
    cli_t c = {0};
    md_config_t cfg;
    md_error_t err = {0};
    const char *why;
    int o;
    while ((o = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
        if (o == 'h' || o == '?') {
            usage(o == 'h' ? stdout : stderr);
            cli_release(&c);
            return o == 'h' ? 0 : 2;
        }
        apply_opt(&c, o, optarg);
    }
    if (c.batch_max) /* known once every option is read: --input may come after it */
        add_set(&c, c.input ? "offline.batch_max_commands" : "batch.max_commands", c.batch_max);
    if ((why = usage_error(&c, argc, argv)) != NULL) {
        fprintf(stderr, "marketd: %s\n", why);
        usage(stderr);
        cli_release(&c);
        return 2;
    }
    md_err_t rc = build_config(&c, &cfg, &err);
    if (rc == MD_OK)
        rc = c.input ? run_offline(&c, &cfg, &err) : run_daemon(&c, &cfg, &err);
    if (rc != MD_OK)
        md_log_error("marketd stopped", "error=\"%s\"", err.msg);
    md_config_release(&cfg);
    cli_release(&c);
    return rc == MD_OK ? 0 : rc == MD_ECONFIG ? 2 : 1;
}
