/*
 * ctl_history.c - marketctl's reads of the event log: `events` and `export`,
 * their slices (--stream, --from/--to seq, --since/--until time) and follow
 * mode (`events --follow`: poll the head with short read transactions, never
 * holding one while sleeping; SIGINT/SIGTERM/SIGPIPE end it cleanly).
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "md_base.h"

static md_err_t print_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                            md_error_t *err)
{
    (void)body, (void)len;
    json_t *j = md_event_to_json(ev, NULL, 0);
    if (j == NULL)
        return md_error_set(err, MD_ECODEC, "value is not representable as JSON");
    md_err_t rc = ctl_emit(ctx, j, err);
    json_decref(j);
    return rc;
}

static md_err_t export_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                             md_error_t *err)
{
    ctl_t *c = ctx;
    md_err_t rc = ctl_print_json(md_event_to_json(ev, body, len), err);
    if (rc == MD_OK && (++c->done & 0xffff) == 0)
        ctl_progress(c->done, c->total, c);
    return rc;
}

/* ---- subcommands ------------------------------------------------------------------- */

/* ---- slices of the history (--stream, --from/--to seq, --since/--until time) -------- */

typedef struct slice {
    ctl_t *c;
    const char *stream;
    uint64_t from, to, limit, n, last; /* to, limit: 0 = none; last: the last seq seen */
    int64_t since, until;
    bool contiguous; /* export: stop at the first event past until */
    md_event_fn fn;
} slice_t;

static slice_t slice_of(ctl_t *c, md_event_fn fn, bool contiguous)
{
    return (slice_t){c,
                     ctl_str(c, "stream"),
                     ctl_u64(c, "from", 1),
                     ctl_u64(c, "to", 0),
                     ctl_u64(c, "limit", 0),
                     0,
                     0,
                     ctl_time(c, "since", INT64_MIN),
                     ctl_time(c, "until", INT64_MAX),
                     contiguous,
                     fn};
}

static md_err_t slice_event(const md_event_t *ev, const void *body, size_t len, void *ctx,
                            md_error_t *err)
{
    slice_t *s = ctx;
    s->last = ev->seq;
    if ((s->to && ev->seq > s->to) || (s->limit && s->n >= s->limit) ||
        (s->contiguous && ev->recorded_at > s->until))
        return MD_ESTOP;
    if (s->stream && strcmp(ev->stream, s->stream) != 0)
        return MD_OK;
    if (ev->recorded_at < s->since || ev->recorded_at > s->until)
        return MD_OK;
    s->n++;
    return s->fn(ev, body, len, s->c, err);
}

/* The events of the slice from seq @p from in @p t: a stream alone is read
 * through its index (--from is then its version); otherwise by seq. */
static md_err_t slice_scan(md_txn_t *t, slice_t *s, uint64_t from, md_error_t *err)
{
    if (s->stream && !ctl_str(s->c, "to") && s->since == INT64_MIN && s->until == INT64_MAX)
        return md_txn_scan_stream(t, s->stream, from, s->limit, s->fn, s->c, err);
    return md_txn_scan(t, from, 0, slice_event, s, err);
}

/* ---- follow mode: poll the head with short read transactions ------------------------- */

#define FOLLOW_POLL_MS 200

static volatile sig_atomic_t follow_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    follow_stop = 1;
}

/* SIGINT/SIGTERM end the loop; SIGPIPE is ignored so that a closed reader
 * shows as EPIPE on write, a clean end too. */
void ctl_follow_signals(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Ends the read transaction, flushes, sleeps, starts a new one: no snapshot
 * is held while sleeping, so the daemon's pages are reused. Returns false
 * when following should stop (a signal, a closed stdout, a store error). */
/* Waits up to @p ms and says whether stdout's reader went away (a pipe whose
 * read end closed reports POLLERR, a hung-up terminal POLLHUP): a follower
 * that prints nothing new would otherwise never learn it (no write, no EPIPE). */
static bool stdout_closed(int ms)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = 0};
    return poll(&p, 1, ms) > 0 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

bool ctl_follow_wait(ctl_t *c, md_err_t *rc)
{
    md_txn_end(c->txn);
    c->txn = NULL;
    if (*rc == MD_OK && fflush(stdout) != 0)
        *rc = md_error_set(&c->err, MD_EIO, "write to stdout failed");
    if (*rc != MD_OK || follow_stop)
        return false;
    if (stdout_closed(FOLLOW_POLL_MS)) /* a signal cuts the wait short */
        return false;                  /* the reader is gone: a clean end */
    if (follow_stop)
        return false;
    if (c->proj) /* the projections first: the log's snapshot holds all they show */
        *rc = md_proj_pin(c->proj, &c->err);
    if (*rc == MD_OK)
        *rc = md_store_read(c->store, &c->txn, &c->err);
    return *rc == MD_OK;
}

/* The status of a follow that ended: a signal or a reader gone is a clean end. */
int ctl_follow_end(ctl_t *c, md_err_t rc)
{
    if (rc == MD_EIO && errno == EPIPE) {
        c->err.code = MD_OK;
        return 0;
    }
    return rc == MD_OK ? 0 : 1;
}

static int events_follow(ctl_t *c, slice_t *s)
{
    md_err_t rc;
    ctl_follow_signals();
    do {
        rc = md_txn_scan(c->txn, s->last + 1 > s->from ? s->last + 1 : s->from, 0, slice_event, s,
                         &c->err);
        if (rc == MD_OK)
            rc = ctl_emit_end(c, &c->err);
    } while (!(s->to && s->last >= s->to) && ctl_follow_wait(c, &rc));
    return ctl_follow_end(c, rc);
}

/* events --stream S --from V: V is the stream version; without --stream, a seq. */
int ctl_cmd_events(ctl_t *c)
{
    slice_t s = slice_of(c, print_event, false);
    if (ctl_str(c, "follow")) {
        md_rowfmt_kind_t k = MD_ROWFMT_JSON;
        if (ctl_str(c, "format") && md_rowfmt_parse(ctl_str(c, "format"), &k) &&
            k == MD_ROWFMT_TABLE) {
            md_error_set(&c->err, MD_EINVAL, "--follow prints json or csv, not a table");
            return 2;
        }
        s.limit = 0;
        return events_follow(c, &s);
    }
    md_err_t rc = slice_scan(c->txn, &s, s.from, &c->err);
    if (rc == MD_OK)
        rc = ctl_emit_end(c, &c->err);
    return rc == MD_OK ? 0 : 1;
}

int ctl_cmd_export(ctl_t *c)
{
    uint64_t head;
    if (md_txn_head(c->txn, &head, NULL, &c->err) != MD_OK)
        return 1;
    c->total = head;
    slice_t s = slice_of(c, export_event, true);
    md_err_t rc = md_txn_scan(c->txn, s.from, 0, slice_event, &s, &c->err);
    if (fflush(stdout) != 0)
        rc = md_error_set(&c->err, MD_EIO, "write to stdout failed");
    ctl_progress_end(c, "export");
    return rc == MD_OK ? 0 : 1;
}

/* Progress of a phase that knows its total (verify's second walk restarts the bar). */
