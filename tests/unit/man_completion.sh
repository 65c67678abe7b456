#!/usr/bin/env bash
# The man pages (man/) and the bash completion of marketctl (completion/):
#  - each page renders with groff and man without a single warning;
#  - they say what exists: every key of config/marketd.conf is in
#    marketd.conf(5), every option of `marketd --help` in marketd(8), every
#    subcommand and option of marketctl's usage in marketctl(1);
#  - the completion script sources in a non-interactive bash and completes
#    subcommands, options per subcommand, object kinds and order statuses,
#    and offers every subcommand and option of marketctl's usage.
set -u
build=${MARKETD_BUILD:-build}
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL: $*"; }
# check NAME COMMAND...: passes when the command succeeds.
check() { local name=$1; shift; if "$@"; then ok; else bad "$name"; fi; }

# ---- rendering ---------------------------------------------------------------
for page in man/marketd.8 man/marketctl.1 man/marketd.conf.5; do
    w=$(groff -z -ww -man "$page" 2>&1) && [[ -z $w ]] && ok || bad "groff warnings in $page: $w"
    w=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null) && [[ -z $w ]] &&
        ok || bad "man warnings in $page: $w"
    lines=$(LC_ALL=C.UTF-8 MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)
    ((lines > 40)) && ok || bad "$page renders to $lines lines only"
done

# In roff source, `-` is written `\-`.
roff() { sed 's/-/\\-/g' <<<"$1"; }
in_page() { grep -qF -- "$(roff "$2")" "$1"; }

# ---- marketd.conf(5): every key of the example configuration ----------------------
keys=$(sed -n 's/^\([a-z_.]*\) *=.*/\1/p' config/marketd.conf)
[[ $(wc -w <<<"$keys") -ge 15 ]] && ok || bad "keys of config/marketd.conf not found"
for k in $keys; do
    grep -qF -- ".B $k =" man/marketd.conf.5 && ok || bad "marketd.conf(5) lacks key $k"
done

# ---- marketd(8): every long option of the usage --------------------------------
opts=$("$build/marketd" --help | grep -o -- '--[a-z-]*' | sort -u)
[[ $(wc -w <<<"$opts") -ge 10 ]] && ok || bad "options of marketd --help not found"
for o in $opts --version; do
    in_page man/marketd.8 "$o" && ok || bad "marketd(8) lacks $o"
done

# ---- marketctl(1) and the completion: every subcommand and option ------------------
usage=$("$build/marketctl" 2>&1 >/dev/null)
subs=$(sed -n 's/^  \([a-z]*\).*/\1/p' <<<"$usage")
copts=$(grep -o -- '--[a-z-]*' <<<"$usage" | sort -u)
[[ $(wc -w <<<"$subs") -ge 10 ]] && ok || bad "subcommands of marketctl's usage not found"
source completion/marketctl.bash || bad "completion/marketctl.bash does not source"
for s in $subs; do
    grep -qF -- ".B $s" man/marketctl.1 && ok || bad "marketctl(1) lacks subcommand $s"
    [[ " $_marketctl_subcommands " == *" $s "* ]] && ok || bad "completion lacks subcommand $s"
done
# The subcommands without --data-dir: "marketctl NAME ..." lines of the usage.
xsubs=$(sed -n 's/^ *\(usage: \)\{0,1\}marketctl \([a-z][a-z-]*\) .*/\2/p' <<<"$usage")
[[ $(wc -w <<<"$xsubs") -ge 3 ]] && ok || bad "checkpoint subcommands of marketctl's usage not found"
for s in $xsubs; do
    in_page man/marketctl.1 ".B $s" && ok || bad "marketctl(1) lacks subcommand $s"
    [[ " $_marketctl_checkpoint_subcommands " == *" $s "* ]] && ok || bad "completion lacks subcommand $s"
done
for o in $copts; do
    in_page man/marketctl.1 "$o" && ok || bad "marketctl(1) lacks $o"
    grep -qF -- "$o" completion/marketctl.bash && ok || bad "completion lacks $o"
done

# complete WANT WORDS...: completes the last word of "marketctl WORDS...".
complete_is() {
    local want=$1
    shift
    COMP_WORDS=(marketctl "$@")
    COMP_CWORD=$#
    COMPREPLY=()
    _marketctl
    [[ "${COMPREPLY[*]}" == "$want" ]] || { bad "completing '$*': '${COMPREPLY[*]}', want '$want'"; return; }
    ok
}
check "complete -F registered" eval '[[ $(complete -p marketctl) == "complete -F _marketctl marketctl" ]]'
complete_is "verify verify-export" --data-dir /tmp ve
complete_is "rebuild replay" --data-dir /tmp re
complete_is "--out --new-identity --data-dir" --data-dir /tmp backup --
complete_is "$_marketctl_subcommands $_marketctl_checkpoint_subcommands" --data-dir /tmp ""
complete_is "--data-dir --help --version" --
complete_is "--status" --data-dir /tmp orders --s
complete_is "--subject" --data-dir /tmp audit --s
complete_is "--stream --from --to --since --until --limit --follow --format --data-dir" --data-dir /tmp events --
complete_is "account" --data-dir /tmp get a
complete_is "--as-of" --data-dir /tmp get account bob --as
complete_is "placed paid partially_refunded" orders --status p
complete_is "" --data-dir /tmp orders --buyer ""
complete_is "--id --out" keygen --
complete_is "--checkpoints" --data-dir /tmp verify --c
complete_is "verify-export" verify-

echo "man_completion: $passed passed, $failed failed"
((failed == 0))
