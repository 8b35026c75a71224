#!/bin/sh
# Engine benchmark: bms against ONNX Runtime on the same models, inputs,
# thread counts and run counts, one engine after the other, then one table
# with the median latencies, their ratio, peak memory and how far the two
# engines' outputs are apart.
#
# Builds nothing: run `make` first (it expects build/bms, or BMS_BIN).
# Installs onnxruntime-node into bench/node_modules for this benchmark only
# when it is missing, and writes bench/models/*.onnx with
# tools/make_bench_models.py when they are missing (installing Debian's
# python3-torch and python3-onnx with apt-get first when they are).
#
#   bench/engine.sh                      every row, 1 and 2 threads
#   ROWS="fashion_mlp resnet18" THREADS=1 bench/engine.sh
#   REPEAT=5 bench/engine.sh             rounds per row (default 3): the
#                                        engines take turns, and each
#                                        one's figure is the median of its
#                                        rounds, so that a machine slowing
#                                        down for a while hits both
#   KEEP=1 bench/engine.sh               keep the work folder (inputs,
#                                        outputs, JSON of each run)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BMS_BIN=${BMS_BIN:-$ROOT/build/bms}
PY=/usr/bin/python3
ROWS=${ROWS:-"fashion_mlp fashion_cnn resnet18 bert_small"}
THREADS=${THREADS:-"1 2"}
REPEAT=${REPEAT:-3}
KEEP=${KEEP:-0}

if [ ! -x "$BMS_BIN" ]; then
    echo "bench: no $BMS_BIN; build it first with make" >&2
    exit 1
fi
if ! command -v node >/dev/null 2>&1; then
    echo "bench: node is needed for the ONNX Runtime side" >&2
    exit 1
fi
if [ ! -d "$ROOT/bench/node_modules/onnxruntime-node" ]; then
    echo "bench: installing onnxruntime-node into bench/node_modules" >&2
    npm install --prefix "$ROOT/bench" --ignore-scripts --no-save \
        --no-audit --no-fund onnxruntime-node >&2
fi
if [ ! -f "$ROOT/bench/models/resnet18.onnx" ] ||
   [ ! -f "$ROOT/bench/models/bert_small.onnx" ]; then
    if ! "$PY" -c "import torch, onnx" 2>/dev/null; then
        echo "bench: installing python3-torch and python3-onnx" >&2
        sudo=""
        [ "$(id -u)" -ne 0 ] && sudo="sudo"
        $sudo apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
                python3-torch python3-onnx >/dev/null
    fi
    echo "bench: writing bench/models with tools/make_bench_models.py" >&2
    "$PY" "$ROOT/tools/make_bench_models.py" >&2
fi

cd "$ROOT"
WORK=$(mktemp -d /tmp/bms-bench-engine.XXXXXX)
cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "bench: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT INT TERM

# model name, file, then "batch:iterations:warmup" per batch size.  The
# counts keep a full run under about ten minutes on two cores.
model_rows() {
    case "$1" in
    fashion_mlp)
        echo "models/fashion_mlp/1/model.onnx 1:1000:100 64:300:30" ;;
    fashion_cnn)
        echo "models/fashion_cnn/1/model.onnx 1:300:30 64:100:10" ;;
    resnet18)
        echo "bench/models/resnet18.onnx 1:30:5 8:10:2" ;;
    bert_small)
        echo "bench/models/bert_small.onnx 1:40:5 8:10:2" ;;
    *)
        echo "bench: unknown row '$1'" >&2
        return 1 ;;
    esac
}

# One row: both engines on one model, batch and thread count.  Everything
# a row produced lies in its own folder, for the table at the end.
run_row() {
    name=$1 model=$2 batch=$3 iters=$4 warm=$5 threads=$6
    dir=$WORK/rows/$(printf '%03d' "$n_row")
    mkdir -p "$dir"
    printf '%s %s %s\n' "$name" "$batch" "$threads" >"$dir/meta"
    echo "bench: $name batch $batch threads $threads" >&2
    common="--batch $batch --threads $threads --iterations $iters"
    common="$common --warmup $warm"

    if "$BMS_BIN" bench "$model" --batch "$batch" \
           --write-inputs "$dir/in.bin" 2>"$dir/bms.err"; then
        # shellcheck disable=SC2086
        "$BMS_BIN" bench "$model" $common --json --inputs "$dir/in.bin" \
            --dump-outputs "$dir/bms.out" >"$dir/bms.json" \
            2>"$dir/bms.err" || true
    fi
    if [ -s "$dir/bms.json" ]; then
        # shellcheck disable=SC2086
        node "$ROOT/bench/engine_ort.js" "$model" $common \
            --inputs "$dir/in.bin" --dump-outputs "$dir/ort.out" \
            --compare "$dir/bms.out" >"$dir/ort.json" \
            2>"$dir/ort.err" || true
        r=2
        while [ "$r" -le "$REPEAT" ]; do
            # shellcheck disable=SC2086
            "$BMS_BIN" bench "$model" $common --json --inputs "$dir/in.bin" \
                >"$dir/bms.$r.json" 2>>"$dir/bms.err" || true
            # shellcheck disable=SC2086
            node "$ROOT/bench/engine_ort.js" "$model" $common \
                --inputs "$dir/in.bin" >"$dir/ort.$r.json" \
                2>>"$dir/ort.err" || true
            r=$((r + 1))
        done
    else
        # bms refused the model: ONNX Runtime still runs, on the inputs
        # the shared generator gives, for the record.
        # shellcheck disable=SC2086
        node "$ROOT/bench/engine_ort.js" "$model" $common \
            >"$dir/ort.json" 2>"$dir/ort.err" || true
    fi
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
n_row=0
for name in $ROWS; do
    spec=$(model_rows "$name")
    model=${spec%% *}
    for threads in $THREADS; do
        for b in ${spec#* }; do
            n_row=$((n_row + 1))
            IFS=: read -r batch iters warm <<EOF
$b
EOF
            run_row "$name" "$model" "$batch" "$iters" "$warm" "$threads"
        done
    done
done

"$PY" - "$WORK/rows" <<'PYEOF'
import json, os, sys

root = sys.argv[1]
head = ("model", "batch", "thr", "bms ms", "ORT ms", "bms/ORT",
        "bms MB", "ORT MB", "max abs diff", "max |ORT|", "diff/max",
        "max rel diff")
rows = []


def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return None


def first_line(path):
    try:
        with open(path) as f:
            line = f.readline().strip()
    except OSError:
        return "no output"
    return line[len("bms: "):] if line.startswith("bms: ") else line


def rounds(p, engine, first):
    """The first round's JSON with median_us the median of every round's
    and peak_rss_bytes the largest."""
    if first is None:
        return None
    runs = [first] + [r for r in (load(os.path.join(p, f)) for f in
                                  sorted(os.listdir(p))
                                  if f.startswith(engine + ".")
                                  and f.endswith(".json")
                                  and f != engine + ".json") if r]
    times = sorted(r["median_us"] for r in runs)
    first = dict(first)
    first["median_us"] = times[len(times) // 2]
    first["peak_rss_bytes"] = max(r["peak_rss_bytes"] for r in runs)
    return first


for d in sorted(os.listdir(root)):
    p = os.path.join(root, d)
    with open(os.path.join(p, "meta")) as f:
        name, batch, threads = f.read().split()
    b = rounds(p, "bms", load(os.path.join(p, "bms.json")))
    o = rounds(p, "ort", load(os.path.join(p, "ort.json")))
    ort_ms = "%.3f" % (o["median_us"] / 1e3) if o else "failed"
    ort_mb = "%.1f" % (o["peak_rss_bytes"] / 2**20) if o else "-"
    if b is None:
        why = first_line(os.path.join(p, "bms.err"))
        rows.append((name, batch, threads, "unsupported: " + why, ort_ms))
        continue
    ratio = "%.2f" % (b["median_us"] / o["median_us"]) if o else "-"
    diff = ("%.3g" % o["max_abs_diff"], "%.3g" % o["max_abs_ref"],
            "%.3g" % (o["max_abs_diff"] / o["max_abs_ref"]
                      if o["max_abs_ref"] > 0 else 0.0),
            "%.3g" % o["max_rel_diff"]) if o and "max_abs_diff" in o \
        else ("-", "-", "-", "-")
    rows.append((name, batch, threads, "%.3f" % (b["median_us"] / 1e3),
                 ort_ms, ratio, "%.1f" % (b["peak_rss_bytes"] / 2**20),
                 ort_mb) + diff)

full = [r for r in rows if len(r) == len(head)]
widths = [max(len(str(r[i])) for r in full + [head])
          for i in range(len(head))]


def fmt(r):
    cells = [str(c).rjust(w) if i > 0 else str(c).ljust(w)
             for i, (c, w) in enumerate(zip(r, widths))]
    return "  ".join(cells)


print(fmt(head))
for r in rows:
    if len(r) == len(head):
        print(fmt(r))
    else:
        print("%s  ORT %s ms" % (fmt(r[:3]), r[4]) + "  " + r[3])
PYEOF
echo "ORT peak memory includes node itself (about 50 MB before the model)."
echo "load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
