#!/usr/bin/env bash
# scripts/kafka.sh — a throwaway single-node Apache Kafka broker (KRaft mode,
# combined broker+controller) for marketd's integration tests.
#
#   bash scripts/kafka.sh fetch    download the broker jars with mvn (cached, idempotent)
#   bash scripts/kafka.sh up       format + start the broker, wait until it serves
#   bash scripts/kafka.sh down     stop it and delete its data dir
#   bash scripts/kafka.sh status   print whether it runs (exit 0 running, 3 not)
#
# Why Kafka 4.4.0: it is the newest release on Maven Central (3.9.2 is the
# newest 3.x), and librdkafka 2.0.2 (Debian 12) works with it cleanly. Kafka
# 4.0 dropped old protocol versions (KIP-896), but every version librdkafka
# 2.0.2 negotiates is still served (e.g. Produce v7, Metadata v4,
# InitProducerId v4; 4.4 serves Fetch 4+, ListOffsets 1+, OffsetCommit 2+,
# CreateTopics 2+), and Kafka still advertises Produce v0-2 so old
# librdkafka keeps MsgVer2/compression enabled. Checked against a real broker
# with a C program: admin CreateTopics (3 partitions), 1000 messages from an
# idempotent producer (also lz4/zstd/snappy/gzip), a consumer group with
# enable.auto.commit=false + rd_kafka_commit, OffsetFetch from a new client,
# ListOffsets (watermarks): all passed, no librdkafka warnings or errors.
# Fallback if a newer librdkafka/Kafka pair breaks: KAFKA_VERSION=3.9.2 (also
# checked; it logs through reload4j instead of log4j2, handled below).
#
# Settings (environment):
#   KAFKA_VERSION          Kafka release (default 4.4.0)
#   MARKETD_CACHE          jar cache root (default ~/.cache/marketd), outside git
#   KAFKA_PORT             client listener on 127.0.0.1 (default 9092)
#   KAFKA_CONTROLLER_PORT  KRaft controller listener (default KAFKA_PORT+1)
#   KAFKA_DIR              config, data, logs, pid (default /tmp/marketd-kafka-$KAFKA_PORT)
#   KAFKA_PROFILE          lean (default: the test broker below) or bench (production
#                          JVM settings for `make bench`: G1 with 20 ms pause goal,
#                          tiered JIT up to C2, a 1 GiB heap); sets the two defaults below
#   KAFKA_HEAP_OPTS        JVM heap (default -Xms128m -Xmx512m; bench: -Xms1g -Xmx1g)
#   KAFKA_JVM_OPTS         other JVM flags (default -XX:+UseSerialGC -XX:TieredStopAtLevel=1;
#                          bench: -XX:+UseG1GC -XX:MaxGCPauseMillis=20)
#   KAFKA_START_TIMEOUT    seconds `up` waits for the broker (default 60)
#   KAFKA_STOP_TIMEOUT     seconds `down` waits after SIGTERM (default 30)
set -euo pipefail

KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
SCALA_VERSION=2.13
# Absolute paths: mvn resolves a relative outputDirectory against the pom dir.
CACHE_ROOT=$(realpath -m "${MARKETD_CACHE:-${HOME:?HOME is unset; set MARKETD_CACHE}/.cache/marketd}")
KAFKA_HOME_DIR=$CACHE_ROOT/kafka-$KAFKA_VERSION
LIB=$KAFKA_HOME_DIR/lib
KAFKA_PORT=${KAFKA_PORT:-9092}
[[ $KAFKA_PORT =~ ^[0-9]+$ ]] || { echo "kafka.sh: KAFKA_PORT must be a number" >&2; exit 2; }
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_DIR=$(realpath -m "${KAFKA_DIR:-/tmp/marketd-kafka-$KAFKA_PORT}")
KAFKA_PROFILE=${KAFKA_PROFILE:-lean}
case $KAFKA_PROFILE in
    # Serial GC + C1 JIT only: on the shared 2-core box this reached "ready" with
    # ~45% less CPU and ~50 MB less RSS than G1 + C2, plenty for a test broker.
    lean) heap_def="-Xms128m -Xmx512m"; jvm_def="-XX:+UseSerialGC -XX:TieredStopAtLevel=1" ;;
    # What a production broker runs (Kafka's own kafka-run-class.sh defaults: G1,
    # a 20 ms pause goal, the full tiered JIT), with a heap sized for the bench.
    bench) heap_def="-Xms1g -Xmx1g"; jvm_def="-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35" ;;
    *) echo "kafka.sh: KAFKA_PROFILE must be lean or bench, not '$KAFKA_PROFILE'" >&2; exit 2 ;;
esac
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:-$heap_def}
KAFKA_JVM_OPTS=${KAFKA_JVM_OPTS:-$jvm_def}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-60}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-30}
PID_FILE=$KAFKA_DIR/kafka.pid
MARKER=$KAFKA_DIR/.marketd-kafka   # proves KAFKA_DIR is ours before rm -rf

# Kafka 4.x logs through log4j2, 3.x through reload4j: pick the slf4j binding
# (added to the classpath) and the config file format accordingly.
case $KAFKA_VERSION in
    4.*) LOG4J2_VERSION=${LOG4J2_VERSION:-2.25.5} ;;   # = log4j-core that kafka-server 4.4.0 pulls in
    3.*) ;;
    *) echo "kafka.sh: unsupported KAFKA_VERSION=$KAFKA_VERSION (want 3.x or 4.x)" >&2; exit 2 ;;
esac

say() { echo "kafka.sh: $*"; }
die() { echo "kafka.sh: error: $*" >&2; exit 1; }

need() { # need CMD: tools that `make deps` (scripts/deps.sh) installs
    command -v "$1" >/dev/null 2>&1 ||
        die "'$1' not found; run 'make deps' (or: bash scripts/deps.sh) first"
}

need_java() {
    need java
    # Kafka 4.x brokers need Java 17+ (Debian 12's default-jdk-headless is 17).
    local v
    v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
    [[ ${v:-0} -ge 17 ]] || die "Java 17+ needed, found '${v:-?}'; run 'make deps'"
}

# ---------------------------------------------------------------- fetch

fetched() { [[ -f $LIB/.complete ]]; }

write_pom() { # throwaway pom whose only job is to list the jars we want
    local bom="" binding
    if [[ -n ${LOG4J2_VERSION:-} ]]; then
        # one log4j2 version for log4j-core (from kafka-server) and the slf4j binding
        bom="<dependencyManagement><dependencies><dependency>
      <groupId>org.apache.logging.log4j</groupId><artifactId>log4j-bom</artifactId>
      <version>$LOG4J2_VERSION</version><type>pom</type><scope>import</scope>
    </dependency></dependencies></dependencyManagement>"
        binding="<groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId>"
    else
        binding="<groupId>org.slf4j</groupId><artifactId>slf4j-reload4j</artifactId><version>1.7.36</version>"
    fi
    cat >"$1" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- generated by marketd scripts/kafka.sh; only used to download jars -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>marketd.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>$KAFKA_VERSION</version>
  <packaging>pom</packaging>
  $bom
  <dependencies>
    <!-- kafka_2.13 = broker core: kafka.Kafka, kafka.tools.StorageTool; its runtime
         deps bring kafka-server, kafka-metadata, kafka-raft, kafka-storage, clients -->
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_$SCALA_VERSION</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- slf4j binding, so the broker logs to a file instead of nowhere -->
    <dependency>$binding</dependency>
  </dependencies>
</project>
EOF
}

cmd_fetch() {
    fetched && return 0
    need mvn
    need_java
    mkdir -p "$KAFKA_HOME_DIR"
    # Serialise concurrent fetches (e.g. parallel make) on the same cache.
    exec 9>"$KAFKA_HOME_DIR/.lock"
    flock 9
    fetched && { exec 9>&-; return 0; }   # another run fetched it meanwhile
    say "fetching Kafka $KAFKA_VERSION jars with mvn into $LIB"
    write_pom "$KAFKA_HOME_DIR/pom.xml"
    rm -rf "$LIB.tmp"
    # Copy into a temp dir and rename, so an interrupted fetch never looks complete.
    # The plugin version is pinned: Maven 3.8's default one is ancient.
    # Output goes to a log shown only on failure: even with -q, Maven 3.8 prints
    # stray ANSI reset codes, and its errors are what matter.
    if ! mvn -B -q -f "$KAFKA_HOME_DIR/pom.xml" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$LIB.tmp" >"$KAFKA_HOME_DIR/mvn.log" 2>&1; then
        sed 's/\x1b\[[0-9;]*m//g' "$KAFKA_HOME_DIR/mvn.log" >&2
        die "mvn failed to fetch Kafka $KAFKA_VERSION (is Maven Central reachable?)"
    fi
    [[ -f $LIB.tmp/kafka_$SCALA_VERSION-$KAFKA_VERSION.jar ]] || die "mvn did not produce kafka_$SCALA_VERSION-$KAFKA_VERSION.jar"
    touch "$LIB.tmp/.complete"
    rm -rf "$LIB"
    mv "$LIB.tmp" "$LIB"
    exec 9>&-   # release the lock (and keep it out of the broker JVM)
    say "fetched $(find "$LIB" -name "*.jar" | wc -l) jars ($(du -sh "$LIB" | cut -f1))"
}

# ---------------------------------------------------------------- probes

# Real Kafka round trips from bash alone (no JVM start-up, no kcat): write one
# request to /dev/tcp and read the start of the response.
# kafka_rpc API_KEY VERSION BODY NBYTES — API_KEY/VERSION as 4 hex digits,
# BODY as hex; prints (hex, space separated) the NBYTES response bytes that
# follow the correlation id, or fails if the id (42) does not come back.
# Request = int32 size | int16 api_key | int16 version | int32 correlation_id
#           | string client_id "mktd" | body   (request header v1)
kafka_rpc() {
    local hex="${1}${2}0000002a00046d6b7464${3}" out bytes
    hex=$(printf '%08x' $((${#hex} / 2)))$hex
    # shellcheck disable=SC2016,SC2001  # $1..$3 belong to the inner bash
    out=$(timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "$2" >&3
        head -c "$3" <&3 | od -An -v -tx1' _ "$KAFKA_PORT" "$(sed 's/../\\x&/g' <<<"$hex")" $((8 + $4)) 2>/dev/null) ||
        return 1
    read -rd "" -a bytes <<<"$out" || true   # bytes 0-3: size, 4-7: correlation id
    [[ ${bytes[*]:4:4} == "00 00 00 2a" ]] || return 1
    echo "${bytes[*]:8}"
}

# ApiVersions v0 (key 18): answers with error_code 0 once requests are served.
kafka_answers() { [[ $(kafka_rpc 0012 0000 "" 2) == "00 00" ]]; }

# InitProducerId v0 (key 22), transactional_id=null, timeout 60 s: what an
# idempotent producer sends first. Right after start-up the broker answers
# COORDINATOR_LOAD_IN_PROGRESS until it got a block of producer ids from the
# controller; waiting for error_code 0 here spares the tests that retry (and
# librdkafka's warning about it). Response: int32 throttle | int16 error_code.
producer_ids_ready() { [[ $(kafka_rpc 0016 0000 ffff0000ea60 6) == "00 00 00 00 00 00" ]]; }

# shellcheck disable=SC2016  # $1 belongs to the inner bash
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# alive PID: the process exists and is not a zombie (in a container whose
# PID 1 does not reap, a killed broker can linger as a zombie).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }   # field 3 (state) follows "(comm) "
    [[ ${stat:0:1} != Z ]]
}

# PID of our broker if it is alive. The command line must mention our config,
# so a stale PID file pointing at a recycled PID never gets killed.
broker_pid() {
    local pid
    [[ -f $PID_FILE ]] || return 1
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ ]] && [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$KAFKA_DIR/server.properties" || return 1
    echo "$pid"
}

started_line() { grep -qs 'Kafka Server started' "$KAFKA_DIR/server.log"; }

show_log_tail() {
    echo "---- last lines of $KAFKA_DIR/server.log ----" >&2
    # (without the long 'key = value' config dump Kafka logs at start)
    grep -avE $'^\t[a-z0-9._-]+ = ' "$KAFKA_DIR/server.log" 2>/dev/null | tail -n 30 >&2 || true
    if [[ -s $KAFKA_DIR/server.out ]]; then
        echo "---- last lines of $KAFKA_DIR/server.out (stdout/stderr) ----" >&2
        tail -n 20 "$KAFKA_DIR/server.out" >&2
    fi
}

# Ready = the JVM is alive, logged its start-up message, answers ApiVersions
# and hands out producer ids.
# On failure: prints the log tail and why, returns 1.
wait_ready() {
    local pid=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
    while ((SECONDS < deadline)); do
        if ! alive "$pid"; then
            show_log_tail
            echo "kafka.sh: error: broker (pid $pid) exited during start-up" >&2
            return 1
        fi
        started_line && kafka_answers && producer_ids_ready && return 0
        sleep 0.2
    done
    show_log_tail
    echo "kafka.sh: error: broker (pid $pid) not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_START_TIMEOUT}s" >&2
    return 1
}

# SIGTERM (Kafka then shuts down cleanly), SIGKILL if it takes too long.
stop_pid() {
    local pid=$1 deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
    kill -TERM "$pid" 2>/dev/null || true
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    if alive "$pid"; then
        say "no exit after ${KAFKA_STOP_TIMEOUT}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        ! alive "$pid" || die "pid $pid survived SIGKILL"
    fi
}

# ---------------------------------------------------------------- up

write_configs() {
    cat >"$KAFKA_DIR/server.properties" <<EOF
# generated by marketd scripts/kafka.sh — single combined broker+controller (KRaft)
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data

# one node: every internal topic must live with replication factor 1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
default.replication.factor=1
# few internal partitions: quicker first group join, fewer files
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1

# tests: no 3 s wait before the first consumer-group rebalance
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
num.partitions=1

# small, shared machine (2 cores): few threads, small cleaner buffer
num.network.threads=2
num.io.threads=2
background.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=8388608
EOF
    if [[ -n ${LOG4J2_VERSION:-} ]]; then
        cat >"$KAFKA_DIR/log4j2.properties" <<EOF
# generated by marketd scripts/kafka.sh — everything into one file
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = $KAFKA_DIR/server.log
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF
    else
        cat >"$KAFKA_DIR/log4j.properties" <<EOF
# generated by marketd scripts/kafka.sh — everything into one file
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$KAFKA_DIR/server.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
EOF
    fi
}

# Random cluster id in Kafka's format: 16 bytes, URL-safe base64, no padding.
# (A leading '-' would be read as an option, so draw again.)
new_cluster_id() {
    local id
    while :; do
        id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id != -* ]] && break
    done
    echo "$id"
}

java_log_opts() {
    if [[ -n ${LOG4J2_VERSION:-} ]]; then
        echo "-Dlog4j2.configurationFile=$KAFKA_DIR/log4j2.properties"
    else
        echo "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
    fi
}

# Serialise up/down on one instance (e.g. two test targets under make -j).
# The lock file sits beside KAFKA_DIR because `down` deletes KAFKA_DIR; the
# broker JVM must not inherit fd 8, or it would hold the lock forever.
lock_instance() {
    mkdir -p "$(dirname "$KAFKA_DIR")"
    exec 8>"$KAFKA_DIR.lock"
    flock 8
}

cmd_up() {
    local pid
    need_java
    cmd_fetch
    lock_instance

    if pid=$(broker_pid); then
        # Already ours and alive: nothing to do once it answers (it may still be starting).
        wait_ready "$pid" || die "the running broker is unhealthy; try: bash scripts/kafka.sh down"
        say "already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    port_open "$KAFKA_PORT" && die "127.0.0.1:$KAFKA_PORT is taken by another process (not our broker); set KAFKA_PORT"
    port_open "$KAFKA_CONTROLLER_PORT" && die "controller port 127.0.0.1:$KAFKA_CONTROLLER_PORT is taken; set KAFKA_CONTROLLER_PORT"

    # Not running: start from a clean slate, every test run gets empty topics.
    remove_dir
    mkdir -p "$KAFKA_DIR/data"
    touch "$MARKER"
    write_configs
    # The JVMs run in KAFKA_DIR: a crash dump (hs_err_pid*.log) lands there,
    # not in the caller's work tree.
    cd "$KAFKA_DIR"

    # KRaft needs formatted storage (meta.properties + bootstrap checkpoint)
    # before the first start: the 'kafka-storage.sh format' equivalent.
    if ! java -Xmx256m -XX:TieredStopAtLevel=1 "$(java_log_opts)" -cp "$LIB/*" kafka.tools.StorageTool \
        format -t "$(new_cluster_id)" -c "$KAFKA_DIR/server.properties" >"$KAFKA_DIR/format.log" 2>&1; then
        cat "$KAFKA_DIR/format.log" >&2
        die "kafka.tools.StorageTool format failed"
    fi

    start_broker
}

# Starts the JVM on the formatted KAFKA_DIR and waits until it answers.
start_broker() {
    local pid
    cd "$KAFKA_DIR"
    # setsid: own session, so a Ctrl-C in the calling terminal/make does not kill it.
    # shellcheck disable=SC2086  # the *_OPTS are lists of options
    setsid java $KAFKA_HEAP_OPTS $KAFKA_JVM_OPTS \
        -Djava.awt.headless=true -Dkafka.logs.dir="$KAFKA_DIR" "$(java_log_opts)" \
        -cp "$LIB/*" kafka.Kafka "$KAFKA_DIR/server.properties" \
        </dev/null >"$KAFKA_DIR/server.out" 2>&1 8>&- 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    if ! wait_ready "$pid"; then
        stop_pid "$pid"   # no half-started broker left behind; its logs stay
        die "start failed; logs kept in $KAFKA_DIR (deleted by 'down')"
    fi
    say "Kafka $KAFKA_VERSION up (pid $pid) on 127.0.0.1:$KAFKA_PORT, dir $KAFKA_DIR"
}

# ---------------------------------------------------------------- stop / start
# For broker-restart tests: stop the JVM but keep its data, start it again on it.

cmd_stop() {
    local pid
    lock_instance
    if pid=$(broker_pid); then
        say "stopping broker (pid $pid), keeping $KAFKA_DIR"
        stop_pid "$pid"
    else
        say "not running"
    fi
}

cmd_start() {
    need_java
    lock_instance
    broker_pid >/dev/null && { say "already running"; return 0; }
    [[ -f $KAFKA_DIR/server.properties ]] || die "no stopped broker in $KAFKA_DIR; use up"
    start_broker
}

# ---------------------------------------------------------------- down

remove_dir() {
    [[ -e $KAFKA_DIR ]] || return 0
    # Refuse to rm -rf a directory we did not create (KAFKA_DIR=/ or $HOME typo).
    if [[ ! -f $MARKER ]] && [[ -n $(ls -A "$KAFKA_DIR") ]]; then
        die "$KAFKA_DIR exists and was not made by kafka.sh; not deleting it"
    fi
    rm -rf "$KAFKA_DIR"
}

cmd_down() {
    local pid
    lock_instance
    if pid=$(broker_pid); then
        say "stopping broker (pid $pid)"
        stop_pid "$pid"
    else
        say "not running"
    fi
    remove_dir
}

cmd_status() {
    local pid
    if pid=$(broker_pid); then
        if kafka_answers; then
            say "running (pid $pid) on 127.0.0.1:$KAFKA_PORT, Kafka $KAFKA_VERSION, dir $KAFKA_DIR"
        else
            say "process $pid alive but 127.0.0.1:$KAFKA_PORT does not answer (starting or hung)"
        fi
        return 0
    fi
    say "not running (port $KAFKA_PORT)"
    return 3
}

case ${1:-} in
    fetch) cmd_fetch ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    stop) cmd_stop ;;
    start) cmd_start ;;
    *) echo "usage: $0 up|down|stop|start|status|fetch" >&2; exit 2 ;;
esac
