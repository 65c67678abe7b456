/*
 * rules_mem.c - in-memory state and event log for the rules' tests.
 * Linear search everywhere: test worlds hold a few hundred keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../rules/state.h"
#include "rules_mem.h"

typedef struct kv {
    char *key;
    size_t klen;
    void *val;
    size_t vlen;
} kv_t;

typedef struct sv {
    char stream[MD_STREAM_MAX + 1];
    uint64_t version;
} sv_t;

struct rules_mem {
    kv_t *kv;
    size_t nkv, capkv;
    sv_t *sv;
    size_t nsv, capsv;
    rules_mem_event_t *log;
    size_t nlog, caplog;
};

rules_mem_t *rules_mem_new(void)
{
    return md_calloc(1, sizeof(rules_mem_t));
}

void rules_mem_destroy(rules_mem_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nkv; i++) {
        free(m->kv[i].key);
        free(m->kv[i].val);
    }
    for (size_t i = 0; i < m->nlog; i++)
        md_buf_release(&m->log[i].data);
    free(m->kv);
    free(m->sv);
    free(m->log);
    free(m);
}

static kv_t *find(rules_mem_t *m, const void *key, size_t klen)
{
    for (size_t i = 0; i < m->nkv; i++) {
        if (m->kv[i].klen == klen && memcmp(m->kv[i].key, key, klen) == 0)
            return &m->kv[i];
    }
    return NULL;
}

static int keycmp(const void *a, size_t al, const void *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c != 0 ? c : (al > bl) - (al < bl);
}

static md_err_t mem_get(void *ctx, const void *key, size_t klen, const void **val, size_t *vlen)
{
    kv_t *e = find(ctx, key, klen);
    if (e == NULL)
        return MD_ENOTFOUND;
    *val = e->val;
    *vlen = e->vlen;
    return MD_OK;
}

static md_err_t mem_put(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    rules_mem_t *m = ctx;
    kv_t *e = find(m, key, klen);
    if (e == NULL) {
        if (m->nkv == m->capkv) {
            m->capkv = m->capkv ? m->capkv * 2 : 64;
            m->kv = md_realloc(m->kv, m->capkv * sizeof *m->kv);
        }
        e = &m->kv[m->nkv++];
        e->key = md_malloc(klen);
        memcpy(e->key, key, klen);
        e->klen = klen;
        e->val = NULL;
    }
    /* A fresh allocation each time, so stale pointers from get are caught by ASan. */
    free(e->val);
    e->val = md_malloc(vlen ? vlen : 1);
    memcpy(e->val, val, vlen);
    e->vlen = vlen;
    return MD_OK;
}

static sv_t *stream(rules_mem_t *m, const char *s, bool create)
{
    for (size_t i = 0; i < m->nsv; i++) {
        if (strcmp(m->sv[i].stream, s) == 0)
            return &m->sv[i];
    }
    if (!create)
        return NULL;
    if (m->nsv == m->capsv) {
        m->capsv = m->capsv ? m->capsv * 2 : 64;
        m->sv = md_realloc(m->sv, m->capsv * sizeof *m->sv);
    }
    sv_t *v = &m->sv[m->nsv++];
    memset(v, 0, sizeof *v);
    strncpy(v->stream, s, MD_STREAM_MAX);
    return v;
}

static md_err_t mem_version(void *ctx, const char *s, uint64_t *version)
{
    sv_t *v = stream(ctx, s, false);
    *version = v != NULL ? v->version : 0;
    return MD_OK;
}

/* The smallest key >= key (bytewise, shorter first on a common prefix). */
static md_err_t mem_seek(void *ctx, const void *key, size_t klen, const void **okey, size_t *oklen)
{
    rules_mem_t *m = ctx;
    const kv_t *best = NULL;
    for (size_t i = 0; i < m->nkv; i++) {
        const kv_t *e = &m->kv[i];
        if (keycmp(e->key, e->klen, key, klen) >= 0 &&
            (best == NULL || keycmp(e->key, e->klen, best->key, best->klen) < 0))
            best = e;
    }
    if (best == NULL)
        return MD_ENOTFOUND;
    *okey = best->key;
    *oklen = best->klen;
    return MD_OK;
}

static md_err_t mem_del(void *ctx, const void *key, size_t klen)
{
    rules_mem_t *m = ctx;
    kv_t *e = find(m, key, klen);
    if (e == NULL)
        return MD_OK;
    free(e->key);
    free(e->val);
    *e = m->kv[--m->nkv];
    return MD_OK;
}

md_state_t rules_mem_state(rules_mem_t *m)
{
    md_state_t st = {m, mem_get, mem_put, mem_version, mem_seek, mem_del};
    return st;
}

static rules_mem_event_t *log_add(rules_mem_t *m)
{
    if (m->nlog == m->caplog) {
        m->caplog = m->caplog ? m->caplog * 2 : 64;
        m->log = md_realloc(m->log, m->caplog * sizeof *m->log);
    }
    rules_mem_event_t *e = &m->log[m->nlog++];
    memset(e, 0, sizeof *e);
    md_buf_init(&e->data);
    return e;
}

/* Appends d's events with command_id cid and actor (NULL: nil). */
static md_err_t apply_as(rules_mem_t *m, const char *cid, const char *actor, md_decision_t *d,
                         int64_t now, md_error_t *err)
{
    md_state_t st = rules_mem_state(m);
    for (size_t i = 0; i < d->n_events; i++) {
        rules_mem_event_t *e = log_add(m);
        md_data_pack(&d->events[i].data, &e->data);
        e->ev.seq = m->nlog;
        strncpy(e->ev.stream, d->events[i].stream, MD_STREAM_MAX);
        e->ev.version = ++stream(m, e->ev.stream, true)->version;
        strncpy(e->ev.type, d->events[i].type, MD_TYPE_MAX);
        e->ev.recorded_at = now;
        e->ev.has_command_id = cid != NULL;
        snprintf(e->ev.command_id, sizeof e->ev.command_id, "%s", cid ? cid : "");
        e->ev.has_actor = cid != NULL && actor != NULL;
        snprintf(e->ev.actor, sizeof e->ev.actor, "%s", e->ev.has_actor ? actor : "");
        e->ev.data = e->data.p;
        e->ev.data_len = e->data.len;
        md_err_t rc = md_rules_evolve(&st, &e->ev, err);
        if (rc != MD_OK)
            return rc;
    }
    return MD_OK;
}

md_err_t rules_mem_apply(rules_mem_t *m, const md_command_t *cmd, md_decision_t *d, int64_t now,
                         md_error_t *err)
{
    if (cmd == NULL)
        return apply_as(m, "bootstrap", "bootstrap", d, now, err);
    return apply_as(m, cmd->status != MD_DECODE_MALFORMED ? cmd->command_id : NULL,
                    cmd->has_actor ? cmd->actor : NULL, d, now, err);
}

md_err_t rules_mem_fire(rules_mem_t *m, int64_t now, md_decision_t *d, md_error_t *err)
{
    md_state_t st = rules_mem_state(m);
    for (;;) {
        md_timer_t t;
        bool due = false;
        md_err_t rc = md_rules_timer_next(&st, now, &t, &due, err);
        if (rc == MD_OK && due)
            rc = md_rules_timer_fire(&st, &t, d, err);
        if (rc == MD_OK && due)
            rc = apply_as(m, t.command_id, "system", d, t.deadline, err);
        if (rc != MD_OK || !due)
            return rc;
    }
}

size_t rules_mem_count(const rules_mem_t *m)
{
    return m->nlog;
}

const rules_mem_event_t *rules_mem_event(const rules_mem_t *m, size_t i)
{
    /* data pointers move when the log grows: refresh before handing out. */
    rules_mem_event_t *e = &((rules_mem_t *)m)->log[i];
    e->ev.data = e->data.p;
    return e;
}

/* Printable form of a key for messages (bytes outside 0x20..0x7e as \xHH). */
static void printable(const kv_t *e, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < e->klen && o + 5 < cap; i++) {
        unsigned char b = (unsigned char)e->key[i];
        if (b >= 0x20 && b < 0x7f)
            out[o++] = (char)b;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b);
    }
    out[o] = '\0';
}

/* The first key of @p a that @p b lacks or holds with another value. */
static const kv_t *first_unmatched(rules_mem_t *a, rules_mem_t *b)
{
    for (size_t i = 0; i < a->nkv; i++) {
        const kv_t *x = &a->kv[i], *y = find(b, x->key, x->klen);
        if (y == NULL || y->vlen != x->vlen || memcmp(y->val, x->val, x->vlen) != 0)
            return x;
    }
    return NULL;
}

bool rules_mem_replays(rules_mem_t *m, char *why, size_t cap)
{
    rules_mem_t *r = rules_mem_new();
    md_state_t st = rules_mem_state(r);
    md_error_t err = {0};
    char key[256];
    bool same = true;
    snprintf(why, cap, "equal");
    for (size_t i = 0; i < m->nlog && same; i++) {
        const rules_mem_event_t *e = rules_mem_event(m, i);
        if (md_rules_evolve(&st, &e->ev, &err) != MD_OK) {
            snprintf(why, cap, "replay: event %zu (%s): %s", i + 1, e->ev.type, err.msg);
            same = false;
        }
    }
    const kv_t *live = same ? first_unmatched(m, r) : NULL;
    const kv_t *replayed = same && live == NULL ? first_unmatched(r, m) : NULL;
    if (live != NULL || replayed != NULL) {
        printable(live ? live : replayed, key, sizeof key);
        snprintf(why, cap, "state key '%s' %s", key,
                 live ? (find(r, live->key, live->klen) ? "differs from the replay"
                                                        : "is not in the replay")
                      : "of the replay is not in the state");
        same = false;
    }
    rules_mem_destroy(r);
    return same;
}

const void *rules_mem_get(rules_mem_t *m, const char *key, size_t *len)
{
    kv_t *e = find(m, key, strlen(key));
    if (e == NULL)
        return NULL;
    *len = e->vlen;
    return e->val;
}

/* ---- the fixture world (uses cmocka to fail the running test) ------------ */

fx_t *fx_new(void)
{
    fx_t *w = md_calloc(1, sizeof *w);
    md_error_t err = {0};
    w->m = rules_mem_new();
    w->st = rules_mem_state(w->m);
    w->now = FX_NOW;
    assert_int_equal(md_rules_bootstrap(&w->st, "op", w->now, &w->d, &err), MD_OK);
    assert_int_equal(rules_mem_apply(w->m, NULL, &w->d, w->now, &err), MD_OK);
    return w;
}

void fx_free(fx_t *w)
{
    char why[512];
    if (w == NULL)
        return;
    /* Every world the tests built: its state is a function of its log. */
    if (!rules_mem_replays(w->m, why, sizeof why))
        fail_msg("the state is not a replay of the log: %s", why);
    rules_mem_destroy(w->m);
    free(w);
}

static void unquote(char *s)
{
    for (; *s; s++) {
        if (*s == '\'')
            *s = '"';
    }
}

static const char *decide(fx_t *w)
{
    md_error_t err = {0};
    int rc = md_rules_decide(&w->st, &w->cmd, w->now, &w->d, &err);
    if (rc != MD_OK)
        fail_msg("decide: %s", err.msg);
    if (rules_mem_apply(w->m, &w->cmd, &w->d, w->now, &err) != MD_OK)
        fail_msg("evolve: %s", err.msg);
    return w->d.accepted ? "OK" : w->d.code_name;
}

const char *fx_raw(fx_t *w, const char *line)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", line);
    unquote(buf);
    md_command_decode_json(buf, strlen(buf), NULL, &w->cmd);
    md_error_t err = {0};
    if (w->cmd.status != MD_DECODE_MALFORMED && rules_mem_fire(w->m, w->now, &w->d, &err) != MD_OK)
        fail_msg("timers: %s", err.msg);
    return decide(w);
}

const char *fx_run(fx_t *w, const char *actor, const char *type, const char *data,
                   const char *extra)
{
    char buf[8192];
    snprintf(buf, sizeof buf, "{'command_id':'c-%d','type':'%s','actor':'%s'%s%s,'data':{%s}}",
             ++w->n, type, actor, extra ? "," : "", extra ? extra : "", data);
    return fx_raw(w, buf);
}

void fx_ok(fx_t *w, const char *actor, const char *type, const char *data)
{
    const char *r = fx_run(w, actor, type, data, NULL);
    if (strcmp(r, "OK") != 0)
        fail_msg("fixture %s by %s: %s: %s", type, actor, r, w->d.message);
}

/*
 * The standard world: operator op; members alice (buyer, 100000 fen,
 * voucher v1 of 300), bob (approved provider with store st1 and product p1 at
 * 1000 in category cat), carol (same identity hash as alice, no money), dave
 * (registered only); agreement v1 published; categories cat, rcat
 * (restricted), revcat (requires review); alice's orders o-placed, o-paid,
 * o-del (delivered) and o-done (completed).
 */
fx_t *fx_world(void)
{
    fx_t *w = fx_new();
    fx_ok(w, "alice", "RegisterMember",
          "'member_id':'alice','kind':'individual','name':'Alice','identity_hash':'" HEX_A "'");
    fx_ok(w, "bob", "RegisterMember",
          "'member_id':'bob','kind':'organization','name':'Bob Soft','identity_hash':'" HEX_B "'");
    fx_ok(w, "carol", "RegisterMember",
          "'member_id':'carol','kind':'individual','name':'Carol','identity_hash':'" HEX_A "'");
    fx_ok(w, "dave", "RegisterMember",
          "'member_id':'dave','kind':'individual','name':'Dave','identity_hash':'" HEX_C "'");
    fx_ok(w, "op", "PublishAgreement", "'version':1,'title':'Terms','digest':'" HEX_C "'");
    fx_ok(w, "bob", "ApplyAsProvider", "'business_name':'Bob Soft Ltd'");
    fx_ok(w, "op", "ApproveProvider", "'member_id':'bob'");
    fx_ok(w, "op", "DefineCategory", "'category_id':'cat','name':'Tools'");
    fx_ok(w, "op", "DefineCategory", "'category_id':'rcat','name':'Security','restricted':true");
    fx_ok(w, "op", "DefineCategory",
          "'category_id':'revcat','name':'Images','requires_review':true");
    fx_ok(w, "bob", "OpenStore", "'store_id':'st1','name':'Bob Store'");
    fx_ok(w, "bob", "PublishProduct",
          "'product_id':'p1','store_id':'st1','category_id':'cat','kind':'software','title':'"
          "Editor','price':1000");
    fx_ok(w, "alice", "DepositFunds", "'amount':100000,'payment_ref':'pay-1'");
    fx_ok(w, "op", "IssueVoucher",
          "'voucher_id':'v1','member_id':'alice','value':300,'expires_at':'2027-01-01T00:00:00Z'");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-placed','product_id':'p1'");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-paid','product_id':'p1'");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-paid'");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-del','product_id':'p1'");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-del'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-del'");
    fx_ok(w, "alice", "PlaceOrder", "'order_id':'o-done','product_id':'p1','quantity':2");
    fx_ok(w, "alice", "PayOrder", "'order_id':'o-done'");
    fx_ok(w, "bob", "DeliverOrder", "'order_id':'o-done'");
    fx_ok(w, "alice", "ConfirmOrder", "'order_id':'o-done'");
    return w;
}

/* Reads a state record as the rules do (values are stored compactly). */
static void record(fx_t *w, const char *key, void *rec, size_t size)
{
    bool found = false;
    md_error_t err = {0};
    if (md__get(&w->st, key, strlen(key), rec, size, &found, &err) != MD_OK || !found)
        fail_msg("record '%s' missing", key);
}

int64_t fx_balance(fx_t *w, const char *member)
{
    char key[80];
    md__member_t m;
    snprintf(key, sizeof key, "m:%s", member);
    record(w, key, &m, sizeof m);
    return m.balance;
}

int64_t fx_escrow(fx_t *w, const char *order)
{
    char key[80];
    md__order_t o;
    snprintf(key, sizeof key, "o:%s", order);
    record(w, key, &o, sizeof o);
    return o.escrow;
}

int64_t fx_held(fx_t *w, const char *member)
{
    char key[80];
    md__member_t m;
    snprintf(key, sizeof key, "m:%s", member);
    record(w, key, &m, sizeof m);
    return m.held;
}
