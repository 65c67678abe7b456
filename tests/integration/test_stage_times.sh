#!/usr/bin/env bash
# Stage times end to end (docs/performance.md, "Latency"): on topics that
# market-load --create-topics made LogAppendTime, every result carries
# marketd's marketd-stage-us header, so that market-load --latency-out knows
# every stage of every command, in the order the path takes them; the
# results' values are the same bytes as offline mode's (the header is
# transport only), and the chain head too.
source "$(dirname "$0")/lib.sh"

gen_workload 400 >"$work/w.jsonl"
offline "$work/w.jsonl" "$work/off" "$work/off.results"
load /dev/null --create-topics 1 --quiet || fail "market-load --create-topics failed"
marketd_start k "$work/k" --set topic.partitions=1 --clock command
marketd_wait_running k
load "$work/w.jsonl" --wait --timeout 60 --quiet --rate 500 -X linger.ms=0 \
    --results-out "$work/k.results" --latency-out "$work/k.us" ||
    fail "not every result arrived"
marketd_stop k

diff <(sort "$work/off.results") <(sed -E 's/,"partition":[0-9]+,"offset":[0-9]+\}$/}/' \
    "$work/k.results" | sort) >"$work/diff" || fail "results differ from offline: $(head -3 "$work/diff")"
[ "$(chain_head "$work/off")" = "$(chain_head "$work/k")" ] || fail "chain head differs from offline"

# Columns: latency, produce, ack, command appended, fetched, batch, commit,
# publish, result appended, seen (µs; the broker's appends to the ms, so
# they are allowed 1 ms either way).
n=$(grep -c '"command_id":"' "$work/off.results")
[ "$(wc -l <"$work/k.us")" = "$n" ] || fail "$(wc -l <"$work/k.us") latency lines for $n commands with an id"
bad=$(awk 'NF != 10 { print "fields " NF; next }
    { for (i = 1; i <= 10; i++) if ($i <= 0) { print "column " i " unknown: " $0; next } }
    $4 < $2 - 1000 || $5 < $4 || $5 < $2 || $6 < $5 || $7 < $6 || $8 < $7 ||
    $9 < $8 - 1000 || $10 < $9 || $10 < $8 || $3 < $2 { print "out of order: " $0; next }
    { d = ($10 - $2) - $1; if (d < -2000 || d > 2000) print "latency " $1 " but seen - produce " $10 - $2 }' \
    "$work/k.us" | head -3)
[ -z "$bad" ] || fail "stage times: $bad"
bash bench/legs.sh "$work/k.us" >"$work/legs.md" || fail "bench/legs.sh failed"
grep -q '^| batch start → commit |' "$work/legs.md" || fail "no legs: $(cat "$work/legs.md")"
log "ok: $n commands, every stage known and in order; results and chain head as offline"
cat "$work/legs.md"

# The projector's priority (projections.priority, docs/projections.md): with
# the gate on (the default) every result waits for it, so it keeps the
# process's priority; with projections.gate_results = false it runs at
# projections.priority (idle: SCHED_IDLE, policy 5 in /proc), the results
# leave without it, and the projections still catch up.
grep -q 'msg="projector started".* max_events=4096 sync_ms=1000 priority=normal$' "$work/k.log" ||
    fail "gated projector not at the process's priority: $(grep 'projector started' "$work/k.log")"
prefix=${prefix}g # topics and group of its own: another store may not decide these
marketd_start g "$work/g" --set topic.partitions=1 --clock command \
    --set projections.gate_results=false
marketd_wait_running g
grep -q 'msg="projector started".* priority=idle$' "$work/g.log" ||
    fail "ungated projector not idle: $(grep 'projector started' "$work/g.log")"
pid=$(marketd_pid g)
policy=
for t in /proc/"$pid"/task/*; do
    [ "$(cat "$t/comm" 2>/dev/null)" = md-projector ] && policy=$(awk '{print $41}' "$t/stat")
done
[ "$policy" = 5 ] || fail "md-projector's policy is '$policy', not SCHED_IDLE (5)"
[ "$(awk '{print $41}' "/proc/$pid/stat")" = 0 ] || fail "the main thread is not SCHED_OTHER"
gen_workload 60 | sed 's/"command_id":"/"command_id":"g-/' >"$work/g.jsonl"
load "$work/g.jsonl" --wait --timeout 60 --quiet || fail "ungated: not every result arrived"
caught=0
for ((i = 0; i < 200 && caught == 0; i++)); do
    "$build/marketctl" --data-dir "$work/g" stats >"$work/g.stats" 2>/dev/null &&
        jq -e '.projections.seq == .events' "$work/g.stats" >/dev/null && caught=1 || sleep 0.1
done
[ "$caught" = 1 ] || fail "ungated: the projections did not catch up: $(jq -c '[.events, .projections.seq]' "$work/g.stats")"
marketd_stop g
log "ok: gated projector at the process's priority; ungated one idle, results without it, projections caught up"
