#!/usr/bin/env bash
# Backup: `marketctl backup --out DIR` taken while marketd is deciding a
# workload from a real broker is a consistent store: it verifies (chain,
# projections, rules' state and outcomes), and a daemon started on it, in a
# new consumer group, continues from its stored offsets and reaches the same
# chain head as the original daemon and an uninterrupted offline run.
source "$(dirname "$0")/lib.sh"

gen_workload 3000 >"$work/in.jsonl"
offline "$work/in.jsonl" "$work/off" "$work/off.results"
total=$(grep -c . "$work/in.jsonl")

marketd_start a "$work/a" --set topic.partitions=1 --clock command --batch-max 50
marketd_wait_running a
load "$work/in.jsonl" --wait --timeout 180 --rate 300 --results-out "$work/a.results" \
    >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")

# Take the backup in the middle of the load (some events stored, not all).
for ((i = 0; i < 600; i++)); do
    n=$("$build/marketctl" --data-dir "$work/a" stats 2>/dev/null | jq -r '.commands_decided // 0')
    ((n >= total / 3)) && break
    sleep 0.1
done
"$build/marketctl" --data-dir "$work/a" backup --out "$work/b" >"$work/backup.json" ||
    fail "backup failed"
kill -0 "$loader" 2>/dev/null || fail "the load finished before the backup: not taken under load"
events=$(jq -r .events "$work/backup.json")
[ "$(jq -r .ok "$work/backup.json")" = true ] && ((events > 0)) || fail "backup: $(cat "$work/backup.json")"
log "backup at $events events: $(cat "$work/backup.json")"

"$build/marketctl" --data-dir "$work/b" verify >"$work/b.verify" 2>"$work/b.verify.log" ||
    fail "the backup does not verify: $(cat "$work/b.verify" "$work/b.verify.log")"
[ "$(jq -r .derived.outcomes.entries "$work/b.verify")" -gt 0 ] || fail "backup: no outcomes checked"
next=$(jq -r '.offsets[0].next' "$work/b.verify")
((next > 0)) || fail "backup holds no consumed offset: $(cat "$work/b.verify")"
log "the backup verifies; it resumes at offset $next"

wait "$loader" || fail "not every result arrived: $(tail -2 "$work/load.log")"
marketd_stop a
head_a=$(chain_head "$work/a")
[ "$head_a" = "$(chain_head "$work/off")" ] || fail "daemon a's head differs from the offline run"
events_a=$("$build/marketctl" --data-dir "$work/a" stats | jq -r .events)
((events_a > events)) || fail "the backup was taken after the last event ($events of $events_a)"

# A daemon on the backup, in a new consumer group: it must continue from the
# backup's stored offsets (not the group's, which has none) to the same head.
marketd_start b "$work/b" --set topic.partitions=1 --clock command --batch-max 50 \
    --set group.id="$prefix.restore"
marketd_wait_running b 60
for ((i = 0; i < 1200; i++)); do
    n=$("$build/marketctl" --data-dir "$work/b" stats 2>/dev/null | jq -r '.events // 0')
    ((n >= events_a)) && break
    sleep 0.1
done
marketd_stop b
"$build/marketctl" --data-dir "$work/b" verify >"$work/b2.verify" 2>"$work/b2.verify.log" ||
    fail "the restored store does not verify: $(cat "$work/b2.verify" "$work/b2.verify.log")"
[ "$(jq -r .head "$work/b2.verify")" = "$head_a" ] ||
    fail "the daemon on the backup ends at $(jq -r .events "$work/b2.verify") events, head differs from a's ($events_a)"
multi=$(decisions_per_command "$work/b" | awk '$2 != 1' | wc -l)
[ "$multi" -eq 0 ] || fail "$multi commands decided more than once after the restore"
log "restored daemon caught up from event $events to $events_a, same head"
echo "backup: 1 passed, 0 failed"
