#!/usr/bin/env bash
# marketctl's projection commands on the demo day: get, orders, audit, sales,
# stats, paging with a cursor, replay, rebuild, verify; then one altered
# projection record (mdb_dump | edit | mdb_load) makes verify exit 1 naming it.
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-proj-sh-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ctl() { "$ROOT/$B/marketctl" --data-dir "$T/d" "$@"; }
n=0; ok() { n=$((n + 1)); }

"$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/d" --clock command \
    --results "$T/results.jsonl" 2>/dev/null

# get: one object each; a missing one exits 1 with a message.
[ "$(ctl get order o-1002 | jq -r .status)" = partially_refunded ] || fail "get order"; ok
[ "$(ctl get order o-1002 | jq -r .dispute.ruling)" = split ] || fail "dispute ruling"; ok
[ "$(ctl get account bob | jq .balance)" = 80100 ] || fail "get account"; ok
[ "$(ctl get account bob2 --as-of 2026-11-27T00:00:00Z | jq -r '.restrictions[0]')" = restrict_ordering ] \
    || fail "restrictions"; ok
[ "$(ctl get store s-carol | jq -r .status)" = open ] || fail "get store"; ok
[ "$(ctl get product p-debian | jq .units)" = 3 ] || fail "get product"; ok
[ "$(ctl get complaint cp-1 | jq -r .status)" = ruled ] || fail "get complaint"; ok
[ "$(ctl get sanction sn-1 | jq -r .lifted_at)" != null ] || fail "get sanction"; ok
if ctl get order o-none >"$T/out" 2>"$T/err"; then fail "missing order exits 0"; fi
grep -q "order 'o-none' not found" "$T/err" || fail "missing order message"; ok
if ctl get planet x 2>/dev/null; then fail "unknown kind exits 0"; fi; ok

# orders by buyer / status / day; JSON lines.
[ "$(ctl orders --buyer bob | jq -r .order_id | paste -sd,)" = o-1001,o-1004 ] || fail "orders --buyer"; ok
[ "$(ctl orders --status completed | jq -r .order_id | tr "\n" " ")" = "o-1001 o-1009 " ] || fail "orders --status"; ok
[ "$(ctl orders --day 2026-11-26 | wc -l)" = 4 ] || fail "orders --day"; ok
[ "$(ctl orders --provider dave --status cancelled | jq -r .order_id)" = o-1004 ] || fail "two filters"; ok

# paging: --limit and the next cursor on stderr walk the whole list once.
ctl orders --limit 3 >"$T/p1" 2>"$T/e1"
c=$(sed -n 's/^next_cursor: //p' "$T/e1")
[ -n "$c" ] && [ "$(wc -l <"$T/p1")" = 3 ] || fail "first page"
ctl orders --limit 3 --cursor "$c" >"$T/p2" 2>"$T/e2"
[ "$(wc -l <"$T/p2")" = 1 ] && ! grep -q next_cursor "$T/e2" || fail "second page"
[ "$(cat "$T/p1" "$T/p2" | jq -r .order_id | sort -u | wc -l)" = 4 ] || fail "pages overlap"; ok

# audit: bob sees who received his data; rejections carry their clause.
[ "$(ctl audit --subject bob | jq -c 'select(.action=="PersonalDataDisclosed" and .role=="subject")' | wc -l)" = 2 ] \
    || fail "disclosures under the subject"; ok
[ "$(ctl audit --subject bob | jq -r 'select(.action=="rejected:VOUCHER_USED") | .clause')" = 4.2.5 ] \
    || fail "rejection clause"; ok
[ "$(ctl audit --actor operator | jq -r .actor | sort -u)" = operator ] || fail "audit --actor"; ok
[ "$(ctl audit --subject member:dave | jq -r 'select(.action=="SanctionApplied") | .clause')" = 4.2.6 ] \
    || fail "sanction clause"; ok

# sales per provider and day.
[ "$(ctl sales --provider carol --from 2026-11-26 --to 2026-11-26 | jq -c '[.orders,.gross,.net]')" = "[2,39800,19900]" ] \
    || fail "sales carol"; ok
[ "$(ctl sales --from 2026-11-27 | jq -c "[.provider,.day,.completed,.net]")" = "[\"carol\",\"2026-12-06\",1,19900]" ] || fail "sales --from"; ok
[ "$(ctl stats | jq .projections.seq)" = "$(ctl stats | jq .events)" ] || fail "stats seq"; ok

# verify passes; replay --until builds a readable store of that moment.
ctl verify >"$T/v" 2>"$T/ve" || fail "verify of a good store"
[ "$(jq -r .ok "$T/v")" = true ] && grep -q "events/s" "$T/ve" || fail "verify output"; ok
"$ROOT/$B/marketctl" --data-dir "$T/d" replay --until 40 --out "$T/r" >/dev/null 2>&1 || fail "replay"
"$ROOT/$B/marketctl" --data-dir "$T/r" verify >/dev/null 2>&1 || fail "verify of the replay"
[ "$("$ROOT/$B/marketctl" --data-dir "$T/r" get order o-1002 | jq -r .dispute.status)" = open ] \
    || fail "replay state"; ok
if "$ROOT/$B/marketctl" --data-dir "$T/d" replay --until 999 --out "$T/r2" 2>/dev/null; then
    fail "replay beyond the head"; fi; ok
ctl export >/dev/null 2>&1 && ctl events --limit 1 | jq -e .seq >/dev/null || fail "events/export"; ok

# alter one byte of bob's account record: verify names the projection and key.
# the projections live in their own environment, <data_dir>/proj
mdb_dump -s p_accounts "$T/d/proj" >"$T/dump"
# bob's value is the line after his key; change one hex digit of his balance
# (the 14th 8-byte field of the record, hex offset 208).
awk 'prev == " 626f62" { d = substr($1, 209, 1); $0 = " " substr($1, 1, 208) (d == "0" ? "1" : "0") substr($1, 210) }
     { prev = $0; print }' \
    "$T/dump" >"$T/dump2"
# The line after bob's key is his value; make sure the edit changed it.
! cmp -s "$T/dump" "$T/dump2" || fail "tamper edit did nothing"
mdb_load -s p_accounts -f "$T/dump2" "$T/d/proj" 2>"$T/load.err" || fail "mdb_load: $(cat "$T/load.err")"
if ctl verify >"$T/v2" 2>"$T/ve2"; then fail "verify passed a tampered projection"; fi
[ "$(jq -r .projection "$T/v2")" = accounts ] && [ "$(jq -r .first_differing_key "$T/v2")" = bob ] \
    || fail "verify report: $(cat "$T/v2")"
grep -q "projection 'accounts' differs" "$T/ve2" || fail "verify message"; ok

# rebuild repairs it.
ctl rebuild >/dev/null 2>"$T/re" || fail "rebuild"
grep -q "rebuild: 81 events" "$T/re" || fail "rebuild summary"
ctl verify >/dev/null 2>&1 || fail "verify after rebuild"; ok
echo "proj_marketctl.sh: $n checks passed"
