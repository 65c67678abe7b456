/*
 * topic_dump.c - a small Kafka test tool for the integration tests (built by
 * mk/check.mk as build/tests/tools/topic_dump).
 *
 *   topic_dump --bootstrap B --topic T [--count N] [--timeout S]
 *       Reads the topic from its beginning (every partition) and prints one
 *       JSON object per message: partition, offset, key, headers (name ->
 *       value), len, timestamp (ms), sha256 of the value, and value when it is short UTF-8
 *       text. Stops after N messages, or when nothing came for S seconds
 *       (default 10); exits 1 when fewer than N were read.
 *   topic_dump --bootstrap B --topic T --produce FILE...
 *       Sends each file's bytes as one message (a 0-byte file gives an empty
 *       value), key "hostile:<file name>"; files named *.mp get the header
 *       content-type: application/msgpack, *.txt content-type: text/plain
 *       (refused by marketd). market-load cannot do this: it
 *       skips blank lines and reads text lines.
 *   topic_dump --bootstrap B --topic T --set-config NAME=VALUE
 *       Sets one topic configuration (e.g. max.message.bytes) on the broker
 *       (AlterConfigs: the topic's other settings return to
 *       their defaults); exits 1 when the broker refuses.
 */
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_command.h"
#include "md_event.h"

static const char *bootstrap, *topic;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "topic_dump: %s: %s\n", what, detail);
    exit(2);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *const *kv)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (; kv && kv[0]; kv += 2)
        if (rd_kafka_conf_set(conf, kv[0], kv[1], errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            die(kv[0], errstr);
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK)
        die("bootstrap.servers", errstr);
    rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == NULL)
        die("rd_kafka_new", errstr);
    return rk;
}

static int produce(char **files, int n)
{
    static const char *const kv[] = {"enable.idempotence", "true", "message.max.bytes", "10000000",
                                     NULL};
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, kv);
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(files[i], "rb");
        md_buf_t b;
        char chunk[65536], key[300];
        size_t k;
        if (f == NULL)
            die("open", files[i]);
        md_buf_init(&b);
        while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
            md_buf_append(&b, chunk, k);
        fclose(f);
        const char *base = strrchr(files[i], '/') ? strrchr(files[i], '/') + 1 : files[i];
        size_t bl = strlen(base);
        snprintf(key, sizeof key, "hostile:%s", base);
        rd_kafka_headers_t *h = rd_kafka_headers_new(1);
        if (bl > 3 && strcmp(base + bl - 3, ".mp") == 0)
            rd_kafka_header_add(h, "content-type", -1, "application/msgpack", -1);
        else if (bl > 4 && strcmp(base + bl - 4, ".txt") == 0)
            rd_kafka_header_add(h, "content-type", -1, "text/plain", -1);
        rd_kafka_resp_err_t e = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(b.len ? b.p : NULL, b.len),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
        if (e) {
            rd_kafka_headers_destroy(h);
            die("produce", rd_kafka_err2str(e));
        }
        md_buf_release(&b);
    }
    int left = rd_kafka_flush(rk, 30000) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    if (left)
        fprintf(stderr, "topic_dump: %d messages not delivered\n", left);
    return left ? 1 : 0;
}

static json_t *bytes_json(const void *p, size_t n)
{
    return p && md_valid_utf8(p, n) && n <= 4096 ? json_stringn(p, n) : json_null();
}

static void print_message(const rd_kafka_message_t *m)
{
    json_t *o = json_object();
    rd_kafka_headers_t *hs = NULL;
    unsigned char d[32];
    char hex[65];
    unsigned int dn = 0;
    json_object_set_new(o, "partition", json_integer(m->partition));
    json_object_set_new(o, "offset", json_integer(m->offset));
    json_object_set_new(o, "key", bytes_json(m->key, m->key_len));
    json_t *hj = json_object();
    if (rd_kafka_message_headers(m, &hs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char *name;
        const void *v;
        size_t vl;
        for (size_t i = 0; rd_kafka_header_get_all(hs, i, &name, &v, &vl) == 0; i++)
            json_object_set_new(hj, name, bytes_json(v, vl));
    }
    json_object_set_new(o, "headers", hj);
    json_object_set_new(o, "len", json_integer((json_int_t)m->len));
    json_object_set_new(o, "timestamp", json_integer(rd_kafka_message_timestamp(m, NULL)));
    EVP_Digest(m->payload ? m->payload : "", m->len, d, &dn, EVP_sha256(), NULL);
    md_hex(d, 32, hex);
    json_object_set_new(o, "sha256", json_string(hex));
    json_object_set_new(o, "value", bytes_json(m->payload, m->len));
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
}

static int dump(long count, long timeout_s)
{
    char group[64];
    snprintf(group, sizeof group, "topic-dump-%ld-%d", (long)time(NULL), rand());
    const char *const kv[] = {"group.id",
                              group,
                              "auto.offset.reset",
                              "earliest",
                              "enable.auto.commit",
                              "false",
                              "fetch.message.max.bytes",
                              "10000000",
                              NULL};
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, kv);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    if (rd_kafka_subscribe(rk, l))
        die("subscribe", topic);
    rd_kafka_topic_partition_list_destroy(l);
    long seen = 0;
    time_t last = time(NULL);
    while ((count <= 0 || seen < count) && time(NULL) - last < timeout_s) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            print_message(m);
            seen++;
            last = time(NULL);
        }
        rd_kafka_message_destroy(m);
    }
    fflush(stdout);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return count > 0 && seen < count ? 1 : 0;
}

static int set_config(const char *nv)
{
    char name[256], errstr[256];
    const char *eq = strchr(nv, '=');
    if (eq == NULL || (size_t)(eq - nv) >= sizeof name)
        die("--set-config", "expected NAME=VALUE");
    snprintf(name, sizeof name, "%.*s", (int)(eq - nv), nv);
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_ConfigResource_t *r = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    if (rd_kafka_ConfigResource_set_config(r, name, eq + 1))
        die("--set-config", "bad config");
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *o = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_ALTERCONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(o, 20000, errstr, sizeof errstr);
    rd_kafka_AlterConfigs(rk, &r, 1, o, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    int rc = 1;
    if (ev == NULL)
        fprintf(stderr, "topic_dump: --set-config: no answer\n");
    else if (rd_kafka_event_error(ev))
        fprintf(stderr, "topic_dump: --set-config: %s\n", rd_kafka_event_error_string(ev));
    else {
        size_t n;
        const rd_kafka_ConfigResource_t **res =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &n);
        rc = n == 1 && rd_kafka_ConfigResource_error(res[0]) == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : 1;
        if (rc)
            fprintf(stderr, "topic_dump: --set-config: %s\n",
                    n ? rd_kafka_ConfigResource_error_string(res[0]) : "no result");
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_AdminOptions_destroy(o);
    rd_kafka_ConfigResource_destroy(r);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    return rc;
}

int main(int argc, char **argv)
{
    long count = 0, timeout_s = 10;
    int i = 1;
    bool prod = false;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--bootstrap") == 0 && i + 1 < argc)
            bootstrap = argv[++i];
        else if (strcmp(argv[i], "--topic") == 0 && i + 1 < argc)
            topic = argv[++i];
        else if (strcmp(argv[i], "--count") == 0 && i + 1 < argc)
            count = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            timeout_s = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--produce") == 0)
            prod = true;
        else if (strcmp(argv[i], "--set-config") == 0 && i + 1 < argc && bootstrap && topic)
            return set_config(argv[i + 1]);
        else
            break;
    }
    if (bootstrap == NULL || topic == NULL || (prod && i == argc) || (!prod && i != argc)) {
        fprintf(stderr, "usage: topic_dump --bootstrap B --topic T [--count N] [--timeout S]\n"
                        "       topic_dump --bootstrap B --topic T --produce FILE...\n"
                        "       topic_dump --bootstrap B --topic T --set-config NAME=VALUE\n");
        return 2;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    return prod ? produce(argv + i, argc - i) : dump(count, timeout_s);
}
