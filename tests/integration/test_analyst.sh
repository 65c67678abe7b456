#!/usr/bin/env bash
# test_analyst.sh - analysts and auditors against a running marketd on a real
# broker:
#  - `marketctl events --follow` and `audit --subject S --follow`, started on
#    the store before the load, print every event (entry) as the daemon commits
#    it, in order and once, with the same lines as `events` afterwards; SIGINT
#    ends them with exit 0, and a closed pipe (`| head -n 3`) ends a follower;
#  - the HTTP listings answer `Accept: text/csv` (RFC 4180: a member name with
#    CJK text, a comma, quotes and a newline comes back quoted), the next cursor
#    in X-Next-Cursor; errors stay JSON;
#  - /v1/summaries/KIND with the roles of sales (members: their own provider
#    only, never rejections; 401 without a token) and the same rows as
#    `marketctl summary`.
# Prints "analyst: N passed, M failed"; exits 1 when anything failed.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

cat demo/demo-day.jsonl - >"$work/input.jsonl" <<'EOF'
{"command_id":"x-1","type":"RegisterMember","actor":"wang","issued_at":"2026-12-21T16:10:00Z","data":{"member_id":"wang","kind":"individual","name":"王小明, \"Ming\"\nLi","identity_hash":"aa4541df14dce93a911b22afa41288a88ef01500c910366248bf046c268a3a97","email":"w@example.com"}}
EOF

declare -A tok
for r in auditor analyst carol; do tok[$r]=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n'); done
printf '%s auditor\n%s analyst\n%s member:carol\n' "${tok[auditor]}" "${tok[analyst]}" \
    "${tok[carol]}" >"$work/tokens"
chmod 600 "$work/tokens"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
hport=""
for _ in 1 2 3 4 5 6; do
    p=$((19000 + RANDOM % 1000))
    port_free "$p" || continue
    marketd_start an "$work/data" --set topic.partitions=1 --clock command \
        --set http.listen=127.0.0.1:$p --set http.tokens="$work/tokens"
    for ((i = 0; i < 300; i++)); do
        c=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$p/healthz") || true
        [ "$c" = 200 ] && { hport=$p; break; }
        kill -0 "$(marketd_pid an)" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$hport" ] && break
    marketd_stop an KILL
done
[ -n "$hport" ] || fail "marketd with HTTP did not start"
marketd_wait_running an 60
base=http://127.0.0.1:$hport

# ---- followers, started before the load ----------------------------------------------------
ctl() { "$build/marketctl" --data-dir "$work/data" "$@"; }
for ((i = 0; i < 100; i++)); do ctl events --limit 1 >/dev/null 2>&1 && break; sleep 0.1; done
# Started directly (not through a function), so that $! is marketctl itself.
"$build/marketctl" --data-dir "$work/data" events --follow >"$work/follow.jsonl" 2>"$work/follow.err" &
fpid=$!
"$build/marketctl" --data-dir "$work/data" audit --subject bob --follow --format csv \
    >"$work/follow_audit.csv" 2>"$work/follow_audit.err" &
apid=$!
{ "$build/marketctl" --data-dir "$work/data" events --follow 2>/dev/null; echo $? >"$work/head.status"; } |
    head -n 3 >"$work/head3.jsonl" &
hpid=$!
pids+=("$fpid" "$apid" "$hpid")

log "loading $(wc -l <"$work/input.jsonl") commands"
load "$work/input.jsonl" --wait --timeout 90 --quiet --results-out "$work/load.results" ||
    fail "load did not complete"
want=$(ctl events | wc -l)
for ((i = 0; i < 100; i++)); do
    [ "$(wc -l <"$work/follow.jsonl")" -ge "$want" ] && break
    sleep 0.1
done
log "followers: $(wc -l <"$work/follow.jsonl") of $want lines"
kill -INT "$fpid"
st=0
for ((i = 0; i < 50; i++)); do kill -0 "$fpid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$fpid" 2>/dev/null && { bad "events --follow ignored SIGINT"; kill -KILL "$fpid"; }
wait "$fpid" || st=$?
check "events --follow exits 0 on SIGINT (got $st)" [ "$st" = 0 ]
ctl events >"$work/all.jsonl"
check "events --follow printed every committed event once, in order ($(wc -l <"$work/follow.jsonl") of $want)" \
    cmp -s "$work/follow.jsonl" "$work/all.jsonl"
check "events --follow saw events appended after it started" [ "$want" -gt 3 ]
# The audit follower polls every 200 ms and stops at SIGINT without a last
# poll, and the projections may trail the log by a projector step: wait until
# they show the last event, then until it printed as many lines as they hold.
ctl audit --subject bob --format csv --min-seq "$want" >"$work/audit.csv" 2>/dev/null ||
    bad "audit --min-seq $want"
for ((i = 0; i < 100; i++)); do
    [ "$(wc -l <"$work/follow_audit.csv")" -ge "$(wc -l <"$work/audit.csv")" ] && break
    sleep 0.1
done
kill -INT "$apid"
st=0
for ((i = 0; i < 50; i++)); do kill -0 "$apid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$apid" 2>/dev/null && { bad "audit --follow ignored SIGINT"; kill -KILL "$apid"; }
wait "$apid" || st=$?
check "audit --follow exits 0 on SIGINT" [ "$st" = 0 ]
ctl audit --subject bob --format csv >"$work/audit.csv"
check "audit --follow printed the subject's entries" cmp -s "$work/follow_audit.csv" "$work/audit.csv"
for ((i = 0; i < 100; i++)); do [ -s "$work/head.status" ] && break; sleep 0.1; done
# A follower that outlived its reader is a failure, never a hang of the test.
if pkill -KILL -f "marketctl --data-dir $work/data events --follow"; then
    bad "a follower kept running after its reader closed the pipe"
fi
wait "$hpid" || true
check "a closed pipe ends the follower cleanly (status $(cat "$work/head.status" 2>/dev/null))" \
    [ "$(cat "$work/head.status" 2>/dev/null)" = 0 ]
check "head -n 3 of a follower" [ "$(wc -l <"$work/head3.jsonl")" = 3 ]

log "followers checked"
# ---- CSV over HTTP -----------------------------------------------------------------------------
req() { # ROLE PATH [curl options]: $code, body in $work/body, headers in $work/hdr
    local role=$1 path=$2 auth=()
    shift 2
    [ "$role" = none ] || auth=(-H "Authorization: Bearer ${tok[$role]}")
    code=$(curl -sS -D "$work/hdr" -o "$work/body" -w '%{http_code}' "${auth[@]}" "$@" "$base$path") || code=000
}
req auditor "/v1/audit?subject=wang" -H "Accept: text/csv"
check "audit csv 200" [ "$code" = 200 ]
check "text/csv content type" grep -qi '^Content-Type: text/csv' "$work/hdr"
req auditor "/v1/events?from=80&limit=100" -H "Accept: text/csv"
check "events csv: the CJK name quoted, quotes doubled, newline kept" \
    grep -qF '""name"":""王小明, \""Ming\""\nLi""' "$work/body"
req auditor "/v1/orders?limit=2" -H "Accept: text/csv"
check "orders csv: header, two rows" [ "$(grep -c $'\r$' "$work/body")" = 3 ]
check "orders csv: X-Next-Cursor" grep -qi '^X-Next-Cursor: [0-9a-f]' "$work/hdr"
req analyst "/v1/orders?limit=0" -H "Accept: text/csv"
check "an error stays json" [ "$code" = 400 ] && check "error body json" jq -e .error "$work/body" >/dev/null

# ---- summaries over HTTP -------------------------------------------------------------------------
q="from=2026-11-20&to=2026-11-26"
for k in order-status products categories top-products provider-rates; do
    req analyst "/v1/summaries/$k?$q"
    check "summary $k 200" [ "$code" = 200 ]
    check "summary $k equals marketctl" [ "$(jq -c .items[] "$work/body")" = \
        "$(ctl summary "$k" --from 2026-11-20 --to 2026-11-26 | jq -c .)" ]
done
req analyst "/v1/summaries/rejections"
check "rejections" [ "$(jq '[.items[].count] | add' "$work/body")" = "$(grep -c '"rejected"' "$work/load.results")" ]
req carol "/v1/summaries/products?$q&provider=carol"
check "member: own provider 200" [ "$code" = 200 ]
req carol "/v1/summaries/products?$q&provider=dave"
check "member: another provider 403" [ "$code" = 403 ]
req carol "/v1/summaries/rejections?provider=carol"
check "member: rejections 403" [ "$code" = 403 ]
req none "/v1/summaries/products?$q"
check "no token 401" [ "$code" = 401 ]
req analyst "/v1/summaries/nope?$q"
check "unknown summary 404" [ "$code" = 404 ]
req analyst "/v1/summaries/products"
check "products without days 400" [ "$code" = 400 ]
req analyst "/v1/summaries/products?$q&day=2026-11-20"
check "unknown parameter 400" [ "$code" = 400 ]
req analyst "/v1/summaries/products?$q" -H "Accept: text/csv"
check "summary as csv" [ "$(head -1 "$work/body" | tr -d '\r')" = \
    "product_id,category_id,provider,orders,units,gross,paid,refunded,revenue" ]

marketd_stop an
echo "analyst: $passed passed, $failed failed"
[ "$failed" = 0 ]
