#!/usr/bin/env bash
# docs_generated.sh - docs/commands.md and docs/schema/ are what build/md-docgen
# writes from the decoder's and the rules' tables (one source: a command,
# field or code added to the tables without `make docs` fails here), and the
# schemas say what the decoder accepts: every command of the demo day and of
# tests/scenarios that marketd decoded (not MALFORMED, UNKNOWN_COMMAND or
# INVALID_FIELD) satisfies its schema, checked with jq (required keys, no
# other keys, types, enums, integer ranges, patterns, lengths).
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-docgen-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ROOT/$B/md-docgen" "$T" || fail "md-docgen failed"
diff -u "$ROOT/docs/commands.md" "$T/commands.md" >"$T/diff" ||
    fail "docs/commands.md is not what md-docgen writes (run make docs): $(head -20 "$T/diff")"
diff -r "$ROOT/docs/schema" "$T/schema" >"$T/diff" ||
    fail "docs/schema/ is not what md-docgen writes (run make docs): $(head -20 "$T/diff")"
n=$(ls "$T/schema" | wc -l)

# A schema check in jq: prints the first violation of a command, or nothing.
check='
def vtype($s): if $s.type == "string" then type == "string"
  elif $s.type == "integer" then type == "number" and . == floor
  elif $s.type == "boolean" then type == "boolean"
  elif $s.type == "object" then type == "object" else true end;
def violations($s; $where):
  if vtype($s) | not then "\($where): not \($s.type)"
  elif $s.enum and ([.] | inside($s.enum) | not) then "\($where): not in enum"
  elif $s.const and . != $s.const then "\($where): not \($s.const)"
  elif $s.minimum and . < $s.minimum then "\($where): below minimum"
  elif $s.maximum and . > $s.maximum then "\($where): above maximum"
  elif $s.pattern and (test($s.pattern) | not) then "\($where): does not match \($s.pattern)"
  elif $s.maxLength and (utf8bytelength > $s.maxLength) then "\($where): too long"
  elif $s.minLength and (length < $s.minLength) then "\($where): too short"
  else empty end;
def object_violations($s; $where):
  (($s.required // []) - keys | map("\($where).\(.): required") | .[]),
  (keys - ($s.properties | keys) | map("\($where).\(.): not allowed") | .[]),
  (to_entries[] | select($s.properties[.key]) | .key as $k | .value | violations($s.properties[$k]; "\($where).\($k)"));
. as $cmd
| ($envelope[0]) as $env | ($schemas[0][$cmd.type]) as $s
| [ ($cmd | object_violations($env; "envelope")),
    ($cmd.type | violations($s.properties.type; "type")),
    ($cmd.data | object_violations($s.properties.data; "data")) ] | first // empty
| "\($cmd.command_id): \(.)"'
jq -s 'map({(.title): .}) | add' "$T"/schema/[A-Z]*.json >"$T/schemas.json"
checked=0
for f in "$ROOT/demo/demo-day.jsonl" "$ROOT"/tests/scenarios/*.jsonl; do
    case $f in *.expected.jsonl) continue ;; esac
    rm -rf "$T/d"
    "$ROOT/$B/marketd" --input "$f" --data-dir "$T/d" --clock command --results "$T/r.jsonl" \
        --log-level error 2>/dev/null || true
    # the decoded commands: one result per non-blank line, in order; keep the
    # lines whose result is neither a decoding error nor a duplicate
    grep -v '^[[:space:]]*$' "$f" >"$T/lines"
    [ "$(wc -l <"$T/lines")" = "$(wc -l <"$T/r.jsonl")" ] || fail "$(basename "$f"): results do not pair with lines"
    paste "$T/r.jsonl" "$T/lines" | jq -R -c 'split("\t") | (.[0] | fromjson) as $r |
        select(($r.error.code // "") as $c | $c != "MALFORMED" and $c != "UNKNOWN_COMMAND" and
               $c != "INVALID_FIELD" and $r.status != "duplicate") | .[1:] | join("\t") | fromjson' \
        >"$T/decoded.jsonl"
    bad=$(jq -r --slurpfile envelope "$T/schema/envelope.json" --slurpfile schemas "$T/schemas.json" \
        "$check" "$T/decoded.jsonl" | head -3)
    [ -z "$bad" ] || fail "$(basename "$f"): a command marketd decoded violates its schema: $bad"
    checked=$((checked + $(wc -l <"$T/decoded.jsonl")))
done
[ "$checked" -gt 100 ] || fail "only $checked decoded commands checked"
# and the schemas refuse what the decoder refuses: an unknown data key, a missing field
printf '%s\n' '{"command_id":"x","type":"PlaceOrder","actor":"bob","data":{"order_id":"o","product_id":"p","colour":"red"}}' \
    '{"command_id":"y","type":"PlaceOrder","actor":"bob","data":{"product_id":"p"}}' \
    '{"command_id":"z","type":"DepositFunds","actor":"bob","data":{"amount":0,"payment_ref":"r"}}' >"$T/refused.jsonl"
[ "$(jq -r --slurpfile envelope "$T/schema/envelope.json" --slurpfile schemas "$T/schemas.json" \
    "$check" "$T/refused.jsonl" | wc -l)" = 3 ] || fail "the schemas accept what the decoder refuses"
echo "docs generated: commands.md and $n schemas match the tables; $checked decoded commands satisfy their schemas"
