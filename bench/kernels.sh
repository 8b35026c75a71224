#!/bin/sh
# Kernel-library benchmark: builds build/bench-kernels (make bench-kernels)
# and runs it under each OpenBLAS setting in turn, ROUNDS times over, then
# prints markdown tables whose cells are the range (lowest-highest) of the
# per-run medians.  bench/kernels.md holds the figures and the conclusion.
#
# The settings ("passes"):
#   as-is    the environment as it is
#   unset    OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so that OpenBLAS
#            picks its kernels for the CPU it finds (AVX-512 here)
#   haswell  OPENBLAS_CORETYPE=Haswell (the AVX2 kernels), only when the
#            environment does not set that already, so that the forced
#            setting is measured either way
# oneDNN ignores these variables, so its rows pool the runs of every pass.
#
#   bench/kernels.sh              two rounds (about three minutes)
#   ROUNDS=3 bench/kernels.sh
#   KEEP=1 bench/kernels.sh       keep the raw output of every run
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
ROUNDS=${ROUNDS:-2}
KEEP=${KEEP:-0}
BIN=$ROOT/build/bench-kernels

cd "$ROOT"
make bench-kernels >&2

WORK=$(mktemp -d /tmp/bms-bench-kernels.XXXXXX)
cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "bench: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

PASSES="as-is unset"
if [ "${OPENBLAS_CORETYPE:-}" != Haswell ]; then
    PASSES="$PASSES haswell"
fi

# Run the benchmark once under pass $1, writing $WORK/$1.$2.
run_pass() {
    case "$1" in
    as-is)
        "$BIN" >"$WORK/$1.$2" ;;
    unset)
        env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$BIN" \
            >"$WORK/$1.$2" ;;
    haswell)
        env OPENBLAS_CORETYPE=Haswell "$BIN" >"$WORK/$1.$2" ;;
    esac
}

# Rounds outside, passes inside: a busy spell on the machine then falls on
# every pass rather than on one.
status=0
round=1
while [ "$round" -le "$ROUNDS" ]; do
    for pass in $PASSES; do
        echo "bench: round $round, pass $pass," \
            "load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
        echo "- round $round, pass $pass: load average" \
            "$(cut -d' ' -f1-3 /proc/loadavg) before the run" >>"$WORK/load"
        run_pass "$pass" "$round" || status=1
    done
    round=$((round + 1))
done

echo "# Kernel libraries on $(nproc) cores, $ROUNDS rounds"
echo
for pass in $PASSES; do
    sed -n "s/^# openblas core/- $pass: OpenBLAS core/p" "$WORK/$pass.1"
done
sed -n 's/^# onednn/- oneDNN/p' "$WORK/as-is.1"
cat "$WORK/load"
echo

# Every row as: pass kind case shape threads method median_ms best_ms
# gflops best_gflops max_abs_diff check.
for pass in $PASSES; do
    for f in "$WORK/$pass".*; do
        grep -v '^#' "$f" | sed "s/^/$pass /"
    done
done >"$WORK/all"

awk -v passes="$PASSES" '
function cell(key, lo, hi) {
    lo = LO[key]
    hi = HI[key]
    if (lo == "") {
        return "-"
    }
    return (lo == hi) ? lo : lo "-" hi
}
function add(key, v) {
    if (!(key in LO) || v + 0 < LO[key] + 0) {
        LO[key] = v
    }
    if (!(key in HI) || v + 0 > HI[key] + 0) {
        HI[key] = v
    }
}
# One table of field f (a column name) for kind k.
function table(k, f, title,    r, c, key) {
    printf "%s\n\n| case | shape | threads |", title
    for (c = 1; c <= ncol[k]; c++) {
        printf " %s |", col[k, c]
    }
    printf "\n|---|---|---|"
    for (c = 1; c <= ncol[k]; c++) {
        printf "---|"
    }
    printf "\n"
    for (r = 1; r <= nrow[k]; r++) {
        split(row[k, r], part, SUBSEP)
        printf "| %s | %s | %s |", part[1], part[2], part[3]
        for (c = 1; c <= ncol[k]; c++) {
            key = k SUBSEP f SUBSEP row[k, r] SUBSEP col[k, c]
            printf " %s |", cell(key)
        }
        printf "\n"
    }
    printf "\n"
}
{
    pass = $1; kind = $2; rkey = $3 SUBSEP $4 SUBSEP $5; method = $6
    ckey = (method ~ /openblas/) ? method " (" pass ")" : method
    if (!((kind, rkey) in seenrow)) {
        seenrow[kind, rkey] = 1
        row[kind, ++nrow[kind]] = rkey
    }
    if (!((kind, method) in seenmethod)) {
        seenmethod[kind, method] = 1
        methods[kind, ++nmethod[kind]] = method
    }
    base = kind SUBSEP "%s" SUBSEP rkey SUBSEP ckey
    add(sprintf(base, "ms"), sprintf("%.3f", $7))
    add(sprintf(base, "best_ms"), sprintf("%.3f", $8))
    add(sprintf(base, "gflops"), sprintf("%.0f", $9))
    add(sprintf(base, "best_gflops"), sprintf("%.0f", $10))
    if ($11 + 0 > worst[kind] + 0) {
        worst[kind] = $11
    }
    if ($12 == "BAD") {
        bad++
    }
}
# Columns: oneDNN and im2col alone first, then each OpenBLAS method once
# per pass, in the order of the passes.
function columns(k,    m, p, n_pass, pass_of) {
    n_pass = split(passes, pass_of, " ")
    for (m = 1; m <= nmethod[k]; m++) {
        if (methods[k, m] !~ /openblas/) {
            col[k, ++ncol[k]] = methods[k, m]
        }
    }
    for (p = 1; p <= n_pass; p++) {
        for (m = 1; m <= nmethod[k]; m++) {
            if (methods[k, m] ~ /openblas/) {
                col[k, ++ncol[k]] = methods[k, m] " (" pass_of[p] ")"
            }
        }
    }
}
END {
    columns("peak")
    columns("gemm")
    columns("conv")
    table("peak", "gflops", "## FMA peak of one core, GFLOP/s")
    table("gemm", "gflops", "## sgemm, GFLOP/s (median of each run)")
    table("gemm", "best_gflops", "## sgemm, GFLOP/s (best sample)")
    table("conv", "ms", "## Conv, ms (median of each run)")
    table("conv", "gflops",
          "## Conv, GFLOP/s of the direct algorithm (median of each run)")
    table("conv", "best_ms", "## Conv, ms (best sample)")
    printf "Largest difference from the double-precision reference: "
    printf "sgemm %s, Conv %s; rows over the tolerance: %d\n\n",
           worst["gemm"], worst["conv"], bad + 0
}' "$WORK/all"

grep -h '^# .*refused' "$WORK"/*.* | sort -u || true
exit "$status"
