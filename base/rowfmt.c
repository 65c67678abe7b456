/*
 * rowfmt.c - listings as JSON lines, CSV (RFC 4180) or an aligned table
 * (md_rowfmt.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_rowfmt.h"

#define CELL_MAX 40 /* display columns of a table cell before it is cut */

struct md_rowfmt {
    md_rowfmt_kind_t kind;
    const char *const *money;
    json_t *cols; /* column names (strings), from the first row */
    json_t *rows; /* table: the rows, each an array of cell texts */
};

static void put(md_buf_t *out, const char *s)
{
    md_buf_append(out, s, strlen(s));
}

bool md_rowfmt_parse(const char *name, md_rowfmt_kind_t *out)
{
    static const char *const names[] = {"json", "csv", "table"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (md_rowfmt_kind_t)i;
            return true;
        }
    return false;
}

md_rowfmt_t *md_rowfmt_new(md_rowfmt_kind_t kind, const char *const *money)
{
    md_rowfmt_t *f = md_calloc(1, sizeof *f);
    f->kind = kind;
    f->money = money;
    f->cols = json_array();
    f->rows = json_array();
    return f;
}

void md_rowfmt_free(md_rowfmt_t *f)
{
    if (f == NULL)
        return;
    json_decref(f->cols);
    json_decref(f->rows);
    free(f);
}

/* ---- display width ------------------------------------------------------------------- */

/* Code points a terminal shows two columns wide (East Asian Wide/Fullwidth). */
static const uint32_t wide[][2] = {
    {0x1100, 0x115f}, {0x2e80, 0x303e},   {0x3041, 0x33ff},   {0x3400, 0x4dbf},   {0x4e00, 0x9fff},
    {0xa000, 0xa4cf}, {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe30, 0xfe4f},   {0xff00, 0xff60},
    {0xffe0, 0xffe6}, {0x1f300, 0x1f64f}, {0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
};

static uint32_t decode(const unsigned char *p, size_t len)
{
    static const unsigned char mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
    uint32_t cp = p[0] & mask[len];
    for (size_t i = 1; i < len; i++)
        cp = cp << 6 | (p[i] & 0x3f);
    return cp;
}

static size_t cp_width(uint32_t cp)
{
    if ((cp >= 0x300 && cp <= 0x36f) || cp == 0x200b || (cp >= 0xfe00 && cp <= 0xfe0f))
        return 0;
    for (size_t i = 0; i < sizeof wide / sizeof wide[0]; i++)
        if (cp >= wide[i][0] && cp <= wide[i][1])
            return 2;
    return 1;
}

/* Length of the character at p (1 for an invalid byte). */
static size_t char_len(const unsigned char *p, size_t left)
{
    size_t n = md_utf8_len(p, left);
    return n ? n : 1;
}

size_t md_rowfmt_width(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t l = md_utf8_len(p + i, n - i);
        w += l ? cp_width(decode(p + i, l)) : 1;
        i += l ? l : 1;
    }
    return w;
}

/* ---- cells ------------------------------------------------------------------------------ */

static bool is_money(const md_rowfmt_t *f, const char *col)
{
    for (const char *const *m = f->money; m && *m; m++)
        if (strcmp(*m, col) == 0)
            return true;
    return false;
}

/* Integer fen as yuan: "¥199.00", "-¥0.50". */
static void yuan(md_buf_t *out, json_int_t fen)
{
    char s[48];
    uint64_t a = fen < 0 ? (uint64_t)0 - (uint64_t)fen : (uint64_t)fen;
    snprintf(s, sizeof s, "%s\xc2\xa5%" PRIu64 ".%02" PRIu64, fen < 0 ? "-" : "", a / 100, a % 100);
    put(out, s);
}

/* The plain text of a value: strings as they are, null empty, nested values as JSON. */
static void cell_text(const md_rowfmt_t *f, const char *col, const json_t *v, md_buf_t *out)
{
    char s[64];
    switch (json_typeof(v)) {
    case JSON_STRING: md_buf_append(out, json_string_value(v), json_string_length(v)); return;
    case JSON_INTEGER:
        if (f->kind == MD_ROWFMT_TABLE && is_money(f, col)) {
            yuan(out, json_integer_value(v));
            return;
        }
        snprintf(s, sizeof s, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        put(out, s);
        return;
    case JSON_REAL:
        snprintf(s, sizeof s, "%.17g", json_real_value(v));
        put(out, s);
        return;
    case JSON_TRUE: put(out, "true"); return;
    case JSON_FALSE: put(out, "false"); return;
    case JSON_NULL: return;
    default: {
        char *j = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (j)
            put(out, j);
        free(j);
    }
    }
}

static void csv_field(md_buf_t *out, const unsigned char *p, size_t n)
{
    bool quote = false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = p[i] == ',' || p[i] == '"' || p[i] == '\r' || p[i] == '\n';
    if (!quote) {
        md_buf_append(out, p, n);
        return;
    }
    put(out, "\"");
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            put(out, "\"");
        md_buf_append(out, p + i, 1);
    }
    put(out, "\"");
}

/* A table cell: control characters made visible, cut at CELL_MAX columns. */
static json_t *table_cell(const unsigned char *p, size_t n)
{
    md_buf_t b;
    size_t w = 0;
    md_buf_init(&b);
    for (size_t i = 0; i < n;) {
        size_t l = char_len(p + i, n - i), cw;
        const char *esc = p[i] == '\n'                                                    ? "\\n"
                          : p[i] == '\r'                                                  ? "\\r"
                          : p[i] == '\t'                                                  ? "\\t"
                          : p[i] < 0x20 || p[i] == 0x7f || md_utf8_len(p + i, n - i) == 0 ? "?"
                                                                                          : NULL;
        cw = esc ? strlen(esc) : cp_width(decode(p + i, l));
        if (w + cw > CELL_MAX - 1 && i + l < n) {
            put(&b, "\xe2\x80\xa6"); /* … */
            break;
        }
        if (esc)
            put(&b, esc);
        else
            md_buf_append(&b, p + i, l);
        w += cw;
        i += l;
    }
    json_t *s = json_stringn(b.len ? (const char *)b.p : "", b.len);
    md_buf_release(&b);
    return s;
}

/* ---- rows ------------------------------------------------------------------------------- */

static void take_columns(md_rowfmt_t *f, const json_t *row)
{
    const char *k;
    json_t *v;
    json_object_foreach ((json_t *)row, k, v)
        md_json_append(f->cols, json_string(k));
}

static void csv_header(md_rowfmt_t *f, md_buf_t *out)
{
    size_t i;
    json_t *c;
    json_array_foreach (f->cols, i, c) {
        if (i)
            put(out, ",");
        csv_field(out, (const unsigned char *)json_string_value(c), json_string_length(c));
    }
    put(out, "\r\n");
}

void md_rowfmt_row(md_rowfmt_t *f, const json_t *row, md_buf_t *out)
{
    json_t *wrap = NULL;
    if (!json_is_object(row))
        row = wrap = json_pack("{s:O}", "value", row);
    if (f->kind == MD_ROWFMT_JSON) {
        char *s = json_dumps(row, JSON_COMPACT);
        if (s)
            put(out, s);
        free(s);
        put(out, "\n");
        json_decref(wrap);
        return;
    }
    bool first = json_array_size(f->cols) == 0;
    if (first)
        take_columns(f, row);
    if (first && f->kind == MD_ROWFMT_CSV)
        csv_header(f, out);
    json_t *cells = json_array(), *c;
    md_buf_t t;
    size_t i;
    md_buf_init(&t);
    json_array_foreach (f->cols, i, c) {
        const char *col = json_string_value(c);
        json_t *v = json_object_get(row, col);
        md_buf_reset(&t);
        if (v)
            cell_text(f, col, v, &t);
        if (f->kind == MD_ROWFMT_CSV) {
            if (i)
                put(out, ",");
            csv_field(out, t.p, t.len);
        } else {
            json_t *cell = table_cell(t.p, t.len);
            /* [text, right-aligned (a number)] */
            md_json_append(cells, json_pack("[o,b]", cell, v && (json_is_number(v))));
        }
    }
    md_buf_release(&t);
    if (f->kind == MD_ROWFMT_CSV)
        put(out, "\r\n");
    else
        md_json_append(f->rows, cells), cells = NULL;
    json_decref(cells);
    json_decref(wrap);
}

static void pad(md_buf_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(out, " ");
}

static size_t str_width(const json_t *s)
{
    return md_rowfmt_width(json_string_value(s), json_string_length(s));
}

void md_rowfmt_end(md_rowfmt_t *f, md_buf_t *out)
{
    size_t ncol = json_array_size(f->cols), nrow = json_array_size(f->rows);
    if (f->kind != MD_ROWFMT_TABLE || ncol == 0)
        return;
    size_t *w = md_calloc(ncol, sizeof *w);
    for (size_t i = 0; i < ncol; i++) {
        w[i] = str_width(json_array_get(f->cols, i));
        for (size_t r = 0; r < nrow; r++) {
            size_t cw = str_width(json_array_get(json_array_get(json_array_get(f->rows, r), i), 0));
            w[i] = cw > w[i] ? cw : w[i];
        }
    }
    for (size_t i = 0; i < ncol; i++) {
        json_t *h = json_array_get(f->cols, i);
        put(out, i ? "  " : "");
        put(out, json_string_value(h));
        if (i + 1 < ncol)
            pad(out, w[i] - str_width(h));
    }
    put(out, "\n");
    for (size_t r = 0; r < nrow; r++) {
        json_t *row = json_array_get(f->rows, r);
        for (size_t i = 0; i < ncol; i++) {
            json_t *cell = json_array_get(row, i), *s = json_array_get(cell, 0);
            size_t gap = w[i] - str_width(s);
            bool right = json_is_true(json_array_get(cell, 1));
            put(out, i ? "  " : "");
            if (right)
                pad(out, gap);
            put(out, json_string_value(s));
            if (!right && i + 1 < ncol)
                pad(out, gap);
        }
        put(out, "\n");
    }
    free(w);
}
