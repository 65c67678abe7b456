#!/usr/bin/env bash
# demo.sh - `make run`: marketd on its embedded broker, a demo day of commands,
# and a summary of what happened. Nothing outside a temporary directory is touched.
#
# The clock is the commands' own (clock = command: each event is recorded at
# its command's issued_at), so the demo day lands on 2026-11-26 whenever it
# runs and the examples of README.md and docs/api.md are true of it
# (tests/unit/docs_examples.sh). Commands are published once marketd has its
# partition, so latencies do not include the group join.
#
# For tests/unit/docs_examples.sh: MARKETD_DEMO_KEEP=DIR works in DIR;
# MARKETD_DEMO_HTTP=HOST:PORT and MARKETD_DEMO_TOKENS=FILE serve the read API,
# and after the results the demo writes DIR/serving and waits until marketd
# (pid in DIR/marketd.pid) is stopped, then prints its summary.
set -euo pipefail

build=${MARKETD_BUILD:-build}
input=${1:-demo/demo-day.jsonl}
if [ -n "${MARKETD_DEMO_KEEP:-}" ]; then
    work=$MARKETD_DEMO_KEEP
    mkdir -p "$work"
else
    work=$(mktemp -d /tmp/marketd-demo.XXXXXX)
fi
http=()
if [ -n "${MARKETD_DEMO_HTTP:-}" ]; then
    http=(--set "http.listen=$MARKETD_DEMO_HTTP" --set "http.tokens=${MARKETD_DEMO_TOKENS:?}")
fi
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" && wait "$pid" || true
    fi
}
trap cleanup EXIT

echo "== starting marketd --embedded-kafka (data in $work/data)"
# One partition: the demo day is one story whose commands depend on each other
# across aggregates (a deposit before a payment), so it must be read in order.
"$build/marketd" --embedded-kafka --data-dir "$work/data" --set topic.partitions=1 \
    --clock command --log-level info "${http[@]}" >"$work/marketd.out" 2>"$work/marketd.log" &
pid=$!
echo "$pid" >"$work/marketd.pid"
for _ in $(seq 300); do
    grep -q 'msg="partition assigned"' "$work/marketd.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
bootstrap=$(sed -n 's/^embedded kafka bootstrap=//p' "$work/marketd.out")
grep -q 'msg="partition assigned"' "$work/marketd.log" ||
    { echo "marketd did not start:"; cat "$work/marketd.log"; exit 1; }
echo "   broker at $bootstrap, partition assigned"

echo "== publishing $(grep -c . "$input") commands from $input and waiting for every result"
"$build/market-load" --bootstrap "$bootstrap" --input "$input" --wait --timeout 60 \
    --results-out "$work/results.jsonl"

if [ ${#http[@]} -gt 0 ]; then
    touch "$work/serving"
    wait "$pid" || true # stopped by whoever asked for the API
else
    kill -TERM "$pid"
    wait "$pid"
fi
pid=""

echo
echo "== results by status"
jq -r '.status' "$work/results.jsonl" | sort | uniq -c | sort -rn
echo
echo "== refusals by code (clause)"
jq -r 'select(.status == "rejected") | "\(.error.code) (\(.error.clause // "-"))"' \
    "$work/results.jsonl" | sort | uniq -c | sort -rn
echo
echo "== every refusal, explained"
jq -r 'select(.status == "rejected") | "\(.command_id // "null")\t\(.error.code)\t\(.error.message)"' \
    "$work/results.jsonl" | sort | column -t -s $'\t'
echo
echo "== orders by status"
"$build/marketctl" --data-dir "$work/data" orders | jq -r .status | sort | uniq -c
echo
echo "== balances (fen)"
for m in bob carol dave eve; do
    "$build/marketctl" --data-dir "$work/data" get account "$m" |
        jq -r '"\(.member_id)\tbalance \(.balance)\tsettlement held \(.held)\tescrow held \(.escrow_held)\tspent \(.spent)\tearned \(.earned)"'
done | column -t -s $'\t'
echo
echo "== deadlines that fired (timer events: actor system, recorded at their deadline, no result)"
"$build/marketctl" --data-dir "$work/data" events |
    jq -r 'select(.actor == "system") | "\(.seq)\t\(.command_id)\t\(.type)\t\(.data | del(.buyer, .provider) | tostring)"'
echo
echo "== audit trail of dave (muted for trading off the platform, appealed, lifted)"
"$build/marketctl" --data-dir "$work/data" audit --subject dave |
    jq -r '"seq \(.seq)\t\(.action)\t\(.clause // "")\t\(.command_id // "")"' | column -t -s $'\t'
echo
echo "== marketctl verify"
"$build/marketctl" --data-dir "$work/data" verify
echo
echo "data directory kept in $work (remove it when done)"
