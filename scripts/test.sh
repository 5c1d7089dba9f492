#!/usr/bin/env bash
# test.sh: install what the tests need, then build and run every test twice: with the release
# build, and with the ASan+UBSan build (leaks included). Fails on the first failing suite.
#   unit         cmocka binaries (tests/unit/test_*.c)
#   integration  real mivault processes on loopback (tests/integration/, system Python 3)
#   integration-pg  the same integration tests with every store in PostgreSQL
#   compat       unchanged official clients (tests/compat/)
#   ha           two servers + haproxy + a pg_auto_failover formation (tests/ha/; release only:
#                it measures failover under load, which the sanitizer build would only slow)
#   fuzz         each libFuzzer harness for MIVAULT_FUZZ_SECONDS (5) on its corpus, once, not per
#                mode (its own clang ASan+UBSan build, docs/fuzzing.md)
# MIVAULT_TEST_MODES="release" limits the modes; MIVAULT_TEST_SUITES="unit integration" the suites.
# One throw-away PostgreSQL 15 serves the whole run (scripts/pg-test-server.sh; stopped on exit):
# its URL is MIVAULT_TEST_PG_URL, from which the store's unit tests and the integration tests
# make a database each. MIVAULT_TEST_STORE=postgresql runs every integration test on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
if [ -z "${MIVAULT_TEST_PG_URL:-}" ]; then
  pgdir=$(mktemp -d /tmp/mivault-pg.XXXXXX)
  trap 'bash scripts/pg-test-server.sh stop "$pgdir"' EXIT
  MIVAULT_TEST_PG_URL=$(bash scripts/pg-test-server.sh start "$pgdir")
  export MIVAULT_TEST_PG_URL
  echo "=== postgresql for the tests: $MIVAULT_TEST_PG_URL"
fi
modes=${MIVAULT_TEST_MODES:-"release asan"}
suites=${MIVAULT_TEST_SUITES:-"unit integration integration-pg compat ha fuzz"}
make check-style
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=66:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
for mode in $modes; do
  echo "=== build ($mode)"
  make -j"$(nproc)" MODE="$mode" all unit >/dev/null
  export MIVAULT_BIN="$PWD/build/$mode/mivault" MIVAULT_MODE="$mode"
  for suite in $suites; do
    [ "$suite" != fuzz ] || continue # once, below
    echo "=== $suite tests ($mode)"
    case "$suite" in
      unit)
        for t in build/"$mode"/tests/test_*; do
          "$t" || { echo "FAILED: $t ($mode)"; exit 1; }
        done ;;
      integration) /usr/bin/python3 -m unittest discover -s tests/integration -p 'test_*.py' ;;
      integration-pg) MIVAULT_TEST_STORE=postgresql \
          /usr/bin/python3 -m unittest discover -s tests/integration -p 'test_*.py' ;;
      compat) bash tests/compat/run.sh ;;
      ha) if [ "$mode" = release ]; then bash tests/ha/run.sh; fi ;;
    esac
  done
done
if [[ " $suites " == *" fuzz "* ]]; then
  echo "=== fuzz (${MIVAULT_FUZZ_SECONDS:-5} s per harness)"
  make -j"$(nproc)" fuzz-build >/dev/null
  make fuzz FUZZ_SECONDS="${MIVAULT_FUZZ_SECONDS:-5}"
fi
echo "=== all tests passed (modes: $modes)"
