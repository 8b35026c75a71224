#!/bin/sh
# HTTP benchmark of bms serve with wrk: batch-1 infer requests (one real
# Fashion-MNIST test image) against fashion_mlp and fashion_cnn, first one
# connection for latency, then 16 and 64 connections for throughput; each
# with the tensor as JSON numbers and as binary data (the JSON part names
# the input, the 3,136 bytes of float32 follow it).
#
# Builds nothing: run `make` first (it expects build/bms, or BMS_BIN).
# Installs the Debian package wrk with apt-get when it is missing.
#
#   bench/http.sh              10 s per measurement
#   DURATION=5 bench/http.sh
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BMS_BIN=${BMS_BIN:-$ROOT/build/bms}
MODELS=${BMS_MODEL_REPOSITORY:-$ROOT/models}
DURATION=${DURATION:-10}
PY=/usr/bin/python3

if [ ! -x "$BMS_BIN" ]; then
    echo "bench: no $BMS_BIN; build it first with make" >&2
    exit 1
fi
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
fi

WORK=$(mktemp -d /tmp/bms-bench.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# One test image per model, as FP32 pixel/255 (the shape each model takes).
"$PY" - "$WORK" <<'PYEOF'
import gzip, json, struct, sys
import numpy as np
path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
with gzip.open(path) as f:
    raw = f.read()
magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
assert magic == 2051, magic
image = np.frombuffer(raw, np.uint8, rows * cols, 16)
data = [float(x) for x in image.astype(np.float32) / np.float32(255)]
for name, shape in (("fashion_mlp", [1, 28, 28]),
                    ("fashion_cnn", [1, 1, 28, 28])):
    body = {"inputs": [{"name": "image", "datatype": "FP32",
                        "shape": shape, "data": data}]}
    with open("%s/%s.json" % (sys.argv[1], name), "w") as f:
        json.dump(body, f)
    pixels = image.astype(np.float32) / np.float32(255)
    head = json.dumps({"inputs": [{
        "name": "image", "datatype": "FP32", "shape": shape,
        "parameters": {"binary_data_size": pixels.nbytes}}]}).encode()
    with open("%s/%s.bin" % (sys.argv[1], name), "wb") as f:
        f.write(head + pixels.astype("<f4").tobytes())
    with open("%s/%s.bin.len" % (sys.argv[1], name), "w") as f:
        f.write(str(len(head)))
PYEOF

"$BMS_BIN" serve --model-repository "$MODELS" --http-address 127.0.0.1 \
    --http-port 0 --data-dir "$WORK/data" 2>"$WORK/server.log" &
PID=$!
PORT=
i=0
while [ $i -lt 300 ]; do
    PORT=$(sed -n 's/.*msg="listening".* port=\([0-9][0-9]*\).*/\1/p' \
        "$WORK/server.log" | head -n 1)
    [ -n "$PORT" ] && break
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$PORT" ]; then
    echo "bench: the server did not report its port" >&2
    exit 1
fi

for m in fashion_mlp fashion_cnn; do
    for kind in json bin; do
        code=$(BMS_BENCH_BODY=$WORK/$m.$kind "$PY" -c '
import http.client, os, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
headers = {"Content-Type": "application/json"}
if sys.argv[3] == "bin":
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length":
                   open(os.environ["BMS_BENCH_BODY"] + ".len").read()}
c.request("POST", "/v2/models/%s/infer" % sys.argv[2],
          open(os.environ["BMS_BENCH_BODY"], "rb").read(), headers)
print(c.getresponse().status)' "$PORT" "$m" "$kind")
        if [ "$code" != 200 ]; then
            echo "bench: $m answered $code to the $kind benchmark body" >&2
            exit 1
        fi
    done
done

echo "bms serve pid $PID port $PORT, $(nproc) cores, ${DURATION} s each," \
    "batch 1, body $(wc -c <"$WORK/fashion_mlp.json") bytes as JSON," \
    "$(wc -c <"$WORK/fashion_mlp.bin") as binary (mlp)"
printf '%-12s %-6s %7s %5s %10s %9s %9s %9s %7s\n' model body threads \
    conns 'req/s' 'p50 ms' 'p90 ms' 'p99 ms' errors
for m in fashion_mlp fashion_cnn; do
    for kind in json bin; do
        len=
        [ "$kind" = bin ] && len=$(cat "$WORK/$m.bin.len")
        for tc in "1 1" "2 16" "2 64"; do
            set -- $tc
            line=$(BMS_BENCH_BODY=$WORK/$m.$kind BMS_BENCH_JSON_LENGTH=$len \
                wrk -t"$1" -c"$2" -d"${DURATION}s" \
                -s "$ROOT/bench/post.lua" \
                "http://127.0.0.1:$PORT/v2/models/$m/infer" |
                grep '^BMS_RESULT')
            echo "$line" | awk -v m="$m" -v k="$kind" -v t="$1" -v c="$2" '{
                for (i = 2; i <= NF; i++) {
                    split($i, kv, "="); v[kv[1]] = kv[2]
                }
                printf "%-12s %-6s %7d %5d %10.0f %9.3f %9.3f %9.3f %7d\n",
                    m, k, t, c, v["rps"], v["p50_us"] / 1000,
                    v["p90_us"] / 1000, v["p99_us"] / 1000,
                    v["non2xx"] + v["socket_errors"]
            }'
        done
    done
done

kill -TERM "$PID"
wait "$PID" && rc=0 || rc=$?
PID=
echo "server stopped (exit $rc)"
