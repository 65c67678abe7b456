#!/usr/bin/env bash
# Every code of rules.md's "Codes and clauses" table is tested, with its clause.
exec bash "$(dirname "$0")/../test_rules_coverage.sh"
