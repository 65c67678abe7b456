#!/usr/bin/env bash
# format.sh - applies .clang-format to every C source and header of the
# repository, in place (`make format` runs it), or with --check lists the files
# that differ and fails (`make format-check`). Needs clang-format
# (scripts/deps.sh installs it).
#
#   bash scripts/format.sh            reformat in place
#   bash scripts/format.sh --check    exit 1 when any file is not formatted
set -u

root=${FORMAT_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root" || exit 2
cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
    echo "format: $cf not found (bash scripts/deps.sh installs clang-format)" >&2
    exit 2
fi
mapfile -t files < <(git ls-files '*.c' '*.h' 2>/dev/null || find . -name '*.[ch]' -not -path './build/*')
if [ "${#files[@]}" -eq 0 ]; then
    echo "format: no C files found" >&2
    exit 2
fi

if [ "${1:-}" != "--check" ]; then
    "$cf" --style=file -i "${files[@]}" || exit 1
    echo "format: ${#files[@]} files formatted"
    exit 0
fi

bad=0 lines=0
for f in "${files[@]}"; do
    n=$("$cf" --style=file "$f" | diff "$f" - | grep -c '^<')
    if [ "$n" -gt 0 ]; then
        echo "format: $f: $n lines differ from .clang-format"
        bad=$((bad + 1)) lines=$((lines + n))
    fi
done
if [ "$bad" -gt 0 ]; then
    echo "format: $bad of ${#files[@]} files ($lines lines) need bash scripts/format.sh" >&2
    exit 1
fi
echo "format: ${#files[@]} files follow .clang-format"
