#!/usr/bin/env bash
# marketd's command line (issue 19, item 3): offline mode without --data-dir
# is a usage error (exit 2, naming the option) and writes nothing, never the
# configured default /var/lib/marketd; usage errors say what was wrong.
set -euo pipefail
build=${MARKETD_BUILD:-build}
work=$(mktemp -d /tmp/marketd-usage.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

printf '{"command_id":"c-1","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T20:00:00Z","data":{"amount":1,"payment_ref":"r"}}\n' >"$work/in.jsonl"
cd "$work"
rc=0
"$OLDPWD/$build/marketd" --input in.jsonl --clock command >out 2>err || rc=$?
[ "$rc" = 2 ] || fail "offline without --data-dir: exit $rc, want 2"
grep -q -- "needs --data-dir" err || fail "offline without --data-dir: $(head -1 err)"
[ ! -s out ] || fail "offline without --data-dir wrote results"
rc=0
"$OLDPWD/$build/marketd" --input in.jsonl --data-dir d --input-format yaml >out 2>err || rc=$?
[ "$rc" = 2 ] && grep -q "input-format" err || fail "bad --input-format: exit $rc $(head -1 err)"
[ ! -e d ] || fail "a usage error created the data directory"
rc=0
"$OLDPWD/$build/marketd" --input in.jsonl --data-dir d --clock command >out 2>err || rc=$?
[ "$rc" = 0 ] && grep -q '"command_id":"c-1"' out || fail "offline with --data-dir: exit $rc $(cat err)"
echo "marketd usage: ok"
