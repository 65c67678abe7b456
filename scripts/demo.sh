#!/usr/bin/env bash
# demo.sh - `make run`: marketd on its embedded broker, a demo day of commands,
# and a summary of what happened. Nothing outside a temporary directory is touched.
set -euo pipefail

build=${MARKETD_BUILD:-build}
input=${1:-demo/demo-day.jsonl}
work=$(mktemp -d /tmp/marketd-demo.XXXXXX)
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
    --log-level warn >"$work/marketd.out" 2>"$work/marketd.log" &
pid=$!
for _ in $(seq 100); do
    grep -q '^embedded kafka bootstrap=' "$work/marketd.out" 2>/dev/null && break
    sleep 0.1
done
bootstrap=$(sed -n 's/^embedded kafka bootstrap=//p' "$work/marketd.out")
[ -n "$bootstrap" ] || { echo "marketd did not start:"; cat "$work/marketd.log"; exit 1; }
echo "   broker at $bootstrap"

echo "== publishing $(grep -c . "$input") commands from $input and waiting for every result"
"$build/market-load" --bootstrap "$bootstrap" --input "$input" --wait --timeout 60 \
    --results-out "$work/results.jsonl"

kill -TERM "$pid"
wait "$pid"
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
