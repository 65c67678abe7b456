/*
 * text.h - content checks on texts (private to rules/): clause syntax,
 * prohibited terms (§4.1.4) and contact details (§4.2.6), per docs/rules-reference.md
 * "Fine points".
 */
#ifndef MD_RULES_TEXT_H
#define MD_RULES_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/** @brief Whether s is an agreement clause: [1-8](\.[1-9][0-9]?){0,2}. */
bool md__clause_ok(const char *s, size_t len);

/**
 * @brief The first prohibited term found in @p text (ASCII case-insensitive
 * substring), or NULL. @p terms is the "terms" record: lower-cased terms,
 * each NUL-terminated, @p len bytes in all. Returns a pointer into terms.
 */
const char *md__term_in(const char *text, const char *terms, size_t len);

/** @brief Whether @p text holds an e-mail address or a run of 11+ digits. */
bool md__has_contact(const char *text);

/**
 * @brief Folds full-width forms for matching (rules.md Fine points): U+FF01..U+FF5E
 * become ASCII U+0021..U+007E and U+3000 a space; every other byte is copied.
 * The result is never longer than s; out holds cap bytes incl. NUL.
 */
void md__fold(const char *s, char *out, size_t cap);

/** @brief ASCII lower-casing copy of s into out (cap bytes incl. NUL). */
void md__lower(const char *s, char *out, size_t cap);

#endif
