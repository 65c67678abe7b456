#!/usr/bin/env bash
# Moved consumed offsets on a real broker (issue 14, item 4). A daemon with
# signed checkpoints decides a workload; its store verifies, and the offsets of
# the checkpoints it signed match its intake records. Then the insider's
# attacks on the stopped daemon's store:
#   - the stored offset moved forward by 3: verify fails at once (the stored
#     offset is not where the last intake record ended); restarted, the daemon
#     never decides those 3 commands, and verify names the unexplained gap;
#   - the same with the tracks covered in the intake records (the last batch
#     record claims the 3 offsets): plain verify passes, verify --checkpoints
#     names the checkpoint whose signed offset differs.
source "$(dirname "$0")/lib.sh"

ctl() { "$build/marketctl" "$@"; }
n=0; ok() { n=$((n + 1)); log "ok - $*"; }
# expect_fail OUT_FILE PATTERN CMD...: CMD must exit 1 with PATTERN on stderr.
expect_fail() {
    local out=$1 pat=$2 st=0
    shift 2
    "$@" >"$out" 2>"$out.err" || st=$?
    [ "$st" = 1 ] || fail "expected exit 1 from $*, got $st: $(cat "$out.err")"
    grep -qF -- "$pat" "$out.err" || fail "expected '$pat' from $*, got: $(cat "$out.err")"
}
topic=$prefix.commands

ctl keygen --id r1 --out "$work/keys" >/dev/null
daemon() {
    marketd_start a "$work/a" --clock log --set topic.partitions=1 --batch-max 50 \
        --set topic.heads="$prefix.heads" --set replica.id=r1 \
        --set replica.key_file="$work/keys/r1.key" \
        --set checkpoint.interval_events=100 --set checkpoint.interval_ms=600000
}
consumed() { ctl --data-dir "$work/a" stats 2>/dev/null | jq -r '.offsets[0].next // 0'; }
wait_consumed() {
    local i
    for ((i = 0; i < 1200; i++)); do
        [ "$(consumed)" = "$1" ] && return 0
        sleep 0.1
    done
    fail "consumed $(consumed), not $1"
}

gen_workload 400 >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")
daemon
marketd_wait_running a 60
load "$work/in.jsonl" --wait --timeout 120 --rate 2000 >"$work/load.log" 2>&1 ||
    fail "load: $(tail -2 "$work/load.log")"
wait_consumed "$total"
marketd_stop a

ctl --data-dir "$work/a" verify >"$work/v0" 2>"$work/v0.err" || fail "verify: $(cat "$work/v0.err")"
jq -e --argjson t "$total" '.intake.batches >= 2 and .intake.messages == $t and
    .intake.observed_gaps == 0 and .intake.checkpoint_marks >= 2' "$work/v0" >/dev/null ||
    fail "intake report: $(jq -c .intake "$work/v0")"
ctl checkpoints --bootstrap "$bootstrap" --topic "$prefix.heads" >"$work/cps.jsonl" ||
    fail "marketctl checkpoints"
ctl --data-dir "$work/a" verify --checkpoints "$work/cps.jsonl" --keys "$work/keys" \
    >"$work/v1" 2>"$work/v1.err" || fail "verify --checkpoints: $(cat "$work/v1.err")"
grep -qE "the offsets of [1-9][0-9]* checkpoints this store signed match its intake records" \
    "$work/v1.err" || fail "checkpoint offsets not compared: $(cat "$work/v1.err")"
ok "$total commands in $(jq .intake.batches "$work/v0") batches: verify and verify --checkpoints pass, $(grep -c . "$work/cps.jsonl") checkpoints' offsets compared"
cp -a "$work/a" "$work/covered"

# The attack: the stored offset moved forward by 3 while the daemon is stopped.
"$build/tests/tools/move_offset" "$work/a" "$topic" 0 3 >/dev/null || fail "move_offset"
expect_fail "$work/v2" "offsets: $topic partition 0: the stored next offset is $((total + 3)), but the last intake record" \
    ctl --data-dir "$work/a" verify
[ "$(jq -r .check "$work/v2")" = offsets ] || fail "verify report: $(cat "$work/v2")"
grep -qF "offsets $total..$((total + 2)) would never be consumed" "$work/v2.err" || fail "$(cat "$work/v2.err")"
ok "a stored offset moved forward by 3 fails verify, naming the partition and offsets"

# Restarted, the daemon begins at the moved offset: 3 commands are never decided.
# (produced first: a stored offset beyond the log's end would be reset by the broker)
gen_workload 30 | tail -n 30 | sed 's/"command_id":"w-/"command_id":"x-/' >"$work/more.jsonl"
load "$work/more.jsonl" --timeout 120 >"$work/load2.log" 2>&1 || fail "load: $(tail -2 "$work/load2.log")"
daemon
marketd_wait_running a 60
wait_consumed $((total + 30))
marketd_stop a
ctl --data-dir "$work/a" events --limit 1000000 2>/dev/null | jq -r '.command_id // empty' >"$work/ids"
for id in x-0 x-1 x-2; do
    ! grep -qx -- "$id" "$work/ids" || fail "$id was decided"
done
grep -qx x-3 "$work/ids" || fail "x-3 not decided"
expect_fail "$work/v3" "offsets: $topic partition 0: batch record" ctl --data-dir "$work/a" verify
grep -qE "began at offset $((total + 3)), but the previous batch \(record [0-9]+, seq [0-9]+\) ended at $total: offsets $total..$((total + 2)) were never consumed" \
    "$work/v3.err" || fail "verify: $(cat "$work/v3.err")"
ok "restarted on the moved offset (x-0..x-2 never decided): verify names the gap $total..$((total + 2))"

# The careful insider also rewrites the last intake record: the records are
# contiguous again and plain verify passes; the signed checkpoint does not.
"$build/tests/tools/move_offset" --cover "$work/covered" "$topic" 0 3 >/dev/null || fail "move_offset --cover"
ctl --data-dir "$work/covered" verify >/dev/null 2>"$work/v4.err" ||
    fail "plain verify should pass the covered store: $(cat "$work/v4.err")"
expect_fail "$work/v5" "signed next $total, but this store's intake there says next $((total + 3))" \
    ctl --data-dir "$work/covered" verify --checkpoints "$work/cps.jsonl" --keys "$work/keys"
grep -qE "offsets: checkpoint [0-9]+ \(replica r1, seq [0-9]+, intake record [0-9]+\): $topic partition 0" \
    "$work/v5.err" || fail "verify --checkpoints: $(cat "$work/v5.err")"
[ "$(jq -r .check "$work/v5")" = offsets ] || fail "verify report: $(cat "$work/v5")"
ok "the move covered in the intake records passes plain verify, fails verify --checkpoints naming the checkpoint"
echo "offsets: $n passed, 0 failed"
