/*
 * text.c - clause syntax, prohibited terms and contact-detail detection.
 * Hand-written matchers for the small regular expressions of docs/rules-reference.md, so
 * that no regex library (and no locale) is involved.
 */
#include <string.h>

#include "text.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* ASCII white space, as \s in docs/rules-reference.md's patterns. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool md__clause_ok(const char *s, size_t len)
{
    size_t i = 0;
    if (len == 0 || s[0] < '1' || s[0] > '8')
        return false;
    i = 1;
    for (int parts = 0; i < len; parts++) {
        if (parts == 2 || s[i] != '.' || i + 1 >= len || s[i + 1] < '1' || s[i + 1] > '9')
            return false;
        i += 2;
        if (i < len && is_digit(s[i]))
            i++;
    }
    return true;
}

void md__lower(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] != '\0' && i + 1 < cap; i++)
        out[i] = lower(s[i]);
    out[i] = '\0';
}

/* Case-insensitive (ASCII) search of the lower-cased term in text. */
static bool contains_ci(const char *text, const char *term)
{
    size_t tl = strlen(term);
    for (const char *p = text; *p != '\0'; p++) {
        size_t k = 0;
        while (k < tl && p[k] != '\0' && lower(p[k]) == term[k])
            k++;
        if (k == tl)
            return true;
    }
    return false;
}

const char *md__term_in(const char *text, const char *terms, size_t len)
{
    size_t off = 0;
    while (off < len) {
        const char *t = terms + off;
        if (*t != '\0' && contains_ci(text, t))
            return t;
        off += strlen(t) + 1;
    }
    return NULL;
}

/* A label of [^\s@.]+ starting at s; returns its length. */
static size_t label_len(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && !is_space(s[n]) && s[n] != '@' && s[n] != '.')
        n++;
    return n;
}

/* [^\s@]+@[^\s@.]+(\.[^\s@.]+)+ with the '@' at text[at]. */
static bool email_at(const char *text, size_t at)
{
    if (at == 0 || is_space(text[at - 1]) || text[at - 1] == '@')
        return false;
    const char *p = text + at + 1;
    size_t n = label_len(p);
    if (n == 0)
        return false;
    p += n;
    return p[0] == '.' && label_len(p + 1) > 0;
}

/* [0-9]([ -]*[0-9]){10,}: 11 digits separated only by spaces and dashes. */
static bool has_digit_run(const char *text)
{
    int run = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (is_digit(*p)) {
            if (++run >= 11)
                return true;
        } else if (*p != ' ' && *p != '-') {
            run = 0;
        }
    }
    return false;
}

bool md__has_contact(const char *text)
{
    for (size_t i = 0; text[i] != '\0'; i++) {
        if (text[i] == '@' && email_at(text, i))
            return true;
    }
    return has_digit_run(text);
}

/* The ASCII of a full-width form or the ideographic space at s (3 bytes of
 * UTF-8), or 0. */
static char folded(const unsigned char *s)
{
    if (s[0] == 0xE3 && s[1] == 0x80 && s[2] == 0x80)
        return ' '; /* U+3000 */
    if (s[0] != 0xEF)
        return 0;
    if (s[1] == 0xBC && s[2] >= 0x81 && s[2] <= 0xBF)
        return (char)(s[2] - 0x60); /* U+FF01..U+FF3F */
    if (s[1] == 0xBD && s[2] >= 0x80 && s[2] <= 0x9E)
        return (char)(s[2] - 0x20); /* U+FF40..U+FF5E */
    return 0;
}

void md__fold(const char *s, char *out, size_t cap)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;
    while (*p != '\0' && o + 1 < cap) {
        char a = (p[1] != '\0' && p[2] != '\0') ? folded(p) : 0;
        if (a != 0) {
            out[o++] = a;
            p += 3;
        } else {
            out[o++] = (char)*p++;
        }
    }
    out[o] = '\0';
}
