#!/usr/bin/env bash
# format_check.sh - scripts/format.sh (make format / make format-check) in a
# scratch tree with the repository's .clang-format:
#   1. --check passes on a file laid out as .clang-format says;
#   2. --check fails, naming the file, once a line is laid out otherwise;
#   3. format.sh (in place) makes --check pass again.
# The repository itself passes only after the one-time reformat
# (bash scripts/format.sh), so this test does not check the tree.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
if ! command -v "${CLANG_FORMAT:-clang-format}" >/dev/null 2>&1; then
    echo "format_check: clang-format not installed (bash scripts/deps.sh)" >&2
    exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/format-check.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT
cp "$root/.clang-format" "$work/" || exit 2
cp "$root/base/clock.c" "$work/a.c" || exit 2
"${CLANG_FORMAT:-clang-format}" --style=file -i "$work/a.c"
check() { FORMAT_ROOT=$work bash "$root/scripts/format.sh" --check >"$work/out" 2>&1; }

if check; then ok; else ko "a formatted file fails the check"; cat "$work/out"; fi
sed -i 's/^int64_t md_mono_ms(void)$/int64_t   md_mono_ms( void )/' "$work/a.c"
if check; then ko "a misformatted file passes the check"
elif grep -q 'a.c: 1 lines differ' "$work/out"; then ok
else ko "the check did not name a.c"; cat "$work/out"; fi
FORMAT_ROOT=$work bash "$root/scripts/format.sh" >/dev/null 2>&1
if check; then ok; else ko "format.sh did not fix the file"; cat "$work/out"; fi

echo "format_check: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
