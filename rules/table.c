/*
 * table.c - the command rules table: for every command, who may issue it,
 * which referenced ids must exist or must not (step 4), extra step-4 checks,
 * and the rule function of step 7 (docs/rules-reference.md "Commands", "Order of checks").
 */
#include <stddef.h>

#include "internal.h"

/* Reference kinds: key prefix (state.h), context slot, word for messages. */
typedef struct ref_info {
    const char *prefix;
    size_t off, size;
    const char *word;
} ref_info_t;

#define RI(k, p, slot, w) [k] = {p, offsetof(md__ctx_t, slot), sizeof(((md__ctx_t *)0)->slot), w}

static const ref_info_t ref_info[MD__R_COUNT_] = {
    RI(MD__R_MEMBER, "m:", member, "member"),
    RI(MD__R_CATEGORY, "c:", category, "category"),
    RI(MD__R_STORE, "s:", store, "store"),
    RI(MD__R_PRODUCT, "P:", product, "product"),
    RI(MD__R_ORDER, "o:", order, "order"),
    RI(MD__R_VOUCHER, "v:", voucher, "voucher"),
    RI(MD__R_REVIEW, "r:", review, "review"),
    RI(MD__R_COMPLAINT, "q:", complaint, "complaint"),
    RI(MD__R_SANCTION, "x:", sanction, "sanction"),
    RI(MD__R_CONSENT, "k:", consent, "consent"),
    RI(MD__R_WINDOW, "w:", window, "maintenance window"),
    RI(MD__R_MESSAGE, "g:", flag, "message"),
    RI(MD__R_DISCLOSURE, "d:", flag, "disclosure"),
};

const char *md__ref_prefix(md__ref_kind_t kind)
{
    return ref_info[kind].prefix;
}

void *md__ref_slot(md__ctx_t *c, md__ref_kind_t kind, size_t *size)
{
    *size = ref_info[kind].size;
    return (char *)c + ref_info[kind].off;
}

const char *md__ref_word(md__ref_kind_t kind)
{
    return ref_info[kind].word;
}

/* Shorthands for the table. */
#define OP MD__A_OPERATOR
#define ANY MD__A_MEMBER
#define NEW(f, k)                                                                                  \
    {                                                                                              \
        f, MD__R_##k, true                                                                         \
    }
#define REF(f, k)                                                                                  \
    {                                                                                              \
        f, MD__R_##k, false                                                                        \
    }
#define ROW(t, fl, au, rule, ...)                                                                  \
    [MD_CMD_##t] = {MD_CMD_##t, fl, au, {__VA_ARGS__}, NULL, NULL, md__rule_##rule}
#define ROWH(t, fl, au, fi, du, rule, ...)                                                         \
    [MD_CMD_##t] = {MD_CMD_##t, fl, au, {__VA_ARGS__}, fi, du, md__rule_##rule}

static const md__row_t rows[MD_CMD_COUNT_] = {
    ROW(REGISTER_MEMBER, MD__F_UNREGISTERED | MD__F_NO_IMPLICIT, MD__A_SELF, register_member,
        NEW("member_id", MEMBER)),
    ROW(PUBLISH_AGREEMENT, 0, OP, publish_agreement, {0}),
    ROW(ACCEPT_AGREEMENT, MD__F_NO_IMPLICIT, ANY, accept_agreement, {0}),
    ROW(DECLINE_AGREEMENT, MD__F_NO_IMPLICIT, ANY, decline_agreement, {0}),
    ROW(TRANSFER_ACCOUNT, 0, ANY, transfer_account, REF("to", MEMBER)),
    ROW(GRANT_OPERATOR, 0, OP, grant_operator, REF("member_id", MEMBER)),
    ROW(REVOKE_OPERATOR, 0, OP, revoke_operator, REF("member_id", MEMBER)),
    ROW(APPLY_AS_PROVIDER, 0, ANY, apply_as_provider, {0}),
    ROW(APPROVE_PROVIDER, 0, OP, approve_provider, REF("member_id", MEMBER)),
    ROW(REJECT_PROVIDER, 0, OP, reject_provider, REF("member_id", MEMBER)),
    ROW(DEFINE_CATEGORY, 0, OP, define_category, NEW("category_id", CATEGORY)),
    ROW(RETIRE_CATEGORY, 0, OP, retire_category, REF("category_id", CATEGORY)),
    ROWH(GRANT_LICENSE, 0, OP, NULL, md__dup_license, grant_license, REF("member_id", MEMBER),
         REF("category_id", CATEGORY)),
    ROWH(REVOKE_LICENSE, 0, OP, md__find_license, NULL, revoke_license, REF("member_id", MEMBER),
         REF("category_id", CATEGORY)),
    ROWH(PROHIBIT_TERM, 0, OP, NULL, md__dup_term, prohibit_term, {0}),
    ROWH(ALLOW_TERM, 0, OP, md__find_term, NULL, allow_term, {0}),
    ROW(OPEN_STORE, 0, ANY, open_store, NEW("store_id", STORE)),
    ROW(CLOSE_STORE, 0, MD__A_STORE_OWNER, close_store, REF("store_id", STORE)),
    ROW(REOPEN_STORE, 0, MD__A_STORE_OWNER, reopen_store, REF("store_id", STORE)),
    ROW(PUBLISH_PRODUCT, 0, MD__A_STORE_OWNER, publish_product, NEW("product_id", PRODUCT),
        REF("store_id", STORE), REF("category_id", CATEGORY)),
    ROW(REVIEW_PRODUCT, 0, OP, review_product, REF("product_id", PRODUCT)),
    ROW(CHANGE_PRICE, 0, MD__A_PRODUCT_OWNER, change_price, REF("product_id", PRODUCT)),
    ROW(DELIST_PRODUCT, 0, MD__A_PRODUCT_OWNER, delist_product, REF("product_id", PRODUCT)),
    ROW(RELIST_PRODUCT, 0, MD__A_PRODUCT_OWNER, relist_product, REF("product_id", PRODUCT)),
    ROW(DEPOSIT_FUNDS, 0, ANY, deposit_funds, {0}),
    ROW(WITHDRAW_FUNDS, 0, ANY, withdraw_funds, {0}),
    /* voucher_id is looked up by the rule, where PlaceOrder's row lists it. */
    ROW(PLACE_ORDER, 0, ANY, place_order, NEW("order_id", ORDER), REF("product_id", PRODUCT)),
    ROW(PAY_ORDER, 0, MD__A_BUYER, pay_order, REF("order_id", ORDER)),
    ROW(DELIVER_ORDER, 0, MD__A_PROVIDER, deliver_order, REF("order_id", ORDER)),
    ROW(CONFIRM_ORDER, 0, MD__A_BUYER, confirm_order, REF("order_id", ORDER)),
    ROW(CANCEL_ORDER, 0, MD__A_PARTY, cancel_order, REF("order_id", ORDER)),
    ROW(ISSUE_VOUCHER, 0, OP, issue_voucher, NEW("voucher_id", VOUCHER), REF("member_id", MEMBER)),
    ROW(TRANSFER_VOUCHER, 0, MD__A_HOLDER, transfer_voucher, REF("voucher_id", VOUCHER),
        REF("to", MEMBER)),
    ROW(POST_REVIEW, 0, MD__A_BUYER, post_review, NEW("review_id", REVIEW), REF("order_id", ORDER)),
    ROW(SEND_MESSAGE, 0, ANY, send_message, NEW("message_id", MESSAGE), REF("to", MEMBER),
        REF("order_id", ORDER)),
    ROW(FILE_COMPLAINT, 0, MD__A_PARTY, file_complaint, NEW("complaint_id", COMPLAINT),
        REF("order_id", ORDER)),
    ROW(APPLY_ARBITRATION, 0, MD__A_COMPLAINT_PARTY, apply_arbitration,
        REF("complaint_id", COMPLAINT)),
    ROW(SUBMIT_DEFENSE, MD__F_WHILE_SUSPENDED, MD__A_RESPONDENT, submit_defense,
        REF("complaint_id", COMPLAINT)),
    ROW(WITHDRAW_COMPLAINT, 0, MD__A_COMPLAINANT, withdraw_complaint,
        REF("complaint_id", COMPLAINT)),
    ROW(RULE_ON_DISPUTE, 0, OP, rule_on_dispute, REF("complaint_id", COMPLAINT)),
    ROWH(APPLY_SANCTION, 0, OP, md__find_sanction_target, NULL, apply_sanction,
         NEW("sanction_id", SANCTION)),
    ROW(LIFT_SANCTION, 0, OP, lift_sanction, REF("sanction_id", SANCTION)),
    ROW(APPEAL_SANCTION, MD__F_WHILE_SUSPENDED | MD__F_WHILE_CLOSED, MD__A_SANCTIONED,
        appeal_sanction, REF("sanction_id", SANCTION)),
    ROW(RULE_ON_APPEAL, 0, OP, rule_on_appeal, REF("sanction_id", SANCTION)),
    ROW(GRANT_CONSENT, 0, ANY, grant_consent, NEW("consent_id", CONSENT)),
    ROW(REVOKE_CONSENT, 0, MD__A_CONSENT_OWNER, revoke_consent, REF("consent_id", CONSENT)),
    ROW(DISCLOSE_RECORDS, 0, OP, disclose_records, NEW("disclosure_id", DISCLOSURE),
        REF("subject", MEMBER)),
    ROW(SCHEDULE_MAINTENANCE, 0, OP, schedule_maintenance, NEW("window_id", WINDOW)),
    ROWH(CANCEL_MAINTENANCE, 0, OP, md__find_window, NULL, cancel_maintenance,
         REF("window_id", WINDOW)),
    ROW(SET_POLICY, 0, OP, set_policy, {0}),
    ROW(TICK, 0, OP, tick, {0}),
};

const md__row_t *md__row_of(md_cmd_type_t type)
{
    return &rows[type];
}
