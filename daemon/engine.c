/*
 * engine.c - one durable write transaction per batch: decode, deduplicate,
 * decide, append, evolve, project, record outcomes, offsets and outbox.
 *
 * The rules' state over the transaction is in engine_state.c, decoding (and
 * decoding ahead) in engine_decode.c; engine_int.h holds what they share.
 */
#include "engine_int.h"


/* ---- lifecycle ------------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? md_strdup(s) : NULL;
}

md_err_t md_engine_new(md_store_t *store, const md_engine_opts_t *opts, md_engine_t **out,
                       md_error_t *err)
{
    md_engine_opts_t o = {0};
    if (opts)
        o = *opts;
    const char *op = o.operator_id ? o.operator_id : DEFAULT_OPERATOR;
    if (!md_valid_id(op, strlen(op)))
        return md_error_set(err, MD_EINVAL, "operator id '%s' is not a valid id", op);
    MDB_dbi results_dbi;
    md_err_t rc = md_store_dbi(store, "results", 0, &results_dbi, err);
    if (rc != MD_OK)
        return rc;
    md_engine_t *e = md_calloc(1, sizeof *e);
    e->store = store;
    e->results_dbi = results_dbi;
    e->operator_id = md_strdup(op);
    e->results_topic = dup_or_null(o.results_topic);
    e->events_topic = dup_or_null(o.events_topic);
    e->commands_topic = dup_or_null(o.commands_topic);
    e->deadletter_topic = dup_or_null(o.deadletter_topic);
    e->opts = o;
    e->opts.operator_id = e->operator_id;
    e->opts.results_topic = e->results_topic;
    e->opts.events_topic = e->events_topic;
    e->opts.commands_topic = e->commands_topic;
    e->opts.deadletter_topic = e->deadletter_topic;
    if (e->opts.max_message_bytes == 0)
        e->opts.max_message_bytes = DEFAULT_MAX_MESSAGE;
    md_buf_init(&e->data);
    md_buf_init(&e->out);
    md_buf_init(&e->refs);
    md_buf_init(&e->hdr);
    *out = e;
    return MD_OK;
}

void md_engine_free(md_engine_t *e)
{
    if (e == NULL)
        return;
    free(e->operator_id);
    free(e->results_topic);
    free(e->events_topic);
    free(e->commands_topic);
    free(e->deadletter_topic);
    md_buf_release(&e->data);
    md_buf_release(&e->out);
    md_buf_release(&e->refs);
    md_buf_release(&e->hdr);
    md__eng_cache_free(&e->cache);
    md__eng_decoder_free(e);
    free(e);
}

md_err_t md_engine_add_hook(md_engine_t *e, md_event_hook_fn fn, void *ctx, md_error_t *err)
{
    if (e->nhooks == MAX_HOOKS)
        return md_error_set(err, MD_EINVAL, "more than %d engine hooks", MAX_HOOKS);
    e->hooks[e->nhooks++] = (hook_t){fn, ctx};
    return MD_OK;
}

md_err_t md_engine_add_batch_hooks(md_engine_t *e, md_batch_hook_fn begin, md_batch_hook_fn end,
                                   void *ctx, md_error_t *err)
{
    if (e->nbhooks == MAX_HOOKS)
        return md_error_set(err, MD_EINVAL, "more than %d engine batch hooks", MAX_HOOKS);
    e->bhooks[e->nbhooks++] = (batch_hooks_t){begin, end, ctx};
    return MD_OK;
}

/* Calls every begin (@p end false) or end hook, in the order they were added. */
static md_err_t run_batch_hooks(md_engine_t *e, md_txn_t *t, bool end, md_error_t *err)
{
    for (int i = 0; i < e->nbhooks; i++) {
        md_batch_hook_fn fn = end ? e->bhooks[i].end : e->bhooks[i].begin;
        md_err_t rc = fn ? fn(t, e->bhooks[i].ctx, err) : MD_OK;
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

void md_engine_set_batch_hook(md_engine_t *e, md_batch_hook_fn fn, void *ctx)
{
    e->batch_hook = fn;
    e->batch_ctx = ctx;
}

const md_engine_stats_t *md_engine_stats(const md_engine_t *e)
{
    return &e->stats;
}

/* ---- results ------------------------------------------------------------------------- */

/*
 * Result lines are written straight into the batch's output buffer, byte for
 * byte what jansson's compact dump of the same objects gives (keys in insertion
 * order, strings escaped as json_dumpb does without JSON_ENSURE_ASCII). Building
 * a json_t tree per command and dumping it cost about a fifth of the engine's
 * user time (perf, docs/performance.md).
 */
static void put_lit(md_buf_t *o, const char *s)
{
    md_buf_append(o, s, strlen(s));
}

/* A JSON string; invalid UTF-8 is not representable (jansson refuses it), so
 * the caller checks with md_valid_utf8 where the text is not ours. */
static void put_str(md_buf_t *o, const char *s)
{
    if (md_json_put_str(o, s, strlen(s)) != 0)
        md_buf_append(o, "null", 4); /* unreachable: callers pass checked text */
}

static void put_u64(md_buf_t *o, uint64_t v)
{
    char d[24];
    int i = sizeof d;
    do
        d[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    md_buf_append(o, d + i, sizeof d - (size_t)i);
}

/* "key":"value" with a leading comma; the pair is left out when the value is
 * not valid UTF-8, as json_object_set_new(json_string()) leaves it out. */
static void put_field(md_buf_t *o, const char *key, const char *value)
{
    if (!md_valid_utf8(value, strlen(value)))
        return;
    md_buf_append(o, ",\"", 2);
    put_lit(o, key);
    md_buf_append(o, "\":", 2);
    put_str(o, value);
}

/* ,"error":{"code":..,"clause":..|null[,"message":..][,"retryable":true]} */
static void put_error(md_buf_t *o, const char *code, const char *clause, const char *message,
                      bool retryable)
{
    put_lit(o, ",\"error\":{\"code\":");
    put_str(o, code);
    put_lit(o, ",\"clause\":");
    if (clause)
        put_str(o, clause);
    else
        put_lit(o, "null");
    if (message)
        put_field(o, "message", message);
    if (retryable)
        put_lit(o, ",\"retryable\":true");
    md_buf_append(o, "}", 1);
}

/* {"command_id":..|null[,"correlation_id":..],"status":".." (the object is left open) */
static void put_head(md_buf_t *o, const md_command_t *c, const char *status)
{
    put_lit(o, "{\"command_id\":");
    if (c->status != MD_DECODE_MALFORMED)
        put_str(o, c->command_id);
    else
        put_lit(o, "null");
    if (c->status != MD_DECODE_MALFORMED && c->has_correlation_id)
        put_field(o, "correlation_id", c->correlation_id);
    put_lit(o, ",\"status\":\"");
    put_lit(o, status);
    md_buf_append(o, "\"", 1);
}

/* What ties a MALFORMED result to its message: the SHA-256 of the bytes (as
 * in the dead letter) and, from Kafka, the partition and offset. */
static void put_malformed_origin(md_buf_t *o, const md_command_t *c, const md_input_t *in)
{
    char hex[65];
    md_hex(c->sha256, 32, hex);
    put_field(o, "sha256", hex);
    if (in->partition < 0)
        return;
    put_lit(o, ",\"partition\":");
    put_u64(o, (uint64_t)in->partition);
    put_lit(o, ",\"offset\":");
    put_u64(o, (uint64_t)(in->offset < 0 ? 0 : in->offset));
}


/* ---- outcomes (idempotency) --------------------------------------------------------- */

/*
 * Stored outcome: md_outcome_of_decision (the encoding verify recomputes).
 * The whole result line goes beside it, in the database "results"
 * (command_id -> result), which a duplicate carries as "original".
 */
static md_err_t put_outcome(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                            const md_decision_t *d, size_t at, md_error_t *err)
{
    char v[MD_OUTCOME_MAX];
    size_t n = md_outcome_of_decision(d, v);
    if (n == 0)
        return MD_OK;
    md_err_t rc = md_txn_outcome_put(t, c->command_id, v, n, err);
    MDB_val key = {strlen(c->command_id), (void *)c->command_id};
    MDB_val val = {e->out.len - at, e->out.p + at};
    if (rc == MD_OK)
        rc = md_store_err(mdb_put(md_txn_mdb(t), e->results_dbi, &key, &val, 0), err, "put result");
    return rc;
}

/* The original result of @p command_id, appended as ,"original":{...}; none
 * for commands decided before results were kept. */
static md_err_t put_original(md_engine_t *e, md_txn_t *t, const char *command_id, md_error_t *err)
{
    MDB_val key = {strlen(command_id), (void *)command_id}, val;
    int rc = mdb_get(md_txn_mdb(t), e->results_dbi, &key, &val);
    if (rc == MDB_NOTFOUND)
        return MD_OK;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get result");
    put_lit(&e->out, ",\"original\":");
    md_buf_append(&e->out, val.mv_data, val.mv_size);
    return MD_OK;
}

/* Answers a repeated command_id from its recorded outcome (the result goes to
 * e->out), or returns MD_ENOTFOUND when the command is new. */
static md_err_t answer_duplicate(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                                 md_error_t *err)
{
    const void *v = "A";
    size_t len = 1;
    if (strcmp(c->command_id, "bootstrap") != 0) {
        md_err_t rc = md_txn_outcome_get(t, c->command_id, &v, &len, err);
        if (rc != MD_OK)
            return rc;
    }
    const char *p = v;
    size_t head = len;
    put_head(&e->out, c, "duplicate");
    put_lit(&e->out, p[0] == 'A' ? ",\"original_status\":\"accepted\""
                                 : ",\"original_status\":\"rejected\"");
    if (p[0] == 'R' && head > 1) {
        char code[64];
        snprintf(code, sizeof code, "%.*s", (int)(head - 1), p + 1);
        if (md_valid_utf8(code, strlen(code)))
            put_error(&e->out, code, md_code_clause(md_code_find(code)), NULL, false);
    }
    md_err_t rc = put_original(e, t, c->command_id, err);
    if (rc != MD_OK)
        return rc;
    md_buf_append(&e->out, "}", 1);
    e->pending.duplicates++;
    return MD_OK;
}

/* ---- appending a decision ------------------------------------------------------------- */


static md_err_t run_hooks(md_engine_t *e, md_txn_t *t, const md_event_t *ev, md_error_t *err)
{
    for (int i = 0; i < e->nhooks; i++) {
        md_err_t rc = e->hooks[i].fn(t, ev, e->hooks[i].ctx, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

/* The event goes out as a reference: the publisher renders its JSON from the
 * log when it sends it (the outbox would otherwise hold a second copy of every
 * event, written and deleted again: docs/performance.md). */
static md_err_t outbox_event(md_engine_t *e, md_txn_t *t, const md_event_t *ev, md_error_t *err)
{
    if (e->events_topic == NULL)
        return MD_OK;
    md_outbox_msg_t m = {.topic = e->events_topic,
                         .key = ev->stream,
                         .key_len = strlen(ev->stream),
                         .event_seq = ev->seq};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/* Appends one new event of the decision, evolves the aggregates and runs the hooks. */
/* command_id and actor NULL: nil. */
static md_err_t append_one(md_engine_t *e, md_txn_t *t, const char *command_id, const char *actor,
                           md_new_event_t *ne, int64_t now, md_event_t *ev, md_error_t *err)
{
    md_state_t st = md__eng_txn_state(&e->sctx);
    memset(ev, 0, sizeof *ev);
    md_str_copy(ev->stream, sizeof ev->stream, ne->stream);
    md_str_copy(ev->type, sizeof ev->type, ne->type);
    ev->recorded_at = now;
    ev->has_command_id = command_id != NULL;
    if (ev->has_command_id)
        md_str_copy(ev->command_id, sizeof ev->command_id, command_id);
    ev->has_actor = ev->has_command_id && actor != NULL;
    if (ev->has_actor)
        md_str_copy(ev->actor, sizeof ev->actor, actor);
    md_buf_reset(&e->data);
    md_data_pack(&ne->data, &e->data);
    ev->data = e->data.p;
    ev->data_len = e->data.len;
    md_err_t rc = md_txn_append(t, ev, err);
    if (rc == MD_OK)
        rc = md_rules_evolve(&st, ev, err);
    if (rc == MD_OK)
        rc = run_hooks(e, t, ev, err);
    if (rc == MD_OK)
        rc = outbox_event(e, t, ev, err);
    e->pending.events++;
    return rc;
}

/* {"seq":..,"stream":..,"version":..,"type":..}, after a comma unless first. */
static void put_event_ref(md_buf_t *o, const md_event_t *ev, bool first)
{
    put_lit(o, first ? "{\"seq\":" : ",{\"seq\":");
    put_u64(o, ev->seq);
    put_lit(o, ",\"stream\":");
    put_str(o, ev->stream);
    put_lit(o, ",\"version\":");
    put_u64(o, ev->version);
    put_lit(o, ",\"type\":");
    put_str(o, ev->type);
    md_buf_append(o, "}", 1);
}

static void count_outcome(md_engine_t *e, const md_decision_t *d)
{
    if (d->accepted) {
        e->pending.accepted++;
        return;
    }
    e->pending.rejected++;
    if (d->malformed)
        e->pending.malformed++;
    if (d->code >= 0 && d->code < MD_CODE_COUNT_)
        e->pending.by_code[d->code]++;
}

/* Appends the decision's events, writes the result to e->out and records the
 * outcome (unless the rejection is retryable or the message MALFORMED). */
static md_err_t apply_decision(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                               const md_input_t *in, int64_t now, md_error_t *err)
{
    md_decision_t *d = &e->decision;
    md_err_t rc = MD_OK;
    size_t at = e->out.len;
    md_buf_reset(&e->refs);
    for (size_t i = 0; i < d->n_events && rc == MD_OK; i++) {
        md_event_t ev;
        const char *cid = c->status != MD_DECODE_MALFORMED ? c->command_id : NULL;
        if ((rc = append_one(e, t, cid, c->has_actor ? c->actor : NULL, &d->events[i], now, &ev,
                             err)) == MD_OK)
            put_event_ref(&e->refs, &ev, i == 0);
    }
    if (rc != MD_OK)
        return rc;
    count_outcome(e, d);
    put_head(&e->out, c, d->accepted ? "accepted" : "rejected");
    if (d->accepted) {
        put_lit(&e->out, ",\"events\":[");
        md_buf_append(&e->out, e->refs.p, e->refs.len);
        md_buf_append(&e->out, "]", 1);
    } else {
        put_error(&e->out, d->code_name, d->clause, d->message, d->retryable);
    }
    if (c->status == MD_DECODE_MALFORMED)
        put_malformed_origin(&e->out, c, in);
    md_buf_append(&e->out, "}", 1);
    if (d->accepted || (!d->retryable && !d->malformed))
        rc = put_outcome(e, t, c, d, at, err);
    return rc;
}

/* ---- the batch ------------------------------------------------------------------------ */

static int64_t command_now(md_engine_t *e, const md_command_t *c, const md_input_t *in)
{
    if (e->opts.clock == MD_CLOCK_WALL)
        return e->wall_now;
    if (e->opts.clock == MD_CLOCK_LOG) {
        if (in->timestamp_ms > e->last_now) /* monotone: max(previous now, log time) */
            e->last_now = in->timestamp_ms;
        return e->last_now;
    }
    if (c->status != MD_DECODE_MALFORMED && c->has_issued_at)
        e->last_now = c->issued_at;
    return e->last_now; /* a command without a valid time keeps the last one */
}

/*
 * The deterministic clocks' "previous now" lives in the store (meta "clock",
 * 8 bytes big-endian), written in the batch transaction: a restart, a replay
 * or another replica continues from the same value. An empty store keeps the
 * engine's initial value.
 */
#define META_CLOCK "clock"

static md_err_t load_clock(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    const unsigned char *v;
    size_t len;
    if (e->opts.clock == MD_CLOCK_WALL)
        return MD_OK;
    md_err_t rc = md_txn_meta_get(t, META_CLOCK, (const void **)&v, &len, err);
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc == MD_OK && len != 8)
        return md_error_set(err, MD_ECORRUPT, "meta 'clock' has %zu bytes, not 8", len);
    if (rc == MD_OK) {
        uint64_t x = 0;
        for (int i = 0; i < 8; i++)
            x = x << 8 | v[i];
        e->last_now = (int64_t)x;
    }
    return rc;
}

static md_err_t store_clock(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    unsigned char v[8];
    if (e->opts.clock == MD_CLOCK_WALL)
        return MD_OK;
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)((uint64_t)e->last_now >> (56 - 8 * i));
    return md_txn_meta_put(t, META_CLOCK, v, sizeof v, err);
}

static md_err_t outbox_result(md_engine_t *e, md_txn_t *t, const md_command_t *c,
                              const unsigned char *line, size_t len, md_error_t *err)
{
    if (e->results_topic == NULL)
        return MD_OK;
    const char *key = c->status == MD_DECODE_MALFORMED ? "" : c->command_id;
    md_outbox_msg_t m = {.topic = e->results_topic,
                         .key = key,
                         .key_len = strlen(key),
                         .value = line,
                         .value_len = len};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/* Appends the Kafka header name=value to @p h (name '\0' value '\0' pairs). */
static void put_header(md_buf_t *h, const char *name, const char *value)
{
    md_buf_append(h, name, strlen(name) + 1);
    md_buf_append(h, value, strlen(value) + 1);
}

/*
 * A MALFORMED message from Kafka goes to the dead-letter topic as it came,
 * with the reason, the digest and the size of its bytes in headers. A dead
 * letter never exceeds MD_DEADLETTER_MAX_BYTES, which every broker at its
 * defaults takes: a larger body is dropped (header body=dropped), a larger
 * key cut (header key=cut); the digest still names the original bytes.
 */
static md_err_t dead_letter(md_engine_t *e, md_txn_t *t, const md_input_t *in,
                            const md_command_t *c, md_error_t *err)
{
    char hex[65], num[32], note[160];
    if (e->deadletter_topic == NULL || c->status != MD_DECODE_MALFORMED)
        return MD_OK;
    md_hex(c->sha256, 32, hex);
    md_buf_reset(&e->hdr);
    put_header(&e->hdr, "reason", c->detail);
    put_header(&e->hdr, "sha256", hex);
    snprintf(num, sizeof num, "%zu", in->len);
    put_header(&e->hdr, "original_size", num);
    size_t key_len = in->key_len, room = MD_DEADLETTER_MAX_BYTES - MD_DEADLETTER_MAX_BYTES / 8;
    if (key_len > room / 2) {
        key_len = room / 2;
        snprintf(note, sizeof note, "cut: first %zu of %zu bytes", key_len, in->key_len);
        put_header(&e->hdr, "key", note);
    }
    const void *value = in->bytes;
    size_t value_len = in->len;
    if (key_len + e->hdr.len + value_len > room) {
        value = "";
        value_len = 0;
        snprintf(note, sizeof note, "dropped: %zu bytes exceed the dead-letter limit of %d",
                 in->len, MD_DEADLETTER_MAX_BYTES);
        put_header(&e->hdr, "body", note);
    }
    md_outbox_msg_t m = {.topic = e->deadletter_topic,
                         .key = in->key,
                         .key_len = key_len,
                         .headers = e->hdr.p,
                         .headers_len = e->hdr.len,
                         .value = value,
                         .value_len = value_len};
    return md_txn_outbox_put(t, &m, NULL, err);
}

/*
 * Fires the timers due at now, in (deadline, arming seq) order, until none is
 * due (rules.md "Policy and timers"): their events go to the log, the hooks and
 * the events topic with recorded_at = the deadline, command_id "timer:<kind>:<id>"
 * and actor "system"; no result, no outcome. Evolving a firing's first event
 * disarms its timer (the index is written by evolve only).
 */
static md_err_t fire_timers(md_engine_t *e, md_txn_t *t, int64_t now, md_error_t *err)
{
    md_state_t st = md__eng_txn_state(&e->sctx);
    for (;;) {
        md_timer_t tm;
        bool due = false;
        md_err_t rc = md_rules_timer_next(&st, now, &tm, &due, err);
        if (rc == MD_OK && due)
            rc = md_rules_timer_fire(&st, &tm, &e->decision, err);
        if (rc != MD_OK || !due)
            return rc;
        for (size_t i = 0; i < e->decision.n_events && rc == MD_OK; i++) {
            md_event_t ev;
            rc = append_one(e, t, tm.command_id, "system", &e->decision.events[i], tm.deadline, &ev,
                            err);
        }
        if (rc != MD_OK)
            return rc;
    }
}

/* Whether the line fires timers: not MALFORMED, and with clock = command only
 * with a valid issued_at (with wall and log, now is always the line's). */
static bool fires_timers(const md_engine_t *e, const md_command_t *c)
{
    return c->status != MD_DECODE_MALFORMED &&
           (e->opts.clock != MD_CLOCK_COMMAND || c->has_issued_at);
}

static md_err_t process_one(md_engine_t *e, md_txn_t *t, size_t i, md_error_t *err)
{
    const md_command_t *c = &e->cmd;
    md_err_t rc = MD_ENOTFOUND;
    if (e->dec_on)
        c = md__eng_dec_get(e, i);
    else
        md__eng_decode_one(e, i, &e->cmd);
    int64_t now = command_now(e, c, &e->in[i]);
    size_t at = e->out.len;
    if (fires_timers(e, c) && (rc = fire_timers(e, t, now, err)) != MD_OK)
        return rc;
    rc = MD_ENOTFOUND;
    if (c->status != MD_DECODE_MALFORMED)
        rc = answer_duplicate(e, t, c, err);
    if (rc == MD_ENOTFOUND) {
        md_state_t st = md__eng_txn_state(&e->sctx);
        rc = md_rules_decide(&st, c, now, &e->decision, err);
        if (rc == MD_OK)
            rc = apply_decision(e, t, c, &e->in[i], now, err);
    }
    if (rc != MD_OK)
        return rc;
    md_buf_append(&e->out, "\n", 1);
    e->pending.commands++;
    rc = outbox_result(e, t, c, e->out.p + at, e->out.len - at - 1, err);
    return rc == MD_OK ? dead_letter(e, t, &e->in[i], c, err) : rc;
}

static int64_t first_now(md_engine_t *e);

static md_err_t bootstrap_in(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    uint64_t head;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc != MD_OK || head != 0)
        return rc;
    int64_t now = first_now(e);
    md_state_t st = md__eng_txn_state(&e->sctx);
    rc = md_rules_bootstrap(&st, e->operator_id, now, &e->decision, err);
    for (size_t i = 0; i < e->decision.n_events && rc == MD_OK; i++) {
        md_event_t ev;
        rc = append_one(e, t, "bootstrap", "bootstrap", &e->decision.events[i], now, &ev, err);
    }
    return rc == MD_OK ? md_txn_outcome_put(t, "bootstrap", "A", 1, err) : rc;
}

/* Stores, per partition, the offset after the last message of the batch. */
static md_err_t put_offsets(md_engine_t *e, md_txn_t *t, md_error_t *err)
{
    if (e->commands_topic == NULL)
        return MD_OK;
    for (size_t i = 0; i < e->n; i++) {
        const md_input_t *in = &e->in[i];
        bool last = true;
        for (size_t j = i + 1; j < e->n && last; j++)
            last = e->in[j].partition != in->partition;
        if (in->partition >= 0 && last) {
            md_err_t rc =
                md_txn_offset_put(t, e->commands_topic, in->partition, in->offset + 1, err);
            if (rc != MD_OK)
                return rc;
        }
    }
    return MD_OK;
}

static int64_t first_now(md_engine_t *e)
{
    if (e->opts.clock == MD_CLOCK_WALL)
        return e->wall_now;
    if (e->opts.clock == MD_CLOCK_LOG)
        return e->n && e->in[0].timestamp_ms > e->last_now ? e->in[0].timestamp_ms : e->last_now;
    for (size_t i = 0; i < e->n; i++) { /* the store's first batch only */
        md__eng_decode_one(e, i, &e->cmd);
        if (e->cmd.status != MD_DECODE_MALFORMED && e->cmd.has_issued_at)
            return e->cmd.issued_at;
    }
    return e->last_now;
}

static md_err_t batch_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    md_engine_t *e = ctx;
    int64_t saved_now = e->last_now;
    md__eng_cache_reset(&e->cache);
    e->sctx.t = t;
    e->sctx.cache = &e->cache;
    e->sctx.seek.valid = false; /* a re-run batch seeks afresh */
    md_buf_reset(&e->out);
    memset(&e->pending, 0, sizeof e->pending);
    md_err_t rc = run_batch_hooks(e, t, false, err);
    if (rc == MD_OK)
        rc = load_clock(e, t, err);
    if (rc == MD_OK)
        md__eng_dec_begin(e);
    /* The bootstrap rides with the first batch that has commands, so that its
     * recorded_at is that batch's time (deterministic with clock = command or log). */
    if (rc == MD_OK && (e->n || e->force_bootstrap))
        rc = bootstrap_in(e, t, err);
    for (size_t i = 0; i < e->n && rc == MD_OK; i++)
        rc = process_one(e, t, i, err);
    md__eng_dec_end(e);
    if (rc == MD_OK) /* the rules' state writes of the batch, once per key */
        rc = md__eng_state_flush(&e->sctx, err);
    if (rc == MD_OK)
        rc = put_offsets(e, t, err);
    if (rc == MD_OK && e->n)
        rc = store_clock(e, t, err);
    if (rc == MD_OK)
        rc = run_batch_hooks(e, t, true, err);
    if (rc == MD_OK && e->batch_hook)
        rc = e->batch_hook(t, e->batch_ctx, err);
    if (rc != MD_OK)
        e->last_now = saved_now; /* a retried batch starts from the same clock */
    return rc;
}

static void add_stats(md_engine_stats_t *a, const md_engine_stats_t *b)
{
    a->batches++;
    a->commands += b->commands;
    a->accepted += b->accepted;
    a->rejected += b->rejected;
    a->duplicates += b->duplicates;
    a->malformed += b->malformed;
    a->events += b->events;
    for (int i = 0; i < 64; i++)
        a->by_code[i] += b->by_code[i];
}

/* ---- post-commit notification (md_engine_set_commit_hook) ------------------------------- */

void md_engine_set_commit_hook(md_engine_t *e, md_commit_hook_fn fn, void *ctx)
{
    e->commit_hook = fn;
    e->commit_ctx = ctx;
}

static void notify_commit(md_engine_t *e)
{
    if (e->commit_hook)
        e->commit_hook(e->commit_ctx);
}

md_err_t md_engine_process(md_engine_t *e, const md_input_t *in, size_t n, int64_t now_ms,
                           md_buf_t *results, md_error_t *err)
{
    e->in = in;
    e->n = n;
    e->wall_now = now_ms;
    double t0 = md_mono_s();
    md_err_t rc = md_store_write(e->store, batch_fn, e, err);
    if (rc != MD_OK)
        return rc;
    notify_commit(e);
    add_stats(&e->stats, &e->pending);
    md_metrics_add_batch(&e->pending, md_mono_s() - t0);
    if (results)
        md_buf_append(results, e->out.p, e->out.len);
    return MD_OK;
}

md_err_t md_engine_bootstrap(md_engine_t *e, int64_t now_ms, md_error_t *err)
{
    e->n = 0;
    e->wall_now = now_ms;
    e->last_now = now_ms;
    e->force_bootstrap = true;
    md_err_t rc = md_store_write(e->store, batch_fn, e, err);
    e->force_bootstrap = false;
    if (rc == MD_OK)
        notify_commit(e);
    return rc;
}

/* ---- the idle tick (timers.tick_ms) ----------------------------------------------------- */

typedef struct tick_ctx {
    md_engine_t *e;
    int64_t now;
} tick_ctx_t;

static md_err_t tick_fn(md_txn_t *t, void *ctx, md_error_t *err)
{
    tick_ctx_t *k = ctx;
    char when[25], line[256];
    md_format_time(k->now, when);
    int n = snprintf(line, sizeof line,
                     "{\"command_id\":\"tick-%lld\",\"type\":\"Tick\",\"actor\":\"%s\","
                     "\"issued_at\":\"%s\",\"data\":{}}",
                     (long long)k->now, k->e->operator_id, when);
    md_outbox_msg_t m = {.topic = k->e->commands_topic,
                         .key = "tick",
                         .key_len = 4,
                         .value = line,
                         .value_len = (size_t)n};
    return md_txn_outbox_put(t, &m, NULL, err);
}

md_err_t md_engine_tick(md_engine_t *e, int64_t now_ms, md_error_t *err)
{
    tick_ctx_t k = {e, now_ms};
    if (e->commands_topic == NULL)
        return md_error_set(err, MD_EINVAL, "no commands topic to tick");
    md_err_t rc = md_store_write(e->store, tick_fn, &k, err);
    if (rc == MD_OK)
        notify_commit(e);
    return rc;
}
