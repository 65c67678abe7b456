#!/usr/bin/env bash
# Every code of docs/rules-reference.md's "Codes and clauses" table is tested,
# with its clause; fails (never skips) when the document is missing: checked
# here by running the check against a path that does not exist.
set -u
here=$(dirname "$0")
if MD_RULES_SPEC=/nonexistent/rules-reference.md bash "$here/../test_rules_coverage.sh" 2>/dev/null; then
    echo "rules_coverage: a missing rules document did not fail the check" >&2
    exit 1
fi
exec bash "$here/../test_rules_coverage.sh"
