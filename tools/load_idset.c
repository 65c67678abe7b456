/*
 * load_idset.c - market-load's set of produced command_ids: open addressing
 * with linear probing, ids copied into an arena of large blocks.
 *
 * Invariants: the capacity is a power of two and the load factor stays under
 * 0.7; an entry keeps its hash, so growing never rehashes strings; ids are
 * never removed (the set is released as a whole).
 */
#include <stdlib.h>
#include <string.h>

#include "load.h"

/* ---- id set -------------------------------------------------------------- */

/* Command ids often differ only in their last digits: md_hash64 mixes every
 * byte into the low bits that linear probing uses. */
static uint32_t load_hash(const char *s, size_t n)
{
    return (uint32_t)md_hash64(s, n);
}

static char *load_arena_copy(load_set_t *s, const char *id, size_t n)
{
    load_blk_t *b = s->blocks;
    if (b == NULL || b->cap - b->used < n + 1) {
        size_t cap = n + 1 > 65536 ? n + 1 : 65536;
        b = md_malloc(sizeof *b + cap);
        b->next = s->blocks;
        b->used = 0;
        b->cap = cap;
        s->blocks = b;
    }
    char *p = b->data + b->used;
    memcpy(p, id, n);
    p[n] = '\0';
    b->used += n + 1;
    return p;
}

/* The slot holding id, or the empty slot where it would go. */
static load_ent_t *load_set_slot(const load_set_t *s, const char *id, size_t n, uint32_t h)
{
    size_t mask = s->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        load_ent_t *e = &s->slots[i];
        if (e->id == NULL)
            return e;
        if (e->hash == h && strncmp(e->id, id, n) == 0 && e->id[n] == '\0')
            return e;
    }
}

static void load_set_grow(load_set_t *s)
{
    load_set_t bigger = {.cap = s->cap ? s->cap * 2 : 1024};
    bigger.slots = md_calloc(bigger.cap, sizeof *bigger.slots);
    for (size_t i = 0; i < s->cap; i++) {
        const load_ent_t *e = &s->slots[i];
        if (e->id == NULL)
            continue;
        size_t mask = bigger.cap - 1, j = e->hash & mask;
        while (bigger.slots[j].id != NULL)
            j = (j + 1) & mask;
        bigger.slots[j] = *e;
    }
    free(s->slots);
    s->slots = bigger.slots;
    s->cap = bigger.cap;
}

/* Finds id, or inserts it with expected = 0; never fails (md_* aborts on OOM). */
load_ent_t *load_set_add(load_set_t *s, const char *id, size_t n)
{
    /* Keep the load factor under 0.7 so that probe runs stay short. */
    if ((s->count + 1) * 10 > s->cap * 7)
        load_set_grow(s);
    uint32_t h = load_hash(id, n);
    load_ent_t *e = load_set_slot(s, id, n, h);
    if (e->id == NULL) {
        *e = (load_ent_t){.id = load_arena_copy(s, id, n), .hash = h};
        s->count++;
    }
    return e;
}

load_ent_t *load_set_find(const load_set_t *s, const char *id, size_t n)
{
    if (s->cap == 0)
        return NULL;
    load_ent_t *e = load_set_slot(s, id, n, load_hash(id, n));
    return e->id ? e : NULL;
}

void load_set_release(load_set_t *s)
{
    while (s->blocks) {
        load_blk_t *next = s->blocks->next;
        free(s->blocks);
        s->blocks = next;
    }
    free(s->slots);
    *s = (load_set_t){0};
}
