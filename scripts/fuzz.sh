#!/usr/bin/env bash
# Runs every Fuzz target of the module for $FUZZTIME from its seed corpus.
# Targets are found by name, so a new one is fuzzed without editing this
# script.
#
# The budget is a count of executions (30000x), not a duration: with a
# duration, Go 1.26's fuzz coordinator can fail a target with a bare "context
# deadline exceeded" when the time runs out while a worker is busy
# (golang/go#75804, fixed in Go 1.27), which would make CI flaky.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-30000x}
count=0
while IFS=: read -r file name; do
	dir=$(dirname "$file")
	echo "-- $dir $name"
	go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "./$dir"
	count=$((count + 1))
done < <(git ls-files '*_test.go' | grep -v '^internal/benchcmp/' | xargs grep -Ho '^func Fuzz[A-Za-z0-9_]*' | sed 's/func //' | sort)
echo "fuzzed $count targets"
[ "$count" -gt 0 ]
