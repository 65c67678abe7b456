#!/usr/bin/env bash
# The scenario files and the demo day, published to Kafka (one partition, clock =
# command), give the same results and the same hash chain head as offline mode.
source "$(dirname "$0")/lib.sh"

n=0
for f in demo/demo-day.jsonl tests/scenarios/*.jsonl; do
    case $f in *.expected.jsonl | *.results.jsonl) continue ;; esac
    [ -e "$f" ] || continue
    n=$((n + 1))
    prefix=it$$s$n
    offline "$f" "$work/off$n" "$work/off$n.results"
    marketd_start k$n "$work/k$n" --set topic.partitions=1 --clock command
    marketd_wait_running k$n
    load "$f" --wait --timeout 60 --quiet --results-out "$work/k$n.results" ||
        fail "$f: not every result arrived"
    marketd_stop k$n
    # A MALFORMED result from Kafka also names its partition and offset (offline
    # input has none); apart from that the bytes are the same.
    diff <(sort -u "$work/off$n.results") \
        <(sed -E 's/,"partition":[0-9]+,"offset":[0-9]+\}$/}/' "$work/k$n.results" | sort -u) >"$work/diff$n" ||
        fail "$f: results differ from offline mode: $(head -5 "$work/diff$n")"
    [ "$(chain_head "$work/off$n")" = "$(chain_head "$work/k$n")" ] ||
        fail "$f: chain head differs from offline mode"
    if [ "$n" = 1 ]; then
        # The events topic carries every event of the log, as `marketctl events`
        # prints it, keyed by its stream (the outbox holds references to the
        # log; the publisher renders each event when it sends it).
        count=$("$build/marketctl" --data-dir "$work/k$n" stats | jq .events)
        "$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.events" \
            --count "$count" --timeout 15 >"$work/events$n.dump" ||
            fail "$f: fewer than $count events on the events topic"
        "$build/marketctl" --data-dir "$work/k$n" events --limit "$count" | sort >"$work/log$n.events"
        jq -r '.value' "$work/events$n.dump" | sort >"$work/topic$n.events"
        diff "$work/log$n.events" "$work/topic$n.events" >"$work/ediff$n" ||
            fail "$f: events topic differs from the log: $(head -3 "$work/ediff$n")"
        [ "$(jq -r 'select(.key != (.value | fromjson | .stream)) | .offset' \
            "$work/events$n.dump" | wc -l)" = 0 ] || fail "$f: an event keyed by another stream"
        log "ok $f: $count events on the topic, as in the log"
    fi
    log "ok $f ($(wc -l <"$work/off$n.results") results, same chain head)"
done
[ "$n" -gt 0 ] || fail "no scenario files"
echo "scenarios over kafka: $n passed, 0 failed"

# The same demo day as msgpack envelopes (header content-type: application/msgpack)
# is decided the same way: same status and code for every command, same chain head.
# (The one MALFORMED line is sent as it is and says so in its own words.)
prefix=it$$mp
marketd_start mp "$work/mp" --set topic.partitions=1 --clock command
marketd_wait_running mp
load demo/demo-day.jsonl --msgpack --wait --timeout 60 --quiet --results-out "$work/mp.results" ||
    fail "msgpack: not every result arrived"
marketd_stop mp
summary() { jq -c '[.command_id, .status, .error.code, .events]' "$1" | sort; }
diff <(summary "$work/off1.results") <(summary "$work/mp.results") >"$work/diffmp" ||
    fail "msgpack: outcomes differ from JSON offline mode: $(head -5 "$work/diffmp")"
[ "$(chain_head "$work/mp")" != "" ] || fail "msgpack: chain does not verify"
echo "msgpack over kafka: 1 passed, 0 failed"
