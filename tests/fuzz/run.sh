#!/usr/bin/env bash
# run.sh SECONDS NAME...: runs each harness build/fuzz/fuzz_NAME for SECONDS seconds, one after
# the other, on a copy of its committed corpus (build/fuzz/corpus/NAME: the committed one never
# grows). With FUZZ_RUNS=N in the environment, each runs N executions instead, however long that
# takes (the campaigns of docs/fuzzing.md). Fails if any harness crashes, leaks, trips a
# sanitizer or an invariant; the input is then in build/fuzz/artifacts/. Prints each harness's
# execution count and rate.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=$1
shift
fb=build/fuzz
mkdir -p "$fb/artifacts"
failed=()
for name in "$@"; do
  work="$fb/corpus/$name"
  rm -rf "$work"
  mkdir -p "$work"
  cp -r "tests/fuzz/corpus/$name/." "$work/" 2>/dev/null || true
  log="$fb/fuzz_$name.log"
  # -timeout: one input taking 10 s is a hang, not a slow parse; -rss_limit_mb: 2 GB.
  limit=(-max_total_time="$secs")
  [ -z "${FUZZ_RUNS:-}" ] || limit=(-runs="$FUZZ_RUNS")
  start=$SECONDS
  if "$fb/fuzz_$name" "${limit[@]}" -timeout=10 -rss_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$fb/artifacts/$name-" "$work" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    took=$((SECONDS - start))
    rate=$(( ${runs:-0} / (took > 0 ? took : 1) ))
    echo "fuzz $name: ok, ${runs:-?} executions in ${took} s ($rate exec/s)"
  else
    echo "fuzz $name: FAILED (log: $log)"
    tail -n 40 "$log"
    failed+=("$name")
  fi
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}"; exit 1; }
