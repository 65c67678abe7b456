#!/usr/bin/env bash
# hostile_offline.sh - hostile input through `marketd --input` (the binary):
# an oversized line, nesting 10,000 deep, invalid UTF-8, numbers beyond 2^63,
# NaN and 1e400, duplicate keys, ids with control characters, amounts whose
# product would overflow, then 10^6 distinct command_ids from one actor.
# Each hostile line must get its own clear rejection (code and message
# checked), the valid command after them must still be accepted, the chain
# must verify, and memory must stay bounded: peak RSS (VmHWM) and peak
# anonymous memory (RssAnon, i.e. heap, without LMDB's file-backed map) are
# sampled from /proc while marketd runs and printed.
#
# HOSTILE_IDS sets the number of distinct command_ids (default 10^6; 10^5
# under sanitizers, where every allocation costs more).
set -u
build=${MARKETD_BUILD:-build}
case $build in *asan*) default_ids=100000 ;; *) default_ids=1000000 ;; esac
ids=${HOSTILE_IDS:-$default_ids}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

# run_watched OUT_PREFIX marketd-args...: runs marketd, sampling /proc every
# 0.1 s; writes OUT_PREFIX.mem = "peak_hwm_kb peak_anon_kb" and returns its status.
run_watched() {
    local out=$1 pid hwm=0 anon=0 h a
    shift
    # GNU time, when installed, gives the exact peak RSS of short runs too.
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f '%M' -o "$out.maxrss" "$build/marketd" "$@" 2>"$out.err" &
    else
        "$build/marketd" "$@" 2>"$out.err" &
    fi
    pid=$!
    local target=$pid kids
    while kill -0 "$pid" 2>/dev/null; do
        # Under GNU time, sample its child (marketd), not time itself.
        if [[ $target == "$pid" && -x /usr/bin/time ]]; then
            kids=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
            target=${kids%% *}
            target=${target:-$pid}
        fi
        read -r h a < <(awk '/^VmHWM:/ {h = $2} /^RssAnon:/ {a = $2} END {print h + 0, a + 0}' \
            "/proc/$target/status" 2>/dev/null || echo "0 0")
        ((h > hwm)) && hwm=$h
        ((a > anon)) && anon=$a
        sleep 0.1
    done
    wait "$pid"
    local rc=$?
    [[ -s $out.maxrss ]] && h=$(tail -1 "$out.maxrss") && ((h > hwm)) && hwm=$h
    echo "$hwm $anon" >"$out.mem"
    return $rc
}

# ---- the hostile lines --------------------------------------------------------------
env() { # env ID TYPE DATA [ACTOR]
    printf '{"command_id":"%s","type":"%s","actor":"%s","issued_at":"2026-11-26T20:00:00Z","data":%s}\n' \
        "$1" "$2" "${4:-bob}" "$3"
}
deep=$(printf '%.0s[' {1..10000})$(printf '%.0s]' {1..10000})
{
    # name <TAB> code <TAB> message substring, one per input line, in order
    printf 'oversized\tMALFORMED\texceeds the limit of 1048576\n'
    printf 'nested 10000 deep\tMALFORMED\tmaximum parsing depth\n'
    printf 'invalid utf-8\tMALFORMED\tunable to decode byte 0xff\n'
    printf 'overlong utf-8\tMALFORMED\tunable to decode byte 0xc0\n'
    printf '2^63\tMALFORMED\ttoo big integer\n'
    printf '%s\tMALFORMED\t%s\n' '-2^63-1' 'too big negative integer'
    printf 'NaN\tMALFORMED\tinvalid token near '"'"'NaN'"'"'\n'
    printf '1e400\tMALFORMED\treal number overflow\n'
    printf 'duplicate keys\tMALFORMED\tduplicate object key\n'
    printf 'duplicate data keys\tMALFORMED\tduplicate object key near '"'"'"amount"'"'"'\n'
    printf 'control char in actor\tINVALID_FIELD\tactor: expected a member id\n'
    printf 'control char in order_id\tINVALID_FIELD\tdata.order_id: expected an id\n'
    printf 'tab in command type\tUNKNOWN_COMMAND\tunknown command type '"'"'Deposit?Funds'"'"'\n'
    printf 'price 2^63-1\tINVALID_FIELD\tdata.price: expected an integer in 1..1000000000000\n'
    printf 'quantity 10^18\tINVALID_FIELD\tdata.quantity: expected an integer in 1..1000\n'
    printf 'amount -2^63\tINVALID_FIELD\tdata.amount: expected an integer in 1..1000000000000\n'
    printf 'valid after all that\taccepted\t\n'
} >"$tmp/expect.tsv"
{
    printf '{"command_id":"big-1","pad":"%s"}\n' "$(head -c 1100000 /dev/zero | tr '\0' x)"
    env deep-1 DepositFunds "$deep"
    env utf-1 DepositFunds '{"amount":1,"payment_ref":"'$'\xff\xfe''"}'
    printf '{"command_id":"\xc0\xaf"}\n'
    env big-2 DepositFunds '{"amount":9223372036854775808,"payment_ref":"r"}'
    env big-3 DepositFunds '{"amount":-9223372036854775809,"payment_ref":"r"}'
    env nan-1 DepositFunds '{"amount":NaN,"payment_ref":"r"}'
    env inf-1 DepositFunds '{"amount":1e400,"payment_ref":"r"}'
    printf '{"command_id":"dup-1","command_id":"dup-2","type":"DepositFunds"}\n'
    env dup-3 DepositFunds '{"amount":1,"amount":2,"payment_ref":"r"}'
    env ctl-1 DepositFunds '{"amount":1,"payment_ref":"r"}' 'bo\u0001b'
    env ctl-2 PlaceOrder '{"order_id":"o\n1","product_id":"p-pgsql"}'
    env ctl-3 'Deposit\tFunds' '{"amount":1,"payment_ref":"r"}'
    env ovf-1 ChangePrice '{"product_id":"p-pgsql","price":9223372036854775807}' carol
    env ovf-2 PlaceOrder '{"order_id":"o-ovf","product_id":"p-pgsql","quantity":1000000000000000000}'
    env ovf-3 DepositFunds '{"amount":-9223372036854775808,"payment_ref":"r"}'
    env ok-1 DepositFunds '{"amount":700,"payment_ref":"ok-1"}'
} >"$tmp/hostile.jsonl"
cat demo/demo-day.jsonl "$tmp/hostile.jsonl" >"$tmp/in.jsonl"
demo_n=$(grep -c . demo/demo-day.jsonl)

start=$(date +%s.%N)
if run_watched "$tmp/h" --input "$tmp/in.jsonl" --data-dir "$tmp/h" --results "$tmp/h.res" \
    --clock command --log-level warn; then pass; else bad "marketd failed: $(tail -3 "$tmp/h.err")"; fi
tail -n +$((demo_n + 1)) "$tmp/h.res" >"$tmp/h.tail"
i=0
while IFS=$'\t' read -r name code text; do
    i=$((i + 1))
    line=$(sed -n "${i}p" "$tmp/h.tail")
    if [[ $code == accepted ]]; then
        got=$(jq -r .status <<<"$line" 2>/dev/null)
        [[ $got == accepted ]] && pass || bad "$name: $line"
        continue
    fi
    got=$(jq -r '.error.code' <<<"$line" 2>/dev/null)
    msg=$(jq -r '.error.message' <<<"$line" 2>/dev/null)
    if [[ $got == "$code" && $msg == *"$text"* ]]; then pass; else
        bad "$name: got $got '${msg:0:120}', want $code '$text'"; fi
done <"$tmp/expect.tsv"
[[ $(grep -c . "$tmp/h.tail") == "$i" ]] && pass || bad "want $i results, got $(grep -c . "$tmp/h.tail")"
"$build/marketctl" --data-dir "$tmp/h" verify >/dev/null 2>&1 && pass || bad "chain does not verify"
read -r h_hwm h_anon <"$tmp/h.mem"

# ---- 10^6 distinct command_ids from one actor ---------------------------------------------
gen_ids() {
    awk -v n="$1" 'BEGIN {
        print "{\"command_id\":\"r-0\",\"type\":\"RegisterMember\",\"actor\":\"bob\",\"issued_at\":\"2026-11-26T08:00:00Z\",\"data\":{\"member_id\":\"bob\",\"kind\":\"individual\",\"name\":\"Bob\",\"identity_hash\":\"1111111111111111111111111111111111111111111111111111111111111111\"}}"
        for (i = 0; i < n; i++)
            printf "{\"command_id\":\"m-%d\",\"type\":\"DepositFunds\",\"actor\":\"bob\",\"issued_at\":\"2026-11-26T09:00:00Z\",\"data\":{\"amount\":1,\"payment_ref\":\"p-%d\"}}\n", i, i
    }'
}
t0=$(date +%s)
# --no-sync: this measures memory, not fsync; results are counted, not kept.
if run_watched "$tmp/m" --input <(gen_ids "$ids") --data-dir "$tmp/m" --results "$tmp/m.res" \
    --clock command --no-sync --log-level warn; then pass; else bad "marketd failed on $ids ids: $(tail -3 "$tmp/m.err")"; fi
secs=$(($(date +%s) - t0))
acc=$(grep -c '"status":"accepted"' "$tmp/m.res")
[[ $acc == $((ids + 1)) ]] && pass || bad "$acc of $((ids + 1)) commands accepted"
rm -f "$tmp/m.res"
# Decided once each: sending the last 1000 again answers duplicate for every one.
gen_ids "$ids" | tail -1000 >"$tmp/again.jsonl"
"$build/marketd" --input "$tmp/again.jsonl" --data-dir "$tmp/m" --results "$tmp/again.res" \
    --clock command --no-sync --log-level warn
[[ $(grep -c '"status":"duplicate"' "$tmp/again.res") == 1000 ]] && pass || bad "replayed ids not answered duplicate"
read -r m_hwm m_anon <"$tmp/m.mem"
store_mb=$(du -sm "$tmp/m" | cut -f1)
# Bounded: the heap must not grow with the number of ids (they live in LMDB).
# 10^6 ids take ~64 MB of command_ids alone; the limit is well under that.
# (Not under ASan, whose quarantine keeps up to 256 MB of freed memory.)
case $build in
*asan*) ;;
*) ((m_anon < 48 * 1024)) && pass || bad "anonymous memory reached $((m_anon / 1024)) MB for $ids ids" ;;
esac

echo "hostile offline: figures: hostile lines peak RSS $((h_hwm / 1024)) MB;" \
    "$ids distinct command_ids from one actor in ${secs} s, peak RSS $((m_hwm / 1024)) MB" \
    "(anon $((m_anon / 1024)) MB), store $store_mb MB"
echo "hostile offline: $passed passed, $failed failed"
((failed == 0))
