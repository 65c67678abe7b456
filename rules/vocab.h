/*
 * vocab.h - the enumerated vocabularies of commands and records (private to
 * rules/). Each C enum below is the index into the string list of the same
 * name; the lists are what the decoder accepts and what events carry.
 */
#ifndef MD_RULES_VOCAB_H
#define MD_RULES_VOCAB_H

#include <stdbool.h>

enum md__member_kind { MD__KIND_INDIVIDUAL, MD__KIND_ORGANIZATION };
extern const char *const md__member_kinds[];

enum md__product_kind { MD__PK_SOFTWARE, MD__PK_IMAGE, MD__PK_SERVICE };
extern const char *const md__product_kinds[];

enum md__ruling { MD__RULE_REFUND_BUYER, MD__RULE_RELEASE_PROVIDER, MD__RULE_SPLIT };
extern const char *const md__rulings[];

enum md__appeal_ruling { MD__APPEAL_UPHELD, MD__APPEAL_OVERTURNED };
extern const char *const md__appeal_rulings[];

enum md__measure {
    MD__M_NOTICE,
    MD__M_REMOVE_CONTENT,
    MD__M_MUTE,
    MD__M_RESTRICT_ORDERING,
    MD__M_CLOSE_ORDER,
    MD__M_FREEZE_BALANCE,
    MD__M_DELIST_PRODUCT,
    MD__M_CLOSE_STORE,
    MD__M_SUSPEND_ACCOUNT,
    MD__M_CLOSE_ACCOUNT,
    MD__M_COUNT_
};
extern const char *const md__measures[];

enum md__target_type { MD__T_MEMBER, MD__T_REVIEW, MD__T_PRODUCT, MD__T_ORDER, MD__T_STORE };
extern const char *const md__target_types[];

enum md__scope { MD__SCOPE_IDENTITY, MD__SCOPE_TRANSACTIONS, MD__SCOPE_ALL };
extern const char *const md__scopes[];

enum md__basis {
    MD__B_CONSENT,
    MD__B_LAW,
    MD__B_AUTHORITY,
    MD__B_VIOLATION,
    MD__B_SERVICE,
    MD__B_POLICY,
    MD__B_IP_INFRINGEMENT
};
extern const char *const md__bases[];

/* What each sanction measure is (docs/rules-reference.md "Sanctions" table). */
typedef struct md__measure_info {
    unsigned targets; /* bit (1u << md__target_type) per allowed target */
    bool reversible;  /* may carry expires_at and be lifted */
    int member_slot;  /* index into md__member_t.slot, or -1 */
} md__measure_info_t;

extern const md__measure_info_t md__measure_info[MD__M_COUNT_];

/** @brief Index of @p s in a NULL-terminated list, or -1. */
int md__vocab_index(const char *const *list, const char *s);

#endif
