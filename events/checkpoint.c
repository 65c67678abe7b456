/*
 * checkpoint.c - signed checkpoints of the hash chain: canonical encoding,
 * JSON form, Ed25519 keys and signatures (OpenSSL libcrypto), and the
 * verification of a chain against checkpoints (md_checkpoint.h). The daemon's
 * checkpointer is daemon/checkpointer.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md_base.h"
#include "md_checkpoint.h"

/* ---- values ---------------------------------------------------------------------- */

void md_checkpoint_release(md_checkpoint_t *cp)
{
    if (cp == NULL)
        return;
    free(cp->offsets);
    memset(cp, 0, sizeof *cp);
}

static bool name_valid(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

bool md_replica_id_valid(const char *id)
{
    return id != NULL && name_valid(id, MD_REPLICA_ID_MAX);
}

static void put_line(md_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_line(md_buf_t *out, const char *fmt, ...)
{
    char line[MD_TOPIC_MAX + 96];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    md_buf_append(out, line, n < 0 ? 0 : (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void md_checkpoint_encode(const md_checkpoint_t *cp, md_buf_t *out)
{
    char hex[2 * MD_HASH_LEN + 1];
    md_hex(cp->hash, MD_HASH_LEN, hex);
    put_line(out, "marketd checkpoint v%d\n", cp->version);
    put_line(out, "replica %s\n", cp->replica);
    put_line(out, "seq %" PRIu64 "\n", cp->seq);
    put_line(out, "hash %s\n", hex);
    put_line(out, "recorded_at %" PRId64 "\n", cp->recorded_at);
    if (cp->version >= 2)
        put_line(out, "published %" PRIu64 "\n", cp->published);
    for (size_t i = 0; i < cp->noffsets; i++)
        put_line(out, "offset %s %" PRId32 " %" PRId64 "\n", cp->offsets[i].topic,
                 cp->offsets[i].partition, cp->offsets[i].next);
}

md_err_t md_checkpoint_to_json(const md_checkpoint_t *cp, md_buf_t *out, md_error_t *err)
{
    char hex[2 * MD_HASH_LEN + 1], sig[4 * ((MD_SIG_LEN + 2) / 3) + 1];
    md_hex(cp->hash, MD_HASH_LEN, hex);
    md_base64(cp->sig, MD_SIG_LEN, sig);
    json_t *offs = json_array();
    for (size_t i = 0; i < cp->noffsets; i++)
        json_array_append_new(offs, json_pack("{s:s, s:i, s:I}", "topic", cp->offsets[i].topic,
                                              "partition", (int)cp->offsets[i].partition, "next",
                                              (json_int_t)cp->offsets[i].next));
    json_t *j = json_pack("{s:i, s:s, s:I, s:s, s:I}", "version", cp->version, "replica",
                          cp->replica, "seq", (json_int_t)cp->seq, "hash", hex, "recorded_at",
                          (json_int_t)cp->recorded_at);
    if (j && cp->version >= 2) /* after recorded_at, as in the encoding */
        md_json_set(j, "published", json_integer((json_int_t)cp->published));
    if (j) {
        md_json_set(j, "offsets", offs);
        md_json_set(j, "signature", json_string(sig));
    } else {
        json_decref(offs);
    }
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (s == NULL)
        return md_error_set(err, MD_ECODEC, "checkpoint not representable as JSON");
    md_buf_append(out, s, strlen(s));
    free(s);
    return MD_OK;
}

/* ---- parsing ----------------------------------------------------------------------- */

static int unhex(char ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Exactly 2*n lowercase hex digits into out. */
static bool parse_hex(const char *s, unsigned char *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = unhex(s[2 * i]), lo = unhex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

/* Exactly the canonical base64 of n bytes. */
static bool parse_b64(const char *s, unsigned char *out, size_t n)
{
    size_t len = strlen(s), want = 4 * ((n + 2) / 3);
    unsigned char buf[4 * ((MD_SIG_LEN + 2) / 3)];
    char back[sizeof buf + 1];
    if (len != want || want > sizeof buf ||
        EVP_DecodeBlock(buf, (const unsigned char *)s, (int)len) < (int)n)
        return false;
    md_base64(buf, n, back); /* rejects non-canonical padding bits */
    if (strcmp(back, s) != 0)
        return false;
    memcpy(out, buf, n);
    return true;
}

static bool get_int(json_t *o, const char *k, json_int_t min, json_int_t *v)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x) || json_integer_value(x) < min)
        return false;
    *v = json_integer_value(x);
    return true;
}

static const char *get_str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int offset_cmp(const md_cp_offset_t *a, const md_cp_offset_t *b)
{
    int c = strcmp(a->topic, b->topic);
    return c ? c : a->partition < b->partition ? -1 : a->partition > b->partition;
}

static md_err_t parse_offsets(json_t *arr, md_checkpoint_t *cp, md_error_t *err)
{
    if (!json_is_array(arr))
        return md_error_set(err, MD_EINVAL, "'offsets' must be an array");
    cp->noffsets = json_array_size(arr);
    cp->offsets = md_calloc(cp->noffsets ? cp->noffsets : 1, sizeof *cp->offsets);
    for (size_t i = 0; i < cp->noffsets; i++) {
        json_t *o = json_array_get(arr, i);
        md_cp_offset_t *d = &cp->offsets[i];
        const char *topic = get_str(o, "topic");
        json_int_t part, next;
        if (!json_is_object(o) || json_object_size(o) != 3 || topic == NULL ||
            !name_valid(topic, MD_TOPIC_MAX) || !get_int(o, "partition", 0, &part) ||
            part > INT32_MAX || !get_int(o, "next", 0, &next))
            return md_error_set(err, MD_EINVAL, "offsets[%zu] must be {topic, partition, next}", i);
        snprintf(d->topic, sizeof d->topic, "%s", topic);
        d->partition = (int32_t)part;
        d->next = next;
        if (i > 0 && offset_cmp(&cp->offsets[i - 1], d) >= 0)
            return md_error_set(err, MD_EINVAL, "offsets must be sorted by topic and partition");
    }
    return MD_OK;
}

static md_err_t parse_fields(json_t *j, md_checkpoint_t *cp, md_error_t *err)
{
    json_int_t version, seq, at;
    const char *replica = get_str(j, "replica"), *hash = get_str(j, "hash"),
               *sig = get_str(j, "signature");
    if (!json_is_object(j))
        return md_error_set(err, MD_EINVAL, "a checkpoint must be a JSON object");
    json_int_t published = 0;
    if (!get_int(j, "version", 1, &version) || version > MD_CHECKPOINT_VERSION_MAX)
        return md_error_set(err, MD_EINVAL, "'version' must be 1 or %d", MD_CHECKPOINT_VERSION_MAX);
    if (json_object_size(j) != (version == 1 ? 7u : 8u))
        return md_error_set(err, MD_EINVAL, "a version %d checkpoint has exactly %d fields",
                            (int)version, version == 1 ? 7 : 8);
    if (version >= 2 && !get_int(j, "published", 0, &published))
        return md_error_set(err, MD_EINVAL, "'published' must be an integer >= 0");
    if (replica == NULL || !md_replica_id_valid(replica))
        return md_error_set(err, MD_EINVAL, "'replica' must be [A-Za-z0-9._-]{1,64}");
    if (!get_int(j, "seq", 1, &seq))
        return md_error_set(err, MD_EINVAL, "'seq' must be an integer >= 1");
    if (hash == NULL || !parse_hex(hash, cp->hash, MD_HASH_LEN))
        return md_error_set(err, MD_EINVAL, "'hash' must be 64 lowercase hex digits");
    if (!get_int(j, "recorded_at", INT64_MIN, &at))
        return md_error_set(err, MD_EINVAL, "'recorded_at' must be an integer");
    if (sig == NULL || !parse_b64(sig, cp->sig, MD_SIG_LEN))
        return md_error_set(err, MD_EINVAL, "'signature' must be the base64 of 64 bytes");
    cp->version = (int)version;
    snprintf(cp->replica, sizeof cp->replica, "%s", replica);
    cp->seq = (uint64_t)seq;
    cp->recorded_at = at;
    cp->published = (uint64_t)published;
    return parse_offsets(json_object_get(j, "offsets"), cp, err);
}

md_err_t md_checkpoint_from_json(const char *text, size_t len, md_checkpoint_t *cp, md_error_t *err)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL)
        return md_error_set(err, MD_EINVAL, "not JSON: %s", je.text);
    md_err_t rc = parse_fields(j, cp, err);
    json_decref(j);
    if (rc != MD_OK)
        md_checkpoint_release(cp);
    return rc;
}

/* ---- from the store -------------------------------------------------------------------- */

uint64_t md_checkpoint_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Every entry of the offsets database (topic '\0' partition(4 BE) -> next(8 BE)),
 * in key order, which is the canonical order. */
static md_err_t take_offsets(md_txn_t *t, md_checkpoint_t *cp, md_error_t *err)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    size_t cap = 0;
    int rc = mdb_cursor_open(md_txn_mdb(t), md_txn_dbi(t, MD_DB_OFFSETS), &cur);
    if (rc != MDB_SUCCESS)
        return md_store_err(rc, err, "offsets cursor");
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *p = k.mv_data, *nul = memchr(p, 0, k.mv_size);
        size_t tlen = nul ? (size_t)(nul - p) : 0;
        if (nul == NULL || k.mv_size - tlen != 5 || v.mv_size != 8 || tlen > MD_TOPIC_MAX) {
            mdb_cursor_close(cur);
            return md_error_set(err, MD_ECORRUPT, "malformed offsets record");
        }
        if (cp->noffsets == cap) {
            cap = cap ? 2 * cap : 4;
            cp->offsets = md_realloc(cp->offsets, cap * sizeof *cp->offsets);
        }
        md_cp_offset_t *o = &cp->offsets[cp->noffsets++];
        memcpy(o->topic, p, tlen);
        o->topic[tlen] = '\0';
        o->partition = (int32_t)md_checkpoint_be(nul + 1, 4);
        o->next = (int64_t)md_checkpoint_be(v.mv_data, 8);
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MD_OK : md_store_err(rc, err, "offsets scan");
}

md_err_t md_checkpoint_take(md_txn_t *t, const char *replica, md_checkpoint_t *cp, md_error_t *err)
{
    md_event_t ev;
    memset(cp, 0, sizeof *cp);
    cp->version = MD_CHECKPOINT_VERSION;
    snprintf(cp->replica, sizeof cp->replica, "%s", replica);
    md_err_t rc = md_txn_head(t, &cp->seq, cp->hash, err);
    if (rc == MD_OK && cp->seq == 0)
        rc = md_error_set(err, MD_ENOTFOUND, "the store is empty");
    if (rc == MD_OK)
        rc = md_txn_event(t, cp->seq, &ev, NULL, NULL, err);
    if (rc == MD_OK) {
        cp->recorded_at = ev.recorded_at;
        rc = take_offsets(t, cp, err);
    }
    if (rc != MD_OK)
        md_checkpoint_release(cp);
    return rc;
}

/* ---- keys and signatures ------------------------------------------------------------- */

static char *key_path(const char *dir, const char *id, const char *ext)
{
    size_t n = strlen(dir) + strlen(id) + strlen(ext) + 3;
    char *p = md_malloc(n);
    snprintf(p, n, "%s/%s.%s", dir, id, ext);
    return p;
}

/* Creates @p path (never overwriting) with @p mode and writes the key. */
static md_err_t write_pem(const char *path, mode_t mode, EVP_PKEY *k, bool private_key,
                          md_error_t *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return md_error_set(err, errno == EEXIST ? MD_EEXIST : MD_EIO, "create '%s': %s", path,
                            strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return md_error_set(err, MD_EIO, "open '%s': %s", path, strerror(errno));
    }
    int ok = private_key ? PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_PUBKEY(f, k);
    if (fclose(f) != 0 || !ok)
        return md_error_set(err, MD_EIO, "write '%s' failed", path);
    return MD_OK;
}

md_err_t md_keygen(const char *id, const char *dir, md_error_t *err)
{
    if (!md_replica_id_valid(id))
        return md_error_set(err, MD_EINVAL, "replica id '%s' must be [A-Za-z0-9._-]{1,64}", id);
    char *priv = key_path(dir, id, "key"), *pub = key_path(dir, id, "pub");
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    md_err_t rc = k ? MD_OK : md_error_set(err, MD_EIO, "Ed25519 key generation failed");
    if (rc == MD_OK && access(pub, F_OK) == 0)
        rc = md_error_set(err, MD_EEXIST, "'%s' exists", pub);
    if (rc == MD_OK)
        rc = write_pem(priv, 0600, k, true, err);
    if (rc == MD_OK && (rc = write_pem(pub, 0644, k, false, err)) != MD_OK)
        unlink(priv);
    EVP_PKEY_free(k);
    free(priv);
    free(pub);
    return rc;
}

md_err_t md_key_load(const char *path, bool private_key, EVP_PKEY **out, md_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return md_error_set(err, MD_EIO, "open key '%s': %s", path, strerror(errno));
    EVP_PKEY *k = private_key ? PEM_read_PrivateKey(f, NULL, NULL, NULL)
                              : PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    if (k == NULL || EVP_PKEY_get_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return md_error_set(err, MD_EINVAL, "'%s' is not a PEM Ed25519 %s key", path,
                            private_key ? "private" : "public");
    }
    *out = k;
    return MD_OK;
}

md_err_t md_checkpoint_sign(md_checkpoint_t *cp, EVP_PKEY *key, md_error_t *err)
{
    md_buf_t msg;
    size_t len = MD_SIG_LEN;
    md_buf_init(&msg);
    md_checkpoint_encode(cp, &msg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(ctx, cp->sig, &len, msg.p, msg.len) == 1 && len == MD_SIG_LEN;
    EVP_MD_CTX_free(ctx);
    md_buf_release(&msg);
    return ok ? MD_OK : md_error_set(err, MD_EINVAL, "signing the checkpoint failed");
}

md_err_t md_checkpoint_verify(const md_checkpoint_t *cp, EVP_PKEY *pub, md_error_t *err)
{
    md_buf_t msg;
    md_buf_init(&msg);
    md_checkpoint_encode(cp, &msg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
             EVP_DigestVerify(ctx, cp->sig, MD_SIG_LEN, msg.p, msg.len) == 1;
    EVP_MD_CTX_free(ctx);
    md_buf_release(&msg);
    return ok ? MD_OK : md_error_set(err, MD_ECORRUPT, "bad signature");
}

/* ---- a set of checkpoints and keys ---------------------------------------------------- */

static md_err_t load_checkpoints(md_cp_set_t *s, const char *path, md_error_t *err)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return md_error_set(err, MD_EIO, "open '%s': %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, room = 0;
    ssize_t n;
    int lineno = 0;
    md_err_t rc = MD_OK;
    while (rc == MD_OK && (n = getline(&line, &cap, f)) >= 0) {
        md_error_t e = {0};
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            n--;
        if (n == 0)
            continue;
        if (s->n == room) {
            room = room ? 2 * room : 16;
            s->cps = md_realloc(s->cps, room * sizeof *s->cps);
        }
        memset(&s->cps[s->n], 0, sizeof s->cps[s->n]);
        if ((rc = md_checkpoint_from_json(line, (size_t)n, &s->cps[s->n], &e)) == MD_OK)
            s->n++;
        else
            md_error_set(err, rc, "%s:%d: %s", path, lineno, e.msg);
    }
    free(line);
    fclose(f);
    if (rc == MD_OK && s->n == 0)
        rc = md_error_set(err, MD_EINVAL, "%s: no checkpoint", path);
    return rc;
}

static md_err_t load_keys(md_cp_set_t *s, const char *dir, md_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return md_error_set(err, MD_EIO, "open keys directory '%s': %s", dir, strerror(errno));
    md_err_t rc = MD_OK;
    struct dirent *de;
    while (rc == MD_OK && (de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        char id[MD_REPLICA_ID_MAX + 1];
        if (len < 5 || len - 4 > MD_REPLICA_ID_MAX || strcmp(de->d_name + len - 4, ".pub") != 0)
            continue;
        snprintf(id, sizeof id, "%.*s", (int)(len - 4), de->d_name);
        if (!md_replica_id_valid(id))
            continue;
        char *path = key_path(dir, id, "pub");
        EVP_PKEY *k = NULL;
        if ((rc = md_key_load(path, false, &k, err)) == MD_OK) {
            s->keys = md_realloc(s->keys, (s->nkeys + 1) * sizeof *s->keys);
            s->key_ids = md_realloc(s->key_ids, (s->nkeys + 1) * sizeof *s->key_ids);
            s->keys[s->nkeys] = k;
            memcpy(s->key_ids[s->nkeys++], id, sizeof id);
        }
        free(path);
    }
    closedir(d);
    if (rc == MD_OK && s->nkeys == 0)
        rc = md_error_set(err, MD_EINVAL, "no public key (*.pub) in '%s'", dir);
    return rc;
}

md_err_t md_cp_set_load(md_cp_set_t *s, const char *path, const char *keys_dir, md_error_t *err)
{
    memset(s, 0, sizeof *s);
    md_err_t rc = load_checkpoints(s, path, err);
    if (rc == MD_OK)
        rc = load_keys(s, keys_dir, err);
    if (rc != MD_OK)
        md_cp_set_release(s);
    return rc;
}

void md_cp_set_release(md_cp_set_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        md_checkpoint_release(&s->cps[i]);
    for (size_t i = 0; i < s->nkeys; i++)
        EVP_PKEY_free(s->keys[i]);
    free(s->cps);
    free(s->keys);
    free(s->key_ids);
    memset(s, 0, sizeof *s);
}

static EVP_PKEY *key_of(const md_cp_set_t *s, const char *replica)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (strcmp(s->key_ids[i], replica) == 0)
            return s->keys[i];
    return NULL;
}

md_err_t md_cp_set_verify_signatures(const md_cp_set_t *s, md_error_t *err)
{
    for (size_t i = 0; i < s->n; i++) {
        const md_checkpoint_t *cp = &s->cps[i];
        EVP_PKEY *k = key_of(s, cp->replica);
        if (k == NULL)
            return md_error_set(err, MD_ECORRUPT,
                                "checkpoint %zu (replica %s, seq %" PRIu64 "): no key %s.pub",
                                i + 1, cp->replica, cp->seq, cp->replica);
        if (md_checkpoint_verify(cp, k, NULL) != MD_OK)
            return md_error_set(err, MD_ECORRUPT,
                                "checkpoint %zu (replica %s, seq %" PRIu64 "): bad signature",
                                i + 1, cp->replica, cp->seq);
    }
    return MD_OK;
}

md_err_t md_cp_set_check_chain(const md_cp_set_t *s, uint64_t head, md_hash_at_fn hash_at,
                               void *ctx, md_error_t *err)
{
    for (size_t i = 0; i < s->n; i++) {
        const md_checkpoint_t *cp = &s->cps[i];
        unsigned char h[MD_HASH_LEN];
        char want[2 * MD_HASH_LEN + 1], got[2 * MD_HASH_LEN + 1];
        if (cp->seq > head)
            return md_error_set(err, MD_ECORRUPT,
                                "the store ends at seq %" PRIu64 " but replica %s signed seq "
                                "%" PRIu64 " > %" PRIu64,
                                head, cp->replica, cp->seq, head);
        md_err_t rc = hash_at(cp->seq, h, ctx, err);
        if (rc != MD_OK)
            return rc;
        if (memcmp(h, cp->hash, MD_HASH_LEN) != 0) {
            md_hex(cp->hash, MD_HASH_LEN, want);
            md_hex(h, MD_HASH_LEN, got);
            return md_error_set(err, MD_ECORRUPT,
                                "different hash at seq %" PRIu64 ": replica %s signed %s, the "
                                "chain has %s",
                                cp->seq, cp->replica, want, got);
        }
    }
    return MD_OK;
}
