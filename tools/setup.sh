#!/usr/bin/env bash
# LumaDB set-up on Debian 12: installs what is missing, builds, then runs a job.
#   tools/setup.sh demo   - release build, generate the demo scene in ./data/demo, query it
#   tools/setup.sh test   - sanitizer build (ASan+UBSan), run every ctest entry
#   tools/setup.sh bench  - release build with anchor libraries, run the benchmarks
# Idempotent: packages already installed and builds already current are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc 2>/dev/null || echo 2)

# Packages every build needs (tests and demo alike).
PKGS=(build-essential cmake pkg-config git liblz4-dev libcmocka-dev libedit-dev)
# Packages only benchmarks need: the anchor libraries users would pick instead.
BENCH_PKGS=(g++ libnanoflann-dev libopenvdb-dev libtbb-dev libboost-iostreams-dev libsqlite3-dev)

need_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if ((${#missing[@]})); then
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo=sudo
        echo "setup: installing ${missing[*]}"
        # Another process may hold the apt lock for a while: wait for it.
        $sudo apt-get -o DPkg::Lock::Timeout=600 update -q
        DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 \
            install -y -q "${missing[@]}"
    fi
}

build() { # build DIR cmake-args...
    local dir=$1; shift
    cmake -S "$ROOT" -B "$dir" "$@" >/dev/null
    cmake --build "$dir" -j"$JOBS"
}

job=${1:-}
case "$job" in
demo)
    need_install "${PKGS[@]}"
    build build/release -DCMAKE_BUILD_TYPE=Release
    exec build/release/lumadb demo "${2:-data/demo}"
    ;;
test)
    need_install "${PKGS[@]}"
    build build/asan -DCMAKE_BUILD_TYPE=Debug -DLUMADB_SANITIZE=ON
    cd build/asan
    exec ctest --output-on-failure -j"$JOBS" --timeout 900
    ;;
bench)
    need_install "${PKGS[@]}" "${BENCH_PKGS[@]}"
    build build/bench -DCMAKE_BUILD_TYPE=Release -DLUMADB_BENCH=ON
    exec build/bench/lumadb_bench "${@:2}"
    ;;
*)
    echo "usage: tools/setup.sh demo|test|bench" >&2
    exit 2
    ;;
esac
