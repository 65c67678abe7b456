#!/usr/bin/env bash
# One poison message must never stop the ledger talking (issue 19, item 1),
# on a real broker at its default limits:
#  - a MALFORMED message of 1,020,027 bytes (under marketd's message.max_bytes
#    of 1 MiB, sent by a producer whose limit allows it) is dead-lettered
#    without its body (header body=dropped..., original_size, sha256 of the
#    bytes) and the results after it are published;
#  - a dead letter the broker refuses for good (the dead-letter topic's
#    max.message.bytes lowered to 200) is parked: counted in /metrics and
#    `marketctl stats`, listed by `marketctl outbox list`, and the results
#    behind it still flow; the stop reports it (parked=1) instead of
#    undelivered=0; `marketctl outbox retry` sends it once the topic takes it.
source "$(dirname "$0")/lib.sh"

dump=$build/tests/tools/topic_dump
[ -x "$dump" ] || fail "$dump missing (make test-tools)"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
cmd() { printf '{"command_id":"%s","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T20:00:%02dZ","data":{"amount":%d,"payment_ref":"%s"}}\n' "$1" "$2" "$((100 + $2))" "$1"; }
metric() { curl -s "$base/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

printf '%s auditor\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" >"$work/tokens"
chmod 600 "$work/tokens"
hport=""
start() {
    local i p
    for _ in 1 2 3 4 5 6; do
        p=$((18000 + RANDOM % 1000))
        port_free "$p" || continue
        marketd_start k "$work/k" --set topic.partitions=1 --clock command \
            --set http.listen=127.0.0.1:$p --set http.tokens="$work/tokens"
        for ((i = 0; i < 300; i++)); do
            curl -s -o /dev/null "http://127.0.0.1:$p/healthz" && { hport=$p; break; }
            kill -0 "$(marketd_pid k)" 2>/dev/null || break
            sleep 0.05
        done
        [ -n "$hport" ] && break
        marketd_stop k KILL
    done
    [ -n "$hport" ] || fail "no free HTTP port found"
    base=http://127.0.0.1:$hport
    marketd_wait_running k 60
}

grep '"issued_at"' demo/demo-day.jsonl | grep -v Teleport | sed -n '1,12p' >"$work/warm.jsonl"
start
load "$work/warm.jsonl" --wait --timeout 60 --quiet || fail "warm-up: not every result arrived"

# ---- 1. an oversized dead letter ---------------------------------------------------------
big=$work/big.json
{ printf '{"command_id":"big-1","pad":"'; head -c 1020000 /dev/zero | tr '\0' 'x'; printf 'BROKEN'; } >"$big"
size=$(stat -c %s "$big")
log "malformed message of $size bytes"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.commands" --produce "$big" || fail "big message not produced"
for i in 1 2 3; do cmd "after-big-$i" "$i"; done >"$work/after1.jsonl"
load "$work/after1.jsonl" --wait --timeout 30 --quiet || fail "results after the oversized dead letter never came"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.deadletter" --count 1 --timeout 20 >"$work/dl1.json" ||
    fail "no dead letter"
jq -e --arg sha "$(sha256sum "$big" | cut -c1-64)" --arg size "$size" \
    '.headers.sha256 == $sha and .headers.original_size == $size and .len == 0 and
     (.headers.body | startswith("dropped: \($size) bytes")) and (.headers.reason | test("invalid|expected|parse|end"))' \
    "$work/dl1.json" >/dev/null || fail "dead letter: $(cat "$work/dl1.json")"

# ---- what a publisher matches results by (item 5) ------------------------------------------
# A command sent as text/plain is MALFORMED ("unsupported content-type"), its
# result carries the digest and the partition/offset; correlation_id is echoed.
printf '{"command_id":"ct-1","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T20:01:00Z","data":{"amount":5,"payment_ref":"ct"}}' >"$work/plain.txt"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.commands" --produce "$work/plain.txt" || fail "text/plain not produced"
printf '{"command_id":"corr-1","correlation_id":"req-9","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T20:02:00Z","data":{"amount":5,"payment_ref":"corr"}}\n' >"$work/corr.jsonl"
load "$work/corr.jsonl" --wait --timeout 30 --quiet --results-out "$work/corr.results" || fail "correlation result"
jq -e '.correlation_id == "req-9"' "$work/corr.results" >/dev/null || fail "correlation_id not echoed: $(cat "$work/corr.results")"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.results" --timeout 5 >"$work/results.dump" || true
jq -e --arg sha "$(sha256sum "$work/plain.txt" | cut -c1-64)" -s \
    'map(.value | fromjson? // empty | select(.sha256 == $sha)) | length == 1 and
     (.[0].error.message | contains("unsupported content-type")) and (.[0].partition == 0) and (.[0].offset >= 0)' \
    "$work/results.dump" >/dev/null || fail "MALFORMED text/plain result: $(grep -c . "$work/results.dump") results"

[ "$(metric marketd_outbox_parked)" = 0 ] || fail "nothing should be parked yet"

# ---- 2. a dead letter the broker refuses for good: parked, the rest flows -------------------
"$dump" --bootstrap "$bootstrap" --topic "$prefix.deadletter" --set-config max.message.bytes=200 ||
    fail "cannot lower the dead-letter topic's max.message.bytes"
sleep 2 # the broker applies topic configuration asynchronously
printf '{"command_id":"poison-2", %s BROKEN' "$(head -c 400 /dev/zero | tr '\0' 'y')" >"$work/poison.json"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.commands" --produce "$work/poison.json" || fail "poison not produced"
for i in 4 5 6; do cmd "after-poison-$i" "$i"; done >"$work/after2.jsonl"
load "$work/after2.jsonl" --wait --timeout 30 --quiet || fail "results behind the refused dead letter never came"
for ((i = 0; i < 100; i++)); do [ "$(metric marketd_outbox_parked)" = 1 ] && break; sleep 0.2; done
[ "$(metric marketd_outbox_parked)" = 1 ] || fail "parked gauge: $(metric marketd_outbox_parked)"
[ "$(metric marketd_outbox_parked_total)" = 1 ] || fail "parked_total: $(metric marketd_outbox_parked_total)"
for ((i = 0; i < 50; i++)); do [ "$(metric marketd_outbox_depth)" = 0 ] && break; sleep 0.2; done
[ "$(metric marketd_outbox_depth)" = 0 ] || fail "outbox depth: $(metric marketd_outbox_depth)"
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base/readyz")" = 200 ] || fail "not ready with an entry parked"
"$build/marketctl" --data-dir "$work/k" stats | jq -e '.outbox_parked == 1 and .outbox_depth == 0' >/dev/null ||
    fail "marketctl stats: $("$build/marketctl" --data-dir "$work/k" stats)"
"$build/marketctl" --data-dir "$work/k" outbox list >"$work/parked.jsonl" || fail "outbox list failed"
jq -e --arg t "$prefix.deadletter" 'select(.topic == $t) | .reason | test("too large")' "$work/parked.jsonl" >/dev/null ||
    fail "outbox list: $(cat "$work/parked.jsonl")"
grep -q 'msg="outbox entry parked"' "$work/k.log" || fail "parking not logged"

# ---- 3. the stop says what really stays ------------------------------------------------------
marketd_stop k
grep -q 'undelivered=0 parked=1' "$work/k.log" || fail "stop did not report the parked entry: $(grep -i outbox "$work/k.log" | tail -3)"

# ---- 4. an operator retries it once the topic takes it -------------------------------------
"$dump" --bootstrap "$bootstrap" --topic "$prefix.deadletter" --set-config max.message.bytes=1048588 ||
    fail "cannot restore max.message.bytes"
hport=""
start
"$build/marketctl" --data-dir "$work/k" outbox retry | jq -e '.requeued == 1' >/dev/null || fail "outbox retry"
"$dump" --bootstrap "$bootstrap" --topic "$prefix.deadletter" --count 3 --timeout 30 >"$work/dl2.json" ||
    fail "the retried dead letter never came"
jq -se '.[2].headers.original_size == "'"$(stat -c %s "$work/poison.json")"'" and .[2].len > 0' "$work/dl2.json" >/dev/null ||
    fail "retried dead letter: $(tail -1 "$work/dl2.json")"
for ((i = 0; i < 50; i++)); do [ "$(metric marketd_outbox_parked)" = 0 ] && break; sleep 0.2; done
[ "$(metric marketd_outbox_parked)" = 0 ] || fail "still parked after retry"
marketd_stop k
grep -q 'undelivered=0 parked=0' "$work/k.log" || fail "final stop: $(grep -i outbox "$work/k.log" | tail -3)"
log "ok: oversized dead letter cut, refused one parked, retried, stops report truthfully"
