/*
 * md_base.h - the base layer (base/): what every other layer uses and that
 * uses nothing of marketd above it. Layers, lowest first (make layers checks
 * them): base <- events <- rules, projections <- daemon, tools.
 *
 *   md_error.h (included)  status codes, md_error_t, abort-on-OOM allocators
 *   md_buf_t               a growable byte buffer              (buf.c)
 *   clock helpers          monotonic and wall time             (clock.c)
 *   md_utf8_len            the one UTF-8 validator             (utf8.c)
 *   md_mp_t, md__mp_*      the one msgpack reader              (mp.c)
 *   md__pack_*             msgpack-c packing into an md_buf_t  (pack.c)
 *   md_json_to_msgpack     the one JSON -> msgpack packer      (pack.c)
 *   md_json_set/append     jansson setters with one failure policy (json.c)
 *
 * Allocation policy: out of memory aborts (md_malloc, md_error.h), and jansson
 * allocates through md_malloc too (set before main, alloc.c), so a failed
 * allocation never comes back as NULL from either.
 *
 * Threads: every function here is safe from any thread on distinct objects;
 * none keeps global state (the jansson hook is set once before main).
 */
#ifndef MD_BASE_H
#define MD_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "md_error.h"

/* ---- md_buf_t ------------------------------------------------------------ */

/* A growable byte buffer. The caller owns it: md_buf_init before use,
 * md_buf_release to free. Growth aborts on out of memory (never fails). */
typedef struct md_buf {
    unsigned char *p;
    size_t len, cap;
} md_buf_t;

/* Empties @p b without memory (p NULL, len and cap 0). */
void md_buf_init(md_buf_t *b);
/* Frees @p b's memory and leaves it as md_buf_init does. */
void md_buf_release(md_buf_t *b);
/* len = 0, keeps memory. */
void md_buf_reset(md_buf_t *b);
/* Makes room for n more bytes and returns where they go (len is unchanged;
 * the pointer is valid until the next call that grows @p b). */
unsigned char *md_buf_reserve(md_buf_t *b, size_t n);
/* Appends @p n bytes of @p p (@p p may be NULL when @p n is 0). Inline: the
 * engine appends a few bytes at a time millions of times per second (result
 * lines, msgpack bodies), and the call was ~4% of the writer's instructions. */
static inline void md_buf_append(md_buf_t *b, const void *p, size_t n)
{
    if (n == 0)
        return;
    if (n > b->cap - b->len)
        md_buf_reserve(b, n);
    unsigned char *d = b->p + b->len;
    const unsigned char *s = (const unsigned char *)p;
    b->len += n;
    /* Short appends (msgpack headers, keys, numbers) without a call: two
     * overlapping fixed-size copies cover 4..16 bytes, three bytes 1..3. */
    if (n > 16) {
        memcpy(d, s, n);
    } else if (n >= 8) {
        memcpy(d, s, 8);
        // cppcheck-suppress pointerOutOfBoundsCond ; n <= 16: s + n - 8 + 8 ends at s + n
        memcpy(d + n - 8, s + n - 8, 8);
    } else if (n >= 4) {
        memcpy(d, s, 4);
        memcpy(d + n - 4, s + n - 4, 4);
    } else {
        d[0] = s[0];
        d[n / 2] = s[n / 2];
        d[n - 1] = s[n - 1];
    }
}
/* Copies @p src into @p dst of @p cap bytes (cap >= 1), cut to cap - 1 bytes
 * and NUL-terminated, as snprintf(dst, cap, "%s", src) does; returns the
 * length copied. */
size_t md_str_copy(char *dst, size_t cap, const char *src);

/* ---- clocks ----------------------------------------------------------------- */

/* Monotonic time (CLOCK_MONOTONIC): for durations and timeouts only. Never
 * call these (or the wall clock) inside decide/evolve/timers: what the rules
 * decide is a function of the log and the configured clock. */
int64_t md_mono_ns(void);
int64_t md_mono_ms(void);
double md_mono_s(void);
/* Wall-clock time (CLOCK_REALTIME) in ms since the Unix epoch, UTC. */
int64_t md_wall_ms(void);
/* Wall-clock time in µs since the Unix epoch: transport timestamps that other
 * processes compare with theirs (the results' stage header, market-load). */
int64_t md_wall_us(void);
/* Sleeps @p ms milliseconds; a signal may end it early (callers re-check their
 * stop flag), so a stop is seen at once. */
void md_sleep_ms(long ms);
/* The CLOCK_REALTIME time @p ms from now in @p ts, the form
 * pthread_cond_timedwait takes its deadline in. */
void md_deadline_ms(struct timespec *ts, long ms);

/* ---- hashing -------------------------------------------------------------------- */

/* A 64-bit hash of @p n bytes for in-memory tables (a word at a time, mixed so
 * that the low bits depend on every byte). Not stable across versions: never
 * store it, never let an output's order depend on it. */
uint64_t md_hash64(const void *p, size_t n);

/* ---- UTF-8 ---------------------------------------------------------------------- */

/* Length (1..4) of the valid UTF-8 sequence at @p p, of at most @p left
 * bytes, or 0 when it is invalid: a NUL, a truncated or overlong sequence, a
 * surrogate or a code point above U+10FFFF (what jansson accepts in a string,
 * less the NUL). @p left must be at least 1. */
size_t md_utf8_len(const unsigned char *p, size_t left);
/* Whether s[0..len) is valid UTF-8 without NUL bytes. */
bool md_valid_utf8(const char *s, size_t len);

/* ---- msgpack reader --------------------------------------------------------------- */

/*
 * A small allocation-free msgpack reader. A cursor walks a byte range; each
 * read consumes one value of the expected type and returns 0, or returns -1
 * and leaves the cursor where it was when the next value has another type or
 * is truncated. The cursor borrows the bytes (they must outlive it); strings
 * it returns point into them.
 */
typedef struct md_mp {
    const unsigned char *p;
    const unsigned char *end;
} md_mp_t;

enum md_mp_type {
    MD_MP_NIL,
    MD_MP_BOOL,
    MD_MP_INT,
    MD_MP_FLOAT,
    MD_MP_STR,
    MD_MP_BIN,
    MD_MP_ARRAY,
    MD_MP_MAP,
    MD_MP_EXT,
    MD_MP_BAD
};

void md__mp_init(md_mp_t *m, const void *p, size_t len);
/* The type of the next value (MD_MP_BAD at the end or on a reserved byte). */
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
/* Skips one whole value (nesting at most 64 deep; ext types fail: marketd
 * never writes them). */
int md__mp_skip(md_mp_t *m);

/* Finds @p key in the map at the cursor and leaves the cursor on its value.
 * Returns 0 when found, 1 when absent, -1 when not a well-formed map. */
int md__mp_find(md_mp_t *m, const char *key);

/* ---- msgpack writing ---------------------------------------------------------------- */

struct msgpack_packer; /* msgpack-c's packer (<msgpack.h>) */
struct json_t;         /* jansson's value (<jansson.h>) */

/* Initialises @p pk to append to @p out (which must outlive the packer). */
void md__pack_init(struct msgpack_packer *pk, md_buf_t *out);
/* Packs a str of @p n bytes. */
void md__pack_str(struct msgpack_packer *pk, const char *s, size_t n);

/*
 * Appends the msgpack encoding of @p j to @p out, value for value: object
 * keys keep jansson's iteration order (insertion order), integers stay
 * integers and reals become float64, so a command reads the same in either
 * encoding. Never fails (out of memory aborts); @p j is borrowed.
 */
void md_json_to_msgpack(const struct json_t *j, md_buf_t *out);

/* ---- building JSON ------------------------------------------------------------------ */

/*
 * Sets @p o [@p key] = @p v, taking @p v's reference (json_object_set_new).
 * A NULL @p v - a value jansson refused to build, such as json_string() of
 * text that is not UTF-8 - leaves the key out, as json_object_set_new always
 * did; the result says whether the key was set. Any other failure (@p o not
 * an object, @p key not UTF-8) is a bug in the caller: it aborts. Out of
 * memory aborts (md_malloc). Use these instead of ignoring what
 * json_object_set_new / json_array_append_new return.
 */
bool md_json_set(struct json_t *o, const char *key, struct json_t *v);
/* Appends @p v to array @p a, taking its reference; NULL is left out, as with
 * md_json_set (the result says whether it was appended); @p a not an array
 * aborts. */
bool md_json_append(struct json_t *a, struct json_t *v);

#endif
