#!/usr/bin/env bash
# The test suite: installs and builds what it needs, then runs every ctest test (unit, multi-rank
# under mpirun with 2 and 3 ranks, end to end). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cd build
exec ctest --output-on-failure --timeout 900 "$@"
