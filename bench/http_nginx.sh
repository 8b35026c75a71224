#!/bin/sh
# bms against nginx on the same machine, side by side, over keep-alive
# loopback connections driven by wrk with the same threads and
# connections:
#
#   bms        POST /v2/models/fashion_mlp/infer, batch 1, one real
#              Fashion-MNIST test image as the body (as bench/http.sh)
#   bms-bin    the same request with the tensor as binary data (a short
#              JSON part, then the 3,136 bytes of float32)
#   nginx      GET of a static file holding a real bms response body for
#              that request (the HTTP ceiling of this machine)
#   nginx-post the same POST body as bms gets, read and dropped by
#              nginx, answered with the same static file
#
# For each round it sweeps the connection counts and prints req/s,
# p50/p99 latency, the server's CPU time per request (all its threads or
# worker processes), the 1-minute load average before each run and the
# cores other work kept busy during it, then the peak of each server and
# the ratio bms/nginx.  Then it loads bms at a quarter and at half of its
# peak rate with bench/paced.c (a fixed-rate client that counts latency
# from each request's due time) and prints p50/p99 there, with nginx-post
# at the same rates as the control.  At the end it profiles bms with perf
# under wrk load (PROFILE=0: skip) and prints where the time goes.
#
# Builds nothing of bms: run `make` first (it expects build/bms, or BMS_BIN).
# Compiles bench/paced.c into its temporary folder.  Installs the Debian
# packages wrk and nginx-light with apt-get when they are missing (nginx
# only where policy-rc.d keeps the package from starting the system
# service).  Its own nginx listens on 127.0.0.1 on a free port with the
# configuration bench/http_nginx.conf; everything it starts is stopped by
# PID.
#
#   bench/http_nginx.sh                    2 rounds, 10 s per run
#   DURATION=5 ROUNDS=1 CONNS="16 64" bench/http_nginx.sh
#   PROFILE=0 bench/http_nginx.sh
#   BMS_ARGS="--threads 8" bench/http_nginx.sh      extra serve options
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BMS_BIN=${BMS_BIN:-$ROOT/build/bms}
MODELS=${BMS_MODEL_REPOSITORY:-$ROOT/models}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16 64 128}
PACED_CONNS=${PACED_CONNS:-16}
PACED_FRACTIONS=${PACED_FRACTIONS:-0.25 0.5}
PROFILE=${PROFILE:-1}
PROFILE_SECONDS=${PROFILE_SECONDS:-5}
PROFILE_CONNS=${PROFILE_CONNS:-16}
PERF_CALL_GRAPH=${PERF_CALL_GRAPH:-dwarf,16384}
BMS_ARGS=${BMS_ARGS:-}
PY=/usr/bin/python3
MODEL=fashion_mlp
INFER=/v2/models/$MODEL/infer

if [ ! -x "$BMS_BIN" ]; then
    echo "bench: no $BMS_BIN; build it first with make" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench: installing wrk" >&2
    $sudo apt-get update -qq && $sudo apt-get install -y -qq wrk >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -x "$NGINX" ]; then
    # Without a policy-rc.d that refuses, the package would start the
    # system nginx on port 80; this benchmark leaves that to the user.
    prc=0
    if [ -x /usr/sbin/policy-rc.d ]; then
        /usr/sbin/policy-rc.d nginx start >/dev/null 2>&1 || prc=$?
    fi
    if [ "$prc" -ne 101 ]; then
        echo "bench: nginx is missing; install nginx-light (and stop" \
            "the service it starts) first" >&2
        exit 1
    fi
    echo "bench: installing nginx-light" >&2
    $sudo apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
            nginx-light >/dev/null
fi

WORK=$(mktemp -d /tmp/bms-nginx.XXXXXX)
BMS_PID=
NGINX_PID=
WRK_PID=
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -"$2" "$1"
        wait "$1" || true
    fi
}
cleanup() {
    stop_pid "$WRK_PID" TERM
    stop_pid "$NGINX_PID" QUIT
    stop_pid "$BMS_PID" TERM
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

load1() {
    cut -d' ' -f1 /proc/loadavg
}

# CPU clock ticks (user + system) used so far by the processes named.
cpu_ticks() {
    t=0
    for p in "$@"; do
        [ -r "/proc/$p/stat" ] || continue
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | cut -d' ' -f12,13 |
            tr ' ' '+')))
    done
    echo "$t"
}
HZ=$(getconf CLK_TCK)

# Context switches (voluntary and not) of all threads of process $1.
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null |
        awk '/ctxt_switches/ { n += $2 } END { print n + 0 }'
}

# Busy ticks of the whole machine (user, nice, system, steal; not irq
# and softirq, where the kernel counts loopback traffic apart from the
# processes) and seconds since boot, for the share other work took.
machine_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $9 }' /proc/stat
}
uptime_s() {
    cut -d' ' -f1 /proc/uptime
}

# CPU ticks of this shell's finished children (the load generator), as
# written by `times` (run in this shell, not in a subshell) to the file.
client_ticks() {
    awk -v hz="$HZ" 'NR == 2 {
        t = 0
        for (i = 1; i <= 2; i++) {
            split($i, ms, "m"); t += (ms[1] * 60 + ms[2] + 0) * hz
        }
        printf "%d\n", t
    }' "$1"
}

# Starts a measuring window for the processes named.
window_start() {
    w_pids=$*
    w_server=$(cpu_ticks $w_pids)
    times >"$WORK/times.$$"
    w_client=$(client_ticks "$WORK/times.$$")
    w_machine=$(machine_ticks)
    w_up=$(uptime_s)
}

# Ends it: sets w_ticks to the server's ticks and w_others to the cores
# that other work (not the server, not the load generator) kept busy on
# average meanwhile.
window_end() {
    e_server=$(cpu_ticks $w_pids)
    times >"$WORK/times.$$"
    e_client=$(client_ticks "$WORK/times.$$")
    e_machine=$(machine_ticks)
    e_up=$(uptime_s)
    w_ticks=$((e_server - w_server))
    w_others=$(awk -v s="$w_ticks" -v c=$((e_client - w_client)) \
        -v m=$((e_machine - w_machine)) -v hz="$HZ" -v u0="$w_up" \
        -v u1="$e_up" 'BEGIN {
            o = (m - s - c) / hz / (u1 - u0)
            printf "%.2f\n", o < 0 ? 0 : o
        }')
}

# The request body: one test image as FP32 pixel/255 (as bench/http.sh),
# as JSON and as binary data.
"$PY" - "$WORK/body.json" "$WORK/body.bin" <<'PYEOF'
import gzip, json, struct, sys
import numpy as np
path = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"
with gzip.open(path) as f:
    raw = f.read()
magic, n, rows, cols = struct.unpack(">IIII", raw[:16])
assert magic == 2051, magic
image = np.frombuffer(raw, np.uint8, rows * cols, 16)
data = [float(x) for x in image.astype(np.float32) / np.float32(255)]
body = {"inputs": [{"name": "image", "datatype": "FP32",
                    "shape": [1, 28, 28], "data": data}]}
with open(sys.argv[1], "w") as f:
    json.dump(body, f)
pixels = (image.astype(np.float32) / np.float32(255)).astype("<f4")
head = json.dumps({"inputs": [{
    "name": "image", "datatype": "FP32", "shape": [1, 28, 28],
    "parameters": {"binary_data_size": pixels.nbytes}}]}).encode()
with open(sys.argv[2], "wb") as f:
    f.write(head + pixels.tobytes())
with open(sys.argv[2] + ".len", "w") as f:
    f.write(str(len(head)))
PYEOF
BIN_LEN=$(cat "$WORK/body.bin.len")

cc -std=c11 -O2 -Wall -Wextra -o "$WORK/paced" "$ROOT/bench/paced.c"

# A copy of the binary, so that a rebuild during the run changes nothing.
cp "$BMS_BIN" "$WORK/bms"
BMS_STAMP="$(date -r "$BMS_BIN" '+%Y-%m-%d %H:%M:%S'), sha256 $(sha256sum \
    "$BMS_BIN" | cut -c1-12)"
# shellcheck disable=SC2086 # BMS_ARGS is a list of options
"$WORK/bms" serve --model-repository "$MODELS" --http-address 127.0.0.1 \
    --http-port 0 --data-dir "$WORK/data" $BMS_ARGS 2>"$WORK/server.log" &
BMS_PID=$!
BMS_PORT=
i=0
while [ $i -lt 300 ]; do
    BMS_PORT=$(sed -n 's/.*msg="listening".* port=\([0-9][0-9]*\).*/\1/p' \
        "$WORK/server.log" | head -n 1)
    [ -n "$BMS_PORT" ] && break
    kill -0 "$BMS_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
    i=$((i + 1))
done
if [ -z "$BMS_PORT" ]; then
    echo "bench: bms did not report its port" >&2
    exit 1
fi

# A real bms response to the body becomes nginx's static file.
mkdir -p "$WORK/nginx/www" "$WORK/nginx/tmp"
"$PY" - "$BMS_PORT" "$INFER" "$WORK/body.json" \
    "$WORK/nginx/www/infer.json" <<'PYEOF'
import http.client, sys
port, path, body, out = sys.argv[1:5]
c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
c.request("POST", path, open(body, "rb").read(),
          {"Content-Type": "application/json"})
r = c.getresponse()
data = r.read()
if r.status != 200:
    sys.exit("bench: bms answered %d: %s" % (r.status, data[:200]))
open(out, "wb").write(data)
PYEOF

# nginx on a free loopback port, its workers able to read the file.
NGINX_PORT=$("$PY" -c '
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()')
sed -e "s|@PORT@|$NGINX_PORT|g" -e "s|@DIR@|$WORK/nginx|g" \
    "$ROOT/bench/http_nginx.conf" >"$WORK/nginx/nginx.conf"
chmod 0711 "$WORK" "$WORK/nginx"
chmod 0755 "$WORK/nginx/www"
chmod 0644 "$WORK/nginx/www/infer.json"
"$NGINX" -q -t -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" \
    -e "$WORK/nginx/error.log"
"$NGINX" -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx/" \
    -e "$WORK/nginx/error.log" &
NGINX_PID=$!
"$PY" - "$NGINX_PORT" "$INFER" "$WORK/body.json" \
    "$WORK/nginx/www/infer.json" <<'PYEOF'
import http.client, sys, time
port, path, body, saved = sys.argv[1:5]
want = open(saved, "rb").read()
for attempt in range(100):
    try:
        c = http.client.HTTPConnection("127.0.0.1", int(port), timeout=5)
        c.request("GET", "/infer.json")
        r = c.getresponse()
        got = r.read()
        break
    except OSError:
        time.sleep(0.1)
else:
    sys.exit("bench: nginx does not answer on port %s" % port)
c.request("POST", path, open(body, "rb").read(),
          {"Content-Type": "application/json"})
r2 = c.getresponse()
got2 = r2.read()
if (r.status, got) != (200, want) or (r2.status, got2) != (200, want):
    sys.exit("bench: nginx answered %d/%d, not the saved body"
             % (r.status, r2.status))
PYEOF

# The master and its workers, for the CPU time nginx spends.
NGINX_PIDS="$NGINX_PID $(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
BMS_URL=http://127.0.0.1:$BMS_PORT$INFER
NGINX_GET_URL=http://127.0.0.1:$NGINX_PORT/infer.json
NGINX_POST_URL=http://127.0.0.1:$NGINX_PORT$INFER

# One wrk run: prints "rps p50_ms p99_ms errors cpu_us_per_request
# other_cores".
measure() {
    server=$1
    conns=$2
    secs=$3
    body=$WORK/body.json len=
    case $server in
    bms)
        url=$BMS_URL script=$ROOT/bench/post.lua pids=$BMS_PID ;;
    bms-bin)
        url=$BMS_URL script=$ROOT/bench/post.lua pids=$BMS_PID
        body=$WORK/body.bin len=$BIN_LEN ;;
    nginx)
        url=$NGINX_GET_URL script=$ROOT/bench/get.lua pids=$NGINX_PIDS ;;
    nginx-post)
        url=$NGINX_POST_URL script=$ROOT/bench/post.lua pids=$NGINX_PIDS ;;
    esac
    window_start $pids
    BMS_BENCH_BODY=$body BMS_BENCH_JSON_LENGTH=$len wrk -t"$THREADS" \
        -c"$conns" -d"${secs}s" -s "$script" "$url" >"$WORK/wrk.out"
    window_end
    grep '^BMS_RESULT' "$WORK/wrk.out" |
        awk -v ticks="$w_ticks" -v others="$w_others" -v hz="$HZ" '{
            for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
            printf "%.0f %.3f %.3f %d %.1f %s\n", v["rps"], v["p50_us"] / 1000,
                v["p99_us"] / 1000, v["non2xx"] + v["socket_errors"],
                ticks / hz * 1e6 / (v["requests"] > 0 ? v["requests"] : 1),
                others
        }'
}

echo "bms ($BMS_BIN built $BMS_STAMP)"
echo "bms pid $BMS_PID port $BMS_PORT, nginx $("$NGINX" -v 2>&1 |
    sed 's/.*\///') pid $NGINX_PID port $NGINX_PORT ($(nproc) cores)"
echo "request body $(wc -c <"$WORK/body.json") bytes (binary:" \
    "$(wc -c <"$WORK/body.bin"))," \
    "response $(wc -c <"$WORK/nginx/www/infer.json") bytes;" \
    "wrk -t$THREADS, ${DURATION} s per run"
echo "cpu us/req: CPU time of the server (user + system, all threads or" \
    "processes) per answered request; load: 1-min load average before" \
    "the run; others: cores kept busy meanwhile by processes other than" \
    "the server and the load generator"
echo "warm-up: 3 s each"
measure bms 16 3 >/dev/null
measure bms-bin 16 3 >/dev/null
measure nginx 16 3 >/dev/null
measure nginx-post 16 3 >/dev/null

round=1
while [ "$round" -le "$ROUNDS" ]; do
    echo
    echo "round $round"
    printf '%-11s %5s %9s %8s %8s %6s %10s %5s %6s\n' server conns \
        'req/s' 'p50 ms' 'p99 ms' errors 'cpu us/req' load others
    best_bms=0
    best_bin=0
    best_nginx=0
    best_post=0
    for c in $CONNS; do
        for s in bms bms-bin nginx nginx-post; do
            l=$(load1)
            set -- $(measure "$s" "$c" "$DURATION")
            printf '%-11s %5d %9d %8.3f %8.3f %6d %10.1f %5s %6s\n' \
                "$s" "$c" "$1" "$2" "$3" "$4" "$5" "$l" "$6"
            case $s in
            bms) [ "$1" -gt "$best_bms" ] && best_bms=$1 ;;
            bms-bin) [ "$1" -gt "$best_bin" ] && best_bin=$1 ;;
            nginx) [ "$1" -gt "$best_nginx" ] && best_nginx=$1 ;;
            nginx-post) [ "$1" -gt "$best_post" ] && best_post=$1 ;;
            esac
        done
    done
    echo "peak req/s: bms $best_bms, nginx $best_nginx," \
        "nginx-post $best_post; bms/nginx $(awk -v a="$best_bms" \
        -v b="$best_nginx" 'BEGIN { printf "%.3f", a / b }')," \
        "bms/nginx-post $(awk -v a="$best_bms" -v b="$best_post" \
        'BEGIN { printf "%.3f", a / b }')"
    echo "peak req/s with binary data: bms-bin $best_bin;" \
        "bms-bin/nginx $(awk -v a="$best_bin" -v b="$best_nginx" \
        'BEGIN { printf "%.3f", a / b }')," \
        "bms-bin/nginx-post $(awk -v a="$best_bin" -v b="$best_post" \
        'BEGIN { printf "%.3f", a / b }')"

    # Fixed-rate load: latency from each request's due time; nginx-post
    # at the same rate is the control (what this machine and this client
    # give at that rate).
    echo "fixed rate, a fraction of bms's peak, $PACED_CONNS keep-alive" \
        "connections, ${DURATION} s after 1 s of warm-up (ms; svc: from the" \
        "write)"
    printf '%-10s %4s %6s %8s %6s %6s %6s %6s %7s %7s %6s %5s %6s\n' \
        server 'of' 'req/s' achieved p50 p90 p99 p99.9 max 'svc p99' \
        errors load others
    for f in $PACED_FRACTIONS; do
        for s in bms nginx-post bms-bin; do
            peak=$best_bms body=$WORK/body.json len=0
            case $s in
            bms) port=$BMS_PORT pids=$BMS_PID ;;
            bms-bin)
                port=$BMS_PORT pids=$BMS_PID peak=$best_bin
                body=$WORK/body.bin len=$BIN_LEN ;;
            nginx-post) port=$NGINX_PORT pids=$NGINX_PIDS ;;
            esac
            rate=$(awk -v b="$peak" -v f="$f" 'BEGIN { printf "%d", b * f }')
            l=$(load1)
            window_start $pids
            "$WORK/paced" "$port" "$INFER" "$body" "$rate" \
                "$DURATION" "$PACED_CONNS" 1 "$len" >"$WORK/paced.out"
            window_end
            awk -v l="$l" -v f="$f" -v o="$w_others" -v s="$s" '
            /^BMS_PACED/ {
                for (i = 2; i <= NF; i++) {
                    split($i, kv, "="); v[kv[1]] = kv[2]
                }
                printf "%-10s %4s %6d %8.0f %6.3f %6.3f %6.3f %6.3f " \
                    "%7.3f %7.3f %6d %5s %6s\n", s, f, v["rate"],
                    v["achieved_rps"], v["p50_us"] / 1000, v["p90_us"] / 1000,
                    v["p99_us"] / 1000, v["p999_us"] / 1000,
                    v["max_us"] / 1000, v["service_p99_us"] / 1000,
                    v["errors"] + v["unfinished"], l, o
            }' "$WORK/paced.out"
        done
    done
    round=$((round + 1))
done

if [ "$PROFILE" = 1 ]; then
    echo
    echo "perf profile of bms: wrk -t$THREADS -c$PROFILE_CONNS," \
        "${PROFILE_SECONDS} s sampled at 499 Hz, call graphs" \
        "$PERF_CALL_GRAPH (load $(load1))"
    cs0=$(ctx_switches "$BMS_PID")
    BMS_BENCH_BODY=$WORK/body.json wrk -t"$THREADS" -c"$PROFILE_CONNS" \
        -d"$((PROFILE_SECONDS + 2))s" -s "$ROOT/bench/post.lua" \
        "$BMS_URL" >"$WORK/wrk-perf.out" &
    WRK_PID=$!
    sleep 1
    perf record -q --call-graph "$PERF_CALL_GRAPH" -F 499 -p "$BMS_PID" \
        -o "$WORK/perf.data" -- sleep "$PROFILE_SECONDS" \
        2>"$WORK/perf.err" || {
        echo "perf record failed:" >&2
        cat "$WORK/perf.err" >&2
    }
    wait "$WRK_PID" || true
    WRK_PID=
    cs1=$(ctx_switches "$BMS_PID")
    grep '^BMS_RESULT' "$WORK/wrk-perf.out" | sed 's/^BMS_RESULT/wrk:/'
    awk -v n=$((cs1 - cs0)) '/^BMS_RESULT/ {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
        printf "bms context switches per request (all threads, whole wrk " \
            "run): %.2f\n", n / (v["requests"] > 0 ? v["requests"] : 1)
    }' "$WORK/wrk-perf.out"
    if [ -s "$WORK/perf.data" ]; then
        perf report -i "$WORK/perf.data" --children --sort symbol --stdio \
            -g none 2>/dev/null | grep -v '^#' | grep '%' >"$WORK/children"
        perf report -i "$WORK/perf.data" --no-children --sort dso --stdio \
            -g none 2>/dev/null | grep -v '^#' | grep '%' >"$WORK/dso"
        echo "-- where the time goes (share of bms's samples, callees" \
            "included)"
        awk '
        BEGIN {
            n = split("bms_v2_call_parse|strtod_l_internal|" \
                "bms_sched_infer|await_job|worker_main|run_batch|" \
                "bms_v2_call_respond|queue_reply|writer_main|" \
                "__libc_sendmsg|__libc_recv|epoll_wait|" \
                "finish_task_switch|_int_malloc|_int_free", key, "|")
            split("request JSON parsing (yajl + number conversion)|" \
                "  of it strtod|" \
                "HTTP thread in the scheduler (queue, wait, wake)|" \
                "  of it waiting for the worker|" \
                "engine worker thread (take batch, run, wake)|" \
                "  of it running the batch (engine)|" \
                "response JSON|" \
                "handing the response to libmicrohttpd|" \
                "request records (SQLite writer thread)|" \
                "socket send (kernel TCP)|socket receive (kernel TCP)|" \
                "epoll_wait (libmicrohttpd event loop)|" \
                "context switches (finish_task_switch)|" \
                "malloc (self)|free (self)", label, "|")
        }
        {
            for (i = 1; i <= n; i++) {
                if (!(i in got) && index($4, key[i]) > 0) {
                    got[i] = $1
                }
            }
        }
        END {
            for (i = 1; i <= n; i++) {
                printf "  %-52s %7s\n", label[i], i in got ? got[i] : "-"
            }
        }' "$WORK/children"
        echo "-- self time by library"
        head -n 10 "$WORK/dso"
        echo "-- self time by function (top 25)"
        perf report -i "$WORK/perf.data" --no-children --sort dso,symbol \
            --stdio -g none 2>/dev/null | grep -v '^#' | grep '%' |
            head -n 25 | sed 's/ *- *- *$//'
        if [ -n "${PERF_KEEP:-}" ]; then
            cp "$WORK/perf.data" "$PERF_KEEP"
            echo "perf data kept in $PERF_KEEP"
        fi
    fi
fi

stop_pid "$NGINX_PID" QUIT
NGINX_PID=
kill -TERM "$BMS_PID"
wait "$BMS_PID" && rc=0 || rc=$?
BMS_PID=
echo "servers stopped (bms exit $rc)"
