/*
 * command_types.c - validators of field syntax: ids, UTF-8, and the RFC 3339
 * subset of docs/rules-reference.md "Fine points" (times kept as ms since the epoch).
 */
#include <stdio.h>
#include <string.h>

#include "md_command.h"

static bool id_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

bool md_valid_id(const char *s, size_t len)
{
    if (len < 1 || len > MD_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!id_char((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* ---- time ------------------------------------------------------------------ */

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int64_t *m, int64_t *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int64_t y, int64_t m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

/* Reads n digits at s into *v; false when any is not a digit. */
static bool digits(const char *s, int n, int64_t *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* The fraction ".f{1,9}" then "Z" at s (len bytes left): its milliseconds. */
static bool fraction_z(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0, nd = 0;
    *ms = 0;
    if (len > 0 && s[0] == '.') {
        for (i = 1; i < len && s[i] >= '0' && s[i] <= '9'; i++, nd++) {
            if (nd < 3)
                *ms = *ms * 10 + (s[i] - '0');
        }
        if (nd == 0 || nd > 9)
            return false;
        for (size_t k = nd; k < 3; k++)
            *ms *= 10;
    }
    return i + 1 == len && s[i] == 'Z';
}

bool md_parse_time(const char *s, size_t len, int64_t *ms)
{
    int64_t y, mo, d, h, mi, se, frac;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se))
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59)
        return false;
    if (!fraction_z(s + 19, len - 19, &frac))
        return false;
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000 + se * 1000 + frac;
    return true;
}

void md_format_time(int64_t ms, char out[25])
{
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t rem = ms - days * 86400000;
    int64_t y, m, d;
    civil_from_days(days, &y, &m, &d);
    char tmp[80];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", (int)y, (int)m, (int)d,
             (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
             (int)(rem % 1000));
    memcpy(out, tmp, 24);
    out[24] = '\0';
}
