/*
 * utf8.c - the one UTF-8 validator (see md_base.h): command fields, JSON
 * output and the daemon's own checks all use it.
 */
#include "md_base.h"

size_t md_utf8_len(const unsigned char *p, size_t left)
{
    unsigned c = p[0];
    size_t n = c == 0             ? 0
               : c < 0x80         ? 1
               : (c >> 5) == 0x6  ? 2
               : (c >> 4) == 0xE  ? 3
               : (c >> 3) == 0x1E ? 4
                                  : 0;
    if (n == 0 || n > left)
        return 0;
    unsigned cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

bool md_valid_utf8(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] != 0 && p[i] < 0x80) { /* ASCII: md_utf8_len would say 1 */
            i++;
            continue;
        }
        size_t n = md_utf8_len(p + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}
