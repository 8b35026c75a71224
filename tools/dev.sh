#!/bin/sh
# The two set-up commands of bms on a Debian 12 machine:
#
#   tools/dev.sh run    install what is missing, build, serve the bundled
#                       models on http://127.0.0.1:8000 (data in ./data)
#   tools/dev.sh test   install what is missing, build, run every test
#
# Missing Debian packages are installed with apt-get (as root, or through
# sudo when it is there).  Extra arguments after `run` go to `bms serve`.
set -eu

cd "$(dirname "$0")/.."

BUILD_PKGS="gcc make pkg-config libc6-dev protobuf-c-compiler
libprotobuf-c-dev libonnx-dev libmicrohttpd-dev libyajl-dev libsqlite3-dev
libdnnl-dev zlib1g-dev libgnutls28-dev libarchive-dev curl"
TEST_PKGS="libcmocka-dev libonnx-testdata dataset-fashion-mnist python3
python3-numpy sqlite3 openssl"

install_missing() {
    missing=""
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
            grep -q "install ok installed"; then
            missing="$missing $p"
        fi
    done
    [ -z "$missing" ] && return 0
    echo "dev.sh: installing$missing"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "dev.sh: missing packages:$missing; run as root" >&2
            exit 1
        fi
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing
}

jobs=$(nproc 2>/dev/null || echo 2)

case "${1:-}" in
run)
    shift
    # shellcheck disable=SC2086
    install_missing $BUILD_PKGS
    # The server alone: the test programs need the test packages.
    make -j"$jobs" build/bms
    exec build/bms serve "$@"
    ;;
test)
    # shellcheck disable=SC2086
    install_missing $BUILD_PKGS $TEST_PKGS
    # The OpenAPI validator runs on node; a node that came with its own
    # npm (not Debian's) is kept as it is.
    if ! command -v npm >/dev/null 2>&1; then
        install_missing nodejs npm
    fi
    exec make -j"$jobs" test
    ;;
*)
    echo "usage: tools/dev.sh run [serve options] | tools/dev.sh test" >&2
    exit 2
    ;;
esac
