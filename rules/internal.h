/*
 * internal.h - the decider's private machinery: the decision context, the
 * command rules table and the per-command rule functions (the rules/ sources).
 *
 * A rule function runs at step 7 of docs/rules-reference.md "Order of checks": the generic
 * driver (decide.c) has already done steps 2-6 as the command's row in
 * table.c describes them, and loaded every referenced aggregate into the
 * context. It either rejects (return md__reject(...)) or emits its events
 * (md__emit) and returns MD_OK. A negative return is a state error.
 */
#ifndef MD_RULES_INTERNAL_H
#define MD_RULES_INTERNAL_H

#include <stdarg.h>

#include "md_command.h"
#include "md_rules.h"
#include "state.h"
#include "vocab.h"

#define MD__REJECT 1           /* a rule rejected the command (d->code is set) */
#define MD__TEXT_FOLD_MAX 2048 /* texts checked for content are <= 2000 bytes */


typedef struct md__ctx {
    const md_state_t *st;
    const md_command_t *cmd;
    int64_t now;
    md_decision_t *d;
    md_error_t *err;
    md__platform_t plat;
    bool actor_found;
    md__member_t actor;
    /* Aggregates referenced by the command, loaded at step 4 (one per kind). */
    md__member_t member; /* member_id, to, or subject */
    md__category_t category;
    md__store_t store;
    md__product_t product;
    md__order_t order;
    md__voucher_t voucher;
    md__review_t review;
    md__complaint_t complaint;
    md__sanction_t sanction;
    md__consent_t consent;
    md__window_t window;
    md__flag_t flag; /* messages and disclosures */
} md__ctx_t;

/* Kinds of referenced aggregates (their key prefix and context slot). */
typedef enum md__ref_kind {
    MD__R_NONE,
    MD__R_MEMBER,
    MD__R_CATEGORY,
    MD__R_STORE,
    MD__R_PRODUCT,
    MD__R_ORDER,
    MD__R_VOUCHER,
    MD__R_REVIEW,
    MD__R_COMPLAINT,
    MD__R_SANCTION,
    MD__R_CONSENT,
    MD__R_WINDOW,
    MD__R_MESSAGE,
    MD__R_DISCLOSURE,
    MD__R_COUNT_
} md__ref_kind_t;

/* A referenced id: must exist (NOT_FOUND) or must not (ALREADY_EXISTS). */
typedef struct md__ref {
    const char *field;
    md__ref_kind_t kind;
    bool creates;
} md__ref_t;

/* Who may issue the command (step 5, FORBIDDEN otherwise). */
typedef enum md__auth {
    MD__A_MEMBER, /* any registered member */
    MD__A_SELF,   /* actor = member_id */
    MD__A_OPERATOR,
    MD__A_STORE_OWNER, /* owner of the loaded store */
    MD__A_PRODUCT_OWNER,
    MD__A_BUYER, /* of the loaded order */
    MD__A_PROVIDER,
    MD__A_PARTY,       /* buyer or provider */
    MD__A_COMPLAINANT, /* of the loaded complaint */
    MD__A_RESPONDENT,
    MD__A_COMPLAINT_PARTY, /* complainant or respondent */
    MD__A_HOLDER,          /* of the loaded voucher */
    MD__A_CONSENT_OWNER,
    MD__A_SANCTIONED /* a member the loaded sanction is against */
} md__auth_t;

enum {
    MD__F_UNREGISTERED = 1u << 0, /* no MEMBER_NOT_REGISTERED (RegisterMember) */
    MD__F_WHILE_SUSPENDED = 1u << 1,
    MD__F_WHILE_CLOSED = 1u << 2,
    MD__F_NO_IMPLICIT = 1u << 3 /* never implies acceptance of the agreement */
};

typedef int (*md__step_fn)(md__ctx_t *c);

/* One row of the command rules table (table.c). */
typedef struct md__row {
    md_cmd_type_t type;
    unsigned flags;
    md__auth_t auth;
    md__ref_t refs[3];
    md__step_fn find; /* step 4, after existing refs: extra NOT_FOUND checks */
    md__step_fn dup;  /* step 4, after creating refs: extra ALREADY_EXISTS checks */
    md__step_fn rule; /* step 7 and the events */
} md__row_t;

const md__row_t *md__row_of(md_cmd_type_t type);
/* Who an authorization means, in words ("the order's buyer"); NULL past the table (decide.c). */
const char *md__auth_word(md__auth_t a);
/* Key prefix, context slot and size of a reference kind. */
const char *md__ref_prefix(md__ref_kind_t kind);
void *md__ref_slot(md__ctx_t *c, md__ref_kind_t kind, size_t *size);
const char *md__ref_word(md__ref_kind_t kind);

/* ---- decision helpers (decision.c) -------------------------------------- */

int md__reject(md__ctx_t *c, md_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends an event on stream "<prefix>:<id>" ("<prefix>" when id is NULL). */
md_data_t *md__emit(md__ctx_t *c, const char *type, const char *prefix, const char *id);
/* Copies s into the decision's arena (for data values taken from records). */
const char *md__keep(md_decision_t *d, const char *s);
/* Adds the command's field as a data value (nil when absent). */
void md__put_str(md__ctx_t *c, md_data_t *data, const char *field);
void md__put_int(md__ctx_t *c, md_data_t *data, const char *field);
const char *md__str(md__ctx_t *c, const char *field);
int64_t md__int(md__ctx_t *c, const char *field);
/* Loads a record by prefix and id into rec; *found tells. */
int md__load(md__ctx_t *c, const char *prefix, const char *id, void *rec, size_t size, bool *found);
bool md__member_suspended(const md__member_t *m, int64_t now);
/* Prohibited terms / contact details in a text: rejects or returns MD_OK. */
int md__check_content(md__ctx_t *c, const char *field);
/* Appends VoucherRestored when the order redeemed a voucher. */
void md__emit_voucher_restored(md__ctx_t *c, const md__order_t *o, const char *order_id);

/* ---- rule functions (step 7), one per command -------------------------- */

/* clang-format off */
#define MD__RULES(X)                                                                               \
    X(register_member)                                                                             \
    X(publish_agreement)                                                                           \
    X(accept_agreement)                                                                            \
    X(decline_agreement)                                                                           \
    X(transfer_account)                                                                            \
    X(grant_operator)                                                                              \
    X(revoke_operator)                                                                             \
    X(apply_as_provider)                                                                           \
    X(approve_provider)                                                                            \
    X(reject_provider)                                                                             \
    X(define_category)                                                                             \
    X(retire_category)                                                                             \
    X(grant_license)                                                                               \
    X(revoke_license)                                                                              \
    X(prohibit_term)                                                                               \
    X(allow_term)                                                                                  \
    X(open_store)                                                                                  \
    X(close_store)                                                                                 \
    X(reopen_store)                                                                                \
    X(publish_product)                                                                             \
    X(review_product)                                                                              \
    X(change_price)                                                                                \
    X(delist_product)                                                                              \
    X(relist_product)                                                                              \
    X(deposit_funds)                                                                               \
    X(withdraw_funds)                                                                              \
    X(place_order)                                                                                 \
    X(pay_order)                                                                                   \
    X(deliver_order)                                                                               \
    X(confirm_order)                                                                               \
    X(cancel_order)                                                                                \
    X(issue_voucher)                                                                               \
    X(transfer_voucher)                                                                            \
    X(post_review)                                                                                 \
    X(send_message)                                                                                \
    X(file_complaint)                                                                              \
    X(apply_arbitration)                                                                           \
    X(submit_defense)                                                                              \
    X(withdraw_complaint)                                                                          \
    X(rule_on_dispute)                                                                             \
    X(apply_sanction)                                                                              \
    X(lift_sanction)                                                                               \
    X(appeal_sanction)                                                                             \
    X(grant_consent)                                                                               \
    X(revoke_consent)                                                                              \
    X(disclose_records)                                                                            \
    X(schedule_maintenance)                                                                        \
    X(cancel_maintenance)                                                                          \
    X(rule_on_appeal)                                                                              \
    X(set_policy)                                                                                  \
    X(tick)
/* clang-format on */

#define MD__RULE_DECL(n) int md__rule_##n(md__ctx_t *c);
MD__RULES(MD__RULE_DECL)
#undef MD__RULE_DECL

/* Step-4 hooks. */
int md__find_license(md__ctx_t *c);         /* RevokeLicense: licence held */
int md__dup_license(md__ctx_t *c);          /* GrantLicense: licence not yet held */
int md__find_term(md__ctx_t *c);            /* AllowTerm: term prohibited */
int md__dup_term(md__ctx_t *c);             /* ProhibitTerm: not yet prohibited */
int md__find_window(md__ctx_t *c);          /* CancelMaintenance: not cancelled */
int md__find_sanction_target(md__ctx_t *c); /* ApplySanction: target exists */

/* ---- evolve (one function per event type) ------------------------------- */

typedef struct md__ev {
    const md_state_t *st;
    const md_event_t *ev;
    md_error_t *err;
} md__ev_t;

typedef md_err_t (*md__evolve_fn)(md__ev_t *e);

/* Reads a string (into out[cap]) or an int field of the event's data;
 * a missing field is MD_ECORRUPT. */
md_err_t md__ev_str(md__ev_t *e, const char *key, char *out, size_t cap);
md_err_t md__ev_int(md__ev_t *e, const char *key, int64_t *v);
/* Optional string: "" when absent or nil. */
md_err_t md__ev_str_opt(md__ev_t *e, const char *key, char *out, size_t cap);
/* Loads / stores a record by prefix and id (missing: MD_ECORRUPT). */
md_err_t md__ev_load(md__ev_t *e, const char *prefix, const char *id, void *rec, size_t size);
md_err_t md__ev_save(md__ev_t *e, const char *prefix, const char *id, void *rec, size_t size);
/* Adds delta to a member's balance. */
md_err_t md__ev_credit(md__ev_t *e, const char *member, int64_t delta);
/* Moves delta (may be negative) into a provider's held amount. */
md_err_t md__ev_hold(md__ev_t *e, const char *member, int64_t delta);
/* Indexes a product by owner and category ("Pc:" keys, RevokeLicense). */
md_err_t md__index_product(md__ev_t *e, const md__product_t *p, const char *id);
bool md__ev_has(md__ev_t *e, const char *key);

/* ---- timers and windows (timers.c) ------------------------------------------- */

enum md__timer_kind { MD__TK_AUTO_CONFIRM = 'a', MD__TK_DEFENSE = 'd', MD__TK_SETTLEMENT = 's' };

/* The platform record (policy included) for decide / evolve. */
md_err_t md__ev_platform(md__ev_t *e, md__platform_t *p);
/* Arms (kind, id) at deadline with the current event's seq: removes the index
 * key of the timer at (*at, *seq) when there is one and sets *at and *seq in
 * the record; saving the record (md__ev_save) writes the new key when the
 * timer's condition holds. */
md_err_t md__arm(md__ev_t *e, int kind, const char *id, int64_t deadline, int64_t *at,
                 int64_t *seq);
/* Called by md__ev_save for every record saved: for an order ("o:") or a
 * complaint ("q:"), makes each of its timers' index keys present exactly when
 * the timer has a deadline and its condition holds (timers.c). */
md_err_t md__timers_index(md__ev_t *e, const char *prefix, const char *id, const void *rec,
                          size_t size);
/* Days of the policy as a deadline from t (0 when days is 0). */
int64_t md__deadline(int64_t t, int64_t days);
/* Completion of an order (ConfirmOrder, the auto_confirm timer): OrderCompleted
 * with mode, the hold and the after-sales window of the policy at now. */
void md__emit_completed(md__ctx_t *c, const md__order_t *o, const char *order_id, const char *mode);
/* Applies a release of an event (OrderCompleted, DisputeRuled) to the provider. */
md_err_t md__ev_release(md__ev_t *e, md__order_t *o, const char *order_id, int64_t amount);
/* A release to the provider: held_until when the policy holds it (0 if not). */
void md__put_release(md__ctx_t *c, md_data_t *d, int64_t released, bool completes);

/* clang-format off */
#define MD__EVENTS(X)                                                                              \
    X(MemberRegistered)                                                                            \
    X(AgreementPublished)                                                                          \
    X(AgreementAccepted)                                                                           \
    X(AgreementDeclined)                                                                           \
    X(OperatorGranted)                                                                             \
    X(OperatorRevoked)                                                                             \
    X(ProviderApplied)                                                                             \
    X(ProviderApproved)                                                                            \
    X(ProviderRejected)                                                                            \
    X(CategoryDefined)                                                                             \
    X(CategoryRetired)                                                                             \
    X(LicenseGranted)                                                                              \
    X(LicenseRevoked)                                                                              \
    X(TermProhibited)                                                                              \
    X(TermAllowed)                                                                                 \
    X(StoreOpened)                                                                                 \
    X(StoreClosed)                                                                                 \
    X(StoreReopened)                                                                               \
    X(ProductPublished)                                                                            \
    X(ProductApproved)                                                                             \
    X(ProductDenied)                                                                               \
    X(PriceChanged)                                                                                \
    X(ProductDelisted)                                                                             \
    X(ProductRelisted)                                                                             \
    X(FundsDeposited)                                                                              \
    X(FundsWithdrawn)                                                                              \
    X(OrderPlaced)                                                                                 \
    X(VoucherRedeemed)                                                                             \
    X(OrderPaid)                                                                                   \
    X(OrderDelivered)                                                                              \
    X(OrderCompleted)                                                                              \
    X(OrderCancelled)                                                                              \
    X(VoucherRestored)                                                                             \
    X(VoucherIssued)                                                                               \
    X(ReviewPosted)                                                                                \
    X(MessageSent)                                                                                 \
    X(ComplaintFiled)                                                                              \
    X(ArbitrationRequested)                                                                        \
    X(ComplaintWithdrawn)                                                                          \
    X(DisputeRuled)                                                                                \
    X(SanctionApplied)                                                                             \
    X(SanctionLifted)                                                                              \
    X(SanctionAppealed)                                                                            \
    X(ConsentGranted)                                                                              \
    X(ConsentRevoked)                                                                              \
    X(RecordsDisclosed)                                                                            \
    X(MaintenanceScheduled)                                                                        \
    X(MaintenanceCancelled)                                                                        \
    X(PolicySet)                                                                                   \
    X(AppealRuled)                                                                                 \
    X(SettlementReleased)                                                                          \
    X(DefenseSubmitted)
/* clang-format on */

#define MD__EVOLVE_DECL(n) md_err_t md__evolve_##n(md__ev_t *e);
MD__EVENTS(MD__EVOLVE_DECL)
#undef MD__EVOLVE_DECL

#endif
