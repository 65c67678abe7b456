/*
 * md_rowfmt.h - listings as JSON lines, CSV or an aligned table (base/rowfmt.c).
 *
 * One formatter for marketctl (`--format json|csv|table`) and the HTTP API
 * (`Accept: text/csv`). A listing is a sequence of flat JSON objects (rows);
 * nested values (an event's data, an order's dispute) become one cell holding
 * their compact JSON.
 *
 *   json   each row as one compact JSON line (the default; streams).
 *   csv    RFC 4180: a header row of the first row's keys, then one record per
 *          row in that column order (keys a later row lacks are empty cells,
 *          keys it adds are left out), CRLF line ends, a field holding a comma,
 *          quote, CR or LF quoted with quotes doubled; null is an empty cell.
 *          Streams (the header is written with the first row).
 *   table  columns aligned for a terminal by display width (East Asian wide
 *          characters count 2), numbers right-aligned, control characters shown
 *          as `\n`, `\r`, `\t` or `?`, cells cut at 40 columns with `…`; the
 *          money columns given to md_rowfmt_new (integer fen) are shown in yuan
 *          as `¥199.00`. Buffered: everything is written by md_rowfmt_end.
 *
 * Ownership: md_rowfmt_new returns a handle owned by the caller
 * (md_rowfmt_free); rows are borrowed. Output is appended to the caller's
 * md_buf_t, which the caller writes out and resets when it likes.
 * Threads: a handle is used by one thread at a time; no global state.
 */
#ifndef MD_ROWFMT_H
#define MD_ROWFMT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "md_base.h"

typedef enum md_rowfmt_kind { MD_ROWFMT_JSON, MD_ROWFMT_CSV, MD_ROWFMT_TABLE } md_rowfmt_kind_t;

typedef struct md_rowfmt md_rowfmt_t;

/** @brief The kind named "json", "csv" or "table" in @p *out; false otherwise. */
bool md_rowfmt_parse(const char *name, md_rowfmt_kind_t *out);

/**
 * @brief A new formatter.
 * @param money NULL-terminated list of the columns holding integer fen (shown
 *        in yuan by `table`), borrowed (must outlive the handle); may be NULL.
 * @returns the handle (never NULL: out of memory aborts).
 */
md_rowfmt_t *md_rowfmt_new(md_rowfmt_kind_t kind, const char *const *money);

/** @brief Appends the text of row @p row (a JSON object, borrowed) to @p out
 *  (json, csv) or keeps it for md_rowfmt_end (table). A non-object is written
 *  as a one-column row named "value". */
void md_rowfmt_row(md_rowfmt_t *f, const json_t *row, md_buf_t *out);

/** @brief Appends what is left (the whole table) to @p out. */
void md_rowfmt_end(md_rowfmt_t *f, md_buf_t *out);

/** @brief Frees @p f; NULL does nothing. */
void md_rowfmt_free(md_rowfmt_t *f);

/** @brief Columns a terminal gives the UTF-8 text s[0..n) (wide CJK 2,
 *  combining marks 0, invalid bytes 1 each). */
size_t md_rowfmt_width(const char *s, size_t n);

#endif
