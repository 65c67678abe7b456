/*
 * contract.c - what each command type can answer and append (md_rules.h "the
 * contract of each command type"): the generic codes its row in table.c
 * implies, and the contract table below, beside the rules table and keyed the
 * same way, with what the command's own rule (step 7, rules/<area>.c) can
 * answer and append. docs/commands.md is printed from here (md-docgen), and
 * tests/test_rules.c checks both ways that the cases produce exactly this: a
 * rule that gains a code or an event fails there until its row here lists it.
 */
#include <string.h>

#include "internal.h"

typedef struct contract_row {
    const md_code_t *codes;    /* step 7, MD_CODE_NONE-terminated */
    const char *const *events; /* NULL-terminated, in the order appended */
    const char *note;          /* for docs/commands.md, or NULL */
} contract_row_t;

#define C(...)                                                                                     \
    (const md_code_t[])                                                                            \
    {                                                                                              \
        __VA_ARGS__, MD_CODE_NONE                                                                  \
    }
#define E(...)                                                                                     \
    (const char *const[])                                                                          \
    {                                                                                              \
        __VA_ARGS__, NULL                                                                          \
    }
#define NO_CODES C(MD_CODE_NONE)
#define NO_EVENTS E(NULL)
#define K(t, codes, events) [MD_CMD_##t] = {codes, events, NULL}
#define KN(t, codes, events, note) [MD_CMD_##t] = {codes, events, note}
#define X_(c) MD_CODE_##c

/* Codes of step 7 only: steps 1-6 come from the row (md_rules_codes_of). An
 * INVALID_FIELD a rule answers (a balance overflow, a split too large, too many
 * products to delist) is one of MD_ANY_CODES, so not repeated here. */
static const contract_row_t contract[MD_CMD_COUNT_] = {
    K(REGISTER_MEMBER, NO_CODES, E("MemberRegistered")),
    K(PUBLISH_AGREEMENT, C(X_(AGREEMENT_VERSION)), E("AgreementPublished")),
    K(ACCEPT_AGREEMENT, C(X_(AGREEMENT_VERSION), X_(ALREADY_ACCEPTED)), E("AgreementAccepted")),
    K(DECLINE_AGREEMENT, C(X_(AGREEMENT_VERSION), X_(ALREADY_ACCEPTED)), E("AgreementDeclined")),
    KN(TRANSFER_ACCOUNT, C(X_(ACCOUNT_NOT_TRANSFERABLE)), NO_EVENTS,
       "always rejected: an account is not transferable (4.2.5)"),
    K(GRANT_OPERATOR, C(X_(ALREADY_OPERATOR)), E("OperatorGranted")),
    K(REVOKE_OPERATOR, C(X_(NOT_OPERATOR), X_(LAST_OPERATOR)), E("OperatorRevoked")),
    K(APPLY_AS_PROVIDER, C(X_(ALREADY_PROVIDER), X_(APPLICATION_PENDING)), E("ProviderApplied")),
    K(APPROVE_PROVIDER, C(X_(APPLICATION_NOT_PENDING)), E("ProviderApproved")),
    K(REJECT_PROVIDER, C(X_(APPLICATION_NOT_PENDING)), E("ProviderRejected")),
    K(DEFINE_CATEGORY, NO_CODES, E("CategoryDefined")),
    K(RETIRE_CATEGORY, C(X_(CATEGORY_RETIRED)), E("CategoryRetired")),
    K(GRANT_LICENSE, NO_CODES, E("LicenseGranted")),
    K(REVOKE_LICENSE, NO_CODES, E("LicenseRevoked", "ProductDelisted")),
    K(PROHIBIT_TERM, NO_CODES, E("TermProhibited")),
    K(ALLOW_TERM, NO_CODES, E("TermAllowed")),
    K(OPEN_STORE, C(X_(NOT_A_PROVIDER)), E("StoreOpened")),
    K(CLOSE_STORE, C(X_(STORE_CLOSED)), E("StoreClosed")),
    K(REOPEN_STORE, C(X_(SANCTIONED), X_(STORE_STATE)), E("StoreReopened")),
    K(PUBLISH_PRODUCT,
      C(X_(STORE_CLOSED), X_(CATEGORY_RETIRED), X_(PRODUCT_RESTRICTED), X_(PROHIBITED_CONTENT),
        X_(OFF_PLATFORM_TRADE)),
      E("ProductPublished")),
    K(REVIEW_PRODUCT, C(X_(PRODUCT_STATE)), E("ProductApproved", "ProductDenied")),
    K(CHANGE_PRICE, C(X_(PRODUCT_STATE)), E("PriceChanged")),
    K(DELIST_PRODUCT, C(X_(PRODUCT_STATE)), E("ProductDelisted")),
    K(RELIST_PRODUCT,
      C(X_(SANCTIONED), X_(PRODUCT_STATE), X_(STORE_CLOSED), X_(CATEGORY_RETIRED),
        X_(PRODUCT_RESTRICTED)),
      E("ProductRelisted")),
    K(DEPOSIT_FUNDS, C(X_(DUPLICATE_PAYMENT)), E("FundsDeposited")),
    K(WITHDRAW_FUNDS, C(X_(BALANCE_FROZEN), X_(INSUFFICIENT_FUNDS)), E("FundsWithdrawn")),
    /* NOT_FOUND: data.voucher_id, looked up by the rule. */
    K(PLACE_ORDER,
      C(X_(SELF_DEALING), X_(ORDERING_RESTRICTED), X_(PRODUCT_UNAVAILABLE), X_(STORE_CLOSED),
        X_(PROVIDER_UNAVAILABLE), X_(NOT_FOUND), X_(VOUCHER_NOT_HELD), X_(VOUCHER_USED),
        X_(VOUCHER_EXPIRED)),
      E("OrderPlaced", "VoucherRedeemed", "PersonalDataDisclosed")),
    K(PAY_ORDER, C(X_(ORDER_STATE), X_(BALANCE_FROZEN), X_(INSUFFICIENT_FUNDS)), E("OrderPaid")),
    K(DELIVER_ORDER, C(X_(ORDER_STATE)), E("OrderDelivered")),
    K(CONFIRM_ORDER, C(X_(ORDER_STATE), X_(ORDER_IN_DISPUTE)), E("OrderCompleted")),
    K(CANCEL_ORDER, C(X_(ORDER_STATE), X_(ORDER_IN_DISPUTE)),
      E("OrderCancelled", "VoucherRestored")),
    KN(ISSUE_VOUCHER, C(X_(ACCOUNT_CLOSED), X_(PROMO_ALREADY_CLAIMED)), E("VoucherIssued"),
       "`ACCOUNT_CLOSED` also when the account of `data.member_id` is closed"),
    KN(TRANSFER_VOUCHER, C(X_(VOUCHER_NOT_TRANSFERABLE)), NO_EVENTS,
       "always rejected: a voucher is not transferable (4.2.5)"),
    K(POST_REVIEW,
      C(X_(MEMBER_MUTED), X_(ORDER_STATE), X_(REVIEW_EXISTS), X_(PROHIBITED_CONTENT),
        X_(OFF_PLATFORM_TRADE)),
      E("ReviewPosted")),
    K(SEND_MESSAGE, C(X_(MEMBER_MUTED), X_(PROHIBITED_CONTENT), X_(OFF_PLATFORM_TRADE)),
      E("MessageSent")),
    K(FILE_COMPLAINT, C(X_(ORDER_STATE), X_(AFTER_SALES_CLOSED), X_(COMPLAINT_EXISTS)),
      E("ComplaintFiled")),
    K(APPLY_ARBITRATION, C(X_(COMPLAINT_STATE)), E("ArbitrationRequested")),
    K(SUBMIT_DEFENSE, C(X_(COMPLAINT_STATE)), E("DefenseSubmitted")),
    K(WITHDRAW_COMPLAINT, C(X_(COMPLAINT_STATE)), E("ComplaintWithdrawn")),
    K(RULE_ON_DISPUTE, C(X_(COMPLAINT_STATE)), E("DisputeRuled", "VoucherRestored")),
    K(APPLY_SANCTION, C(X_(SANCTION_ACTIVE), X_(ORDER_STATE)),
      E("SanctionApplied", "VoucherRestored")),
    K(LIFT_SANCTION, C(X_(SANCTION_IRREVERSIBLE), X_(SANCTION_NOT_ACTIVE)), E("SanctionLifted")),
    K(APPEAL_SANCTION, C(X_(APPEAL_EXISTS), X_(APPEAL_WINDOW_CLOSED)), E("SanctionAppealed")),
    K(RULE_ON_APPEAL, C(X_(APPEAL_STATE)), E("AppealRuled", "SanctionLifted")),
    K(GRANT_CONSENT, NO_CODES, E("ConsentGranted")),
    K(REVOKE_CONSENT, C(X_(CONSENT_STATE)), E("ConsentRevoked")),
    K(DISCLOSE_RECORDS, C(X_(CONSENT_REQUIRED), X_(NO_VIOLATION_ON_RECORD)), E("RecordsDisclosed")),
    K(SCHEDULE_MAINTENANCE, NO_CODES, E("MaintenanceScheduled")),
    K(CANCEL_MAINTENANCE, NO_CODES, E("MaintenanceCancelled")),
    K(SET_POLICY, NO_CODES, E("PolicySet")),
    KN(TICK, NO_CODES, NO_EVENTS,
       "accepted with no events of its own: it fires the timers due at its time"),
};

#define ANY_ENUM_(c) MD_CODE_##c,
static const md_code_t any_codes[] = {MD_ANY_CODES(ANY_ENUM_)};
#undef ANY_ENUM_

bool md_rules_code_any(md_code_t code)
{
    for (size_t i = 0; i < sizeof any_codes / sizeof any_codes[0]; i++) {
        if (any_codes[i] == code)
            return true;
    }
    return false;
}

static size_t add(md_code_t *out, size_t n, md_code_t code)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i] == code)
            return n;
    }
    out[n] = code;
    return n + 1;
}

/* Whether the row has a reference that must exist (creates false) or must not. */
static bool has_ref(const md__row_t *row, bool creates)
{
    for (size_t i = 0; i < 3 && row->refs[i].field != NULL; i++) {
        if (row->refs[i].creates == creates)
            return true;
    }
    return false;
}

size_t md_rules_codes_of(md_cmd_type_t type, md_code_t out[MD_CODE_COUNT_])
{
    if ((int)type < 0 || type >= MD_CMD_COUNT_)
        return 0;
    const md__row_t *row = md__row_of(type);
    size_t n = 0;
    /* the steps of decide.c, in their order */
    n = add(out, n, MD_CODE_INVALID_FIELD);
    if (!(row->flags & MD__F_UNREGISTERED))
        n = add(out, n, MD_CODE_MEMBER_NOT_REGISTERED);
    if (!(row->flags & MD__F_WHILE_CLOSED))
        n = add(out, n, MD_CODE_ACCOUNT_CLOSED);
    if (!(row->flags & MD__F_WHILE_SUSPENDED))
        n = add(out, n, MD_CODE_ACCOUNT_SUSPENDED);
    n = add(out, n, MD_CODE_SERVICE_UNAVAILABLE);
    if (has_ref(row, false) || row->find != NULL)
        n = add(out, n, MD_CODE_NOT_FOUND);
    if (has_ref(row, true) || row->dup != NULL)
        n = add(out, n, MD_CODE_ALREADY_EXISTS);
    if (row->auth != MD__A_MEMBER)
        n = add(out, n, MD_CODE_FORBIDDEN);
    n = add(out, n, MD_CODE_VERSION_CONFLICT);
    for (const md_code_t *c = contract[type].codes; *c != MD_CODE_NONE; c++)
        n = add(out, n, *c);
    return n;
}

size_t md_rules_events_of(md_cmd_type_t type, const char *out[MD_CONTRACT_EVENTS_MAX])
{
    if ((int)type < 0 || type >= MD_CMD_COUNT_)
        return 0;
    const md__row_t *row = md__row_of(type);
    const char *const *ev = contract[type].events;
    size_t n = 0;
    /* The implicit acceptance (decide.c) goes first in any accepted command of
     * a member that may be sent by a non-operator and has events of its own
     * (a command never accepted, or Tick, which only operators send, has none). */
    if (!(row->flags & MD__F_NO_IMPLICIT) && row->auth != MD__A_OPERATOR && ev[0] != NULL)
        out[n++] = "AgreementAccepted";
    for (; *ev != NULL && n < MD_CONTRACT_EVENTS_MAX; ev++)
        out[n++] = *ev;
    return n;
}

const char *md_rules_contract_note(md_cmd_type_t type)
{
    return (int)type < 0 || type >= MD_CMD_COUNT_ ? NULL : contract[type].note;
}
