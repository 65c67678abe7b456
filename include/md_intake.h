/*
 * md_intake.h - the consumed offsets checked against the intake records the
 * consumer wrote with each batch (md_store.h, "intake records"), and against
 * the offsets this store signed in its checkpoints (docs/verify.md, "Offsets").
 *
 * md_intake_verify walks the records in order and proves, for the store on its
 * own, that the intake is contiguous: each batch of a partition begins at the
 * next offset the previous one (or the baseline) stored, unless the consumer
 * observed a gap (its first message was above the offset it asked for: an
 * offset the broker had no message at, recorded as such); that no record is
 * missing; and that the stored offsets are the last records' next offsets.
 * A stored offset moved forward therefore shows as an unexplained gap (the
 * daemon ran on from it) or as a mismatch (it did not yet), naming the topic,
 * partition and offsets.
 *
 * md_intake_check_checkpoints binds the records to the external witness: for
 * every checkpoint mark (a checkpoint this store queued), the signed
 * checkpoint of that replica and seq in the set must carry exactly the offsets
 * of the intake state at the mark. Checkpoints of other stores (other
 * replicas batch differently) are counted, not compared.
 *
 * What neither proves: the records are local, so whoever can write the store
 * can rewrite them consistently with a moved offset; only the checkpoints are
 * external (and only their seqs are bound).
 *
 * Errors: MD_ECORRUPT names the first failure (also the records that do not
 * decode); MD_ESTORE. Threads: a call uses only its read transaction.
 */
#ifndef MD_INTAKE_H
#define MD_INTAKE_H

#include <stdbool.h>
#include <stdint.h>

#include "md_checkpoint.h"
#include "md_error.h"
#include "md_store.h"

typedef struct md_intake_report {
    bool absent;             /* no intake record: a store written before they existed */
    uint64_t batches, marks; /* batch records, checkpoint marks */
    uint64_t messages;       /* messages the batch records count */
    uint64_t gaps;           /* observed gaps (accepted) */
    uint64_t gap_offsets;    /* offsets they skip */
    uint64_t resets;         /* observed resets: the first message below the offset asked for */
    uint64_t first_seq;      /* the head when the first batch was recorded */
    uint64_t partitions;     /* partitions covered (baseline and batches) */
    uint64_t uncovered;      /* stored offsets of topics no record names (not checked) */
} md_intake_report_t;

/**
 * @brief Checks the intake records of @p t and the stored offsets against them.
 * @param rep filled in (also on failure).
 * @returns MD_OK (also with rep->absent), MD_ECORRUPT naming the first
 *          failure, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_intake_verify(md_txn_t *t, md_intake_report_t *rep, md_error_t *err);

typedef struct md_intake_cp_report {
    uint64_t compared;        /* checkpoints compared with the intake state at their mark */
    uint64_t unmatched_marks; /* marks whose checkpoint is not in the set */
    uint64_t other;           /* checkpoints of the set this store did not queue */
} md_intake_cp_report_t;

/**
 * @brief Compares the offsets of every checkpoint of @p s that this store
 * queued (an intake mark of its replica and seq) with the intake state there.
 * @returns MD_OK, MD_ECORRUPT naming the first checkpoint (by mark order),
 *          topic, partition and both offsets, or a record that does not
 *          decode, MD_ESTORE.
 */
MD_MUST_CHECK
md_err_t md_intake_check_checkpoints(md_txn_t *t, const md_cp_set_t *s, md_intake_cp_report_t *rep,
                                     md_error_t *err);

#endif
