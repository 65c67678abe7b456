/*
 * rules_mem.h - an in-memory md_state_t for tests of the rules, a tiny
 * "engine" that appends a decision's events to an in-memory log and evolves
 * the state with them, as the real engine does over LMDB, and a fixture
 * world built by running commands through decode -> decide -> evolve.
 */
#ifndef RULES_MEM_H
#define RULES_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "md_command.h"
#include "md_event.h"
#include "md_rules.h"

typedef struct rules_mem rules_mem_t;

/* One appended event, as the engine would store it (data packed). */
typedef struct rules_mem_event {
    md_event_t ev; /* ev.data points into data.p */
    md_buf_t data;
} rules_mem_event_t;

/** @brief A new empty state; free with rules_mem_destroy(). */
rules_mem_t *rules_mem_new(void);
void rules_mem_destroy(rules_mem_t *m);

/** @brief The state interface over @p m (borrowed). */
md_state_t rules_mem_state(rules_mem_t *m);

/**
 * @brief Appends d's events (recorded_at = now, command_id/actor from cmd, or
 * "bootstrap" when cmd is NULL), evolving the state after each.
 * @returns MD_OK or evolve's error.
 */
md_err_t rules_mem_apply(rules_mem_t *m, const md_command_t *cmd, md_decision_t *d, int64_t now,
                         md_error_t *err);

/**
 * @brief Fires the timers due at @p now as the engine does (events with
 * command_id "timer:<kind>:<id>", actor "system", recorded_at = the deadline).
 * fx_raw() does this before every line that is not MALFORMED.
 */
md_err_t rules_mem_fire(rules_mem_t *m, int64_t now, md_decision_t *d, md_error_t *err);

/** @brief Number of appended events and the i-th one (0-based). */
size_t rules_mem_count(const rules_mem_t *m);
const rules_mem_event_t *rules_mem_event(const rules_mem_t *m, size_t i);

/**
 * @brief Whether the state equals a replay of the log through md_rules_evolve
 * alone into an empty state (what marketctl verify recomputes): same keys,
 * same values, the timer index included. When not, names the first
 * difference in @p why.
 */
bool rules_mem_replays(rules_mem_t *m, char *why, size_t cap);

/** @brief Reads a raw state value (NULL when absent). */
const void *rules_mem_get(rules_mem_t *m, const char *key, size_t *len);

/* ---- the fixture world ------------------------------------------------ */

/* 2026-11-26T10:00:00Z, the fixture's default `now`. */
#define FX_NOW 1795687200000LL
#define FX_HOUR 3600000LL

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

typedef struct fx {
    rules_mem_t *m;
    md_state_t st;
    int64_t now;
    int n;            /* commands run, for command ids */
    md_command_t cmd; /* the last command and its decision */
    md_decision_t d;
} fx_t;

/** @brief A new world: bootstrap operator "op" only. */
fx_t *fx_new(void);
/** @brief The standard world (see fixture comment in rules_fixture.c). */
fx_t *fx_world(void);
void fx_free(fx_t *w);

/**
 * @brief Runs one command at w->now. @p data is the data object's inside,
 * with ' for " (e.g. "'amount':5"); @p extra is more envelope members or NULL.
 * @returns "OK" when accepted, else the rejection code.
 */
const char *fx_run(fx_t *w, const char *actor, const char *type, const char *data,
                   const char *extra);
/** @brief Runs a raw input line (' for "). */
const char *fx_raw(fx_t *w, const char *line);
/** @brief Like fx_run, but fails the test unless accepted. */
void fx_ok(fx_t *w, const char *actor, const char *type, const char *data);

/** @brief Balance of a member, escrow of an order (reads the records). */
int64_t fx_balance(fx_t *w, const char *member);
int64_t fx_escrow(fx_t *w, const char *order);
/** @brief Money released to a provider and still held (settlement). */
int64_t fx_held(fx_t *w, const char *member);

#endif
