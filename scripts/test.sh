#!/usr/bin/env bash
# The test suite: installs what the tests need (scripts/setup.sh --with-tests: the build's needs and
# the tests' peers) and builds everything, then runs every ctest test (unit, multi-rank
# under mpirun with 2 and 3 ranks, end to end). Extra arguments go to ctest (e.g. -L unit).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --with-tests
cd build
exec ctest --output-on-failure --timeout 900 "$@"
