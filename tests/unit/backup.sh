#!/usr/bin/env bash
# marketctl backup (no broker): the copy of a demo store verifies with the same
# head and the same derived digests, and marketd continues on it (offline mode
# appends to it as to the original, to the same head); an existing store as the
# target and a missing --out are refused. The copy under load, with a real
# broker, is tests/integration/test_backup.sh.
set -euo pipefail
build=${MARKETD_BUILD:-build}
work=$(mktemp -d /tmp/marketd-backup.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
die() { echo "not ok - $*" >&2; echo "backup: $passed passed, 1 failed"; exit 1; }

head -40 demo/demo-day.jsonl >"$work/first.jsonl"
tail -n +41 demo/demo-day.jsonl >"$work/rest.jsonl"
offline() { "$build/marketd" --input "$1" --data-dir "$2" --clock command \
    --results "$work/r.jsonl" --log-level warn; }
offline "$work/first.jsonl" "$work/s"

"$build/marketctl" --data-dir "$work/s" backup --out "$work/b" >"$work/b.json" || die "backup"
[ "$(jq -r .ok "$work/b.json")" = true ] || die "backup output: $(cat "$work/b.json")"
"$build/marketctl" --data-dir "$work/s" verify >"$work/s.v" 2>/dev/null || die "verify original"
"$build/marketctl" --data-dir "$work/b" verify >"$work/b.v" 2>/dev/null || die "verify backup"
for f in .head .derived.state.sha256 .derived.outcomes.sha256 .projections.orders.sha256; do
    [ "$(jq -r "$f" "$work/s.v")" = "$(jq -r "$f" "$work/b.v")" ] || die "backup's $f differs"
done
[ "$(jq -r .head "$work/b.json")" = "$(jq -r .head "$work/s.v")" ] || die "backup reports another head"
ok "the backup verifies with the original's head and digests ($(jq -r .events "$work/b.json") events)"

offline "$work/rest.jsonl" "$work/s"
offline "$work/rest.jsonl" "$work/b"
[ "$("$build/marketctl" --data-dir "$work/b" verify 2>/dev/null | jq -r .head)" = \
  "$("$build/marketctl" --data-dir "$work/s" verify 2>/dev/null | jq -r .head)" ] ||
    die "marketd on the backup ends at another head"
ok "marketd continues on the backup to the original's head"

if "$build/marketctl" --data-dir "$work/s" backup --out "$work/b" >/dev/null 2>"$work/e"; then
    die "backup over an existing store"; fi
grep -q "holds a store already" "$work/e" || die "no reason given: $(cat "$work/e")"
set +e
"$build/marketctl" --data-dir "$work/s" backup >/dev/null 2>&1
rc=$?
set -e
[ "$rc" = 2 ] || die "backup without --out exits $rc, not 2"
ok "an existing store and a missing --out are refused"

# --new-identity: a replica seeded from a backup is another store (fencing, docs/replication.md)
"$build/marketctl" --data-dir "$work/s" backup --out "$work/same" >"$work/same.json" 2>/dev/null ||
    die "backup (same identity)"
"$build/marketctl" --data-dir "$work/s" backup --out "$work/fresh" --new-identity \
    >"$work/fresh.json" 2>/dev/null || die "backup --new-identity"
orig=$(jq -r .store_id "$work/same.json")
[ "${#orig}" = 32 ] || die "no store_id in the backup report: $(cat "$work/same.json")"
fresh=$(jq -r .store_id "$work/fresh.json")
[ "${#fresh}" = 32 ] && [ "$fresh" != "$orig" ] || die "--new-identity kept the identity $orig"
[ "$(jq -r .head "$work/fresh.json")" = "$(jq -r .head "$work/same.json")" ] ||
    die "--new-identity changed the chain"
"$build/marketctl" --data-dir "$work/fresh" backup --out "$work/fresh2" >"$work/fresh2.json" 2>/dev/null
[ "$(jq -r .store_id "$work/fresh2.json")" = "$fresh" ] || die "the new identity did not stay"
ok "backup keeps the store identity; --new-identity gives the copy one of its own, same chain"
echo "backup: $passed passed, 0 failed"
