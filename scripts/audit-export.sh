#!/usr/bin/env bash
# audit-export.sh - checks the hash chain of a `marketctl export` with standard
# tools only (jq, base64, basenc, sha256sum): none of marketd's code is used.
#
#   marketctl --data-dir DIR export > export.jsonl
#   bash scripts/audit-export.sh export.jsonl
#
# For each line: seq must follow the previous one, prev_hash must equal the
# previous line's hash (32 zero bytes before seq 1), and
# hash = SHA-256(prev_hash bytes || base64-decoded body). Exit 1 names the
# first bad seq. An export that starts after seq 1 is anchored on the
# prev_hash of its first line.
set -euo pipefail

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
    prev=$h
    expect=$((seq + 1))
    count=$((count + 1))
done < <(jq -r '[.seq, .prev_hash, .body, .hash] | @tsv' "${1:-/dev/stdin}")
echo "chain ok: $count events, head $prev"
