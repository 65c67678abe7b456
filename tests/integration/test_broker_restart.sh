#!/usr/bin/env bash
# The broker down when marketd starts, then stopped and restarted mid-run:
# nothing lost, nothing applied twice (the chain head equals an offline run's).
source "$(dirname "$0")/lib.sh"

gen_workload 1200 >"$work/in.jsonl"
offline "$work/in.jsonl" "$work/off" "$work/off.results"

KAFKA_PORT=$port bash scripts/kafka.sh stop
marketd_start k "$work/k" --set topic.partitions=1 --clock command
sleep 3
kill -0 "$(marketd_pid k)" || fail "marketd exited while the broker was down at start"
log "marketd waits for the broker; starting it"
KAFKA_PORT=$port bash scripts/kafka.sh start
marketd_wait_running k 60

load "$work/in.jsonl" --wait --timeout 180 --rate 400 --results-out "$work/k.results" \
    >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")
sleep 1.5
KAFKA_PORT=$port bash scripts/kafka.sh stop
log "broker stopped mid-run; marketd keeps running"
sleep 4
kill -0 "$(marketd_pid k)" || fail "marketd exited while the broker was down"
KAFKA_PORT=$port bash scripts/kafka.sh start
wait "$loader" || fail "not every result arrived after the broker restart: $(tail -2 "$work/load.log")"
marketd_stop k
[ "$(chain_head "$work/k")" = "$(chain_head "$work/off")" ] ||
    fail "chain head differs from the offline run"
diff <(sort -u "$work/off.results") <(sort -u "$work/k.results") >/dev/null ||
    fail "results differ from the offline run"
echo "broker restart: 1 passed, 0 failed"
