/*
 * targets.h - the fuzz targets of marketd (tests/fuzz/targets.c).
 *
 * Each md_fuzz_* function takes one input, runs it through a decoder (or the
 * whole engine) and checks invariants the code promises, calling abort() when
 * one fails, so that libFuzzer (tests/fuzz/fuzz_main.c, built by mk/fuzz.mk
 * with clang) and the plain replay suite (tests/test_hostile_fuzz.c, built by
 * the main Makefile with gcc, also under ASan and valgrind) report the same
 * findings. Every function returns 0, as libFuzzer wants.
 */
#ifndef MD_FUZZ_TARGETS_H
#define MD_FUZZ_TARGETS_H

#include <stddef.h>
#include <stdint.h>

/* md_command_decode_json, and the same value re-encoded as msgpack through
 * md_command_decode_msgpack: both forms must decide identically. */
int md_fuzz_json(const uint8_t *data, size_t size);
/* md_command_decode_msgpack on raw bytes. */
int md_fuzz_msgpack(const uint8_t *data, size_t size);
/* md_event_decode_body (re-encoding what it accepts must decode the same),
 * md_msgpack_to_json and the md_data_get_* readers. */
int md_fuzz_event(const uint8_t *data, size_t size);
/* md_engine_process over a store seeded with the demo day (demo/demo-day.jsonl,
 * or $MD_FUZZ_DEMO): the input is a batch of lines (a line starting with 0x01
 * is msgpack); afterwards every line has one well-formed result and the hash
 * chain verifies. The store is reset to the seeded snapshot before each input. */
int md_fuzz_engine(const uint8_t *data, size_t size);

/* The stored-record codecs: the first byte picks the codec (odd: a projection
 * record, md__pj_unpack with a test layout; even: a rules state record,
 * md__rec_decode into a struct of 4 + (byte >> 1) * 8 bytes), the rest is the
 * value. Whatever a decoder accepts must re-encode to the very same bytes
 * (both formats are canonical: equal records are equal bytes on disk). */
int md_fuzz_record(const uint8_t *data, size_t size);

/* Removes the engine target's temporary store (the replay suite calls it). */
void md_fuzz_cleanup(void);

#endif
