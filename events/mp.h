/*
 * mp.h - the msgpack reader is in the base layer now (md_base.h, base/mp.c);
 * this name is kept for the files of events/ that include it.
 */
#ifndef MD_EVENTS_MP_H
#define MD_EVENTS_MP_H

#include "md_base.h"

#endif
