#!/usr/bin/env bash
# bench/ceiling.sh CORES DAEMON BROKER LOAD OFFLINE_CPU OFFLINE_RATE: the
# end-to-end row's ceiling on a machine of CORES cores, from the CPU seconds
# per 100,000 commands that marketd on Kafka (DAEMON), the broker (BROKER) and
# market-load (LOAD) used in the same runs: with every core busy and nothing
# else running, CORES x 100,000 commands in the sum of the three. Then the
# same with marketd at OFFLINE_CPU, its CPU offline on the same file, as if
# consuming and publishing cost it nothing. Both as fractions of OFFLINE_RATE
# (commands/s offline on the same file), the row's goal being 0.80 of it.
# bench/run.sh prints it under its CPU table (docs/performance.md, "What each
# row measures"); tests/unit/bench_smoke.sh checks it on known figures.
set -euo pipefail
[ $# -eq 6 ] || { echo "usage: bench/ceiling.sh CORES DAEMON BROKER LOAD OFFLINE_CPU OFFLINE_RATE" >&2; exit 2; }
awk -v c="$1" -v d="$2" -v b="$3" -v l="$4" -v o="$5" -v off="$6" 'BEGIN {
    if (c <= 0 || d + b + l <= 0 || o + b + l <= 0 || off <= 0) {
        printf "\nThe ceiling of the end-to-end row: too few CPU ticks in these runs to compute.\n"
        exit
    }
    x = c * 100000 / (d + b + l); y = c * 100000 / (o + b + l)
    printf "\nThe ceiling of the end-to-end row on these %d cores (every core busy, nothing else\n", c
    printf "running): %d × 100,000 commands per %.2f CPU s (marketd + broker + market-load) =\n", c, d + b + l
    printf "%.0f cmd/s, %.2f of offline (%.0f/s); were marketd on Kafka as cheap as offline on the\n", x, x / off, off
    printf "same file (%.2f s): %.0f cmd/s, %.2f of offline. The goal is 0.80.\n", o, y, y / off
}'
