#!/usr/bin/env bash
# marketctl's options (issue 19, item 4): each subcommand accepts exactly its
# own options (anything else: exit 2 naming the option), dates are calendar
# dates (the bad value named), --limit 0 is refused as the HTTP API refuses
# it, every subcommand has --help (stdout, exit 0), and the options that are
# accepted do what they say (events --stream, sales --from, orders --day).
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-ctl-usage-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
n=0
ctl() { "$ROOT/$B/marketctl" --data-dir "$T/d" "$@"; }
# refused EXPECTED-STDERR-SUBSTRING ARGS...: exit 2, stderr names it, nothing on stdout.
refused() {
    local want=$1 rc=0
    shift
    ctl "$@" >"$T/out" 2>"$T/err" || rc=$?
    [ "$rc" = 2 ] || fail "marketctl $*: exit $rc, want 2"
    grep -qF -- "$want" "$T/err" || fail "marketctl $*: stderr does not name '$want': $(head -2 "$T/err")"
    [ ! -s "$T/out" ] || fail "marketctl $*: printed rows"
    n=$((n + 1))
}

"$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/d" --clock command \
    --results /dev/null 2>/dev/null

# options that did nothing are refused, naming the option
refused "unknown option --from" orders --from 2026-12-01
refused "unknown option --to" orders --to 2026-12-01
refused "unknown option --follow" export --follow
refused "--format 'xml' is not one of json, csv, table" orders --format xml
refused "--since 'yesterday' is neither milliseconds" events --since yesterday
refused "unknown option --day" events --day 2026-11-26
refused "unknown option --buyer" sales --buyer bob
refused "unknown option --limit" verify --limit 3
refused "unknown option --product" orders --product p-debian
refused "unexpected argument 'x'" stats x
refused "unknown subcommand 'ordres'" ordres
# values: calendar dates, seqs, limits, times
refused "--day '2026-13-45' is not a calendar date" orders --day 2026-13-45
refused "--from '2026-02-30' is not a calendar date" sales --from 2026-02-30
refused "--to '2026-11-31'" sales --to 2026-11-31
refused "--limit '0' must be an integer in 1..1000000" orders --limit 0
refused "--limit '-1'" events --limit -1
refused "--from '0' must be an integer >= 1" events --from 0
refused "--as-of 'yesterday'" get account bob --as-of yesterday
refused "--until needs a value" replay --until
refused "needs order|account" get order
rc=0; "$ROOT/$B/marketctl" stats 2>"$T/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--data-dir DIR is required" "$T/err" || fail "no --data-dir: exit $rc"
# --help: stdout, exit 0, the subcommand's own options
for s in events export verify stats get orders audit sales rebuild replay outbox; do
    "$ROOT/$B/marketctl" "$s" --help >"$T/help" 2>"$T/err" || fail "$s --help: exit $?"
    grep -q "^usage: marketctl --data-dir DIR $s" "$T/help" || fail "$s --help: $(head -1 "$T/help")"
    [ ! -s "$T/err" ] || fail "$s --help wrote to stderr"
    n=$((n + 1))
done
"$ROOT/$B/marketctl" orders --help | grep -q -- "--day DAY" || fail "orders --help lacks --day"
"$ROOT/$B/marketctl" orders --help | grep -q -- "--from" && fail "orders --help lists --from"
"$ROOT/$B/marketctl" --help | grep -q "^  outbox" || fail "marketctl --help lacks outbox"
# accepted options work
[ "$(ctl events --stream order:o-1002 | jq -r .stream | sort -u)" = order:o-1002 ] || fail "events --stream"
[ "$(ctl events --stream order:o-1002 --from 2 --limit 1 | jq .version)" = 2 ] || fail "events --stream --from"
[ "$(ctl orders --day 2026-11-26 --limit 2 2>/dev/null | wc -l)" = 2 ] || fail "orders --day --limit"
[ "$(ctl sales --from=2026-11-26 --to=2026-11-26 | jq -r .day | sort -u)" = 2026-11-26 ] || fail "sales --from=..."
[ "$(ctl get account bob --as-of 2026-11-27T00:00:00Z | jq -r .member_id)" = bob ] || fail "get --as-of"
n=$((n + 5))
echo "ctl usage: $n checks passed"
