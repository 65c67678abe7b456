/*
 * codes.c - rejection codes and their clauses: docs/rules-reference.md "Codes and clauses",
 * one code, one clause, wherever it is raised.
 */
#include <string.h>

#include "md_rules.h"

typedef struct code_row {
    md_code_t code;
    const char *name;
    const char *clause; /* NULL: the table says null */
} code_row_t;

#define R(c, cl) [MD_CODE_##c] = {MD_CODE_##c, #c, cl}

static const code_row_t codes[MD_CODE_COUNT_] = {
    R(MALFORMED, NULL),
    R(UNKNOWN_COMMAND, NULL),
    R(INVALID_FIELD, NULL),
    R(VERSION_CONFLICT, NULL),
    R(NOT_FOUND, NULL),
    R(ALREADY_EXISTS, NULL),
    R(FORBIDDEN, NULL),
    R(STORE_STATE, NULL),
    R(CONSENT_STATE, NULL),
    R(ALREADY_OPERATOR, NULL),
    R(NOT_OPERATOR, NULL),
    R(LAST_OPERATOR, NULL),
    R(ALREADY_ACCEPTED, "1.2"),
    R(APPLICATION_PENDING, "1.2"),
    R(APPLICATION_NOT_PENDING, "1.2"),
    R(AGREEMENT_VERSION, "1.4"),
    R(CATEGORY_RETIRED, "2.1"),
    R(MEMBER_NOT_REGISTERED, "2.2"),
    R(ALREADY_PROVIDER, "2.4"),
    R(NOT_A_PROVIDER, "2.4"),
    R(PRODUCT_STATE, "3.1.1"),
    R(PRODUCT_UNAVAILABLE, "3.1.1"),
    R(ORDER_STATE, "3.1.3"),
    R(DUPLICATE_PAYMENT, "3.1.3"),
    R(COMPLAINT_EXISTS, "3.1.4"),
    R(COMPLAINT_STATE, "3.1.4"),
    R(APPEAL_EXISTS, "3.1.4"),
    R(INSUFFICIENT_FUNDS, "3.2.1"),
    R(ACCOUNT_SUSPENDED, "3.3.3"),
    R(ACCOUNT_CLOSED, "3.3.3"),
    R(STORE_CLOSED, "3.3.3"),
    R(SANCTIONED, "3.3.3"),
    R(ORDERING_RESTRICTED, "3.3.3"),
    R(PROVIDER_UNAVAILABLE, "3.3.3"),
    R(BALANCE_FROZEN, "3.3.3"),
    R(MEMBER_MUTED, "3.3.3"),
    R(SANCTION_ACTIVE, "3.3.3"),
    R(SANCTION_NOT_ACTIVE, "3.3.3"),
    R(SANCTION_IRREVERSIBLE, "3.3.3"),
    R(ORDER_IN_DISPUTE, "3.3.5"),
    R(SERVICE_UNAVAILABLE, "3.4.2"),
    R(PROHIBITED_CONTENT, "4.1.4"),
    R(PRODUCT_RESTRICTED, "4.2.3"),
    R(SELF_DEALING, "4.2.4"),
    R(REVIEW_EXISTS, "4.2.4"),
    R(VOUCHER_NOT_HELD, "4.2.5"),
    R(VOUCHER_USED, "4.2.5"),
    R(VOUCHER_EXPIRED, "4.2.5"),
    R(VOUCHER_NOT_TRANSFERABLE, "4.2.5"),
    R(ACCOUNT_NOT_TRANSFERABLE, "4.2.5"),
    R(PROMO_ALREADY_CLAIMED, "4.2.5"),
    R(OFF_PLATFORM_TRADE, "4.2.6"),
    R(CONSENT_REQUIRED, "6.2.1"),
    R(NO_VIOLATION_ON_RECORD, "6.2.3"),
    R(AFTER_SALES_CLOSED, "3.2.3"),
    R(APPEAL_WINDOW_CLOSED, "3.1.4"),
    R(APPEAL_STATE, "3.1.4"),
};

const char *md_code_name(md_code_t code)
{
    if ((int)code < 0 || code >= MD_CODE_COUNT_ || codes[code].name == NULL)
        return "";
    return codes[code].name;
}

const char *md_code_clause(md_code_t code)
{
    if ((int)code < 0 || code >= MD_CODE_COUNT_)
        return NULL;
    return codes[code].clause;
}

md_code_t md_code_find(const char *name)
{
    for (int i = 0; i < MD_CODE_COUNT_; i++) {
        if (codes[i].name != NULL && strcmp(codes[i].name, name) == 0)
            return (md_code_t)i;
    }
    return MD_CODE_NONE;
}

bool md_code_retryable(md_code_t code)
{
    return code == MD_CODE_SERVICE_UNAVAILABLE;
}
