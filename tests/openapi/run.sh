#!/bin/sh
# The OpenAPI document's checks: docs/openapi.json is a valid OpenAPI 3.0
# document (swagger-parser), its paths are exactly the routes bms parses
# with the methods the server allows, a bms started here serves it and
# web/docs.html byte for byte, and the page renders every operation.
#
#     tests/openapi/run.sh            (BMS_BIN: the binary, build/bms)
#
# Needs node and npm (Debian: nodejs npm); the first run installs the
# validator from package-lock.json into tests/openapi/node_modules.
# Prints "openapi: N passed, N failed" and exits non-zero on a failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bms=${BMS_BIN:-$root/build/bms}
doc=$root/docs/openapi.json
page=$root/web/docs.html
work=$(mktemp -d "${TMPDIR:-/tmp}/bms-openapi.XXXXXX")
pid=
n_pass=0
n_fail=0

cleanup() {
    if [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Count the ok/FAIL lines of one checker's output (in $work/out).
tally() {
    cat "$work/out"
    n_pass=$((n_pass + $(grep -c '^ok - ' "$work/out")))
    n_fail=$((n_fail + $(grep -c '^FAIL - ' "$work/out")))
}

fail() {
    echo "FAIL - $1"
    n_fail=$((n_fail + 1))
}

finish() {
    echo "openapi: $n_pass passed, $n_fail failed"
    [ "$n_fail" -eq 0 ]
    exit $?
}

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    fail "node and npm are installed (Debian: apt-get install nodejs npm)"
    finish
fi
# npm trusts the machine's certificate store (Debian's, with whatever
# authorities the machine adds), not only the list built into node.
if [ -z "${NODE_EXTRA_CA_CERTS:-}" ] &&
   [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    export NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
fi
if [ ! -d "$here/node_modules/@apidevtools/swagger-parser" ]; then
    (cd "$here" && npm ci --ignore-scripts --no-audit --no-fund \
        >"$work/npm.log" 2>&1) ||
        { cat "$work/npm.log"; fail "npm ci in tests/openapi"; finish; }
fi

if node "$here/validate.js" "$doc"; then
    echo "ok - docs/openapi.json is a valid OpenAPI 3.0 document"
    n_pass=$((n_pass + 1))
else
    fail "docs/openapi.json is a valid OpenAPI 3.0 document"
fi

node "$here/render.js" "$page" "$doc" >"$work/out" 2>&1
tally

# A bms of its own, on a free port of 127.0.0.1, with a fresh data folder.
"$bms" serve --model-repository "$root/models" --http-port 0 \
    --data-dir "$work/data" 2>"$work/serve.log" &
pid=$!
port=
for _ in $(seq 1 300); do
    port=$(sed -n 's/.*msg="listening".* port=\([0-9]*\).*/\1/p' \
           "$work/serve.log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    cat "$work/serve.log"
    fail "bms serve started"
    finish
fi

node "$here/check.js" "$doc" "http://127.0.0.1:$port" fashion_mlp \
    >"$work/out" 2>&1
tally
finish
