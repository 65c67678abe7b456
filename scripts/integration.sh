#!/usr/bin/env bash
# integration.sh - runs tests/integration/*.sh against a real Kafka broker that
# it starts (scripts/kafka.sh up) and always stops again. Prints the plain
# "N passed, N failed" line at the end; exits 1 when any test failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export KAFKA_PORT=${KAFKA_PORT:-9092}
export MARKETD_BUILD=${MARKETD_BUILD:-build}

bash scripts/kafka.sh up || { echo "integration: the Kafka broker did not start" >&2; exit 1; }
trap 'bash scripts/kafka.sh down >/dev/null' EXIT

passed=0 failed=0 names=()
for t in ${TESTS:-tests/integration/test_*.sh}; do
    start=$(date +%s)
    echo "== $t"
    if bash "$t"; then
        passed=$((passed + 1))
        echo "== ok $t ($(( $(date +%s) - start )) s)"
    else
        failed=$((failed + 1))
        names+=("$t")
        echo "== FAILED $t ($(( $(date +%s) - start )) s)"
    fi
done
((failed == 0)) || echo "failed: ${names[*]}"
echo "integration: $passed passed, $failed failed"
((failed == 0))
