/*
 * vocab.c - string lists of the enumerated vocabularies and the sanction
 * measure table (docs/rules-reference.md "Sanctions").
 */
#include <stdbool.h>
#include <string.h>

#include "state.h"
#include "vocab.h"

const char *const md__member_kinds[] = {"individual", "organization", NULL};
const char *const md__product_kinds[] = {"software", "image", "service", NULL};
const char *const md__rulings[] = {"refund_buyer", "release_provider", "split", NULL};
const char *const md__appeal_rulings[] = {"upheld", "overturned", NULL};
const char *const md__measures[] = {"notice",
                                    "remove_content",
                                    "mute",
                                    "restrict_ordering",
                                    "close_order",
                                    "freeze_balance",
                                    "delist_product",
                                    "close_store",
                                    "suspend_account",
                                    "close_account",
                                    NULL};
const char *const md__target_types[] = {"member", "review", "product", "order", "store", NULL};
const char *const md__scopes[] = {"identity", "transactions", "all", NULL};
const char *const md__bases[] = {"consent", "law",    "authority",       "violation",
                                 "service", "policy", "ip_infringement", NULL};

#define T(t) (1u << (t))

/* measure -> {targets it fits, reversible, member slot}; the one table that
 * says which measure applies to what (docs/rules-reference.md, "Sanctions"). */
const md__measure_info_t md__measure_info[MD__M_COUNT_] = {
    [MD__M_NOTICE] = {T(MD__T_MEMBER), false, -1},
    [MD__M_REMOVE_CONTENT] = {T(MD__T_REVIEW) | T(MD__T_PRODUCT), false, -1},
    [MD__M_MUTE] = {T(MD__T_MEMBER), true, MD__SLOT_MUTE},
    [MD__M_RESTRICT_ORDERING] = {T(MD__T_MEMBER), true, MD__SLOT_RESTRICT},
    [MD__M_CLOSE_ORDER] = {T(MD__T_ORDER), false, -1},
    [MD__M_FREEZE_BALANCE] = {T(MD__T_MEMBER), true, MD__SLOT_FREEZE},
    [MD__M_DELIST_PRODUCT] = {T(MD__T_PRODUCT), true, -1},
    [MD__M_CLOSE_STORE] = {T(MD__T_STORE), true, -1},
    [MD__M_SUSPEND_ACCOUNT] = {T(MD__T_MEMBER), true, MD__SLOT_SUSPEND},
    [MD__M_CLOSE_ACCOUNT] = {T(MD__T_MEMBER), false, -1},
};

int md__vocab_index(const char *const *list, const char *s)
{
    for (int i = 0; list[i] != NULL; i++) {
        if (strcmp(list[i], s) == 0)
            return i;
    }
    return -1;
}
