#!/usr/bin/env bash
# marketctl backup (no broker): the copy of a demo store verifies with the same
# head and the same derived digests, and marketd continues on it (offline mode
# appends to it as to the original, to the same head); an existing store as the
# target and a missing --out are refused. The copy under load, with a real
# broker, is tests/integration/test_backup.sh.
set -euo pipefail
build=${MARKETD_BUILD:-build}
work=$(mktemp -d /tmp/marketd-backup.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
die() { echo "not ok - $*" >&2; echo "backup: $passed passed, 1 failed"; exit 1; }

head -40 demo/demo-day.jsonl >"$work/first.jsonl"
tail -n +41 demo/demo-day.jsonl >"$work/rest.jsonl"
offline() { "$build/marketd" --input "$1" --data-dir "$2" --clock command \
    --results "$work/r.jsonl" --log-level warn; }
offline "$work/first.jsonl" "$work/s"

"$build/marketctl" --data-dir "$work/s" backup --out "$work/b" >"$work/b.json" || die "backup"
[ "$(jq -r .ok "$work/b.json")" = true ] || die "backup output: $(cat "$work/b.json")"
"$build/marketctl" --data-dir "$work/s" verify >"$work/s.v" 2>/dev/null || die "verify original"
"$build/marketctl" --data-dir "$work/b" verify >"$work/b.v" 2>/dev/null || die "verify backup"
for f in .head .derived.state.sha256 .derived.outcomes.sha256 .projections.orders.sha256; do
    [ "$(jq -r "$f" "$work/s.v")" = "$(jq -r "$f" "$work/b.v")" ] || die "backup's $f differs"
done
[ "$(jq -r .head "$work/b.json")" = "$(jq -r .head "$work/s.v")" ] || die "backup reports another head"
ok "the backup verifies with the original's head and digests ($(jq -r .events "$work/b.json") events)"

offline "$work/rest.jsonl" "$work/s"
offline "$work/rest.jsonl" "$work/b"
[ "$("$build/marketctl" --data-dir "$work/b" verify 2>/dev/null | jq -r .head)" = \
  "$("$build/marketctl" --data-dir "$work/s" verify 2>/dev/null | jq -r .head)" ] ||
    die "marketd on the backup ends at another head"
ok "marketd continues on the backup to the original's head"

if "$build/marketctl" --data-dir "$work/s" backup --out "$work/b" >/dev/null 2>"$work/e"; then
    die "backup over an existing store"; fi
grep -q "holds a store already" "$work/e" || die "no reason given: $(cat "$work/e")"
set +e
"$build/marketctl" --data-dir "$work/s" backup >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || die "backup without --out exits $rc, not 2"
ok "an existing store and a missing --out are refused"
echo "backup: $passed passed, 0 failed"
