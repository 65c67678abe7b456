#!/usr/bin/env bash
# A truncated data.mdb (`truncate -s 32768`): marketctl and marketd stop with
# a message naming the file, its size and the size its meta page needs,
# never with SIGBUS (docs/reliability.md, "The store and its neighbours").
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-trunc-sh-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/d" --clock command \
    --results "$T/results.jsonl" 2>/dev/null
size=$(stat -c %s "$T/d/data.mdb")
[ "$size" -gt 65536 ] || fail "the demo store is only $size bytes"
truncate -s 32768 "$T/d/data.mdb"

check() { # NAME RC: exited (not killed by a signal) non-zero, with the message
    [ "$2" -ne 0 ] || fail "$1 exits 0 on a truncated store"
    [ "$2" -lt 128 ] || fail "$1 killed by signal $(($2 - 128))"
    grep -q "data file '$T/d/data.mdb' is 32768 bytes" "$T/$1.err" ||
        fail "$1 does not say what is wrong: $(tail -1 "$T/$1.err")"
    grep -q "truncated" "$T/$1.err" || fail "$1 does not say truncated"
}
rc=0; "$ROOT/$B/marketctl" --data-dir "$T/d" stats >/dev/null 2>"$T/marketctl.err" || rc=$?
check marketctl "$rc"
rc=0; "$ROOT/$B/marketctl" --data-dir "$T/d" verify >/dev/null 2>"$T/verify.err" || rc=$?
check verify "$rc"
rc=0; "$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/d" --clock command \
    --results "$T/r2.jsonl" >/dev/null 2>"$T/marketd.err" || rc=$?
check marketd "$rc"
echo "store_truncated: 3 passed, 0 failed (store of $size bytes cut to 32768)"
