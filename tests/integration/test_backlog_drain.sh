#!/usr/bin/env bash
# A backlog waiting on the commands topic before the daemon starts (issue 17,
# eighth pass). The consumer's prefetch is made smaller than one fetch
# (kafka.queued.min.messages 100; 64 KiB fetches of ~300 commands, the
# producer's record batches kept at 100 commands so that a fetch can stop
# there), so librdkafka stops fetching after every fetch; each time the
# consumer takes the queue below its bound, the fetch waker (md_fetch_waker.h)
# asks the partition's leader for its offsets, which wakes the fetcher
# (librdkafka 2.0 would wait up to a second otherwise).
#   a. the drain woke the fetcher, and went on without the second-long
#      pauses (at most two gaps of 0.7 s between batches, for this machine's
#      own stalls; without the waker the drain is a burst a second, with a
#      gap per fetch: dozens);
#      every command is decided exactly once, the chain verifies;
#   b. with kafka.queued.min.messages set above the backlog (the configuration
#      wins over the defaults), the fetcher never stops and nothing is woken;
#   c. the broker frozen (SIGSTOP) mid-drain, 20 commands a batch: the queue
#      runs below its bound, a wake request goes to the frozen broker and
#      waits past its timeout (librdkafka 2.0), yet the daemon stops cleanly
#      (exit 0) within a minute, having left the waker (when a wake was in
#      flight) or the consumer (its offset commit waits for the broker) to end
#      with the process (its log says which); the broker serves again after the
#      thaw;
#   d. the same with no wake ever asked for (a prefetch above the backlog): the
#      consumer, whose group was not left and whose offset commit waits for the
#      frozen broker, is left to end with the process (destroying it waited up
#      to socket.timeout.ms, 60 s: a stop in CI took longer than a minute).
source "$(dirname "$0")/lib.sh"

n=0; ok() { n=$((n + 1)); log "ok - $*"; }
consumed() { "$build/marketctl" --data-dir "$1" stats 2>/dev/null | jq -r '.offsets[0].next // 0'; }
wait_consumed() { # DATA_DIR N
    local i
    for ((i = 0; i < 1800; i++)); do
        [ "$(consumed "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    fail "consumed $(consumed "$1"), not $2"
}
# check_decided NAME: every command of the backlog decided once, the chain verifies.
check_decided() {
    local d=$work/$1 decided multi
    "$build/marketctl" --data-dir "$d" verify >/dev/null || fail "$1: chain does not verify"
    decisions_per_command "$d" >"$work/$1.decided"
    decided=$(grep -c '^w' "$work/$1.decided" || true)
    multi=$(awk '$2 != 1' "$work/$1.decided" | wc -l)
    [ "$multi" -eq 0 ] || fail "$1: $multi commands decided more than once"
    [ "$decided" -eq "$ids" ] || fail "$1: $decided of $ids commands decided"
    ok "$1: $ids commands decided once each, the chain verifies"
}
wakeups() { sed -n 's/.*msg="fetch wakeups" wakeups=\([0-9]*\).*/\1/p' "$work/$1.log" | tail -1; }
# long_gaps NAME: gaps of more than 0.7 s between the daemon's committed batches.
long_gaps() {
    { grep 'msg="batch committed"' "$work/$1.log" || true; } | { grep -v 'commands=0' || true; } |
        sed -n 's/^ts=[0-9-]*T\([0-9]*\):\([0-9]*\):\([0-9.]*\)Z.*/\1 \2 \3/p' |
        awk '{ t = $1 * 3600 + $2 * 60 + $3; if (NR > 1 && t - p > 0.7) g++; p = t } END { print g + 0 }'
}

gen_workload 14000 >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")
ids=$(jq -r 'select(.command_id != null) | .command_id' "$work/in.jsonl" | sort -u | wc -l)
load "$work/in.jsonl" --create-topics 1 --timeout 120 -X batch.num.messages=100 \
    >"$work/load.log" 2>&1 ||
    fail "load: $(tail -2 "$work/load.log")"
log "$total commands wait on the topic"
small=(--set topic.partitions=1 --batch-max 200 --set kafka.max.partition.fetch.bytes=65536
    --set kafka.queued.min.messages=100)

# ---- a. a prefetch smaller than a fetch: the waker wakes the fetcher ------------------
marketd_start a "$work/a" "${small[@]}" --set log.level=debug
marketd_wait_running a 60
wait_consumed "$work/a" "$total"
marketd_stop a
w=$(wakeups a)
[ -n "$w" ] || fail "no 'fetch wakeups' line in the log"
[ "$w" -ge 1 ] || fail "the fetcher was never woken during a drain of $total commands"
g=$(long_gaps a)
[ "$g" -le 2 ] || fail "$g pauses of more than 0.7 s between batches (woken $w times)"
ok "a: the drain woke the fetcher $w times, $g pauses over 0.7 s"
check_decided a

# ---- b. the configuration's prefetch wins: the queue never fills, nothing to wake -------
marketd_start b "$work/b" --set topic.partitions=1 --batch-max 200 \
    --set group.id="$prefix.group-b" --set kafka.queued.min.messages=1000000 \
    --set kafka.queued.max.messages.kbytes=1048576
marketd_wait_running b 60
wait_consumed "$work/b" "$total"
marketd_stop b
w=$(wakeups b)
[ "$w" = 0 ] || fail "woken $w times with a prefetch larger than the backlog"
ok "b: kafka.queued.min.messages from the configuration is used: no wakeups"
check_decided b

# ---- c, d. the broker frozen mid-drain: the daemon still stops -------------------------
bpid=$(cat "${KAFKA_DIR:-/tmp/marketd-kafka-$port}/kafka.pid")
kill -0 "$bpid" || fail "no broker pid"
thaw() { kill -CONT "$bpid" 2>/dev/null || true; }
trap 'thaw; cleanup' EXIT
# frozen_stop NAME ARGS...: a daemon drains 20 commands a batch (seconds: the
# queue runs dry, and a wake is asked for unless ARGS forbid it), the broker is
# frozen mid-drain, then SIGTERM; sets $took and $left (who was left to end
# with the process: a wake request in flight, or the consumer, whose group was
# not left and whose offset commit waits for the broker; destroying either
# waits up to socket.timeout.ms, 60 s).
frozen_stop() {
    local name=$1 st alive
    shift
    marketd_start "$name" "$work/$name" --set topic.partitions=1 --batch-max 20 \
        --set kafka.max.partition.fetch.bytes=65536 --set group.id="$prefix.group-$name" "$@"
    marketd_wait_running "$name" 60
    for ((i = 0; i < 600; i++)); do
        [ "$(consumed "$work/$name")" -ge 500 ] && break
        sleep 0.05
    done
    [ "$(consumed "$work/$name")" -lt "$total" ] || fail "$name: drained before the freeze"
    kill -STOP "$bpid"
    sleep 1
    local start=$SECONDS
    kill -TERM "$(marketd_pid "$name")"
    for ((i = 0; i < 600; i++)); do
        kill -0 "$(marketd_pid "$name")" 2>/dev/null || break
        sleep 0.1
    done
    took=$((SECONDS - start))
    alive=0; kill -0 "$(marketd_pid "$name")" 2>/dev/null && alive=1
    thaw
    [ "$alive" = 0 ] || fail "$name: marketd did not stop within 60 s of SIGTERM with the broker frozen"
    st=0; wait "$(marketd_pid "$name")" || st=$?
    [ "$st" = 0 ] || fail "$name: marketd exited with $st"
    grep -q 'msg="marketd stopped cleanly"' "$work/$name.log" || fail "$name: no clean stop"
    if grep -q 'msg="fetch waker still waits for the broker' "$work/$name.log"; then
        left="the waker"
    elif grep -q 'msg="consumer not destroyed: the group was not left' "$work/$name.log"; then
        left="the consumer"
    else
        fail "$name: neither the waker nor the consumer was left to end (not exercised)"
    fi
    # the broker serves again before the next part: one message produced and acknowledged
    echo '{"ping":1}' >"$work/ping.jsonl"
    "$build/market-load" --bootstrap "$bootstrap" --topic "$prefix.ping" --input "$work/ping.jsonl" \
        --timeout 120 --quiet || fail "$name: the broker does not serve after the thaw"
}
# c: wakes asked for (a prefetch of 100): the one in flight, if any, is left
frozen_stop c --set kafka.queued.min.messages=100
ok "c: stopped cleanly in ${took} s with the broker frozen, $left left to end; the broker serves again"
# d: no wake ever (a prefetch above the backlog): the consumer itself is left
frozen_stop d --set kafka.queued.min.messages=1000000
[ "$left" = "the consumer" ] || fail "d: $left left to end, want the consumer"
ok "d: stopped cleanly in ${took} s with the broker frozen, no wake asked for, $left left to end"

echo "backlog_drain: $n passed, 0 failed"
