#!/usr/bin/env bash
# Replicas and signed checkpoints on a real broker: two daemons with clock = log
# read the same one-partition commands topic (separate data dirs and consumer
# groups) and reach the same chain, hash for hash at every seq; each publishes
# signed checkpoints (by event count, by time while idle, and at a clean stop);
# `marketctl checkpoints` reads them and `verify --checkpoints` and
# `verify-export` accept both stores. Then the attacks: a cut tail (the last
# events deleted and the head set back, projections rebuilt) passes plain
# verify but not verify --checkpoints; a checkpoint with an altered hash, or
# re-signed with a key that is not the replica's, is refused; the standard-tools
# recipe (scripts/audit-export.sh --checkpoints) agrees.
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

ctl keygen --id r1 --out "$work/keys" >/dev/null
ctl keygen --id r2 --out "$work/keys" >/dev/null
ctl keygen --id r1 --out "$work/evil" >/dev/null   # someone else's key, named r1
[ "$(stat -c %a "$work/keys/r1.key")" = 600 ] || fail "private key is not mode 0600"
if ctl keygen --id r1 --out "$work/keys" 2>/dev/null; then fail "keygen overwrote a key"; fi
ok "keygen: r1, r2 (0600 private keys, never overwritten)"

gen_workload 10000 >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")

# replica NAME ID INTERVAL_EVENTS INTERVAL_MS: a daemon with its own store, group and key.
replica() {
    marketd_start "$1" "$work/$1" --clock log --set topic.partitions=1 --batch-max 500 \
        --set group.id="$prefix.$1" --set topic.heads="$prefix.heads" \
        --set replica.id="$2" --set replica.key_file="$work/keys/$2.key" \
        --set checkpoint.interval_events="$3" --set checkpoint.interval_ms="$4"
}
replica a r1 1000 1500           # by count, and after 1.5 s idle
replica b r2 1000000000 600000   # only at the stop
marketd_wait_running a 60
marketd_wait_running b 60
load "$work/in.jsonl" --wait --timeout 240 --rate 2500 >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")
# b is killed once mid-load and restarted: it continues from its stored clock.
sleep 1.5
marketd_stop b KILL
cp -a "$work/b" "$work/old"    # a consistent earlier store: the tail "cut" cleanly
replica b r2 1000000000 600000
marketd_wait_running b 60
wait "$loader" || fail "load: $(tail -2 "$work/load.log")"

# consumed NAME: the next offset stored for the commands topic.
consumed() { ctl --data-dir "$work/$1" stats 2>/dev/null | jq -r '.offsets[0].next // 0'; }
for ((i = 0; i < 1200; i++)); do
    [ "$(consumed a)" = "$total" ] && [ "$(consumed b)" = "$total" ] && break
    sleep 0.1
done
[ "$(consumed a)" = "$total" ] && [ "$(consumed b)" = "$total" ] ||
    fail "replicas did not consume all $total commands: a=$(consumed a) b=$(consumed b)"

# While idle, a's head is checkpointed by time (interval_ms), before any stop.
heads() { ctl checkpoints --bootstrap "$bootstrap" --topic "$prefix.heads"; }
live_head=$(ctl --data-dir "$work/a" stats | jq -r .events)
for ((i = 0; i < 300; i++)); do
    heads >"$work/cps-live.jsonl" 2>/dev/null || true
    [ "$(jq -s --arg r r1 'map(select(.replica == $r)) | map(.seq) | max' "$work/cps-live.jsonl")" = "$live_head" ] && break
    sleep 0.2
done
[ "$(jq -s 'map(select(.replica == "r1")) | map(.seq) | max' "$work/cps-live.jsonl")" = "$live_head" ] ||
    fail "no checkpoint of r1's idle head $live_head"
ok "an idle head is checkpointed after checkpoint.interval_ms (r1 at seq $live_head)"

marketd_stop a
marketd_stop b

# Same chain, hash for hash.
head_a=$(chain_head "$work/a")
[ -n "$head_a" ] && [ "$head_a" = "$(chain_head "$work/b")" ] || fail "chain heads differ"
ctl --data-dir "$work/a" export 2>/dev/null >"$work/a.export"
ctl --data-dir "$work/b" export 2>/dev/null >"$work/b.export"
cmp -s <(jq -r '"\(.seq) \(.hash)"' "$work/a.export") <(jq -r '"\(.seq) \(.hash)"' "$work/b.export") ||
    fail "the chains differ at some seq"
events=$(wc -l <"$work/a.export")
! grep -q "not LogAppendTime" "$work/a.log" "$work/b.log" || fail "the commands topic is not LogAppendTime"
ok "two replicas with clock = log (one killed and restarted): the same chain at all $events seqs after $total commands"

# The checkpoints on the topic.
heads >"$work/cps.jsonl" || fail "marketctl checkpoints"
cps_of() { jq -s --arg r "$1" "map(select(.replica == \$r)) | $2" "$work/cps.jsonl"; }
# r1: every 1000 events at a batch's end (a batch of 500 commands is ~625 events)
[ "$(cps_of r1 length)" -ge $((events / 2000)) ] || fail "r1 published $(cps_of r1 length) checkpoints"
[ "$(cps_of r1 'map(.seq) | max')" = "$events" ] || fail "r1's last checkpoint is not at the head"
# r2: exactly one, at its clean stop, at the head
[ "$(cps_of r2 'map(.seq)' | jq -c .)" = "[$events]" ] || fail "r2's checkpoints: $(cps_of r2 'map(.seq)')"
jq -e 'select(.offsets[0].next <= '"$total"' and (.signature | length) == 88)' "$work/cps.jsonl" \
    >/dev/null || fail "checkpoint fields"
ok "$(wc -l <"$work/cps.jsonl") checkpoints published: r1 by count and time, r2 once at its clean stop"

for s in a b; do
    ctl --data-dir "$work/$s" verify --checkpoints "$work/cps.jsonl" --keys "$work/keys" \
        >"$work/v$s" 2>"$work/v$s.err" || fail "verify --checkpoints $s: $(cat "$work/v$s.err")"
done
ctl verify-export "$work/a.export" --checkpoints "$work/cps.jsonl" --keys "$work/keys" >/dev/null \
    2>"$work/ve.err" || fail "verify-export: $(cat "$work/ve.err")"
ok "verify --checkpoints (both stores, every checkpoint of both replicas) and verify-export pass"

# A partial export (issue 18): anchored on its first prev_hash, checked against
# the checkpoint at the seq before it; older checkpoints are counted, not checked.
cp1=$(jq -s 'map(select(.replica == "r1") | .seq) | sort | .[0]' "$work/cps.jsonl")
tail -n +$((cp1 + 1)) "$work/a.export" >"$work/part.export"
ctl verify-export "$work/part.export" --checkpoints "$work/cps.jsonl" --keys "$work/keys" \
    >"$work/vp.out" 2>"$work/vp.err" || fail "verify-export of a partial export: $(cat "$work/vp.err")"
jq -e --argjson f $((cp1 + 1)) '.ok and .first == $f and .checkpoints >= 1' "$work/vp.out" >/dev/null ||
    fail "partial verify-export: $(cat "$work/vp.out")"
# its anchor altered: the checkpoint at seq cp1 catches it (the chain of the lines is intact
# only if the anchor is the true hash)
jq -c 'if .seq == '"$((cp1 + 1))"' then .prev_hash = ("00" + .prev_hash[2:]) else . end' \
    "$work/part.export" >"$work/part-bad.export"
if ctl verify-export "$work/part-bad.export" --checkpoints "$work/cps.jsonl" --keys "$work/keys" \
    >/dev/null 2>&1; then fail "verify-export accepted a partial export with a forged anchor"; fi
ok "a partial export from seq $((cp1 + 1)) verifies against the checkpoint at $cp1; a forged anchor fails"

# A cut tail. The careful insider's: a store that is a true earlier state (b's
# copy from when it was killed): everything in it is consistent, plain verify
# passes; only the checkpoints show that history goes further.
old_head=$(ctl --data-dir "$work/old" stats | jq -r .events)
[ "$old_head" -lt "$events" ] || fail "the old copy is not shorter ($old_head events)"
ctl --data-dir "$work/old" verify >/dev/null 2>"$work/vo.err" ||
    fail "plain verify should pass the earlier store: $(cat "$work/vo.err")"
expect_fail "$work/vo" "the store ends at seq $old_head but replica r" \
    ctl --data-dir "$work/old" verify --checkpoints "$work/cps.jsonl" --keys "$work/keys"
# The quick one: the last 40 events deleted and the head set back (cut_tail);
# the chain verifies, the checkpoints name the cut first.
cp -a "$work/a" "$work/cut"
"$build/tests/tools/cut_tail" "$work/cut" 40
ctl --data-dir "$work/cut" rebuild >/dev/null 2>&1 || fail "rebuild of the cut store"
# (the first checkpoint past the cut, in the file's order, is named)
expect_fail "$work/vc" "the store ends at seq $((events - 40)) but replica r" \
    ctl --data-dir "$work/cut" verify --checkpoints "$work/cps.jsonl" --keys "$work/keys"
[ "$(jq -r .check "$work/vc")" = checkpoints ] || fail "verify report: $(cat "$work/vc")"
head -n $((events - 40)) "$work/a.export" >"$work/cut.export"
grep -qE "signed seq [0-9]+ > $((events - 40))\$" "$work/vc.err" || fail "cut tail: $(cat "$work/vc.err")"
expect_fail "$work/vce" "the store ends at seq $((events - 40)) but replica r" \
    ctl verify-export "$work/cut.export" --checkpoints "$work/cps.jsonl" --keys "$work/keys"
ok "a cut tail (an earlier store at seq $old_head: plain verify passes; 40 events deleted) fails verify --checkpoints and verify-export"

# Forgeries: the last r1 checkpoint claiming the hash of seq 2; then re-signed
# with the other r1 key (canonical text built with jq, signed with openssl).
last=$(jq -cs 'map(select(.replica == "r1"))[-1]' "$work/cps.jsonl")
h2=$(jq -r 'select(.seq == 2) | .hash' "$work/a.export")
jq -c --arg h "$h2" '.hash = $h' <<<"$last" >"$work/forged.jsonl"
expect_fail "$work/vf" "bad signature" \
    ctl --data-dir "$work/a" verify --checkpoints "$work/forged.jsonl" --keys "$work/keys"
canon='"marketd checkpoint v\(.version)\nreplica \(.replica)\nseq \(.seq)\nhash \(.hash)\nrecorded_at \(.recorded_at)\n" + ([.offsets[] | "offset \(.topic) \(.partition) \(.next)\n"] | join(""))'
jq -j "$canon" "$work/forged.jsonl" >"$work/forged.msg"
openssl pkeyutl -sign -inkey "$work/evil/r1.key" -rawin -in "$work/forged.msg" -out "$work/forged.sig"
jq -c --arg s "$(base64 -w0 "$work/forged.sig")" '.signature = $s' "$work/forged.jsonl" >"$work/resigned.jsonl"
expect_fail "$work/vr" "bad signature" \
    ctl --data-dir "$work/a" verify --checkpoints "$work/resigned.jsonl" --keys "$work/keys"
# With the forger's key the signature holds (the jq text is the signed text),
# and the altered hash is what is caught.
expect_fail "$work/vr2" "different hash at seq $events" \
    ctl --data-dir "$work/a" verify --checkpoints "$work/resigned.jsonl" --keys "$work/evil"
ok "forged checkpoints are refused: altered hash, wrong key"

# The standard-tools recipe on a prefix of the export (its shell loop is slow):
# the first r1 checkpoint and the export up to it; then a 10-event export
# (a cut tail) and a forged checkpoint.
first=$(jq -cs 'map(select(.replica == "r1"))[0]' "$work/cps.jsonl")
fs=$(jq -r .seq <<<"$first")
echo "$first" >"$work/first.jsonl"
head -n "$fs" "$work/a.export" >"$work/prefix.export"
bash scripts/audit-export.sh --checkpoints "$work/first.jsonl" --keys "$work/keys" \
    "$work/prefix.export" >"$work/ae.out" 2>&1 || fail "audit-export.sh --checkpoints: $(cat "$work/ae.out")"
grep -q "checkpoints ok: 1 signed" "$work/ae.out" || fail "audit-export.sh output: $(cat "$work/ae.out")"
head -n 10 "$work/a.export" >"$work/short.export"
if bash scripts/audit-export.sh --checkpoints "$work/first.jsonl" --keys "$work/keys" \
    "$work/short.export" >"$work/ae2.out" 2>&1; then fail "audit-export.sh accepted a cut tail"; fi
grep -q "the export ends at seq 10 but replica r1 signed seq $fs > 10" "$work/ae2.out" || fail "audit-export.sh: $(cat "$work/ae2.out")"
jq -c --arg h "$h2" '.hash = $h' "$work/first.jsonl" >"$work/first-forged.jsonl"
if bash scripts/audit-export.sh --checkpoints "$work/first-forged.jsonl" --keys "$work/keys" \
    "$work/short.export" >"$work/ae3.out" 2>&1; then fail "audit-export.sh accepted a forgery"; fi
grep -q "bad signature" "$work/ae3.out" || fail "audit-export.sh: $(cat "$work/ae3.out")"
ok "scripts/audit-export.sh --checkpoints: openssl accepts the signature, catches a cut tail and a forgery"
echo "checkpoints: $n passed, 0 failed"
