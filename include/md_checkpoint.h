/*
 * md_checkpoint.h - signed checkpoints of the hash chain: the head witnessed
 * outside the disk that holds it (docs/audit.md).
 *
 * A checkpoint says "replica R had, at seq S, the chain hash H; the event at
 * S was recorded at T; R had consumed the commands up to these offsets",
 * signed with R's Ed25519 key. The daemon publishes them (md_checkpointer.h);
 * marketctl reads and verifies them (tools/ctl_checkpoint.c).
 *
 * Canonical encoding (what is signed), version 1: ASCII lines, each ending
 * in "\n", in this order:
 *     marketd checkpoint v1
 *     replica <id>
 *     seq <decimal>
 *     hash <64 lowercase hex digits>
 *     recorded_at <decimal milliseconds since the epoch>
 *     published <decimal>                          (version 2 only: the
 *                                                   replicated leader's "every
 *                                                   result, event and dead
 *                                                   letter decided up to this
 *                                                   seq was published")
 *     offset <topic> <partition> <next offset>      (one per stored offset,
 *                                                    sorted by topic bytes,
 *                                                    then partition)
 * Numbers have no sign (recorded_at may have '-'), no leading zeros. Replica
 * ids and topics are [A-Za-z0-9._-] (1..64 and 1..249 characters). A later
 * version adds lines after recorded_at and says so in its first line; a
 * verifier refuses a version it does not know.
 *
 * JSON form (the message value on the heads topic, one line of
 * `marketctl checkpoints`): {"version":1,"replica":..,"seq":..,"hash":..,
 * "recorded_at":..,["published":.., version 2 only,]"offsets":[{"topic":..,"partition":..,"next":..}],
 * "signature":<base64 of the 64-byte Ed25519 signature of the encoding>}.
 *
 * Keys: PEM files, DIR/ID.key (PKCS#8 private key, mode 0600) and DIR/ID.pub
 * (SubjectPublicKeyInfo), as `openssl pkey` reads them.
 *
 * Threads: every function is safe from any thread on distinct objects.
 */
#ifndef MD_CHECKPOINT_H
#define MD_CHECKPOINT_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_error.h"
#include "md_event.h"
#include "md_store.h"

#define MD_CHECKPOINT_VERSION 1     /* without "published" */
#define MD_CHECKPOINT_VERSION_MAX 2 /* v2: with the leader's "published" line */
#define MD_REPLICA_ID_MAX 64
#define MD_TOPIC_MAX 249
#define MD_SIG_LEN 64

typedef struct md_cp_offset {
    char topic[MD_TOPIC_MAX + 1];
    int32_t partition;
    int64_t next;
} md_cp_offset_t;

typedef struct md_checkpoint {
    int version;
    char replica[MD_REPLICA_ID_MAX + 1];
    uint64_t seq;
    unsigned char hash[MD_HASH_LEN];
    int64_t recorded_at;
    /* version 2 only (the replicated leader's, docs/replication.md): every
     * result, event and dead letter decided up to this seq was published. */
    uint64_t published;
    md_cp_offset_t *offsets; /* owned; md_checkpoint_release */
    size_t noffsets;
    unsigned char sig[MD_SIG_LEN];
} md_checkpoint_t;

/** @brief Frees what @p cp owns and zeroes it. */
void md_checkpoint_release(md_checkpoint_t *cp);

/** @brief true when @p id is a valid replica id ([A-Za-z0-9._-], 1..64 chars). */
bool md_replica_id_valid(const char *id);

/** @brief Appends the canonical encoding (the signed bytes) of @p cp to @p out. */
void md_checkpoint_encode(const md_checkpoint_t *cp, md_buf_t *out);

/** @brief Appends the JSON form of @p cp (one line, no newline) to @p out. */
md_err_t md_checkpoint_to_json(const md_checkpoint_t *cp, md_buf_t *out, md_error_t *err);

/**
 * @brief Parses the JSON form strictly (every field, its type and format;
 * offsets sorted; no other field). @p cp must be zeroed or released before.
 * @returns MD_OK or MD_EINVAL naming the field.
 */
md_err_t md_checkpoint_from_json(const char *text, size_t len, md_checkpoint_t *cp,
                                 md_error_t *err);

/**
 * @brief The checkpoint of the store's head in @p t: seq, hash, the head
 * event's recorded_at and every stored offset (signature left zero).
 * @returns MD_OK, MD_ENOTFOUND (empty store), MD_ESTORE, MD_ECORRUPT.
 */
md_err_t md_checkpoint_take(md_txn_t *t, const char *replica, md_checkpoint_t *cp, md_error_t *err);

/* ---- keys and signatures ------------------------------------------------------ */

/**
 * @brief Writes DIR/ID.key (private, mode 0600, never overwritten) and
 * DIR/ID.pub for a new Ed25519 key.
 * @returns MD_OK, MD_EINVAL (bad id), MD_EEXIST (a file exists), MD_EIO.
 */
md_err_t md_keygen(const char *id, const char *dir, md_error_t *err);

/** @brief Reads a PEM Ed25519 private (@p private_key) or public key; the
 *  caller frees it with EVP_PKEY_free. @returns MD_OK, MD_EIO, MD_EINVAL. */
md_err_t md_key_load(const char *path, bool private_key, EVP_PKEY **out, md_error_t *err);

/** @brief Signs the canonical encoding of @p cp into cp->sig. */
md_err_t md_checkpoint_sign(md_checkpoint_t *cp, EVP_PKEY *key, md_error_t *err);

/** @brief MD_OK when cp->sig is @p pub's signature of the encoding, else MD_ECORRUPT. */
md_err_t md_checkpoint_verify(const md_checkpoint_t *cp, EVP_PKEY *pub, md_error_t *err);

/* ---- verifying a chain against checkpoints ----------------------------------------- */

/* Checkpoints read from a file and the public keys of a directory. */
typedef struct md_cp_set {
    md_checkpoint_t *cps;
    size_t n;
    char (*key_ids)[MD_REPLICA_ID_MAX + 1];
    EVP_PKEY **keys;
    size_t nkeys;
} md_cp_set_t;

/**
 * @brief Reads @p path (JSON lines, blank lines skipped) and every DIR/ID.pub.
 * @returns MD_OK; MD_EIO; MD_EINVAL (line N and why; no checkpoint; no key).
 */
md_err_t md_cp_set_load(md_cp_set_t *s, const char *path, const char *keys_dir, md_error_t *err);
void md_cp_set_release(md_cp_set_t *s);

/** @brief Checks every signature. @returns MD_OK, or MD_ECORRUPT naming the
 *  first checkpoint whose replica has no key or whose signature is bad. */
md_err_t md_cp_set_verify_signatures(const md_cp_set_t *s, md_error_t *err);

/* The chain hash at @p seq (1..head) of the chain being checked. */
typedef md_err_t (*md_hash_at_fn)(uint64_t seq, unsigned char hash[MD_HASH_LEN], void *ctx,
                                  md_error_t *err);

/**
 * @brief Checks every checkpoint against a chain whose head is @p head.
 * @returns MD_OK, or MD_ECORRUPT naming the first failure: "the store ends at
 *          seq N but replica R signed seq S > N", or "different hash at seq S".
 */
md_err_t md_cp_set_check_chain(const md_cp_set_t *s, uint64_t head, md_hash_at_fn hash_at,
                               void *ctx, md_error_t *err);

/** @brief The big-endian unsigned integer of @p n (<= 8) bytes at @p p. */
uint64_t md_checkpoint_be(const unsigned char *p, size_t n);

#endif
