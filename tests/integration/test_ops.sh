#!/usr/bin/env bash
# test_ops.sh - the Prometheus alert rules and the Grafana dashboard (ops/)
# against a running marketd on the real broker:
#  - `promtool check rules` passes, and `promtool test rules` shows each alert
#    firing on its condition and quiet on a healthy daemon;
#  - a real Prometheus (127.0.0.1, temporary configuration and storage)
#    scrapes marketd's /metrics while a workload runs, evaluates every alert
#    rule with health "ok", answers every alert expression without error,
#    and raises no alert on this healthy daemon;
#  - every metric the rules and the dashboard reference exists in /metrics,
#    and every dashboard query (Grafana's variables given values) returns data.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

rules=ops/prometheus/marketd-alerts.yml
dashboard=ops/grafana/marketd.json
command -v promtool >/dev/null && command -v prometheus >/dev/null ||
    fail "promtool/prometheus missing (Debian package prometheus; make deps)"

# ---- static checks ------------------------------------------------------------------
promtool check rules "$rules" >"$work/check.log" 2>&1 || { cat "$work/check.log"; fail "promtool check rules"; }
n_alerts=$(grep -c -- '- alert:' "$rules")
grep -q "SUCCESS: $n_alerts rules found" "$work/check.log" || fail "promtool: $(cat "$work/check.log")"
# promtool test rules compares annotations too: test a copy without them.
mkdir -p "$work/unit"
sed '/^        annotations:$/,/^          description:/d' "$rules" >"$work/unit/marketd-alerts.yml"
cp ops/prometheus/marketd-alerts.test.yml "$work/unit/"
promtool test rules "$work/unit/marketd-alerts.test.yml" >"$work/unit.log" 2>&1 ||
    { cat "$work/unit.log"; fail "promtool test rules"; }
tested=$(grep -c 'alertname: Marketd' ops/prometheus/marketd-alerts.test.yml)
((tested == 2 * n_alerts)) || fail "the rule tests cover $tested cases, want $((2 * n_alerts))"
jq -e '.panels | length > 10 and all(.[]; (.targets | length) > 0)' "$dashboard" >/dev/null ||
    fail "dashboard: panels without queries"
log "promtool: $n_alerts rules checked, $tested rule tests pass"

# ---- marketd with /metrics ------------------------------------------------------------
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
echo "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n') auditor" >"$work/tokens"
chmod 600 "$work/tokens"
hport=""
for _ in 1 2 3 4 5 6 7 8; do
    p=$((18000 + RANDOM % 1000))
    port_free "$p" || continue
    marketd_start ops "$work/data" --set topic.partitions=1 --clock command \
        --set http.listen=127.0.0.1:$p --set http.tokens="$work/tokens" --set http.threads=2
    for ((i = 0; i < 300; i++)); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/healthz")" = 200 ] && { hport=$p; break; }
        kill -0 "$(marketd_pid ops)" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$hport" ] && break
    marketd_stop ops KILL
    log "port $p taken, retrying"
done
[ -n "$hport" ] || fail "marketd's HTTP server did not start"
marketd_wait_running ops 60

# ---- Prometheus scraping it every second, evaluating the rules every second ------------
cat >"$work/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $PWD/$rules
scrape_configs:
  - job_name: marketd
    static_configs:
      - targets: ["127.0.0.1:$hport"]
YML
pport=""
for _ in 1 2 3 4 5 6 7 8; do
    p=$((19000 + RANDOM % 1000))
    port_free "$p" || continue
    prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/tsdb" \
        --web.listen-address=127.0.0.1:$p --log.level=warn >"$work/prometheus.log" 2>&1 &
    echo $! >"$work/prometheus.pid"
    pids+=("$!")
    for ((i = 0; i < 300; i++)); do
        curl -sf "http://127.0.0.1:$p/-/ready" >/dev/null 2>&1 && { pport=$p; break; }
        kill -0 "$(cat "$work/prometheus.pid")" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$pport" ] && break
    log "prometheus port $p: not started, retrying"
done
[ -n "$pport" ] || fail "prometheus did not start"
prom=http://127.0.0.1:$pport
# query EXPR: the /api/v1/query answer (JSON) at now; an answer that is not
# JSON is asked again (twice), then reported with its HTTP status.
query() {
    local i code
    for i in 1 2 3; do
        code=$(curl -sS -G --data-urlencode "query=$1" -o "$work/q.raw" -w '%{http_code}' \
            "$prom/api/v1/query") || code=000
        jq -e . "$work/q.raw" >/dev/null 2>&1 && { cat "$work/q.raw"; return 0; }
        sleep 1
    done
    printf '{"status":"HTTP %s","body":"%s"}\n' "$code" "$(head -c 200 "$work/q.raw" | tr -d '"\\')"
}
for ((i = 0; i < 60; i++)); do
    [ "$(query 'up{job="marketd"}' | jq -r '.data.result[0].value[1] // empty')" = 1 ] && break
    sleep 1
done
((i < 60)) || fail "prometheus does not scrape marketd (up != 1)"
log "prometheus on $prom scrapes marketd on 127.0.0.1:$hport"

# ---- a workload while it scrapes (one partition: decided in file order, about a
# third rejected, below the rejection-rate alert) --------------------------------------
gen_workload 400 >"$work/in.jsonl"
load "$work/in.jsonl" --wait --timeout 120 --quiet --results-out "$work/results" || fail "load"
sleep 3 # a few scrapes and evaluations after the last batch
curl -sf "http://127.0.0.1:$hport/metrics" >"$work/metrics" || fail "GET /metrics"
rejected=$(sed -n 's/^marketd_commands_total{status="rejected"} //p' "$work/metrics")
((rejected > 0)) || fail "the workload had no rejections (got '$rejected')"
# The projections' head start (md_projector.h): small batches go to the projector
# before the log's commit, and it commits them once the log holds them.
staged=$(sed -n 's/^marketd_projection_staged_commits_total //p' "$work/metrics")
pcommits=$(sed -n 's/^marketd_projection_commits_total //p' "$work/metrics")
((staged > 0 && staged <= pcommits)) || fail "projection commits with the head start: '$staged' of '$pcommits'"
log "projection commits: $pcommits, $staged of them with the head start"

# ---- every rule evaluated with health ok; every alert expression answers -------------------
for ((i = 0; i < 30; i++)); do
    curl -sS "$prom/api/v1/rules" >"$work/rules.json"
    jq -e --argjson n "$n_alerts" '[.data.groups[].rules[] | select(.type == "alerting")] |
        length == $n and all(.[]; .health == "ok" and (.lastEvaluation | startswith("0001") | not))' \
        "$work/rules.json" >/dev/null && break
    sleep 1
done
((i < 30)) || fail "rules not all evaluated with health ok: $(jq -c '[.data.groups[].rules[] | {name, health, lastError}]' "$work/rules.json")"
evaluated=0
while IFS= read -r expr; do
    query "$expr" >"$work/q.json"
    jq -e '.status == "success"' "$work/q.json" >/dev/null || fail "alert expression failed: $expr: $(cat "$work/q.json")"
    evaluated=$((evaluated + 1))
done < <(jq -r '.data.groups[].rules[] | select(.type == "alerting") | .query' "$work/rules.json")
((evaluated == n_alerts)) || fail "evaluated $evaluated alert expressions, want $n_alerts"
active=$(curl -sS "$prom/api/v1/alerts" | jq -c '[.data.alerts[] | {name: .labels.alertname, state, value}]')
[ "$active" = "[]" ] || fail "alerts on a healthy daemon: $active; $(query "sum by (status) (increase(marketd_commands_total[15m]))" | jq -c .data.result)"
log "$evaluated alert expressions evaluated without error; no alert on a healthy daemon"

# ---- every metric referenced exists; every dashboard query returns data ----------------------
names=$( { jq -r '.. | objects | .expr? // empty, (.query? | objects | .query) // empty' "$dashboard"; \
           grep 'expr:' "$rules"; } | grep -o 'marketd_[a-z_]*' | sort -u)
[ "$(wc -w <<<"$names")" -ge 12 ] || fail "too few metric names found: $names"
for m in $names; do
    grep -q "^$m[{ ]" "$work/metrics" || fail "metric $m (referenced by ops/) is not in /metrics"
done
panels=0
while IFS= read -r expr; do
    e=${expr//\$__rate_interval/1m}
    e=${e//\$instance/.*}
    query "$e" >"$work/q.json"
    jq -e '.status == "success" and (.data.result | length) > 0' "$work/q.json" >/dev/null ||
        fail "dashboard query without data: $e: $(head -c 300 "$work/q.json")"
    panels=$((panels + 1))
done < <(jq -r '.. | objects | .expr? // empty' "$dashboard")
log "$(wc -w <<<"$names") metrics referenced, all in /metrics; $panels dashboard queries return data"

kill -TERM "$(cat "$work/prometheus.pid")" 2>/dev/null || true
marketd_stop ops
echo "ops: ok"
