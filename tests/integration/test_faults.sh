#!/usr/bin/env bash
# Resource faults against a real broker; after each one nothing is lost,
# nothing is decided twice (the chain head equals an uninterrupted offline
# run's, the results too) and `marketctl verify` passes.
#   A. The disk fills up: the data directory is a small tmpfs (mount, as root;
#      skipped with a notice when mounting is not allowed). The daemon must
#      log the store error, keep running without committing, leave the store
#      verifiable, and resume by itself when the filesystem grows again.
#   B. LMDB's reader table is exhausted (256 slots) by another process
#      (tests/tools/hold_readers.c): the writer keeps deciding, marketctl
#      fails with a clear error, a daemon restarted meanwhile waits for its
#      stored offsets instead of guessing, and when the holder is SIGKILLed
#      (leaving 256 stale slots) everything resumes.
#   C. The broker is unreachable for BROKER_DOWN_SECONDS (default 30) while
#      the producer keeps buffering: nothing is lost.
source "$(dirname "$0")/lib.sh"

down_s=${BROKER_DOWN_SECONDS:-30}
hold=$build/tests/tools/hold_readers
[ -x "$hold" ] || fail "$hold missing (make test-tools)"
disk=$work/disk
trap 'mountpoint -q "$disk" && umount -l "$disk"; cleanup' EXIT

# check_same NAME INPUT: the run of daemon NAME equals the offline run of INPUT.
check_same() {
    local name=$1 in=$2
    offline "$in" "$work/$name.off" "$work/$name.off.results"
    "$build/marketctl" --data-dir "$work/$name.data" verify >/dev/null 2>&1 || fail "$name: verify failed"
    [ "$(chain_head "$work/$name.data")" = "$(chain_head "$work/$name.off")" ] ||
        fail "$name: chain head differs from the offline run"
    diff <(sort -u "$work/$name.off.results") <(sort -u "$work/$name.results") >/dev/null ||
        fail "$name: results differ from the offline run"
}
wait_log() { # wait_log NAME PATTERN SECONDS
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$2" "$work/$1.log" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
start() { marketd_start "$1" "$work/$1.data" --set topic.partitions=1 --clock command "${@:2}"; }
base=$prefix    # each fault gets its own topics and group: prefix=${base}x
figures=()

# ---- A. disk full ----------------------------------------------------------------------
mkdir -p "$disk"
prefix=${base}a
if mount -t tmpfs -o size=2m tmpfs "$disk" 2>/dev/null; then
    gen_workload 3000 >"$work/a.jsonl"
    mkdir -p "$disk/a" && ln -s "$disk/a" "$work/a.data"
    start a
    marketd_wait_running a
    load "$work/a.jsonl" --wait --timeout 240 --rate 1000 --results-out "$work/a.results" >"$work/a.load" 2>&1 &
    loader=$!
    pids+=("$loader")
    wait_log a 'batch not committed' 60 || fail "A: the disk never filled up (no store error logged)"
    t_full=$(date +%s)
    line=$(grep -m1 'batch not committed' "$work/a.log")
    log "A: disk full: $line"
    [[ $line == *"disk full"* ]] || fail "A: the store error does not say the disk is full: $line"
    sleep 3
    kill -0 "$(marketd_pid a)" || fail "A: marketd exited on a full disk"
    ev1=$("$build/marketctl" --data-dir "$work/a.data" stats 2>/dev/null | jq .events)
    "$build/marketctl" --data-dir "$work/a.data" verify >/dev/null 2>&1 || fail "A: store does not verify while the disk is full"
    sleep 2
    ev2=$("$build/marketctl" --data-dir "$work/a.data" stats 2>/dev/null | jq .events)
    [ "$ev1" = "$ev2" ] || fail "A: events grew from $ev1 to $ev2 on a full disk"
    mount -o remount,size=64m "$disk" || fail "A: cannot grow the tmpfs"
    log "A: space is back after $(($(date +%s) - t_full)) s ($ev1 events committed while full)"
    wait "$loader" || fail "A: not every result arrived after the disk grew: $(tail -2 "$work/a.load")"
    retries=$(grep -c 'batch not committed' "$work/a.log")
    marketd_stop a
    check_same a "$work/a.jsonl"
    figures+=("disk full: $retries failed commits retried, resumed, nothing lost")
    umount "$disk"
else
    log "A: SKIPPED: cannot mount a tmpfs here (not root?)"
    figures+=("disk full: skipped (no mount permission)")
fi

# ---- B. reader slots exhausted --------------------------------------------------------------
prefix=${base}b
gen_workload 1500 >"$work/b.jsonl"
start b
marketd_wait_running b
load "$work/b.jsonl" --wait --timeout 240 --rate 150 --results-out "$work/b.results" >"$work/b.load" 2>&1 &
loader=$!
pids+=("$loader")
sleep 2
off0=$("$build/marketctl" --data-dir "$work/b.data" stats | jq "[.offsets[] | select(.topic == \"$prefix.commands\") | .next][0] // 0")
"$hold" "$work/b.data" "$prefix.commands" 5 >"$work/hold.out" 2>&1 &
holder=$!
pids+=("$holder")
for ((i = 0; i < 100; i++)); do grep -q holding "$work/hold.out" && break; sleep 0.1; done
log "B: $(head -1 "$work/hold.out")"
# The daemon's readers come and go: a slot one of them frees is the holder's
# again within a millisecond, but marketctl may just win it: a few tries.
full=0
for ((i = 0; i < 10 && full == 0; i++)); do
    "$build/marketctl" --data-dir "$work/b.data" stats >/dev/null 2>"$work/ctl.err" || full=1
    [ "$full" = 1 ] || sleep 0.05
done
[ "$full" = 1 ] || fail "B: marketctl read 10 times with every reader slot taken"
grep -q 'MDB_READERS_FULL' "$work/ctl.err" || fail "B: marketctl error is not clear: $(cat "$work/ctl.err")"
log "B: marketctl says: $(head -1 "$work/ctl.err")"
for ((i = 0; i < 100; i++)); do grep -q 'after the hold' "$work/hold.out" && break; sleep 0.1; done
off1=$(sed -n 's/.*offset=\(-*[0-9]*\).*/\1/p' "$work/hold.out")
((off1 > off0)) || fail "B: the writer did not go on while the slots were taken (offset $off0 -> $off1)"
log "B: the writer went on: stored offset $off0 -> $off1 while every slot was taken"
# SIGKILL leaves 256 stale slots while the daemon keeps the environment open:
# the store must clear them by itself, or the publisher never reads again.
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
log "B: holder SIGKILLed with every slot taken; its 256 slots are stale now"
wait "$loader" || fail "B: not every result arrived after the readers went away: $(tail -2 "$work/b.load")"
# A restart while a live process holds every slot: the daemon must either wait
# for its stored offsets or stop with a clear error, never guess an offset.
"$hold" "$work/b.data" "$prefix.commands" 1 >"$work/hold2.out" 2>&1 &
holder=$!
pids+=("$holder")
for ((i = 0; i < 100; i++)); do grep -q holding "$work/hold2.out" && break; sleep 0.1; done
marketd_stop b
start b
sleep 3
if kill -0 "$(marketd_pid b)" 2>/dev/null; then
    grep -q 'cannot read stored offsets, will retry' "$work/b.log" &&
        restart="waited for its stored offsets" || restart="started without needing a slot"
else
    grep -q 'MDB_READERS_FULL' "$work/b.log" || fail "B: marketd exited without a clear error: $(tail -2 "$work/b.log")"
    restart="stopped with a clear MDB_READERS_FULL error"
fi
log "B: restarted with every slot taken: $restart"
kill -KILL "$holder"
wait "$holder" 2>/dev/null || true
kill -0 "$(marketd_pid b)" 2>/dev/null || start b
marketd_wait_running b 60
marketd_stop b
"$build/marketctl" --data-dir "$work/b.data" stats >/dev/null || fail "B: marketctl still cannot read"
check_same b "$work/b.jsonl"
! grep -q '"status":"duplicate"' "$work/b.results" || fail "B: commands were decided again after the restart"
figures+=("reader slots: writer advanced $((off1 - off0)) offsets with 256 slots taken; 256 stale slots cleared; restart: $restart")

# ---- C. broker unreachable -----------------------------------------------------------------
prefix=${base}c
gen_workload 1500 >"$work/c.jsonl"
start c
marketd_wait_running c
load "$work/c.jsonl" --wait --timeout $((down_s + 180)) --rate 150 --results-out "$work/c.results" \
    >"$work/c.load" 2>&1 &
loader=$!
pids+=("$loader")
sleep 3
KAFKA_PORT=$port bash scripts/kafka.sh stop >/dev/null
log "C: broker stopped for $down_s s"
sleep "$down_s"
kill -0 "$(marketd_pid c)" || fail "C: marketd exited while the broker was down"
kill -0 "$loader" || fail "C: the producer gave up while the broker was down: $(tail -2 "$work/c.load")"
KAFKA_PORT=$port bash scripts/kafka.sh start >/dev/null
log "C: broker back"
wait "$loader" || fail "C: not every result arrived after the outage: $(tail -2 "$work/c.load")"
marketd_stop c
check_same c "$work/c.jsonl"
total=$(grep -c . "$work/c.results")
figures+=("broker down ${down_s} s: $total results, $((total - $(sort -u "$work/c.results" | wc -l))) duplicates")

for f in "${figures[@]}"; do log "faults figures: $f"; done
echo "faults: 1 passed, 0 failed"
