/*
 * intake.c - the consumed offsets checked against the intake records and the
 * checkpoints this store signed (md_intake.h).
 *
 * Both checks walk the records in number order and keep the intake state:
 * per topic and partition, the next offset the last record stored.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_intake.h"

typedef struct pstate {
    char topic[MD_INTAKE_NAME_MAX + 1];
    int32_t partition;
    int64_t next;
    uint64_t number, seq; /* the record that stored it */
} pstate_t;

typedef struct walk {
    md_txn_t *t;
    uint64_t head, expect, last_seq;
    pstate_t *st;
    size_t n, cap;
    md_intake_report_t rep;
    /* md_intake_check_checkpoints */
    const md_cp_set_t *cps;
    bool *matched;
    md_intake_cp_report_t *cprep;
} walk_t;

static pstate_t *find(walk_t *w, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < w->n; i++)
        if (w->st[i].partition == partition && strcmp(w->st[i].topic, topic) == 0)
            return &w->st[i];
    return NULL;
}

static pstate_t *add(walk_t *w, const char *topic, int32_t partition)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 8;
        w->st = md_realloc(w->st, w->cap * sizeof *w->st);
    }
    pstate_t *p = &w->st[w->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->partition = partition;
    w->rep.partitions++;
    return p;
}

static bool names_topic(const walk_t *w, const char *topic)
{
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->st[i].topic, topic) == 0)
            return true;
    return false;
}

/* ---- one record --------------------------------------------------------------------------- */

static md_err_t check_order(walk_t *w, const md_intake_t *r, md_error_t *err)
{
    if (r->number != w->expect)
        return w->expect == 0
                   ? md_error_set(err, MD_ECORRUPT,
                                  "offsets: the intake records begin at record %" PRIu64
                                  ", without their baseline (record 0)",
                                  r->number)
                   : md_error_set(err, MD_ECORRUPT,
                                  "offsets: intake record %" PRIu64 " is missing (record %" PRIu64
                                  " follows record %" PRIu64 ")",
                                  w->expect, r->number, w->expect - 1);
    if ((r->number == 0) != (r->kind == MD_INTAKE_BASELINE))
        return md_error_set(err, MD_ECORRUPT, "offsets: intake record %" PRIu64 " is %s", r->number,
                            r->number ? "a second baseline" : "not the baseline");
    if (r->seq < w->last_seq || r->seq > w->head)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: intake record %" PRIu64 " names seq %" PRIu64
                            " (the previous record %" PRIu64 ", the head %" PRIu64 ")",
                            r->number, r->seq, w->last_seq, w->head);
    w->expect++;
    w->last_seq = r->seq;
    return MD_OK;
}

static md_err_t baseline(walk_t *w, const md_intake_t *r, md_error_t *err)
{
    for (size_t i = 0; i < r->nparts; i++) {
        const md_intake_part_t *p = &r->parts[i];
        if (p->from < 0 || p->first != p->from || p->next != p->from ||
            find(w, r->name, p->partition))
            return md_error_set(err, MD_ECORRUPT,
                                "offsets: the intake baseline is malformed at "
                                "%s partition %d",
                                r->name, (int)p->partition);
        pstate_t *s = add(w, r->name, p->partition);
        s->next = p->next;
        s->number = r->number;
        s->seq = r->seq;
    }
    return MD_OK;
}

/* Where a partition's batch began, against where the intake state says it should. */
static md_err_t check_start(const md_intake_t *r, const md_intake_part_t *p, const pstate_t *s,
                            md_error_t *err)
{
    const char *topic = r->name;
    int part = (int)p->partition;
    if (s == NULL && p->from == MD_INTAKE_NONE)
        return MD_OK; /* the partition's first batch, from the log's start */
    if (s == NULL)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: batch record %" PRIu64 " (seq %" PRIu64
                            ") began at the stored offset %" PRId64
                            ", which no earlier intake record stored",
                            topic, part, r->number, r->seq, p->from);
    if (p->from == MD_INTAKE_NONE)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: batch record %" PRIu64 " (seq %" PRIu64
                            ") began with no stored offset, but record %" PRIu64
                            " had stored next %" PRId64 ": the stored offset was removed",
                            topic, part, r->number, r->seq, s->number, s->next);
    if (p->from > s->next)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: batch record %" PRIu64 " (seq %" PRIu64
                            ") began at offset %" PRId64 ", but the previous batch (record %" PRIu64
                            ", seq %" PRIu64 ") ended at %" PRId64 ": offsets %" PRId64 "..%" PRId64
                            " were never consumed (not a gap the consumer observed)",
                            topic, part, r->number, r->seq, p->from, s->number, s->seq, s->next,
                            s->next, p->from - 1);
    if (p->from < s->next)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: batch record %" PRIu64 " (seq %" PRIu64
                            ") began at offset %" PRId64 ", but the previous batch (record %" PRIu64
                            ", seq %" PRIu64 ") ended at %" PRId64 ": offsets %" PRId64 "..%" PRId64
                            " were consumed twice",
                            topic, part, r->number, r->seq, p->from, s->number, s->seq, s->next,
                            p->from, s->next - 1);
    return MD_OK;
}

static md_err_t batch(walk_t *w, const md_intake_t *r, md_error_t *err)
{
    w->rep.batches++;
    if (w->rep.batches == 1)
        w->rep.first_seq = r->seq;
    for (size_t i = 0; i < r->nparts; i++) {
        const md_intake_part_t *p = &r->parts[i];
        pstate_t *s = find(w, r->name, p->partition);
        md_err_t rc = check_start(r, p, s, err);
        if (rc != MD_OK)
            return rc;
        if (p->count == 0 || p->first < 0 || p->next <= p->first ||
            (uint64_t)(p->next - p->first) < p->count || (p->from < 0 && p->from != MD_INTAKE_NONE))
            return md_error_set(err, MD_ECORRUPT,
                                "offsets: intake record %" PRIu64
                                " is malformed at %s partition %d",
                                r->number, r->name, (int)p->partition);
        /* What the consumer observed is accepted: the broker's first message
         * above the offset asked for (a gap), or below it (the broker reset
         * the position, e.g. to the log's start: messages consumed again). */
        if (p->from != MD_INTAKE_NONE && p->first > p->from) {
            w->rep.gaps++;
            w->rep.gap_offsets += (uint64_t)(p->first - p->from);
        } else if (p->from != MD_INTAKE_NONE && p->first < p->from) {
            w->rep.resets++;
        }
        if (s == NULL)
            s = add(w, r->name, p->partition);
        s->next = p->next;
        s->number = r->number;
        s->seq = r->seq;
        w->rep.messages += p->count;
    }
    return MD_OK;
}

static md_err_t apply(walk_t *w, const md_intake_t *r, md_error_t *err)
{
    md_err_t rc = check_order(w, r, err);
    if (rc != MD_OK)
        return rc;
    switch (r->kind) {
    case MD_INTAKE_BASELINE: return baseline(w, r, err);
    case MD_INTAKE_BATCH: return batch(w, r, err);
    case MD_INTAKE_CHECKPOINT: w->rep.marks++; return MD_OK;
    }
    return md_error_set(err, MD_ECORRUPT, "offsets: intake record %" PRIu64 " of unknown kind",
                        r->number);
}

static md_err_t walk_begin(walk_t *w, md_txn_t *t, md_error_t *err)
{
    memset(w, 0, sizeof *w);
    w->t = t;
    return md_txn_head(t, &w->head, NULL, err);
}

/* ---- the stored offsets against the state ------------------------------------------------- */

static md_err_t stored_fn(const char *topic, int32_t partition, int64_t next, void *ctx,
                          md_error_t *err)
{
    walk_t *w = ctx;
    const pstate_t *s = find(w, topic, partition);
    if (s == NULL && !names_topic(w, topic)) {
        w->rep.uncovered++;
        return MD_OK;
    }
    if (s == NULL)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: the stored next offset %" PRId64
                            " has no intake record",
                            topic, (int)partition, next);
    if (next != s->next)
        return md_error_set(err, MD_ECORRUPT,
                            "offsets: %s partition %d: the stored next offset is %" PRId64
                            ", but the last intake record (record %" PRIu64 ", seq %" PRIu64
                            ") stored %" PRId64 ": offsets %" PRId64 "..%" PRId64 " %s",
                            topic, (int)partition, next, s->number, s->seq, s->next,
                            next > s->next ? s->next : next, (next > s->next ? next : s->next) - 1,
                            next > s->next ? "would never be consumed" : "would be consumed again");
    return MD_OK;
}

static md_err_t record_fn(const md_intake_t *r, void *ctx, md_error_t *err)
{
    return apply(ctx, r, err);
}

/* Every partition of the state must have its offset stored. */
static md_err_t check_all_stored(walk_t *w, md_error_t *err)
{
    for (size_t i = 0; i < w->n; i++) {
        int64_t next;
        const pstate_t *s = &w->st[i];
        md_err_t rc = md_txn_offset_get(w->t, s->topic, s->partition, &next, err);
        if (rc == MD_ENOTFOUND)
            return md_error_set(err, MD_ECORRUPT,
                                "offsets: %s partition %d: no offset is stored, but intake record "
                                "%" PRIu64 " (seq %" PRIu64 ") stored next %" PRId64,
                                s->topic, (int)s->partition, s->number, s->seq, s->next);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

md_err_t md_intake_verify(md_txn_t *t, md_intake_report_t *rep, md_error_t *err)
{
    walk_t w;
    md_err_t rc = walk_begin(&w, t, err);
    if (rc == MD_OK)
        rc = md_txn_intake_scan(t, record_fn, &w, err);
    w.rep.absent = w.expect == 0;
    if (rc == MD_OK && !w.rep.absent)
        rc = md_txn_offset_scan(t, stored_fn, &w, err);
    if (rc == MD_OK && !w.rep.absent)
        rc = check_all_stored(&w, err);
    *rep = w.rep;
    free(w.st);
    return rc;
}

/* ---- the checkpoints this store signed ------------------------------------------------------ */

static const md_cp_offset_t *cp_offset(const md_checkpoint_t *cp, const char *topic,
                                       int32_t partition)
{
    for (size_t i = 0; i < cp->noffsets; i++)
        if (cp->offsets[i].partition == partition && strcmp(cp->offsets[i].topic, topic) == 0)
            return &cp->offsets[i];
    return NULL;
}

/* The signed offsets of checkpoint @p k against the intake state at its mark @p r. */
static md_err_t compare(walk_t *w, size_t k, const md_intake_t *r, md_error_t *err)
{
    const md_checkpoint_t *cp = &w->cps->cps[k];
    char who[160];
    snprintf(who, sizeof who,
             "checkpoint %zu (replica %s, seq %" PRIu64 ", intake record %" PRIu64 ")", k + 1,
             cp->replica, cp->seq, r->number);
    for (size_t i = 0; i < w->n; i++) {
        const pstate_t *s = &w->st[i];
        const md_cp_offset_t *o = cp_offset(cp, s->topic, s->partition);
        char said[48] = "signed no offset";
        if (o != NULL)
            snprintf(said, sizeof said, "signed next %" PRId64, o->next);
        if (o == NULL || o->next != s->next)
            return md_error_set(err, MD_ECORRUPT,
                                "offsets: %s: %s partition %d: %s, but this store's intake there "
                                "says next %" PRId64,
                                who, s->topic, (int)s->partition, said, s->next);
    }
    for (size_t i = 0; i < cp->noffsets; i++) {
        const md_cp_offset_t *o = &cp->offsets[i];
        if (names_topic(w, o->topic) && find(w, o->topic, o->partition) == NULL)
            return md_error_set(err, MD_ECORRUPT,
                                "offsets: %s: %s partition %d: signed next %" PRId64
                                ", but this store's intake there has no offset",
                                who, o->topic, (int)o->partition, o->next);
    }
    return MD_OK;
}

static md_err_t mark(walk_t *w, const md_intake_t *r, md_error_t *err)
{
    bool found = false;
    for (size_t k = 0; k < w->cps->n; k++) {
        const md_checkpoint_t *cp = &w->cps->cps[k];
        if (cp->seq != r->seq || strcmp(cp->replica, r->name) != 0)
            continue;
        md_err_t rc = compare(w, k, r, err);
        if (rc != MD_OK)
            return rc;
        found = true;
        if (!w->matched[k])
            w->cprep->compared++;
        w->matched[k] = true;
    }
    if (!found)
        w->cprep->unmatched_marks++;
    return MD_OK;
}

static md_err_t cp_record_fn(const md_intake_t *r, void *ctx, md_error_t *err)
{
    walk_t *w = ctx;
    md_err_t rc = apply(w, r, err);
    if (rc == MD_OK && r->kind == MD_INTAKE_CHECKPOINT)
        rc = mark(w, r, err);
    return rc;
}

md_err_t md_intake_check_checkpoints(md_txn_t *t, const md_cp_set_t *s, md_intake_cp_report_t *rep,
                                     md_error_t *err)
{
    walk_t w;
    memset(rep, 0, sizeof *rep);
    md_err_t rc = walk_begin(&w, t, err);
    w.cps = s;
    w.cprep = rep;
    w.matched = md_calloc(s->n + 1, sizeof *w.matched);
    if (rc == MD_OK)
        rc = md_txn_intake_scan(t, cp_record_fn, &w, err);
    rep->other = s->n - rep->compared;
    free(w.matched);
    free(w.st);
    return rc;
}
