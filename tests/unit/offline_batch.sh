#!/usr/bin/env bash
# offline_batch.sh - offline mode closes its batches at offline.batch_max_commands
# (default 12000), not at the daemon's batch.max_commands; --batch-max sets the
# offline key when --input is given, wherever it stands on the command line, and
# the daemon's key without --input (checked by the key a refused value names).
# The batches are counted by the "input done" line (batches=N) of 24,001
# commands (--no-sync: this checks batch boundaries, not durability), and
# every layout must give byte-identical results and the same chain head.
set -u
build=${MARKETD_BUILD:-build}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/offline-batch.XXXXXX") || exit 2
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

awk 'BEGIN {
    print "{\"command_id\":\"r-0\",\"type\":\"RegisterMember\",\"actor\":\"bob\",\"issued_at\":\"2026-11-26T08:00:00Z\",\"data\":{\"member_id\":\"bob\",\"kind\":\"individual\",\"name\":\"Bob\",\"identity_hash\":\"1111111111111111111111111111111111111111111111111111111111111111\"}}"
    for (i = 0; i < 24000; i++)
        printf "{\"command_id\":\"d-%d\",\"type\":\"DepositFunds\",\"actor\":\"bob\",\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{\"amount\":1,\"payment_ref\":\"p-%d\"}}\n", i, i
}' >"$tmp/in.jsonl"

# batches TAG [marketd options...]: prints the batch count of one offline run.
batches() {
    local tag=$1
    shift
    "$build/marketd" "$@" --data-dir "$tmp/$tag" --results "$tmp/$tag.res" --clock command \
        --no-sync >"$tmp/$tag.log" 2>&1 || { echo "failed: $(tail -2 "$tmp/$tag.log")"; return; }
    grep -o 'batches=[0-9]*' "$tmp/$tag.log" | cut -d= -f2
}

# expect TAG WANT [marketd options...]
expect() {
    local tag=$1 want=$2 got
    shift 2
    got=$(batches "$tag" "$@")
    [[ $got == "$want" ]] && pass || bad "$tag: $want batches expected, got '$got' ($*)"
}

in=(--input "$tmp/in.jsonl")
expect default 3 "${in[@]}"                                         # 12000 + 12000 + 1
expect daemon_key 3 "${in[@]}" --set batch.max_commands=5000        # the daemon's key: no effect
expect flag 4 "${in[@]}" --batch-max 8000                           # 8000 x 3 + 1
expect flag_first 5 --batch-max 6000 "${in[@]}"                     # before --input
expect key 7 "${in[@]}" --set offline.batch_max_commands=4000       # 4000 x 6 + 1
printf 'offline.batch_max_commands = 7000\n' >"$tmp/c.conf"
expect file 4 -c "$tmp/c.conf" "${in[@]}"                           # 7000 x 3 + 3001

# Without --input, --batch-max is the daemon's key: a refused value names the key
# (the configuration is built before anything starts, so no broker is needed).
names_key() {
    local want=$1 out rc
    shift
    out=$("$build/marketd" "$@" 2>&1)
    rc=$?
    [[ $rc == 2 && $out == *"$want"* ]] && pass || bad "$* (exit $rc): no error naming $want: $out"
}
: >"$tmp/empty.conf"
names_key "'batch.max_commands'" -c "$tmp/empty.conf" --batch-max 0
names_key "'offline.batch_max_commands'" --batch-max 0 "${in[@]}" --data-dir "$tmp/none"

for tag in daemon_key flag flag_first key file; do
    cmp -s "$tmp/default.res" "$tmp/$tag.res" && pass || bad "$tag: results differ from the default run's"
done
head_of() { "$build/marketctl" --data-dir "$tmp/$1" verify 2>/dev/null | grep -o '"head":"[0-9a-f]*"'; }
want=$(head_of default)
[[ -n $want ]] && pass || bad "verify of the default run printed no head"
for tag in daemon_key flag flag_first key file; do
    [[ $(head_of "$tag") == "$want" ]] && pass || bad "$tag: chain head differs from the default run's"
done

echo "offline batch: $passed passed, $failed failed"
((failed == 0))
