/*
 * mp.h - a small allocation-free msgpack reader, private to events/.
 *
 * A cursor walks a byte range; each read consumes one value of the expected
 * type and returns 0, or returns -1 and leaves the cursor where it was when
 * the next value has another type or is truncated.
 */
#ifndef MD_EVENTS_MP_H
#define MD_EVENTS_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct md_mp {
    const unsigned char *p;
    const unsigned char *end;
} md_mp_t;

enum md_mp_type { MD_MP_NIL, MD_MP_BOOL, MD_MP_INT, MD_MP_FLOAT, MD_MP_STR, MD_MP_BIN,
                  MD_MP_ARRAY, MD_MP_MAP, MD_MP_EXT, MD_MP_BAD };

void md__mp_init(md_mp_t *m, const void *p, size_t len);
enum md_mp_type md__mp_peek(const md_mp_t *m);
int md__mp_map(md_mp_t *m, uint32_t *n);
int md__mp_array(md_mp_t *m, uint32_t *n);
int md__mp_str(md_mp_t *m, const char **s, uint32_t *len);
int md__mp_bin(md_mp_t *m, const unsigned char **s, uint32_t *len);
/* Integers that fit int64_t (a uint64 above INT64_MAX fails). */
int md__mp_int(md_mp_t *m, int64_t *v);
int md__mp_uint(md_mp_t *m, uint64_t *v);
int md__mp_bool(md_mp_t *m, bool *v);
int md__mp_nil(md_mp_t *m);
int md__mp_double(md_mp_t *m, double *v);
/* Skips one whole value (nesting at most 64 deep). */
int md__mp_skip(md_mp_t *m);

/* Finds @p key in the map at the cursor and leaves the cursor on its value.
 * Returns 0 when found, 1 when absent, -1 when not a well-formed map. */
int md__mp_find(md_mp_t *m, const char *key);

#endif
