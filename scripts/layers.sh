#!/usr/bin/env bash
# layers.sh - checks the layering of the code from the object files' symbols.
#
#   bash scripts/layers.sh [BUILD]          (BUILD: default build; make layers)
#
# Layers, lowest first (a folder may use the folders of lower rank only):
#
#   rank 0  base/                 allocators, errors, md_buf, clocks, UTF-8, msgpack
#   rank 1  events/               event record, hash chain, LMDB store
#   rank 2  rules/  projections/  the decider; the read models (siblings: neither
#                                 uses the other)
#   rank 3  daemon/ tools/        the process; marketctl and market-load (siblings)
#
# It reads every BUILD/<folder>/*.o whose source <folder>/*.c exists (in
# LAYERS_SRC, default the repository) with nm: each undefined symbol that another
# of these objects defines is a use of that object. It fails (exit 1), naming
# each offending pair, when
#   - an object uses one of a higher rank, or of a sibling folder of its rank;
#   - the objects of daemon/ use each other in a cycle (each daemon file is a
#     room of its own: the wiring in daemon.c uses the others, not the reverse).
# Objects it needs but cannot find are an error (exit 2), never a silent pass.
set -u

build=${1:-build}
src=${LAYERS_SRC:-$(cd "$(dirname "$0")/.." && pwd)}
layers="base:0 events:1 rules:2 projections:2 daemon:3 tools:3"
acyclic="daemon"

work=$(mktemp -d "${TMPDIR:-/tmp}/layers.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# defs: "symbol object"; uses: "object symbol"
: >"$work/defs"
: >"$work/uses"
for entry in $layers; do
    dir=${entry%%:*}
    set -- "$build/$dir"/*.o
    if [ ! -e "$1" ]; then
        echo "layers: no objects in $build/$dir (build first: make all)" >&2
        exit 2
    fi
    for o in "$@"; do
        rel=${o#"$build"/}
        [ -e "$src/${rel%.o}.c" ] || continue # stale: its source is gone
        nm -g --defined-only "$o" | awk -v o="$rel" 'NF == 3 { print $3, o }' >>"$work/defs" || exit 2
        nm -u "$o" | awk -v o="$rel" '{ print o, $NF }' >>"$work/uses" || exit 2
    done
done

# edges: "user used symbol", one per use of another object's symbol
awk 'NR == FNR { def[$1] = $2; next }
     ($2 in def) && def[$2] != $1 { print $1, def[$2], $2 }' \
    "$work/defs" "$work/uses" | sort -u >"$work/edges"

awk -v layers="$layers" '
    BEGIN { n = split(layers, l, " ");
            for (i = 1; i <= n; i++) { split(l[i], p, ":"); rank[p[1]] = p[2] } }
    { split($1, a, "/"); split($2, b, "/");
      if (rank[b[1]] > rank[a[1]] || (rank[b[1]] == rank[a[1]] && a[1] != b[1])) {
          printf "layers: %s uses %s (%s): %s is not below %s\n", $1, $2, $3, b[1], a[1]; bad = 1 } }
    END { exit bad }' "$work/edges"
rc=$?

for dir in $acyclic; do
    awk -v d="$dir/" 'index($1, d) == 1 && index($2, d) == 1 { print $1, $2 }' "$work/edges" |
        sort -u >"$work/pairs"
    if ! tsort "$work/pairs" >/dev/null 2>"$work/tsort"; then
        echo "layers: the files of $dir/ use each other in a cycle:" >&2
        sed 's/^/  /' "$work/tsort" >&2
        awk '{ print "  " $1 " -> " $2 }' "$work/pairs" >&2
        rc=1
    fi
done

if [ "$rc" -eq 0 ]; then
    echo "layers: $(wc -l <"$work/edges") uses between $(cut -d' ' -f2 "$work/defs" | sort -u | wc -l) objects, none upward, none across siblings, no cycle in $acyclic/"
fi
exit "$rc"
