/*
 * epoch.h - private to projections/: secondary indexes whose keys lead with
 * an epoch of the event log, so that one batch's inserts land in the pages of
 * the current epoch instead of one random page per indexed value.
 *
 *   key = head(hlen) epoch(4 BE) id NUL rest...     epoch = seq >> PJ_EPOCH_BITS
 *
 * head is a fixed prefix (a kind byte, or nothing); rest begins with the seq
 * (8 BE) so an id's keys come out in seq order within an epoch. LMDB rewrites
 * every page a write transaction touches (copy-on-write), so an index keyed by
 * id then seq, with thousands of ids, costs about one page per insert; led by
 * the epoch it costs the few pages of the epoch's tail. A listing for one id
 * reads epoch by epoch: one cursor seek per epoch that holds any key.
 */
#ifndef MD_PROJ_EPOCH_H
#define MD_PROJ_EPOCH_H

#include "pj.h"

#define PJ_EPOCH_BITS 13 /* 8,192 events per epoch */

/* head, epoch of @p seq, id NUL: append the rest with md__pj_key_*. */
void md__pj_epoch_key(pj_key_t *k, const void *head, size_t hlen, uint64_t seq, const char *id);

/*
 * Lists the keys of @p id (under @p head) in key order, epoch by epoch, one
 * page at a time like md__pj_scan: @p fn sees every key of the id, page->next
 * receives the cursor (hex of the last emitted key) when more may follow, and
 * a cursor of another head or id is refused with MD_EINVAL.
 */
md_err_t md__pj_epoch_scan(MDB_txn *txn, MDB_dbi dbi, const void *head, size_t hlen, const char *id,
                           md_proj_page_t *page, pj_visit_fn fn, void *ctx, md_error_t *err);

#endif
