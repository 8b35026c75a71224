#!/bin/bash
# The whole bms test suite, as `make test` runs it:
#
#   style        tools/style-check.sh
#   unit         build/san/unit-tests      (ASan + UBSan build)
#   conformance  build/san/conformance     (the ONNX backend suite; every
#                test that does not pass is in conformance/expected.txt)
#   e2e          tests/e2e/run.py          (the real server, release build)
#   openapi      tests/openapi/run.sh      (docs/openapi.json validated,
#                its paths against the routes, the served copy)
#   e2e-san      the bad-input, binary-data and gateway tests again, on
#                the sanitizer build
#   e2e-faults   crash isolation, on a build with a test-only faulty op
#
# Each stage prints `<stage>: N passed, N failed[, N skipped]`; the last
# line adds them up.  Exit status 1 if anything failed.
set -u
cd "$(dirname "$0")/.."

jobs=$(nproc 2>/dev/null || echo 2)
# Run from `make test`: the builds below are make's own, not sub-makes.
unset MAKEFLAGS MFLAGS MAKELEVEL
log_dir=build/test-logs
total_pass=0
total_fail=0
total_skip=0

mkdir -p "$log_dir"

# Run one stage, echo its output to a log, add its summary line to the
# totals.  A stage that prints no summary counts as one failure.
stage() {
    local name=$1
    shift
    local log="$log_dir/$name.log"
    echo "== $name: $*"
    "$@" > "$log" 2>&1
    local rc=$?
    grep -E '^(FAIL|ERROR|NOW PASSES|STALE)|^[a-z0-9-]+: [0-9]+ passed' "$log" | tail -n 40
    local line
    line=$(grep -E '^[a-z0-9-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no summary (exit $rc); last lines of $log:"
        tail -n 20 "$log"
        total_fail=$((total_fail + 1))
        return
    fi
    local p f s
    p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    total_skip=$((total_skip + ${s:-0}))
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$name: exit status $rc with no failure counted"
        total_fail=$((total_fail + 1))
    fi
}

build() {
    local name=$1
    shift
    echo "== build $name"
    if ! make -j"$jobs" WERROR=1 "$@" > "$log_dir/build-$name.log" 2>&1
    then
        tail -n 30 "$log_dir/build-$name.log"
        echo "build $name failed"
        echo "0 passed, 1 failed"
        exit 1
    fi
}

build release
build san SAN=1 BUILD=build/san
# The test-only faulty operator, for the crash-isolation tests.
build faults TEST_FAULTS=1 BUILD=build/faults

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp

stage style tools/style-check.sh
stage unit build/san/unit-tests
stage conformance build/san/conformance -q \
    --expected tests/conformance/expected.txt
stage e2e /usr/bin/python3 tests/e2e/run.py
stage openapi tests/openapi/run.sh
BMS_BIN=build/san/bms stage e2e-san /usr/bin/python3 tests/e2e/run.py \
    test_errors test_auth test_limits test_package test_cache test_binary
BMS_BIN=build/faults/bms stage e2e-faults /usr/bin/python3 tests/e2e/run.py \
    test_isolation

echo "total: $total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
