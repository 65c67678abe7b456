/*
 * md_docgen - writes docs/commands.md and the JSON Schemas of docs/schema/
 * from the tables the decoder and the rules run on: the command schema table
 * (md_cmd_spec_of: fields, types, ranges, defaults, the target stream), the
 * decoder's envelope table (md_envelope_field), the rules table (md__row_of:
 * who may send, flags, referenced ids) and its authorization words, the
 * contract of each command type (md_rules_codes_of, md_rules_events_of,
 * md_rules_contract_note: the codes it can answer and the events it can
 * append; MD_ANY_CODES, md_rules_code_any: the codes of any command), the timer
 * kinds (md_rules_timer_kind) and the code table (md_code_name,
 * md_code_clause, md_code_retryable). One source:
 * tests/unit/docs_generated.sh fails when the committed files differ from a
 * fresh run, so a new command, field or code means re-running `make docs`.
 *
 *   build/md-docgen DIR      writes DIR/commands.md and DIR/schema/NAME.json
 *
 * Exit status: 0, 1 on an I/O error or a table value this generator cannot
 * describe (e.g. a new authorization kind without words).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../rules/internal.h"
#include "../rules/text.h"
#include "md_command.h"
#include "md_engine.h"
#include "md_rules.h"

static const char *const ftype_words[] = {
    [MD_FT_ID] = "id",        [MD_FT_TEXT] = "text",         [MD_FT_INT] = "integer",
    [MD_FT_BOOL] = "boolean", [MD_FT_HEX64] = "hex64",       [MD_FT_TIME] = "time",
    [MD_FT_ENUM] = "enum",    [MD_FT_EVIDENCE] = "evidence",
};

#define ID_PATTERN "^[A-Za-z0-9._:-]{1,64}$"
#define TIME_PATTERN "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$"

static int failed;

static void die_io(const char *what, const char *path)
{
    fprintf(stderr, "md-docgen: %s %s: %s\n", what, path, strerror(errno));
    exit(1);
}

/* ---- one field, in words and as a schema ----------------------------------------- */

/* The range or syntax of a field, in words (markdown). */
static void field_range(const md_fspec_t *f, char *out, size_t cap)
{
    size_t n = 0;
    switch (f->type) {
    case MD_FT_ID: snprintf(out, cap, "1..%d bytes of `[A-Za-z0-9._:-]`", MD_ID_MAX); return;
    case MD_FT_TEXT:
        snprintf(out, cap, "1..%lld bytes of UTF-8%s", (long long)f->max,
                 f->pattern == md__clause_ok ? ", an agreement clause such as `4.2.6`"
                 : f->pattern                ? ", with a syntax check"
                                             : "");
        return;
    case MD_FT_INT: snprintf(out, cap, "%lld..%lld", (long long)f->min, (long long)f->max); return;
    case MD_FT_BOOL: snprintf(out, cap, "`true` or `false`"); return;
    case MD_FT_HEX64: snprintf(out, cap, "64 hex digits"); return;
    case MD_FT_TIME: snprintf(out, cap, "`YYYY-MM-DDTHH:MM:SS[.f]Z` (UTC)"); return;
    case MD_FT_EVIDENCE:
        snprintf(out, cap,
                 "an array of 1..%d objects `{sha256: 64 hex, name: text 1..%d bytes, bytes: "
                 "1..%lld}`, no sha256 twice",
                 MD_EVIDENCE_MAX, MD_EVIDENCE_NAME_MAX, (long long)MD_EVIDENCE_BYTES_MAX);
        return;
    case MD_FT_ENUM:
        out[0] = '\0';
        for (const char *const *e = f->enums; e && *e && n < cap; e++)
            n += (size_t)snprintf(out + n, cap - n, "%s`%s`", e == f->enums ? "" : ", ", *e);
        return;
    }
    snprintf(out, cap, "?");
    failed = 1;
}

static json_t *field_schema(const md_fspec_t *f)
{
    json_t *s = json_object();
    switch (f->type) {
    case MD_FT_ID:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "pattern", json_string(ID_PATTERN));
        break;
    case MD_FT_TEXT:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "minLength", json_integer(1));
        json_object_set_new(s, "maxLength", json_integer((json_int_t)f->max));
        json_object_set_new(
            s, "description",
            json_string(f->pattern == md__clause_ok
                            ? "UTF-8, at most maxLength bytes: an agreement clause such as 4.2.6"
                            : "UTF-8, at most maxLength bytes (marketd counts bytes)"));
        break;
    case MD_FT_INT:
        json_object_set_new(s, "type", json_string("integer"));
        json_object_set_new(s, "minimum", json_integer((json_int_t)f->min));
        json_object_set_new(s, "maximum", json_integer((json_int_t)f->max));
        if (f->has_default)
            json_object_set_new(s, "default", json_integer((json_int_t)f->def));
        break;
    case MD_FT_BOOL:
        json_object_set_new(s, "type", json_string("boolean"));
        if (f->has_default)
            json_object_set_new(s, "default", json_boolean(f->def));
        break;
    case MD_FT_HEX64:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "pattern", json_string("^[0-9A-Fa-f]{64}$"));
        break;
    case MD_FT_TIME:
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "pattern", json_string(TIME_PATTERN));
        break;
    case MD_FT_ENUM: {
        json_t *e = json_array();
        for (const char *const *v = f->enums; v && *v; v++)
            json_array_append_new(e, json_string(*v));
        json_object_set_new(s, "type", json_string("string"));
        json_object_set_new(s, "enum", e);
        break;
    }
    case MD_FT_EVIDENCE: {
        json_t *item = json_pack(
            "{s:s, s:{s:{s:s, s:s}, s:{s:s, s:i, s:i}, s:{s:s, s:i, s:I}}, s:[sss], s:b}", "type",
            "object", "properties", "sha256", "type", "string", "pattern", "^[0-9A-Fa-f]{64}$",
            "name", "type", "string", "minLength", 1, "maxLength", MD_EVIDENCE_NAME_MAX, "bytes",
            "type", "integer", "minimum", 1, "maximum", (json_int_t)MD_EVIDENCE_BYTES_MAX,
            "required", "sha256", "name", "bytes", "additionalProperties", 0);
        json_object_set_new(s, "type", json_string("array"));
        json_object_set_new(s, "minItems", json_integer(1));
        json_object_set_new(s, "maxItems", json_integer(MD_EVIDENCE_MAX));
        json_object_set_new(s, "items", item);
        json_object_set_new(s, "description",
                            json_string("no sha256 twice (compared lower-cased)"));
        break;
    }
    default: failed = 1;
    }
    return s;
}

/* ---- files ---------------------------------------------------------------------- */

static void write_json(const char *dir, const char *name, json_t *j)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/schema/%s.json", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die_io("open", path);
    if (json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 || fputc('\n', f) == EOF ||
        fclose(f) != 0)
        die_io("write", path);
    json_decref(j);
}

static json_t *envelope_schema(void)
{
    json_t *props = json_object(), *types = json_array(), *req = json_array();
    const char *name, *expect;
    for (int t = 0; t < MD_CMD_COUNT_; t++)
        json_array_append_new(types, json_string(md_cmd_spec_of((md_cmd_type_t)t)->name));
    json_object_set_new(props, "command_id",
                        json_pack("{s:s, s:i, s:i, s:s}", "type", "string", "minLength", 1,
                                  "maxLength", MD_COMMAND_ID_MAX, "description",
                                  "1..128 bytes; the idempotency key and the results' key"));
    json_object_set_new(props, "type", json_pack("{s:s, s:o}", "type", "string", "enum", types));
    for (size_t i = 0; md_envelope_field(i, &name, &expect); i++) {
        json_t *p;
        if (strcmp(name, "actor") == 0)
            p = json_pack("{s:s, s:s}", "type", "string", "pattern", ID_PATTERN);
        else if (strcmp(name, "issued_at") == 0)
            p = json_pack("{s:s, s:s}", "type", "string", "pattern", TIME_PATTERN);
        else if (strcmp(name, "expected_version") == 0)
            p = json_pack("{s:s, s:i}", "type", "integer", "minimum", 0);
        else if (strcmp(name, "correlation_id") == 0)
            p = json_pack("{s:s, s:i, s:i}", "type", "string", "minLength", 1, "maxLength",
                          MD_COMMAND_ID_MAX);
        else if (strcmp(name, "data") == 0)
            p = json_pack("{s:s}", "type", "object");
        else {
            fprintf(stderr, "md-docgen: envelope field '%s' has no schema here\n", name);
            failed = 1;
            p = json_object();
        }
        json_object_set_new(p, "description", json_string(expect));
        json_object_set_new(props, name, p);
    }
    json_array_append_new(req, json_string("command_id"));
    json_array_append_new(req, json_string("type"));
    json_array_append_new(req, json_string("actor"));
    json_array_append_new(req, json_string("data"));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:b}", "$schema",
                     "https://json-schema.org/draft/2020-12/schema", "$id", "envelope.json",
                     "title", "marketd command envelope", "description",
                     "generated by md-docgen from marketd's decoder tables; issued_at is "
                     "required too when marketd runs with clock = command",
                     "type", "object", "properties", props, "required", req, "additionalProperties",
                     0);
}

static json_t *command_schema(const md_cmd_spec_t *s)
{
    json_t *props = json_object(), *req = json_array();
    for (size_t i = 0; i < s->nfields; i++) {
        json_object_set_new(props, s->fields[i].name, field_schema(&s->fields[i]));
        if (s->fields[i].required)
            json_array_append_new(req, json_string(s->fields[i].name));
    }
    json_t *data = json_pack("{s:s, s:o, s:o, s:b}", "type", "object", "properties", props,
                             "required", req, "additionalProperties", 0);
    char id[96];
    snprintf(id, sizeof id, "%s.json", s->name);
    return json_pack("{s:s, s:s, s:s, s:s, s:[{s:s}], s:{s:{s:s}, s:o}}", "$schema",
                     "https://json-schema.org/draft/2020-12/schema", "$id", id, "title", s->name,
                     "description", "generated by md-docgen from marketd's decoder tables", "allOf",
                     "$ref", "envelope.json", "properties", "type", "const", s->name, "data", data);
}

/* ---- commands.md ------------------------------------------------------------------ */

static void md_header(FILE *f)
{
    fputs("# Commands: the contract with publishers\n\n"
          "<!-- Generated by build/md-docgen (tools/md_docgen.c) from the decoder's and the\n"
          "     rules' tables; `make docs` rewrites it and tests/unit/docs_generated.sh fails\n"
          "     when it differs. Do not edit by hand. -->\n\n"
          "Every command is one Kafka message on the commands topic (or one line of\n"
          "`marketd --input`). JSON Schemas of the envelope and of each command are in\n"
          "[`docs/schema/`](schema/) (draft 2020-12), generated from the same tables, so a\n"
          "publisher in any language can validate before it sends. The rules behind each code\n"
          "are in `docs/rules.md`; the events in `docs/events.md`.\n\n",
          f);
}

static void md_envelope(FILE *f)
{
    const char *name, *expect;
    fputs("## The envelope\n\n| field | required | value |\n|---|---|---|\n"
          "| `command_id` | yes | 1..128 bytes: the idempotency key; results are keyed by it |\n"
          "| `type` | yes | one of the command types below |\n",
          f);
    for (size_t i = 0; md_envelope_field(i, &name, &expect); i++)
        fprintf(f, "| `%s` | %s | %s |\n", name,
                strcmp(name, "actor") == 0 || strcmp(name, "data") == 0 ? "yes"
                : strcmp(name, "issued_at") == 0                        ? "with `clock = command`"
                                                                        : "no",
                expect);
    fputs("\nAny other envelope key, or any `data` key a command does not declare, is\n"
          "`INVALID_FIELD` naming it. A message that is not an object, whose `command_id` is\n"
          "missing or not 1..128 bytes, that is not valid JSON (duplicate keys included) or\n"
          "msgpack, larger than `message.max_bytes`, or whose `content-type` is neither JSON nor\n"
          "msgpack is `MALFORMED`.\n\n",
          f);
}

static void md_headers_and_results(FILE *f)
{
    fprintf(
        f,
        "## Headers and keys\n\n"
        "| message | key | headers |\n|---|---|---|\n"
        "| command (in) | the target stream below (ordering; marketd decides by content) | "
        "`content-type`: absent or `application/json` (JSON), `application/msgpack` (the same "
        "envelope as a msgpack map); any other value is MALFORMED (`unsupported content-type`) |\n"
        "| result | `command_id` (empty for MALFORMED) | `marketd-stage-us` (the daemon on Kafka): "
        "when the command passed each stage, wall-clock µs since the epoch, space-separated: "
        "appended by the broker (its LogAppendTime; 0 on a CreateTime topic), taken by the "
        "consumer, batch begun, batch committed, handed to the producer. Transport timing for "
        "latency analysis (`market-load --latency-out`, `bench/legs.sh`); the value is the same "
        "bytes without it |\n"
        "| event | its stream | none |\n"
        "| dead letter (MALFORMED only) | the original key (cut to %d bytes: header `key`) | "
        "`reason`, `sha256` (of the original bytes), `original_size`; `body` when the bytes "
        "were dropped because the record would exceed %d bytes |\n\n",
        (MD_DEADLETTER_MAX_BYTES - MD_DEADLETTER_MAX_BYTES / 8) / 2, MD_DEADLETTER_MAX_BYTES);
    fputs("## Results\n\nOne result per command, in the order decided. `correlation_id` is "
          "echoed when the command had one.\n\n"
          "| status | shape |\n|---|---|\n"
          "| accepted | `{\"command_id\",[\"correlation_id\",]\"status\":\"accepted\","
          "\"events\":[{\"seq\",\"stream\",\"version\",\"type\"}...]}` |\n"
          "| rejected | `{\"command_id\",[\"correlation_id\",]\"status\":\"rejected\","
          "\"error\":{\"code\",\"clause\",\"message\"}}`; recorded: the same `command_id` "
          "answers `duplicate` |\n"
          "| retryable | a rejection with `\"retryable\":true` in `error` (codes marked below): "
          "not recorded, the same command may be sent again |\n"
          "| duplicate | `{\"command_id\",\"status\":\"duplicate\",\"original_status\","
          "[\"error\":{\"code\",\"clause\"},]\"original\":{the first result, whole}}` |\n"
          "| MALFORMED | `{\"command_id\":null,\"status\":\"rejected\",\"error\":{\"code\":"
          "\"MALFORMED\",\"clause\":null,\"message\"},\"sha256\"[,\"partition\",\"offset\"]}`: "
          "the SHA-256 of the bytes and, from Kafka, where they are |\n\n",
          f);
}

/* "`CODE` (clause)" or "`CODE`" for a null clause, after ", " unless first. */
static void code_word(FILE *f, md_code_t c, bool first)
{
    const char *cl = md_code_clause(c);
    fprintf(f, "%s`%s`", first ? "" : ", ", md_code_name(c));
    if (cl != NULL)
        fprintf(f, " (%s)", cl);
}

static void md_codes(FILE *f)
{
    fputs("## Codes\n\n| code | clause | retryable |\n|---|---|---|\n", f);
    for (int i = 0; i < MD_CODE_COUNT_; i++) {
        const char *cl = md_code_clause((md_code_t)i);
        fprintf(f, "| `%s` | %s | %s |\n", md_code_name((md_code_t)i), cl ? cl : "null",
                md_code_retryable((md_code_t)i) ? "yes" : "");
    }
    fputs("\nChecks run in this order; the first that fails answers (docs/rules.md):\n"
          "1. decoding: `MALFORMED`, `UNKNOWN_COMMAND`, `INVALID_FIELD`;\n"
          "2. the actor: `MEMBER_NOT_REGISTERED`, `ACCOUNT_CLOSED`, `ACCOUNT_SUSPENDED` (unless "
          "the command says otherwise below);\n"
          "3. maintenance: `SERVICE_UNAVAILABLE`;\n"
          "4. referenced ids: `NOT_FOUND`, `ALREADY_EXISTS`;\n"
          "5. who may send it: `FORBIDDEN`;\n"
          "6. `expected_version`: `VERSION_CONFLICT`;\n"
          "7. the command's own rule: the other codes.\n\n",
          f);
#define ANY_(c) MD_CODE_##c,
    static const md_code_t any[] = {MD_ANY_CODES(ANY_)};
#undef ANY_
    fputs("### Any command\n\nAny command can be answered with these; each command below "
          "lists its own codes besides, and those of these it never answers:\n\n",
          f);
    for (size_t i = 0; i < sizeof any / sizeof any[0]; i++) {
        fputs("- ", f);
        code_word(f, any[i], true);
        fputs(any[i] == MD_CODE_SERVICE_UNAVAILABLE ? ": to an actor who is not an operator\n"
              : any[i] == MD_CODE_VERSION_CONFLICT  ? ": with `expected_version`\n"
                                                    : "\n",
              f);
    }
    fputs("\nA rejection appends one `CommandRejected` event on stream `rejections`, whatever "
          "the command.\n\n",
          f);
}

/* The command's events and codes, from its contract. */
static void md_contract(FILE *f, md_cmd_type_t t)
{
    md_code_t codes[MD_CODE_COUNT_];
    const char *events[MD_CONTRACT_EVENTS_MAX];
    size_t ne = md_rules_events_of(t, events), nc = md_rules_codes_of(t, codes), k = 0;
    const char *note = md_rules_contract_note(t);
    fputs("- events when accepted: ", f);
    if (ne == 0)
        fputs("none", f);
    for (size_t i = 0; i < ne; i++)
        fprintf(f, "%s`%s`%s", i ? ", " : "", events[i],
                i == 0 && t != MD_CMD_ACCEPT_AGREEMENT &&
                        strcmp(events[i], "AgreementAccepted") == 0
                    ? " (implicit: first, when the actor has not accepted the current agreement)"
                    : "");
    fputs("\n- codes (besides any command's): ", f);
    for (size_t i = 0; i < nc; i++) {
        if (!md_rules_code_any(codes[i]))
            code_word(f, codes[i], k++ == 0);
    }
    fputs(k == 0 ? "none\n" : "\n", f);
    k = 0;
    for (int c = 0; c < MD_CODE_COUNT_; c++) {
        bool listed = false;
        if (!md_rules_code_any((md_code_t)c) || c == MD_CODE_MALFORMED ||
            c == MD_CODE_UNKNOWN_COMMAND)
            continue;
        for (size_t i = 0; i < nc; i++)
            listed = listed || codes[i] == (md_code_t)c;
        if (!listed)
            fprintf(f, "%s`%s`", k++ == 0 ? "- never answers (of any command's): " : ", ",
                    md_code_name((md_code_t)c));
    }
    if (k > 0)
        fputs("\n", f);
    if (note != NULL)
        fprintf(f, "- note: %s\n", note);
}

static void md_timers(FILE *f)
{
    const char *name, *what;
    const char *const *events;
    fputs("## Timers\n\nEvents no command appends: a timer fires when a line's time (its "
          "`issued_at` with `clock = command`) reaches its deadline, before that line is "
          "decided. Its events carry `command_id` `timer:<timer>:<id>`, actor `system` and "
          "`recorded_at` = the deadline; a firing has no result and records no outcome.\n\n"
          "| timer | when | events |\n|---|---|---|\n",
          f);
    for (size_t i = 0; md_rules_timer_kind(i, &name, &what, &events); i++) {
        fprintf(f, "| `%s` | %s | ", name, what);
        for (size_t j = 0; events[j] != NULL; j++)
            fprintf(f, "%s`%s`", j ? ", " : "", events[j]);
        fputs(" |\n", f);
    }
    fputs("\n", f);
}

static void md_command(FILE *f, const md_cmd_spec_t *s)
{
    const md__row_t *row = md__row_of(s->type);
    const char *who = md__auth_word(row->auth);
    char range[512];
    if (who == NULL) {
        fprintf(stderr, "md-docgen: %s: authorization %d has no words\n", s->name, row->auth);
        failed = 1;
        who = "?";
    }
    fprintf(f, "### %s\n\n", s->name);
    fprintf(f, "- key (stream): `%s", s->stream);
    if (s->target_field)
        fprintf(f, ":<data.%s>`\n", s->target_field);
    else
        fprintf(f, "%s`\n", strcmp(s->stream, "member") == 0 ? ":<actor>" : "");
    fprintf(f, "- sent by: %s%s\n", who,
            row->flags & MD__F_UNREGISTERED ? " (not yet registered)" : "");
    if (row->flags & (MD__F_WHILE_SUSPENDED | MD__F_WHILE_CLOSED))
        fprintf(f, "- accepted from a %s%s%s account\n",
                row->flags & MD__F_WHILE_SUSPENDED ? "suspended" : "",
                (row->flags & MD__F_WHILE_SUSPENDED) && (row->flags & MD__F_WHILE_CLOSED) ? " or "
                                                                                          : "",
                row->flags & MD__F_WHILE_CLOSED ? "closed" : "");
    for (int i = 0; i < 3 && row->refs[i].field; i++)
        fprintf(f, "- `data.%s`: %s %s (else `%s`)\n", row->refs[i].field,
                row->refs[i].creates ? "a new" : "an existing", md__ref_word(row->refs[i].kind),
                row->refs[i].creates ? "ALREADY_EXISTS" : "NOT_FOUND");
    md_contract(f, s->type);
    fprintf(f, "- schema: [`schema/%s.json`](schema/%s.json)\n\n", s->name, s->name);
    if (s->nfields == 0) {
        fputs("`data` is `{}`.\n\n", f);
        return;
    }
    fputs("| field | type | range | required |\n|---|---|---|---|\n", f);
    for (size_t i = 0; i < s->nfields; i++) {
        const md_fspec_t *fs = &s->fields[i];
        field_range(fs, range, sizeof range);
        fprintf(f, "| `%s` | %s | %s | ", fs->name, ftype_words[fs->type], range);
        if (fs->required)
            fputs("yes |\n", f);
        else if (fs->has_default && fs->type == MD_FT_BOOL)
            fprintf(f, "no (default `%s`) |\n", fs->def ? "true" : "false");
        else if (fs->has_default)
            fprintf(f, "no (default %lld) |\n", (long long)fs->def);
        else
            fputs("no |\n", f);
    }
    fputs("\n", f);
}

int main(int argc, char **argv)
{
    char path[4096];
    if (argc != 2) {
        fputs("usage: md-docgen DIR   (writes DIR/commands.md and DIR/schema/NAME.json)\n", stderr);
        return 2;
    }
    snprintf(path, sizeof path, "%s/schema", argv[1]);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        die_io("mkdir", path);
    snprintf(path, sizeof path, "%s/commands.md", argv[1]);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die_io("open", path);
    md_header(f);
    md_envelope(f);
    md_headers_and_results(f);
    md_codes(f);
    fputs("## Command types\n\n", f);
    for (int t = 0; t < MD_CMD_COUNT_; t++)
        md_command(f, md_cmd_spec_of((md_cmd_type_t)t));
    md_timers(f);
    if (fclose(f) != 0)
        die_io("write", path);
    write_json(argv[1], "envelope", envelope_schema());
    for (int t = 0; t < MD_CMD_COUNT_; t++) {
        const md_cmd_spec_t *s = md_cmd_spec_of((md_cmd_type_t)t);
        write_json(argv[1], s->name, command_schema(s));
    }
    return failed;
}
