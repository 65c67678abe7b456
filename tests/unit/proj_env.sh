#!/usr/bin/env bash
# The projections' own environment (<data_dir>/proj; docs/projections.md):
# offline mode leaves it caught up; projections behind the log (an older copy
# of proj/ put back, as after a crash between the log's commit and the
# projector's) still verify, at their watermark; --min-seq waits, bounded, and
# fails clearly; a restart catches them up; backup copies both environments;
# a store of the old layout (projections inside the log's environment, here a
# replay's output) is migrated by its first writable open.
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-proj-env-XXXXXX")
trap 'rm -rf "$T"' EXIT
n=0
ok() { n=$((n + 1)); echo "ok - $*"; }
fail() { echo "not ok - $*" >&2; echo "proj_env: $n passed, 1 failed"; exit 1; }
ctl() { "$ROOT/$B/marketctl" --data-dir "$T/d" "$@"; }
offline() { "$ROOT/$B/marketd" --input "$1" --data-dir "$T/d" --clock command \
    --results "$T/r.jsonl" --log-level warn; }

head -40 "$ROOT/demo/demo-day.jsonl" >"$T/first.jsonl"
tail -n +41 "$ROOT/demo/demo-day.jsonl" >"$T/rest.jsonl"
: >"$T/empty.jsonl"

offline "$T/first.jsonl"
[ -f "$T/d/proj/data.mdb" ] || fail "no proj/ environment"
ctl stats >"$T/s1"
[ "$(jq -r .projections.environment "$T/s1")" = proj ] || fail "stats environment: $(cat "$T/s1")"
[ "$(jq .projections.seq "$T/s1")" = "$(jq .events "$T/s1")" ] || fail "offline exit before catch-up"
ok "offline mode leaves the projections in proj/, caught up ($(jq .events "$T/s1") events)"

# Projections behind the log: the proj/ of the first part, the log of both.
cp -r "$T/d/proj" "$T/proj-old"
offline "$T/rest.jsonl"
head=$(ctl stats | jq .events)
rm -rf "$T/d/proj" && cp -r "$T/proj-old" "$T/d/proj"
ctl stats >"$T/s2"
lagging=$(jq .projections.seq "$T/s2")
[ "$lagging" -lt "$head" ] || fail "the projections should lag: $lagging of $head"
ctl verify >"$T/v" 2>/dev/null || fail "verify of lagging projections: $(cat "$T/v")"
[ "$(jq .projections_seq "$T/v")" = "$lagging" ] && [ "$(jq .events "$T/v")" = "$head" ] ||
    fail "verify did not check at the watermark: $(cat "$T/v")"
ok "lagging projections (seq $lagging, log $head) verify against a rebuild up to their watermark"

set +e
ctl get order o-1002 --min-seq "$head" --wait-ms 150 >/dev/null 2>"$T/e"
rc=$?
set -e
[ "$rc" = 1 ] || fail "--min-seq beyond the projections exits $rc"
grep -q "projections are at seq $lagging after 150 ms" "$T/e" || fail "--min-seq message: $(cat "$T/e")"
ctl get order o-1002 --min-seq "$lagging" --wait-ms 150 >/dev/null || fail "--min-seq reached"
ok "--min-seq waits, bounded, and names the watermark when it times out"

offline "$T/empty.jsonl" # a restart: the projections catch up from their watermark
[ "$(ctl stats | jq .projections.seq)" = "$head" ] || fail "no catch-up at start"
ctl get order o-1002 --min-seq "$head" --wait-ms 150 >/dev/null || fail "--min-seq after catch-up"
ctl verify >"$T/v" 2>/dev/null && [ "$(jq .projections_seq "$T/v")" = "$head" ] || fail "verify after catch-up"
ok "a restart catches the projections up ($lagging -> $head)"

# backup: proj/ first, then the log; the copy verifies with the same digests.
ctl backup --out "$T/b" >"$T/b.json" || fail "backup"
[ -f "$T/b/proj/data.mdb" ] && [ "$(jq .projections_seq "$T/b.json")" = "$head" ] ||
    fail "backup without the projections: $(cat "$T/b.json")"
"$ROOT/$B/marketctl" --data-dir "$T/b" verify >"$T/bv" 2>/dev/null || fail "verify of the backup"
[ "$(jq -c .projections "$T/bv")" = "$(jq -c .projections "$T/v")" ] || fail "backup digests differ"
ok "backup copies both environments; the copy verifies with the same digests"

# The old layout: a replay's output keeps the projections in the log's environment.
ctl replay --until 60 --out "$T/old" >/dev/null 2>&1 || fail "replay"
mdb_stat -s p_meta "$T/old" >/dev/null 2>&1 || fail "replay output without p_meta"
"$ROOT/$B/marketctl" --data-dir "$T/old" verify >"$T/ov1" 2>/dev/null || fail "verify, old layout"
"$ROOT/$B/marketctl" --data-dir "$T/old" rebuild >/dev/null 2>&1 || fail "rebuild (migration)"
[ -f "$T/old/proj/data.mdb" ] || fail "no proj/ after the migration"
if mdb_stat -s p_meta "$T/old" >/dev/null 2>&1; then fail "old p_* databases left"; fi
"$ROOT/$B/marketctl" --data-dir "$T/old" verify >"$T/ov2" 2>/dev/null || fail "verify after migration"
[ "$(jq -c .projections "$T/ov1")" = "$(jq -c .projections "$T/ov2")" ] || fail "migration changed digests"
ok "a store of the old layout is migrated: rebuilt in proj/, its p_* dropped, same digests"

# Offline mode runs the projector with the configuration's projections.* keys
# (before issue 17's third pass it used the built-in values whatever was set).
"$ROOT/$B/marketd" --input "$ROOT/demo/demo-day.jsonl" --data-dir "$T/k" --clock command \
    --results /dev/null --log-level info --set projections.max_events=7 \
    --set projections.sync_ms=0 --set projections.priority=low 2>"$T/k.log" || fail "offline with projections.*"
grep -q 'msg="projector started" seq=0 max_events=7 sync_ms=0 priority=low' "$T/k.log" ||
    fail "offline ignored projections.*: $(grep projector "$T/k.log")"
"$ROOT/$B/marketctl" --data-dir "$T/k" verify >"$T/kv" 2>/dev/null || fail "verify after 7-event steps"
[ "$(jq -c .projections "$T/kv")" = "$(jq -c .projections "$T/v")" ] || fail "7-event steps changed digests"
"$ROOT/$B/marketd" --input "$T/empty.jsonl" --data-dir "$T/k2" --results /dev/null \
    --log-level info 2>"$T/k2.log" || fail "offline with the defaults"
grep -q 'msg="projector started" seq=0 max_events=8192 sync_ms=1000 priority=idle' "$T/k2.log" ||
    fail "offline's projector defaults: $(grep projector "$T/k2.log")"
ok "offline mode takes projections.max_events, sync_ms and priority from the configuration (defaults 8192, 1000, idle)"

echo "proj_env: $n passed, 0 failed"
