/*
 * test_rules.c - the decider, table-driven: every command has an accepted
 * case and every rejection code rules.md lists for it is produced, each on a
 * fresh fixture world (rules_mem.c). A final case checks that every code of
 * rules.md's "Codes and clauses" table (kept in sync by
 * tests/test_rules_coverage.sh) was produced with its clause.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../rules/internal.h" /* the rules table's references (md__row_of) */
#include "md_rules.h"
#include "rules_mem.h"

/* rules.md "Codes and clauses", code -> clause (NULL = null). Checked against
 * the spec by tests/test_rules_coverage.sh. */
static const struct {
    const char *code, *clause;
} spec_codes[] = {
    /* BEGIN CODES */
    {"MALFORMED", NULL},
    {"UNKNOWN_COMMAND", NULL},
    {"INVALID_FIELD", NULL},
    {"VERSION_CONFLICT", NULL},
    {"NOT_FOUND", NULL},
    {"ALREADY_EXISTS", NULL},
    {"FORBIDDEN", NULL},
    {"STORE_STATE", NULL},
    {"CONSENT_STATE", NULL},
    {"ALREADY_OPERATOR", NULL},
    {"NOT_OPERATOR", NULL},
    {"LAST_OPERATOR", NULL},
    {"ALREADY_ACCEPTED", "1.2"},
    {"APPLICATION_PENDING", "1.2"},
    {"APPLICATION_NOT_PENDING", "1.2"},
    {"AGREEMENT_VERSION", "1.4"},
    {"CATEGORY_RETIRED", "2.1"},
    {"MEMBER_NOT_REGISTERED", "2.2"},
    {"ALREADY_PROVIDER", "2.4"},
    {"NOT_A_PROVIDER", "2.4"},
    {"PRODUCT_STATE", "3.1.1"},
    {"PRODUCT_UNAVAILABLE", "3.1.1"},
    {"ORDER_STATE", "3.1.3"},
    {"DUPLICATE_PAYMENT", "3.1.3"},
    {"COMPLAINT_EXISTS", "3.1.4"},
    {"COMPLAINT_STATE", "3.1.4"},
    {"APPEAL_EXISTS", "3.1.4"},
    {"INSUFFICIENT_FUNDS", "3.2.1"},
    {"ACCOUNT_SUSPENDED", "3.3.3"},
    {"ACCOUNT_CLOSED", "3.3.3"},
    {"STORE_CLOSED", "3.3.3"},
    {"SANCTIONED", "3.3.3"},
    {"ORDERING_RESTRICTED", "3.3.3"},
    {"PROVIDER_UNAVAILABLE", "3.3.3"},
    {"BALANCE_FROZEN", "3.3.3"},
    {"MEMBER_MUTED", "3.3.3"},
    {"SANCTION_ACTIVE", "3.3.3"},
    {"SANCTION_NOT_ACTIVE", "3.3.3"},
    {"SANCTION_IRREVERSIBLE", "3.3.3"},
    {"ORDER_IN_DISPUTE", "3.3.5"},
    {"SERVICE_UNAVAILABLE", "3.4.2"},
    {"PROHIBITED_CONTENT", "4.1.4"},
    {"PRODUCT_RESTRICTED", "4.2.3"},
    {"SELF_DEALING", "4.2.4"},
    {"REVIEW_EXISTS", "4.2.4"},
    {"VOUCHER_NOT_HELD", "4.2.5"},
    {"VOUCHER_USED", "4.2.5"},
    {"VOUCHER_EXPIRED", "4.2.5"},
    {"VOUCHER_NOT_TRANSFERABLE", "4.2.5"},
    {"ACCOUNT_NOT_TRANSFERABLE", "4.2.5"},
    {"PROMO_ALREADY_CLAIMED", "4.2.5"},
    {"OFF_PLATFORM_TRADE", "4.2.6"},
    {"CONSENT_REQUIRED", "6.2.1"},
    {"NO_VIOLATION_ON_RECORD", "6.2.3"},
    {"AFTER_SALES_CLOSED", "3.2.3"},
    {"APPEAL_WINDOW_CLOSED", "3.1.4"},
    {"APPEAL_STATE", "3.1.4"},
    /* END CODES */
};
#define N_SPEC_CODES (sizeof spec_codes / sizeof spec_codes[0])

typedef struct step {
    const char *actor, *type, *data;
    int64_t at; /* offset from FX_NOW */
} step_t;

typedef struct tcase {
    const char *name;
    step_t pre[6]; /* more world, each must be accepted */
    const char *actor, *type, *data;
    const char *expect; /* "OK" or a code */
    int64_t at;         /* offset from FX_NOW for the command itself */
    const char *extra;  /* more envelope members */
    const char *raw;    /* a whole input line instead */
} tcase_t;

#define S(a, t, d)                                                                                 \
    {                                                                                              \
        a, t, d, 0                                                                                 \
    }
#define MUTE(who)                                                                                  \
    S("op", "ApplySanction",                                                                       \
      "'sanction_id':'s-m','measure':'mute','target_type':'member','target_id':'" who              \
      "','reason':'spam','clause':'4.1.4'")
#define SANCTION(id, m, t, target)                                                                 \
    S("op", "ApplySanction",                                                                       \
      "'sanction_id':'" id "','measure':'" m "','target_type':'" t "','target_id':'" target        \
      "','reason':'r','clause':'3.3.3'")
#define COMPLAIN(id, order)                                                                        \
    S("alice", "FileComplaint", "'complaint_id':'" id "','order_id':'" order "','reason':'broken'")
#define ST(a, t, d, at)                                                                            \
    {                                                                                              \
        a, t, d, at                                                                                \
    }
#define DAY (24 * FX_HOUR)
#define POLICY                                                                                     \
    S("op", "SetPolicy",                                                                           \
      "'after_sales_days':15,'auto_confirm_days':10,'defense_days':3,'settlement_hold_days':15,'"  \
      "appeal_days':7")
#define WINDOW_DATA                                                                                \
    "'window_id':'w1','starts_at':'2026-11-26T09:00:00Z','ends_at':'2026-11-26T11:00:00Z'"
#define WINDOW S("op", "ScheduleMaintenance", WINDOW_DATA) /* open at FX_NOW */

static const tcase_t cases[] = {
    /* ---- envelope and actor (steps 1-3, 6) ---- */
    {"malformed json", {{0}}, 0, 0, 0, "MALFORMED", .raw = "{not json"},
    {"malformed command_id",
     {{0}},
     0,
     0,
     0,
     "MALFORMED",
     .raw = "{'command_id':5,'type':'PayOrder'}"},
    {"unknown type", {{0}}, "alice", "Teleport", "", "UNKNOWN_COMMAND", .at = 0},
    {"missing field",
     {{0}},
     "eve",
     "RegisterMember",
     "'member_id':'eve','kind':'individual'",
     "INVALID_FIELD",
     .at = 0},
    {"not registered",
     {{0}},
     "ghost",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "MEMBER_NOT_REGISTERED",
     .at = 0},
    {"account closed",
     {SANCTION("s-c", "close_account", "member", "dave")},
     "dave",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "ACCOUNT_CLOSED",
     .at = 0},
    {"account suspended",
     {SANCTION("s-s", "suspend_account", "member", "dave")},
     "dave",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "ACCOUNT_SUSPENDED",
     .at = 0},
    {"maintenance",
     {WINDOW},
     "alice",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "SERVICE_UNAVAILABLE",
     .at = 0},
    {"maintenance operator",
     {WINDOW},
     "op",
     "DefineCategory",
     "'category_id':'c9','name':'X'",
     "OK",
     .at = 0},
    {"version conflict",
     {{0}},
     "alice",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "VERSION_CONFLICT",
     .extra = "'expected_version':99"},
    {"version match",
     {{0}},
     "dave",
     "DepositFunds",
     "'amount':1,'payment_ref':'x'",
     "OK",
     .extra = "'expected_version':1"},
    {"creating version",
     {{0}},
     "eve",
     "RegisterMember",
     "'member_id':'eve','kind':'individual','name':'Eve','identity_hash':'" HEX_C "'",
     "VERSION_CONFLICT",
     .extra = "'expected_version':1"},
    /* ---- membership and agreement ---- */
    {"register",
     {{0}},
     "eve",
     "RegisterMember",
     "'member_id':'eve','kind':'individual','name':'Eve','identity_hash':'" HEX_C
     "','email':'e@x.y'",
     "OK",
     .at = 0},
    {"register exists",
     {{0}},
     "alice",
     "RegisterMember",
     "'member_id':'alice','kind':'individual','name':'A','identity_hash':'" HEX_A "'",
     "ALREADY_EXISTS",
     .at = 0},
    {"register other",
     {{0}},
     "ghost",
     "RegisterMember",
     "'member_id':'eve','kind':'individual','name':'Eve','identity_hash':'" HEX_C "'",
     "FORBIDDEN",
     .at = 0},
    {"publish agreement",
     {{0}},
     "op",
     "PublishAgreement",
     "'version':2,'title':'T2','digest':'" HEX_A "'",
     "OK",
     .at = 0},
    {"publish old version",
     {{0}},
     "op",
     "PublishAgreement",
     "'version':1,'title':'T','digest':'" HEX_A "'",
     "AGREEMENT_VERSION",
     .at = 0},
    {"publish forbidden",
     {{0}},
     "alice",
     "PublishAgreement",
     "'version':2,'title':'T','digest':'" HEX_A "'",
     "FORBIDDEN",
     .at = 0},
    {"accept", {{0}}, "dave", "AcceptAgreement", "'version':1", "OK", .at = 0},
    {"accept wrong version",
     {{0}},
     "dave",
     "AcceptAgreement",
     "'version':2",
     "AGREEMENT_VERSION",
     .at = 0},
    {"accept again", {{0}}, "bob", "AcceptAgreement", "'version':1", "ALREADY_ACCEPTED", .at = 0},
    {"decline", {{0}}, "dave", "DeclineAgreement", "'version':1", "OK", .at = 0},
    {"decline wrong version",
     {{0}},
     "dave",
     "DeclineAgreement",
     "'version':3",
     "AGREEMENT_VERSION",
     .at = 0},
    {"decline accepted",
     {{0}},
     "alice",
     "DeclineAgreement",
     "'version':1",
     "ALREADY_ACCEPTED",
     .at = 0},
    {"transfer account",
     {{0}},
     "alice",
     "TransferAccount",
     "'to':'bob'",
     "ACCOUNT_NOT_TRANSFERABLE",
     .at = 0},
    {"transfer account unknown",
     {{0}},
     "alice",
     "TransferAccount",
     "'to':'ghost'",
     "NOT_FOUND",
     .at = 0},
    {"grant operator", {{0}}, "op", "GrantOperator", "'member_id':'alice'", "OK", .at = 0},
    {"grant operator unknown",
     {{0}},
     "op",
     "GrantOperator",
     "'member_id':'ghost'",
     "NOT_FOUND",
     .at = 0},
    {"grant operator again",
     {{0}},
     "op",
     "GrantOperator",
     "'member_id':'op'",
     "ALREADY_OPERATOR",
     .at = 0},
    {"grant operator forbidden",
     {{0}},
     "alice",
     "GrantOperator",
     "'member_id':'alice'",
     "FORBIDDEN",
     .at = 0},
    {"revoke operator",
     {S("op", "GrantOperator", "'member_id':'alice'")},
     "op",
     "RevokeOperator",
     "'member_id':'alice'",
     "OK",
     .at = 0},
    {"revoke non-operator",
     {{0}},
     "op",
     "RevokeOperator",
     "'member_id':'alice'",
     "NOT_OPERATOR",
     .at = 0},
    {"revoke last operator",
     {{0}},
     "op",
     "RevokeOperator",
     "'member_id':'op'",
     "LAST_OPERATOR",
     .at = 0},
    /* ---- providers, categories, terms ---- */
    {"apply provider", {{0}}, "alice", "ApplyAsProvider", "'business_name':'A Co'", "OK", .at = 0},
    {"apply provider again",
     {{0}},
     "bob",
     "ApplyAsProvider",
     "'business_name':'B'",
     "ALREADY_PROVIDER",
     .at = 0},
    {"apply pending",
     {S("alice", "ApplyAsProvider", "'business_name':'A'")},
     "alice",
     "ApplyAsProvider",
     "'business_name':'A'",
     "APPLICATION_PENDING",
     .at = 0},
    {"approve",
     {S("alice", "ApplyAsProvider", "'business_name':'A'")},
     "op",
     "ApproveProvider",
     "'member_id':'alice'",
     "OK",
     .at = 0},
    {"approve not pending",
     {{0}},
     "op",
     "ApproveProvider",
     "'member_id':'alice'",
     "APPLICATION_NOT_PENDING",
     .at = 0},
    {"approve unknown",
     {{0}},
     "op",
     "ApproveProvider",
     "'member_id':'ghost'",
     "NOT_FOUND",
     .at = 0},
    {"reject",
     {S("alice", "ApplyAsProvider", "'business_name':'A'")},
     "op",
     "RejectProvider",
     "'member_id':'alice','reason':'incomplete'",
     "OK",
     .at = 0},
    {"reject not pending",
     {{0}},
     "op",
     "RejectProvider",
     "'member_id':'bob','reason':'x'",
     "APPLICATION_NOT_PENDING",
     .at = 0},
    {"define category",
     {{0}},
     "op",
     "DefineCategory",
     "'category_id':'c2','name':'Games'",
     "OK",
     .at = 0},
    {"define category exists",
     {{0}},
     "op",
     "DefineCategory",
     "'category_id':'cat','name':'X'",
     "ALREADY_EXISTS",
     .at = 0},
    {"retire category", {{0}}, "op", "RetireCategory", "'category_id':'cat'", "OK", .at = 0},
    {"retire retired",
     {S("op", "RetireCategory", "'category_id':'cat'")},
     "op",
     "RetireCategory",
     "'category_id':'cat'",
     "CATEGORY_RETIRED",
     .at = 0},
    {"retire unknown", {{0}}, "op", "RetireCategory", "'category_id':'nope'", "NOT_FOUND", .at = 0},
    {"grant license",
     {{0}},
     "op",
     "GrantLicense",
     "'member_id':'bob','category_id':'rcat'",
     "OK",
     .at = 0},
    {"grant license held",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'")},
     "op",
     "GrantLicense",
     "'member_id':'bob','category_id':'rcat'",
     "ALREADY_EXISTS",
     .at = 0},
    {"grant license unknown",
     {{0}},
     "op",
     "GrantLicense",
     "'member_id':'bob','category_id':'nope'",
     "NOT_FOUND",
     .at = 0},
    {"revoke license",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'")},
     "op",
     "RevokeLicense",
     "'member_id':'bob','category_id':'rcat'",
     "OK",
     .at = 0},
    {"revoke license not held",
     {{0}},
     "op",
     "RevokeLicense",
     "'member_id':'bob','category_id':'rcat'",
     "NOT_FOUND",
     .at = 0},
    {"prohibit term", {{0}}, "op", "ProhibitTerm", "'term':'Crack'", "OK", .at = 0},
    {"prohibit term again",
     {S("op", "ProhibitTerm", "'term':'crack'")},
     "op",
     "ProhibitTerm",
     "'term':'CRACK'",
     "ALREADY_EXISTS",
     .at = 0},
    {"allow term",
     {S("op", "ProhibitTerm", "'term':'crack'")},
     "op",
     "AllowTerm",
     "'term':'Crack'",
     "OK",
     .at = 0},
    {"allow term unknown", {{0}}, "op", "AllowTerm", "'term':'crack'", "NOT_FOUND", .at = 0},
    /* ---- stores and products ---- */
    {"open store", {{0}}, "bob", "OpenStore", "'store_id':'st2','name':'Second'", "OK", .at = 0},
    {"open store not provider",
     {{0}},
     "alice",
     "OpenStore",
     "'store_id':'st2','name':'A'",
     "NOT_A_PROVIDER",
     .at = 0},
    {"open store exists",
     {{0}},
     "bob",
     "OpenStore",
     "'store_id':'st1','name':'A'",
     "ALREADY_EXISTS",
     .at = 0},
    {"close store", {{0}}, "bob", "CloseStore", "'store_id':'st1'", "OK", .at = 0},
    {"close store closed",
     {S("bob", "CloseStore", "'store_id':'st1'")},
     "bob",
     "CloseStore",
     "'store_id':'st1'",
     "STORE_CLOSED",
     .at = 0},
    {"close store forbidden",
     {{0}},
     "alice",
     "CloseStore",
     "'store_id':'st1'",
     "FORBIDDEN",
     .at = 0},
    {"reopen store",
     {S("bob", "CloseStore", "'store_id':'st1'")},
     "bob",
     "ReopenStore",
     "'store_id':'st1'",
     "OK",
     .at = 0},
    {"reopen open store", {{0}}, "bob", "ReopenStore", "'store_id':'st1'", "STORE_STATE", .at = 0},
    {"reopen sanctioned",
     {SANCTION("s-cs", "close_store", "store", "st1")},
     "bob",
     "ReopenStore",
     "'store_id':'st1'",
     "SANCTIONED",
     .at = 0},
    {"publish product",
     {{0}},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'Img','price':"
     "5",
     "OK",
     .at = 0},
    {"publish forbidden",
     {{0}},
     "alice",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'Img','price':"
     "5",
     "FORBIDDEN",
     .at = 0},
    {"publish store closed",
     {S("bob", "CloseStore", "'store_id':'st1'")},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'Img','price':"
     "5",
     "STORE_CLOSED",
     .at = 0},
    {"publish retired",
     {S("op", "RetireCategory", "'category_id':'cat'")},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'Img','price':"
     "5",
     "CATEGORY_RETIRED",
     .at = 0},
    {"publish restricted",
     {{0}},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'rcat','kind':'image','title':'Img','price':"
     "5",
     "PRODUCT_RESTRICTED",
     .at = 0},
    {"publish licensed",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'")},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'rcat','kind':'image','title':'Img','price':"
     "5",
     "OK",
     .at = 0},
    {"publish prohibited",
     {S("op", "ProhibitTerm", "'term':'crack'")},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'Photo CRACK "
     "kit','price':5",
     "PROHIBITED_CONTENT",
     .at = 0},
    {"publish contact",
     {{0}},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'call 138-0013 "
     "8000','price':5",
     "OFF_PLATFORM_TRADE",
     .at = 0},
    {"publish unknown store",
     {{0}},
     "bob",
     "PublishProduct",
     "'product_id':'p1','store_id':'nope','category_id':'cat','kind':'image','title':'I','price':5",
     "NOT_FOUND",
     .at = 0},
    {"review product",
     {S("bob", "PublishProduct",
        "'product_id':'p3','store_id':'st1','category_id':'revcat','kind':'image','title':'Img','"
        "price':5")},
     "op",
     "ReviewProduct",
     "'product_id':'p3','approve':true",
     "OK",
     .at = 0},
    {"review product denied",
     {S("bob", "PublishProduct",
        "'product_id':'p3','store_id':'st1','category_id':'revcat','kind':'image','title':'Img','"
        "price':5")},
     "op",
     "ReviewProduct",
     "'product_id':'p3','approve':false,'reason':'blurry'",
     "OK",
     .at = 0},
    {"review listed product",
     {{0}},
     "op",
     "ReviewProduct",
     "'product_id':'p1','approve':false",
     "PRODUCT_STATE",
     .at = 0},
    {"change price", {{0}}, "bob", "ChangePrice", "'product_id':'p1','price':1200", "OK", .at = 0},
    {"change price removed",
     {SANCTION("s-rc", "remove_content", "product", "p1")},
     "bob",
     "ChangePrice",
     "'product_id':'p1','price':1200",
     "PRODUCT_STATE",
     .at = 0},
    {"delist", {{0}}, "bob", "DelistProduct", "'product_id':'p1'", "OK", .at = 0},
    {"delist delisted",
     {S("bob", "DelistProduct", "'product_id':'p1'")},
     "bob",
     "DelistProduct",
     "'product_id':'p1'",
     "PRODUCT_STATE",
     .at = 0},
    {"relist",
     {S("bob", "DelistProduct", "'product_id':'p1'")},
     "bob",
     "RelistProduct",
     "'product_id':'p1'",
     "OK",
     .at = 0},
    {"relist sanctioned",
     {SANCTION("s-d", "delist_product", "product", "p1")},
     "bob",
     "RelistProduct",
     "'product_id':'p1'",
     "SANCTIONED",
     .at = 0},
    {"relist listed", {{0}}, "bob", "RelistProduct", "'product_id':'p1'", "PRODUCT_STATE", .at = 0},
    {"relist store closed",
     {S("bob", "DelistProduct", "'product_id':'p1'"), S("bob", "CloseStore", "'store_id':'st1'")},
     "bob",
     "RelistProduct",
     "'product_id':'p1'",
     "STORE_CLOSED",
     .at = 0},
    {"relist retired",
     {S("bob", "DelistProduct", "'product_id':'p1'"),
      S("op", "RetireCategory", "'category_id':'cat'")},
     "bob",
     "RelistProduct",
     "'product_id':'p1'",
     "CATEGORY_RETIRED",
     .at = 0},
    /* ---- money and orders ---- */
    {"deposit",
     {{0}},
     "alice",
     "DepositFunds",
     "'amount':500,'payment_ref':'pay-2'",
     "OK",
     .at = 0},
    {"deposit duplicate",
     {{0}},
     "bob",
     "DepositFunds",
     "'amount':500,'payment_ref':'pay-1'",
     "DUPLICATE_PAYMENT",
     .at = 0},
    {"withdraw", {{0}}, "alice", "WithdrawFunds", "'amount':500", "OK", .at = 0},
    {"withdraw frozen",
     {SANCTION("s-f", "freeze_balance", "member", "alice")},
     "alice",
     "WithdrawFunds",
     "'amount':500",
     "BALANCE_FROZEN",
     .at = 0},
    {"withdraw too much",
     {{0}},
     "alice",
     "WithdrawFunds",
     "'amount':1000000",
     "INSUFFICIENT_FUNDS",
     .at = 0},
    {"place order",
     {{0}},
     "carol",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','quantity':3",
     "OK",
     .at = 0},
    {"place order voucher",
     {{0}},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','voucher_id':'v1'",
     "OK",
     .at = 0},
    {"place order exists",
     {{0}},
     "alice",
     "PlaceOrder",
     "'order_id':'o-paid','product_id':'p1'",
     "ALREADY_EXISTS",
     .at = 0},
    {"place order unknown product",
     {{0}},
     "alice",
     "PlaceOrder",
     "'order_id':'o-paid','product_id':'nope'",
     "NOT_FOUND",
     .at = 0},
    {"self dealing",
     {{0}},
     "bob",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "SELF_DEALING",
     .at = 0},
    {"ordering restricted",
     {SANCTION("s-r", "restrict_ordering", "member", "alice")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "ORDERING_RESTRICTED",
     .at = 0},
    {"product unavailable",
     {S("bob", "DelistProduct", "'product_id':'p1'")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "PRODUCT_UNAVAILABLE",
     .at = 0},
    {"order store closed",
     {S("bob", "CloseStore", "'store_id':'st1'")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "STORE_CLOSED",
     .at = 0},
    {"provider suspended",
     {SANCTION("s-s", "suspend_account", "member", "bob")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "PROVIDER_UNAVAILABLE",
     .at = 0},
    {"voucher unknown",
     {{0}},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','voucher_id':'nope'",
     "NOT_FOUND",
     .at = 0},
    {"voucher not held",
     {{0}},
     "carol",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','voucher_id':'v1'",
     "VOUCHER_NOT_HELD",
     .at = 0},
    {"voucher used",
     {S("alice", "PlaceOrder", "'order_id':'o8','product_id':'p1','voucher_id':'v1'")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','voucher_id':'v1'",
     "VOUCHER_USED",
     .at = 0},
    {"voucher expired",
     {{0}},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1','voucher_id':'v1'",
     "VOUCHER_EXPIRED",
     .at = 60 * 24 * FX_HOUR},
    {"pay", {{0}}, "alice", "PayOrder", "'order_id':'o-placed'", "OK", .at = 0},
    {"pay forbidden", {{0}}, "carol", "PayOrder", "'order_id':'o-placed'", "FORBIDDEN", .at = 0},
    {"pay twice", {{0}}, "alice", "PayOrder", "'order_id':'o-paid'", "ORDER_STATE", .at = 0},
    {"pay frozen",
     {SANCTION("s-f", "freeze_balance", "member", "alice")},
     "alice",
     "PayOrder",
     "'order_id':'o-placed'",
     "BALANCE_FROZEN",
     .at = 0},
    {"pay broke",
     {S("carol", "PlaceOrder", "'order_id':'o9','product_id':'p1'")},
     "carol",
     "PayOrder",
     "'order_id':'o9'",
     "INSUFFICIENT_FUNDS",
     .at = 0},
    {"deliver", {{0}}, "bob", "DeliverOrder", "'order_id':'o-paid','note':'sent'", "OK", .at = 0},
    {"deliver unpaid",
     {{0}},
     "bob",
     "DeliverOrder",
     "'order_id':'o-placed'",
     "ORDER_STATE",
     .at = 0},
    {"confirm", {{0}}, "alice", "ConfirmOrder", "'order_id':'o-del'", "OK", .at = 0},
    {"confirm undelivered",
     {{0}},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-paid'",
     "ORDER_STATE",
     .at = 0},
    {"confirm disputed",
     {COMPLAIN("q1", "o-del")},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-del'",
     "ORDER_IN_DISPUTE",
     .at = 0},
    {"cancel by provider", {{0}}, "bob", "CancelOrder", "'order_id':'o-placed'", "OK", .at = 0},
    {"cancel paid",
     {{0}},
     "alice",
     "CancelOrder",
     "'order_id':'o-paid','reason':'changed my mind'",
     "OK",
     .at = 0},
    {"cancel restores voucher",
     {S("alice", "PlaceOrder", "'order_id':'o9','product_id':'p1','voucher_id':'v1'")},
     "alice",
     "CancelOrder",
     "'order_id':'o9'",
     "OK",
     .at = 0},
    {"cancel delivered",
     {{0}},
     "alice",
     "CancelOrder",
     "'order_id':'o-del'",
     "ORDER_STATE",
     .at = 0},
    {"cancel disputed",
     {COMPLAIN("q1", "o-paid")},
     "alice",
     "CancelOrder",
     "'order_id':'o-paid'",
     "ORDER_IN_DISPUTE",
     .at = 0},
    {"cancel forbidden", {{0}}, "op", "CancelOrder", "'order_id':'o-placed'", "FORBIDDEN", .at = 0},
    /* ---- vouchers ---- */
    {"issue voucher",
     {{0}},
     "op",
     "IssueVoucher",
     "'voucher_id':'v2','member_id':'carol','value':100,'expires_at':'2027-01-01T00:00:00.5Z','new_"
     "member_promo':true",
     "OK",
     .at = 0},
    {"issue voucher unknown",
     {{0}},
     "op",
     "IssueVoucher",
     "'voucher_id':'v2','member_id':'ghost','value':100,'expires_at':'2027-01-01T00:00:00Z'",
     "NOT_FOUND",
     .at = 0},
    {"issue voucher closed",
     {SANCTION("s-c", "close_account", "member", "dave")},
     "op",
     "IssueVoucher",
     "'voucher_id':'v2','member_id':'dave','value':100,'expires_at':'2027-01-01T00:00:00Z'",
     "ACCOUNT_CLOSED",
     .at = 0},
    {"promo claimed",
     {S("op", "IssueVoucher",
        "'voucher_id':'v2','member_id':'alice','value':1,'expires_at':'2027-01-01T00:00:00Z','new_"
        "member_promo':true")},
     "op",
     "IssueVoucher",
     "'voucher_id':'v3','member_id':'carol','value':1,'expires_at':'2027-01-01T00:00:00Z','new_"
     "member_promo':true",
     "PROMO_ALREADY_CLAIMED",
     .at = 0},
    {"transfer voucher",
     {{0}},
     "alice",
     "TransferVoucher",
     "'voucher_id':'v1','to':'carol'",
     "VOUCHER_NOT_TRANSFERABLE",
     .at = 0},
    {"transfer voucher forbidden",
     {{0}},
     "carol",
     "TransferVoucher",
     "'voucher_id':'v1','to':'carol'",
     "FORBIDDEN",
     .at = 0},
    /* ---- reviews and messages ---- */
    {"review",
     {{0}},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-done','rating':5,'text':'Great'",
     "OK",
     .at = 0},
    {"review muted",
     {MUTE("alice")},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-done','rating':5,'text':'Great'",
     "MEMBER_MUTED",
     .at = 0},
    {"review not completed",
     {{0}},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-del','rating':5,'text':'Great'",
     "ORDER_STATE",
     .at = 0},
    {"review twice",
     {S("alice", "PostReview", "'review_id':'r1','order_id':'o-done','rating':4,'text':'ok'")},
     "alice",
     "PostReview",
     "'review_id':'r2','order_id':'o-done','rating':5,'text':'Great'",
     "REVIEW_EXISTS",
     .at = 0},
    {"review prohibited",
     {S("op", "ProhibitTerm", "'term':'scam'")},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-done','rating':1,'text':'a SCAM'",
     "PROHIBITED_CONTENT",
     .at = 0},
    {"review contact",
     {{0}},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-done','rating':1,'text':'mail me a@b.cn'",
     "OFF_PLATFORM_TRADE",
     .at = 0},
    {"review forbidden",
     {{0}},
     "bob",
     "PostReview",
     "'review_id':'r1','order_id':'o-done','rating':1,'text':'x'",
     "FORBIDDEN",
     .at = 0},
    {"message",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'hello','order_id':'o-paid'",
     "OK",
     .at = 0},
    {"message unknown to",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'ghost','text':'hello'",
     "NOT_FOUND",
     .at = 0},
    {"message muted",
     {MUTE("alice")},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'hello'",
     "MEMBER_MUTED",
     .at = 0},
    {"message prohibited",
     {S("op", "ProhibitTerm", "'term':'warez'")},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'got Warez?'",
     "PROHIBITED_CONTENT",
     .at = 0},
    {"message contact",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'call 13800138000'",
     "OFF_PLATFORM_TRADE",
     .at = 0},
    /* ---- complaints ---- */
    {"complaint",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late'",
     "OK",
     .at = 0},
    {"complaint by provider",
     {{0}},
     "bob",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-del','reason':'abuse'",
     "OK",
     .at = 0},
    {"complaint unpaid",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-placed','reason':'x'",
     "ORDER_STATE",
     .at = 0},
    {"complaint exists",
     {COMPLAIN("q1", "o-paid")},
     "alice",
     "FileComplaint",
     "'complaint_id':'q2','order_id':'o-paid','reason':'x'",
     "COMPLAINT_EXISTS",
     .at = 0},
    {"complaint forbidden",
     {{0}},
     "carol",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'x'",
     "FORBIDDEN",
     .at = 0},
    {"arbitration",
     {COMPLAIN("q1", "o-paid")},
     "alice",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "OK",
     .at = 0},
    {"arbitration twice",
     {COMPLAIN("q1", "o-paid"), S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "alice",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "COMPLAINT_STATE",
     .at = 0},
    {"arbitration by respondent",
     {COMPLAIN("q1", "o-paid")},
     "bob",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "OK",
     .at = 0},
    {"arbitration forbidden",
     {COMPLAIN("q1", "o-paid")},
     "carol",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "FORBIDDEN",
     .at = 0},
    {"defense",
     {COMPLAIN("q1", "o-paid")},
     "bob",
     "SubmitDefense",
     "'complaint_id':'q1','statement':'it was sent'",
     "OK",
     .at = 0},
    {"defense suspended",
     {COMPLAIN("q1", "o-paid"), SANCTION("s-s", "suspend_account", "member", "bob")},
     "bob",
     "SubmitDefense",
     "'complaint_id':'q1','statement':'s'",
     "OK",
     .at = 0},
    {"defense withdrawn",
     {COMPLAIN("q1", "o-paid"), S("alice", "WithdrawComplaint", "'complaint_id':'q1'")},
     "bob",
     "SubmitDefense",
     "'complaint_id':'q1','statement':'s'",
     "COMPLAINT_STATE",
     .at = 0},
    {"withdraw complaint",
     {COMPLAIN("q1", "o-paid")},
     "alice",
     "WithdrawComplaint",
     "'complaint_id':'q1'",
     "OK",
     .at = 0},
    {"withdraw withdrawn",
     {COMPLAIN("q1", "o-paid"), S("alice", "WithdrawComplaint", "'complaint_id':'q1'")},
     "alice",
     "WithdrawComplaint",
     "'complaint_id':'q1'",
     "COMPLAINT_STATE",
     .at = 0},
    {"rule refund",
     {COMPLAIN("q1", "o-paid"), S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'refund_buyer'",
     "OK",
     .at = 0},
    {"rule split",
     {COMPLAIN("q1", "o-paid"), S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'split','refund_amount':400",
     "OK",
     .at = 0},
    {"rule split too much",
     {COMPLAIN("q1", "o-paid"), S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'split','refund_amount':1000",
     "INVALID_FIELD",
     .at = 0},
    {"rule refund amount",
     {{0}},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'refund_buyer','refund_amount':1",
     "INVALID_FIELD",
     .at = 0},
    {"rule refund restores voucher",
     {S("alice", "PlaceOrder", "'order_id':'o9','product_id':'p1','voucher_id':'v1'"),
      S("alice", "PayOrder", "'order_id':'o9'"), COMPLAIN("q1", "o9"),
      S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'refund_buyer'",
     "OK",
     .at = 0},
    {"rule not arbitration",
     {COMPLAIN("q1", "o-paid")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'release_provider'",
     "COMPLAINT_STATE",
     .at = 0},
    /* ---- sanctions ---- */
    {"sanction notice",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'notice','target_type':'member','target_id':'bob','reason':'fix "
     "it','clause':'4.2.6'",
     "OK",
     .at = 0},
    {"sanction close order",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'close_order','target_type':'order','target_id':'o-paid','"
     "reason':'fraud','clause':'3.3.3'",
     "OK",
     .at = 0},
    {"sanction close order restores voucher",
     {S("alice", "PlaceOrder", "'order_id':'o9','product_id':'p1','voucher_id':'v1'")},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'close_order','target_type':'order','target_id':'o9','reason':'"
     "fraud','clause':'3.3.3'",
     "OK",
     .at = 0},
    {"sanction misfit",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'mute','target_type':'order','target_id':'o-paid','reason':'r','"
     "clause':'3.3.3'",
     "INVALID_FIELD",
     .at = 0},
    {"sanction bad clause",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'mute','target_type':'member','target_id':'bob','reason':'r','"
     "clause':'9.1'",
     "INVALID_FIELD",
     .at = 0},
    {"sanction expiry on notice",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'notice','target_type':'member','target_id':'bob','reason':'r','"
     "clause':'3.3','expires_at':'2027-01-01T00:00:00Z'",
     "INVALID_FIELD",
     .at = 0},
    {"sanction unknown target",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'mute','target_type':'member','target_id':'ghost','reason':'r','"
     "clause':'3.3.3'",
     "NOT_FOUND",
     .at = 0},
    {"sanction active",
     {MUTE("bob")},
     "op",
     "ApplySanction",
     "'sanction_id':'s2','measure':'mute','target_type':'member','target_id':'bob','reason':'r','"
     "clause':'3.3.3'",
     "SANCTION_ACTIVE",
     .at = 0},
    {"sanction finished order",
     {{0}},
     "op",
     "ApplySanction",
     "'sanction_id':'s1','measure':'close_order','target_type':'order','target_id':'o-done','"
     "reason':'r','clause':'3.3.3'",
     "ORDER_STATE",
     .at = 0},
    {"sanction forbidden",
     {{0}},
     "alice",
     "ApplySanction",
     "'sanction_id':'s1','measure':'notice','target_type':'member','target_id':'bob','reason':'r','"
     "clause':'3.3.3'",
     "FORBIDDEN",
     .at = 0},
    {"lift",
     {MUTE("bob")},
     "op",
     "LiftSanction",
     "'sanction_id':'s-m','reason':'appeal granted'",
     "OK",
     .at = 0},
    {"lift irreversible",
     {SANCTION("s-n", "notice", "member", "bob")},
     "op",
     "LiftSanction",
     "'sanction_id':'s-n','reason':'r'",
     "SANCTION_IRREVERSIBLE",
     .at = 0},
    {"lift lifted",
     {MUTE("bob"), S("op", "LiftSanction", "'sanction_id':'s-m','reason':'r'")},
     "op",
     "LiftSanction",
     "'sanction_id':'s-m','reason':'r'",
     "SANCTION_NOT_ACTIVE",
     .at = 0},
    {"appeal",
     {SANCTION("s-c", "close_account", "member", "dave")},
     "dave",
     "AppealSanction",
     "'sanction_id':'s-c','statement':'mistake'",
     "OK",
     .at = 0},
    {"appeal store owner",
     {SANCTION("s-cs", "close_store", "store", "st1")},
     "bob",
     "AppealSanction",
     "'sanction_id':'s-cs','statement':'mistake'",
     "OK",
     .at = 0},
    {"appeal twice",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'")},
     "bob",
     "AppealSanction",
     "'sanction_id':'s-m','statement':'y'",
     "APPEAL_EXISTS",
     .at = 0},
    {"appeal forbidden",
     {MUTE("bob")},
     "alice",
     "AppealSanction",
     "'sanction_id':'s-m','statement':'x'",
     "FORBIDDEN",
     .at = 0},
    /* ---- personal data and maintenance ---- */
    {"consent",
     {{0}},
     "alice",
     "GrantConsent",
     "'consent_id':'k1','recipient':'Acme Insurance','scope':'identity'",
     "OK",
     .at = 0},
    {"consent exists",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'all'")},
     "alice",
     "GrantConsent",
     "'consent_id':'k1','recipient':'Acme','scope':'all'",
     "ALREADY_EXISTS",
     .at = 0},
    {"revoke consent",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'all'")},
     "alice",
     "RevokeConsent",
     "'consent_id':'k1'",
     "OK",
     .at = 0},
    {"revoke consent twice",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'all'"),
      S("alice", "RevokeConsent", "'consent_id':'k1'")},
     "alice",
     "RevokeConsent",
     "'consent_id':'k1'",
     "CONSENT_STATE",
     .at = 0},
    {"revoke consent forbidden",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'all'")},
     "bob",
     "RevokeConsent",
     "'consent_id':'k1'",
     "FORBIDDEN",
     .at = 0},
    {"disclose law",
     {{0}},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'alice','recipient':'Court','basis':'law','scope':'all','"
     "reference':'case 7'",
     "OK",
     .at = 0},
    {"disclose consent",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'all'")},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'alice','recipient':'Acme','basis':'consent','scope':'"
     "identity','reference':'r'",
     "OK",
     .at = 0},
    {"disclose no consent",
     {S("alice", "GrantConsent", "'consent_id':'k1','recipient':'Acme','scope':'identity'")},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'alice','recipient':'Acme','basis':'consent','scope':'"
     "transactions','reference':'r'",
     "CONSENT_REQUIRED",
     .at = 0},
    {"disclose violation",
     {SANCTION("s-n", "notice", "member", "bob")},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'bob','recipient':'Police','basis':'violation','scope':'all','"
     "reference':'r'",
     "OK",
     .at = 0},
    {"disclose no violation",
     {{0}},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'bob','recipient':'Police','basis':'violation','scope':'all','"
     "reference':'r'",
     "NO_VIOLATION_ON_RECORD",
     .at = 0},
    {"disclose unknown subject",
     {{0}},
     "op",
     "DiscloseRecords",
     "'disclosure_id':'d1','subject':'ghost','recipient':'P','basis':'law','scope':'all','"
     "reference':'r'",
     "NOT_FOUND",
     .at = 0},
    {"schedule",
     {{0}},
     "op",
     "ScheduleMaintenance",
     "'window_id':'w1','starts_at':'2026-12-01T00:00:00Z','ends_at':'2026-12-01T02:00:00Z'",
     "OK",
     .at = 0},
    {"schedule backwards",
     {{0}},
     "op",
     "ScheduleMaintenance",
     "'window_id':'w1','starts_at':'2026-12-01T02:00:00Z','ends_at':'2026-12-01T00:00:00Z'",
     "INVALID_FIELD",
     .at = 0},
    {"schedule exists",
     {WINDOW},
     "op",
     "ScheduleMaintenance",
     "'window_id':'w1','starts_at':'2026-12-01T00:00:00Z','ends_at':'2026-12-01T02:00:00Z'",
     "ALREADY_EXISTS",
     .at = 0},
    {"cancel future window",
     {S("op", "ScheduleMaintenance",
        "'window_id':'w2','starts_at':'2026-12-01T00:00:00Z','ends_at':'2026-12-01T02:00:00Z'")},
     "op",
     "CancelMaintenance",
     "'window_id':'w2'",
     "OK",
     .at = 0},
    {"cancel window", {WINDOW}, "op", "CancelMaintenance", "'window_id':'w1'", "OK", .at = 0},
    {"cancel window twice",
     {WINDOW, S("op", "CancelMaintenance", "'window_id':'w1'")},
     "op",
     "CancelMaintenance",
     "'window_id':'w1'",
     "NOT_FOUND",
     .at = 0},
    {"cancel window unknown",
     {{0}},
     "op",
     "CancelMaintenance",
     "'window_id':'w1'",
     "NOT_FOUND",
     .at = 0},
    {"cancel window forbidden",
     {S("op", "ScheduleMaintenance",
        "'window_id':'w2','starts_at':'2026-12-01T00:00:00Z','ends_at':'2026-12-01T02:00:00Z'")},
     "alice",
     "CancelMaintenance",
     "'window_id':'w2'",
     "FORBIDDEN",
     .at = 0},
    /* ---- policy, timers, after-sales, holds, appeals, evidence, fixes ---- */
    {"timer prefix reserved",
     {{0}},
     0,
     0,
     0,
     "MALFORMED",
     .raw = "{'command_id':'timer:auto_confirm:o-1','type':'Tick','actor':'op','data':{}}"},
    {"register system",
     {{0}},
     "system",
     "RegisterMember",
     "'member_id':'system','kind':'individual','name':'S','identity_hash':'" HEX_C "'",
     "INVALID_FIELD",
     .at = 0},
    {"actor system", {{0}}, "system", "Tick", "", "MEMBER_NOT_REGISTERED", .at = 0},
    {"agreement version 64-bit",
     {{0}},
     "op",
     "PublishAgreement",
     "'version':3000000000,'title':'T','digest':'" HEX_A "'",
     "OK",
     .at = 0},
    {"set policy",
     {{0}},
     "op",
     "SetPolicy",
     "'after_sales_days':15,'auto_confirm_days':10,'defense_days':3,'settlement_hold_days':15,'"
     "appeal_days':7",
     "OK",
     .at = 0},
    {"set policy zeros",
     {POLICY},
     "op",
     "SetPolicy",
     "'after_sales_days':0,'auto_confirm_days':0,'defense_days':0,'settlement_hold_days':0,'appeal_"
     "days':0",
     "OK",
     .at = 0},
    {"set policy forbidden",
     {{0}},
     "alice",
     "SetPolicy",
     "'after_sales_days':0,'auto_confirm_days':0,'defense_days':0,'settlement_hold_days':0,'appeal_"
     "days':0",
     "FORBIDDEN",
     .at = 0},
    {"set policy hold below window",
     {{0}},
     "op",
     "SetPolicy",
     "'after_sales_days':15,'auto_confirm_days':0,'defense_days':0,'settlement_hold_days':14,'"
     "appeal_days':0",
     "INVALID_FIELD",
     .at = 0},
    {"set policy out of range",
     {{0}},
     "op",
     "SetPolicy",
     "'after_sales_days':0,'auto_confirm_days':366,'defense_days':0,'settlement_hold_days':0,'"
     "appeal_days':0",
     "INVALID_FIELD",
     .at = 0},
    {"set policy missing",
     {{0}},
     "op",
     "SetPolicy",
     "'after_sales_days':0,'auto_confirm_days':0,'defense_days':0,'settlement_hold_days':0",
     "INVALID_FIELD",
     .at = 0},
    {"tick", {{0}}, "op", "Tick", "", "OK", .at = 0},
    {"tick forbidden", {{0}}, "alice", "Tick", "", "FORBIDDEN", .at = 0},
    {"tick maintenance", {WINDOW}, "alice", "Tick", "", "SERVICE_UNAVAILABLE", .at = 0},
    {"tick field", {{0}}, "op", "Tick", "'x':1", "INVALID_FIELD", .at = 0},
    {"confirm before auto",
     {POLICY, S("bob", "DeliverOrder", "'order_id':'o-paid'")},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-paid'",
     "OK",
     .at = 10 * DAY - 1},
    {"confirm after auto",
     {POLICY, S("bob", "DeliverOrder", "'order_id':'o-paid'")},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-paid'",
     "ORDER_STATE",
     .at = 10 * DAY},
    {"auto confirm held by complaint",
     {POLICY, S("bob", "DeliverOrder", "'order_id':'o-paid'"), COMPLAIN("q1", "o-paid"),
      ST("alice", "WithdrawComplaint", "'complaint_id':'q1'", 12 * DAY)},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-paid'",
     "OK",
     .at = 13 * DAY - 1},
    {"auto confirm after complaint",
     {POLICY, S("bob", "DeliverOrder", "'order_id':'o-paid'"), COMPLAIN("q1", "o-paid"),
      ST("alice", "WithdrawComplaint", "'complaint_id':'q1'", 12 * DAY)},
     "alice",
     "ConfirmOrder",
     "'order_id':'o-paid'",
     "ORDER_STATE",
     .at = 13 * DAY},
    {"withdraw held",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'")},
     "bob",
     "WithdrawFunds",
     "'amount':2500",
     "INSUFFICIENT_FUNDS",
     .at = 15 * DAY - 1},
    {"withdraw released",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'")},
     "bob",
     "WithdrawFunds",
     "'amount':2500",
     "OK",
     .at = 15 * DAY},
    {"after-sales complaint",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'")},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-del','reason':'broke'",
     "OK",
     .at = 15 * DAY - 1},
    {"after-sales closed",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'")},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-del','reason':'broke'",
     "AFTER_SALES_CLOSED",
     .at = 15 * DAY},
    {"after-sales by provider",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'")},
     "bob",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-del','reason':'x'",
     "ORDER_STATE",
     .at = 0},
    {"after-sales no window",
     {POLICY},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-done','reason':'x'",
     "ORDER_STATE",
     .at = 0},
    {"after-sales exists",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'"), COMPLAIN("q1", "o-del")},
     "alice",
     "FileComplaint",
     "'complaint_id':'q2','order_id':'o-del','reason':'x'",
     "COMPLAINT_EXISTS",
     .at = 0},
    {"after-sales split",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'"), COMPLAIN("q1", "o-del"),
      S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'split','refund_amount':400",
     "OK",
     .at = 0},
    {"after-sales split too much",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'"), COMPLAIN("q1", "o-del"),
      S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'split','refund_amount':1000",
     "INVALID_FIELD",
     .at = 0},
    {"after-sales refund",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'"), COMPLAIN("q1", "o-del"),
      S("alice", "ApplyArbitration", "'complaint_id':'q1'")},
     "op",
     "RuleOnDispute",
     "'complaint_id':'q1','decision':'refund_buyer'",
     "OK",
     .at = 0},
    {"review after-sales refund",
     {POLICY, S("alice", "ConfirmOrder", "'order_id':'o-del'"), COMPLAIN("q1", "o-del"),
      S("alice", "ApplyArbitration", "'complaint_id':'q1'"),
      S("op", "RuleOnDispute", "'complaint_id':'q1','decision':'refund_buyer'")},
     "alice",
     "PostReview",
     "'review_id':'r1','order_id':'o-del','rating':1,'text':'bad'",
     "ORDER_STATE",
     .at = 0},
    {"defense escalates",
     {POLICY, COMPLAIN("q1", "o-paid")},
     "alice",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "COMPLAINT_STATE",
     .at = 3 * DAY},
    {"defense in time",
     {POLICY, COMPLAIN("q1", "o-paid"),
      S("bob", "SubmitDefense", "'complaint_id':'q1','statement':'sent'")},
     "alice",
     "ApplyArbitration",
     "'complaint_id':'q1'",
     "OK",
     .at = 3 * DAY},
    {"defense after escalation",
     {POLICY, COMPLAIN("q1", "o-paid")},
     "bob",
     "SubmitDefense",
     "'complaint_id':'q1','statement':'late'",
     "OK",
     .at = 3 * DAY},
    {"complaint evidence",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late','evidence':[{'sha256':'" HEX_A
     "','name':'screen.png','bytes':2048},{'sha256':'" HEX_B "','name':'log.txt','bytes':1}]",
     "OK",
     .at = 0},
    {"defense evidence",
     {COMPLAIN("q1", "o-paid")},
     "bob",
     "SubmitDefense",
     "'complaint_id':'q1','statement':'sent','evidence':[{'sha256':'" HEX_C
     "','name':'receipt.pdf','bytes':10000000000}]",
     "OK",
     .at = 0},
    {"evidence empty",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late','evidence':[]",
     "INVALID_FIELD",
     .at = 0},
    {"evidence twice",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late','evidence':[{'sha256':'" HEX_A
     "','name':'a','bytes':1},{'sha256':'" HEX_A "','name':'b','bytes':2}]",
     "INVALID_FIELD",
     .at = 0},
    {"evidence extra key",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late','evidence':[{'sha256':'" HEX_A
     "','name':'a','bytes':1,'url':'x'}]",
     "INVALID_FIELD",
     .at = 0},
    {"evidence too big",
     {{0}},
     "alice",
     "FileComplaint",
     "'complaint_id':'q1','order_id':'o-paid','reason':'late','evidence':[{'sha256':'" HEX_A
     "','name':'a','bytes':10000000001}]",
     "INVALID_FIELD",
     .at = 0},
    {"appeal in window",
     {POLICY, MUTE("bob")},
     "bob",
     "AppealSanction",
     "'sanction_id':'s-m','statement':'x'",
     "OK",
     .at = 7 * DAY - 1},
    {"appeal window closed",
     {POLICY, MUTE("bob")},
     "bob",
     "AppealSanction",
     "'sanction_id':'s-m','statement':'x'",
     "APPEAL_WINDOW_CLOSED",
     .at = 7 * DAY},
    {"appeal before policy",
     {MUTE("bob"), POLICY},
     "bob",
     "AppealSanction",
     "'sanction_id':'s-m','statement':'x'",
     "OK",
     .at = 300 * DAY},
    {"rule on appeal",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'")},
     "op",
     "RuleOnAppeal",
     "'sanction_id':'s-m','decision':'overturned','reason':'no spam found'",
     "OK",
     .at = 0},
    {"rule on appeal upheld",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'")},
     "op",
     "RuleOnAppeal",
     "'sanction_id':'s-m','decision':'upheld','reason':'spam'",
     "OK",
     .at = 0},
    {"rule on no appeal",
     {MUTE("bob")},
     "op",
     "RuleOnAppeal",
     "'sanction_id':'s-m','decision':'upheld','reason':'r'",
     "APPEAL_STATE",
     .at = 0},
    {"rule on appeal twice",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'"),
      S("op", "RuleOnAppeal", "'sanction_id':'s-m','decision':'upheld','reason':'r'")},
     "op",
     "RuleOnAppeal",
     "'sanction_id':'s-m','decision':'overturned','reason':'r'",
     "APPEAL_STATE",
     .at = 0},
    {"rule on appeal forbidden",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'")},
     "alice",
     "RuleOnAppeal",
     "'sanction_id':'s-m','decision':'upheld','reason':'r'",
     "FORBIDDEN",
     .at = 0},
    {"rule on appeal unknown",
     {{0}},
     "op",
     "RuleOnAppeal",
     "'sanction_id':'nope','decision':'upheld','reason':'r'",
     "NOT_FOUND",
     .at = 0},
    {"lift after overturn",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'"),
      S("op", "RuleOnAppeal", "'sanction_id':'s-m','decision':'overturned','reason':'r'")},
     "op",
     "LiftSanction",
     "'sanction_id':'s-m','reason':'r'",
     "SANCTION_NOT_ACTIVE",
     .at = 0},
    {"muted after upheld",
     {MUTE("bob"), S("bob", "AppealSanction", "'sanction_id':'s-m','statement':'x'"),
      S("op", "RuleOnAppeal", "'sanction_id':'s-m','decision':'upheld','reason':'r'")},
     "bob",
     "SendMessage",
     "'message_id':'g1','to':'alice','text':'hi'",
     "MEMBER_MUTED",
     .at = 0},
    {"self dealing identity",
     {S("bob2", "RegisterMember",
        "'member_id':'bob2','kind':'individual','name':'B2','identity_hash':'" HEX_B "'")},
     "bob2",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p1'",
     "SELF_DEALING",
     .at = 0},
    {"revoke license delists",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'"),
      S("bob", "PublishProduct",
        "'product_id':'p2','store_id':'st1','category_id':'rcat','kind':'image','title':'Img','"
        "price':5"),
      S("op", "RevokeLicense", "'member_id':'bob','category_id':'rcat'")},
     "alice",
     "PlaceOrder",
     "'order_id':'o9','product_id':'p2'",
     "PRODUCT_UNAVAILABLE",
     .at = 0},
    {"relist unlicensed",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'"),
      S("bob", "PublishProduct",
        "'product_id':'p2','store_id':'st1','category_id':'rcat','kind':'image','title':'Img','"
        "price':5"),
      S("op", "RevokeLicense", "'member_id':'bob','category_id':'rcat'")},
     "bob",
     "RelistProduct",
     "'product_id':'p2'",
     "PRODUCT_RESTRICTED",
     .at = 0},
    {"relist relicensed",
     {S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'"),
      S("bob", "PublishProduct",
        "'product_id':'p2','store_id':'st1','category_id':'rcat','kind':'image','title':'Img','"
        "price':5"),
      S("op", "RevokeLicense", "'member_id':'bob','category_id':'rcat'"),
      S("op", "GrantLicense", "'member_id':'bob','category_id':'rcat'")},
     "bob",
     "RelistProduct",
     "'product_id':'p2'",
     "OK",
     .at = 0},
    {"full-width phone",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'call "
     "\xef\xbc\x91\xef\xbc\x93\xef\xbc\x98\xe3\x80\x80\xef\xbc\x90\xef\xbc\x90\xef\xbc\x91\xef\xbc"
     "\x93\xe3\x80\x80\xef\xbc\x98\xef\xbc\x90\xef\xbc\x90\xef\xbc\x90'",
     "OFF_PLATFORM_TRADE",
     .at = 0},
    {"full-width email",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'bob\xef\xbc\xa0"
     "example\xef\xbc\x8e"
     "com'",
     "OFF_PLATFORM_TRADE",
     .at = 0},
    {"full-width term",
     {S("op", "ProhibitTerm",
        "'term':'\xef\xbc\xa3\xef\xbc\xb2\xef\xbc\xa1\xef\xbc\xa3\xef\xbc\xab'")},
     "op",
     "ProhibitTerm",
     "'term':'crack'",
     "ALREADY_EXISTS",
     .at = 0},
    {"full-width term in title",
     {S("op", "ProhibitTerm", "'term':'crack'")},
     "bob",
     "PublishProduct",
     "'product_id':'p2','store_id':'st1','category_id':'cat','kind':'image','title':'"
     "\xef\xbd\x83rack kit','price':5",
     "PROHIBITED_CONTENT",
     .at = 0},
    {"half-width digits stay",
     {{0}},
     "alice",
     "SendMessage",
     "'message_id':'g1','to':'bob','text':'room "
     "\xd9\xa1\xd9\xa3\xd9\xa8\xd9\xa0\xd9\xa0\xd9\xa1\xd9\xa3\xd9\xa8\xd9\xa0\xd9\xa0\xd9\xa0'",
     "OK",
     .at = 0},
};
#define N_CASES (sizeof cases / sizeof cases[0])

/* Codes and accepted command types seen by test_rules_cases. */
static bool code_seen[MD_CODE_COUNT_];
static bool type_accepted[MD_CMD_COUNT_];

/* The CommandRejected event carries the code, the clause and the message. */
static void check_rejection_event(fx_t *w, const char *name)
{
    const rules_mem_event_t *e = rules_mem_event(w->m, rules_mem_count(w->m) - 1);
    char code[40] = "", clause[16] = "";
    assert_string_equal(e->ev.type, "CommandRejected");
    assert_string_equal(e->ev.stream, "rejections");
    assert_int_equal(md_data_copy_str(e->ev.data, e->ev.data_len, "code", code, sizeof code),
                     MD_OK);
    assert_string_equal(code, w->d.code_name);
    md_err_t rc = md_data_copy_str(e->ev.data, e->ev.data_len, "clause", clause, sizeof clause);
    if (w->d.clause == NULL && !w->d.malformed)
        assert_int_equal(rc, MD_ENOTFOUND);
    else if (!w->d.malformed)
        assert_string_equal(clause, w->d.clause);
    if (!w->d.malformed && w->d.message[0] == '\0')
        fail_msg("case '%s': empty message", name);
}

/* ---- the contract of each command type (md_rules_codes_of, md_rules_events_of) ----
 * Every decision of a case (its world's steps included) is checked against its
 * type's contract, and what it answered or appended is marked seen for that
 * type; test_rules_contract_covered then requires every listed code and event
 * to have been seen. So a rule that gains a code or an event, or a listed one
 * no rule produces any more, fails here. */
static bool code_seen_by[MD_CMD_COUNT_][MD_CODE_COUNT_];
static bool event_seen_by[MD_CMD_COUNT_][MD_CONTRACT_EVENTS_MAX];
#define TIMER_KINDS_MAX 8
static bool timer_event_seen[TIMER_KINDS_MAX][MD_CONTRACT_EVENTS_MAX];

static bool code_listed(md_cmd_type_t t, md_code_t code)
{
    md_code_t codes[MD_CODE_COUNT_];
    size_t n = md_rules_codes_of(t, codes);
    for (size_t i = 0; i < n; i++) {
        if (codes[i] == code)
            return true;
    }
    return false;
}

/* The last decision of w is within its type's contract; marks what it produced. */
static void contract_check(fx_t *w, const char *name)
{
    const md_decision_t *d = &w->d;
    if (!d->accepted && (d->code == MD_CODE_MALFORMED || d->code == MD_CODE_UNKNOWN_COMMAND)) {
        assert_true(md_rules_code_any(d->code)); /* before any type: "any command" */
        return;
    }
    if (w->cmd.spec == NULL)
        fail_msg("case '%s': %s without a command type", name, d->code_name);
    md_cmd_type_t t = w->cmd.spec->type;
    if (!d->accepted) {
        if (!code_listed(t, d->code))
            fail_msg("case '%s': %s answered %s, which its contract (rules/contract.c) does "
                     "not list",
                     name, w->cmd.spec->name, d->code_name);
        code_seen_by[t][d->code] = true;
        return;
    }
    const char *events[MD_CONTRACT_EVENTS_MAX];
    size_t n = md_rules_events_of(t, events);
    for (size_t i = 0; i < d->n_events; i++) {
        size_t j = 0;
        while (j < n && strcmp(events[j], d->events[i].type) != 0)
            j++;
        if (j == n)
            fail_msg("case '%s': %s appended %s, which its contract (rules/contract.c) does "
                     "not list",
                     name, w->cmd.spec->name, d->events[i].type);
        event_seen_by[t][j] = true;
    }
}

/* Every timer firing in w's log appended what its kind lists (rules/timers.c). */
static void timers_check(fx_t *w, const char *name)
{
    const char *kname, *what;
    const char *const *events;
    for (size_t i = 0; i < rules_mem_count(w->m); i++) {
        const md_event_t *ev = &rules_mem_event(w->m, i)->ev;
        size_t pn = strlen(MD_TIMER_CMDID_PREFIX), k = 0, j = 0;
        if (!ev->has_command_id || strncmp(ev->command_id, MD_TIMER_CMDID_PREFIX, pn) != 0)
            continue;
        for (; md_rules_timer_kind(k, &kname, &what, &events); k++) {
            size_t kl = strlen(kname);
            if (strncmp(ev->command_id + pn, kname, kl) == 0 && ev->command_id[pn + kl] == ':')
                break;
        }
        if (k >= TIMER_KINDS_MAX || !md_rules_timer_kind(k, &kname, &what, &events))
            fail_msg("case '%s': timer event of unknown kind (%s)", name, ev->command_id);
        while (events[j] != NULL && strcmp(events[j], ev->type) != 0)
            j++;
        if (events[j] == NULL)
            fail_msg("case '%s': timer %s appended %s, which rules/timers.c does not list", name,
                     kname, ev->type);
        timer_event_seen[k][j] = true;
    }
}

static void run_case(const tcase_t *tc)
{
    fx_t *w = fx_world();
    for (size_t i = 0; i < 6 && tc->pre[i].actor != NULL; i++) {
        w->now = FX_NOW + tc->pre[i].at;
        fx_ok(w, tc->pre[i].actor, tc->pre[i].type, tc->pre[i].data);
        contract_check(w, tc->name);
    }
    w->now = FX_NOW + tc->at;
    const char *got =
        tc->raw != NULL ? fx_raw(w, tc->raw) : fx_run(w, tc->actor, tc->type, tc->data, tc->extra);
    if (strcmp(got, tc->expect) != 0)
        fail_msg("case '%s': expected %s, got %s (%s)", tc->name, tc->expect, got, w->d.message);
    contract_check(w, tc->name);
    timers_check(w, tc->name);
    if (w->d.accepted) {
        type_accepted[w->cmd.spec->type] = true;
    } else {
        code_seen[w->d.code] = true;
        assert_ptr_equal(w->d.clause, md_code_clause(w->d.code));
        assert_int_equal(w->d.retryable, w->d.code == MD_CODE_SERVICE_UNAVAILABLE);
        check_rejection_event(w, tc->name);
    }
    fx_free(w);
}

static void test_rules_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CASES; i++)
        run_case(&cases[i]);
}

/* Must run after test_rules_cases. */
static void test_rules_every_code_produced(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPEC_CODES; i++) {
        md_code_t c = md_code_find(spec_codes[i].code);
        if (c == MD_CODE_NONE)
            fail_msg("code %s of rules.md is unknown to md_code_find", spec_codes[i].code);
        if (!code_seen[c])
            fail_msg("no test case produces %s", spec_codes[i].code);
    }
    assert_int_equal(N_SPEC_CODES, MD_CODE_COUNT_);
}

static void test_rules_every_command_accepted(void **state)
{
    (void)state;
    for (int t = 0; t < MD_CMD_COUNT_; t++) {
        if (t == MD_CMD_TRANSFER_ACCOUNT || t == MD_CMD_TRANSFER_VOUCHER)
            continue; /* always rejected by the rules */
        if (!type_accepted[t])
            fail_msg("no accepted case for %s", md_cmd_spec_of((md_cmd_type_t)t)->name);
    }
}

/* ---- the generic checks of every command type, from one case of it ----------
 * Steps 1-6 answer the same codes for every command (as its row in
 * rules/table.c says); rather than a case per type and code, each type's base
 * case (its first accepted one, else its first) is varied: an undeclared data
 * key, an expected_version the stream is not at, an unregistered, closed,
 * suspended or (during maintenance) non-operator actor, an actor the row does
 * not authorize, a referenced id that does not exist, the creating command sent
 * twice, and a newer agreement (the implicit acceptance). */

/* Whether the case's world has the maintenance window open at FX_NOW (which
 * answers SERVICE_UNAVAILABLE before the other generic steps). */
static bool in_window(const tcase_t *c)
{
    for (size_t i = 0; i < 6 && c->pre[i].actor != NULL; i++) {
        if (strcmp(c->pre[i].data, WINDOW_DATA) == 0)
            return true;
    }
    return false;
}

static const tcase_t *base_case(md_cmd_type_t t)
{
    const char *name = md_cmd_spec_of(t)->name;
    const tcase_t *first = NULL;
    for (size_t i = 0; i < N_CASES; i++) {
        if (cases[i].raw != NULL || cases[i].type == NULL || strcmp(cases[i].type, name) != 0 ||
            cases[i].extra != NULL || in_window(&cases[i]))
            continue;
        if (strcmp(cases[i].expect, "OK") == 0)
            return &cases[i];
        if (first == NULL)
            first = &cases[i];
    }
    return first;
}

static fx_t *base_world(const tcase_t *b, bool with_pre)
{
    fx_t *w = fx_world();
    for (size_t i = 0; with_pre && i < 6 && b->pre[i].actor != NULL; i++) {
        w->now = FX_NOW + b->pre[i].at;
        fx_ok(w, b->pre[i].actor, b->pre[i].type, b->pre[i].data);
        contract_check(w, b->name);
    }
    w->now = FX_NOW + (with_pre ? b->at : 0);
    return w;
}

static void run_step(fx_t *w, step_t st)
{
    fx_ok(w, st.actor, st.type, st.data);
}

/* Runs the base command varied (actor, data, extra) on w, expects @p want; frees w. */
static void expect_variant(fx_t *w, const tcase_t *b, const char *what, const char *actor,
                           const char *data, const char *extra, md_code_t want)
{
    const char *got = fx_run(w, actor, b->type, data, extra);
    contract_check(w, b->name);
    if (strcmp(got, want == MD_CODE_NONE ? "OK" : md_code_name(want)) != 0)
        fail_msg("case '%s' with %s: expected %s, got %s (%s)", b->name, what,
                 want == MD_CODE_NONE ? "OK" : md_code_name(want), got, w->d.message);
    timers_check(w, b->name);
    fx_free(w);
}

/* data with the value of 'field' replaced by "nope404"; false when absent. */
static bool replace_ref(const char *data, const char *field, char *out, size_t cap)
{
    char key[64];
    snprintf(key, sizeof key, "'%s':'", field);
    const char *at = strstr(data, key);
    if (at == NULL)
        return false;
    const char *end = strchr(at + strlen(key), '\'');
    assert_non_null(end);
    snprintf(out, cap, "%.*snope404%s", (int)(at + strlen(key) - data), data, end);
    return true;
}

static void run_variants(md_cmd_type_t t, const tcase_t *b)
{
    const md__row_t *row = md__row_of(t);
    char data[4096];
    bool ok = strcmp(b->expect, "OK") == 0;
    const char *other = strcmp(b->actor, "carol") != 0 ? "carol" : "dave";
    snprintf(data, sizeof data, "%s%s'zz_undeclared':1", b->data, b->data[0] ? "," : "");
    expect_variant(base_world(b, true), b, "an undeclared key", b->actor, data, NULL,
                   MD_CODE_INVALID_FIELD);
    expect_variant(base_world(b, true), b, "expected_version", b->actor, b->data,
                   "'expected_version':999999", MD_CODE_VERSION_CONFLICT);
    if (code_listed(t, MD_CODE_MEMBER_NOT_REGISTERED))
        expect_variant(base_world(b, false), b, "an unregistered actor", "ghost", b->data, NULL,
                       MD_CODE_MEMBER_NOT_REGISTERED);
    if (code_listed(t, MD_CODE_ACCOUNT_CLOSED)) {
        fx_t *w = base_world(b, false);
        run_step(w, (step_t)SANCTION("s-v", "close_account", "member", "dave"));
        expect_variant(w, b, "a closed actor", "dave", b->data, NULL, MD_CODE_ACCOUNT_CLOSED);
    }
    if (code_listed(t, MD_CODE_ACCOUNT_SUSPENDED)) {
        fx_t *w = base_world(b, false);
        run_step(w, (step_t)SANCTION("s-v", "suspend_account", "member", "dave"));
        expect_variant(w, b, "a suspended actor", "dave", b->data, NULL, MD_CODE_ACCOUNT_SUSPENDED);
    }
    fx_t *mw = base_world(b, false);
    run_step(mw, (step_t)WINDOW);
    expect_variant(mw, b, "maintenance", "dave", b->data, NULL, MD_CODE_SERVICE_UNAVAILABLE);
    if (code_listed(t, MD_CODE_FORBIDDEN))
        expect_variant(base_world(b, true), b, "another actor", other, b->data, NULL,
                       MD_CODE_FORBIDDEN);
    for (size_t i = 0; i < 3 && row->refs[i].field != NULL; i++) {
        if (!row->refs[i].creates && replace_ref(b->data, row->refs[i].field, data, sizeof data))
            expect_variant(base_world(b, true), b, row->refs[i].field, b->actor, data, NULL,
                           MD_CODE_NOT_FOUND);
    }
    if (ok && code_listed(t, MD_CODE_ALREADY_EXISTS)) {
        fx_t *w = base_world(b, true);
        assert_string_equal(fx_run(w, b->actor, b->type, b->data, NULL), "OK");
        contract_check(w, b->name);
        expect_variant(w, b, "itself again", b->actor, b->data, NULL, MD_CODE_ALREADY_EXISTS);
    }
    const char *events[MD_CONTRACT_EVENTS_MAX];
    if (ok && t != MD_CMD_ACCEPT_AGREEMENT && md_rules_events_of(t, events) > 0 &&
        strcmp(events[0], "AgreementAccepted") == 0) {
        fx_t *w = base_world(b, true);
        fx_ok(w, "op", "PublishAgreement", "'version':2,'title':'T2','digest':'" HEX_A "'");
        w->now = FX_NOW + b->at;
        assert_string_equal(fx_run(w, b->actor, b->type, b->data, NULL), "OK");
        contract_check(w, b->name);
        if (strcmp(w->d.events[0].type, "AgreementAccepted") != 0)
            fail_msg("case '%s' after a new agreement: no implicit AgreementAccepted", b->name);
        fx_free(w);
    }
}

static void test_rules_contract_variants(void **state)
{
    (void)state;
    for (int t = 0; t < MD_CMD_COUNT_; t++) {
        const tcase_t *b = base_case((md_cmd_type_t)t);
        if (b == NULL)
            fail_msg("no case of %s", md_cmd_spec_of((md_cmd_type_t)t)->name);
        run_variants((md_cmd_type_t)t, b);
    }
}

/* Must run after the cases and the variants: every code and event a type's
 * contract lists, and every event a timer kind lists, was produced. */
static void test_rules_contract_covered(void **state)
{
    (void)state;
    int missing = 0;
    for (int t = 0; t < MD_CMD_COUNT_; t++) {
        md_code_t codes[MD_CODE_COUNT_];
        const char *events[MD_CONTRACT_EVENTS_MAX];
        const char *name = md_cmd_spec_of((md_cmd_type_t)t)->name;
        size_t n = md_rules_codes_of((md_cmd_type_t)t, codes);
        for (size_t i = 0; i < n; i++) {
            if (!code_seen_by[t][codes[i]] && ++missing)
                print_error("no case of %s answers %s\n", name, md_code_name(codes[i]));
        }
        n = md_rules_events_of((md_cmd_type_t)t, events);
        for (size_t i = 0; i < n; i++) {
            if (!event_seen_by[t][i] && ++missing)
                print_error("no case of %s appends %s\n", name, events[i]);
        }
    }
    const char *kname, *what;
    const char *const *ev;
    for (size_t k = 0; md_rules_timer_kind(k, &kname, &what, &ev); k++) {
        assert_true(k < TIMER_KINDS_MAX);
        for (size_t j = 0; ev[j] != NULL; j++) {
            if (!timer_event_seen[k][j] && ++missing)
                print_error("no case fires timer %s appending %s\n", kname, ev[j]);
        }
    }
    if (missing)
        fail_msg("%d listed codes or events of the contract are produced by no case", missing);
}

static void test_rules_code_clauses(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_SPEC_CODES; i++) {
        md_code_t c = md_code_find(spec_codes[i].code);
        const char *cl = md_code_clause(c);
        if (spec_codes[i].clause == NULL)
            assert_null(cl);
        else
            assert_string_equal(cl, spec_codes[i].clause);
        assert_string_equal(md_code_name(c), spec_codes[i].code);
    }
}

/* ---- stories ---------------------------------------------------------------- */

/* The i-th event of the last decision's type and a string field of it. */
static const char *ev_type(fx_t *w, size_t i)
{
    assert_true(i < w->d.n_events);
    return w->d.events[i].type;
}

static const rules_mem_event_t *last_event(fx_t *w, size_t back)
{
    return rules_mem_event(w->m, rules_mem_count(w->m) - 1 - back);
}

static void expect_str(const rules_mem_event_t *e, const char *key, const char *want)
{
    char buf[256] = "";
    md_err_t rc = md_data_copy_str(e->ev.data, e->ev.data_len, key, buf, sizeof buf);
    if (want == NULL) {
        assert_int_equal(rc, MD_ENOTFOUND);
        return;
    }
    if (rc != MD_OK)
        fail_msg("%s lacks %s", e->ev.type, key);
    assert_string_equal(buf, want);
}

static int64_t ev_int(const rules_mem_event_t *e, const char *key)
{
    int64_t v = -1;
    if (md_data_get_int(e->ev.data, e->ev.data_len, key, &v) != MD_OK)
        fail_msg("%s lacks %s", e->ev.type, key);
    return v;
}

static void test_rules_bootstrap(void **state)
{
    (void)state;
    fx_t *w = fx_new();
    assert_int_equal(rules_mem_count(w->m), 2);
    const rules_mem_event_t *e = rules_mem_event(w->m, 0);
    assert_string_equal(e->ev.type, "MemberRegistered");
    assert_string_equal(e->ev.stream, "member:op");
    assert_string_equal(e->ev.command_id, "bootstrap");
    expect_str(e, "kind", "organization");
    expect_str(e, "name", "marketplace operator");
    assert_string_equal(rules_mem_event(w->m, 1)->ev.type, "OperatorGranted");
    md_error_t err = {0};
    assert_int_equal(md_rules_bootstrap(&w->st, "op", FX_NOW, &w->d, &err), MD_EEXIST);
    assert_int_equal(md_rules_bootstrap(&w->st, "bad id!", FX_NOW, &w->d, &err), MD_EINVAL);
    fx_free(w);
}

static void test_rules_implicit_acceptance(void **state)
{
    (void)state;
    fx_t *w = fx_new();
    fx_ok(w, "alice", "RegisterMember",
          "'member_id':'alice','kind':'individual','name':'A','identity_hash':'" HEX_A "'");
    fx_ok(w, "dave", "RegisterMember",
          "'member_id':'dave','kind':'individual','name':'D','identity_hash':'" HEX_C "'");
    fx_ok(w, "alice", "DepositFunds", "'amount':5,'payment_ref':'r1'");
    assert_int_equal(w->d.n_events, 1); /* nothing published yet */
    fx_ok(w, "op", "PublishAgreement", "'version':1,'title':'T','digest':'" HEX_A "'");
    fx_ok(w, "alice", "DepositFunds", "'amount':5,'payment_ref':'r2'");
    assert_int_equal(w->d.n_events, 2);
    assert_string_equal(ev_type(w, 0), "AgreementAccepted");
    assert_string_equal(ev_type(w, 1), "FundsDeposited");
    expect_str(last_event(w, 1), "mode", "use");
    assert_int_equal(ev_int(last_event(w, 1), "version"), 1);
    fx_ok(w, "alice", "DepositFunds", "'amount':5,'payment_ref':'r3'");
    assert_int_equal(w->d.n_events, 1); /* accepted once */
    fx_ok(w, "op", "PublishAgreement", "'version':2,'title':'T2','digest':'" HEX_B "'");
    assert_int_equal(w->d.n_events, 1); /* operators never */
    fx_ok(w, "alice", "ApplyAsProvider", "'business_name':'A'");
    expect_str(last_event(w, 1), "mode", "continued_use");
    fx_ok(w, "dave", "DeclineAgreement", "'version':2");
    assert_int_equal(w->d.n_events, 1);
    fx_ok(w, "dave", "DeclineAgreement", "'version':2"); /* again: accepted again */
    fx_ok(w, "dave", "GrantConsent", "'consent_id':'k1','recipient':'X','scope':'all'");
    assert_string_equal(ev_type(w, 0), "AgreementAccepted");
    expect_str(last_event(w, 1), "mode", "continued_use");
    fx_free(w);
}

static void test_rules_sanction_expiry(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s1','measure':'mute','target_type':'member','target_id':'alice','reason':"
          "'r','clause':'3.3.3','expires_at':'2026-11-26T11:00:00Z'");
    assert_string_equal(
        fx_run(w, "alice", "SendMessage", "'message_id':'g1','to':'bob','text':'hi'", NULL),
        "MEMBER_MUTED");
    w->now = FX_NOW + FX_HOUR - 1;
    assert_string_equal(
        fx_run(w, "alice", "SendMessage", "'message_id':'g1','to':'bob','text':'hi'", NULL),
        "MEMBER_MUTED");
    w->now = FX_NOW + FX_HOUR;
    fx_ok(w, "alice", "SendMessage", "'message_id':'g1','to':'bob','text':'hi'");
    assert_string_equal(fx_run(w, "op", "LiftSanction", "'sanction_id':'s1','reason':'r'", NULL),
                        "SANCTION_NOT_ACTIVE");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s2','measure':'mute','target_type':'member','target_id':'alice','reason':"
          "'r','clause':'3.3.3'");
    fx_ok(w, "op", "LiftSanction", "'sanction_id':'s2','reason':'r'");
    fx_ok(w, "alice", "SendMessage", "'message_id':'g2','to':'bob','text':'hi'");
    fx_free(w);
}

static void test_rules_maintenance(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    fx_ok(w, "op", "ScheduleMaintenance",
          "'window_id':'w1','starts_at':'2026-11-26T10:00:00Z','ends_at':'2026-11-26T11:00:00Z'");
    assert_string_equal(
        fx_run(w, "eve", "RegisterMember",
               "'member_id':'eve','kind':'individual','name':'E','identity_hash':'" HEX_A "'",
               NULL),
        "SERVICE_UNAVAILABLE");
    assert_true(w->d.retryable);
    assert_string_equal(fx_run(w, "ghost", "PayOrder", "'order_id':'o-placed'", NULL),
                        "MEMBER_NOT_REGISTERED");
    w->now = FX_NOW + FX_HOUR; /* [starts, ends): ended */
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-placed'");
    w->now = FX_NOW;
    fx_ok(w, "op", "CancelMaintenance", "'window_id':'w1'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-paid'");
    fx_free(w);
}

/* Sum of balances and escrows: money only enters by deposits and leaves by
 * withdrawals. */
static int64_t total_money(fx_t *w)
{
    static const char *const members[] = {"op", "alice", "bob", "carol", "dave"};
    static const char *const orders[] = {"o-placed", "o-paid", "o-del", "o-done", "o9", "o10"};
    int64_t sum = 0;
    size_t len;
    for (size_t i = 0; i < 5; i++)
        sum += fx_balance(w, members[i]) + fx_held(w, members[i]);
    for (size_t i = 0; i < 6; i++) {
        char key[32];
        snprintf(key, sizeof key, "o:%s", orders[i]);
        if (rules_mem_get(w->m, key, &len) != NULL)
            sum += fx_escrow(w, orders[i]);
    }
    return sum;
}

static void test_rules_money_story(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    assert_int_equal(total_money(w), 100000);
    assert_int_equal(fx_balance(w, "bob"), 2000); /* o-done: 2 x 1000 */
    assert_int_equal(fx_balance(w, "alice"), 100000 - 4000);
    /* voucher order: discount 300 of 1000 */
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o9','product_id':'p1','voucher_id':'v1'");
    const rules_mem_event_t *placed = last_event(w, 2);
    assert_string_equal(placed->ev.type, "OrderPlaced");
    assert_int_equal(ev_int(placed, "discount"), 300);
    assert_int_equal(ev_int(placed, "amount"), 700);
    expect_str(placed, "provider", "bob");
    expect_str(placed, "voucher_id", "v1");
    assert_string_equal(last_event(w, 1)->ev.type, "VoucherRedeemed");
    assert_string_equal(last_event(w, 0)->ev.type, "PersonalDataDisclosed");
    expect_str(last_event(w, 0), "recipient", "bob");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o9'");
    assert_int_equal(fx_escrow(w, "o9"), 700);
    assert_int_equal(total_money(w), 100000);
    /* cancel refunds and restores the voucher, which can be used again */
    fx_ok(w, "alice", "CancelOrder", "'order_id':'o9'");
    assert_int_equal(ev_int(last_event(w, 1), "refunded"), 700);
    assert_string_equal(last_event(w, 0)->ev.type, "VoucherRestored");
    assert_int_equal(fx_escrow(w, "o9"), 0);
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o10','product_id':'p1','voucher_id':'v1'");
    /* split ruling on o-del */
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q1','order_id':'o-del','reason':'bad'");
    fx_ok(w, "alice", "ApplyArbitration", "'complaint_id':'q1'");
    int64_t bob0 = fx_balance(w, "bob"), alice0 = fx_balance(w, "alice");
    fx_ok(w, "op", "RuleOnDispute", "'complaint_id':'q1','decision':'split','refund_amount':250");
    assert_int_equal(ev_int(last_event(w, 0), "released"), 750);
    assert_int_equal(fx_balance(w, "bob"), bob0 + 750);
    assert_int_equal(fx_balance(w, "alice"), alice0 + 250);
    assert_int_equal(total_money(w), 100000);
    /* close_order refunds the escrow and closes the active complaint */
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q2','order_id':'o-paid','reason':'late'");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s1','measure':'close_order','target_type':'order','target_id':'o-paid','"
          "reason':'r','clause':'3.3.3'");
    assert_int_equal(ev_int(last_event(w, 0), "refunded"), 1000);
    expect_str(last_event(w, 0), "complaint_id", "q2");
    assert_string_equal(fx_run(w, "alice", "ApplyArbitration", "'complaint_id':'q2'", NULL),
                        "COMPLAINT_STATE");
    assert_int_equal(fx_escrow(w, "o-paid"), 0);
    fx_ok(w, "bob", "WithdrawFunds", "'amount':100");
    assert_int_equal(total_money(w), 100000 - 100);
    fx_free(w);
}

static void test_rules_sanction_effects(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    /* close_store: products not orderable; lifting reopens */
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s1','measure':'close_store','target_type':'store','target_id':'st1','"
          "reason':'r','clause':'3.3.3'");
    assert_string_equal(fx_run(w, "alice", "PlaceOrder", "'order_id':'o9','product_id':'p1'", NULL),
                        "STORE_CLOSED");
    assert_string_equal(fx_run(w, "bob", "CloseStore", "'store_id':'st1'", NULL), "STORE_CLOSED");
    fx_ok(w, "op", "LiftSanction", "'sanction_id':'s1','reason':'r'");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o9','product_id':'p1'");
    /* delist_product: delisted, stays delisted after the lift */
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s2','measure':'delist_product','target_type':'product','target_id':'p1','"
          "reason':'r','clause':'3.3.3'");
    expect_str(last_event(w, 0), "product_status", "delisted");
    fx_ok(w, "op", "LiftSanction", "'sanction_id':'s2','reason':'r'");
    assert_string_equal(
        fx_run(w, "alice", "PlaceOrder", "'order_id':'o10','product_id':'p1'", NULL),
        "PRODUCT_UNAVAILABLE");
    fx_ok(w, "bob", "RelistProduct", "'product_id':'p1'");
    /* remove_content twice: SANCTION_ACTIVE; close_account on closed: too */
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s3','measure':'remove_content','target_type':'product','target_id':'p1','"
          "reason':'r','clause':'4.1.4'");
    assert_string_equal(fx_run(w, "op", "ApplySanction",
                               "'sanction_id':'s4','measure':'remove_content','target_type':'"
                               "product','target_id':'p1','reason':'r','clause':'4.1.4'",
                               NULL),
                        "SANCTION_ACTIVE");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s5','measure':'close_account','target_type':'member','target_id':'dave','"
          "reason':'r','clause':'3.3.3'");
    assert_string_equal(fx_run(w, "op", "ApplySanction",
                               "'sanction_id':'s6','measure':'close_account','target_type':'member'"
                               ",'target_id':'dave','reason':'r','clause':'3.3.3'",
                               NULL),
                        "SANCTION_ACTIVE");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s7','measure':'notice','target_type':'member','target_id':'bob','reason':"
          "'r','clause':'3.3.3'");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'s8','measure':'notice','target_type':'member','target_id':'bob','reason':"
          "'r','clause':'3.3.3'");
    fx_free(w);
}

static void test_rules_duplicate_bad_fields(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    /* envelope order first, then data declaration order */
    assert_string_equal(
        fx_raw(w, "{'command_id':'x1','type':'DepositFunds','actor':5,'data':{'amount':'x'}}"),
        "INVALID_FIELD");
    assert_non_null(strstr(w->d.message, "actor"));
    assert_string_equal(fx_raw(w, "{'command_id':'x2','type':'DepositFunds','actor':'alice','data':"
                                  "{'payment_ref':'','amount':'x'}}"),
                        "INVALID_FIELD");
    assert_non_null(strstr(w->d.message, "amount"));
    assert_string_equal(fx_raw(w, "{'command_id':'x3','type':null,'actor':5}"), "UNKNOWN_COMMAND");
    assert_null(w->d.command_type);
    assert_false(w->cmd.has_actor);
    assert_string_equal(fx_raw(w, "[1,2]"), "MALFORMED");
    assert_true(w->d.malformed);
    const rules_mem_event_t *e = last_event(w, 0);
    assert_false(e->ev.has_command_id);
    char hex[65];
    assert_int_equal(md_data_copy_str(e->ev.data, e->ev.data_len, "sha256", hex, sizeof hex),
                     MD_OK);
    assert_string_equal(hex, "49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684");
    fx_free(w);
}

/* The settlement hold and the timers, money followed at every step (rules.md
 * "Money and orders", "Policy and timers"): auto-confirmation into the hold,
 * an after-sales split from the hold, the settlement timer pushed back by a
 * complaint and then released; money is conserved throughout. */
static void test_rules_hold_story(void **state)
{
    (void)state;
    fx_t *w = fx_world();
    fx_ok(w, "op", "SetPolicy",
          "'after_sales_days':2,'auto_confirm_days':1,'defense_days':0,'settlement_hold_days':3,'"
          "appeal_days':0");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-paid'");
    const rules_mem_event_t *del = last_event(w, 0);
    assert_int_equal(ev_int(del, "auto_confirm_at"), FX_NOW + DAY);
    w->now = FX_NOW + DAY; /* the deadline: the timer fires first */
    assert_string_equal(fx_run(w, "alice", "ConfirmOrder", "'order_id':'o-paid'", NULL),
                        "ORDER_STATE");
    const rules_mem_event_t *done = last_event(w, 1);
    assert_string_equal(done->ev.type, "OrderCompleted");
    assert_string_equal(done->ev.command_id, "timer:auto_confirm:o-paid");
    assert_string_equal(done->ev.actor, "system");
    assert_int_equal(done->ev.recorded_at, FX_NOW + DAY);
    expect_str(done, "mode", "auto");
    assert_int_equal(ev_int(done, "held_until"), FX_NOW + 4 * DAY);
    assert_int_equal(fx_held(w, "bob"), 1000);
    assert_int_equal(fx_balance(w, "bob"), 2000);
    assert_int_equal(total_money(w), 100000);
    /* an after-sales complaint just before the window closes, ruled split */
    w->now = FX_NOW + 3 * DAY - 1;
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q1','order_id':'o-paid','reason':'broken'");
    expect_str(last_event(w, 0), "complaint_id", "q1");
    fx_ok(w, "bob", "ApplyArbitration", "'complaint_id':'q1'");
    /* the settlement deadline passes while the complaint is active: nothing */
    w->now = FX_NOW + 5 * DAY;
    fx_ok(w, "op", "RuleOnDispute", "'complaint_id':'q1','decision':'split','refund_amount':250");
    assert_string_equal(last_event(w, 0)->ev.type, "DisputeRuled");
    assert_string_equal(last_event(w, 1)->ev.type, "ArbitrationRequested");
    assert_int_equal(fx_held(w, "bob"), 750);
    assert_int_equal(total_money(w), 100000);
    /* re-armed for the end time itself: the next line at that time releases it */
    fx_ok(w, "op", "Tick", "");
    const rules_mem_event_t *rel = last_event(w, 0);
    assert_string_equal(rel->ev.type, "SettlementReleased");
    assert_int_equal(rel->ev.recorded_at, FX_NOW + 5 * DAY);
    assert_int_equal(ev_int(rel, "amount"), 750);
    assert_int_equal(fx_held(w, "bob"), 0);
    assert_int_equal(fx_balance(w, "bob"), 2750);
    assert_int_equal(total_money(w), 100000);
    fx_free(w);
}

/* The next armed timer ("kind:id", "" when none) and whether the state is a
 * replay of the log (the timer index included). */
static const char *next_timer(fx_t *w, int64_t *deadline)
{
    static md_timer_t t;
    bool due = false;
    char why[512];
    md_error_t err = {0};
    if (!rules_mem_replays(w->m, why, sizeof why))
        fail_msg("the state is not a replay of the log: %s", why);
    assert_int_equal(md_rules_timer_next(&w->st, INT64_MAX, &t, &due, &err), MD_OK);
    if (!due)
        return "";
    *deadline = t.deadline;
    snprintf(t.command_id, sizeof t.command_id, "%s:%s", t.kind, t.id);
    return t.command_id;
}

/* The timer index follows the timers' conditions in evolve (rules.md "Policy
 * and timers"): a complaint pauses an order's auto-confirmation and gives it
 * back with its deadline when it ends early, or re-arms it for end + 1 day when
 * the deadline passed meanwhile; a delivery during a complaint arms nothing
 * until the complaint ends; a defence, a confirmation or a close_order sanction
 * disarm. After every step the state equals a replay of the log. */
static void test_rules_timers_follow_the_log(void **state)
{
    (void)state;
    int64_t at = 0;
    fx_t *w = fx_world();
    fx_ok(w, "op", "SetPolicy",
          "'after_sales_days':0,'auto_confirm_days':2,'defense_days':1,'settlement_hold_days':0,'"
          "appeal_days':0");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-paid'");
    assert_string_equal(next_timer(w, &at), "auto_confirm:o-paid");
    assert_int_equal(at, FX_NOW + 2 * DAY);
    /* a complaint pauses it (its defence timer is the only one armed) */
    w->now = FX_NOW + DAY / 2;
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q1','order_id':'o-paid','reason':'slow'");
    assert_string_equal(next_timer(w, &at), "defense:q1");
    /* a defence disarms the defence timer: nothing armed while the complaint is open */
    fx_ok(w, "bob", "SubmitDefense", "'complaint_id':'q1','statement':'it works'");
    assert_string_equal(next_timer(w, &at), "");
    w->now = FX_NOW + DAY / 2 + DAY; /* past the defence deadline: nothing */
    fx_ok(w, "op", "Tick", "");
    assert_int_equal(w->d.n_events, 0);
    /* withdrawn before the auto-confirm deadline: armed again at that deadline */
    fx_ok(w, "alice", "WithdrawComplaint", "'complaint_id':'q1'");
    assert_string_equal(next_timer(w, &at), "auto_confirm:o-paid");
    assert_int_equal(at, FX_NOW + 2 * DAY);
    /* a second complaint outlives the deadline: armed for its end + 1 day */
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q2','order_id':'o-paid','reason':'slow'");
    fx_ok(w, "bob", "SubmitDefense", "'complaint_id':'q2','statement':'it works'");
    w->now = FX_NOW + 3 * DAY;
    fx_ok(w, "op", "Tick", "");
    assert_int_equal(w->d.n_events, 0);
    assert_string_equal(next_timer(w, &at), "");
    fx_ok(w, "alice", "WithdrawComplaint", "'complaint_id':'q2'");
    assert_string_equal(next_timer(w, &at), "auto_confirm:o-paid");
    assert_int_equal(at, FX_NOW + 4 * DAY);
    /* it fires: evolving its OrderCompleted disarms it */
    w->now = FX_NOW + 4 * DAY;
    fx_ok(w, "op", "Tick", "");
    const rules_mem_event_t *done = last_event(w, 0);
    assert_string_equal(done->ev.type, "OrderCompleted");
    assert_string_equal(done->ev.command_id, "timer:auto_confirm:o-paid");
    assert_int_equal(done->ev.recorded_at, FX_NOW + 4 * DAY);
    char out[MD_OUTCOME_MAX];
    assert_int_equal(md_outcome_of_event(&done->ev, out), 0); /* a timer records no outcome */
    assert_string_equal(next_timer(w, &at), "");
    /* delivered during a complaint: armed only when it ends */
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-4','product_id':'p1'");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-4'");
    fx_ok(w, "alice", "FileComplaint", "'complaint_id':'q3','order_id':'o-4','reason':'late'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-4'");
    assert_string_equal(next_timer(w, &at), "defense:q3");
    /* the silent respondent: the defence timer fires and its event disarms it */
    w->now = FX_NOW + 5 * DAY;
    fx_ok(w, "op", "Tick", "");
    assert_string_equal(last_event(w, 0)->ev.type, "ArbitrationRequested");
    assert_string_equal(last_event(w, 0)->ev.command_id, "timer:defense:q3");
    assert_string_equal(next_timer(w, &at), "");
    /* a ruling on a delivered order completes it: nothing to re-arm */
    fx_ok(w, "op", "RuleOnDispute", "'complaint_id':'q3','decision':'release_provider'");
    assert_string_equal(next_timer(w, &at), "");
    /* a confirmation, a close_order sanction disarm */
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-5','product_id':'p1'");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-5'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-5'");
    assert_string_equal(next_timer(w, &at), "auto_confirm:o-5");
    fx_ok(w, "alice", "ConfirmOrder", "'order_id':'o-5'");
    assert_string_equal(next_timer(w, &at), "");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-6','product_id':'p1'");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-6'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-6'");
    assert_string_equal(next_timer(w, &at), "auto_confirm:o-6");
    fx_ok(w, "op", "ApplySanction",
          "'sanction_id':'x1','measure':'close_order','target_type':'order','target_id':'o-6','"
          "reason':'fraud','clause':'3.3.3'");
    assert_string_equal(next_timer(w, &at), "");
    /* a Tick is accepted with no events: its outcome is the one the log cannot show */
    fx_ok(w, "op", "Tick", "");
    assert_int_equal(md_outcome_of_decision(&w->d, out), 2);
    assert_memory_equal(out, MD_OUTCOME_UNLOGGED, 2);
    assert_true(md_outcome_unlogged(out, 2));
    assert_false(md_outcome_unlogged("A", 1));
    fx_free(w);
}

#define STORY_TESTS                                                                                \
    cmocka_unit_test(test_rules_bootstrap), cmocka_unit_test(test_rules_implicit_acceptance),      \
        cmocka_unit_test(test_rules_sanction_expiry), cmocka_unit_test(test_rules_maintenance),    \
        cmocka_unit_test(test_rules_money_story), cmocka_unit_test(test_rules_hold_story),         \
        cmocka_unit_test(test_rules_timers_follow_the_log),                                        \
        cmocka_unit_test(test_rules_sanction_effects),                                             \
        cmocka_unit_test(test_rules_duplicate_bad_fields),


int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_rules_code_clauses),
                                       cmocka_unit_test(test_rules_cases),
                                       cmocka_unit_test(test_rules_contract_variants),
                                       cmocka_unit_test(test_rules_every_code_produced),
                                       cmocka_unit_test(test_rules_every_command_accepted),
                                       cmocka_unit_test(test_rules_contract_covered),
                                       STORY_TESTS};
    return cmocka_run_group_tests_name("rules", tests, NULL, NULL);
}
