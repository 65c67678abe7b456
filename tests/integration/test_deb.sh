#!/usr/bin/env bash
# test_deb.sh - the .deb on this machine (CI runs as root on a throwaway
# machine): `make deb` with dpkg-deb, then `dpkg -i`: the files, the
# `marketd` system user, /var/lib/marketd and the configuration readable by
# that user only; the installed marketd, run as that user with the installed
# configuration (as the systemd unit runs it; systemd itself does not run
# here, so postinst must skip enabling the unit), decides a workload from the
# real broker; the installed marketctl verifies the store. A reinstall keeps
# a changed configuration; `dpkg --purge` removes every file and keeps the
# ledger. The test removes what it created (data, user) at the end.
# shellcheck source=tests/integration/lib.sh
source "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || fail "test_deb.sh installs a package: run as root (CI does)"
installed() { [[ $(dpkg-query -W -f='${Status}' marketd 2>/dev/null) == "install ok installed" ]]; }
installed && fail "a marketd package is already installed on this machine; not touching it"
[ -e /var/lib/marketd ] && fail "/var/lib/marketd exists already; not touching it"
had_user=0
getent passwd marketd >/dev/null && had_user=1

# dpkg waits for nobody: retry while another dpkg/apt holds the lock.
dpkg_do() {
    local i
    for i in $(seq 1 30); do
        if dpkg "$@" >"$work/dpkg.log" 2>&1; then return 0; fi
        grep -q "lock" "$work/dpkg.log" || { cat "$work/dpkg.log" >&2; return 1; }
        sleep 2
    done
    cat "$work/dpkg.log" >&2
    return 1
}
purged=0
deb_cleanup() {
    if [ "$purged" = 0 ] && installed; then dpkg_do --purge marketd || true; fi
    rm -rf /var/lib/marketd
    if [ "$had_user" = 0 ] && getent passwd marketd >/dev/null; then
        userdel marketd 2>/dev/null || true
        groupdel marketd 2>/dev/null || true
    fi
    cleanup
}
trap deb_cleanup EXIT

# ---- build ------------------------------------------------------------------------------
make -s --no-print-directory BUILD="$build" deb >"$work/make.log" 2>&1 || { cat "$work/make.log"; fail "make deb"; }
deb=$(ls "$build"/marketd_"$(cat VERSION)"_*.deb) || fail "no .deb built"
dpkg-deb -f "$deb" Depends | grep -q 'librdkafka1 (>= ' || fail "Depends lacks librdkafka1"
dpkg-deb -f "$deb" Depends | grep -q 'liblmdb0' || fail "Depends lacks liblmdb0"
[ "$(dpkg-deb -I "$deb" conffiles)" = /etc/marketd/marketd.conf ] || fail "conffiles"
log "built $deb ($(du -k "$deb" | cut -f1) KiB)"

# ---- install ------------------------------------------------------------------------------
dpkg_do -i "$deb" || fail "dpkg -i"
installed || fail "package not installed"
if [ -d /run/systemd/system ]; then
    # A machine with systemd: postinst enabled and started the unit; stop it so
    # that the run below (same data directory) is the only writer.
    [ "$(systemctl is-enabled marketd.service)" = enabled ] || fail "unit not enabled"
    systemctl stop marketd.service || fail "systemctl stop marketd"
else
    grep -q "systemd is not running" "$work/dpkg.log" || fail "postinst did not say it skipped systemd"
fi
for f in /usr/bin/marketd /usr/bin/marketctl /usr/bin/market-load; do [ -x "$f" ] || fail "$f"; done
for f in /usr/share/man/man8/marketd.8.gz /usr/share/man/man1/marketctl.1.gz \
    /usr/share/man/man5/marketd.conf.5.gz /usr/share/bash-completion/completions/marketctl \
    /lib/systemd/system/marketd.service /usr/share/doc/marketd/README.md; do
    [ -s "$f" ] || fail "$f missing"
done
grep -qx 'ExecStart=/usr/bin/marketd -c /etc/marketd/marketd.conf' /lib/systemd/system/marketd.service ||
    fail "unit ExecStart"
[ "$(/usr/bin/marketctl --version | head -1)" = "marketctl $(cat VERSION)" ] || fail "installed --version"
MANWIDTH=80 man -l /usr/share/man/man8/marketd.8.gz 2>/dev/null | grep -q '^SYNOPSIS' || fail "installed man page"
getent passwd marketd | grep -q ':/var/lib/marketd:/usr/sbin/nologin$' || fail "user marketd: $(getent passwd marketd)"
[ "$(stat -c '%U:%G %a' /var/lib/marketd)" = "marketd:marketd 750" ] || fail "data dir: $(stat -c '%U:%G %a' /var/lib/marketd)"
[ "$(stat -c '%U:%G %a' /etc/marketd/marketd.conf)" = "root:marketd 640" ] || fail "config: $(stat -c '%U:%G %a' /etc/marketd/marketd.conf)"
log "installed: files, user, data dir and configuration as expected"

# ---- run it as the unit does: user marketd, the installed configuration --------------------
setpriv --reuid=marketd --regid=marketd --init-groups /usr/bin/marketd -c /etc/marketd/marketd.conf \
    --set kafka.bootstrap.servers="$bootstrap" \
    --set topic.commands="$prefix.commands" --set topic.results="$prefix.results" \
    --set topic.events="$prefix.events" --set topic.deadletter="$prefix.deadletter" \
    --set group.id="$prefix.group" --set kafka.topic.metadata.refresh.interval.ms=1000 \
    --set topic.partitions=1 --set clock=command >>"$work/deb.log" 2>&1 &
echo $! >"$work/deb.pid"
pids+=("$!")
marketd_wait_running deb 60
gen_workload 200 >"$work/in.jsonl"
load "$work/in.jsonl" --wait --timeout 120 --quiet --results-out "$work/results" || fail "load"
marketd_stop deb
[ "$(wc -l <"$work/results")" = "$(wc -l <"$work/in.jsonl")" ] || fail "results: $(wc -l <"$work/results")"
[ "$(stat -c %U /var/lib/marketd/data.mdb 2>/dev/null)" = marketd ] || fail "store not written by user marketd"
setpriv --reuid=marketd --regid=marketd --init-groups /usr/bin/marketctl --data-dir /var/lib/marketd verify >"$work/verify.json" 2>>"$work/deb.log" ||
    fail "marketctl verify"
jq -e '.ok == true' "$work/verify.json" >/dev/null || fail "verify: $(cat "$work/verify.json")"
events=$(/usr/bin/marketctl --data-dir /var/lib/marketd stats | jq .events)
((events > 200)) || fail "only $events events"
log "installed marketd decided $(wc -l <"$work/results") commands ($events events); marketctl verify ok"

# ---- reinstall keeps a changed configuration; purge keeps the ledger --------------------------
echo "# changed by the operator" >>/etc/marketd/marketd.conf
dpkg_do -i "$deb" || fail "dpkg -i again"
grep -qx "# changed by the operator" /etc/marketd/marketd.conf || fail "reinstall replaced the configuration"
dpkg_do --purge marketd || fail "dpkg --purge"
purged=1
installed && fail "still installed after purge"
for f in /usr/bin/marketd /usr/bin/marketctl /etc/marketd /lib/systemd/system/marketd.service \
    /usr/share/man/man8/marketd.8.gz; do
    [ -e "$f" ] && fail "$f left after purge"
done
[ -s /var/lib/marketd/data.mdb ] || fail "purge deleted the ledger"
log "reinstall kept the configuration; purge removed the files and kept the ledger"
echo "deb: ok"
