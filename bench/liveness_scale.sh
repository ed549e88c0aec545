#!/usr/bin/env bash
# The liveness hub at 64, 256 and 1,024 ranks (bench/liveness_bench.cc), each with a digest built
# for every beacon (reuse 0) and with the default reuse; prints a Markdown table (bench/RESULTS.md).
#   bench/liveness_scale.sh [BUILD_DIR]      (default build)
set -euo pipefail
bench=${1:-build}/bench/liveness_bench
first=--header
for world in 64 256 1024; do
  for reuse in 0 100; do
    "$bench" $first --world "$world" --procs 4 --measure-s 10 --digest-reuse-ms "$reuse"
    first=
  done
done
