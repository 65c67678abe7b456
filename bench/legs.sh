#!/usr/bin/env bash
# bench/legs.sh - where the latency went: reads market-load --latency-out
# files (one line per command: latency, then the stage times in wall-clock
# µs; market-load --help says which) and prints, per leg of the path, the
# nearest-rank p50/p99/p99.9 in ms over the commands whose stages are all
# known. The broker's append times have ms resolution, so the legs beside
# them are ±1 ms (and may come out negative). bench/run.sh prints this
# beside the latency rows.
#
#   bash bench/legs.sh [--skip N] FILE...   (--skip: the first N lines of each file)
set -euo pipefail
skip=0
if [ "${1:-}" = --skip ]; then skip=$2; shift 2; fi
[ $# -ge 1 ] || { echo "usage: bench/legs.sh [--skip N] FILE..." >&2; exit 2; }
for f in "$@"; do tail -n +"$((skip + 1))" "$f"; done | awk '
    NF >= 10 && $2 && $4 && $5 && $6 && $7 && $8 && $9 && $10 {
        print 1, $4 - $2; print 2, $5 - $4; print 3, $6 - $5; print 4, $7 - $6
        print 5, $8 - $7; print 6, $9 - $8; print 7, $10 - $9; print 8, $1
    }' | sort -k1,1n -k2,2g | awk '
    BEGIN {
        split("produce → commands append|commands append → fetched by marketd|fetched → batch start|batch start → commit|commit → publish|publish → results append|results append → seen by client|total (produce → result seen)", name, "|")
    }
    function pct(q,   r) { r = int((k * q + 99) / 100); if (r < 1) r = 1; return s[r] / 1000 }
    function flush() {
        if (k == 0) return
        if (!head++) printf "| leg (%d commands) | p50 ms | p99 ms | p99.9 ms | max ms |\n|---|---|---|---|---|\n", k
        printf "| %s | %.2f | %.2f | %.2f | %.2f |\n", name[leg], pct(50), pct(99), pct(99.9), s[k] / 1000
        k = 0
    }
    $1 != leg { flush(); leg = $1 }
    { s[++k] = $2 }
    END { flush(); if (!head) print "no command with every stage known" }'
