#!/usr/bin/env bash
# bench/legs.sh - where the latency went: reads market-load --latency-out
# files (one line per command: latency, then the stage times in wall-clock
# µs; market-load --help says which) and prints, per leg of the path, the
# nearest-rank p50/p99/p99.9 in ms over the commands whose stages are all
# known, and the leg's mean over the slowest 1% of those commands (its share
# of the tail). The broker's append times have ms resolution, so the legs
# beside them are ±1 ms (and may come out negative). bench/run.sh prints
# this beside the latency rows.
#
#   bash bench/legs.sh [--skip N] FILE...   (--skip: the first N lines of each file)
set -euo pipefail
skip=0
if [ "${1:-}" = --skip ]; then skip=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: bench/legs.sh [--skip N] FILE..." >&2; exit 2; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
# One line per command: the seven legs and the total, µs.
for f in "$@"; do tail -n +"$((skip + 1))" "$f"; done | awk '
    NF >= 10 && $2 && $4 && $5 && $6 && $7 && $8 && $9 && $10 {
        print $4 - $2, $5 - $4, $6 - $5, $7 - $6, $8 - $7, $9 - $8, $10 - $9, $1
    }' >"$tmp"
n=$(wc -l <"$tmp")
[ "$n" -gt 0 ] || { echo "no command with every stage known"; exit 0; }
# The slowest 1% (at least one command): the mean of each leg over them.
tail_means=$(sort -k8,8g "$tmp" | tail -n "$(((n + 99) / 100))" |
    awk '{ for (i = 1; i <= 8; i++) s[i] += $i } END { for (i = 1; i <= 8; i++) printf "%.2f ", s[i] / NR / 1000 }')
for i in 1 2 3 4 5 6 7 8; do cut -d' ' -f"$i" "$tmp" | sort -g | sed "s/^/$i /"; done | awk -v means="$tail_means" -v n="$n" '
    BEGIN {
        split("produce → commands append|commands append → fetched by marketd|fetched → batch start|batch start → commit|commit → publish|publish → results append|results append → seen by client|total (produce → result seen)", name, "|")
        split(means, mean, " ")
        printf "| leg (%d commands) | p50 ms | p99 ms | p99.9 ms | max ms | mean in the slowest 1%% |\n|---|---|---|---|---|---|\n", n
    }
    function pct(q,   r) { r = int((k * q + 99) / 100); if (r < 1) r = 1; return s[r] / 1000 }
    function flush() {
        if (k == 0) return
        printf "| %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", name[leg], pct(50), pct(99), pct(99.9), s[k] / 1000, mean[leg]
        k = 0
    }
    $1 != leg { flush(); leg = $1 }
    { s[++k] = $2 }
    END { flush() }'
