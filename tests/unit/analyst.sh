#!/usr/bin/env bash
# What analysts and auditors reach for (no broker), on the demo day plus one
# member whose name holds CJK text, a comma, quotes and a newline:
#  - --format json|csv|table on events, orders, audit, sales, get, summary:
#    RFC 4180 quoting, aligned columns by display width, money in yuan;
#  - slices: events/export by --stream, --from/--to, --since/--until; a
#    partial export passes scripts/audit-export.sh, anchored on its prev_hash,
#    which equals the full export's hash at the seq before; replay --as-of;
#  - summaries (order-status, products, categories, top-products,
#    provider-rates, rejections) and verify (live == rebuild) with them;
#  - the README's one command for last week's sales per product as CSV.
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-analyst-XXXXXX")
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ctl() { "$ROOT/$B/marketctl" --data-dir "$T/d" "$@"; }
n=0; ok() { n=$((n + 1)); }

{ cat "$ROOT/demo/demo-day.jsonl"
  printf '%s\n' '{"command_id":"x-1","type":"RegisterMember","actor":"wang","issued_at":"2026-12-21T16:10:00Z","data":{"member_id":"wang","kind":"individual","name":"王小明, \"Ming\"\nLi","identity_hash":"aa4541df14dce93a911b22afa41288a88ef01500c910366248bf046c268a3a97","email":"w@example.com"}}'
} >"$T/in.jsonl"
"$ROOT/$B/marketd" --input "$T/in.jsonl" --data-dir "$T/d" --clock command \
    --results "$T/results.jsonl" 2>/dev/null
tail -1 "$T/results.jsonl" | grep -q '"accepted"' || fail "wang not registered"

# ---- formats ------------------------------------------------------------------------
# CSV: header row, CRLF, the name quoted with its quotes doubled and its newline kept.
ctl get account wang --format csv >"$T/wang.csv"
head -1 "$T/wang.csv" | grep -q $'^member_id,kind,name,.*\r$' || fail "csv header"; ok
grep -q $'^wang,individual,"王小明, ""Ming""$' "$T/wang.csv" || fail "csv quoting: $(cat "$T/wang.csv")"; ok
grep -q $'^Li",' "$T/wang.csv" || fail "csv newline inside a quoted field"; ok
[ "$(grep -c $'\r$' "$T/wang.csv")" = 2 ] || fail "csv: two records end in CRLF"; ok
# The CSV reads back as the same text (a CSV parser in jq would be long: rebuild the
# field from the JSON and compare).
name=$(ctl get account wang | jq -r .name)
csvname=$(printf '"%s"' "$(sed 's/"/""/g' <<<"$name")")
grep -qF "$(head -1 <<<"$csvname")" "$T/wang.csv" || fail "csv field from the JSON name"; ok

# Table: the column after the CJK name starts at the same display column in the
# header and in the row (CJK characters are two columns wide).
ctl get account wang --format table >"$T/wang.txt"
[ "$(wc -l <"$T/wang.txt")" = 2 ] || fail "table: header and one row (newline shown as \\n)"; ok
grep -q 'Li' "$T/wang.txt" && grep -qF '"Ming"\nLi' "$T/wang.txt" || fail "table: newline as \\n"; ok
col() { # display column where $2 starts in line $1 of the table
    local line; line=$(sed -n "$1p" "$T/wang.txt")
    local pre=${line%%"$2"*}
    printf '%s' "$pre" | LC_ALL=C.UTF-8 wc -L
}
[ "$(col 1 registered_at)" = "$(col 2 1797869400000)" ] || \
    fail "table misaligned after CJK: $(col 1 registered_at) vs $(col 2 1797869400000)"; ok
# Money in yuan.
ctl orders --format table >"$T/orders.txt"
grep -q '¥199.00' "$T/orders.txt" || fail "table: money in yuan"; ok
ctl sales --format table | grep -q '¥398.00' || fail "sales table: gross in yuan"; ok
# json stays the default; every listing takes --format.
[ "$(ctl orders | head -1 | jq -r .order_id)" = o-1001 ] || fail "json default"; ok
[ "$(ctl orders --format csv | head -1 | cut -d, -f1)" = order_id ] || fail "orders csv"; ok
[ "$(ctl audit --subject bob --format csv | head -1 | cut -d, -f1)" = seq ] || fail "audit csv"; ok
[ "$(ctl events --limit 2 --format csv | wc -l)" = 3 ] || fail "events csv"; ok
if ctl orders --format xml 2>"$T/err"; then fail "--format xml accepted"; fi
grep -q "format 'xml'" "$T/err" || fail "bad format not named"; ok

# ---- slices -----------------------------------------------------------------------------
[ "$(ctl events --stream order:o-1001 | jq -r .version | paste -sd,)" = 1,2,3,4,5 ] || fail "--stream"; ok
[ "$(ctl events --from 10 --to 12 | jq -r .seq | paste -sd,)" = 10,11,12 ] || fail "--from/--to"; ok
[ "$(ctl events --stream order:o-1001 --to 31 | jq -r .seq | paste -sd,)" = 30,31 ] || fail "--stream --to"; ok
since=$(ctl events --from 20 --limit 1 | jq .recorded_at)
until=$(ctl events --from 25 --limit 1 | jq .recorded_at)
ctl events --since "$since" --until "$until" | jq -e --argjson s "$since" --argjson u "$until" \
    -s 'length > 0 and all(.[]; .recorded_at >= $s and .recorded_at <= $u)' >/dev/null || fail "--since/--until"; ok
ctl events --since 2026-12-21T16:10:00Z | jq -r .stream | grep -qx member:wang || fail "--since as a time"; ok

ctl export >"$T/full.jsonl" 2>/dev/null
ctl export --from 40 --to 50 >"$T/part.jsonl" 2>/dev/null
[ "$(jq -s 'map(.seq) | [first, last, length]' -c "$T/part.jsonl")" = "[40,50,11]" ] || fail "export slice"; ok
bash "$ROOT/scripts/audit-export.sh" "$T/part.jsonl" >"$T/ae.out" || fail "partial export does not verify"; ok
# its anchor is the full export's hash at seq 39
[ "$(head -1 "$T/part.jsonl" | jq -r .prev_hash)" = "$(jq -r 'select(.seq == 39) | .hash' "$T/full.jsonl")" ] \
    || fail "anchor differs from the full export"; ok
# a line cut from the middle of a slice is still caught
sed 3d "$T/part.jsonl" >"$T/cut.jsonl"
if bash "$ROOT/scripts/audit-export.sh" "$T/cut.jsonl" >/dev/null 2>&1; then fail "cut slice accepted"; fi; ok
ctl export --since "$since" --until "$until" >"$T/tpart.jsonl" 2>/dev/null
bash "$ROOT/scripts/audit-export.sh" "$T/tpart.jsonl" >/dev/null || fail "time slice does not verify"; ok

# replay --as-of: the projections as of a time.
ctl replay --as-of "$until" --out "$T/r" >"$T/replay.json" 2>/dev/null
[ "$(jq .events "$T/replay.json")" = "$(ctl events --until "$until" | wc -l)" ] || fail "replay --as-of"; ok
if ctl replay --as-of "$until" --until 3 --out "$T/r2" 2>/dev/null; then fail "--as-of with --until"; fi; ok

# ---- summaries ------------------------------------------------------------------------------
s() { ctl summary "$@"; }
[ "$(s order-status --from 2026-11-20 --to 2026-11-26 --provider dave --format csv | tail -n +2 | tr -d '\r' | paste -sd' ')" \
    = "dave,cancelled,1 dave,partially_refunded,1" ] || fail "order-status"; ok
[ "$(s products --from 2026-11-20 --to 2026-11-26 | jq -r '"\(.product_id)=\(.revenue)"' | paste -sd' ')" \
    = "p-debian=4900 p-pgsql=39800" ] || fail "products"; ok
[ "$(s categories --from 2026-11-26 --to 2026-11-26 | jq -r .category_id | paste -sd' ')" = "databases images" ] \
    || fail "categories"; ok
[ "$(s top-products --from 2026-11-20 --to 2026-11-26 --top 1 | jq -r .product_id)" = p-pgsql ] || fail "top"; ok
[ "$(s provider-rates --from 2026-11-20 --to 2026-11-26 | jq -c 'select(.provider == "dave") | [.refund_rate, .dispute_rate]')" \
    = "[0.5,0.5]" ] || fail "provider-rates"; ok
[ "$(s rejections | jq -s 'map(.count) | add')" = "$(grep -c '"rejected"' "$T/results.jsonl")" ] \
    || fail "rejections count every rejected command"; ok
if s products 2>/dev/null; then fail "products without days"; fi; ok
if s products --from 2026-01-01 --to 2027-06-01 2>/dev/null; then fail "a range over 366 days"; fi; ok
ctl summary products --from 2026-11-20 --to 2026-11-26 --format table | grep -q '¥398.00' || fail "summary table yuan"; ok
ctl verify >/dev/null 2>&1 || fail "verify (live == rebuild) with p_rejections"; ok

# ---- the README's command: last week's sales per product as CSV ------------------------------
cmd=$(grep -m1 '^marketctl --data-dir /var/lib/marketd summary products' "$ROOT/README.md") || fail "README command"
mkdir -p "$T/bin"
cat >"$T/bin/date" <<'EOF'
#!/bin/sh
case "$*" in *"7 days ago"*) echo 2026-11-20 ;; *yesterday*) echo 2026-11-26 ;; *) exec /bin/date "$@" ;; esac
EOF
chmod +x "$T/bin/date"
(cd "$T" && PATH="$T/bin:$ROOT/$B:$PATH" bash -c "${cmd//\/var\/lib\/marketd/$T/d}") || fail "README command fails"
[ "$(head -1 "$T/sales.csv" | tr -d '\r')" = "product_id,category_id,provider,orders,units,gross,paid,refunded,revenue" ] \
    || fail "README csv header"; ok
grep -q '^p-pgsql,databases,carol,2,2,39800,39800,0,39800' "$T/sales.csv" || fail "README csv row"; ok
echo "analyst: $n passed, 0 failed"
