#!/usr/bin/env bash
# Crash loop: while a few thousand commands flow through a real broker (one
# partition, clock = command), marketd is killed with SIGKILL at random moments
# at least CRASH_KILLS (default 100) times and restarted each time; one kill in
# five lands during start-up or recovery (before the partition is assigned),
# the rest while batches are being decided and published. The map starts at
# 1 MiB (store.map_mib), so it grows several times during the run, by the
# daemon and by `marketctl rebuild`, which runs in a loop beside the daemon
# together with `marketctl verify` (another process growing the map: the
# daemon adopts the new size between transactions). At the end:
#   - every command has exactly one decision in the store,
#   - the results equal those of an uninterrupted offline run of the same input,
#   - the chain head equals the offline run's and `marketctl verify` passes,
#   - the duplicates on the results topic (at-least-once publication) are counted,
#   - no marketctl beside the daemon died of a signal or failed,
#   - kills landed between the log's commit and the projections' commit (the
#     projector is slowed by MARKETD_TEST_PROJECTOR_DELAY_MS, default 20 ms,
#     to widen that window): the restarts that caught the projections up are
#     counted from the log ("projections caught up at start"), at least
#     CRASH_PROJ_HITS (default 3).
# Bounded: the loop stops killing after CRASH_SECONDS (default 240) even if
# fewer kills were reached, and then fails.
source "$(dirname "$0")/lib.sh"

kills=${CRASH_KILLS:-100}
budget=${CRASH_SECONDS:-240}
n=${CRASH_COMMANDS:-3000}
RANDOM=${CRASH_SEED:-$$}
seed=$RANDOM
RANDOM=$seed
t0=$(date +%s)

# Timers due inside the killed batches: a policy, then deliveries 8 minutes apart for
# 80 hours, so that auto-confirmations (1 day) and settlements (1 more day) fire between
# the later lines, wherever a kill lands.
timer_tail() {
    local k t
    printf '{"command_id":"t-policy","type":"SetPolicy","actor":"operator","issued_at":"2026-11-26T13:00:00Z","data":{"after_sales_days":1,"auto_confirm_days":1,"defense_days":1,"settlement_hold_days":1,"appeal_days":1}}\n'
    for ((k = 0; k < $1; k++)); do
        t=$((1795698000 + 480 * (k + 1)))
        printf '{"command_id":"t-%d","type":"DeliverOrder","actor":"carol","issued_at":"%s","data":{"order_id":"wo-%d"}}\n' \
            "$k" "$(date -u -d "@$t" +%Y-%m-%dT%H:%M:%SZ)" $((4 * k + 1))
    done
}
gen_workload "$n" >"$work/in.jsonl"
timer_tail "${CRASH_TIMER_LINES:-600}" >>"$work/in.jsonl"
total_cmds=$(grep -c . "$work/in.jsonl")
offline "$work/in.jsonl" "$work/off" "$work/off.results"

export MARKETD_TEST_PROJECTOR_DELAY_MS=${MARKETD_TEST_PROJECTOR_DELAY_MS:-20}
start_k() {
    marketd_start k "$work/k" --set topic.partitions=1 --clock command --batch-max 50 \
        --set store.map_mib=1
}
start_k
marketd_wait_running k 60

# marketctl rebuild / verify beside the daemon, until told to stop; each run's
# exit status is kept (>= 128: killed by a signal).
beside() {
    local i=0 rc
    while [ ! -e "$work/beside.stop" ]; do
        for cmd in rebuild verify; do
            rc=0
            "$build/marketctl" --data-dir "$work/k" "$cmd" >/dev/null 2>"$work/beside.err" || rc=$?
            echo "$cmd $rc" >>"$work/beside.rc"
            ((rc == 0)) || { echo "$cmd exit $rc:"; grep -v ' events in ' "$work/beside.err"; } >>"$work/beside.fail"
        done
        i=$((i + 1))
        sleep 0.2
    done
}
beside &
pids+=("$!")
beside_pid=$!
# Paced so that commands keep arriving for about as long as the kills last
# (~0.8 s per kill and restart), so most kills hit a daemon at work.
rate=$((total_cmds * 10 / (kills * 8) + 1))
load "$work/in.jsonl" --wait --timeout 240 --rate "$rate" --results-out "$work/k.results" \
    >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")

done_kills=0 early=0
while ((done_kills < kills && $(date +%s) - t0 < budget)); do
    if ((done_kills % 5 == 4)); then
        sleep "0.$((RANDOM % 3))$((RANDOM % 10))"      # 0.00-0.29 s after exec
        early=$((early + 1))
    else
        marketd_wait_running k 60
        sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"  # 0.10-0.99 s into the work
    fi
    marketd_stop k KILL
    done_kills=$((done_kills + 1))
    start_k
done
((done_kills >= kills)) || fail "only $done_kills of $kills kills within $budget s"
log "$done_kills SIGKILLs ($early during start-up), $("$build/marketctl" --data-dir "$work/k" stats | jq .events) events so far; letting it finish"
marketd_wait_running k 60
wait "$loader" || fail "not every result arrived: $(tail -2 "$work/load.log")"
touch "$work/beside.stop"
wait "$beside_pid" || true
marketd_stop k
# The map grew from 1 MiB while it ran (by the daemon and by marketctl rebuild).
map_mib=$(( $(stat -c %s "$work/k/data.mdb") >> 20 ))
rebuilds=$(grep -c '^rebuild 0$' "$work/beside.rc" || true)
verifies=$(grep -c '^verify 0$' "$work/beside.rc" || true)
bad=$(awk '$2 != 0' "$work/beside.rc" | wc -l)
[ "$bad" -eq 0 ] || fail "$bad marketctl runs beside the daemon failed: $(head -c 600 "$work/beside.fail")"
((rebuilds > 0 && verifies > 0)) || fail "no marketctl rebuild/verify ran beside the daemon"

"$build/marketctl" --data-dir "$work/k" verify >/dev/null 2>&1 || fail "marketctl verify failed"
[ "$(chain_head "$work/k")" = "$(chain_head "$work/off")" ] ||
    fail "chain head differs from the uninterrupted offline run"
decisions_per_command "$work/k" >"$work/k.dec"
decisions_per_command "$work/off" >"$work/off.dec"
multi=$(awk '$2 != 1' "$work/k.dec" | wc -l)
[ "$multi" -eq 0 ] || fail "$multi commands decided more than once"
diff "$work/off.dec" "$work/k.dec" >/dev/null || fail "decided commands differ from the offline run"
diff <(sort -u "$work/off.results") <(sort -u "$work/k.results") >"$work/res.diff" ||
    fail "results differ from the offline run: $(head -3 "$work/res.diff")"
cat "$work/k.log" >>"$work/k.all.log"
proj_hits=$(grep -c 'msg="projections caught up at start"' "$work/k.all.log" || true)
proj_events=$(grep 'msg="projections caught up at start"' "$work/k.all.log" |
    sed -n 's/.* events=\([0-9]*\).*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
((proj_hits >= ${CRASH_PROJ_HITS:-3})) ||
    fail "only $proj_hits kills landed between the log's commit and the projections'"
timers=$("$build/marketctl" --data-dir "$work/k" events | grep -c '"command_id":"timer:' || true)
[ "$timers" -gt 20 ] || fail "only $timers timer events"
results=$(grep -c . "$work/k.results")
unique=$(sort -u "$work/k.results" | wc -l)
[ "$unique" -eq "$total_cmds" ] || fail "$unique distinct results for $total_cmds commands"
log "crash loop figures: crashes survived $done_kills (SIGKILL, seed $seed), commands $total_cmds," \
    "each decided once; results on the topic $results, duplicates $((results - unique));" \
    "timer events $timers (as offline);" \
    "$proj_hits restarts found the projections behind the log ($proj_events events caught up);" \
    "beside it $rebuilds marketctl rebuild and $verifies verify, none failed;" \
    "map grown from 1 MiB (data file $map_mib MiB); $(($(date +%s) - t0)) s"
echo "crash loop: 1 passed, 0 failed"
