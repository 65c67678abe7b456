/*
 * decode.h - shared pieces of the command decoder (private to rules/).
 */
#ifndef MD_RULES_DECODE_H
#define MD_RULES_DECODE_H

#include <jansson.h>

#include "md_command.h"

/* Decodes an already parsed envelope (JSON, or msgpack converted to JSON). */
md_decode_status_t md__decode_root(json_t *root, const md_decode_opts_t *o, md_command_t *c);

/* SHA-256 of the raw bytes (recorded for MALFORMED input). */
void md__sha256(const void *buf, size_t len, unsigned char out[32]);

/* Converts one msgpack object occupying exactly buf[0..len) into a new jansson
 * value with JSON's strictness; NULL (and why) when it has no JSON equivalent. */
json_t *md__msgpack_to_json(const void *buf, size_t len, char *why, size_t cap);

/* Copies s[0..len) into the command's arena as the value of v (NUL-terminated). */
void md__arena_put(md_command_t *c, md_cval_t *v, const char *s, size_t len);

/* An `evidence` array (rules.md Fine points) into v: canonical msgpack, an array
 * of maps {bytes, name, sha256 (lower-cased)}. false with why on a bad item. */
bool md__take_evidence(json_t *j, md_command_t *c, md_cval_t *v, char *why, size_t cap);

#endif
