#!/usr/bin/env bash
# audit-export.sh - checks the hash chain of a `marketctl export` with standard
# tools only (jq, base64, basenc, od, sha256sum, openssl): none of marketd's
# code is used.
#
#   marketctl --data-dir DIR export > export.jsonl
#   bash scripts/audit-export.sh export.jsonl
#   bash scripts/audit-export.sh --checkpoints cps.jsonl --keys KEYDIR export.jsonl
#
# For each line: seq must follow the previous one, prev_hash must equal the
# previous line's hash (32 zero bytes before seq 1), and
# hash = SHA-256(prev_hash bytes || base64-decoded body). Exit 1 names the
# first bad seq. An export that starts after seq 1 (marketctl export --from or
# --since) is anchored on the prev_hash of its first line: a checkpoint at the
# seq before it must sign that prev_hash, checkpoints further back are counted
# and skipped (check the anchor against them with a full export: its hash at
# that seq must equal the prev_hash).
#
# Then each line's readable fields (seq ... data) must equal its hashed body,
# decoded by scripts/msgpack-body.jq: a msgpack decoder in jq for the types a
# body uses (no standard command-line tool decodes msgpack, and asking
# marketctl would trust the code under audit). An edited readable field (say
# data.amount) with the body left alone exits 1 naming the seq and the field.
#
# With --checkpoints (JSON lines from `marketctl checkpoints`) and --keys (a
# directory of REPLICA.pub files), each checkpoint's Ed25519 signature is
# checked with `openssl pkeyutl -verify` over its canonical text (docs/audit.md,
# "The checkpoint encoding"), then its hash is compared with the export's line
# at its seq. Exit 1 names the first bad signature, differing hash, or a
# checkpoint past the export's end (a cut tail).
set -euo pipefail

cps="" keys=""
while [ $# -gt 0 ]; do
    case $1 in
        --checkpoints) cps=$2; shift 2 ;;
        --keys) keys=$2; shift 2 ;;
        *) break ;;
    esac
done
{ [ -z "$cps" ] && [ -z "$keys" ]; } || { [ -n "$cps" ] && [ -n "$keys" ]; } ||
    { echo "usage: audit-export.sh [--checkpoints CPS.jsonl --keys DIR] [EXPORT]" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/audit-export.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cat "${1:-/dev/stdin}" >"$tmp/export.jsonl"

zero=$(printf '0%.0s' {1..64})
prev=""
expect=""
count=0
declare -A hash_at=()
: >"$tmp/bodies.hex"
while IFS=$'\t' read -r seq p body h; do
    if [ -z "$expect" ]; then
        expect=$seq
        if [ "$seq" = 1 ]; then prev=$zero; else prev=$p; fi
        first=$seq anchor=$prev
    fi
    if [ "$seq" != "$expect" ]; then echo "seq $seq: expected seq $expect" >&2; exit 1; fi
    if [ "$p" != "$prev" ]; then echo "seq $seq: prev_hash is not the previous hash" >&2; exit 1; fi
    got=$({ printf %s "$p" | tr a-f A-F | basenc --base16 -d; printf %s "$body" | base64 -d; } |
          sha256sum | cut -d' ' -f1)
    if [ "$got" != "$h" ]; then echo "seq $seq: hash differs from SHA-256(prev_hash || body)" >&2; exit 1; fi
    printf %s "$body" | base64 -d | od -An -v -tx1 | tr -d ' \n' >>"$tmp/bodies.hex"
    echo >>"$tmp/bodies.hex"
    prev=$h
    [ -z "$cps" ] || hash_at[$seq]=$h
    expect=$((seq + 1))
    count=$((count + 1))
done < <(jq -r '[.seq, .prev_hash, .body, .hash] | @tsv' "$tmp/export.jsonl")
[ "$count" -gt 0 ] || { echo "empty export" >&2; exit 1; }
jq -c . "$tmp/export.jsonl" >"$tmp/readable.jsonl"
bad=$(paste "$tmp/bodies.hex" "$tmp/readable.jsonl" | jq -R -r -f "$here/msgpack-body.jq" | grep -v -m1 '^ok$' || true)
if [ -n "$bad" ]; then echo "$bad" >&2; exit 1; fi
echo "chain ok: $count events, head $prev; readable fields equal the hashed bodies"
[ -n "$cps" ] || exit 0

# The checkpoints: the signed text of each, rebuilt from its JSON fields.
last=$((expect - 1))
n=0 before=0
while IFS= read -r cp; do
    [ -n "$cp" ] || continue
    n=$((n + 1))
    replica=$(jq -r .replica <<<"$cp")
    seq=$(jq -r .seq <<<"$cp")
    case "$(jq -r .version <<<"$cp")" in 1 | 2) ;; *) echo "checkpoint $n: unknown version" >&2; exit 1 ;; esac
    [ -f "$keys/$replica.pub" ] || { echo "checkpoint $n: no key $replica.pub" >&2; exit 1; }
    jq -j '"marketd checkpoint v\(.version)\nreplica \(.replica)\nseq \(.seq)\nhash \(.hash)\n" +
           "recorded_at \(.recorded_at)\n" + (if .version >= 2 then "published \(.published)\n" else "" end) +
           ([.offsets[] | "offset \(.topic) \(.partition) \(.next)\n"] | join(""))' \
        <<<"$cp" >"$tmp/msg"
    jq -r .signature <<<"$cp" | base64 -d >"$tmp/sig"
    openssl pkeyutl -verify -pubin -inkey "$keys/$replica.pub" -rawin -in "$tmp/msg" \
        -sigfile "$tmp/sig" >/dev/null 2>&1 ||
        { echo "checkpoint $n (replica $replica, seq $seq): bad signature" >&2; exit 1; }
    if [ "$seq" -lt $((first - 1)) ]; then # before a partial export: not checkable here
        before=$((before + 1))
        continue
    fi
    if [ "$seq" -gt "$last" ]; then
        echo "the export ends at seq $last but replica $replica signed seq $seq > $last" >&2
        exit 1
    fi
    [ "$seq" != $((first - 1)) ] || hash_at[$seq]=$anchor
    if [ "${hash_at[$seq]:-}" != "$(jq -r .hash <<<"$cp")" ]; then
        echo "different hash at seq $seq (replica $replica)" >&2
        exit 1
    fi
done <"$cps"
echo "checkpoints ok: $((n - before)) signed checkpoints match the export ($before before its first seq $first, not checked)"
