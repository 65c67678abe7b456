/*
 * command.c - the command schema table (docs/rules-reference.md "Commands"): for each
 * command its target stream, the field naming the target, and its data fields
 * in declaration order with type, limits and defaults. Plus the step-1 checks
 * that look at several fields at once, and the accessors of md_command.h.
 */
#include <stdio.h>
#include <string.h>

#include "md_command.h"
#include "text.h"
#include "vocab.h"


/* Field constructors: required (R) or optional (O) unless a default is given. */
#define ID_R(n)                                                                                    \
    {                                                                                              \
        .name = n, .type = MD_FT_ID, .required = true                                              \
    }
#define ID_O(n)                                                                                    \
    {                                                                                              \
        .name = n, .type = MD_FT_ID                                                                \
    }
#define TEXT_R(n, mx)                                                                              \
    {                                                                                              \
        .name = n, .type = MD_FT_TEXT, .required = true, .min = 1, .max = mx                       \
    }
#define TEXT_O(n, mx)                                                                              \
    {                                                                                              \
        .name = n, .type = MD_FT_TEXT, .min = 1, .max = mx                                         \
    }
#define INT_R(n, lo, hi)                                                                           \
    {                                                                                              \
        .name = n, .type = MD_FT_INT, .required = true, .min = lo, .max = hi                       \
    }
#define INT_O(n, lo, hi)                                                                           \
    {                                                                                              \
        .name = n, .type = MD_FT_INT, .min = lo, .max = hi                                         \
    }
#define INT_D(n, lo, hi, d)                                                                        \
    {                                                                                              \
        .name = n, .type = MD_FT_INT, .min = lo, .max = hi, .has_default = true, .def = d          \
    }
#define BOOL_R(n)                                                                                  \
    {                                                                                              \
        .name = n, .type = MD_FT_BOOL, .required = true                                            \
    }
#define BOOL_D(n, d)                                                                               \
    {                                                                                              \
        .name = n, .type = MD_FT_BOOL, .has_default = true, .def = d                               \
    }
#define HEX_R(n)                                                                                   \
    {                                                                                              \
        .name = n, .type = MD_FT_HEX64, .required = true                                           \
    }
#define TIME_R(n)                                                                                  \
    {                                                                                              \
        .name = n, .type = MD_FT_TIME, .required = true                                            \
    }
#define TIME_O(n)                                                                                  \
    {                                                                                              \
        .name = n, .type = MD_FT_TIME                                                              \
    }
#define ENUM_R(n, l)                                                                               \
    {                                                                                              \
        .name = n, .type = MD_FT_ENUM, .required = true, .enums = l                                \
    }
#define CLAUSE_R(n)                                                                                \
    {                                                                                              \
        .name = n, .type = MD_FT_TEXT, .required = true, .min = 1, .max = 8,                       \
        .pattern = md__clause_ok                                                                   \
    }

#define MONEY(n) INT_R(n, 1, MD_MONEY_MAX)
#define VERSION INT_R("version", 1, INT64_MAX)
#define DAYS(n) INT_R(n, 0, 365)
#define EVIDENCE_O(n)                                                                              \
    {                                                                                              \
        .name = n, .type = MD_FT_EVIDENCE                                                          \
    }

static bool not_system(const char *s, size_t len)
{
    return !(len == 6 && memcmp(s, "system", 6) == 0);
}

static const md_fspec_t f_register_member[] = {
    {.name = "member_id", .type = MD_FT_ID, .required = true, .pattern = not_system},
    ENUM_R("kind", md__member_kinds),
    TEXT_R("name", 200),
    HEX_R("identity_hash"),
    TEXT_O("email", 200),
    TEXT_O("phone", 32)};
static const md_fspec_t f_publish_agreement[] = {VERSION, TEXT_R("title", 200), HEX_R("digest")};
static const md_fspec_t f_version[] = {VERSION};
static const md_fspec_t f_to[] = {ID_R("to")};
static const md_fspec_t f_member[] = {ID_R("member_id")};
static const md_fspec_t f_apply_provider[] = {TEXT_R("business_name", 200)};
static const md_fspec_t f_reject_provider[] = {ID_R("member_id"), TEXT_R("reason", 500)};
static const md_fspec_t f_define_category[] = {ID_R("category_id"), TEXT_R("name", 100),
                                               BOOL_D("restricted", 0),
                                               BOOL_D("requires_review", 0)};
static const md_fspec_t f_category[] = {ID_R("category_id")};
static const md_fspec_t f_license[] = {ID_R("member_id"), ID_R("category_id")};
static const md_fspec_t f_term[] = {TEXT_R("term", 100)};
static const md_fspec_t f_open_store[] = {ID_R("store_id"), TEXT_R("name", 100)};
static const md_fspec_t f_store[] = {ID_R("store_id")};
static const md_fspec_t f_publish_product[] = {
    ID_R("product_id"),   ID_R("store_id"), ID_R("category_id"), ENUM_R("kind", md__product_kinds),
    TEXT_R("title", 200), MONEY("price")};
static const md_fspec_t f_review_product[] = {ID_R("product_id"), BOOL_R("approve"),
                                              TEXT_O("reason", 500)};
static const md_fspec_t f_change_price[] = {ID_R("product_id"), MONEY("price")};
static const md_fspec_t f_product[] = {ID_R("product_id")};
static const md_fspec_t f_deposit[] = {MONEY("amount"), TEXT_R("payment_ref", 128)};
static const md_fspec_t f_withdraw[] = {MONEY("amount")};
static const md_fspec_t f_place_order[] = {ID_R("order_id"), ID_R("product_id"),
                                           INT_D("quantity", 1, 1000, 1), ID_O("voucher_id")};
static const md_fspec_t f_order[] = {ID_R("order_id")};
static const md_fspec_t f_deliver[] = {ID_R("order_id"), TEXT_O("note", 500)};
static const md_fspec_t f_cancel[] = {ID_R("order_id"), TEXT_O("reason", 500)};
static const md_fspec_t f_issue_voucher[] = {ID_R("voucher_id"), ID_R("member_id"),
                                             INT_R("value", 1, 1000000000), TIME_R("expires_at"),
                                             BOOL_D("new_member_promo", 0)};
static const md_fspec_t f_transfer_voucher[] = {ID_R("voucher_id"), ID_R("to")};
static const md_fspec_t f_post_review[] = {ID_R("review_id"), ID_R("order_id"),
                                           INT_R("rating", 1, 5), TEXT_R("text", 2000)};
static const md_fspec_t f_send_message[] = {ID_R("message_id"), ID_R("to"), TEXT_R("text", 2000),
                                            ID_O("order_id")};
static const md_fspec_t f_file_complaint[] = {ID_R("complaint_id"), ID_R("order_id"),
                                              TEXT_R("reason", 2000), EVIDENCE_O("evidence")};
static const md_fspec_t f_complaint[] = {ID_R("complaint_id")};
static const md_fspec_t f_defense[] = {ID_R("complaint_id"), TEXT_R("statement", 2000),
                                       EVIDENCE_O("evidence")};
static const md_fspec_t f_rule[] = {ID_R("complaint_id"), ENUM_R("decision", md__rulings),
                                    INT_O("refund_amount", 1, MD_MONEY_MAX)};
static const md_fspec_t f_apply_sanction[] = {
    ID_R("sanction_id"), ENUM_R("measure", md__measures), ENUM_R("target_type", md__target_types),
    ID_R("target_id"),   TEXT_R("reason", 500),           CLAUSE_R("clause"),
    TIME_O("expires_at")};
static const md_fspec_t f_lift_sanction[] = {ID_R("sanction_id"), TEXT_R("reason", 500)};
static const md_fspec_t f_appeal_sanction[] = {ID_R("sanction_id"), TEXT_R("statement", 2000)};
static const md_fspec_t f_grant_consent[] = {ID_R("consent_id"), TEXT_R("recipient", 200),
                                             ENUM_R("scope", md__scopes)};
static const md_fspec_t f_consent[] = {ID_R("consent_id")};
static const md_fspec_t f_disclose[] = {ID_R("disclosure_id"),       ID_R("subject"),
                                        TEXT_R("recipient", 200),    ENUM_R("basis", md__bases),
                                        ENUM_R("scope", md__scopes), TEXT_R("reference", 200)};
static const md_fspec_t f_schedule[] = {ID_R("window_id"), TIME_R("starts_at"), TIME_R("ends_at")};
static const md_fspec_t f_window[] = {ID_R("window_id")};
static const md_fspec_t f_rule_on_appeal[] = {
    ID_R("sanction_id"), ENUM_R("decision", md__appeal_rulings), TEXT_R("reason", 500)};
static const md_fspec_t f_set_policy[] = {DAYS("after_sales_days"), DAYS("auto_confirm_days"),
                                          DAYS("defense_days"), DAYS("settlement_hold_days"),
                                          DAYS("appeal_days")};

static const char *x_rule_on_dispute(const md_command_t *c, char *msg, size_t cap);
static const char *x_apply_sanction(const md_command_t *c, char *msg, size_t cap);
static const char *x_schedule(const md_command_t *c, char *msg, size_t cap);
static const char *x_set_policy(const md_command_t *c, char *msg, size_t cap);

#define F(a) a, sizeof(a) / sizeof(a[0])
#define C(t, name, stream, target, fields, x) [t] = {t, name, stream, target, F(fields), x}

/* The schema of every command, indexed by md_cmd_type_t. */
static const md_cmd_spec_t specs[MD_CMD_COUNT_] = {
    C(MD_CMD_REGISTER_MEMBER, "RegisterMember", "member", "member_id", f_register_member, NULL),
    C(MD_CMD_PUBLISH_AGREEMENT, "PublishAgreement", "platform", NULL, f_publish_agreement, NULL),
    C(MD_CMD_ACCEPT_AGREEMENT, "AcceptAgreement", "member", NULL, f_version, NULL),
    C(MD_CMD_DECLINE_AGREEMENT, "DeclineAgreement", "member", NULL, f_version, NULL),
    C(MD_CMD_TRANSFER_ACCOUNT, "TransferAccount", "member", NULL, f_to, NULL),
    C(MD_CMD_GRANT_OPERATOR, "GrantOperator", "member", "member_id", f_member, NULL),
    C(MD_CMD_REVOKE_OPERATOR, "RevokeOperator", "member", "member_id", f_member, NULL),
    C(MD_CMD_APPLY_AS_PROVIDER, "ApplyAsProvider", "member", NULL, f_apply_provider, NULL),
    C(MD_CMD_APPROVE_PROVIDER, "ApproveProvider", "member", "member_id", f_member, NULL),
    C(MD_CMD_REJECT_PROVIDER, "RejectProvider", "member", "member_id", f_reject_provider, NULL),
    C(MD_CMD_DEFINE_CATEGORY, "DefineCategory", "category", "category_id", f_define_category, NULL),
    C(MD_CMD_RETIRE_CATEGORY, "RetireCategory", "category", "category_id", f_category, NULL),
    C(MD_CMD_GRANT_LICENSE, "GrantLicense", "member", "member_id", f_license, NULL),
    C(MD_CMD_REVOKE_LICENSE, "RevokeLicense", "member", "member_id", f_license, NULL),
    C(MD_CMD_PROHIBIT_TERM, "ProhibitTerm", "platform", NULL, f_term, NULL),
    C(MD_CMD_ALLOW_TERM, "AllowTerm", "platform", NULL, f_term, NULL),
    C(MD_CMD_OPEN_STORE, "OpenStore", "store", "store_id", f_open_store, NULL),
    C(MD_CMD_CLOSE_STORE, "CloseStore", "store", "store_id", f_store, NULL),
    C(MD_CMD_REOPEN_STORE, "ReopenStore", "store", "store_id", f_store, NULL),
    C(MD_CMD_PUBLISH_PRODUCT, "PublishProduct", "product", "product_id", f_publish_product, NULL),
    C(MD_CMD_REVIEW_PRODUCT, "ReviewProduct", "product", "product_id", f_review_product, NULL),
    C(MD_CMD_CHANGE_PRICE, "ChangePrice", "product", "product_id", f_change_price, NULL),
    C(MD_CMD_DELIST_PRODUCT, "DelistProduct", "product", "product_id", f_product, NULL),
    C(MD_CMD_RELIST_PRODUCT, "RelistProduct", "product", "product_id", f_product, NULL),
    C(MD_CMD_DEPOSIT_FUNDS, "DepositFunds", "member", NULL, f_deposit, NULL),
    C(MD_CMD_WITHDRAW_FUNDS, "WithdrawFunds", "member", NULL, f_withdraw, NULL),
    C(MD_CMD_PLACE_ORDER, "PlaceOrder", "order", "order_id", f_place_order, NULL),
    C(MD_CMD_PAY_ORDER, "PayOrder", "order", "order_id", f_order, NULL),
    C(MD_CMD_DELIVER_ORDER, "DeliverOrder", "order", "order_id", f_deliver, NULL),
    C(MD_CMD_CONFIRM_ORDER, "ConfirmOrder", "order", "order_id", f_order, NULL),
    C(MD_CMD_CANCEL_ORDER, "CancelOrder", "order", "order_id", f_cancel, NULL),
    C(MD_CMD_ISSUE_VOUCHER, "IssueVoucher", "voucher", "voucher_id", f_issue_voucher, NULL),
    C(MD_CMD_TRANSFER_VOUCHER, "TransferVoucher", "voucher", "voucher_id", f_transfer_voucher,
      NULL),
    C(MD_CMD_POST_REVIEW, "PostReview", "review", "review_id", f_post_review, NULL),
    C(MD_CMD_SEND_MESSAGE, "SendMessage", "message", "message_id", f_send_message, NULL),
    C(MD_CMD_FILE_COMPLAINT, "FileComplaint", "complaint", "complaint_id", f_file_complaint, NULL),
    C(MD_CMD_APPLY_ARBITRATION, "ApplyArbitration", "complaint", "complaint_id", f_complaint, NULL),
    C(MD_CMD_SUBMIT_DEFENSE, "SubmitDefense", "complaint", "complaint_id", f_defense, NULL),
    C(MD_CMD_WITHDRAW_COMPLAINT, "WithdrawComplaint", "complaint", "complaint_id", f_complaint,
      NULL),
    C(MD_CMD_RULE_ON_DISPUTE, "RuleOnDispute", "complaint", "complaint_id", f_rule,
      x_rule_on_dispute),
    C(MD_CMD_APPLY_SANCTION, "ApplySanction", "sanction", "sanction_id", f_apply_sanction,
      x_apply_sanction),
    C(MD_CMD_LIFT_SANCTION, "LiftSanction", "sanction", "sanction_id", f_lift_sanction, NULL),
    C(MD_CMD_APPEAL_SANCTION, "AppealSanction", "sanction", "sanction_id", f_appeal_sanction, NULL),
    C(MD_CMD_RULE_ON_APPEAL, "RuleOnAppeal", "sanction", "sanction_id", f_rule_on_appeal, NULL),
    C(MD_CMD_GRANT_CONSENT, "GrantConsent", "consent", "consent_id", f_grant_consent, NULL),
    C(MD_CMD_REVOKE_CONSENT, "RevokeConsent", "consent", "consent_id", f_consent, NULL),
    C(MD_CMD_DISCLOSE_RECORDS, "DiscloseRecords", "disclosure", "disclosure_id", f_disclose, NULL),
    C(MD_CMD_SCHEDULE_MAINTENANCE, "ScheduleMaintenance", "maintenance", "window_id", f_schedule,
      x_schedule),
    C(MD_CMD_CANCEL_MAINTENANCE, "CancelMaintenance", "maintenance", "window_id", f_window, NULL),
    C(MD_CMD_SET_POLICY, "SetPolicy", "platform", NULL, f_set_policy, x_set_policy),
    [MD_CMD_TICK] = {MD_CMD_TICK, "Tick", "platform", NULL, NULL, 0, NULL},
};

const md_cmd_spec_t *md_cmd_spec_of(md_cmd_type_t type)
{
    if ((int)type < 0 || type >= MD_CMD_COUNT_)
        return NULL;
    return &specs[type];
}

const md_cmd_spec_t *md_cmd_spec_find(const char *name, size_t len)
{
    for (size_t i = 0; i < MD_CMD_COUNT_; i++) {
        if (strlen(specs[i].name) == len && memcmp(specs[i].name, name, len) == 0)
            return &specs[i];
    }
    return NULL;
}

/* The value slot of @p field, or NULL when the command has no such field. */
static const md_cval_t *cval(const md_command_t *c, const char *field)
{
    if (c->spec == NULL)
        return NULL;
    for (size_t i = 0; i < c->spec->nfields; i++) {
        if (strcmp(c->spec->fields[i].name, field) == 0)
            return &c->v[i];
    }
    return NULL;
}

const char *md_cmd_str(const md_command_t *c, const char *field)
{
    const md_cval_t *v = cval(c, field);
    if (v == NULL || !v->present || v->len == 0)
        return NULL;
    return c->arena + v->off;
}

const char *md_cmd_bytes(const md_command_t *c, const char *field, size_t *len)
{
    const md_cval_t *v = cval(c, field);
    if (v == NULL || !v->present || v->len == 0)
        return NULL;
    *len = v->len;
    return c->arena + v->off;
}

bool md_cmd_int(const md_command_t *c, const char *field, int64_t *out)
{
    const md_cval_t *v = cval(c, field);
    if (v == NULL || !v->present)
        return false;
    *out = v->i;
    return true;
}

bool md_cmd_has(const md_command_t *c, const char *field)
{
    const md_cval_t *v = cval(c, field);
    return v != NULL && v->present;
}

bool md_cmd_target_stream(const md_command_t *c, char *out, size_t cap)
{
    const md_cmd_spec_t *s = c->spec;
    if (s == NULL)
        return false;
    const char *id = NULL;
    if (s->target_field != NULL)
        id = md_cmd_str(c, s->target_field);
    else if (strcmp(s->stream, "member") == 0)
        id = c->has_actor ? c->actor : NULL;
    int n = id != NULL ? snprintf(out, cap, "%s:%s", s->stream, id)
                       : snprintf(out, cap, "%s", s->stream);
    if (id == NULL && strcmp(s->stream, "platform") != 0)
        return false;
    return n >= 0 && (size_t)n < cap;
}

/* ---- step-1 checks across fields ---------------------------------------- */

/* refund_amount is required for split and forbidden otherwise (Fine points). */
static const char *x_rule_on_dispute(const md_command_t *c, char *msg, size_t cap)
{
    int64_t decision = 0;
    md_cmd_int(c, "decision", &decision);
    bool has = md_cmd_has(c, "refund_amount");
    if (decision == MD__RULE_SPLIT && !has) {
        snprintf(msg, cap, "data.refund_amount: required when decision is split");
        return "refund_amount";
    }
    if (decision != MD__RULE_SPLIT && has) {
        snprintf(msg, cap, "data.refund_amount: allowed only when decision is split");
        return "refund_amount";
    }
    return NULL;
}

/* The measure must fit the target type; expires_at only on reversible ones. */
static const char *x_apply_sanction(const md_command_t *c, char *msg, size_t cap)
{
    int64_t m = 0, t = 0;
    md_cmd_int(c, "measure", &m);
    md_cmd_int(c, "target_type", &t);
    const md__measure_info_t *mi = &md__measure_info[m];
    if ((mi->targets & (1u << t)) == 0) {
        snprintf(msg, cap, "data.measure: %s does not apply to target_type %s", md__measures[m],
                 md__target_types[t]);
        return "measure";
    }
    if (!mi->reversible && md_cmd_has(c, "expires_at")) {
        snprintf(msg, cap, "data.expires_at: not allowed on the irreversible measure %s",
                 md__measures[m]);
        return "expires_at";
    }
    return NULL;
}

static const char *x_schedule(const md_command_t *c, char *msg, size_t cap)
{
    int64_t a = 0, b = 0;
    md_cmd_int(c, "starts_at", &a);
    md_cmd_int(c, "ends_at", &b);
    if (b <= a) {
        snprintf(msg, cap, "data.ends_at: must be after starts_at");
        return "ends_at";
    }
    return NULL;
}

/* settlement_hold_days >= after_sales_days: the hold outlasts the window. */
static const char *x_set_policy(const md_command_t *c, char *msg, size_t cap)
{
    int64_t hold = 0, after = 0;
    md_cmd_int(c, "settlement_hold_days", &hold);
    md_cmd_int(c, "after_sales_days", &after);
    if (hold < after) {
        snprintf(msg, cap, "data.settlement_hold_days: %lld is below after_sales_days %lld",
                 (long long)hold, (long long)after);
        return "settlement_hold_days";
    }
    return NULL;
}
