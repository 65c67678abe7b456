/*
 * replica.c - replicated mode (md_replica.h): the publication map, the
 * leader's published seq and the followers' drop, and the heads thread that
 * checks the peers' signed checkpoints against this store.
 */
#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "md_base.h"
#include "md_checkpoint.h"
#include "md_kafka.h"
#include "md_leader.h"
#include "md_log.h"
#include "md_metrics.h"
#include "md_replica.h"

#define DROP_MAX 20000 /* outbox entries a follower drops per transaction */

/* ---- the publication map --------------------------------------------------------------- */

void md_pubmap_note(md_pubmap_t *p, uint64_t next, uint64_t head)
{
    while (p->n > 0 && p->m[p->n - 1].next > next)
        p->n--; /* a batch that was not committed (ids are handed out again) */
    if (p->n > 0 && p->m[p->n - 1].next == next) {
        /* nothing queued since: the later head is a better lower bound */
        if (head > p->m[p->n - 1].head)
            p->m[p->n - 1].head = head;
        return;
    }
    if (p->n == MD_PUBMAP_MAX) {
        /* merge the two oldest after the first: ids in [m[0].next, m[2].next)
         * keep the lower bound m[0].head and the upper bound m[2].head */
        memmove(&p->m[1], &p->m[2], (p->n - 2) * sizeof *p->m);
        p->n--;
    }
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->m = md_realloc(p->m, p->cap * sizeof *p->m);
    }
    p->m[p->n++] = (md_pubmark_t){next, head};
}

bool md_pubmap_published(const md_pubmap_t *p, uint64_t first_pending, uint64_t *S)
{
    size_t i = 0;
    while (i < p->n && p->m[i].next <= first_pending)
        i++;
    /* ids >= m[i-1].next have tags >= m[i-1].head: every tag below is delivered */
    if (i == 0 || p->m[i - 1].head == 0)
        return false;
    *S = p->m[i - 1].head - 1;
    return true;
}

uint64_t md_pubmap_drop_below(const md_pubmap_t *p, uint64_t published)
{
    uint64_t below = 0;
    for (size_t i = 0; i < p->n && p->m[i].head <= published; i++)
        below = p->m[i].next;
    return below;
}

void md_pubmap_trim(md_pubmap_t *p, uint64_t id)
{
    size_t k = 0;
    while (k + 1 < p->n && p->m[k + 1].next <= id)
        k++;
    if (k > 0) {
        memmove(p->m, &p->m[k], (p->n - k) * sizeof *p->m);
        p->n -= k;
    }
}

void md_pubmap_release(md_pubmap_t *p)
{
    free(p->m);
    memset(p, 0, sizeof *p);
}

bool md_replica_must_stop(int disagreeing, int configured)
{
    return configured > 0 && disagreeing >= configured / 2 + 1;
}

/* ---- the replica --------------------------------------------------------------------------- */

typedef struct peer {
    char id[MD_REPLICA_ID_MAX + 1];
    EVP_PKEY *key;
    uint64_t last_seq;
    bool pending, disagrees;
    uint64_t pend_seq;
    unsigned char pend_hash[MD_HASH_LEN];
} peer_t;

struct md_replica {
    const md_config_t *cfg;
    md_store_t *store;
    md_checkpointer_t *cp;
    volatile sig_atomic_t *stop;
    _Atomic(md_leader_t *) leader; /* set once by md_replica_lead; read by every thread */
    atomic_bool leads;             /* as the leader thread last said (on_leader_change) */
    md_publisher_t *pub;
    peer_t *peers; /* the heads thread's */
    int npeers, configured;
    atomic_bool failed;
    _Atomic uint64_t published_seen; /* the highest "published" of the peers' checkpoints */
    _Atomic uint64_t leader_seq;     /* the seq of the last version 2 checkpoint */
    /* the writer's */
    md_pubmap_t map;
    uint64_t own_published;
    /* the heads thread */
    rd_kafka_t *heads;
    pthread_t thread;
    bool started;
    atomic_bool quit;
};

md_err_t md_replica_check_config(const md_config_t *cfg, md_error_t *err)
{
    if (cfg->clock != MD_CLOCK_LOG && cfg->clock != MD_CLOCK_COMMAND)
        return md_error_set(err, MD_ECONFIG,
                            "replica.mode = replicated needs clock = log or command: with the "
                            "wall clock each replica would record its own times and their "
                            "chains would differ");
    if (cfg->replica_key_file[0] == '\0')
        return md_error_set(err, MD_ECONFIG,
                            "replica.mode = replicated needs replica.key_file: every replica "
                            "signs its checkpoints (marketctl keygen)");
    if (cfg->replica_peers_keys[0] == '\0')
        return md_error_set(err, MD_ECONFIG,
                            "replica.mode = replicated needs replica.peers_keys: the directory "
                            "of the replicas' public keys (ID.pub), to check their checkpoints");
    return MD_OK;
}

/* The commands topic must have exactly one partition: one total order. */
static md_err_t check_partitions(const md_config_t *cfg, md_error_t *err)
{
    rd_kafka_t *rk = md_kafka_admin_client(cfg, "a metadata client", err);
    if (rk == NULL)
        return err ? err->code : MD_EKAFKA;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, cfg->topic_commands, NULL);
    md_err_t rc = MD_EKAFKA;
    for (int attempt = 0; attempt < 30; attempt++) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 5000);
        int parts = -1;
        if (e == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && md->topics[0].err == 0)
            parts = md->topics[0].partition_cnt;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (parts == 1) {
            rc = MD_OK;
            break;
        }
        if (parts > 1) {
            rc = md_error_set(err, MD_ECONFIG,
                              "replica.mode = replicated needs the commands topic '%s' to have "
                              "exactly one partition (it has %d): replicas must decide one "
                              "total order (create it with topic.partitions = 1)",
                              cfg->topic_commands, parts);
            break;
        }
        md_sleep_ms(200);
    }
    if (rc == MD_EKAFKA)
        md_error_set(err, rc, "no metadata for the commands topic '%s'", cfg->topic_commands);
    rd_kafka_topic_destroy(t);
    rd_kafka_destroy(rk);
    return rc;
}

static bool known_id(const md_replica_t *r, const char *id)
{
    for (int i = 0; i < r->npeers; i++)
        if (strcmp(r->peers[i].id, id) == 0)
            return true;
    return false;
}

/* Every DIR/ID.pub but this replica's own. */
static md_err_t load_peers(md_replica_t *r, md_error_t *err)
{
    const char *dir = r->cfg->replica_peers_keys;
    DIR *d = opendir(dir);
    if (d == NULL)
        return md_error_set(err, MD_ECONFIG, "replica.peers_keys: cannot open '%s'", dir);
    md_err_t rc = MD_OK;
    struct dirent *de;
    while (rc == MD_OK && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char id[MD_REPLICA_ID_MAX + 1], path[4096];
        if (len < 5 || len - 4 > MD_REPLICA_ID_MAX || strcmp(de->d_name + len - 4, ".pub") != 0)
            continue;
        snprintf(id, sizeof id, "%.*s", (int)(len - 4), de->d_name);
        if (!md_replica_id_valid(id) || strcmp(id, r->cfg->replica_id) == 0 || known_id(r, id))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        EVP_PKEY *k = NULL;
        md_error_t e = {0};
        if (md_key_load(path, false, &k, &e) != MD_OK) {
            rc = md_error_set(err, MD_ECONFIG, "replica.peers_keys: %s", e.msg);
            break;
        }
        r->peers = md_realloc(r->peers, (size_t)(r->npeers + 1) * sizeof *r->peers);
        peer_t *p = &r->peers[r->npeers++];
        memset(p, 0, sizeof *p);
        snprintf(p->id, sizeof p->id, "%s", id);
        p->key = k;
    }
    closedir(d);
    return rc;
}

/* The peers' names for /metrics, published once before the HTTP threads read them. */
static void publish_peer_names(md_replica_t *r)
{
    md_replica_metrics_t *m = &md_metrics.replica;
    int n = r->npeers < MD_METRIC_PEERS ? r->npeers : MD_METRIC_PEERS;
    for (int i = 0; i < n; i++)
        snprintf(m->peer_id[i], sizeof m->peer_id[i], "%s", r->peers[i].id);
    atomic_store_explicit(&m->npeers, n, memory_order_release);
}

/* ---- the heads thread: the peers' checkpoints against this store ---------------------------- */

static void diverged(md_replica_t *r, peer_t *p, uint64_t seq, const unsigned char *ours)
{
    char theirs_hex[2 * MD_HASH_LEN + 1], ours_hex[2 * MD_HASH_LEN + 1];
    md_hex(p->pend_hash, MD_HASH_LEN, theirs_hex);
    md_hex(ours, MD_HASH_LEN, ours_hex);
    md_log_error("replica divergence: a peer signed another hash at this seq",
                 "replica=%s peer=%s seq=%" PRIu64 " ours=%s theirs=%s", r->cfg->replica_id, p->id,
                 seq, ours_hex, theirs_hex);
    atomic_fetch_add(&md_metrics.replica.divergence, 1);
    atomic_store(&md_metrics.replica.diverged, true);
    p->disagrees = true;
    int n = 0;
    for (int i = 0; i < r->npeers; i++)
        n += r->peers[i].disagrees;
    if (md_replica_must_stop(n, r->configured) && !atomic_exchange(&r->failed, true)) {
        md_log_error("this replica disagrees with a majority of the replicas: it stops deciding "
                     "(fail-stop)",
                     "replica=%s disagreeing=%d configured=%d seq=%" PRIu64, r->cfg->replica_id, n,
                     r->configured, seq);
        *r->stop = 1;
    }
}

/* Compares each peer's pending checkpoint this store has reached. */
static void check_pending(md_replica_t *r)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t head;
    if (md_store_read(r->store, &t, &err) != MD_OK || md_txn_head(t, &head, NULL, &err) != MD_OK) {
        md_log_warn("replica check: cannot read the store", "error=\"%s\"", err.msg);
        md_txn_end(t);
        return;
    }
    for (int i = 0; i < r->npeers; i++) {
        peer_t *p = &r->peers[i];
        md_event_t ev;
        if (!p->pending || p->pend_seq > head)
            continue;
        p->pending = false;
        if (md_txn_event(t, p->pend_seq, &ev, NULL, NULL, &err) != MD_OK) {
            md_log_warn("replica check: cannot read an event", "seq=%" PRIu64 " error=\"%s\"",
                        p->pend_seq, err.msg);
            continue;
        }
        if (memcmp(ev.hash, p->pend_hash, MD_HASH_LEN) != 0)
            diverged(r, p, p->pend_seq, ev.hash);
    }
    uint64_t lseq = atomic_load(&r->leader_seq);
    if (atomic_load(&r->leads))
        atomic_store(&md_metrics.replica.leader_lag, 0); /* this one leads */
    else if (lseq)
        atomic_store(&md_metrics.replica.leader_lag, lseq > head ? (int64_t)(lseq - head) : 0);
    md_txn_end(t);
}

static peer_t *peer_of(md_replica_t *r, const char *id)
{
    for (int i = 0; i < r->npeers; i++)
        if (strcmp(r->peers[i].id, id) == 0)
            return &r->peers[i];
    return NULL;
}

static void take_checkpoint(md_replica_t *r, const rd_kafka_message_t *m)
{
    md_checkpoint_t cp = {0};
    md_error_t err = {0};
    if (md_checkpoint_from_json(m->payload, m->len, &cp, &err) != MD_OK) {
        md_log_warn("heads topic: not a checkpoint", "offset=%lld error=\"%s\"",
                    (long long)m->offset, err.msg);
        return;
    }
    peer_t *p = peer_of(r, cp.replica);
    if (p == NULL) {
        if (strcmp(cp.replica, r->cfg->replica_id) != 0)
            md_log_debug("heads topic: a replica without a key here", "replica=%s", cp.replica);
    } else if (md_checkpoint_verify(&cp, p->key, NULL) != MD_OK) {
        md_log_error("heads topic: checkpoint with a bad signature ignored",
                     "peer=%s seq=%" PRIu64 " offset=%lld", cp.replica, cp.seq,
                     (long long)m->offset);
    } else {
        if (cp.seq > p->last_seq)
            p->last_seq = cp.seq;
        int i = (int)(p - r->peers);
        if (i < MD_METRIC_PEERS)
            atomic_store(&md_metrics.replica.peer_seq[i], p->last_seq);
        if (cp.version >= 2) {
            uint64_t seen = atomic_load(&r->published_seen);
            while (cp.published > seen &&
                   !atomic_compare_exchange_weak(&r->published_seen, &seen, cp.published))
                ;
            atomic_store(&r->leader_seq, cp.seq);
        }
        p->pending = true;
        p->pend_seq = cp.seq;
        memcpy(p->pend_hash, cp.hash, MD_HASH_LEN);
    }
    md_checkpoint_release(&cp);
}

static void *heads_main(void *arg)
{
    md_replica_t *r = arg;
    long last_check = 0;
    while (!atomic_load(&r->quit)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(r->heads, 100);
        if (m != NULL && m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            take_checkpoint(r, m);
        else if (m != NULL && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            md_log_warn("heads topic error", "error=\"%s\"", rd_kafka_message_errstr(m));
        if (m != NULL)
            rd_kafka_message_destroy(m);
        if (m == NULL || md_mono_ms() - last_check >= 100) {
            check_pending(r);
            last_check = md_mono_ms();
        }
    }
    return NULL;
}

/* A consumer of the heads topic's one partition, from its start, outside any group. */
static md_err_t open_heads(md_replica_t *r, md_error_t *err)
{
    char group[300], errstr[512];
    snprintf(group, sizeof group, "%s.heads-reader", r->cfg->group_id);
    const char *extra[] = {"group.id", group, "enable.auto.commit", "false", "enable.partition.eof",
                           "false"};
    rd_kafka_conf_t *conf = md_kafka_conf(r->cfg, extra, 3, err);
    if (conf == NULL)
        return MD_ECONFIG;
    r->heads = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (r->heads == NULL) {
        rd_kafka_conf_destroy(conf);
        return md_error_set(err, MD_EKAFKA, "create the heads reader: %s", errstr);
    }
    rd_kafka_poll_set_consumer(r->heads);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, r->cfg->topic_heads, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(r->heads, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e)
        return md_error_set(err, MD_EKAFKA, "read '%s': %s", r->cfg->topic_heads,
                            rd_kafka_err2str(e));
    if (pthread_create(&r->thread, NULL, heads_main, r) != 0)
        return md_error_set(err, MD_EKAFKA, "cannot start the heads thread");
    r->started = true;
    return MD_OK;
}

md_err_t md_replica_new(const md_replica_opts_t *o, md_replica_t **out, md_error_t *err)
{
    md_err_t rc = md_replica_check_config(o->cfg, err);
    if (rc == MD_OK && o->checkpointer == NULL)
        rc = md_error_set(err, MD_ECONFIG, "replicated mode needs the checkpointer");
    if (rc == MD_OK)
        rc = check_partitions(o->cfg, err);
    if (rc != MD_OK)
        return rc;
    md_replica_t *r = md_calloc(1, sizeof *r);
    r->cfg = o->cfg;
    r->store = o->store;
    r->cp = o->checkpointer;
    r->stop = o->stop;
    rc = load_peers(r, err);
    r->configured = o->cfg->replica_count > 0 ? (int)o->cfg->replica_count : r->npeers + 1;
    atomic_store(&md_metrics.replica.on, true);
    atomic_store(&md_metrics.replica.leader_lag, -1);
    atomic_store(&md_metrics.replica.ready_max_lag, o->cfg->replica_ready_max_lag);
    publish_peer_names(r);
    if (rc == MD_OK)
        rc = open_heads(r, err);
    if (rc != MD_OK) {
        md_replica_free(r);
        return rc;
    }
    md_log_info("replicated mode", "replica=%s peers=%d configured=%d", o->cfg->replica_id,
                r->npeers, r->configured);
    *out = r;
    return MD_OK;
}

static void on_leader_change(bool leads, void *ctx)
{
    md_replica_t *r = ctx;
    atomic_store(&r->leads, leads);
    if (leads && r->pub)
        md_publisher_rescan(r->pub); /* publish everything still in the outbox */
}

md_err_t md_replica_lead(md_replica_t *r, md_publisher_t *pub, md_error_t *err)
{
    r->pub = pub;
    md_leader_t *l = NULL;
    md_err_t rc = md_leader_start(r->cfg, on_leader_change, r, &l, err);
    if (rc == MD_OK)
        atomic_store(&r->leader, l);
    return rc;
}

bool md_replica_may_publish(const char *topic, void *replica)
{
    md_replica_t *r = replica;
    if (strcmp(topic, r->cfg->topic_heads) == 0)
        return true;
    return !atomic_load(&r->failed) && atomic_load(&r->leads);
}

bool md_replica_may_tick(void *replica)
{
    md_replica_t *r = replica;
    return !atomic_load(&r->failed) && atomic_load(&r->leads);
}

bool md_replica_failed(const md_replica_t *r)
{
    return r != NULL && atomic_load(&((md_replica_t *)r)->failed);
}

/* ---- the writer's part ------------------------------------------------------------------------ */

typedef struct scan_ctx {
    const md_replica_t *r;
    uint64_t below; /* drop: ids below; 0 = find the first */
    uint64_t first; /* find: the first id to publish */
    uint64_t *ids;
    size_t n;
} scan_ctx_t;

/* Entries a replica publishes only when leading: all but its checkpoints. */
static bool leaders_only(const md_replica_t *r, const char *topic)
{
    return strcmp(topic, r->cfg->topic_heads) != 0;
}

static md_err_t find_first(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    scan_ctx_t *s = ctx;
    if (!leaders_only(s->r, m->topic))
        return MD_OK;
    s->first = m->id;
    return MD_ESTOP;
}

static md_err_t collect_drops(const md_outbox_msg_t *m, void *ctx, md_error_t *err)
{
    (void)err;
    scan_ctx_t *s = ctx;
    if (m->id >= s->below || s->n == DROP_MAX)
        return MD_ESTOP;
    if (leaders_only(s->r, m->topic))
        s->ids[s->n++] = m->id;
    return MD_OK;
}

/* The leader: the published seq goes into its checkpoints. */
static md_err_t lead_batch(md_replica_t *r, md_txn_t *t, uint64_t next, md_error_t *err)
{
    scan_ctx_t s = {.r = r, .first = next};
    uint64_t S = 0;
    md_err_t rc = md_txn_outbox_scan(t, 0, 0, find_first, &s, err);
    if (rc != MD_OK)
        return rc;
    if (md_pubmap_published(&r->map, s.first, &S) && S > r->own_published)
        r->own_published = S;
    uint64_t seen = atomic_load(&r->published_seen);
    if (seen > r->own_published)
        r->own_published = seen;
    md_pubmap_trim(&r->map, s.first);
    md_checkpointer_set_published(r->cp, true, r->own_published);
    atomic_store(&md_metrics.replica.published, r->own_published);
    return MD_OK;
}

/* A follower: drops what the leaders' checkpoints say was published. */
static md_err_t follow_batch(md_replica_t *r, md_txn_t *t, md_error_t *err)
{
    uint64_t published = atomic_load(&r->published_seen);
    md_checkpointer_set_published(r->cp, false, 0);
    atomic_store(&md_metrics.replica.published, published);
    uint64_t below = md_pubmap_drop_below(&r->map, published);
    if (below == 0)
        return MD_OK;
    scan_ctx_t s = {.r = r, .below = below, .ids = md_malloc(DROP_MAX * sizeof(uint64_t))};
    md_err_t rc = md_txn_outbox_scan(t, 0, 0, collect_drops, &s, err);
    for (size_t i = 0; i < s.n && rc == MD_OK; i++)
        rc = md_txn_outbox_del(t, s.ids[i], err);
    if (rc == MD_OK && s.n) {
        atomic_fetch_add(&md_metrics.replica.dropped, s.n);
        md_log_debug("outbox entries dropped: published by the leader",
                     "count=%zu below_id=%" PRIu64 " published=%" PRIu64, s.n, below, published);
    }
    if (rc == MD_OK && s.n < DROP_MAX)
        md_pubmap_trim(&r->map, below);
    free(s.ids);
    return rc;
}

md_err_t md_replica_batch(md_txn_t *t, void *replica, md_error_t *err)
{
    md_replica_t *r = replica;
    uint64_t head, next;
    md_err_t rc = md_txn_head(t, &head, NULL, err);
    if (rc == MD_OK)
        rc = md_txn_outbox_next(t, &next, err);
    if (rc != MD_OK)
        return rc;
    md_pubmap_note(&r->map, next, head);
    if (atomic_load(&r->leads) && !atomic_load(&r->failed))
        return lead_batch(r, t, next, err);
    return follow_batch(r, t, err);
}

void md_replica_free(md_replica_t *r)
{
    if (r == NULL)
        return;
    md_leader_free(atomic_load(&r->leader));
    if (r->started) {
        atomic_store(&r->quit, true);
        pthread_join(r->thread, NULL);
    }
    if (r->heads) {
        rd_kafka_resp_err_t e = rd_kafka_consumer_close(r->heads);
        if (e)
            md_log_debug("heads reader not closed cleanly", "error=\"%s\"", rd_kafka_err2str(e));
        rd_kafka_destroy(r->heads);
    }
    for (int i = 0; i < r->npeers; i++)
        EVP_PKEY_free(r->peers[i].key);
    free(r->peers);
    md_pubmap_release(&r->map);
    free(r);
}
