/*
 * engine_decode.c - decoding a batch's messages into commands: size and
 * content-type checks, then JSON or msgpack; for larger batches a helper
 * thread decodes ahead of the writer through a small ring, and the writer
 * takes each command in input order (the results are those of decoding
 * inline: tests/test_engine.c).
 */
#include "engine_int.h"

/* ---- decoding ---------------------------------------------------------------------- */

/* A message over the size limit is MALFORMED without being parsed. */
static void reject_oversized(const md_input_t *in, size_t max, md_command_t *c)
{
    unsigned int n = 0;
    memset(c, 0, offsetof(md_command_t, arena));
    c->status = MD_DECODE_MALFORMED;
    snprintf(c->detail, sizeof c->detail, "message of %zu bytes exceeds the limit of %zu", in->len,
             max);
    if (!EVP_Digest(in->bytes, in->len, c->sha256, &n, EVP_sha256(), NULL)) {
        fprintf(stderr, "marketd: SHA-256 failed\n");
        abort();
    }
}

/* A message whose content-type is neither JSON nor msgpack is MALFORMED
 * unread: guessing JSON would decide what the sender did not mean. */
static void reject_content_type(const md_input_t *in, md_command_t *c)
{
    reject_oversized(in, 0, c);
    size_t n = in->bad_content_type_len < 64 ? in->bad_content_type_len : 64;
    snprintf(c->detail, sizeof c->detail,
             "unsupported content-type '%.*s' (application/json or application/msgpack)", (int)n,
             in->bad_content_type);
    if (!md_valid_utf8(c->detail, strlen(c->detail)))
        snprintf(c->detail, sizeof c->detail, "unsupported content-type");
}

/* Decodes input i of the batch into @p c. */
void md__eng_decode_one(md_engine_t *e, size_t i, md_command_t *c)
{
    const md_input_t *in = &e->in[i];
    md_decode_opts_t o = {.require_issued_at = e->opts.clock == MD_CLOCK_COMMAND};
    if (in->bad_content_type)
        reject_content_type(in, c);
    else if (in->len > e->opts.max_message_bytes)
        reject_oversized(in, e->opts.max_message_bytes, c);
    else if (in->msgpack)
        md_command_decode_msgpack(in->bytes, in->len, &o, c);
    else
        md_command_decode_json(in->bytes, in->len, &o, c);
}

/* ---- decoding ahead on a second thread ------------------------------------------------ */

/*
 * While the writer decides, appends and projects command i, a helper thread
 * decodes the commands after it (JSON parsing was a quarter of the writer's
 * instructions: docs/performance.md) into a ring of DECODE_RING slots: memory
 * stays DECODE_RING commands (~1.2 MB) whatever the batch size. Decoding is a pure
 * function of the input bytes, so the results are those of decoding inline.
 * A session covers one run of batch_fn (a batch re-run after MDB_MAP_FULL
 * starts a new one); batches under DECODE_MIN commands are decoded inline (a
 * hand-off would only add a wake-up to the latency of small batches). The
 * writer uses slot i % DECODE_RING from md__eng_dec_get(i) until md__eng_dec_get(i + 1) or
 * dec_end; the helper writes only slots of commands not yet handed out.
 */
#define DECODE_RING 128
#define DECODE_MIN 32
#define DECODE_CHUNK 32   /* commands decoded between two looks at the lock */
#define DECODE_PUBLISH 64 /* the writer says how far it is every so many commands */

typedef struct decoder {
    pthread_t th;
    bool started, failed; /* failed: no thread could be created (decode inline) */
    pthread_mutex_t mu;
    pthread_cond_t work, ready; /* the helper waits on work, the writer on ready */
    md_command_t *slot;         /* DECODE_RING */
    /* under mu: */
    bool active, quit, busy; /* busy: the helper is decoding outside the lock */
    bool helper_waits, writer_waits;
    size_t n, done, taken; /* session size; decoded; handed out (and done with) */
    /* the writer's own (no lock): done and taken as it last saw or said them */
    size_t w_done, w_taken;
} decoder_t;


static void *decoder_main(void *arg)
{
    md_engine_t *e = arg;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->quit && !(d->active && d->done < d->n && d->done - d->taken < DECODE_RING)) {
            d->helper_waits = true;
            pthread_cond_wait(&d->work, &d->mu);
        }
        d->helper_waits = false;
        if (d->quit)
            break;
        size_t from = d->done, to = d->taken + DECODE_RING;
        if (to > d->n)
            to = d->n;
        if (to > from + DECODE_CHUNK)
            to = from + DECODE_CHUNK;
        d->busy = true;
        pthread_mutex_unlock(&d->mu);
        for (size_t i = from; i < to; i++)
            md__eng_decode_one(e, i, &d->slot[i % DECODE_RING]);
        pthread_mutex_lock(&d->mu);
        d->busy = false;
        if (d->active)
            d->done = to;
        if (d->writer_waits)
            pthread_cond_signal(&d->ready);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

/* Starts the helper on first use; false when it cannot run (decode inline). */
static bool decoder_ready(md_engine_t *e)
{
    if (e->dec == NULL) {
        decoder_t *d = md_calloc(1, sizeof *d);
        d->slot = md_malloc(DECODE_RING * sizeof *d->slot);
        pthread_mutex_init(&d->mu, NULL);
        pthread_cond_init(&d->work, NULL);
        pthread_cond_init(&d->ready, NULL);
        e->dec = d;
        d->started = pthread_create(&d->th, NULL, decoder_main, e) == 0;
        d->failed = !d->started;
    }
    return !e->dec->failed;
}

void md__eng_decoder_free(md_engine_t *e)
{
    decoder_t *d = e->dec;
    if (d == NULL)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->mu);
        d->quit = true;
        pthread_cond_signal(&d->work);
        pthread_mutex_unlock(&d->mu);
        pthread_join(d->th, NULL);
    }
    pthread_cond_destroy(&d->work);
    pthread_cond_destroy(&d->ready);
    pthread_mutex_destroy(&d->mu);
    free(d->slot);
    free(d);
    e->dec = NULL;
}

/* Starts a session over the batch's e->n inputs, when it is worth one. */
void md__eng_dec_begin(md_engine_t *e)
{
    e->dec_on = e->n >= DECODE_MIN && decoder_ready(e);
    if (!e->dec_on)
        return;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    d->active = true;
    d->n = e->n;
    d->done = d->taken = 0;
    d->w_done = d->w_taken = 0;
    pthread_cond_signal(&d->work);
    pthread_mutex_unlock(&d->mu);
}

/*
 * Command i of the session, decoded (the writer is done with command i - 1).
 * The lock is taken only when command i was not yet decoded when the writer
 * last looked, or every DECODE_PUBLISH commands to tell the helper how far
 * the writer is: locking per command, and the futex wake-ups of a lock both
 * threads took every few commands, were ~4% of the writer's CPU. Without the
 * lock, slot i is safe to read: the helper wrote it before the done the
 * writer saw (under the lock), and writes only slots of commands below
 * taken + DECODE_RING with taken <= i, none of them i's.
 */
const md_command_t *md__eng_dec_get(md_engine_t *e, size_t i)
{
    decoder_t *d = e->dec;
    if (i < d->w_done && i - d->w_taken < DECODE_PUBLISH)
        return &d->slot[i % DECODE_RING];
    pthread_mutex_lock(&d->mu);
    d->taken = d->w_taken = i;
    if (d->helper_waits && d->done < d->n && d->done - d->taken <= DECODE_RING / 2)
        pthread_cond_signal(&d->work);
    while (d->done <= i) {
        d->writer_waits = true;
        pthread_cond_wait(&d->ready, &d->mu);
    }
    d->writer_waits = false;
    d->w_done = d->done;
    pthread_mutex_unlock(&d->mu);
    return &d->slot[i % DECODE_RING];
}

/* Ends the session: the helper is idle when it returns. */
void md__eng_dec_end(md_engine_t *e)
{
    if (!e->dec_on)
        return;
    decoder_t *d = e->dec;
    pthread_mutex_lock(&d->mu);
    d->active = false;
    while (d->busy) {
        d->writer_waits = true;
        pthread_cond_wait(&d->ready, &d->mu);
    }
    d->writer_waits = false;
    pthread_mutex_unlock(&d->mu);
    e->dec_on = false;
}
