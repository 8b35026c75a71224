#!/bin/sh
# Dynamic batching benchmark: the bundled CNN (fashion_cnn) served twice
# from one temporary repository, once as bundled (batching off) and once
# with "scheduling" turning batching on, each under 64 concurrent
# keep-alive wrk connections sending batch-1 infer requests (one real
# Fashion-MNIST test image).  Prints throughput and p50/p90/p99 latency
# per variant, then the server's own counters (requests, executions).
#
# Builds nothing: run `make` first (it expects build/bms, or BMS_BIN).
# Installs the Debian package wrk with apt-get when it is missing.
#
#   bench/batching.sh                   10 s per measurement
#   DURATION=5 CONNS=32 bench/batching.sh
#   MAX_BATCH=32 DELAY_US=2000 bench/batching.sh
#   BODY=bin bench/batching.sh          the tensor as binary data
#   ISOLATION=process bench/batching.sh instances in worker processes
#   ADAPTIVE=1 bench/batching.sh        cnn_on with adaptive_delay
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BMS_BIN=${BMS_BIN:-$ROOT/build/bms}
MODELS=${BMS_MODEL_REPOSITORY:-$ROOT/models}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
MAX_BATCH=${MAX_BATCH:-64}
DELAY_US=${DELAY_US:-2000}
INSTANCES=${INSTANCES:-1}
ISOLATION=${ISOLATION:-thread}
BODY=${BODY:-json}
ADAPTIVE=${ADAPTIVE:-0}
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

WORK=$(mktemp -d /tmp/bms-batching.XXXXXX)
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID"
        wait "$PID" || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# The repository: cnn_off as bundled, cnn_on with batching; and the body.
"$PY" - "$WORK" "$MODELS" "$MAX_BATCH" "$DELAY_US" "$INSTANCES" "$ISOLATION" \
    "$ADAPTIVE" <<'PYEOF'
import gzip, json, os, shutil, struct, sys
import numpy as np
work, models, max_batch, delay_us, instances, isolation = sys.argv[1:7]
adaptive = sys.argv[7] == "1"
src = os.path.join(models, "fashion_cnn")
with open(os.path.join(src, "config.json")) as f:
    config = json.load(f)
for name, sched in (("cnn_off", {"instances": int(instances),
                                 "isolation": isolation}),
                    ("cnn_on", {"max_batch_size": int(max_batch),
                                "max_queue_delay_us": int(delay_us),
                                "instances": int(instances),
                                "isolation": isolation,
                                "adaptive_delay": adaptive})):
    dst = os.path.join(work, "repo", name)
    os.makedirs(os.path.join(dst, "1"))
    shutil.copy(os.path.join(src, "1", "model.onnx"),
                os.path.join(dst, "1", "model.onnx"))
    c = dict(config, name=name, scheduling=sched)
    with open(os.path.join(dst, "config.json"), "w") as f:
        json.dump(c, f)
path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
with gzip.open(path) as f:
    raw = f.read()
magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
assert magic == 2051, magic
image = np.frombuffer(raw, np.uint8, rows * cols, 16)
data = [float(x) for x in image.astype(np.float32) / np.float32(255)]
body = {"inputs": [{"name": "image", "datatype": "FP32",
                    "shape": [1, 1, 28, 28], "data": data}]}
with open(os.path.join(work, "body.json"), "w") as f:
    json.dump(body, f)
pixels = (image.astype(np.float32) / np.float32(255)).astype("<f4")
head = json.dumps({"inputs": [{
    "name": "image", "datatype": "FP32", "shape": [1, 1, 28, 28],
    "parameters": {"binary_data_size": pixels.nbytes}}]}).encode()
with open(os.path.join(work, "body.bin"), "wb") as f:
    f.write(head + pixels.tobytes())
with open(os.path.join(work, "body.bin.len"), "w") as f:
    f.write(str(len(head)))
PYEOF
case $BODY in
json) JSON_LENGTH= ;;
bin) JSON_LENGTH=$(cat "$WORK/body.bin.len") ;;
*) echo "bench: BODY is json or bin" >&2; exit 2 ;;
esac

"$BMS_BIN" serve --model-repository "$WORK/repo" --http-address 127.0.0.1 \
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

stats() {
    "$PY" -c '
import http.client, json, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=30)
c.request("GET", "/v2/models/%s" % sys.argv[2])
s = json.loads(c.getresponse().read())["scheduling"]["stats"]
print(s["requests"], s["executions"], s["shed"], s["expired"])' "$PORT" "$1"
}

echo "bms serve pid $PID port $PORT, $(nproc) cores, ${DURATION} s each," \
    "$CONNS connections, batch-1 requests; cnn_on: max_batch_size" \
    "$MAX_BATCH, max_queue_delay_us $DELAY_US; instances $INSTANCES," \
    "isolation $ISOLATION, $BODY bodies, adaptive_delay $ADAPTIVE"
printf '%-8s %10s %9s %9s %9s %7s %9s %11s\n' model 'req/s' 'p50 ms' \
    'p90 ms' 'p99 ms' errors requests executions
for m in cnn_off cnn_on; do
    before=$(stats "$m")
    line=$(BMS_BENCH_BODY=$WORK/body.$BODY \
        BMS_BENCH_JSON_LENGTH=$JSON_LENGTH wrk -t2 -c"$CONNS" \
        -d"${DURATION}s" -s "$ROOT/bench/post.lua" \
        "http://127.0.0.1:$PORT/v2/models/$m/infer" | grep '^BMS_RESULT')
    after=$(stats "$m")
    echo "$line $before $after" | awk -v m="$m" '{
        for (i = 2; i <= 9; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "%-8s %10.0f %9.3f %9.3f %9.3f %7d %9d %11d\n", m,
            v["rps"], v["p50_us"] / 1000, v["p90_us"] / 1000,
            v["p99_us"] / 1000, v["non2xx"] + v["socket_errors"],
            $14 - $10, $15 - $11
    }'
done

kill -TERM "$PID"
wait "$PID" && rc=0 || rc=$?
PID=
echo "server stopped (exit $rc)"
