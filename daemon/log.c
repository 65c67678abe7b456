/*
 * log.c - structured key=value log lines (see md_log.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "md_log.h"
#include "md_store.h"

md_log_level_t md_log_threshold = MD_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int md_log_parse_level(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *md_log_quote(const char *s, char *out, unsigned cap)
{
    unsigned o = 0;
    if (cap < 3)
        return "\"\"";
    out[o++] = '"';
    for (; *s && o + 3 < cap; s++) {
        if (*s == '"' || *s == '\\')
            out[o++] = '\\', out[o++] = *s;
        else if ((unsigned char)*s < 0x20)
            out[o++] = ' ';
        else
            out[o++] = *s;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

void md_log_write(md_log_level_t level, const char *msg, const char *fmt, ...)
{
    char line[2048], ts[32], q[512];
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, sizeof line, "ts=%s.%03ldZ level=%s msg=%s", ts, now.tv_nsec / 1000000,
                     level_names[level], md_log_quote(msg, q, sizeof q));
    if (fmt && *fmt && n > 0 && (size_t)n < sizeof line - 2) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        va_end(ap);
        n = m < 0 ? n : n + m;
    }
    if (n < 0 || (size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(STDERR_FILENO, line, (size_t)n) < 0) {
        /* Nothing sensible to do when stderr is gone. */
    }
}

void md_log_store_converted(const md_store_t *s)
{
    uint64_t streams = 0, events = 0;
    if (md_store_converted(s, &streams, &events))
        md_log_info("store converted from format 1", "format=%d streams=%llu events=%llu",
                    MD_STORE_FORMAT, (unsigned long long)streams, (unsigned long long)events);
}
