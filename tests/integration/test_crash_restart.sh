#!/usr/bin/env bash
# Exactly-once across restarts: while a workload flows through a real broker,
# marketd is stopped with SIGTERM once and killed with SIGKILL at random moments
# several times. Every command must be decided exactly once: the chain head must
# equal that of an uninterrupted offline run of the same input (one partition,
# clock = command), and the chain must verify.
source "$(dirname "$0")/lib.sh"

kills=${CRASH_KILLS:-6}
gen_workload 3000 >"$work/in.jsonl"
offline "$work/in.jsonl" "$work/off" "$work/off.results"

marketd_start k "$work/k" --set topic.partitions=1 --clock command --batch-max 50
marketd_wait_running k
load "$work/in.jsonl" --wait --timeout 180 --rate 400 --results-out "$work/k.results" \
    >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")

RANDOM=${CRASH_SEED:-42}
for ((i = 1; i <= kills + 1; i++)); do
    sleep "0.$((RANDOM % 9 + 1))"
    if ((i == 1)); then sig=TERM; else sig=KILL; fi
    marketd_stop k $sig
    log "restart $i after SIG$sig ($("$build/marketctl" --data-dir "$work/k" stats | jq .events) events so far)"
    marketd_start k "$work/k" --set topic.partitions=1 --clock command --batch-max 50
    marketd_wait_running k 60
done
wait "$loader" || fail "not every result arrived: $(tail -2 "$work/load.log")"
marketd_stop k

[ "$(chain_head "$work/k")" = "$(chain_head "$work/off")" ] ||
    fail "chain head differs from the uninterrupted offline run"
multi=$(decisions_per_command "$work/k" | awk '$2 != 1' | wc -l)
[ "$multi" -eq 0 ] || fail "$multi commands decided more than once"
total=$(grep -c . "$work/k.results")
unique=$(sort -u "$work/k.results" | wc -l)
diff <(sort -u "$work/off.results") <(sort -u "$work/k.results") >/dev/null ||
    fail "results differ from the offline run"
log "crashes survived: $kills SIGKILL + 1 SIGTERM; results on the topic: $total, duplicates: $((total - unique))"
echo "crash restart: 1 passed, 0 failed"
