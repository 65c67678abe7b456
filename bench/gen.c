/*
 * gen.c - bench-gen: a seeded, realistic marketplace command mix as JSON lines.
 *
 *   bench-gen [-n COMMANDS] [-s SEED] > commands.jsonl
 *
 * The day starts with the operator's set-up (agreement, categories) and the
 * providers' on-boarding (register, apply, approval, store, products); then
 * buyers register and deposit, and orders go through placed -> paid ->
 * delivered -> confirmed, a few of them through a complaint and a ruling.
 * About one command in ten is refused, for assorted rules: insufficient funds
 * (a few buyers deposit little), unknown products, wrong actor, wrong order
 * state, invalid fields, unknown types, unregistered actors, repeated payment
 * references and member ids; some lines are repeated command_ids (duplicate)
 * and a few are not JSON at all (MALFORMED). Sanctions (mute, restrict
 * ordering) are applied and lifted now and then.
 *
 * The random numbers come from our own generator (Park-Miller), so a seed
 * gives the same file on every machine. Output is exactly N non-blank lines.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROVIDERS 40
#define PRODUCTS_PER 6
#define BUYERS_START 400
/* Orders in flight at most: a shop has a bounded number of orders between
 * placement and confirmation at any time (arrivals x lifetime), so the mix does
 * not let them pile up without bound. */
#define OPEN_MAX 5000
#define BASE_TIME 1795680000LL /* 2026-11-26T00:00:00Z */

typedef struct order {
    uint32_t id, buyer, provider, product;
    int stage; /* 0 placed, 1 paid, 2 delivered, 10.. dispute steps */
    uint32_t complaint;
} order_t;

typedef struct gen {
    uint64_t rng;
    uint64_t n, emitted, cmd_seq;
    char line[1024], last[1024];
    uint32_t buyers, poor_every;
    uint32_t next_order, next_payref, next_complaint, next_sanction, next_msg, next_review;
    order_t *open;
    size_t nopen, cap_open;
    uint32_t *done; /* completed orders (id, buyer) ring for reviews */
    uint32_t *done_buyer;
    size_t ndone;
    uint32_t sanctioned[8];
    int nsanction;
} gen_t;

static uint32_t rnd(gen_t *g)
{
    g->rng = g->rng * 16807 % 2147483647;
    return (uint32_t)g->rng;
}

static uint32_t below(gen_t *g, uint32_t n)
{
    return n ? rnd(g) % n : 0;
}

static void when(gen_t *g, char *out, size_t cap, int64_t offset_s)
{
    time_t t = (time_t)(BASE_TIME + (int64_t)(g->cmd_seq / 50) + offset_s);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes one command line: the envelope around @p data (a JSON object text). */
static void emit(gen_t *g, const char *type, const char *actor, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void emit(gen_t *g, const char *type, const char *actor, const char *fmt, ...)
{
    char data[700], ts[32];
    va_list ap;
    if (g->emitted >= g->n)
        return;
    va_start(ap, fmt);
    vsnprintf(data, sizeof data, fmt, ap);
    va_end(ap);
    when(g, ts, sizeof ts, 0);
    g->cmd_seq++;
    snprintf(g->line, sizeof g->line,
             "{\"command_id\":\"c-%llu\",\"type\":\"%s\",\"actor\":\"%s\",\"issued_at\":\"%s\","
             "\"data\":%s}",
             (unsigned long long)g->cmd_seq, type, actor, ts, data);
    puts(g->line);
    memcpy(g->last, g->line, sizeof g->line);
    g->emitted++;
}

static void raw(gen_t *g, const char *text)
{
    if (g->emitted >= g->n)
        return;
    puts(text);
    g->emitted++;
}

static void hex64(gen_t *g, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (int i = 0; i < 64; i++)
        out[i] = h[rnd(g) & 15];
    out[64] = 0;
}

static const char *const first_names[] = {"Ana",   "Bo",  "Chen", "Dara", "Emil", "Fatima",
                                          "Goran", "Hui", "Ines", "Jun",  "Kofi", "Lena"};
static const char *const categories[] = {"databases", "images", "devtools"};

static void register_member(gen_t *g, const char *id, const char *kind)
{
    char ih[65];
    hex64(g, ih);
    emit(g, "RegisterMember", id,
         "{\"member_id\":\"%s\",\"kind\":\"%s\",\"name\":\"%s %s\",\"identity_hash\":\"%s\","
         "\"email\":\"%s@example.com\"}",
         id, kind, first_names[rnd(g) % 12], id, ih, id);
}

static void deposit(gen_t *g, uint32_t buyer, long long amount)
{
    char actor[32];
    snprintf(actor, sizeof actor, "m-%u", buyer);
    emit(g, "DepositFunds", actor, "{\"amount\":%lld,\"payment_ref\":\"pay-%u\"}", amount,
         ++g->next_payref);
}

static void new_buyer(gen_t *g)
{
    char id[32];
    uint32_t b = ++g->buyers;
    snprintf(id, sizeof id, "m-%u", b);
    register_member(g, id, "individual");
    /* Every poor_every-th buyer deposits too little for most products. */
    deposit(g, b, b % g->poor_every == 0 ? 500 : 50000000LL + below(g, 1000) * 1000);
}

static void setup(gen_t *g)
{
    char id[32], store[32];
    emit(g, "PublishAgreement", "operator",
         "{\"version\":1,\"title\":\"Cloud Marketplace Service Agreement\",\"digest\":\"%064d\"}",
         7);
    for (int c = 0; c < 3; c++)
        emit(g, "DefineCategory", "operator", "{\"category_id\":\"%s\",\"name\":\"Category %s\"}",
             categories[c], categories[c]);
    for (int p = 1; p <= PROVIDERS; p++) {
        snprintf(id, sizeof id, "prov-%d", p);
        snprintf(store, sizeof store, "s-%d", p);
        register_member(g, id, "organization");
        emit(g, "ApplyAsProvider", id, "{\"business_name\":\"Provider %d Cloud Ltd\"}", p);
        emit(g, "ApproveProvider", "operator", "{\"member_id\":\"%s\"}", id);
        emit(g, "OpenStore", id, "{\"store_id\":\"%s\",\"name\":\"Store of provider %d\"}", store,
             p);
        for (int k = 1; k <= PRODUCTS_PER; k++)
            emit(g, "PublishProduct", id,
                 "{\"product_id\":\"pr-%d-%d\",\"store_id\":\"%s\",\"category_id\":\"%s\","
                 "\"kind\":\"service\",\"title\":\"Managed service %d of provider %d\","
                 "\"price\":%u}",
                 p, k, store, categories[k % 3], k, p, 1000 + 100 * below(g, 400));
    }
    for (int b = 0; b < BUYERS_START; b++)
        new_buyer(g);
}

static void place_order(gen_t *g)
{
    if (g->nopen == g->cap_open) {
        g->cap_open = g->cap_open ? 2 * g->cap_open : 1024;
        g->open = realloc(g->open, g->cap_open * sizeof *g->open);
        if (!g->open)
            abort();
    }
    order_t *o = &g->open[g->nopen++];
    o->id = ++g->next_order;
    o->buyer = 1 + below(g, g->buyers);
    o->provider = 1 + below(g, PROVIDERS);
    o->product = 1 + below(g, PRODUCTS_PER);
    o->stage = 0;
    char actor[32];
    snprintf(actor, sizeof actor, "m-%u", o->buyer);
    emit(g, "PlaceOrder", actor,
         "{\"order_id\":\"o-%u\",\"product_id\":\"pr-%u-%u\",\"quantity\":%u}", o->id, o->provider,
         o->product, 1 + below(g, 3));
}

static void close_order(gen_t *g, size_t i)
{
    g->open[i] = g->open[--g->nopen];
}

/* Advances order i by one step (or through the dispute path). */
static void advance(gen_t *g, size_t i)
{
    order_t *o = &g->open[i];
    char buyer[32], prov[32];
    snprintf(buyer, sizeof buyer, "m-%u", o->buyer);
    snprintf(prov, sizeof prov, "prov-%u", o->provider);
    switch (o->stage) {
    case 0:
        emit(g, "PayOrder", buyer, "{\"order_id\":\"o-%u\"}", o->id);
        if (o->buyer % g->poor_every == 0) /* INSUFFICIENT_FUNDS: abandoned */
            close_order(g, i);
        else
            o->stage = 1;
        return;
    case 1:
        if (below(g, 100) < 2) {
            o->complaint = ++g->next_complaint;
            emit(g, "FileComplaint", buyer,
                 "{\"complaint_id\":\"cp-%u\",\"order_id\":\"o-%u\",\"reason\":\"the service "
                 "was not provisioned in time\"}",
                 o->complaint, o->id);
            o->stage = 10;
            return;
        }
        emit(g, "DeliverOrder", prov, "{\"order_id\":\"o-%u\",\"note\":\"instance %u ready\"}",
             o->id, o->id);
        o->stage = 2;
        return;
    case 2:
        emit(g, "ConfirmOrder", buyer, "{\"order_id\":\"o-%u\"}", o->id);
        g->done[g->ndone % 4096] = o->id;
        g->done_buyer[g->ndone % 4096] = o->buyer;
        g->ndone++;
        close_order(g, i);
        return;
    case 10:
        emit(g, "ApplyArbitration", buyer, "{\"complaint_id\":\"cp-%u\"}", o->complaint);
        o->stage = 11;
        return;
    case 11:
        emit(g, "SubmitDefense", prov,
             "{\"complaint_id\":\"cp-%u\",\"statement\":\"provisioning was delayed by the "
             "buyer's quota\"}",
             o->complaint);
        o->stage = 12;
        return;
    default:
        emit(g, "RuleOnDispute", "operator", "{\"complaint_id\":\"cp-%u\",\"decision\":\"%s\"}",
             o->complaint, o->id % 2 ? "refund_buyer" : "release_provider");
        close_order(g, i);
        return;
    }
}

/* One deliberately refused command, of an assorted kind. */
static void refused(gen_t *g)
{
    char buyer[32];
    uint32_t b = 1 + below(g, g->buyers);
    snprintf(buyer, sizeof buyer, "m-%u", b);
    switch (below(g, 10)) {
    case 0: /* NOT_FOUND */
        emit(g, "PlaceOrder", buyer, "{\"order_id\":\"o-x%u\",\"product_id\":\"pr-none-%u\"}",
             ++g->next_order, b);
        break;
    case 1: /* INVALID_FIELD */
        emit(g, "PlaceOrder", buyer,
             "{\"order_id\":\"o-%u\",\"product_id\":\"pr-1-1\",\"quantity\":0}", ++g->next_order);
        break;
    case 2: /* MEMBER_NOT_REGISTERED */
        emit(g, "DepositFunds", "stranger", "{\"amount\":100,\"payment_ref\":\"pay-s%u\"}",
             ++g->next_payref);
        break;
    case 3: /* DUPLICATE_PAYMENT */
        emit(g, "DepositFunds", buyer, "{\"amount\":100,\"payment_ref\":\"pay-%u\"}",
             1 + below(g, g->next_payref));
        break;
    case 4: /* ALREADY_EXISTS */
        emit(g, "RegisterMember", buyer,
             "{\"member_id\":\"%s\",\"kind\":\"individual\",\"name\":\"Again\","
             "\"identity_hash\":\"%064d\"}",
             buyer, 1);
        break;
    case 5: /* UNKNOWN_COMMAND */ emit(g, "Teleport", buyer, "{\"to\":\"mars\"}"); break;
    case 6: /* FORBIDDEN: the buyer delivers */
        if (g->nopen) {
            order_t *o = &g->open[below(g, (uint32_t)g->nopen)];
            emit(g, "DeliverOrder", "prov-1", "{\"order_id\":\"o-%u\"}", o->id);
            break;
        }
        /* fall through */
    case 7: /* ORDER_STATE: confirm an order that was not delivered */
        if (g->nopen) {
            order_t *o = &g->open[below(g, (uint32_t)g->nopen)];
            char a[32];
            snprintf(a, sizeof a, "m-%u", o->buyer);
            emit(g, "ConfirmOrder", a, "{\"order_id\":\"o-%u\"}", o->id);
            break;
        }
        /* fall through */
    case 8: /* OFF_PLATFORM_TRADE */
        emit(g, "SendMessage", buyer,
             "{\"message_id\":\"msg-%u\",\"to\":\"prov-%u\",\"text\":\"call me on 138 0013 "
             "8000 and pay cash\"}",
             ++g->next_msg, 1 + below(g, PROVIDERS));
        break;
    default: /* MALFORMED, now and then; else a repeated command_id (duplicate) */
        if (below(g, 4) == 0)
            raw(g, "{\"command_id\": \"c-bad\", \"type\": \"PlaceOrder\", oops");
        else
            raw(g, g->last);
        break;
    }
}

static void sanction(gen_t *g)
{
    char ts[32];
    if (g->nsanction > 0 && below(g, 2) == 0) {
        emit(g, "LiftSanction", "operator",
             "{\"sanction_id\":\"sn-%u\",\"reason\":\"appeal accepted after review\"}",
             g->sanctioned[--g->nsanction]);
        return;
    }
    if (g->nsanction == 8)
        return;
    uint32_t id = ++g->next_sanction;
    when(g, ts, sizeof ts, 7 * 86400);
    emit(g, "ApplySanction", "operator",
         "{\"sanction_id\":\"sn-%u\",\"measure\":\"%s\",\"target_type\":\"member\","
         "\"target_id\":\"m-%u\",\"reason\":\"asked a provider to trade off the platform\","
         "\"clause\":\"4.2.6\",\"expires_at\":\"%s\"}",
         id, id % 2 ? "mute" : "restrict_ordering", 1 + below(g, g->buyers), ts);
    g->sanctioned[g->nsanction++] = id;
}

static void other(gen_t *g)
{
    uint32_t r = below(g, 100);
    if (r < 40 && g->ndone) {
        size_t k = below(g, (uint32_t)(g->ndone < 4096 ? g->ndone : 4096));
        char a[32];
        snprintf(a, sizeof a, "m-%u", g->done_buyer[k]);
        emit(g, "PostReview", a,
             "{\"review_id\":\"r-%u\",\"order_id\":\"o-%u\",\"rating\":%u,\"text\":\"Fast and "
             "reliable, would buy again.\"}",
             ++g->next_review, g->done[k], 1 + below(g, 5));
        g->done[k] = g->done[(g->ndone - 1) % 4096]; /* one review per order, mostly */
        g->done_buyer[k] = g->done_buyer[(g->ndone - 1) % 4096];
        g->ndone--;
    } else if (r < 80) {
        char a[32];
        snprintf(a, sizeof a, "m-%u", 1 + below(g, g->buyers));
        emit(g, "SendMessage", a,
             "{\"message_id\":\"msg-%u\",\"to\":\"prov-%u\",\"text\":\"Is the instance "
             "available in the eu region?\"}",
             ++g->next_msg, 1 + below(g, PROVIDERS));
    } else {
        uint32_t p = 1 + below(g, PROVIDERS);
        char a[32];
        snprintf(a, sizeof a, "prov-%u", p);
        emit(g, "PublishProduct", a,
             "{\"product_id\":\"pr-%u-x%u\",\"store_id\":\"s-%u\",\"category_id\":\"images\","
             "\"kind\":\"image\",\"title\":\"Hardened image %u\",\"price\":%u}",
             p, g->next_msg++, p, r, 500 + below(g, 10000));
    }
}

int main(int argc, char **argv)
{
    gen_t g = {0};
    unsigned long long seed = 42;
    g.n = 1000000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "-n") == 0)
            g.n = strtoull(argv[i + 1], NULL, 10);
        else if (strcmp(argv[i], "-s") == 0)
            seed = strtoull(argv[i + 1], NULL, 10);
        else {
            fprintf(stderr, "usage: bench-gen [-n COMMANDS] [-s SEED]\n");
            return 2;
        }
    }
    g.rng = seed % 2147483646 + 1;
    g.poor_every = 25;
    g.done = calloc(4096, sizeof *g.done);
    g.done_buyer = calloc(4096, sizeof *g.done_buyer);
    static char obuf[1 << 16];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    setup(&g);
    while (g.emitted < g.n) {
        uint32_t r = below(&g, 1000);
        if (r < 25)
            new_buyer(&g);
        else if (r < 70)
            deposit(&g, 1 + below(&g, g.buyers), 1000000 + below(&g, 100) * 10000);
        else if (r < 160)
            refused(&g);
        else if (r < 161)
            sanction(&g);
        else if (r < 190)
            other(&g);
        else if ((r < 450 && g.nopen < OPEN_MAX) || g.nopen < 50)
            place_order(&g);
        else
            advance(&g, below(&g, (uint32_t)g.nopen));
    }
    free(g.open);
    free(g.done);
    free(g.done_buyer);
    return fflush(stdout) == 0 ? 0 : 1;
}
