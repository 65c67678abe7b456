#!/usr/bin/env bash
# Store format 1 -> 2 (docs/operations.md, "Store format 1 → 2"), as an operator
# meets it: a data directory of format 1 (tests/tools/to_format_1 makes one
# from a fresh store) is refused by read-only marketctl with what to do,
# converted by marketd (offline, /dev/null as input) and by a writing marketctl
# command, each saying so, and afterwards verifies with the same chain head and
# serves a stream's history as before.
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-upgrade-sh-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
n=0; ok() { n=$((n + 1)); echo "ok - $*"; }
ctl() { "$ROOT/$B/marketctl" --data-dir "$T/d" "$@"; }

"$ROOT/$B/marketd" --version | grep -qx 'store format: 2' || fail "marketd --version: not store format 2"
"$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/d" --clock command \
    --results "$T/results.jsonl" 2>/dev/null
head=$(ctl verify 2>/dev/null | jq -r .head)
events=$(ctl verify 2>/dev/null | jq -r .events)
stream=$(jq -r 'select(.status == "accepted") | .events[0].stream' \
    "$T/results.jsonl" | sort | uniq -c | sort -rn | awk 'NR == 1 {print $2}')
ctl events --stream "$stream" >"$T/history.before" 2>/dev/null
ctl events --stream "$stream" --from 3 --limit 2 >"$T/window.before" 2>/dev/null
[ -s "$T/history.before" ] || fail "no history of $stream"

"$ROOT/$B/tests/tools/to_format_1" "$T/d"
rc=0; ctl verify >/dev/null 2>"$T/ro.err" || rc=$?
[ "$rc" -eq 1 ] || fail "read-only verify of a format 1 store exits $rc, want 1"
grep -q "is in format 1 (this version reads format 2): open it once with marketd" "$T/ro.err" ||
    fail "read-only open does not say what to do: $(cat "$T/ro.err")"
ok "format 1: marketctl verify refuses it, saying how to convert it"

"$ROOT/$B/marketd" --input /dev/null --data-dir "$T/d" --clock command --results /dev/null \
    2>"$T/convert.log" || fail "marketd --input /dev/null: $(tail -1 "$T/convert.log")"
grep -q "msg=\"store converted from format 1\" format=2 streams=[1-9][0-9]* events=$events" \
    "$T/convert.log" || fail "marketd does not log the conversion: $(head -3 "$T/convert.log")"
[ "$(ctl verify 2>/dev/null | jq -r .head)" = "$head" ] || fail "another head after marketd's conversion"
ctl events --stream "$stream" >"$T/history.after" 2>/dev/null
ctl events --stream "$stream" --from 3 --limit 2 >"$T/window.after" 2>/dev/null
cmp -s "$T/history.before" "$T/history.after" && cmp -s "$T/window.before" "$T/window.after" &&
    [ "$(wc -l <"$T/window.after")" -eq 2 ] || fail "events of $stream differ after the conversion"
ok "marketd converts it ($events events), logs it; verify: the same head, $stream's history the same"

"$ROOT/$B/tests/tools/to_format_1" "$T/d"
ctl rebuild >/dev/null 2>"$T/rebuild.err" || fail "marketctl rebuild: $(tail -1 "$T/rebuild.err")"
grep -q "marketctl: store converted from format 1 to 2 (stream index of [1-9][0-9]* streams, $events events)" \
    "$T/rebuild.err" || fail "marketctl rebuild does not say it converted: $(cat "$T/rebuild.err")"
[ "$(ctl verify 2>/dev/null | jq -r .head)" = "$head" ] || fail "another head after rebuild's conversion"
rc=0; ctl rebuild >/dev/null 2>"$T/rebuild2.err" || rc=$?
[ "$rc" -eq 0 ] && ! grep -q "converted" "$T/rebuild2.err" || fail "a format 2 store converted again"
ok "marketctl rebuild converts it and says so; verify: the same head; once only"
echo "store upgrade: $n passed, 0 failed"
