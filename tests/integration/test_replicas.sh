#!/usr/bin/env bash
# The replicated ledger on a real broker (docs/replication.md): three replicas
# (replica.mode = replicated, each with its own store, group and key) decide a
# one-partition commands topic under a 20k-command load while the leader is
# SIGKILLed at random moments (and a follower twice), each restarted. Then:
# every command has a result on the results topic, every command_id's results
# are the same bytes, and the three chain heads equal an offline run of the same
# input (clock = command everywhere, so the offline run is the same function of
# the same input). Then a replica whose store was rewritten (tamper_tail) is
# flagged by the others and stops itself, and a replica added late from a
# backup (--new-identity) catches up to the same head. The refusals of the mode
# (several partitions, the wall clock) are checked first.
source "$(dirname "$0")/lib.sh"

ctl() { "$build/marketctl" "$@"; }
n=0; ok() { n=$((n + 1)); log "ok - $*"; }
now_ms() { date +%s%3N; }
KILLS=${REPLICA_KILLS:-5}
COMMANDS=${REPLICA_COMMANDS:-20000}

mkdir -p "$work/pub"
echo "replica-test-token auditor" >"$work/tokens"
chmod 600 "$work/tokens"
for id in r1 r2 r3 r4; do
    ctl keygen --id "$id" --out "$work/keys" >/dev/null
    cp "$work/keys/$id.pub" "$work/pub/"
done
http_port() { echo $((port + 1100 + ${1#r})); }

# replica NAME [options]: replica NAME (r1..r4) with its own store, group, key and HTTP port.
replica() {
    local name=$1
    shift
    marketd_start "$name" "$work/$name" --clock command --set topic.partitions=1 \
        --batch-max 500 --set group.id="$prefix.$name" --set topic.heads="$prefix.heads" \
        --set replica.mode=replicated --set replica.id="$name" \
        --set replica.key_file="$work/keys/$name.key" --set replica.peers_keys="$work/pub" \
        --set replica.count=3 --set replica.leader_topic="$prefix.leader" \
        --set replica.leader_group="$prefix.leader" --set replica.session_timeout_ms=6000 \
        --set checkpoint.interval_events=2000 --set checkpoint.interval_ms=500 \
        --set http.listen="127.0.0.1:$(http_port "$name")" --set http.tokens="$work/tokens" "$@"
}
metric() { curl -sf --max-time 3 "http://127.0.0.1:$(http_port "$1")/metrics" 2>/dev/null |
           awk -v m="$2" '$1 == m { print $2 }'; }
leader_of() { # the replica that says it leads, if exactly one does
    local r found=""
    for r in "$@"; do [ "$(metric "$r" marketd_replica_leader)" = 1 ] && found="$found $r"; done
    found=${found# }
    [ -n "$found" ] && [ "${found// /}" = "$found" ] && echo "$found"
    return 0
}
wait_leader() { # wait_leader NOT_THIS REPLICAS...: a leader other than NOT_THIS
    local not=$1 i l
    shift
    for ((i = 0; i < 600; i++)); do
        l=$(leader_of "$@")
        [ -n "$l" ] && [ "$l" != "$not" ] && { echo "$l"; return 0; }
        sleep 0.1
    done
    return 1
}

# ---- the mode's refusals ---------------------------------------------------------------
"$build/marketd" -c config/marketd.conf --data-dir "$work/x" --set replica.mode=replicated \
    --set kafka.bootstrap.servers="$bootstrap" --set replica.key_file="$work/keys/r1.key" \
    --set replica.peers_keys="$work/pub" >"$work/x.log" 2>&1 && fail "the wall clock was accepted"
grep -q "needs clock = log or command" "$work/x.log" || fail "wall clock: $(tail -2 "$work/x.log")"
"$build/marketd" -c config/marketd.conf --data-dir "$work/y" --clock log \
    --set kafka.bootstrap.servers="$bootstrap" --set topic.commands="$prefix.three" \
    --set topic.partitions=3 --set topic.heads="$prefix.heads" --set topic.results="$prefix.results" \
    --set topic.events="$prefix.events" --set topic.deadletter="$prefix.deadletter" --set replica.mode=replicated \
    --set replica.key_file="$work/keys/r1.key" --set replica.peers_keys="$work/pub" \
    --set replica.leader_topic="$prefix.leader" >"$work/y.log" 2>&1 &&
    fail "a three-partition commands topic was accepted"
grep -q "to have exactly one partition (it has 3)" "$work/y.log" || fail "partitions: $(tail -2 "$work/y.log")"
ok "replicated mode refuses the wall clock and a commands topic of 3 partitions, saying why"

# ---- three replicas, a load, and kills ----------------------------------------------------
gen_workload "$COMMANDS" >"$work/in.jsonl"
total=$(grep -c . "$work/in.jsonl")
for r in r1 r2 r3; do replica "$r"; done
for r in r1 r2 r3; do marketd_wait_running "$r" 90; done
lead=$(wait_leader none r1 r2 r3) || fail "no leader after 60 s"
log "leader: $lead"

load "$work/in.jsonl" --rate "${REPLICA_RATE:-200}" --timeout 300 >"$work/load.log" 2>&1 &
loader=$!
pids+=("$loader")
t_start=$(now_ms)
: >"$work/kills"
follower_kills=0
for ((k = 1; k <= KILLS; k++)); do
    sleep $((1 + RANDOM % 3)).$((RANDOM % 10))
    kill -0 "$loader" 2>/dev/null || fail "the load ended before kill $k: lower its rate"
    lead=$(wait_leader none r1 r2 r3) || fail "no single leader before kill $k"
    t_kill=$(now_ms)
    marketd_stop "$lead" KILL
    echo "$t_kill $lead" >>"$work/kills"
    next=$(wait_leader "$lead" r1 r2 r3) || fail "no new leader after killing $lead"
    log "kill $k: $lead SIGKILLed, $next leads after $(( $(now_ms) - t_kill )) ms"
    replica "$lead"
    marketd_wait_running "$lead" 90
    if [ $follower_kills -lt 2 ] && [ $((k % 2)) = 0 ]; then
        f=$(for r in r1 r2 r3; do [ "$r" != "$next" ] && echo "$r"; done | shuf -n1)
        marketd_stop "$f" KILL
        log "follower $f SIGKILLed"
        follower_kills=$((follower_kills + 1))
        replica "$f"
        marketd_wait_running "$f" 90
    fi
done
wait "$loader" || fail "load: $(tail -2 "$work/load.log")"
[ $follower_kills = 2 ] || fail "only $follower_kills follower kills"
load_s=$(( ($(now_ms) - t_start) / 1000 ))

consumed() { ctl --data-dir "$work/$1" stats 2>/dev/null | jq -r '.offsets[0].next // 0'; }
for ((i = 0; i < 1800; i++)); do
    [ "$(consumed r1)" = "$total" ] && [ "$(consumed r2)" = "$total" ] &&
        [ "$(consumed r3)" = "$total" ] && break
    sleep 0.1
done
for r in r1 r2 r3; do
    [ "$(consumed $r)" = "$total" ] || fail "$r consumed $(consumed $r) of $total commands"
done
ok "three replicas decided all $total commands through $KILLS leader kills and 2 follower kills"

# Every command has a result; a command_id's results are the same bytes.
grep -o '"command_id":"[^"]*"' "$work/in.jsonl" | cut -d'"' -f4 | sort -u >"$work/ids"
for ((i = 0; i < 60; i++)); do
    "$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.results" \
        --timeout 5 >"$work/results.jsonl" 2>/dev/null || true
    jq -r .key "$work/results.jsonl" | sort -u >"$work/have"
    comm -23 "$work/ids" "$work/have" >"$work/missing"
    [ -s "$work/missing" ] || break
    sleep 1
done
[ -s "$work/missing" ] && fail "$(wc -l <"$work/missing") commands without a result, e.g. $(head -3 "$work/missing" | tr '\n' ' ')"
differ=$(jq -r '"\(.key) \(.sha256)"' "$work/results.jsonl" | sort -u | awk '{print $1}' | uniq -d | wc -l)
[ "$differ" = 0 ] || fail "$differ command_ids have results that differ"
nres=$(wc -l <"$work/results.jsonl")
dups=$((nres - $(wc -l <"$work/have")))
ok "every one of $(wc -l <"$work/ids") commands has a result ($nres results, $dups duplicates, each the same bytes)"

# Failover time: from each kill to the next result a successor published (the
# results' timestamps are their producers' clocks, on this machine).
"$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.results" --timeout 5 \
    2>/dev/null | jq -r .timestamp | sort -n >"$work/ts"
while read -r t_kill who; do
    awk -v k="$t_kill" '$1 > k { print $1 - k; exit }' "$work/ts"
done <"$work/kills" | sort -n >"$work/failover"
[ "$(wc -l <"$work/failover")" = "$KILLS" ] || fail "no result after some kill: $(cat "$work/failover")"
median=$(awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' "$work/failover")
max=$(tail -1 "$work/failover")
echo "failover: leader death to the successor's next result: median ${median} ms, max ${max} ms over $KILLS kills (session timeout 6000 ms)"
ok "failover measured (median $median ms, max $max ms)"

# The heads agree with each other and with an offline run of the same input.
offline "$work/in.jsonl" "$work/offline" "$work/offline.results" >/dev/null 2>&1 || fail "offline run"
want=$(chain_head "$work/offline")
for r in r1 r2 r3; do
    for ((i = 0; i < 100; i++)); do
        [ "$(ctl --data-dir "$work/$r" stats 2>/dev/null | jq -r .head)" = "$want" ] && break
        sleep 0.1
    done
    [ "$(ctl --data-dir "$work/$r" stats 2>/dev/null | jq -r .head)" = "$want" ] ||
        fail "$r's head differs from the offline run's"
done
# the followers drop what the leader published; the leader signs "published"
ctl checkpoints --bootstrap "$bootstrap" --topic "$prefix.heads" >"$work/cps.jsonl"
jq -se 'map(select(.version == 2 and .published > 0)) | length > 0' "$work/cps.jsonl" >/dev/null ||
    fail "no version 2 checkpoint with a published seq"
dropped=0
for r in r1 r2 r3; do dropped=$((dropped + $(metric "$r" marketd_replica_dropped_total))); done
[ "$dropped" -gt 0 ] || fail "no follower dropped an outbox entry"
for r in r1 r2 r3; do
    [ "$(metric "$r" marketd_replica_divergence_total)" = 0 ] || fail "$r saw a divergence"
    for p in r1 r2 r3; do
        [ "$p" = "$r" ] && continue
        [ "$(metric "$r" "marketd_replica_peer_seq{replica=\"$p\"}")" -gt 0 ] 2>/dev/null ||
            fail "$r's /metrics has no checkpointed seq of $p"
    done
    [ "$(metric "$r" marketd_replica_leader_lag)" -ge 0 ] 2>/dev/null || fail "$r: no leader lag"
    curl -sf "http://127.0.0.1:$(http_port $r)/readyz" >/dev/null || fail "$r not ready"
done
ok "the three heads equal the offline run's; leaders signed published seqs, followers dropped $dropped entries; all ready"

# ---- a replica added late from a backup, while the leader is cut off -------------------------
# The leader is frozen (SIGSTOP: no heartbeat, no publication, as when partitioned from the
# broker); another takes over; when it wakes up it has lost leadership and publishes nothing.
ctl --data-dir "$work/r1" backup --out "$work/r4" --new-identity >"$work/r4.json" 2>/dev/null ||
    fail "backup of r1"
[ "$(jq -r .store_id "$work/r4.json")" != "$(ctl --data-dir "$work/r1" backup --out "$work/r1copy" | jq -r .store_id)" ] ||
    fail "the backup kept r1's identity"
frozen=$(wait_leader none r1 r2 r3) || fail "no leader before the freeze"
kill -STOP "$(marketd_pid "$frozen")"
others=$(for r in r1 r2 r3; do [ "$r" != "$frozen" ] && echo "$r"; done)
# shellcheck disable=SC2086
successor=$(wait_leader "$frozen" $others) || fail "no leader while $frozen is frozen"
log "$frozen frozen (SIGSTOP): $successor leads"
replica r4
marketd_wait_running r4 90
gen_workload 400 | sed 's/"command_id":"w/"command_id":"late-w/; s/"payment_ref":"wp-/"payment_ref":"late-wp-/' |
    grep late- >"$work/late.jsonl"
load "$work/late.jsonl" --rate 200 --timeout 120 >"$work/load2.log" 2>&1 || fail "late load"
total2=$((total + $(grep -c . "$work/late.jsonl")))
for ((i = 0; i < 600; i++)); do
    [ "$(consumed r4)" = "$total2" ] && [ "$(consumed "$successor")" = "$total2" ] && break
    sleep 0.1
done
kill -CONT "$(marketd_pid "$frozen")"
[ "$(consumed r4)" = "$total2" ] || fail "r4 consumed $(consumed r4) of $total2"
h1=$(ctl --data-dir "$work/$successor" stats | jq -r .head)
[ "$(ctl --data-dir "$work/r4" stats | jq -r .head)" = "$h1" ] || fail "r4's head differs from $successor's"
for ((i = 0; i < 300; i++)); do
    [ "$(metric "$frozen" marketd_replica_leader)" = 0 ] && [ "$(consumed "$frozen")" = "$total2" ] && break
    sleep 0.1
done
[ "$(metric "$frozen" marketd_replica_leader)" = 0 ] || fail "$frozen still leads after its freeze"
[ "$(leader_of r1 r2 r3)" = "$successor" ] || fail "not one leader after the freeze: $(leader_of r1 r2 r3)"
grep -o '"command_id":"[^"]*"' "$work/late.jsonl" | cut -d'"' -f4 | sort -u >"$work/late.ids"
for ((i = 0; i < 30; i++)); do
    "$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.results" \
        --timeout 5 2>/dev/null | jq -r .key | sort -u | comm -23 "$work/late.ids" - >"$work/late.missing"
    [ -s "$work/late.missing" ] || break
done
[ -s "$work/late.missing" ] && fail "late commands without a result: $(head -3 "$work/late.missing")"
ok "leader $frozen frozen: $successor took over, the late commands all have results, $frozen woke up a follower"
ok "r4, added from a backup of r1 (its own identity), catches up to the same head"
marketd_stop r4

# ---- a rewritten store is caught ---------------------------------------------------------------
marketd_stop r3
"$build/tests/tools/tamper_tail" "$work/r3" || fail "tamper_tail"
ctl --data-dir "$work/r3" verify >/dev/null 2>&1 || fail "the rewritten store should verify on its own"
replica r3
for ((i = 0; i < 600; i++)); do
    kill -0 "$(marketd_pid r3)" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$(marketd_pid r3)" 2>/dev/null && fail "the rewritten replica r3 did not stop"
grep -q "disagrees with a majority of the replicas" "$work/r3.log" || fail "r3 did not say why it stopped"
st=0; wait "$(marketd_pid r3)" || st=$?
[ "$st" != 0 ] || fail "r3 exited 0 after a fail-stop"
for r in r1 r2; do
    for ((i = 0; i < 300; i++)); do
        [ "$(metric "$r" marketd_replica_divergence_total)" -ge 1 ] 2>/dev/null && break
        sleep 0.1
    done
    [ "$(metric "$r" marketd_replica_divergence_total)" -ge 1 ] || fail "$r did not flag r3"
    grep -q "replica divergence.*replica=$r peer=r3 seq=" \
        "$work/$r.log" || fail "$r's log does not name r3"
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$(http_port $r)/readyz")
    [ "$code" = 503 ] || fail "$r's /readyz is $code after a divergence"
done
ok "a rewritten store: r1 and r2 flag r3 (log, metric, /readyz 503), r3 stops itself (fail-stop, exit $st)"

# ---- only the leader ticks ------------------------------------------------------------------------
# timers.tick_ms = 400 on both remaining replicas, idle for 4 s: about 10 ticks from
# the leader; two tickers would put about 20 on the commands topic. (A follower puts
# none - the consumer asks md_replica_may_tick - and its publisher would not send one:
# the gate passes only checkpoints; this checks what reaches the topic.)
for r in r1 r2; do marketd_stop "$r"; done
before=$("$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.commands" \
    --timeout 3 2>/dev/null | jq -r 'select(.key == "tick") | .offset' | wc -l)
for r in r1 r2; do replica "$r" --set timers.tick_ms=400; done
for r in r1 r2; do marketd_wait_running "$r" 90; done
wait_leader none r1 r2 >/dev/null || fail "no leader for the ticks"
sleep 4
for r in r1 r2; do marketd_stop "$r"; done
ticks=$(( $("$build/tests/tools/topic_dump" --bootstrap "$bootstrap" --topic "$prefix.commands" \
    --timeout 3 2>/dev/null | jq -r 'select(.key == "tick") | .offset' | wc -l) - before ))
[ "$ticks" -ge 3 ] && [ "$ticks" -le 13 ] || fail "$ticks ticks in 4 s at timers.tick_ms = 400"
ok "only the leader puts the idle Tick on the commands topic ($ticks in 4 s at 400 ms)"
echo "replicas: $n passed, 0 failed"
