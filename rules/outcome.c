/*
 * outcome.c - the stored outcome of a command (idempotency): what the engine
 * records for a decision, and what an appended event implies, so that the
 * outcomes can be recomputed from the log (marketctl verify) with the same
 * encoding the engine writes. Timer events record none; a command accepted
 * with no events (Tick) records MD_OUTCOME_UNLOGGED, the one outcome in no event.
 */
#include <stdio.h>
#include <string.h>

#include "md_rules.h"

/* "A", or "R" followed by the code name. */
static size_t encode(bool accepted, const char *code, size_t code_len, char out[MD_OUTCOME_MAX])
{
    out[0] = accepted ? 'A' : 'R';
    if (accepted)
        return 1;
    if (code_len > MD_OUTCOME_MAX - 1)
        code_len = MD_OUTCOME_MAX - 1;
    memcpy(out + 1, code, code_len);
    return 1 + code_len;
}

size_t md_outcome_of_decision(const md_decision_t *d, char out[MD_OUTCOME_MAX])
{
    if (d->malformed || (!d->accepted && d->retryable))
        return 0;
    if (d->accepted && d->n_events == 0) {
        memcpy(out, MD_OUTCOME_UNLOGGED, strlen(MD_OUTCOME_UNLOGGED));
        return strlen(MD_OUTCOME_UNLOGGED);
    }
    const char *code = d->accepted ? "" : d->code_name;
    return encode(d->accepted, code, strlen(code), out);
}

size_t md_outcome_of_event(const md_event_t *ev, char out[MD_OUTCOME_MAX])
{
    if (!ev->has_command_id)
        return 0; /* a MALFORMED rejection: no command_id, no outcome */
    if (strncmp(ev->command_id, MD_TIMER_CMDID_PREFIX, strlen(MD_TIMER_CMDID_PREFIX)) == 0)
        return 0; /* a timer's event: no command, no outcome (rules.md) */
    if (strcmp(ev->type, "CommandRejected") != 0)
        return encode(true, "", 0, out);
    bool retryable = false;
    const char *code = "";
    size_t len = 0;
    if (md_data_get_bool(ev->data, ev->data_len, "retryable", &retryable) == MD_OK && retryable)
        return 0;
    if (md_data_get_str(ev->data, ev->data_len, "code", &code, &len) != MD_OK)
        code = "", len = 0;
    return encode(false, code, len, out);
}

bool md_outcome_unlogged(const void *val, size_t len)
{
    return len == strlen(MD_OUTCOME_UNLOGGED) && memcmp(val, MD_OUTCOME_UNLOGGED, len) == 0;
}
