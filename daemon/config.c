/*
 * config.c - defaults, key=value files and overrides, from one table.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_config.h"
#include "md_log.h"

typedef enum { K_STR, K_LONG, K_BOOL, K_CLOCK, K_LEVEL, K_PRIO } kind_t;

typedef struct key_spec {
    const char *name;
    kind_t kind;
    size_t offset;
    long min, max; /* K_LONG */
    const char *def;
} key_spec_t;

#define OFF(f) offsetof(md_config_t, f)

/* Every key, its type, range and default; config/marketd.conf documents them. */
static const key_spec_t keys[] = {
    {"data_dir", K_STR, OFF(data_dir), 0, 0, "/var/lib/marketd"},
    {"operator", K_STR, OFF(operator_id), 0, 0, "operator"},
    {"clock", K_CLOCK, OFF(clock), 0, 0, "wall"},
    {"log.level", K_LEVEL, OFF(log_level), 0, 0, "info"},
    {"batch.max_commands", K_LONG, OFF(batch_max_commands), 1, 100000, "8000"},
    {"batch.max_wait_ms", K_LONG, OFF(batch_max_wait_ms), 0, 60000, "0"},
    {"offline.batch_max_commands", K_LONG, OFF(offline_batch_max_commands), 1, 100000, "12000"},
    {"message.max_bytes", K_LONG, OFF(message_max_bytes), 64, 64 << 20, "1048576"},
    {"topic.commands", K_STR, OFF(topic_commands), 0, 0, "market.commands"},
    {"topic.results", K_STR, OFF(topic_results), 0, 0, "market.results"},
    {"topic.events", K_STR, OFF(topic_events), 0, 0, "market.events"},
    {"topic.deadletter", K_STR, OFF(topic_deadletter), 0, 0, "market.deadletter"},
    {"topic.heads", K_STR, OFF(topic_heads), 0, 0, "market.heads"},
    {"replica.id", K_STR, OFF(replica_id), 0, 0, "marketd-1"},
    {"replica.key_file", K_STR, OFF(replica_key_file), 0, 0, ""},
    {"checkpoint.interval_events", K_LONG, OFF(checkpoint_interval_events), 1, 1000000000, "10000"},
    {"checkpoint.interval_ms", K_LONG, OFF(checkpoint_interval_ms), 10, 86400000, "1000"},
    {"topic.partitions", K_LONG, OFF(topic_partitions), 1, 1000, "3"},
    {"topic.replication_factor", K_LONG, OFF(topic_replication), 1, 16, "1"},
    {"group.id", K_STR, OFF(group_id), 0, 0, "marketd"},
    {"offsets.kafka_commit_ms", K_LONG, OFF(kafka_commit_ms), 0, 60000, "100"},
    {"outbox.flush_timeout_ms", K_LONG, OFF(outbox_flush_timeout_ms), 0, 600000, "10000"},
    {"store.nosync", K_BOOL, OFF(store_nosync), 0, 0, "false"},
    {"store.map_mib", K_LONG, OFF(store_map_mib), 1, 1L << 22, "256"},
    {"projections.max_events", K_LONG, OFF(proj_max_events), 0, 1000000, "0"},
    {"projections.gate_results", K_BOOL, OFF(proj_gate_results), 0, 0, "true"},
    {"projections.sync_ms", K_LONG, OFF(proj_sync_ms), 0, 3600000, "1000"},
    {"projections.priority", K_PRIO, OFF(proj_priority), 0, 0, "idle"},
    {"http.listen", K_STR, OFF(http_listen), 0, 0, ""},
    {"http.tokens", K_STR, OFF(http_tokens), 0, 0, ""},
    {"http.threads", K_LONG, OFF(http_threads), 1, 64, "4"},
    {"timers.tick_ms", K_LONG, OFF(timers_tick_ms), 0, 86400000, "0"},
    {"replica.mode", K_STR, OFF(replica_mode), 0, 0, "single"},
    {"replica.peers_keys", K_STR, OFF(replica_peers_keys), 0, 0, ""},
    {"replica.count", K_LONG, OFF(replica_count), 0, 64, "0"},
    {"replica.leader_topic", K_STR, OFF(replica_leader_topic), 0, 0, "market.leader"},
    {"replica.leader_group", K_STR, OFF(replica_leader_group), 0, 0, "marketd.leader"},
    {"replica.session_timeout_ms", K_LONG, OFF(replica_session_timeout_ms), 1000, 300000, "6000"},
    {"replica.ready_max_lag", K_LONG, OFF(replica_ready_max_lag), 0, 1000000000, "1000"},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const key_spec_t *find_key(const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static md_err_t set_long(md_config_t *c, const key_spec_t *k, const char *v, md_error_t *err)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0 || n < k->min || n > k->max)
        return md_error_set(err, MD_ECONFIG, "'%s' must be an integer in %ld..%ld, not '%s'",
                            k->name, k->min, k->max, v);
    *(long *)((char *)c + k->offset) = n;
    return MD_OK;
}

static md_err_t set_bool(md_config_t *c, const key_spec_t *k, const char *v, md_error_t *err)
{
    bool *b = (bool *)((char *)c + k->offset);
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
        *b = true;
    else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
        *b = false;
    else
        return md_error_set(err, MD_ECONFIG, "'%s' must be true or false, not '%s'", k->name, v);
    return MD_OK;
}

static md_err_t set_clock(md_config_t *c, const char *v, md_error_t *err)
{
    static const char *const names[] = {
        [MD_CLOCK_WALL] = "wall", [MD_CLOCK_COMMAND] = "command", [MD_CLOCK_LOG] = "log"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(v, names[i]) == 0) {
            c->clock = (md_clock_t)i;
            return MD_OK;
        }
    }
    return md_error_set(err, MD_ECONFIG, "'clock' must be wall, command or log, not '%s'", v);
}

static md_err_t set_known(md_config_t *c, const key_spec_t *k, const char *v, md_error_t *err)
{
    char **s;
    int lvl;
    switch (k->kind) {
    case K_STR:
        s = (char **)((char *)c + k->offset);
        free(*s);
        *s = md_strdup(v);
        return MD_OK;
    case K_LONG: return set_long(c, k, v, err);
    case K_BOOL: return set_bool(c, k, v, err);
    case K_CLOCK: return set_clock(c, v, err);
    case K_PRIO:
        if ((lvl = md_priority_parse(v)) < 0)
            return md_error_set(err, MD_ECONFIG,
                                "'projections.priority' must be idle, low or normal, not '%s'", v);
        c->proj_priority = (md_priority_t)lvl;
        return MD_OK;
    case K_LEVEL:
        if ((lvl = md_log_parse_level(v)) < 0)
            return md_error_set(err, MD_ECONFIG, "'log.level' must be error, warn, info or debug");
        c->log_level = lvl;
        return MD_OK;
    }
    return MD_ECONFIG;
}

static void set_kafka(md_config_t *c, const char *key, const char *value)
{
    for (size_t i = 0; i < c->nkafka; i++) {
        if (strcmp(c->kafka[i].key, key) == 0) {
            free(c->kafka[i].value);
            c->kafka[i].value = md_strdup(value);
            return;
        }
    }
    c->kafka = md_realloc(c->kafka, (c->nkafka + 1) * sizeof *c->kafka);
    c->kafka[c->nkafka++] = (md_kv_t){md_strdup(key), md_strdup(value)};
}

md_err_t md_config_set(md_config_t *c, const char *key, const char *value, md_error_t *err)
{
    if (strncmp(key, "kafka.", 6) == 0 && key[6] != '\0') {
        set_kafka(c, key + 6, value);
        return MD_OK;
    }
    const key_spec_t *k = find_key(key);
    if (k == NULL)
        return md_error_set(err, MD_ECONFIG, "unknown key '%s'", key);
    if (strcmp(key, "replica.mode") == 0 && strcmp(value, "single") != 0 &&
        strcmp(value, "replicated") != 0)
        return md_error_set(err, MD_ECONFIG,
                            "'replica.mode' must be single or replicated, not '%s'", value);
    return set_known(c, k, value, err);
}

void md_config_init(md_config_t *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++)
        if (md_config_set(c, keys[i].name, keys[i].def, NULL) != MD_OK)
            abort(); /* a default its own key refuses: a bug (test_config checks them) */
    set_kafka(c, "bootstrap.servers", "127.0.0.1:9092");
}

bool md_config_replicated(const md_config_t *c)
{
    return c->replica_mode != NULL && strcmp(c->replica_mode, "replicated") == 0;
}

void md_config_release(md_config_t *c)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].kind == K_STR)
            free(*(char **)((char *)c + keys[i].offset));
    for (size_t i = 0; i < c->nkafka; i++) {
        free(c->kafka[i].key);
        free(c->kafka[i].value);
    }
    free(c->kafka);
    memset(c, 0, sizeof *c);
}

const char *md_config_kafka(const md_config_t *c, const char *key)
{
    for (size_t i = 0; i < c->nkafka; i++)
        if (strcmp(c->kafka[i].key, key) == 0)
            return c->kafka[i].value;
    return NULL;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    char *e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
        *--e = '\0';
    return s;
}

/* Parses one line; blank lines and comments are fine. */
static md_err_t load_line(md_config_t *c, char *line, md_error_t *err)
{
    char *s = trim(line);
    if (*s == '\0' || *s == '#')
        return MD_OK;
    char *eq = strchr(s, '=');
    if (eq == NULL)
        return md_error_set(err, MD_ECONFIG, "expected key = value");
    *eq = '\0';
    return md_config_set(c, trim(s), trim(eq + 1), err);
}

md_err_t md_config_load(md_config_t *c, const char *path, md_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return md_error_set(err, MD_EIO, "open config '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    md_err_t rc = MD_OK;
    md_error_t lerr = {0};
    while (rc == MD_OK && getline(&line, &cap, f) >= 0) {
        lineno++;
        rc = load_line(c, line, &lerr);
    }
    free(line);
    fclose(f);
    if (rc != MD_OK)
        return md_error_set(err, rc, "%s:%d: %s", path, lineno, lerr.msg);
    return MD_OK;
}
