#!/usr/bin/env bash
# audit-export.sh - checks the hash chain of a `marketctl export` with standard
# tools only (jq, base64, basenc, od, sha256sum): none of marketd's code is used.
#
#   marketctl --data-dir DIR export > export.jsonl
#   bash scripts/audit-export.sh export.jsonl
#
# For each line: seq must follow the previous one, prev_hash must equal the
# previous line's hash (32 zero bytes before seq 1), and
# hash = SHA-256(prev_hash bytes || base64-decoded body). Exit 1 names the
# first bad seq. An export that starts after seq 1 is anchored on the
# prev_hash of its first line.
#
# Then each line's readable fields (seq ... data) must equal its hashed body,
# decoded by scripts/msgpack-body.jq: a msgpack decoder in jq for the types a
# body uses (no standard command-line tool decodes msgpack, and asking
# marketctl would trust the code under audit). An edited readable field (say
# data.amount) with the body left alone exits 1 naming the seq and the field.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/audit-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
input=${1:-/dev/stdin}
cat "$input" >"$tmp/export.jsonl"

zero=$(printf '0%.0s' {1..64})
prev=""
expect=""
count=0
while IFS=$'\t' read -r seq p body h; do
    if [ -z "$expect" ]; then
        expect=$seq
        if [ "$seq" = 1 ]; then prev=$zero; else prev=$p; fi
    fi
    if [ "$seq" != "$expect" ]; then echo "seq $seq: expected seq $expect" >&2; exit 1; fi
    if [ "$p" != "$prev" ]; then echo "seq $seq: prev_hash is not the previous hash" >&2; exit 1; fi
    got=$({ printf %s "$p" | tr a-f A-F | basenc --base16 -d; printf %s "$body" | base64 -d; } |
          sha256sum | cut -d' ' -f1)
    if [ "$got" != "$h" ]; then echo "seq $seq: hash differs from SHA-256(prev_hash || body)" >&2; exit 1; fi
    printf %s "$body" | base64 -d | od -An -v -tx1 | tr -d ' \n' >>"$tmp/bodies.hex"
    echo >>"$tmp/bodies.hex"
    prev=$h
    expect=$((seq + 1))
    count=$((count + 1))
done < <(jq -r '[.seq, .prev_hash, .body, .hash] | @tsv' "$tmp/export.jsonl")
[ "$count" -gt 0 ] || { echo "empty export" >&2; exit 1; }
jq -c . "$tmp/export.jsonl" >"$tmp/readable.jsonl"
bad=$(paste "$tmp/bodies.hex" "$tmp/readable.jsonl" | jq -R -r -f "$here/msgpack-body.jq" | grep -v -m1 '^ok$' || true)
if [ -n "$bad" ]; then echo "$bad" >&2; exit 1; fi
echo "chain ok: $count events, head $prev; readable fields equal the hashed bodies"
