#!/usr/bin/env bash
# make_flags.sh - a user's CFLAGS / LDFLAGS / LDLIBS add to the build's flags
# and never replace them (the Makefile composes FINAL_CFLAGS as redis does):
#   1. `make CFLAGS=-O0` still compiles with -std=c11, -Iinclude, the warnings
#      and -Werror, and with -O0 (dry run of one object);
#   2. it really builds: one object compiled with CFLAGS=-O0 in a temp build
#      dir, and a warning planted in a copy of a source fails that build;
#   3. `make LDFLAGS=... SANITIZE=address` still links with -fsanitize.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 2
pass=0 fail=0
ok() { pass=$((pass + 1)); }
ko() { fail=$((fail + 1)); echo "FAIL: $*"; }
work=$(mktemp -d "${TMPDIR:-/tmp}/make-flags.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# 1. the compile command under a user's CFLAGS
cmd=$(make -s -n -B CFLAGS=-O0 BUILD="$work/b" "$work/b/base/clock.o" 2>&1 | grep -- ' -c ')
for f in -O0 -std=c11 -Iinclude -Wall -Wextra -Werror -Wshadow; do
    case " $cmd " in *" $f "*) ok ;; *) ko "CFLAGS=-O0 drops $f: $cmd" ;; esac
done

# 2. a real compile with CFLAGS=-O0, then a planted warning must fail it
if make -s CFLAGS=-O0 BUILD="$work/b" "$work/b/base/clock.o" >"$work/out" 2>&1; then ok
else ko "CFLAGS=-O0 build failed"; cat "$work/out"; fi
mkdir -p "$work/src/base" && cp base/clock.c "$work/src/base/" &&
    printf 'static int md_unused_planted;\n' >>"$work/src/base/clock.c"
if (cd "$work/src" && make -s -f "$root/Makefile" CFLAGS=-O0 BUILD="$work/w" \
        "$work/w/base/clock.o" MD_CFLAGS="-I$root/include" >"$work/out" 2>&1); then
    ko "a warning did not fail a CFLAGS=-O0 build"
else
    grep -q 'md_unused_planted' "$work/out" && ok || { ko "no warning shown"; cat "$work/out"; }
fi

# 3. the link command under a user's LDFLAGS
cmd=$(make -s -n -B LDFLAGS=-Wl,-O1 SANITIZE=address BUILD="$work/a" "$work/a/marketd" 2>&1 |
      grep -- '-o .*/marketd$')
for f in -Wl,-O1 -fsanitize=address -lpthread; do
    case " $cmd " in *" $f "*) ok ;; *) ko "LDFLAGS=-Wl,-O1 drops $f: $cmd" ;; esac
done

echo "make_flags: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
