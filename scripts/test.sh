#!/usr/bin/env bash
# test.sh: install what the tests need, then build and run every test twice: with the release
# build, and with the ASan+UBSan build (leaks included). Fails on the first failing suite.
#   unit         cmocka binaries (tests/unit/test_*.c)
#   integration  real mivault processes on loopback (tests/integration/, system Python 3)
#   compat       unchanged official clients (tests/compat/)
#   ha           two servers + haproxy + a pg_auto_failover formation (tests/ha/; release only:
#                it measures failover under load, which the sanitizer build would only slow)
# MIVAULT_TEST_MODES="release" limits the modes; MIVAULT_TEST_SUITES="unit integration" the suites.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh test
modes=${MIVAULT_TEST_MODES:-"release asan"}
suites=${MIVAULT_TEST_SUITES:-"unit integration compat ha"}
make check-style
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:exitcode=66:detect_stack_use_after_return=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp:print_suppressions=0"
for mode in $modes; do
  echo "=== build ($mode)"
  make -j"$(nproc)" MODE="$mode" all unit >/dev/null
  export MIVAULT_BIN="$PWD/build/$mode/mivault" MIVAULT_MODE="$mode"
  for suite in $suites; do
    echo "=== $suite tests ($mode)"
    case "$suite" in
      unit)
        for t in build/"$mode"/tests/test_*; do
          "$t" || { echo "FAILED: $t ($mode)"; exit 1; }
        done ;;
      integration) /usr/bin/python3 -m unittest discover -s tests/integration -p 'test_*.py' ;;
      compat) bash tests/compat/run.sh ;;
      ha) if [ "$mode" = release ]; then bash tests/ha/run.sh; fi ;;
    esac
  done
done
echo "=== all tests passed (modes: $modes)"
