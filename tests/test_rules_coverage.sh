#!/bin/sh
# test_rules_coverage.sh - checks that the code -> clause list in
# tests/test_rules.c (between BEGIN CODES and END CODES), which test_rules
# requires every case table to produce, equals the "Codes and clauses"
# table in the repository's rules document, docs/rules-reference.md (set
# MD_RULES_SPEC to check another copy). A missing document is a failure,
# never a skip.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
spec=${MD_RULES_SPEC:-$here/../docs/rules-reference.md}
if [ ! -r "$spec" ]; then
    echo "test_rules_coverage: $spec not found" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# "| 3.1.3 | ORDER_STATE, DUPLICATE_PAYMENT |" -> "ORDER_STATE 3.1.3" per code.
awk '/^## Codes and clauses/ { on = 1; next }
     /^## / { on = 0 }
     on && /^\| *([0-9.]+|null) *\|/ {
         split($0, col, "|"); cl = col[2]; gsub(/ /, "", cl)
         n = split(col[3], codes, ",")
         for (i = 1; i <= n; i++) { c = codes[i]; gsub(/ /, "", c); print c, cl }
     }' "$spec" | sort >"$tmp/spec"

# {"ORDER_STATE", "3.1.3"} / {"MALFORMED", NULL} -> "ORDER_STATE 3.1.3" / "MALFORMED null".
sed -n '/BEGIN CODES/,/END CODES/p' "$here/test_rules.c" |
    grep -o '{"[A-Z_]*", *\(NULL\|"[0-9.]*"\)}' |
    sed 's/{"\([A-Z_]*\)", *"\{0,1\}\([0-9.]*\|NULL\)"\{0,1\}}/\1 \2/; s/ NULL$/ null/' |
    sort >"$tmp/test"

if [ ! -s "$tmp/spec" ]; then
    echo "test_rules_coverage: no codes found in $spec" >&2
    exit 1
fi
if ! diff -u "$tmp/spec" "$tmp/test" >"$tmp/diff"; then
    echo "test_rules_coverage: tests/test_rules.c codes differ from $spec:" >&2
    cat "$tmp/diff" >&2
    exit 1
fi
echo "test_rules_coverage: $(wc -l <"$tmp/spec") codes match $(basename "$spec")"
