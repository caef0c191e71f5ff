#!/usr/bin/env bash
# LumaDB set-up on Debian 12: installs what is missing, builds, then runs a job.
#   tools/setup.sh demo   - release build, generate the demo scene in ./data/demo, query it,
#                           then serve it over HTTP/WebSocket (Ctrl-C stops)
#   tools/setup.sh test   - sanitizer build (ASan+UBSan), run every ctest entry
#   tools/setup.sh bench  - release build with anchor libraries, run the benchmarks
# Idempotent: packages already installed and builds already current are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=$(nproc 2>/dev/null || echo 2)

# Packages every build needs (tests and demo alike).
PKGS=(build-essential cmake pkg-config git liblz4-dev libcmocka-dev
      ocl-icd-opencl-dev opencl-headers pocl-opencl-icd clinfo
      libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libcjson-dev chromium
      python3-glad libglfw3-dev libcglm-dev libegl-dev libgl-dev libgl1-mesa-dri libstb-dev
      xvfb xauth libraft-dev libedit-dev)
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

# The WebGL client's npm packages (three; ws and playwright-core for the server tests),
# from assets/web/package-lock.json. Node comes from Debian when the machine has none.
web_deps() {
    command -v node >/dev/null && command -v npm >/dev/null || need_install nodejs npm
    local web=$ROOT/assets/web
    if [ ! -f "$web/node_modules/.package-lock.json" ] ||
       [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
        echo "setup: installing the web client's npm packages"
        (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
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
    web_deps
    build build/release -DCMAKE_BUILD_TYPE=Release
    dir=${2:-data/demo}
    build/release/lumadb demo "$dir"
    # then serve it: the WebGL client at the printed URL, Ctrl-C to stop
    exec build/release/lumadb serve "$dir" --demo
    ;;
test)
    need_install "${PKGS[@]}"
    web_deps
    build build/asan -DCMAKE_BUILD_TYPE=Debug -DLUMADB_SANITIZE=ON
    cd build/asan
    exec ctest --output-on-failure -j"$JOBS" --timeout 900
    ;;
bench)
    need_install "${PKGS[@]}" "${BENCH_PKGS[@]}"
    web_deps
    build build/bench -DCMAKE_BUILD_TYPE=Release -DLUMADB_BENCH=ON
    # every bench_* program in turn; tables to the terminal and bench/out/
    mkdir -p bench/out
    for b in build/bench/bench_*; do
        [ -x "$b" ] || continue
        echo "== $b"
        "$b" "${@:2}" | tee "bench/out/$(basename "$b").md"
    done
    ;;
*)
    echo "usage: tools/setup.sh demo|test|bench" >&2
    exit 2
    ;;
esac
