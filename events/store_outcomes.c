/*
 * store_outcomes.c - the outcome of each command, by command_id (md_store.h):
 * the engine's result bytes, opaque to the store.
 *
 * Invariants: a command_id is 1..MD_CMDID_MAX bytes; the store never reads
 * into the bytes, it only keeps them.
 */
#include <string.h>

#include "store_int.h"

md_err_t md_txn_outcome_get(md_txn_t *t, const char *command_id, const void **val, size_t *len,
                            md_error_t *err)
{
    MDB_val v;
    int rc = txn_get(t, MD_DB_OUTCOMES, command_id, strlen(command_id), &v);
    if (rc == MDB_NOTFOUND)
        return MD_ENOTFOUND;
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "get outcome");
    *val = v.mv_data;
    *len = v.mv_size;
    return MD_OK;
}

md_err_t md_txn_outcome_put(md_txn_t *t, const char *command_id, const void *val, size_t len,
                            md_error_t *err)
{
    size_t n = strlen(command_id);
    if (n == 0 || n > MD_CMDID_MAX)
        return md_error_set(err, MD_EINVAL, "command_id of %zu bytes", n);
    return md_store_err(txn_put(t, MD_DB_OUTCOMES, command_id, n, val, len, 0), err, "put outcome");
}
