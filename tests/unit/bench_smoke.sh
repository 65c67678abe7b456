#!/usr/bin/env bash
# bench_smoke.sh - the benchmark harness on a few thousand commands: every row
# of `make bench` runs (the broker rows only when something answers on
# 127.0.0.1:$KAFKA_PORT), in seconds. Checks that the table has every row and
# a figure in each, not the figures themselves (CI machines vary).
set -euo pipefail
build=${MARKETD_BUILD:-build}
out=$(mktemp -d /tmp/marketd-bench-smoke.XXXXXX)
trap 'rm -rf "$out"' EXIT
fail() { echo "FAIL: $*" >&2; cat "$out/log" >&2 || true; exit 1; }

BENCH_SMOKE=1 BENCH_OUT="$out" MARKETD_BUILD="$build" bash bench/run.sh >"$out/log" 2>&1 ||
    fail "bench/run.sh exited $?"
t=$out/table.md
[ -s "$t" ] || fail "no table"
for r in "engine, JSON commands" "engine, msgpack commands" "rebuild" "replay" "verify" \
    "end to end" "latency" "peak RssAnon, offline" "store bytes per event"; do
    grep -q "^| $r" "$t" || fail "row '$r' missing"
done
# Rows that ran have a number, a min–max and a limit with a ratio.
awk -F'|' '/^\| (engine|verify|store)/ { if ($3 !~ /[0-9]/ || $6 !~ /[0-9]/) { print; bad=1 } }
           END { exit bad }' "$t" || fail "a row without figures"
# With a broker, the latency rows have their floor beside them (bench/kafka_echo.c).
if grep -q '^| end to end, real broker (' "$t"; then
    awk -F'|' '/^\| latency p99(\.9)? at [0-9]+\/s(, broker alone[^|]*)? \|/ {
                   n++; if ($3 !~ /[0-9]/ || $5 !~ /[0-9]/) bad = 1 }
               END { exit bad || n != 4 }' "$t" || fail "a latency row without its floor"
fi
# The end-to-end row's ceiling: under the CPU table when the broker rows ran,
# and right on the figures of the 03:07 table (docs/performance.md, twelfth pass).
if grep -q '^| end to end, real broker (' "$t"; then
    grep -q '^The ceiling of the end-to-end row' "$t" || fail "no ceiling line under the CPU table"
fi
c=$(bash bench/ceiling.sh 2 2.09 0.34 0.46 1.41 121174)
grep -q '2 × 100,000 commands per 2.89 CPU s' <<<"$c" || fail "ceiling: the sum ($c)"
grep -q '^69204 cmd/s, 0.57 of offline (121174/s)' <<<"$c" || fail "ceiling: the rate ($c)"
grep -q ': 90498 cmd/s, 0.75 of offline' <<<"$c" || fail "ceiling at offline's CPU ($c)"
for z in "2 0 0 0 0 121174" "2 nan nan nan nan nan" "2 2.09 0.34 0.46 1.41 0"; do
    # shellcheck disable=SC2086 # the six figures, split
    bash bench/ceiling.sh $z | grep -q 'too few CPU ticks' || fail "ceiling of '$z'"
done
! bash bench/ceiling.sh 2 1 2>/dev/null || fail "ceiling.sh with two figures did not fail"
# The outbox's JSON fast path writes what jansson writes, on the mix and the demo day.
for f in demo/demo-day.jsonl "$out/mix.jsonl"; do
    [ "$f" = demo/demo-day.jsonl ] || "$build/bench/bench-gen" -n 3000 -s 7 >"$f"
    rm -rf "$out/store"
    "$build/marketd" --input "$f" --data-dir "$out/store" --results /dev/null --clock command \
        --log-level warn --no-sync || fail "marketd on $f"
    "$build/bench/bench-json-check" "$out/store" >"$out/check" || { cat "$out/check"; fail "event JSON differs on $f"; }
done
n=$(grep -c '^| ' "$t")
echo "ok   bench smoke: $((n - 1)) rows"
