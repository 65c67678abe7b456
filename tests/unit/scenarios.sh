#!/usr/bin/env bash
# scenarios.sh - runs every story in tests/scenarios/ through offline mode and checks it.
#
# For each tests/scenarios/NAME.jsonl (not *.expected.jsonl):
#   1. marketd --input NAME.jsonl --clock command into a fresh data dir; its results must
#      equal NAME.expected.jsonl line for line (the first differing lines are shown);
#   2. marketctl verify on that data dir must exit 0 (the chain, the projections, and the
#      rules' state and outcomes recomputed from the log: timers fired and armed included);
#   3. a second run into another fresh data dir must give byte-identical results and the
#      same hash chain head (determinism).
# demo/demo-day.jsonl (no expected results: the demo prints them) gets steps 2 and 3.
# Prints "scenarios: N passed, M failed" and exits non-zero when any scenario failed.
# Env: MARKETD_BUILD (default build), relative to the repository root or absolute.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
build=${MARKETD_BUILD:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
marketd=$build/marketd
marketctl=$build/marketctl
for b in "$marketd" "$marketctl"; do
    if [ ! -x "$b" ]; then
        echo "scenarios: $b not built (make all)" >&2
        exit 2
    fi
done

work=$(mktemp -d "${TMPDIR:-/tmp}/scenarios.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# run_offline INPUT TAG: one offline run into $work/TAG.data, results in $work/TAG.results.
run_offline() {
    rm -rf "$work/$2.data" "$work/$2.results"
    "$marketd" --input "$1" --data-dir "$work/$2.data" --clock command \
        --results "$work/$2.results" --log-level warn >"$work/$2.log" 2>&1
}

# chain_head TAG: the head printed by marketctl verify (empty when verify fails).
chain_head() {
    "$marketctl" --data-dir "$work/$1.data" verify 2>/dev/null |
        sed -n 's/.*"head" *: *"\([0-9a-fA-F]*\)".*/\1/p'
}

# first_diffs EXPECTED ACTUAL: the first three differing lines, numbered.
first_diffs() {
    awk -v want="$1" -v got="$2" 'BEGIN {
        for (n = 1; shown < 3; n++) {
            re = (getline e <want) > 0; ra = (getline a <got) > 0
            if (!re && !ra) break
            if (!re) e = "(no line)"
            if (!ra) a = "(no line)"
            if (e != a) { printf "  line %d expected: %s\n  line %d   actual: %s\n", n, e, n, a; shown++ }
        }
    }'
}

passed=0
failed=0
fail() {
    echo "FAIL $name: $*"
    ok=0
}

for input in tests/scenarios/*.jsonl demo/demo-day.jsonl; do
    case $input in *.expected.jsonl | *.results.jsonl) continue ;; esac
    [ -e "$input" ] || continue
    name=$(basename "$input" .jsonl)
    expected=tests/scenarios/$name.expected.jsonl
    case $input in demo/*) expected= ;; esac
    ok=1
    ran=0

    if ! run_offline "$input" "$name.a"; then
        fail "marketd exited non-zero: $(tail -5 "$work/$name.a.log")"
    else
        ran=1
    fi
    if [ -z "$expected" ]; then
        : # the demo day: no expected results
    elif [ ! -r "$expected" ]; then
        fail "missing $expected"
    elif [ "$ran" = 1 ] && ! cmp -s "$expected" "$work/$name.a.results"; then
        n_exp=$(wc -l <"$expected")
        n_got=$(wc -l <"$work/$name.a.results")
        fail "results differ from $expected ($n_exp expected lines, $n_got actual)"
        first_diffs "$expected" "$work/$name.a.results"
    fi

    # The log and determinism checks run even when the results differ.
    if [ "$ran" = 1 ]; then
        if ! "$marketctl" --data-dir "$work/$name.a.data" verify >"$work/$name.verify" 2>&1; then
            fail "marketctl verify failed: $(tail -3 "$work/$name.verify")"
        fi
    fi

    if [ "$ran" = 1 ]; then
        if ! run_offline "$input" "$name.b"; then
            fail "second run: marketd exited non-zero: $(tail -5 "$work/$name.b.log")"
        elif ! cmp -s "$work/$name.a.results" "$work/$name.b.results"; then
            fail "not deterministic: two runs give different results"
        else
            head_a=$(chain_head "$name.a")
            head_b=$(chain_head "$name.b")
            if [ -z "$head_a" ]; then
                fail "marketctl verify printed no chain head"
            elif [ "$head_a" != "$head_b" ]; then
                fail "not deterministic: chain heads $head_a and $head_b differ"
            fi
        fi
    fi

    if [ "$ok" = 1 ]; then
        passed=$((passed + 1))
        echo "ok   $name ($(wc -l <"${expected:-$work/$name.a.results}") results)"
    else
        failed=$((failed + 1))
    fi
    rm -rf "$work/$name.a.data" "$work/$name.b.data"
done

echo "scenarios: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
