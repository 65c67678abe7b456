/*
 * targets.c - the fuzz targets (see targets.h). Compiled twice: by mk/fuzz.mk
 * with clang and libFuzzer, and by the main Makefile into the replay suite
 * tests/test_hostile_fuzz.c (which includes this file), so every finding kept
 * under tests/fuzz/regressions/ is replayed by `make unit`, `make asan` and
 * `make valgrind`.
 *
 * An invariant that fails calls fuzz_fail(), which prints what failed and
 * aborts: libFuzzer saves the input as a crash, the replay suite dies loudly.
 */
#include <fcntl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "md_command.h"
#include "md_engine.h"
#include "md_event.h"
#include "md_store.h"

#include "../../projections/pj.h"
#include "../../rules/state.h"
#include "targets.h"

#define FUZZ_MAX_LINES 64     /* messages per engine batch */
#define FUZZ_MAX_MESSAGE 4096 /* engine limit, so the oversized path is reachable */

static void fuzz_fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz invariant failed: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

/* ---- command decoders --------------------------------------------------------- */

/* What a decoded command promises, whatever the input was. */
static void check_command(const md_command_t *c)
{
    size_t idn = strnlen(c->command_id, sizeof c->command_id);
    switch (c->status) {
    case MD_DECODE_MALFORMED:
        if (c->detail[0] == '\0')
            fuzz_fail("MALFORMED without a reason", NULL);
        return;
    case MD_DECODE_REJECTED:
        if (c->reject_code == NULL || (strcmp(c->reject_code, "UNKNOWN_COMMAND") != 0 &&
                                       strcmp(c->reject_code, "INVALID_FIELD") != 0))
            fuzz_fail("REJECTED with an unexpected code", c->reject_code);
        if (c->reject_msg[0] == '\0')
            fuzz_fail("REJECTED without a message", c->reject_code);
        break;
    case MD_DECODE_OK: {
        char stream[MD_STREAM_MAX + 1];
        if (c->spec == NULL || !c->has_actor)
            fuzz_fail("OK without a spec or an actor", c->command_id);
        if (!md_cmd_target_stream(c, stream, sizeof stream))
            fuzz_fail("OK command without a target stream", c->command_id);
        if (c->arena_len > sizeof c->arena)
            fuzz_fail("arena overrun", c->command_id);
        break;
    }
    default: fuzz_fail("unknown decode status", NULL);
    }
    if (idn < 1 || idn > MD_COMMAND_ID_MAX)
        fuzz_fail("keyed command with a bad command_id length", NULL);
    if (c->has_actor && !md_valid_id(c->actor, strlen(c->actor)))
        fuzz_fail("invalid actor kept", c->actor);
}

/* Two decodings of the same envelope must agree on everything but the digest. */
static void same_command(const md_command_t *a, const md_command_t *b)
{
    if (a->status != b->status)
        fuzz_fail("JSON and msgpack forms decode differently", a->detail);
    if (a->status == MD_DECODE_MALFORMED)
        return;
    if (strcmp(a->command_id, b->command_id) != 0 || a->spec != b->spec ||
        a->has_actor != b->has_actor || strcmp(a->actor, b->actor) != 0 ||
        a->has_issued_at != b->has_issued_at || a->issued_at != b->issued_at)
        fuzz_fail("JSON and msgpack envelopes differ", a->command_id);
    if (a->status == MD_DECODE_REJECTED &&
        (strcmp(a->reject_code, b->reject_code) != 0 || strcmp(a->reject_msg, b->reject_msg) != 0))
        fuzz_fail("JSON and msgpack rejections differ", a->reject_msg);
    if (a->status == MD_DECODE_OK &&
        (memcmp(a->v, b->v, sizeof a->v) != 0 || a->arena_len != b->arena_len ||
         memcmp(a->arena, b->arena, a->arena_len) != 0))
        fuzz_fail("JSON and msgpack field values differ", a->command_id);
}

int md_fuzz_json(const uint8_t *data, size_t size)
{
    static md_command_t c, m; /* 5 KiB each: keep them off the stack */
    md_decode_opts_t strict = {.require_issued_at = true};
    const md_decode_opts_t *o = size && (data[0] & 1) ? &strict : NULL;
    md_command_decode_json(data, size, o, &c);
    check_command(&c);
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root) && c.status != MD_DECODE_MALFORMED)
        fuzz_fail("a value that is not a JSON object was not MALFORMED", c.detail);
    if (root != NULL) {
        md_buf_t mp; /* what a msgpack producer would send */
        md_buf_init(&mp);
        md_json_to_msgpack(root, &mp);
        md_command_decode_msgpack(mp.p, mp.len, o, &m);
        check_command(&m);
        same_command(&c, &m);
        md_buf_release(&mp);
        json_decref(root);
    }
    return 0;
}

int md_fuzz_msgpack(const uint8_t *data, size_t size)
{
    static md_command_t c;
    md_decode_opts_t strict = {.require_issued_at = true};
    md_command_decode_msgpack(data, size, size && (data[0] & 1) ? &strict : NULL, &c);
    check_command(&c);
    return 0;
}

/* ---- event records ---------------------------------------------------------------- */

int md_fuzz_event(const uint8_t *data, size_t size)
{
    md_event_t ev, again;
    md_error_t err = {0};
    memset(&ev, 0, sizeof ev); /* the hashes are not part of the body */
    json_t *j = md_msgpack_to_json(data, size);
    if (j != NULL) {
        char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
        if (s == NULL)
            fuzz_fail("md_msgpack_to_json made a value jansson cannot print", NULL);
        free(s);
        json_decref(j);
    }
    if (md_event_decode_body(data, size, &ev, &err) != MD_OK) {
        if (err.msg[0] == '\0')
            fuzz_fail("event decode failed without a reason", NULL);
        return 0;
    }
    if (ev.data < data || ev.data + ev.data_len > data + size)
        fuzz_fail("event data points outside the body", NULL);
    /* What decodes must encode again, and the encoding must decode the same. */
    md_buf_t b;
    md_buf_init(&b);
    if (md_event_body(&ev, &b, &err) != MD_OK)
        fuzz_fail("an accepted body does not encode again", err.msg);
    if (md_event_decode_body(b.p, b.len, &again, &err) != MD_OK)
        fuzz_fail("a re-encoded body does not decode", err.msg);
    if (again.seq != ev.seq || again.version != ev.version || again.recorded_at != ev.recorded_at ||
        strcmp(again.stream, ev.stream) != 0 || strcmp(again.type, ev.type) != 0 ||
        again.data_len != ev.data_len || memcmp(again.data, ev.data, ev.data_len) != 0)
        fuzz_fail("a re-encoded body decodes differently", NULL);
    md_buf_release(&b);
    /* The readers the rules and projections use on event data. */
    static const char *const keys[] = {"amount", "order_id", "status", "", "zz"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const char *s;
        size_t sl;
        int64_t v;
        bool bo;
        char out[16];
        /* any result will do: the readers must only never crash or overrun */
        if (md_data_get_str(ev.data, ev.data_len, keys[i], &s, &sl) == MD_OK && sl > 0 && s == NULL)
            fuzz_fail("a found string without bytes", keys[i]);
        if (md_data_get_int(ev.data, ev.data_len, keys[i], &v) != MD_OK)
            v = 0;
        if (md_data_get_bool(ev.data, ev.data_len, keys[i], &bo) != MD_OK)
            bo = false;
        if (md_data_copy_str(ev.data, ev.data_len, keys[i], out, sizeof out) == MD_OK &&
            memchr(out, 0, sizeof out) == NULL)
            fuzz_fail("a copied string without its NUL", keys[i]);
    }
    j = md_event_to_json(&ev, data, size);
    json_decref(j);
    return 0;
}

/* ---- the engine over a seeded store ------------------------------------------------- */

static struct {
    char dir[256];
    char file[300];
    unsigned char *snap; /* data.mdb right after the demo day */
    size_t snap_len;
    bool ready;
} fz;

static md_engine_opts_t engine_opts(void)
{
    md_engine_opts_t o = {.operator_id = "operator",
                          .clock = MD_CLOCK_COMMAND,
                          .max_message_bytes = FUZZ_MAX_MESSAGE,
                          .results_topic = "r",
                          .events_topic = "e",
                          .commands_topic = "c",
                          .deadletter_topic = "dl"};
    return o;
}

static void open_engine(md_store_t **s, md_engine_t **e)
{
    md_store_opts_t so = {.nosync = true, .map_size = (size_t)64 << 20};
    md_engine_opts_t eo = engine_opts();
    md_error_t err = {0};
    if (md_store_open(fz.dir, &so, s, &err) != MD_OK || md_engine_new(*s, &eo, e, &err) != MD_OK)
        fuzz_fail("cannot open the fuzz store", err.msg);
}

static void read_file(const char *path, unsigned char **p, size_t *n)
{
    FILE *f = fopen(path, "rb");
    md_buf_t b;
    unsigned char chunk[65536];
    size_t k;
    if (f == NULL)
        fuzz_fail("cannot read", path);
    md_buf_init(&b);
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0)
        md_buf_append(&b, chunk, k);
    fclose(f);
    *p = b.p;
    *n = b.len;
}

static void write_file(const char *path, const unsigned char *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) != 0)
        fuzz_fail("cannot write", path);
}

/* Splits @p text into lines (at most FUZZ_MAX_LINES) as inputs of partition 0. */
static size_t split_lines(const uint8_t *text, size_t size, md_input_t *in, size_t max,
                          int64_t first_offset)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= size && n < max; i++) {
        if (i < size && text[i] != '\n')
            continue;
        const uint8_t *p = text + start;
        size_t len = i - start;
        bool mp = len > 0 && p[0] == 0x01;
        in[n] = (md_input_t){.bytes = mp ? p + 1 : p,
                             .len = mp ? len - 1 : len,
                             .msgpack = mp,
                             .key = "k",
                             .key_len = 1,
                             .partition = 0,
                             .offset = first_offset + (int64_t)n};
        n++;
        start = i + 1;
    }
    return n;
}

static void fuzz_setup(void)
{
    const char *base = getenv("TMPDIR");
    const char *demo = getenv("MD_FUZZ_DEMO");
    unsigned char *text;
    size_t len;
    md_store_t *s = NULL;
    md_engine_t *e = NULL;
    md_error_t err = {0};
    if (base == NULL || *base == '\0')
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(fz.dir, sizeof fz.dir, "%s/marketd-fuzz-XXXXXX", base);
    if (mkdtemp(fz.dir) == NULL)
        fuzz_fail("mkdtemp", fz.dir);
    snprintf(fz.file, sizeof fz.file, "%s/data.mdb", fz.dir);
    read_file(demo ? demo : "demo/demo-day.jsonl", &text, &len);
    open_engine(&s, &e);
    /* The demo day in one batch per 64 lines, as Kafka would bring it. */
    md_input_t in[FUZZ_MAX_LINES];
    size_t at = 0;
    int64_t off = 0;
    while (at < len) {
        size_t chunk = len - at, lines = 0;
        for (size_t i = at; i < len; i++)
            if (text[i] == '\n' && ++lines == FUZZ_MAX_LINES) {
                chunk = i - at;
                break;
            }
        size_t n = split_lines(text + at, chunk, in, FUZZ_MAX_LINES, off);
        if (n && in[n - 1].len == 0)
            n--; /* the empty "line" after the file's last newline */
        if (n && md_engine_process(e, in, n, 0, NULL, &err) != MD_OK)
            fuzz_fail("seeding the demo day", err.msg);
        off += (int64_t)n;
        at += chunk + 1;
    }
    free(text);
    md_engine_free(e);
    md_store_free(s);
    read_file(fz.file, &fz.snap, &fz.snap_len);
    fz.ready = true;
}

/* Every line gets one JSON object with a known status; rejections say why. */
static void check_results(const md_buf_t *r, size_t n)
{
    size_t lines = 0, start = 0;
    for (size_t i = 0; i < r->len; i++) {
        if (r->p[i] != '\n')
            continue;
        json_t *j = json_loadb((const char *)r->p + start, i - start, 0, NULL);
        const char *st = json_string_value(json_object_get(j, "status"));
        if (st == NULL)
            fuzz_fail("a result without a status", NULL);
        if (strcmp(st, "rejected") == 0) {
            json_t *e = json_object_get(j, "error");
            const char *code = json_string_value(json_object_get(e, "code"));
            const char *msg = json_string_value(json_object_get(e, "message"));
            if (code == NULL || msg == NULL || *code == '\0' || *msg == '\0')
                fuzz_fail("a rejection without code and message", NULL);
        } else if (strcmp(st, "accepted") != 0 && strcmp(st, "duplicate") != 0) {
            fuzz_fail("a result with an unknown status", st);
        }
        json_decref(j);
        lines++;
        start = i + 1;
    }
    if (lines != n || start != r->len)
        fuzz_fail("not one result line per input", NULL);
}

static void check_chain(md_store_t *s)
{
    md_txn_t *t = NULL;
    md_error_t err = {0};
    uint64_t count = 0;
    if (md_store_read(s, &t, &err) != MD_OK ||
        md_txn_verify_chain(t, &count, NULL, NULL, NULL, &err) != MD_OK)
        fuzz_fail("the hash chain does not verify after a batch", err.msg);
    md_txn_end(t);
}

int md_fuzz_engine(const uint8_t *data, size_t size)
{
    static md_input_t in[FUZZ_MAX_LINES];
    md_store_t *s = NULL;
    md_engine_t *e = NULL;
    md_error_t err = {0};
    md_buf_t results;
    if (!fz.ready)
        fuzz_setup();
    write_file(fz.file, fz.snap, fz.snap_len);
    open_engine(&s, &e);
    size_t n = split_lines(data, size, in, FUZZ_MAX_LINES, 1000);
    md_buf_init(&results);
    /* Any error here means one message could stop a partition: a finding. */
    if (md_engine_process(e, in, n, 0, &results, &err) != MD_OK)
        fuzz_fail("the engine failed a batch", err.msg);
    check_results(&results, n);
    check_chain(s);
    md_buf_release(&results);
    md_engine_free(e);
    md_store_free(s);
    return 0;
}

void md_fuzz_cleanup(void)
{
    char cmd[300];
    if (!fz.ready)
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", fz.dir);
    free(fz.snap);
    memset(&fz, 0, sizeof fz);
}

/* ---- stored records --------------------------------------------------------------------- */

typedef struct fz_rec {
    int64_t fmt, a, b, c, d;
    char s1[16], s2[65];
} fz_rec_t;

static const pj_str_desc_t fz_strs[] = {{offsetof(fz_rec_t, s1), sizeof(((fz_rec_t *)0)->s1)},
                                        {offsetof(fz_rec_t, s2), sizeof(((fz_rec_t *)0)->s2)}};
static const pj_layout_t fz_layout = {('F' << 8) | PJ_FORMAT, offsetof(fz_rec_t, s1),
                                      sizeof(fz_rec_t), 2, fz_strs};

static void fuzz_projection_record(const uint8_t *p, size_t n)
{
    fz_rec_t r;
    if (md__pj_unpack(&fz_layout, p, n, &r) != 0)
        return;
    md_buf_t b;
    md_buf_init(&b);
    md__pj_pack(&fz_layout, &r, &b);
    if (b.len != n || memcmp(b.p, p, n) != 0)
        fuzz_fail("projection record accepted but not canonical", NULL);
    md_buf_release(&b);
}

static void fuzz_state_record(size_t size, const uint8_t *p, size_t n)
{
    unsigned char rec[MD__REC_MAX], out[MD__REC_MAX + 16];
    if (md__rec_decode(p, n, rec, size) != 0)
        return;
    size_t m = md__rec_encode(rec, size, out, sizeof out);
    if (m != n || memcmp(out, p, n) != 0)
        fuzz_fail("state record accepted but not canonical", NULL);
}

int md_fuzz_record(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_projection_record(data + 1, size - 1);
    else
        fuzz_state_record(4 + (size_t)(data[0] >> 1) * 8, data + 1, size - 1);
    return 0;
}
