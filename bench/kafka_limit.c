/*
 * kafka_limit.c - bench-kafka-limit BOOTSTRAP TOPIC COUNT
 *
 * The floor of the Kafka path: one librdkafka consumer reads partition 0 of
 * TOPIC from the beginning and does nothing with the messages, with the
 * fetch settings marketd uses by default. Prints "messages=N seconds=S
 * per_s=R" (timed from the first message to the COUNT-th) on stdout.
 */
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"

int main(int argc, char **argv)
{
    char errstr[512];
    if (argc != 4) {
        fprintf(stderr, "usage: bench-kafka-limit BOOTSTRAP TOPIC COUNT\n");
        return 2;
    }
    long count = strtol(argv[3], NULL, 10);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "group.id", "bench-kafka-limit", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr)) {
        fprintf(stderr, "bench-kafka-limit: %s\n", errstr);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (rk == NULL) {
        fprintf(stderr, "bench-kafka-limit: %s\n", errstr);
        return 1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, argv[2], 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    long n = 0;
    double t0 = 0, deadline = md_mono_s() + 120;
    while (n < count && md_mono_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (!m->err && n++ == 0)
            t0 = md_mono_s();
        rd_kafka_message_destroy(m);
    }
    double secs = md_mono_s() - t0;
    printf("messages=%ld seconds=%.3f per_s=%.0f\n", n, secs, n > 1 ? n / secs : 0.0);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n == count ? 0 : 1;
}
