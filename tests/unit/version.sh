#!/usr/bin/env bash
# --version of every binary: "NAME VERSION" with VERSION from the VERSION
# file, then the store format (MD_STORE_FORMAT) and the projection layout
# format (PJ_FORMAT) this build reads; the layout format is also the one a
# fresh store records (marketctl stats). Exit 0, nothing on stderr.
set -u
build=${MARKETD_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }

version=$(cat VERSION)
store_format=$(sed -n 's/^#define MD_STORE_FORMAT \([0-9]*\).*/\1/p' include/md_store.h)
layout_format=$(sed -n 's/^#define PJ_FORMAT \([0-9]*\).*/\1/p' projections/pj.h)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || bad "VERSION '$version' is not N.N.N"
[[ -n $store_format && -n $layout_format ]] || bad "formats not found in the sources"

for b in marketd marketctl market-load; do
    printf '%s %s\nstore format: %s\nprojection layout format: %s\n' \
        "$b" "$version" "$store_format" "$layout_format" >"$tmp/want"
    "$build/$b" --version >"$tmp/out" 2>"$tmp/err"
    status=$?
    if [[ $status == 0 ]] && cmp -s "$tmp/want" "$tmp/out" && [[ ! -s $tmp/err ]]; then
        ok
    else
        bad "$b --version: status $status, output: $(cat "$tmp/out" "$tmp/err")"
    fi
done

# The layout format printed is the one the projections write.
"$build/marketd" --input demo/demo-day.jsonl --data-dir "$tmp/d" --results /dev/null \
    --clock command --log-level warn 2>/dev/null
got=$("$build/marketctl" --data-dir "$tmp/d" stats 2>/dev/null | jq -r .projections.format)
[[ $got == "$layout_format" ]] && ok || bad "a fresh store records layout format '$got', not $layout_format"

echo "version: $passed passed, $failed failed"
((failed == 0))
