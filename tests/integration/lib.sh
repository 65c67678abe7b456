# lib.sh - helpers for the integration tests against a real Kafka broker.
# Sourced by tests/integration/*.sh; the broker is started by `make integration`
# (scripts/integration.sh) on 127.0.0.1:$KAFKA_PORT.
set -euo pipefail

build=${MARKETD_BUILD:-build}
port=${KAFKA_PORT:-9092}
bootstrap=127.0.0.1:$port
work=$(mktemp -d /tmp/marketd-it.XXXXXX)
# Every test run gets its own topics and consumer group, so tests never see
# each other's messages.
prefix=it$$r$RANDOM
pids=()

log() { echo "[$(date +%T)] $*"; }
fail() { echo "FAIL: $*" >&2; for f in "$work"/*.log; do [ -e "$f" ] && { echo "--- $f"; tail -20 "$f"; }; done >&2; exit 1; }

cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# marketd_start NAME DATA_DIR [marketd options...]: starts the daemon in the background.
marketd_start() {
    local name=$1 data=$2
    shift 2
    # One log per start (earlier starts are kept in NAME.all.log), so that
    # marketd_wait_running sees this start's lines only.
    if [ -f "$work/$name.log" ]; then cat "$work/$name.log" >>"$work/$name.all.log"; : >"$work/$name.log"; fi
    "$build/marketd" -c config/marketd.conf --data-dir "$data" \
        --set kafka.bootstrap.servers="$bootstrap" \
        --set topic.commands="$prefix.commands" --set topic.results="$prefix.results" \
        --set topic.events="$prefix.events" --set topic.deadletter="$prefix.deadletter" \
        --set group.id="$prefix.group" --set kafka.topic.metadata.refresh.interval.ms=1000 \
        --set kafka.group.instance.id="$prefix-$name" --set kafka.session.timeout.ms=6000 \
        "$@" >>"$work/$name.log" 2>&1 &
    echo $! >"$work/$name.pid"
    pids+=("$!")
}

marketd_pid() { cat "$work/$1.pid"; }

# marketd_wait_running NAME [SECONDS]: waits until the daemon has its partitions.
marketd_wait_running() {
    local i
    for ((i = 0; i < ${2:-30} * 10; i++)); do
        grep -q 'msg="partition assigned"' "$work/$1.log" 2>/dev/null && return 0
        kill -0 "$(marketd_pid "$1")" 2>/dev/null || fail "marketd $1 exited"
        sleep 0.1
    done
    fail "marketd $1 not running after ${2:-30} s"
}

# marketd_stop NAME [SIGNAL]: stops the daemon and waits for it.
marketd_stop() {
    local pid sig=${2:-TERM}
    pid=$(marketd_pid "$1")
    kill "-$sig" "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# load FILE [market-load options...]: produces FILE to the commands topic.
load() {
    local file=$1
    shift
    "$build/market-load" --bootstrap "$bootstrap" --topic "$prefix.commands" \
        --results-topic "$prefix.results" --input "$file" "$@"
}

# offline FILE DATA_DIR RESULTS: the same input through offline mode.
offline() {
    "$build/marketd" --input "$1" --data-dir "$2" --results "$3" --clock command \
        --log-level warn
}

# chain_head DATA_DIR: the verified hash chain head.
chain_head() { "$build/marketctl" --data-dir "$1" verify 2>/dev/null | jq -r .head; }

# decided_ids DATA_DIR: every command_id with events in the store, with counts
# of the command's decisions (a decision's events are consecutive in seq).
decisions_per_command() {
    "$build/marketctl" --data-dir "$1" events |
        jq -r 'select(.command_id != null and .command_id != "bootstrap") | "\(.seq) \(.command_id)"' |
        awk '{ if ($2 != last) { n[$2]++ } last = $2 } END { for (k in n) print k, n[k] }' | sort
}

# A generated workload of N commands (deposits, orders and their payments,
# with some refusals), deterministic, one partition key spread.
gen_workload() {
    local n=$1 m
    printf '{"command_id":"w-op","type":"PublishAgreement","actor":"operator","issued_at":"2026-11-26T07:00:00Z","data":{"version":1,"title":"Agreement","digest":"%064d"}}\n' 0
    # sed -n reads its whole input: no SIGPIPE upstream, which pipefail would report.
    grep '"issued_at"' demo/demo-day.jsonl | grep -v Teleport |
        sed -n '1,25s/"command_id":"d-/"command_id":"wd-/p'
    for ((i = 0; i < n; i++)); do
        m=$((i % 4))
        case $m in
            0) printf '{"command_id":"w-%d","type":"DepositFunds","actor":"bob","issued_at":"2026-11-26T12:%02d:%02dZ","data":{"amount":%d,"payment_ref":"wp-%d"}}\n' "$i" $((i / 60 % 60)) $((i % 60)) $((100 + i)) "$i" ;;
            1) printf '{"command_id":"w-%d","type":"PlaceOrder","actor":"bob","issued_at":"2026-11-26T12:%02d:%02dZ","data":{"order_id":"wo-%d","product_id":"p-pgsql"}}\n' "$i" $((i / 60 % 60)) $((i % 60)) "$i" ;;
            2) printf '{"command_id":"w-%d","type":"PayOrder","actor":"bob","issued_at":"2026-11-26T12:%02d:%02dZ","data":{"order_id":"wo-%d"}}\n' "$i" $((i / 60 % 60)) $((i % 60)) $((i - 1)) ;;
            3) printf '{"command_id":"w-%d","type":"WithdrawFunds","actor":"eve","issued_at":"2026-11-26T12:%02d:%02dZ","data":{"amount":%d}}\n' "$i" $((i / 60 % 60)) $((i % 60)) $((1000 + i)) ;;
        esac
    done
}
