#!/usr/bin/env bash
# layers.sh - scripts/layers.sh passes on the build, and fails on a copy of
# the build in which a bad use was planted:
#   1. the build's objects keep the layers (base <- events <- rules,
#      projections <- daemon, tools) and daemon/ has no cycle;
#   2. an events/ object calling the daemon (upward) fails, naming the pair;
#   3. a rules/ object calling projections/ (a sibling) fails;
#   4. two daemon/ objects calling each other (a cycle) fail;
#   5. a build without the objects is an error (exit 2), not a pass.
# Env: MARKETD_BUILD (default build).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
build=${MARKETD_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
cc=${CC:-cc}
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/layers-test.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# 1. the real build
if bash scripts/layers.sh "$build" >"$work/out" 2>&1; then ok; else ko "the build breaks the layers"; cat "$work/out"; fi

# A copy of the build's objects, with a source tree of empty files beside it.
copy() {
    rm -rf "$work/b" "$work/s"
    for d in base events rules projections daemon tools; do
        mkdir -p "$work/b/$d" "$work/s/$d"
        for o in "$build/$d"/*.o; do
            n=$(basename "$o" .o)
            [ -e "$d/$n.c" ] || continue
            cp "$o" "$work/b/$d/" && : >"$work/s/$d/$n.c"
        done
    done
}
# plant DIR NAME CODE: compiles CODE into the copy as DIR/NAME.o
plant() {
    printf '%s\n' "$3" >"$work/s/$1/$2.c"
    "$cc" -w -c "$work/s/$1/$2.c" -o "$work/b/$1/$2.o" || exit 2
}
# expect_fail WHAT PATTERN: the check on the copy fails and prints PATTERN
expect_fail() {
    if LAYERS_SRC=$work/s bash scripts/layers.sh "$work/b" >"$work/out" 2>&1; then
        ko "$1: the check passed"
    elif ! grep -q "$2" "$work/out"; then
        ko "$1: no '$2' in:"; cat "$work/out"
    else ok; fi
}

# 2. upward: events/ calls the daemon's engine
copy
plant events planted 'int md_engine_process(void); void planted(void); void planted(void) { md_engine_process(); }'
expect_fail "events -> daemon" "events/planted.o uses daemon/engine.o (md_engine_process)"

# 3. across siblings: rules/ calls a read model
copy
plant rules planted 'void md_proj_free(void *); void planted(void); void planted(void) { md_proj_free(0); }'
expect_fail "rules -> projections" "rules/planted.o uses projections/proj.o"

# 4. a cycle in daemon/
copy
plant daemon ping 'void pong(void); void ping(void); void ping(void) { pong(); }'
plant daemon pong 'void ping(void); void pong(void); void pong(void) { ping(); }'
expect_fail "daemon cycle" "the files of daemon/ use each other in a cycle"

# 5. nothing built
mkdir -p "$work/empty"
LAYERS_SRC=$root bash scripts/layers.sh "$work/empty" >/dev/null 2>&1
if [ $? -eq 2 ]; then ok; else ko "an empty build is not an error"; fi

echo "layers: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
