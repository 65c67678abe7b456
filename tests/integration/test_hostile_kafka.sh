#!/usr/bin/env bash
# Hostile messages over a real broker: 0 bytes, over message.max_bytes, nested
# 10,000 deep (JSON and msgpack), invalid UTF-8, 2^63, NaN, duplicate keys, a
# msgpack array claiming 2^32 items, ids with control characters. Each gets one
# result with the right code; every undecodable one is dead-lettered with its
# original key and bytes and the headers `reason` and `sha256` (checked against
# the bytes); the partition keeps flowing (valid commands after them are
# decided); marketd's peak RSS is reported before and after a flood of 5000
# malformed messages. Reads topics with tests/tools/topic_dump.c.
source "$(dirname "$0")/lib.sh"

dump=$build/tests/tools/topic_dump
[ -x "$dump" ] || fail "$dump missing (make test-tools)"
h=$work/hostile
mkdir -p "$h"
env_line() { printf '{"command_id":"%s","type":"DepositFunds","actor":"%s","issued_at":"2026-11-26T20:00:00Z","data":%s}' "$1" "${3:-bob}" "$2"; }
# file <TAB> expected result code <TAB> dead-lettered? <TAB> reason substring
cat >"$h/expect.tsv" <<'EOT'
01-empty.json	MALFORMED	yes	end of file
02-oversized.json	MALFORMED	yes	exceeds the limit of 32768
03-deep.json	MALFORMED	yes	maximum parsing depth
04-utf8.json	MALFORMED	yes	unable to decode byte 0xff
05-big.json	MALFORMED	yes	too big integer
06-nan.json	MALFORMED	yes	invalid token
07-dup.json	MALFORMED	yes	duplicate object key
08-deep.mp	MALFORMED	yes	nested too deeply
09-claim.mp	MALFORMED	yes	not a complete msgpack value
10-notjson.json	MALFORMED	yes	expected near 'this'
11-ctl-actor.json	INVALID_FIELD	no	actor: expected a member id
12-empty-str.mp	INVALID_FIELD	no	data.payment_ref
13-overflow.json	INVALID_FIELD	no	data.amount: expected an integer in 1..1000000000000
EOT
: >"$h/01-empty.json"
{ env_line ov-1 '{"amount":1,"payment_ref":"r"}'; head -c 40000 /dev/zero | tr "\\0" " "; } >"$h/02-oversized.json"
env_line deep-1 "$(printf '%.0s[' {1..10000})$(printf '%.0s]' {1..10000})" >"$h/03-deep.json"
env_line utf-1 '{"amount":1,"payment_ref":"'$'\xff''"}' >"$h/04-utf8.json"
env_line big-1 '{"amount":9223372036854775808,"payment_ref":"r"}' >"$h/05-big.json"
env_line nan-1 '{"amount":NaN,"payment_ref":"r"}' >"$h/06-nan.json"
printf '{"command_id":"dup-1","command_id":"dup-2"}' >"$h/07-dup.json"
{ printf '\x81\xaacommand_id'; head -c 10000 /dev/zero | tr '\0' '\221'; printf '\xc0'; } >"$h/08-deep.mp"
printf '\xdd\xff\xff\xff\xff' >"$h/09-claim.mp"
printf 'this is not json\n' >"$h/10-notjson.json"
env_line ctl-1 '{"amount":1,"payment_ref":"r"}' 'bo\u0001b' >"$h/11-ctl-actor.json"
printf '\x85\xaacommand_id\xa3e-1\xa4type\xacDepositFunds\xa5actor\xa3bob\xa9issued_at\xb42026-11-26T20:00:00Z\xa4data\x82\xa6amount\x01\xabpayment_ref\xa0' >"$h/12-empty-str.mp"
env_line ovf-1 '{"amount":-9223372036854775808,"payment_ref":"r"}' >"$h/13-overflow.json"
nfiles=$(grep -c . "$h/expect.tsv")
ndead=$(awk -F'\t' '$3 == "yes"' "$h/expect.tsv" | wc -l)

gen_workload 200 >"$work/in.jsonl"
marketd_start k "$work/k" --set topic.partitions=1 --clock command --set message.max_bytes=32768
marketd_wait_running k
pid=$(marketd_pid k)
load "$work/in.jsonl" --wait --timeout 60 --quiet || fail "warm-up workload: not every result arrived"
hwm_before=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")

"$dump" --bootstrap "$bootstrap" --topic "$prefix.commands" --produce $(cut -f1 "$h/expect.tsv" | sed "s|^|$h/|") ||
    fail "could not produce the hostile messages"
# 5000 more malformed messages and then valid ones: the partition must keep flowing.
for ((i = 0; i < 5000; i++)); do printf '{"command_id":"flood-%d",\n' "$i"; done >"$work/flood.jsonl"
load "$work/flood.jsonl" --quiet || fail "flood not delivered"
printf '{"command_id":"after-1","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T21:00:00Z","data":{"amount":5,"payment_ref":"after-1"}}\n' >"$work/after.jsonl"
load "$work/after.jsonl" --wait --timeout 60 --results-out "$work/after.res" --quiet ||
    fail "a valid command after the hostile ones got no result (partition stalled?)"
grep -q '"status":"accepted"' "$work/after.res" || fail "valid command after hostile input: $(cat "$work/after.res")"
kill -0 "$pid" || fail "marketd died"
hwm_after=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")

# Results: the 13 hostile messages come right after the warm-up's results.
"$dump" --bootstrap "$bootstrap" --topic "$prefix.results" --timeout 15 >"$work/results.dump"
warm=$(grep -c . "$work/in.jsonl")
sed -n "$((warm + 1)),$((warm + nfiles))p" "$work/results.dump" | jq -c '.value | fromjson' >"$work/hostile.res" ||
    fail "results topic: $(head -c 300 "$work/results.dump")"
checked=0
while IFS=$'\t' read -r file code dead text; do
    checked=$((checked + 1))
    r=$(sed -n "${checked}p" "$work/hostile.res")
    got=$(jq -r .error.code <<<"$r")
    [ "$got" = "$code" ] || fail "$file: result $r, want $code"
    if [ "$code" = MALFORMED ]; then
        [ "$(jq -r .command_id <<<"$r")" = null ] || fail "$file: MALFORMED result keyed: $r"
    fi
    msg=$(jq -r .error.message <<<"$r")
    [[ $msg == *"$text"* ]] || fail "$file: message '$msg' does not say '$text'"
done <"$h/expect.tsv"

# Dead letters: the original key and bytes, reason and sha256 headers.
"$dump" --bootstrap "$bootstrap" --topic "$prefix.deadletter" --count $((ndead + 5000)) --timeout 20 \
    >"$work/dead.dump" || fail "dead-letter topic has $(grep -c . "$work/dead.dump") of $((ndead + 5000)) messages"
while IFS=$'\t' read -r file code dead text; do
    [ "$dead" = yes ] || continue
    d=$(jq -c --arg k "hostile:$file" 'select(.key == $k)' "$work/dead.dump")
    [ -n "$d" ] || fail "$file: not dead-lettered"
    [ "$(jq -r .len <<<"$d")" = "$(stat -c %s "$h/$file")" ] || fail "$file: dead letter has other bytes"
    sum=$(sha256sum <"$h/$file" | cut -d' ' -f1)
    [ "$(jq -r .sha256 <<<"$d")" = "$sum" ] || fail "$file: dead letter value differs from the message"
    [ "$(jq -r '.headers.sha256' <<<"$d")" = "$sum" ] || fail "$file: sha256 header $(jq -r .headers.sha256 <<<"$d"), want $sum"
    reason=$(jq -r '.headers.reason' <<<"$d")
    [[ $reason == *"$text"* ]] || fail "$file: reason header '$reason' does not say '$text'"
done <"$h/expect.tsv"
for f in $(awk -F'\t' '$3 == "no" {print $1}' "$h/expect.tsv"); do
    ! grep -q "\"hostile:$f\"" "$work/dead.dump" || fail "$f: a decodable command was dead-lettered"
done
marketd_stop k
"$build/marketctl" --data-dir "$work/k" verify >/dev/null 2>&1 || fail "chain does not verify"
log "hostile kafka figures: $nfiles hostile messages + 5000 malformed: $ndead+5000 dead-lettered with reason and sha256;" \
    "peak RSS of marketd $((hwm_before / 1024)) MB before, $((hwm_after / 1024)) MB after"
echo "hostile kafka: 1 passed, 0 failed"
