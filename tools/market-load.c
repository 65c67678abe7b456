/*
 * market-load - load generator and result collector for marketd.
 *
 *   market-load --bootstrap HOST:PORT --input FILE|- [--topic market.commands]
 *               [--results-topic market.results] [--wait] [--timeout SECONDS]
 *               [--rate N] [--msgpack] [--results-out FILE] [--latency-out FILE]
 *               [--create-topics N] [--quiet] [-X librdkafka.prop=value ...]
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
 *
 * Files: this one holds main and the set-up and tear-down (signals, files,
 * clients, in librdkafka's shutdown order); tools/load.h lists the others.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "load.h"
#include "md_version.h"

volatile sig_atomic_t load_interrupted;

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
    free(l->stg);
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
    load_write_latency(l);
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
