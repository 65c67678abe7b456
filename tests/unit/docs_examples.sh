#!/usr/bin/env bash
# docs_examples.sh - every example of README.md and docs/api.md is true of the
# demo day (issue 19, item 7). The demo day runs as `make run` runs it
# (scripts/demo.sh: marketd --embedded-kafka --clock command, every result
# awaited), with the read API on; then:
#  - each `curl` example is asked of that API with a token of its role ($A
#    auditor, $N and $TOKEN analyst, $BOB, $CAROL, $EVE members) and its
#    documented answer compared: a whole JSON answer must equal the response
#    (jq -S); an answer elided with "…" must show its "key":value pairs in
#    that order; a status ("403 {…}", "HTTP/1.1 403") must match; an example
#    without an answer must succeed, and a list must not be empty;
#  - each `build/marketctl --data-dir /tmp/market …` line of the README runs on
#    the demo store (exit 0, output not empty), except `verify --checkpoints`
#    (it needs the checkpoints a broker's heads topic carries).
# Needs no broker: the embedded one is librdkafka's in-process mock.
set -euo pipefail
B=${MARKETD_BUILD:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/marketd-docs-XXXXXX")
pid=""
cleanup() {
    if [ -n "$pid" ]; then
        kill -TERM "$(cat "$T/demo/marketd.pid" 2>/dev/null)" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0 failed=0
bad() { echo "not ok - $*" >&2; failed=$((failed + 1)); }
ok() { passed=$((passed + 1)); }

# ---- the demo day, as `make run` runs it, with the read API --------------------------------
declare -A tok
for r in A N BOB CAROL EVE; do tok[$r]=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n'); done
tok[TOKEN]=${tok[N]}
printf '%s auditor\n%s analyst\n%s member:bob\n%s member:carol\n%s member:eve\n' \
    "${tok[A]}" "${tok[N]}" "${tok[BOB]}" "${tok[CAROL]}" "${tok[EVE]}" >"$T/tokens"
chmod 600 "$T/tokens"
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in 1 2 3 4 5 6 7 8; do
    hport=$((19000 + RANDOM % 1000))
    port_free "$hport" && break
done
MARKETD_DEMO_KEEP="$T/demo" MARKETD_DEMO_HTTP="127.0.0.1:$hport" MARKETD_DEMO_TOKENS="$T/tokens" \
    MARKETD_BUILD="$B" bash "$ROOT/scripts/demo.sh" >"$T/demo.out" 2>&1 &
pid=$!
for ((i = 0; i < 600; i++)); do
    [ -e "$T/demo/serving" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$T/demo.out" >&2; fail "the demo stopped"; }
    sleep 0.1
done
[ -e "$T/demo/serving" ] || fail "the demo did not serve its API in 60 s"
base=http://127.0.0.1:$hport

# ---- the curl examples --------------------------------------------------------------------
# One record per example: ROLE <US> FLAGS <US> URL <US> EXPECTED (may span lines; <RS> ends it).
extract() {
    awk '
    function emit(ex) { printf "%s\037%s\037%s\037%s\036", role, flags, url, ex; have = 0 }
    function parse(line,   m) {
        role = ""; flags = ""; url = ""
        if (match(line, /Bearer \$[A-Z]+/)) role = substr(line, RSTART + 8, RLENGTH - 8)
        if (line ~ /curl -i /) flags = "i"
        if (match(line, /http:\/\/[^" ]+/)) url = substr(line, RSTART, RLENGTH)
        have = 1; ex = ""
    }
    /^```sh/ { insh = 1; pending = 0; buf = ""; next }
    insh && /^```/ {
        insh = 0
        if (have && ex != "") emit(ex); else if (have) pending = 1
        next
    }
    insh {
        if (joined != "") { $0 = joined $0; joined = "" }
        if ($0 ~ /\\$/) { joined = substr($0, 1, length($0) - 1); next }
        if ($0 ~ /(^|[ ])curl /) { if (have) { if (ex != "") emit(ex); else emit("") } parse($0); next }
        if (have && $0 ~ /^# /) { ex = ex (ex == "" ? "" : "\n") substr($0, 3); next }
        next
    }
    pending && /^```/ { injson = 1; pending = 0; ex = ""; next }
    injson && /^```/ { injson = 0; emit(ex); next }
    injson { ex = ex (ex == "" ? "" : "\n") $0; next }
    pending && NF { emit(""); pending = 0 }
    END { if (pending) emit("") }
    ' "$@"
}

# pairs: the "key":scalar pairs of a JSON text, in order (for elided answers).
pairs() { grep -oE '"[A-Za-z_]+":("[^"]*"|-?[0-9]+|null|true|false)' || true; }

check_curl() {
    local role=$1 flags=$2 url=$3 exp=$4 status want_status=200 body path
    case $url in *'$('*) ok; return ;; esac # computed at run time (date): not a fixed answer
    path=${url#http://*/}
    path=/${path}
    local auth=()
    if [ -n "$role" ]; then
        [ -n "${tok[$role]:-}" ] || { bad "unknown token \$$role in $url"; return; }
        auth=(-H "Authorization: Bearer ${tok[$role]}")
    fi
    status=$(curl -s -o "$T/body" -w '%{http_code}' "${auth[@]}" "$base$path") || status=000
    body=$(cat "$T/body")
    if [[ $exp =~ ^HTTP/1\.[01]\ ([0-9]{3}) ]]; then
        want_status=${BASH_REMATCH[1]}
        exp=$(printf '%s\n' "$exp" | grep '^{' | tail -1)
    elif [[ $exp =~ ^([0-9]{3})\ (.*)$ ]]; then
        want_status=${BASH_REMATCH[1]}
        exp=${BASH_REMATCH[2]}
    fi
    [ -z "${DOCS_SHOW:-}" ] || printf '=== %s %s\n%s\n' "$role" "$path" "$body" >>"$DOCS_SHOW"
    if [ "$status" != "$want_status" ]; then bad "$role $path: status $status, documented $want_status: ${body:0:200}"; return; fi
    if [ -z "$exp" ]; then
        if jq -e 'has("items") and (.items | length) == 0' >/dev/null 2>&1 <<<"$body"; then
            bad "$role $path: the documented example lists nothing on the demo day"
            return
        fi
    elif [[ $exp == *"…"* ]]; then
        local e a
        e=$(pairs <<<"$exp")
        a=$(pairs <<<"$body")
        # every documented pair, in order, as a subsequence of the answer's pairs
        if ! awk 'NR == FNR { want[++n] = $0; next } i < n && $0 == want[i + 1] { i++ } END { exit i == n ? 0 : 1 }' \
            <(printf '%s\n' "$e") <(printf '%s\n' "$a"); then
            bad "$role $path: answer lacks the documented $(printf '%s\n' "$e" | head -3 | paste -sd' ')…: ${body:0:300}"
            return
        fi
    elif ! jq -e --argjson want "$exp" '. == $want' >/dev/null 2>&1 <<<"$body"; then
        if ! jq -e . >/dev/null 2>&1 <<<"$exp"; then bad "$role $path: documented answer is not JSON"; return; fi
        bad "$role $path: answer differs from the documented one: $(diff <(jq -S . <<<"$exp") <(jq -S . <<<"$body") | head -6 | paste -sd' ')"
        return
    fi
    ok
}

while IFS=$'\037' read -r -d $'\036' role flags url exp; do
    [ -n "$url" ] || continue
    check_curl "$role" "$flags" "$url" "$exp"
done < <(extract "$ROOT/README.md" "$ROOT/docs/api.md")

# ---- the marketctl lines of the README, on the demo store -----------------------------------
kill -TERM "$(cat "$T/demo/marketd.pid")"
wait "$pid" || fail "the demo failed after its API was stopped: $(tail -5 "$T/demo.out")"
pid=""
data=$T/demo/data
while IFS= read -r line; do
    cmd=${line%%#*}
    cmd=${cmd//\/tmp\/market /$data }
    cmd=${cmd//\/backup\/market/$T/backup}
    cmd=${cmd//\/tmp\/then/$T/then}
    cmd=${cmd//\/tmp\/noon/$T/noon} # not the machine's /tmp (a second run found it there)
    cmd=${cmd//> export.jsonl/> $T/export.jsonl}
    cmd=${cmd//build\//$ROOT/$B/}
    if ! out=$(eval "$cmd" 2>"$T/err"); then bad "README: $line: $(head -2 "$T/err")"; continue; fi
    if [ -z "$out" ] && [[ $cmd != *"> "* ]]; then bad "README: $line: prints nothing on the demo day"; continue; fi
    ok
done < <(grep -E '^build/marketctl --data-dir /tmp/market ' "$ROOT/README.md" |
    grep -v -- '--checkpoints') # signed checkpoints need a broker's heads topic (test_checkpoints.sh)
bash "$ROOT/scripts/audit-export.sh" "$T/export.jsonl" >/dev/null || bad "README: the export example does not pass audit-export.sh"

echo "docs examples: $passed passed, $failed failed"
[ "$failed" = 0 ]
