/*
 * md_log.h - structured logging: one line per event on stderr,
 *   ts=2026-11-26T10:00:00.123Z level=info msg="batch committed" commands=1000
 * The level check happens before the arguments are evaluated.
 */
#ifndef MD_LOG_H
#define MD_LOG_H

typedef enum md_log_level { MD_LOG_ERROR, MD_LOG_WARN, MD_LOG_INFO, MD_LOG_DEBUG } md_log_level_t;

extern md_log_level_t md_log_threshold;

/** @brief Parses "error", "warn", "info" or "debug"; returns -1 when unknown. */
int md_log_parse_level(const char *s);

/**
 * @brief Writes one line: ts, level, msg (quoted) and then @p fmt, which
 * should be space-separated key=value pairs (values quoted by the caller
 * when they may hold spaces; see md_log_quote). Thread-safe (one write call).
 */
void md_log_write(md_log_level_t level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** @brief Copies @p s into @p out as a quoted, escaped log value. */
const char *md_log_quote(const char *s, char *out, unsigned cap);

#define md_log(level, msg, ...)                                                                    \
    do {                                                                                           \
        if ((level) <= md_log_threshold)                                                           \
            md_log_write((level), (msg), __VA_ARGS__);                                             \
    } while (0)

#define md_log_error(msg, ...) md_log(MD_LOG_ERROR, msg, __VA_ARGS__)
#define md_log_warn(msg, ...) md_log(MD_LOG_WARN, msg, __VA_ARGS__)
#define md_log_info(msg, ...) md_log(MD_LOG_INFO, msg, __VA_ARGS__)
#define md_log_debug(msg, ...) md_log(MD_LOG_DEBUG, msg, __VA_ARGS__)

typedef struct md_store md_store_t;

/** @brief Logs (info) that opening @p s converted it from store format 1
 * (md_store_converted); nothing otherwise. */
void md_log_store_converted(const md_store_t *s);

#endif
