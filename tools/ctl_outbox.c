/*
 * ctl_outbox.c - `marketctl outbox list|retry`: the outbox entries the broker
 * refused for good (parked by the publisher, md_store.h), and queueing them
 * again once the cause is fixed (the running daemon sends them; the store is
 * opened read-write beside it, as LMDB allows).
 */
#include <jansson.h>
#include <string.h>

#include "ctl.h"

static md_err_t print_parked(const md_outbox_msg_t *m, const char *reason, void *ctx,
                             md_error_t *err)
{
    (void)ctx;
    json_t *j = json_pack("{s:I, s:s, s:s%, s:s, s:I}", "id", (json_int_t)m->id, "topic", m->topic,
                          "key", m->key_len ? (const char *)m->key : "", m->key_len, "reason",
                          reason, "value_bytes", (json_int_t)m->value_len);
    if (j && m->event_seq)
        json_object_set_new(j, "event_seq", json_integer((json_int_t)m->event_seq));
    return ctl_print_json(j, err);
}

typedef struct unpark_ctx {
    uint64_t id, moved;
} unpark_ctx_t;

static md_err_t unpark(md_txn_t *t, void *ctx, md_error_t *err)
{
    unpark_ctx_t *u = ctx;
    return md_txn_outbox_unpark(t, u->id, &u->moved, err);
}

static int cmd_outbox(ctl_t *c)
{
    const char *what = c->args[0];
    if (strcmp(what, "list") == 0) {
        if (ctl_str(c, "id")) {
            md_error_set(&c->err, MD_EINVAL, "--id goes with retry, not list");
            return 2;
        }
        return md_txn_outbox_parked_scan(c->txn, print_parked, c, &c->err) == MD_OK ? 0 : 1;
    }
    if (strcmp(what, "retry") != 0) {
        md_error_set(&c->err, MD_EINVAL, "'%s' is neither list nor retry", what);
        return 2;
    }
    unpark_ctx_t u = {ctl_u64(c, "id", 0), 0};
    md_txn_end(c->txn); /* the writer must hold no read transaction */
    c->txn = NULL;
    if (md_store_write(c->store, unpark, &u, &c->err) != MD_OK)
        return 1;
    return ctl_print_json(json_pack("{s:b, s:I}", "ok", 1, "requeued", (json_int_t)u.moved),
                          &c->err) == MD_OK
               ? 0
               : 1;
}

static const ctl_opt_t outbox_opts[] = {
    {"id", CTL_SEQ, "ID", "retry: only the parked entry ID (default: every one)"},
    {NULL, 0, NULL, NULL},
};

const ctl_sub_t ctl_sub_outbox = {
    "outbox",
    cmd_outbox,
    CTL_WRITES,
    "list|retry",
    1,
    1,
    "entries the broker refused for good (parked); retry queues them again",
    outbox_opts,
    NULL,
};
