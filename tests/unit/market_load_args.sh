#!/usr/bin/env bash
# market-load without a broker: usage errors exit 2, failures exit 1 within
# the timeout, blank input is no work. (Runs against a closed local port, so
# it needs no Kafka; the broker paths are covered by tests/integration.)
set -u
bin=${MARKETD_BUILD:-build}/market-load
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
# A port nothing listens on: bind one, note it, close it.
dead=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
echo '{"command_id":"c-1","type":"DepositFunds","actor":"m-1","data":{"amount":1,"payment_ref":"r"}}' >"$tmp/one.jsonl"

# check NAME WANT_STATUS WANT_STDERR_TEXT -- command...
check() {
    local name=$1 want=$2 text=$3 status
    shift 4
    timeout 30 "$@" >"$tmp/out" 2>"$tmp/err"
    status=$?
    if [[ $status == "$want" ]] && grep -qF -- "$text" "$tmp/err" "$tmp/out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL $name: status $status (want $want), output:"
        sed 's/^/    /' "$tmp/err" "$tmp/out" | head -5
    fi
}

check help 0 "usage: market-load" -- "$bin" --help
check no_args 2 "are required" -- "$bin"
check bad_rate 2 "--rate '0'" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --rate 0
check bad_timeout 2 "--timeout 'x'" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --timeout x
check neg_timeout 2 "--timeout '-1'" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --timeout -1
check out_needs_wait 2 "need --wait" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --results-out "$tmp/r"
check bad_prop 2 "PROP=VALUE" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" -X linger.ms
check unknown_opt 2 "usage:" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --bogus
check extra_arg 2 "unexpected argument" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" extra
check bad_create_topics 2 "--create-topics '0'" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" --create-topics 0
check no_input 1 "open '$tmp/none'" -- "$bin" --bootstrap "$dead" --input "$tmp/none"
check unknown_prop 1 "no.such.property" -- "$bin" --bootstrap "$dead" --input "$tmp/one.jsonl" \
    -X no.such.property=1
check blank_input 0 "produced=0" -- bash -c "printf '\n  \n\t\n' | '$bin' --bootstrap '$dead' --input - --timeout 1"
check no_broker 1 "not delivered within the 1 s timeout" -- "$bin" --bootstrap "$dead" \
    --input "$tmp/one.jsonl" --timeout 1 --quiet
check no_broker_wait 1 "no answer within 1 s" -- "$bin" --bootstrap "$dead" \
    --input "$tmp/one.jsonl" --timeout 1 --wait --quiet

echo "market_load_args: $passed passed, $failed failed"
[[ $failed == 0 ]]
