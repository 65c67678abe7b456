#!/usr/bin/env bash
# A backlog waiting on the commands topic before the daemon starts (issue 17,
# eighth pass). The consumer's prefetch is small (queued.min.messages is a
# batch and a quarter: 1000 at 200 per batch), so librdkafka stops fetching
# again and again during the drain; each time the consumer takes the queue
# below its bound, the fetch waker (md_fetch_waker.h) asks the partition's
# leader for its offsets, which wakes the fetcher (librdkafka 2.0 would wait
# up to a second otherwise).
#   - the daemon woke its fetcher: its log counts the wake requests the broker
#     answered (a 1 MiB fetch brings ~5,000 of these commands, so the queue
#     is taken below its bound at least once per fetch after the first);
#   - every command is decided exactly once, the stored offset reaches the
#     end of the topic, the chain verifies;
#   - with kafka.queued.min.messages set above the backlog (the configuration
#     wins over the defaults), the fetcher never stops, nothing is woken, and
#     the drain decides the same commands once each.
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
wakeups() { sed -n 's/.*msg="fetch waker stopped" wakeups=\([0-9]*\).*/\1/p' "$work/$1.log" | tail -1; }

gen_workload 7000 >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")
ids=$(jq -r 'select(.command_id != null) | .command_id' "$work/in.jsonl" | sort -u | wc -l)
load "$work/in.jsonl" --create-topics 1 --timeout 120 >"$work/load.log" 2>&1 ||
    fail "load: $(tail -2 "$work/load.log")"
log "$total commands wait on the topic"

# ---- the default prefetch: the waker wakes the fetcher ------------------------------
marketd_start a "$work/a" --set topic.partitions=1 --batch-max 200
marketd_wait_running a 60
wait_consumed "$work/a" "$total"
marketd_stop a
w=$(wakeups a)
[ -n "$w" ] || fail "no 'fetch waker stopped' line in the log"
[ "$w" -ge 1 ] || fail "the fetcher was never woken during a drain of $total commands"
ok "the drain woke the fetcher $w times"

check_decided a
# ---- the configuration's prefetch wins: the queue never fills, nothing to wake -------
marketd_start b "$work/b" --set topic.partitions=1 --batch-max 200 \
    --set group.id="$prefix.group-b" --set kafka.queued.min.messages=1000000 \
    --set kafka.queued.max.messages.kbytes=1048576
marketd_wait_running b 60
wait_consumed "$work/b" "$total"
marketd_stop b
w=$(wakeups b)
[ "$w" = 0 ] || fail "woken $w times with a prefetch larger than the backlog"
ok "kafka.queued.min.messages from the configuration is used: no wakeups"
check_decided b

echo "backlog_drain: $n passed, 0 failed"
