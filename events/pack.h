/*
 * pack.h - msgpack-c packer writing into an md_buf_t, private to events/.
 */
#ifndef MD_EVENTS_PACK_H
#define MD_EVENTS_PACK_H

#include <msgpack.h>

#include "md_event.h"

/* Initialises @p pk to append to @p out (which must outlive the packer). */
void md__pack_init(msgpack_packer *pk, md_buf_t *out);
/* Packs a str of @p n bytes. */
void md__pack_str(msgpack_packer *pk, const char *s, size_t n);

#endif
