# One byte of an event's body flipped in the store file: marketctl verify exits 1
# naming the first bad seq. The body holds the stream's name as a msgpack string
# (0xae: 14 bytes), which tells it from the index's keys and the rules' state.
cp -r "$work/s" "$work/flip"
offset=$(LC_ALL=C grep -obUaP '\xaecomplaint:cp-1' "$work/flip/data.mdb" | head -1 | cut -d: -f1)
[ -n "$offset" ] || die "no event body of complaint:cp-1 in the data file"
printf 'C' | dd of="$work/flip/data.mdb" bs=1 seek="$((offset + 11))" conv=notrunc status=none#!/usr/bin/env bash
# The README's independent recipe (scripts/audit-export.sh: jq, base64, basenc,
# sha256sum only) accepts an export of a real store and rejects a tampered one;
# marketctl verify rejects a store whose bytes were altered, naming the seq.
set -euo pipefail
build=${MARKETD_BUILD:-build}
work=$(mktemp -d /tmp/marketd-audit.XXXXXX)
trap 'rm -rf "$work"' EXIT
passed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
die() { echo "not ok - $*" >&2; echo "audit: $passed passed, 1 failed"; exit 1; }

"$build/marketd" --input demo/demo-day.jsonl --data-dir "$work/s" --clock command \
    --results "$work/results.jsonl" --log-level warn
"$build/marketctl" --data-dir "$work/s" export >"$work/export.jsonl" 2>/dev/null
events=$(wc -l <"$work/export.jsonl")
[ "$events" -gt 60 ] || die "export has $events events"
bash scripts/audit-export.sh "$work/export.jsonl" >/dev/null || die "recipe rejects a good export"
ok "independent recipe accepts the export of $events events"

head=$("$build/marketctl" --data-dir "$work/s" verify 2>/dev/null | jq -r .head)
[ "$head" = "$(tail -1 "$work/export.jsonl" | jq -r .hash)" ] || die "verify head != export's last hash"
ok "marketctl verify and the export agree on the head"

# A body altered in the export: the recipe names the seq.
jq -c 'if .seq == 20 then .body = (.body | @base64d | sub("o-1001"; "o-9001") | @base64) else . end' \
    "$work/export.jsonl" >"$work/tampered.jsonl"
if out=$(bash scripts/audit-export.sh "$work/tampered.jsonl" 2>&1); then die "recipe accepts a tampered body"; fi
case $out in *"seq 20"*) ;; *) die "recipe did not name seq 20: $out" ;; esac
ok "recipe rejects an altered body at seq 20"

# A readable field edited, the body left alone: the recipe decodes the body
# (scripts/msgpack-body.jq) and names the seq and the field.
seq=$(jq -r 'select(.data.amount != null) | .seq' "$work/export.jsonl" | head -1)
jq -c --argjson s "$seq" 'if .seq == $s then .data.amount += 1 else . end' \
    "$work/export.jsonl" >"$work/edited.jsonl"
if out=$(bash scripts/audit-export.sh "$work/edited.jsonl" 2>&1); then die "recipe accepts an edited data.amount"; fi
case $out in *"seq $seq: readable field data differs"*) ;; *) die "recipe did not name seq $seq: $out" ;; esac
jq -c 'if .seq == 3 then .stream = "member:mallory" else . end' "$work/export.jsonl" >"$work/edited2.jsonl"
if out=$(bash scripts/audit-export.sh "$work/edited2.jsonl" 2>&1); then die "recipe accepts an edited stream"; fi
case $out in *"seq 3: readable field stream"*) ;; *) die "recipe did not name seq 3: $out" ;; esac
ok "recipe rejects readable fields that differ from the body (seq $seq data.amount, seq 3 stream)"

# A link removed from the export: the recipe notices the gap.
sed 7d "$work/export.jsonl" >"$work/gap.jsonl"
if bash scripts/audit-export.sh "$work/gap.jsonl" >/dev/null 2>&1; then die "recipe accepts a gap"; fi
ok "recipe rejects a missing event"

# One byte of an event's body flipped in the store file: marketctl verify exits 1
# naming the first bad seq. The body holds the stream's name as a msgpack string
# (0xae: 14 bytes), which tells it from the index's keys and the rules' state.
cp -r "$work/s" "$work/flip"
offset=$(LC_ALL=C grep -obUaP '\xaecomplaint:cp-1' "$work/flip/data.mdb" | head -1 | cut -d: -f1)
[ -n "$offset" ] || die "no event body of complaint:cp-1 in the data file"
printf 'C' | dd of="$work/flip/data.mdb" bs=1 seek="$((offset + 11))" conv=notrunc status=none
if out=$("$build/marketctl" --data-dir "$work/flip" verify 2>&1); then die "verify accepts a flipped byte"; fi
echo "$out" | grep -q 'first_bad_seq' || die "verify did not name the seq: $out"
ok "marketctl verify rejects a flipped byte ($(echo "$out" | grep -o '"first_bad_seq":[0-9]*' | head -1))"
echo "audit: $passed passed, 0 failed"
