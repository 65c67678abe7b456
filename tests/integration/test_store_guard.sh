#!/usr/bin/env bash
# The store guards itself against its neighbours (docs/reliability.md):
#   1. a second marketd on the same data directory refuses to start, naming
#      the first one's pid; marketctl still reads beside the daemon; after a
#      SIGKILL the kernel has released the lock and the daemon starts again;
#      offline marketd (--input) is refused on that directory too;
#   2. two marketd with different data directories in one consumer group: the
#      one that joins second finds the partitions committed further by the
#      other store and fences them (no decision, a log line, the
#      marketd_partitions_fenced metric, /readyz 503); once it leaves, the
#      first decides everything, each command exactly once, in one store.
source "$(dirname "$0")/lib.sh"

gen_workload 600 >"$work/w1.jsonl"
gen_workload 300 | sed -e 's/"w-/"x-/g' -e 's/"wo-/"xo-/g' -e 's/"wp-/"xp-/g' \
    -e 's/"wd-/"xd-/g' >"$work/w2.jsonl"
ids=$(cat "$work/w1.jsonl" "$work/w2.jsonl" | jq -r '.command_id' | sort -u | wc -l)

# ---- 1. one daemon per data directory -------------------------------------------------
printf 'guard-test-token-0001 auditor\n' >"$work/tokens"
chmod 600 "$work/tokens"
# a sends its offsets to Kafka at most once a minute while busy: only its idle
# and revoke commits can make b fence below (offsets.kafka_commit_ms).
hpa=$((20000 + RANDOM % 20000))
marketd_start a "$work/a" --set topic.partitions=3 --set offsets.kafka_commit_ms=60000 \
    --set http.listen=127.0.0.1:$hpa --set http.tokens="$work/tokens"
marketd_wait_running a 60
a_pid=$(marketd_pid a)
[ "$(cat "$work/a/marketd.lock")" = "$a_pid" ] || fail "lock file does not hold the pid $a_pid"
marketd_start twin "$work/a" --set topic.partitions=3
twin=$(marketd_pid twin)
for ((i = 0; i < 100; i++)); do kill -0 "$twin" 2>/dev/null || break; sleep 0.1; done
kill -0 "$twin" 2>/dev/null && fail "a second marketd runs on the same data directory"
rc=0; wait "$twin" || rc=$?
[ "$rc" -ne 0 ] || fail "the second marketd exited 0"
grep -q "in use by another marketd (pid $a_pid" "$work/twin.log" ||
    fail "the refusal does not name pid $a_pid: $(tail -2 "$work/twin.log")"
"$build/marketctl" --data-dir "$work/a" stats >/dev/null || fail "marketctl cannot read beside the daemon"
printf '{}\n' >"$work/one.jsonl"
if "$build/marketd" --input "$work/one.jsonl" --data-dir "$work/a" --results /dev/null 2>"$work/offline.err"; then
    fail "offline marketd wrote into a directory a running daemon holds"
fi
grep -q "in use by another marketd (pid $a_pid" "$work/offline.err" ||
    fail "offline refusal does not name pid $a_pid: $(tail -1 "$work/offline.err")"
log "second daemon on the same directory refused: $(grep -o 'in use by another marketd (pid [0-9]*' "$work/twin.log")"

# Paced: about one command per batch, and a is never idle for 200 ms until the end.
load "$work/w1.jsonl" --rate 300 --wait --timeout 120 --results-out "$work/w1.results" &
lpid=$!
# Mid-load, a partition's first offsets are in Kafka already (not 60 s later):
# until then Kafka holds no offset of this store to fence a previous owner with.
sleep 1.5
mid=$(curl -s "http://127.0.0.1:$hpa/metrics" |
    awk '$1 == "marketd_kafka_offset_commits_total" { print $2 }')
wait "$lpid" || fail "not every result of the first workload arrived"
[ "${mid:-0}" -ge 1 ] || fail "no offset commit to Kafka while the first batches were decided"
m=$(curl -s "http://127.0.0.1:$hpa/metrics") || fail "a's /metrics did not answer"
batches=$(awk '$1 == "marketd_batch_size_count" { print $2 }' <<<"$m")
kcommits=$(awk '$1 == "marketd_kafka_offset_commits_total" { print $2 }' <<<"$m")
# At most: one per partition first taken, one when idle, one per stall of 200 ms.
[ "${batches:-0}" -ge 30 ] || fail "the paced workload took ${batches:-?} batches (want >= 30)"
[ "${kcommits:-99}" -le 8 ] ||
    fail "${kcommits:-?} offset commits to Kafka for $batches batches with offsets.kafka_commit_ms=60000"
log "a: $batches batches, $kcommits offset commits to Kafka ($mid during the load)"

# ---- 2. fencing between stores of one group -----------------------------------------------
hp=$((20000 + RANDOM % 20000))
[ "$hp" != "$hpa" ] || hp=$((hp + 1))
marketd_start b "$work/b" --set topic.partitions=3 \
    --set http.listen=127.0.0.1:$hp --set http.tokens="$work/tokens"
for ((i = 0; i < 600; i++)); do
    grep -q 'partition fenced' "$work/b.log" 2>/dev/null && break
    kill -0 "$(marketd_pid b)" 2>/dev/null || fail "marketd b exited"
    sleep 0.1
done
grep -q 'partition fenced' "$work/b.log" || fail "the second store fenced nothing"
fenced=$(grep -c 'partition fenced' "$work/b.log")
ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$hp/readyz") || ready=000
[ "$ready" = 503 ] || fail "/readyz of the fenced daemon answered $ready"
metric=$(curl -s "http://127.0.0.1:$hp/metrics" | awk '$1 == "marketd_partitions_fenced" { print $2 }')
[ "${metric:-0}" -ge 1 ] || fail "marketd_partitions_fenced is '${metric}'"
# Commands arrive while b holds its fenced partitions: nobody decides those
# until b leaves the group, then a takes them back.
load "$work/w2.jsonl" >"$work/w2.load" 2>&1 || fail "producing the second workload failed"
sleep 3
marketd_stop b
load "$work/w2.jsonl" --wait --timeout 120 --results-out "$work/w2.results" >/dev/null 2>&1 ||
    fail "not every result of the second workload arrived"
b_decided=$(decisions_per_command "$work/b" | wc -l)
[ "$b_decided" -eq 0 ] || fail "the fenced store decided $b_decided commands"

# ---- the lock goes with a SIGKILL; every command decided once, in a ------------------------
marketd_stop a KILL
marketd_start a "$work/a" --set topic.partitions=3
marketd_wait_running a 60
marketd_stop a
decided=$(decisions_per_command "$work/a" | wc -l)
multi=$(decisions_per_command "$work/a" | awk '$2 != 1' | wc -l)
[ "$multi" -eq 0 ] || fail "$multi commands decided more than once"
[ "$decided" -eq "$ids" ] || fail "$decided of $ids commands decided"
"$build/marketctl" --data-dir "$work/a" verify >/dev/null || fail "chain does not verify"
log "store guard figures: twin refused; $fenced partitions fenced by the second store" \
    "(/readyz 503, metric $metric), it decided 0; $decided commands each decided once in the first"
echo "store guard: 1 passed, 0 failed"
