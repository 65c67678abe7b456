/*
 * checkpointer.c - the daemon's checkpointer (md_checkpointer.h): signed
 * checkpoints of the head queued in the batch transaction's outbox.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "md_base.h"
#include "md_checkpointer.h"
#include "md_log.h"

#define META_CHECKPOINT "checkpoint"

struct md_checkpointer {
    char replica[MD_REPLICA_ID_MAX + 1];
    char *topic;
    long interval_events, interval_ms;
    EVP_PKEY *key;
    int64_t last_ms; /* monotonic ms of the last checkpoint (or of the start) */
    uint64_t head_seen, last_seq;
    bool announce;                    /* opts.announce, until the first checkpoint */
    bool has_published;               /* the replicated leader's: checkpoints are version 2 */
    uint64_t published, published_cp; /* the value now, and in the last checkpoint */
    md_buf_t json;
};

md_err_t md_checkpointer_new(const md_checkpointer_opts_t *o, md_checkpointer_t **out,
                             md_error_t *err)
{
    md_error_t e = {0};
    if (!md_replica_id_valid(o->replica_id))
        return md_error_set(err, MD_ECONFIG, "'replica.id' must be [A-Za-z0-9._-]{1,64}");
    md_checkpointer_t *c = md_calloc(1, sizeof *c);
    if (md_key_load(o->key_file, true, &c->key, &e) != MD_OK) {
        free(c);
        return md_error_set(err, MD_ECONFIG, "'replica.key_file': %s", e.msg);
    }
    snprintf(c->replica, sizeof c->replica, "%s", o->replica_id);
    c->topic = md_strdup(o->topic);
    c->interval_events = o->interval_events > 0 ? o->interval_events : 1;
    c->interval_ms = o->interval_ms;
    c->announce = o->announce;
    c->last_ms = md_mono_ms();
    c->head_seen = 1; /* unknown until the first transaction: one runs after interval_ms */
    md_buf_init(&c->json);
    *out = c;
    return MD_OK;
}

void md_checkpointer_free(md_checkpointer_t *c)
{
    if (c == NULL)
        return;
    EVP_PKEY_free(c->key);
    free(c->topic);
    md_buf_release(&c->json);
    free(c);
}

static md_err_t last_checkpointed(md_txn_t *t, uint64_t *seq, md_error_t *err)
{
    const void *v;
    size_t len;
    md_err_t rc = md_txn_meta_get(t, META_CHECKPOINT, &v, &len, err);
    *seq = 0;
    if (rc == MD_ENOTFOUND)
        return MD_OK;
    if (rc == MD_OK && len != 8)
        return md_error_set(err, MD_ECORRUPT, "meta 'checkpoint' has %zu bytes, not 8", len);
    if (rc == MD_OK)
        *seq = md_checkpoint_be(v, 8);
    return rc;
}

/* Signs the head and queues it for the heads topic; records its seq. */
static md_err_t publish(md_checkpointer_t *c, md_txn_t *t, md_error_t *err)
{
    md_checkpoint_t cp;
    unsigned char seq[8];
    md_err_t rc = md_checkpoint_take(t, c->replica, &cp, err);
    if (rc == MD_OK && c->has_published) {
        cp.version = 2;
        cp.published = c->published;
    }
    if (rc == MD_OK)
        rc = md_checkpoint_sign(&cp, c->key, err);
    md_buf_reset(&c->json);
    if (rc == MD_OK)
        rc = md_checkpoint_to_json(&cp, &c->json, err);
    if (rc == MD_OK) {
        md_outbox_msg_t m = {.topic = c->topic,
                             .key = c->replica,
                             .key_len = strlen(c->replica),
                             .value = c->json.p,
                             .value_len = c->json.len};
        rc = md_txn_outbox_put(t, &m, NULL, err);
    }
    for (int i = 0; i < 8; i++)
        seq[i] = (unsigned char)(cp.seq >> (56 - 8 * i));
    if (rc == MD_OK)
        rc = md_txn_meta_put(t, META_CHECKPOINT, seq, sizeof seq, err);
    if (rc == MD_OK) /* the intake state at this point is what it signed (md_store.h) */
        rc = md_txn_intake_mark(t, c->replica, cp.seq, err);
    if (rc == MD_OK) {
        c->last_seq = cp.seq;
        c->published_cp = cp.version >= 2 ? cp.published : 0;
        c->announce = false;
        c->last_ms = md_mono_ms();
        md_log_debug("checkpoint queued", "replica=%s seq=%" PRIu64, c->replica, cp.seq);
    }
    md_checkpoint_release(&cp);
    return rc;
}

static bool published_moved(const md_checkpointer_t *c)
{
    return c->has_published && c->published != c->published_cp;
}

void md_checkpointer_set_published(md_checkpointer_t *c, bool on, uint64_t seq)
{
    c->has_published = on;
    c->published = seq;
}

md_err_t md_checkpointer_batch(md_checkpointer_t *c, md_txn_t *t, bool final, md_error_t *err)
{
    uint64_t head, last;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK)
        rc = last_checkpointed(t, &last, err);
    if (rc != MD_OK)
        return rc;
    c->head_seen = head;
    c->last_seq = last;
    if (head == 0)
        c->announce = false; /* nothing to announce */
    if (head == 0 || (head == last && !published_moved(c) && !c->announce))
        return MD_OK;
    bool due = final || c->announce || head - last >= (uint64_t)c->interval_events ||
               md_mono_ms() - c->last_ms >= c->interval_ms;
    return due ? publish(c, t, err) : MD_OK;
}

bool md_checkpointer_due(const md_checkpointer_t *c, bool final)
{
    return c != NULL && (c->head_seen != c->last_seq || published_moved(c) || c->announce) &&
           (final || c->announce || md_mono_ms() - c->last_ms >= c->interval_ms);
}
