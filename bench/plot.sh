#!/usr/bin/env bash
# bench/plot.sh OUT_DIR SWEEP_N RATE - the two pictures of `make bench` (gnuplot,
# SVG) from OUT_DIR/sweep.dat and OUT_DIR/latency.us, written into OUT_DIR.
set -euo pipefail
out=$1 sweep_n=$2 rate=$3
gnuplot <<GP
set terminal svg size 760,440 dynamic font "sans,12" noenhanced
set output "$out/throughput-vs-batch.svg"
set title "Durable throughput against batch size ($sweep_n commands, 2 cores)"
set xlabel "commands per write transaction (offline mode, --batch-max)"
set ylabel "commands/s (log)"
set logscale xy; set grid; set key bottom right; set xrange [150:15000]
plot "$out/sweep.dat" using 1:2 with linespoints lw 2 title "engine, JSON commands", \
     "" using 1:3 with linespoints lw 2 title "engine, msgpack commands", \
     "" using 1:4 with linespoints lw 2 pt 6 lc rgb "#3399cc" title "limit: LMDB appending the same events"
GP
[ -s "$out/latency.us" ] || exit 0
# About 2000 points: every k-th, and every one of the slowest 0.5%.
sort -n "$out/latency.us" | awk '{v[NR]=$1/1000} END{k=int(NR/1500)+1
    for(i=1;i<=NR;i++) if (i%k==0 || i>NR*0.995 || i==1) print v[i], i/NR}' >"$out/latency.cdf"
gnuplot <<GP
set terminal svg size 760,440 dynamic font "sans,12" noenhanced
set output "$out/latency-cdf.svg"
set title "Produce-to-result latency at $rate commands/s (after a 1 s warm-up, all runs)"
set xlabel "latency, ms (log)"; set ylabel "fraction of commands"
set logscale x; set grid; set key bottom right; set yrange [0:1.02]; set xrange [3:1000]
set arrow 1 from 10, graph 0 to 10, graph 1 nohead dt 2 lw 2 lc rgb "#cc0000"
set label 1 "goal: p99 < 10 ms" at 10.5, graph 0.5 tc rgb "#cc0000"
set arrow 2 from graph 0, first 0.99 to graph 1, first 0.99 nohead dt 3 lc rgb "#666666"
set label 2 "p99" at graph 0.01, first 0.955 tc rgb "#666666"
plot "$out/latency.cdf" using 1:2 with lines lw 2 title "latency CDF"
GP
