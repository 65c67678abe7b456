#!/usr/bin/env bash
# bench/run.sh - the marketd benchmark: one table, every figure beside the
# limit measured in the same run (docs/performance.md says what each row is).
# `make bench` runs it; `make bench-smoke` (and tests/unit/bench_smoke.sh) runs
# it with BENCH_SMOKE=1: a few thousand commands, every row, seconds.
#
# Settings (environment):
#   BENCH_N          commands for the offline rows (default 1000000; smoke 3000)
#   BENCH_BROKER_N   commands for the end-to-end rows (default 100000; smoke 2000)
#   BENCH_RUNS       runs per row, the median is reported (default 3, at least 3)
#   BENCH_BATCH      batch.max_commands of the daemon rows and of the offline
#                    run the end-to-end row is compared with (default: the
#                    shipped config/marketd.conf's, 8000)
#   BENCH_OFFLINE_BATCH  offline.batch_max_commands of the engine rows (default:
#                    the shipped config/marketd.conf's, 12000)
#   BENCH_SWEEP      batch sizes of the throughput picture ("250 1000 4000 10000")
#   BENCH_SWEEP_N    commands per sweep point (default 100000)
#   BENCH_RATE       offered rate of the latency row (5000 commands/s)
#   BENCH_LAT_S      seconds of offered load per latency run (default 10)
#   BENCH_BACKLOG_N  commands waiting on the topic before marketd starts, for the
#                    memory-under-backlog row (default 300000; smoke 2000)
#   BENCH_SEED       generator seed (default 42)
#   BENCH_KAFKA_PROFILE  scripts/kafka.sh profile of a broker the bench starts
#                    (default bench: G1, full JIT, 1 GiB heap; lean: the CI broker)
#   KAFKA_PORT       broker on 127.0.0.1 (default 19098). When nothing answers
#                    there, `make bench` starts one with scripts/kafka.sh and
#                    stops it afterwards; smoke mode never starts one and skips
#                    the broker rows instead.
#   BENCH_OUT        output directory (default $MARKETD_BUILD/bench)
# The latency runs make their topics LogAppendTime (market-load --create-topics)
# and the table ends with where the latency went, leg by leg (bench/legs.sh).
set -euo pipefail

build=${MARKETD_BUILD:-build}
smoke=${BENCH_SMOKE:-0}
if [ "$smoke" = 1 ]; then
    N=${BENCH_N:-3000}; BN=${BENCH_BROKER_N:-2000}; SWEEP=${BENCH_SWEEP:-"100 1000"}
    SWEEP_N=${BENCH_SWEEP_N:-3000}; LAT_S=${BENCH_LAT_S:-1}; BACKLOG_N=${BENCH_BACKLOG_N:-2000}
else
    N=${BENCH_N:-1000000}; BN=${BENCH_BROKER_N:-100000}; SWEEP=${BENCH_SWEEP:-"250 1000 4000 10000"}
    SWEEP_N=${BENCH_SWEEP_N:-100000}; LAT_S=${BENCH_LAT_S:-10}
    BACKLOG_N=${BENCH_BACKLOG_N:-300000}
fi
RUNS=${BENCH_RUNS:-3}
[ "$RUNS" -ge 3 ] || RUNS=3
BATCH=${BENCH_BATCH:-$(awk '$1 == "batch.max_commands" {print $3}' "$(dirname "$0")/../config/marketd.conf")}
[ -n "$BATCH" ] || { echo "bench: no batch.max_commands in config/marketd.conf" >&2; exit 1; }
OFFLINE_BATCH=${BENCH_OFFLINE_BATCH:-$(awk '$1 == "offline.batch_max_commands" {print $3}' "$(dirname "$0")/../config/marketd.conf")}
[ -n "$OFFLINE_BATCH" ] || { echo "bench: no offline.batch_max_commands in config/marketd.conf" >&2; exit 1; }
RATE=${BENCH_RATE:-5000}
SEED=${BENCH_SEED:-42}
PORT=${KAFKA_PORT:-19098}
out=${BENCH_OUT:-$build/bench}
mkdir -p "$out"
out=$(realpath "$out")
work=$(mktemp -d /tmp/marketd-bench.XXXXXX)
load0=$(cut -d' ' -f1-3 /proc/loadavg)
started_kafka=0
bg_pids=()

cleanup() {
    for p in "${bg_pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$started_kafka" = 1 ]; then KAFKA_PORT=$PORT bash scripts/kafka.sh down >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

say() { [ "$smoke" = 1 ] || echo "bench: $*" >&2; }
die() { echo "bench: error: $*" >&2; exit 1; }
now() { date +%s.%N; }

# field KEY FILE: the value of the last "KEY=value" in FILE.
field() { grep -o "$1=[0-9.]*" "$2" | tail -1 | cut -d= -f2; }

# rss_watch PID FILE: samples /proc/PID/status every 20 ms until PID exits and
# writes "peak_RssAnon_KiB peak_VmHWM_KiB wchar cpu_ticks" to FILE. RssAnon excludes the
# LMDB map (file pages, which the kernel can drop or write back at will); VmHWM
# includes it. wchar (from /proc/PID/io, last sample) is the bytes the process
# handed to write/pwrite/writev, i.e. the store pages LMDB wrote plus the results.
# cpu_ticks (from /proc/PID/stat, last sample) is its user + system time, in
# clock ticks (getconf CLK_TCK), all threads.
rss_watch() {
    local pid=$1 f=$2 a=0 h=0 wc=0 cpu=0 k v s tick
    # Builtins only: the watcher forked three awk and a sleep every 20 ms,
    # ~200 processes a second on the two cores it measures (issue 17: the
    # engine rows moved by as much as the change measured beside them).
    exec {tick}<> <(:) # a pipe nobody writes: read -t on it is a sleep
    while kill -0 "$pid" 2>/dev/null; do
        while read -r k v _; do
            case $k in
            RssAnon:) [ "$v" -gt "$a" ] && a=$v ;;
            VmHWM:) [ "$v" -gt "$h" ] && h=$v ;;
            esac
        done 2>/dev/null <"/proc/$pid/status" || true
        while read -r k v; do [ "$k" = wchar: ] && wc=$v; done 2>/dev/null <"/proc/$pid/io" || true
        # utime and stime, fields 14 and 15 (the name, field 2, has no space)
        read -r -a s 2>/dev/null <"/proc/$pid/stat" && [ "${#s[@]}" -gt 15 ] &&
            cpu=$((s[13] + s[14]))
        read -r -t 0.02 -u "$tick" _ || true
    done
    exec {tick}<&-
    echo "$a $h $wc $cpu" >"$f"
}

# run_watched LOG RSSFILE CMD...: runs CMD with stderr+stdout in LOG, watching its memory.
run_watched() {
    local log=$1 rf=$2
    shift 2
    "$@" >"$log" 2>&1 &
    local pid=$!
    rss_watch "$pid" "$rf" &
    local w=$!
    wait "$pid" || { cat "$log" >&2; die "$1 failed"; }
    wait "$w"
}

# stats FILE: "median min max" of the numbers in FILE (one per line).
stats() { sort -g "$1" | awk '{v[NR]=$1} END{if(NR==0){print "nan nan nan"; exit}
    m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; print m, v[1], v[NR]}'; }

# ceiling_line: the end-to-end row's ceiling (bench/ceiling.sh) from the medians
# of the CPU table's .s files and of the offline rate on the same file.
ceiling_line() {
    local m=() f
    for f in cpu_daemon cpu_broker cpu_load cpu_off; do m+=("$(stats "$work/$f.s" | cut -d' ' -f1)"); done
    bash bench/ceiling.sh "$(nproc)" "${m[@]}" "$(stats "$work/e2e.o" | cut -d' ' -f1)"
}

rows=()
echo 64 >"$work/64"   # MiB, the RssAnon goal
echo 10 >"$work/ten"  # ms, the p99 goal
echo 25 >"$work/p999goal"  # ms, the p99.9 goal
# row NAME UNIT FIGFILE LIMFILE LIMNAME GOALTEXT GOALCHECK(awk expr on f,l,r)
row() {
    local name=$1 unit=$2 ff=$3 lf=$4 lname=$5 goal=$6 check=$7
    read -r fm fmin fmax < <(stats "$ff")
    read -r lm lmin lmax < <(stats "$lf")
    local line
    line=$(awk -v n="$name" -v u="$unit" -v f="$fm" -v a="$fmin" -v b="$fmax" -v l="$lm" \
        -v la="$lmin" -v lb="$lmax" -v ln="$lname" -v g="$goal" '
        function fmt(x) { if (x == "nan") return "n/a"; if (x >= 1000) return sprintf("%.0f", x);
                          if (x >= 10) return sprintf("%.1f", x); return sprintf("%.3g", x) }
        BEGIN { r = (l == "nan" || l == 0 || f == "nan") ? "n/a" : sprintf("%.2f", f / l)
                ok = "?"; f += 0; l += 0; rr = (l ? f / l : 0); mx = b + 0
                if ('"$check"') ok = "met"; else ok = "**missed**"
                if (g == "—") ok = ""
                printf "| %s | %s %s | %s–%s | %s: %s (%s–%s) | %s | %s %s |", n, fmt(f), u, fmt(a),
                       fmt(b), ln, fmt(l), fmt(la), fmt(lb), r, g, ok }')
    rows+=("$line")
}
na_row() { rows+=("| $1 | n/a ($2) | | | | |"); }

# ---- inputs ---------------------------------------------------------------------
say "generating $N commands (seed $SEED)"
"$build/bench/bench-gen" -n "$N" -s "$SEED" >"$work/cmds.jsonl"
"$build/bench/bench-jsonl2mp" <"$work/cmds.jsonl" >"$work/cmds.mpf"
"$build/bench/bench-gen" -n "$BN" -s "$SEED" >"$work/broker.jsonl"

offline() { # offline DATA RESULTS INPUT [options]: marketd --input, durable
    local d=$1 r=$2 i=$3
    shift 3
    # exec: run_watched watches this PID, so it must be marketd itself.
    exec "$build/marketd" --input "$i" --data-dir "$d" --results "$r" --clock command \
        --batch-max "$OFFLINE_BATCH" "$@"
}

# ---- engine, JSON commands ---------------------------------------------------------
: >"$work/json.f"; : >"$work/json.l"; : >"$work/rss.f"; : >"$work/hwm.f"
: >"$work/wpc.f"; : >"$work/wpc.l"
for ((i = 1; i <= RUNS; i++)); do
    say "engine JSON run $i/$RUNS"
    rm -rf "$work/dj"
    run_watched "$work/j.log" "$work/j.rss" offline "$work/dj" "$work/j.res" "$work/cmds.jsonl"
    field commands_per_s "$work/j.log" >>"$work/json.f"
    read -r a h w c <"$work/j.rss"; echo "$a" >>"$work/rss.f"; echo "$h" >>"$work/hwm.f"
    echo $(((w - $(stat -c %s "$work/j.res")) / N)) >>"$work/wpc.f"
    "$build/bench/bench-json-limit" "$work/cmds.jsonl" >"$work/jl.txt"
    field per_s "$work/jl.txt" >>"$work/json.l"
done
row "engine, JSON commands (offline, durable)" "cmd/s" "$work/json.f" "$work/json.l" \
    "jansson json_loadb alone" "≥100,000/s and ≥20% of limit" "f >= 100000 && rr >= 0.2"

# ---- engine, msgpack commands ---------------------------------------------------------
: >"$work/mp.f"; : >"$work/mp.l"
for ((i = 1; i <= RUNS; i++)); do
    say "engine msgpack run $i/$RUNS"
    rm -rf "$work/dm" "$work/dl"
    run_watched "$work/m.log" "$work/m.rss" offline "$work/dm" "$work/m.res" "$work/cmds.mpf" \
        --input-format msgpack
    field commands_per_s "$work/m.log" >>"$work/mp.f"
    read -r a h w c <"$work/m.rss"; echo "$a" >>"$work/rss.f"; echo "$h" >>"$work/hwm.f"
    run_watched "$work/ll.txt" "$work/ll.rss" "$build/bench/bench-lmdb-limit" "$work/dm" \
        "$work/dl" "$OFFLINE_BATCH"
    field wchar "$work/ll.txt" | awk -v n="$N" '{print int($1 / n)}' >>"$work/wpc.l"
    awk -v n="$N" '{for(i=1;i<=NF;i++) if ($i ~ /^seconds=/) {split($i,a,"="); print n/a[2]}}' \
        "$work/ll.txt" >>"$work/mp.l"
done
row "engine, msgpack commands (offline, durable)" "cmd/s" "$work/mp.f" "$work/mp.l" \
    "LMDB append of the same events" "≥120,000/s" "f >= 120000"

# ---- store size -----------------------------------------------------------------------
"$build/marketctl" --data-dir "$work/dm" stats >"$work/stats.json"
"$build/marketctl" --data-dir "$work/dl" stats >"$work/lstats.json"
jq -r .bytes_per_event "$work/stats.json" >"$work/bpe.f"
jq -r .bytes_per_event "$work/lstats.json" >"$work/bpe.l"
events=$(jq -r .events "$work/stats.json")

# ---- rebuild, replay, verify ---------------------------------------------------------------
# The limit of all three: reading and decoding every event (md_txn_scan).
: >"$work/rb.f"; : >"$work/rp.f"; : >"$work/vf.f"; : >"$work/scan.l"; : >"$work/scanh.l"
half=$((events / 2))
for ((i = 1; i <= RUNS; i++)); do
    say "rebuild/replay/verify run $i/$RUNS"
    "$build/bench/bench-lmdb-limit" --scan "$work/dm" >"$work/scan.txt"
    field events_per_s "$work/scan.txt" >>"$work/scan.l"
    "$build/bench/bench-lmdb-limit" --scan "$work/dm" "$half" >"$work/scanh.txt"
    field seconds "$work/scanh.txt" >>"$work/scanh.l"
    help=$("$build/marketctl" --help 2>&1 || true)
    if grep -q rebuild <<<"$help"; then
        t0=$(now)
        "$build/marketctl" --data-dir "$work/dm" rebuild >/dev/null 2>"$work/rb.log"
        awk -v a="$t0" -v b="$(now)" -v e="$events" 'BEGIN{print e/(b-a)}' >>"$work/rb.f"
        rm -rf "$work/replay"
        t0=$(now)
        "$build/marketctl" --data-dir "$work/dm" replay --until "$half" --out "$work/replay" \
            >/dev/null 2>"$work/rp.log"
        awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}' >>"$work/rp.f"
    fi
    t0=$(now)
    "$build/marketctl" --data-dir "$work/dm" verify >/dev/null 2>"$work/vf.log" ||
        die "verify failed: $(cat "$work/vf.log")"
    awk -v a="$t0" -v b="$(now)" -v e="$events" 'BEGIN{print e/(b-a)}' >>"$work/vf.f"
done
if [ -s "$work/rb.f" ]; then
    row "rebuild projections from the log" "events/s" "$work/rb.f" "$work/scan.l" \
        "scan + decode of every event" "≥1,000,000/s" "f >= 1000000"
    row "replay --until seq $half (half the log)" "s" "$work/rp.f" "$work/scanh.l" \
        "scan + decode to that seq" "—" "1"
else
    na_row "rebuild projections from the log" "marketctl rebuild missing"
    na_row "replay --until" "marketctl replay missing"
fi
row "verify (chain + projections)" "events/s" "$work/vf.f" "$work/scan.l" \
    "scan + decode of every event" "≥1,000,000/s" "f >= 1000000"

# ---- batch-size sweep (the throughput picture) ---------------------------------------------
say "batch-size sweep: $SWEEP"
"$build/bench/bench-gen" -n "$SWEEP_N" -s "$SEED" >"$work/sweep.jsonl"
"$build/bench/bench-jsonl2mp" <"$work/sweep.jsonl" >"$work/sweep.mpf"
: >"$out/sweep.dat"
for b in $SWEEP; do
    rm -rf "$work/ds" "$work/dsl"
    "$build/marketd" --input "$work/sweep.jsonl" --data-dir "$work/ds" --results /dev/null \
        --clock command --batch-max "$b" >"$work/s.log" 2>&1
    sj=$(field commands_per_s "$work/s.log")
    rm -rf "$work/ds"
    "$build/marketd" --input "$work/sweep.mpf" --input-format msgpack --data-dir "$work/ds" \
        --results /dev/null --clock command --batch-max "$b" >"$work/s.log" 2>&1
    sm=$(field commands_per_s "$work/s.log")
    "$build/bench/bench-lmdb-limit" "$work/ds" "$work/dsl" "$b" >"$work/sl.txt"
    sl=$(awk -v n="$SWEEP_N" '{for(i=1;i<=NF;i++) if ($i ~ /^seconds=/) {split($i,a,"="); print n/a[2]}}' "$work/sl.txt")
    echo "$b $sj $sm $sl" >>"$out/sweep.dat"
done

# ---- the broker rows ----------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }
broker=1
if ! port_open; then
    if [ "$smoke" = 1 ]; then
        broker=0
    else
        say "starting a broker on 127.0.0.1:$PORT"
        if KAFKA_PORT=$PORT KAFKA_PROFILE=${BENCH_KAFKA_PROFILE:-bench} bash scripts/kafka.sh up \
            >"$work/kafka.log" 2>&1; then
            started_kafka=1
        else
            broker=0
            tail -5 "$work/kafka.log" >&2
        fi
    fi
fi

# The broker's JVM settings, from the command line of the java process that has
# scripts/kafka.sh's directory for this port (the table says which ones it ran with).
broker_flags() {
    local pid
    [ "$broker" = 1 ] || { echo "none"; return; }
    for pid in $(pgrep -x java 2>/dev/null || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "marketd-kafka-$PORT/server.properties"; then
            tr '\0' '\n' <"/proc/$pid/cmdline" | grep -E '^-(Xm[sx]|XX:(\+Use[A-Za-z0-9]*GC|MaxGCPauseMillis|TieredStopAtLevel))' |
                tr '\n' ' ' | sed 's/ $//'
            return
        fi
    done
    echo "not started by scripts/kafka.sh (settings unknown)"
}
broker_jvm="127.0.0.1:$PORT, JVM $(broker_flags)"
# broker_cpu: the broker's user + system clock ticks so far (0 when unknown).
broker_cpu() {
    local pid
    for pid in $(pgrep -x java 2>/dev/null || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "marketd-kafka-$PORT/server.properties"; then
            awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0
            return
        fi
    done
    echo 0
}

daemon_start() { # daemon_start NAME DATA PREFIX: marketd on the broker, one partition
    local name=$1 data=$2 prefix=$3
    # The built-in defaults (daemon/config.c, documented in config/marketd.conf),
    # not the shipped file, so that a key being added there cannot stop the bench.
    echo "kafka.bootstrap.servers = 127.0.0.1:$PORT" >"$work/bench.conf"
    "$build/marketd" -c "$work/bench.conf" --data-dir "$data" --set topic.partitions=1 \
        --set topic.commands="$prefix.commands" --set topic.results="$prefix.results" \
        --set topic.events="$prefix.events" --set topic.deadletter="$prefix.deadletter" \
        --set group.id="$prefix.group" --set kafka.topic.metadata.refresh.interval.ms=1000 \
        --set batch.max_commands="$BATCH" >"$work/$name.log" 2>&1 &
    dpid=$!
    bg_pids+=("$dpid")
    rss_watch "$dpid" "$work/$name.rss" &
    wpid=$!
    local i
    for ((i = 0; i < 600; i++)); do
        grep -q 'msg="partition assigned"' "$work/$name.log" && return 0
        kill -0 "$dpid" 2>/dev/null || { cat "$work/$name.log" >&2; die "marketd exited"; }
        sleep 0.1
    done
    die "marketd not running after 60 s"
}
daemon_stop() {
    kill -TERM "$dpid" 2>/dev/null || true
    wait "$dpid" 2>/dev/null || true
    wait "$wpid" 2>/dev/null || true
}
load() { # load PREFIX FILE [options]
    local prefix=$1 f=$2
    shift 2
    # exec: in the background (the end-to-end runs), $! is market-load itself.
    exec "$build/market-load" --bootstrap "127.0.0.1:$PORT" --topic "$prefix.commands" \
        --results-topic "$prefix.results" --input "$f" --wait --timeout 300 "$@"
}
make_topics() { # make_topics PREFIX: its commands and results topics, LogAppendTime
    "$build/market-load" --bootstrap "127.0.0.1:$PORT" --topic "$1.commands" \
        --results-topic "$1.results" --input /dev/null --create-topics 1 --quiet ||
        die "market-load --create-topics failed"
}
# latency_pass NAME DATA PREFIX OUT [market-load options]: the latency load at
# RATE through a fresh marketd. Topics stamped by the broker (LogAppendTime),
# made before marketd starts, so that the stage times include the broker's
# appends. linger.ms=1: the client gathers what it produced within a
# millisecond into one request, as the echo does and as producers do by default
# since Kafka 4.0 (5 ms, market-load's default too). With linger.ms=0 it sent
# what was queued at once, in many small requests, and the broker's append of
# a command took p99 44-82 ms instead of 1.7-19 ms (docs/performance.md, fifth
# pass).
latency_pass() {
    local name=$1 data=$2 prefix=$3 lout=$4
    shift 4
    rm -rf "$data"
    make_topics "$prefix"
    daemon_start "$name" "$data" "$prefix"
    (load "$prefix" "$work/lat.jsonl" --rate "$RATE" -X linger.ms=1 "$@") >"$lout" 2>&1 ||
        { cat "$lout" >&2; die "market-load failed"; }
    daemon_stop
}

: >"$out/latency.us"
if [ "$broker" = 1 ]; then
    : >"$work/e2e.f"; : >"$work/e2e.l"; : >"$work/p50.f"; : >"$work/p99.f"; : >"$work/p999.f"
    : >"$work/drss.f"; : >"$work/dhwm.f"; : >"$work/p99w.f"; : >"$work/e2e.o"
    : >"$work/cpu_daemon.f"; : >"$work/cpu_off.f"; : >"$work/cpu_load.f"; : >"$work/cpu_broker.f"
    : >"$work/lat_load.txt"
    : >"$work/echo_bare_p99.f"; : >"$work/echo_bare_p999.f"
    : >"$work/echo_sync_p99.f"; : >"$work/echo_sync_p999.f"
    lat_n=$((RATE * LAT_S))
    lat_files=()
    : >"$work/blr.f"; : >"$work/blrss.f"
    "$build/bench/bench-gen" -n "$BACKLOG_N" -s "$((SEED + 2))" >"$work/backlog.jsonl"
    "$build/bench/bench-gen" -n "$lat_n" -s "$((SEED + 1))" >"$work/lat.jsonl"
    # Warm-up, unmeasured: two runs of the latency load through marketd. A broker
    # started by hand answered its first two runs of this load with p99 300 and
    # 108 ms and the next three with 8.5-9.7 ms; an echo at the same rate for 20 s
    # did not warm it (docs/performance.md, fifth pass). The rows measure a broker
    # that has carried this load before, not one in its first seconds of it.
    for ((w = 1; w <= 2; w++)); do
        say "warm-up $w/2 (unmeasured: $lat_n commands at $RATE/s)"
        latency_pass warm "$work/dwarm" "benchw$$r$w$RANDOM" "$work/warm.out"
    done
    rm -rf "$work/dwarm"
    for ((i = 1; i <= RUNS; i++)); do
        say "end to end run $i/$RUNS ($BN commands)"
        prefix=bench$$r$i$RANDOM
        rm -rf "$work/de"
        daemon_start e2e "$work/de" "$prefix"
        # CPU time of each party (daemon, broker, client): the wall-clock
        # figure depends on who else shares the cores, the CPU seconds do not.
        bcpu0=$(broker_cpu)
        (load "$prefix" "$work/broker.jsonl") >"$work/e2e.out" 2>&1 &
        lpid=$!
        rss_watch "$lpid" "$work/ml.rss" &
        lwpid=$!
        wait "$lpid" || { cat "$work/e2e.out" >&2; die "market-load failed"; }
        wait "$lwpid"
        echo "$(($(broker_cpu) - bcpu0))" >>"$work/cpu_broker.f"
        field commands_per_s "$work/e2e.out" >>"$work/e2e.f"
        daemon_stop
        rm -rf "$work/dbo"
        run_watched "$work/bo.log" "$work/bo.rss" offline "$work/dbo" /dev/null "$work/broker.jsonl" \
            --batch-max "$BATCH"
        field commands_per_s "$work/bo.log" >>"$work/e2e.o"
        read -r a h w c <"$work/bo.rss"; echo "$c" >>"$work/cpu_off.f"
        read -r a h w c <"$work/ml.rss"; echo "$c" >>"$work/cpu_load.f"
        read -r a h w c <"$work/e2e.rss"; echo "$a" >>"$work/drss.f"; echo "$h" >>"$work/dhwm.f"
        echo "$c" >>"$work/cpu_daemon.f"
        "$build/bench/bench-kafka-limit" "127.0.0.1:$PORT" "$prefix.commands" "$BN" >"$work/kl.txt"
        field per_s "$work/kl.txt" >>"$work/e2e.l"

        say "latency run $i/$RUNS ($lat_n commands at $RATE/s)"
        la0=$(cut -d' ' -f1 /proc/loadavg)
        latency_pass lat "$work/dlat" "benchl$$r$i$RANDOM" "$work/lat.out" --latency-out "$work/lat$i.us"
        echo "run $i: load average $la0 at its start, $(cut -d' ' -f1 /proc/loadavg) at its end" >>"$work/lat_load.txt"
        read -r a h w c <"$work/lat.rss"; echo "$a" >>"$work/drss.f"; echo "$h" >>"$work/dhwm.f"
        # The first second is warm-up (market-load's producer and consumer and
        # the daemon's first fetch start together); results arrive in about the
        # order they were sent, so its lines are the first RATE ones. The
        # percentiles are nearest-rank, as market-load prints them.
        warm=$((LAT_S >= 3 ? RATE : 0))
        tail -n +"$((warm + 1))" "$work/lat$i.us" | cut -d' ' -f1 | sort -n >"$work/lat$i.sorted"
        lat_files+=("$work/lat$i.us")
        for q in 50:p50 99:p99 99.9:p999; do
            awk -v q="${q%%:*}" '{v[NR]=$1} END{k=int((NR*q+99)/100); if(k<1)k=1; print v[k]/1000}' \
                "$work/lat$i.sorted" >>"$work/${q##*:}.f"
        done
        field p99 "$work/lat.out" >>"$work/p99w.f"
        cat "$work/lat$i.sorted" >>"$out/latency.us"

        # The floor of the latency rows, in the same minutes: the same path with
        # marketd taken out (bench/kafka_echo.c), first the broker alone, then
        # with one fdatasync per batch on the store's file system.
        for e in bare:"" sync:"$work/echo"; do
            prefix=benche$$r$i$RANDOM
            rm -rf "$work/echo" && mkdir -p "$work/echo"
            make_topics "$prefix"
            # shellcheck disable=SC2086 # no directory: no argument
            "$build/bench/bench-kafka-echo" "127.0.0.1:$PORT" "$prefix" "$RATE" "$lat_n" ${e#*:} \
                >"$work/echo.out" || { cat "$work/echo.out" >&2; die "bench-kafka-echo failed"; }
            for q in p99 p999; do field "${q}_ms" "$work/echo.out" >>"$work/echo_${e%%:*}_$q.f"; done
        done

        say "backlog run $i/$RUNS ($BACKLOG_N commands waiting before marketd starts)"
        prefix=benchb$$r$i$RANDOM
        "$build/market-load" --bootstrap "127.0.0.1:$PORT" --topic "$prefix.commands" \
            --input "$work/backlog.jsonl" >"$work/bl.out" 2>&1 ||
            { cat "$work/bl.out" >&2; die "market-load failed"; }
        rm -rf "$work/dbl"
        daemon_start backlog "$work/dbl" "$prefix"
        t0=$(now)
        for ((k = 0; k < 3000; k++)); do
            done_n=$("$build/marketctl" --data-dir "$work/dbl" stats 2>/dev/null |
                jq '[.offsets[]?.next // 0] | add // 0' 2>/dev/null || echo 0)
            [ "${done_n:-0}" -ge "$BACKLOG_N" ] && break
            sleep 0.2
        done
        awk -v a="$t0" -v b="$(now)" -v n="$BACKLOG_N" 'BEGIN{print n/(b-a)}' >>"$work/blr.f"
        daemon_stop
        read -r a h w c <"$work/backlog.rss"; echo "$a" >>"$work/blrss.f"
    done
    # The goal's reference: offline mode on the same file, in the same runs.
    ref=$(stats "$work/e2e.o" | awk '{print $1}')
    row "end to end, real broker ($BN commands, 1 partition)" "cmd/s" "$work/e2e.f" \
        "$work/e2e.l" "librdkafka consumer alone" "≥80% of offline JSON on the same file ($(printf %.0f "$ref")/s)" \
        "f >= 0.8 * $ref"
    row "latency p50 at $RATE/s (produce → result)" "ms" "$work/p50.f" "$work/ten" \
        "goal (p99)" "—" "1"
    # Limit: the durable echo (the broker, and one fdatasync per batch).
    row "latency p99 at $RATE/s" "ms" "$work/p99.f" "$work/echo_sync_p99.f" \
        "durable echo, no marketd" "≤10 ms" "f <= 10"
    row "latency p99.9 at $RATE/s" "ms" "$work/p999.f" "$work/echo_sync_p999.f" \
        "durable echo, no marketd" "≤25 ms" "f <= 25"
    row "latency p99 at $RATE/s, broker alone (produce → echo → result, no marketd, no fsync)" "ms" \
        "$work/echo_bare_p99.f" "$work/ten" "goal" "—" "1"
    row "latency p99.9 at $RATE/s, broker alone" "ms" "$work/echo_bare_p999.f" "$work/p999goal" \
        "goal" "—" "1"
    awk '{print $1/1024}' "$work/blrss.f" >"$work/blrss.mib"
    row "peak RssAnon, daemon draining a backlog of $BACKLOG_N" "MiB" "$work/blrss.mib" "$work/64" \
        "goal" "≤64 MiB (max of runs)" "mx <= 64"
    row "backlog drain rate (commands/s, incl. start-up)" "cmd/s" "$work/blr.f" "$work/e2e.o" \
        "offline JSON on the e2e file" "—" "1"
    row "latency p99 at $RATE/s, warm-up second included" "ms" "$work/p99w.f" "$work/ten" \
        "goal" "—" "1"
else
    na_row "end to end, real broker" "no broker on 127.0.0.1:$PORT"
    na_row "latency at $RATE/s" "no broker on 127.0.0.1:$PORT"
fi

# ---- memory -------------------------------------------------------------------------------
awk '{print $1/1024}' "$work/rss.f" >"$work/rss.mib"
row "peak RssAnon, offline runs (JSON+msgpack)" "MiB" "$work/rss.mib" "$work/64" "goal" \
    "≤64 MiB (max of runs)" "mx <= 64"
awk '{print $1/1024}' "$work/hwm.f" >"$work/hwm.mib"
row "peak VmHWM, offline runs (incl. mapped store pages)" "MiB" "$work/hwm.mib" "$work/64" \
    "goal (RssAnon)" "—" "1"
if [ "$broker" = 1 ]; then
    awk '{print $1/1024}' "$work/drss.f" >"$work/drss.mib"
    row "peak RssAnon, daemon runs (e2e+latency)" "MiB" "$work/drss.mib" "$work/64" "goal" \
        "≤64 MiB (max of runs)" "mx <= 64"
fi
row "store writes per command (wchar, JSON runs)" "B" "$work/wpc.f" "$work/wpc.l" \
    "LMDB append of the same events" "—" "1"
row "store bytes per event (marketctl stats)" "B" "$work/bpe.f" "$work/bpe.l" \
    "events alone (LMDB limit store)" "—" "1"

# ---- the table and the pictures ----------------------------------------------------------------
{
    echo "marketd benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, seed $SEED:" \
        "offline rows $N commands ($events events), broker rows $BN commands," \
        "latency $((RATE * LAT_S)) commands at $RATE/s, batch.max_commands $BATCH" \
        "(engine rows: offline.batch_max_commands $OFFLINE_BATCH)," \
        "median of $RUNS runs; the limit of each row was measured in the same runs."
    echo
    echo "Broker: $broker_jvm. Load average at the start: $load0; at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo "| row | figure (median) | min–max | limit, same run (median, min–max) | ratio | goal |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${rows[@]}"
    if [ "$broker" = 1 ]; then
        echo
        echo "Where the latency went (every latency run after its warm-up second; stage times from"
        echo "market-load --latency-out and marketd's marketd-stage-us header; bench/legs.sh):"
        echo
        bash bench/legs.sh --skip "$warm" "${lat_files[@]}"
        echo
        echo "Latency runs (1-minute load average, 2 cores): $(paste -sd';' "$work/lat_load.txt" | sed 's/;/; /g')."
        echo
        echo "CPU seconds per 100,000 commands in the end-to-end runs (user + system, all threads;"
        echo "median of runs; /proc/PID/stat), against offline on the same file:"
        echo
        echo "| process | CPU s per 100k (median) | min–max |"
        echo "|---|---|---|"
        for pc in "marketd on Kafka:cpu_daemon" "broker (JVM):cpu_broker" "market-load (producing, collecting):cpu_load" "marketd offline, same file:cpu_off"; do
            awk -v t="$(getconf CLK_TCK)" -v n="$BN" '{print $1 / t * 100000 / n}' "$work/${pc##*:}.f" >"$work/${pc##*:}.s"
            read -r cm cmin cmax < <(stats "$work/${pc##*:}.s")
            printf '| %s | %.2f | %.2f–%.2f |\n' "${pc%%:*}" "$cm" "$cmin" "$cmax"
        done
        ceiling_line
    fi
} >"$out/table.md"
cat "$out/table.md"

if command -v gnuplot >/dev/null 2>&1 && [ "$smoke" != 1 ]; then
    bash bench/plot.sh "$out" "$SWEEP_N" "$RATE" || echo "bench: gnuplot failed (pictures skipped)" >&2
    say "pictures: $out/throughput-vs-batch.svg $out/latency-cdf.svg"
fi
