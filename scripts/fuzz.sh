#!/usr/bin/env bash
# Runs every Fuzz target of the module for $FUZZTIME (default 5s) from its seed
# corpus. Targets are found by name, so a new one is fuzzed without editing
# this script.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-5s}
count=0
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	echo "-- $dir $name"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"
	count=$((count + 1))
done < <(git ls-files '*_test.go' | grep -v '^internal/benchcmp/' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | sed 's/func //' | sort)
echo "fuzzed $count targets"
[ "$count" -gt 0 ]
