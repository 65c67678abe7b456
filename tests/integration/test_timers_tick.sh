#!/usr/bin/env bash
# Timers fire without traffic: with timers.tick_ms set, an idle daemon puts a
# Tick on the commands topic, and the deadlines due by then fire before it.
# clock = command: the story happens in January 2026; the tick carries the wall
# clock, so the auto_confirm deadline (1 day after delivery) has passed. Checks:
# the timer's OrderCompleted (command_id timer:auto_confirm:o-1, actor system,
# recorded_at = the deadline) is in the log and on the events topic, the tick
# was decided like any command (accepted, no events), and with the key at 0
# (the default) no tick is ever published.
source "$(dirname "$0")/lib.sh"

H=1111111111111111111111111111111111111111111111111111111111111111
L() { printf '{"command_id":"%s","type":"%s","actor":"%s","issued_at":"2026-01-0%s","data":{%s}}\n' "$@"; }
{
    L t-1 PublishAgreement operator "1T08:00:00Z" "\"version\":1,\"title\":\"T\",\"digest\":\"$H\""
    L t-2 SetPolicy operator "1T08:01:00Z" '"after_sales_days":0,"auto_confirm_days":1,"defense_days":0,"settlement_hold_days":0,"appeal_days":0'
    L t-3 RegisterMember pia "1T08:02:00Z" "\"member_id\":\"pia\",\"kind\":\"organization\",\"name\":\"P\",\"identity_hash\":\"$H\""
    L t-4 RegisterMember ben "1T08:03:00Z" "\"member_id\":\"ben\",\"kind\":\"individual\",\"name\":\"B\",\"identity_hash\":\"${H//1/2}\""
    L t-5 ApplyAsProvider pia "1T08:04:00Z" '"business_name":"P Ltd"'
    L t-6 ApproveProvider operator "1T08:05:00Z" '"member_id":"pia"'
    L t-7 DefineCategory operator "1T08:06:00Z" '"category_id":"c","name":"C"'
    L t-8 OpenStore pia "1T08:07:00Z" '"store_id":"s","name":"S"'
    L t-9 PublishProduct pia "1T08:08:00Z" '"product_id":"p","store_id":"s","category_id":"c","kind":"software","title":"T","price":500'
    L t-10 DepositFunds ben "1T08:09:00Z" '"amount":900,"payment_ref":"r-1"'
    L t-11 PlaceOrder ben "1T08:10:00Z" '"order_id":"o-1","product_id":"p"'
    L t-12 PayOrder ben "1T08:11:00Z" '"order_id":"o-1"'
    L t-13 DeliverOrder pia "1T09:00:00Z" '"order_id":"o-1"'
} >"$work/in.jsonl"

# Off (the default): nothing ticks, the order stays delivered.
marketd_start off "$work/off" --set topic.partitions=1 --clock command
marketd_wait_running off 60
load "$work/in.jsonl" --wait --timeout 60 --quiet >"$work/load0.log" 2>&1 || fail "load (off): $(tail -2 "$work/load0.log")"
sleep 2
marketd_stop off
"$build/marketctl" --data-dir "$work/off" events | grep -q '"command_id":"tick-' && fail "a tick with timers.tick_ms = 0"
[ "$("$build/marketctl" --data-dir "$work/off" get order o-1 | jq -r .status)" = delivered ] ||
    fail "the order moved without a tick"
log "ok timers.tick_ms = 0: no tick, the deadline waits for traffic"

# On: a fresh topic set and store; the tick comes within a few hundred ms of idleness.
prefix=${prefix}on
marketd_start on "$work/on" --set topic.partitions=1 --clock command --set timers.tick_ms=300
marketd_wait_running on 60
load "$work/in.jsonl" --wait --timeout 60 --quiet >"$work/load1.log" 2>&1 || fail "load (on): $(tail -2 "$work/load1.log")"
for ((i = 0; i < 100; i++)); do
    "$build/marketctl" --data-dir "$work/on" events 2>/dev/null | grep -q '"command_id":"timer:auto_confirm:o-1"' && break
    sleep 0.2
done
marketd_stop on
"$build/marketctl" --data-dir "$work/on" verify >/dev/null 2>&1 || fail "verify"
ev=$("$build/marketctl" --data-dir "$work/on" events | grep '"command_id":"timer:auto_confirm:o-1"') ||
    fail "the auto_confirm timer did not fire"
[ "$(jq -r '[.type, .actor, .recorded_at, .data.mode] | join(" ")' <<<"$ev")" = \
    "OrderCompleted system 1767344400000 auto" ] || fail "timer event: $ev"
tick=$("$build/marketctl" --data-dir "$work/on" events | grep -c '"command_id":"tick-' || true)
[ "$tick" = 0 ] || fail "a tick appended events ($tick)"
[ "$("$build/marketctl" --data-dir "$work/on" get order o-1 | jq -r .status)" = completed ] ||
    fail "order not completed"
count=$("$build/marketctl" --data-dir "$work/on" stats | jq .events)
"$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.events" \
    --count "$count" --timeout 15 >"$work/events.dump" || fail "fewer than $count events on the topic"
jq -r '.value' "$work/events.dump" | grep -q '"command_id":"timer:auto_confirm:o-1"' ||
    fail "the timer event is not on the events topic"
"$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.commands" --count 14 \
    --timeout 15 >"$work/commands.dump" || fail "no tick on the commands topic"
jq -r '.value' "$work/commands.dump" | grep -q '"type":"Tick","actor":"operator"' || fail "tick not found"
log "ok timers.tick_ms = 300: the idle tick fired the deadline; the timer event is in the log and on the events topic"
echo "timers tick: 2 passed, 0 failed"
