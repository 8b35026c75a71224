-- wrk script for bench/http.sh: POST the body in $BMS_BENCH_BODY as JSON
-- and print one machine-readable result line when the run is done.  With
-- $BMS_BENCH_JSON_LENGTH the body is a binary-data request whose first
-- that many bytes are JSON.

local path = os.getenv("BMS_BENCH_BODY")
local f = assert(io.open(path, "rb"), "cannot read " .. tostring(path))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local json_length = os.getenv("BMS_BENCH_JSON_LENGTH")
if json_length ~= nil and json_length ~= "" then
    wrk.headers["Content-Type"] = "application/octet-stream"
    wrk.headers["Inference-Header-Content-Length"] = json_length
else
    wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
    local seconds = summary.duration / 1e6
    local e = summary.errors
    io.write(string.format(
        "BMS_RESULT rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d " ..
        "requests=%d non2xx=%d socket_errors=%d\n",
        summary.requests / seconds,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, summary.requests,
        e.status, e.connect + e.read + e.write + e.timeout))
end
