/*
 * pack.h - msgpack-c packer writing into an md_buf_t, private to events/;
 * md__pack_init and md__pack_str are in the base layer (md_base.h,
 * base/pack.c).
 */
#ifndef MD_EVENTS_PACK_H
#define MD_EVENTS_PACK_H

#include <msgpack.h>

#include "md_base.h"
#include "md_event.h"

#endif
