#!/usr/bin/env bash
# Three partitions, keys spread over them: every command gets exactly one decision
# and at least one result, offsets are stored for every partition, the chain verifies.
source "$(dirname "$0")/lib.sh"

gen_workload 1500 >"$work/in.jsonl"
ids=$(jq -r 'select(.command_id != null) | .command_id' "$work/in.jsonl" | sort -u | wc -l)
marketd_start k "$work/k" --set topic.partitions=3
marketd_wait_running k
load "$work/in.jsonl" --wait --timeout 120 --results-out "$work/k.results" ||
    fail "not every result arrived"
marketd_stop k
"$build/marketctl" --data-dir "$work/k" verify >/dev/null || fail "chain does not verify"
decided=$(decisions_per_command "$work/k" | wc -l)
multi=$(decisions_per_command "$work/k" | awk '$2 != 1' | wc -l)
[ "$multi" -eq 0 ] || fail "$multi commands decided more than once"
[ "$decided" -eq "$ids" ] || fail "$decided of $ids commands decided"
parts=$("$build/marketctl" --data-dir "$work/k" stats | jq '[.offsets[] | select(.topic == "'"$prefix"'.commands")] | length')
[ "$parts" -eq 3 ] || fail "offsets stored for $parts of 3 partitions"
log "$ids commands over 3 partitions, each decided once"
echo "partitions: 1 passed, 0 failed"
