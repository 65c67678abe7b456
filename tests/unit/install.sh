#!/usr/bin/env bash
# make install / uninstall into a DESTDIR (no root effects: no user, no data
# directory): binaries, man pages, completion, docs, the unit with the
# installed paths, the configuration (0640) that a second install keeps when
# the operator changed it; the installed binaries run and report the
# version; PREFIX moves everything but /etc; uninstall leaves the
# configuration only.
set -u
build=${MARKETD_BUILD:-build}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
expect() { local what=$1; shift; if "$@"; then ok; else bad "$what"; fi; }
minstall() { make -s --no-print-directory BUILD="$build" "$@" >"$tmp/make.log" 2>&1 || { cat "$tmp/make.log"; return 1; }; }

d=$tmp/root
expect "make install DESTDIR" minstall install DESTDIR="$d"
for f in usr/local/bin/marketd usr/local/bin/marketctl usr/local/bin/market-load; do
    expect "$f executable" test -x "$d/$f"
done
for f in usr/local/share/man/man8/marketd.8 usr/local/share/man/man1/marketctl.1 \
    usr/local/share/man/man5/marketd.conf.5 usr/local/share/bash-completion/completions/marketctl \
    usr/local/lib/systemd/system/marketd.service usr/local/share/doc/marketd/README.md \
    usr/local/share/doc/marketd/docs/operations.md etc/marketd/marketd.conf; do
    expect "$f installed" test -s "$d/$f"
done
expect "ops files installed" test -s "$d/usr/local/share/doc/marketd/ops/marketd.json"
expect "config mode 0640" test "$(stat -c %a "$d/etc/marketd/marketd.conf")" = 640
expect "config is the example" cmp -s config/marketd.conf "$d/etc/marketd/marketd.conf"
unit=$d/usr/local/lib/systemd/system/marketd.service
expect "unit runs the installed binary" grep -qx 'ExecStart=/usr/local/bin/marketd -c /etc/marketd/marketd.conf' "$unit"
expect "unit points at the installed docs" grep -q 'file:///usr/local/share/doc/marketd/README.md' "$unit"
expect "nothing outside DESTDIR's prefix and /etc" \
    test "$(cd "$d" && find . -mindepth 1 -maxdepth 1 | sort | tr '\n' ' ')" = "./etc ./usr "
expect "no data directory under DESTDIR" test ! -e "$d/var"
expect "installed marketd --version" \
    eval '[[ $("$d/usr/local/bin/marketd" --version | head -1) == "marketd $(cat VERSION)" ]]'
expect "installed page renders" eval 'MANWIDTH=80 man -l "$d/usr/local/share/man/man8/marketd.8" 2>/dev/null | grep -q "^NAME"'

# A changed configuration survives a second install.
echo "log.level = debug" >>"$d/etc/marketd/marketd.conf"
expect "second install" minstall install DESTDIR="$d"
expect "config kept" grep -qx "log.level = debug" "$d/etc/marketd/marketd.conf"
expect "said so" grep -q "keeping $d/etc/marketd/marketd.conf" "$tmp/make.log"

# Uninstall removes everything but the configuration.
expect "make uninstall" minstall uninstall DESTDIR="$d"
left=$(cd "$d" && find . -type f | sort | tr '\n' ' ')
expect "only the configuration left (got: $left)" test "$left" = "./etc/marketd/marketd.conf "

# PREFIX=/usr, as the .deb does.
expect "make install PREFIX=/usr" minstall install DESTDIR="$tmp/usr" PREFIX=/usr
expect "binary under /usr/bin" test -x "$tmp/usr/usr/bin/marketctl"
expect "unit under /usr/lib" test -s "$tmp/usr/usr/lib/systemd/system/marketd.service"
expect "unit runs /usr/bin/marketd" grep -q 'ExecStart=/usr/bin/marketd ' "$tmp/usr/usr/lib/systemd/system/marketd.service"
expect "config still under /etc" test -s "$tmp/usr/etc/marketd/marketd.conf"

echo "install: $passed passed, $failed failed"
((failed == 0))
