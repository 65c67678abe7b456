#!/usr/bin/env bash
# replicas.sh - throughput of 1 daemon and of 3 replicas on this machine
# (docs/replication.md): N commands (default 20000) produced unpaced to a
# one-partition commands topic, timed until every daemon has consumed them all.
#
#   KAFKA_PORT=9092 bash bench/replicas.sh [N]
#
# Uses the integration helpers (tests/integration/lib.sh): its own topics and
# groups, a broker already running on $KAFKA_PORT.
source "$(dirname "$0")/../tests/integration/lib.sh"
N=${1:-20000}
gen_workload "$N" >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")
mkdir -p "$work/pub"
for id in r1 r2 r3; do
    "$build/marketctl" keygen --id "$id" --out "$work/keys" >/dev/null
    cp "$work/keys/$id.pub" "$work/pub/"
done
consumed() { "$build/marketctl" --data-dir "$1" stats 2>/dev/null | jq -r '.offsets[0].next // 0'; }

# run MODE COUNT: starts COUNT daemons, loads, prints commands/s
run() {
    local mode=$1 count=$2 i t0 t1 all
    prefix=bench$$r$RANDOM
    for ((i = 1; i <= count; i++)); do
        marketd_start "$mode$i" "$work/$prefix-$i" --clock command --set topic.partitions=1 \
            --batch-max 500 --set group.id="$prefix.$i" --set topic.heads="$prefix.heads" \
            --set replica.mode="$mode" --set replica.id="r$i" \
            --set replica.key_file="$work/keys/r$i.key" --set replica.peers_keys="$work/pub" \
            --set replica.leader_topic="$prefix.leader" --set replica.leader_group="$prefix.leader"
    done
    for ((i = 1; i <= count; i++)); do marketd_wait_running "$mode$i" 90; done
    t0=$(date +%s%3N)
    load "$work/in.jsonl" --timeout 120 --quiet || fail "load"
    for ((;;)); do
        all=1
        for ((i = 1; i <= count; i++)); do
            [ "$(consumed "$work/$prefix-$i")" = "$total" ] || all=0
        done
        [ $all = 1 ] && break
        sleep 0.05
    done
    t1=$(date +%s%3N)
    for ((i = 1; i <= count; i++)); do marketd_stop "$mode$i"; done
    echo "$mode x$count: $total commands in $((t1 - t0)) ms: $((total * 1000 / (t1 - t0))) commands/s"
}
run single 1
run replicated 3
