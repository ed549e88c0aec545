#!/usr/bin/env bash
# The main job: 2 ranks train the HW3 classifier (half width) on Fashion-MNIST from Debian's
# dataset-fashion-mnist for 2 epochs and print the test accuracy. Installs what it needs first.
# Extra arguments go to `trainguard train` (e.g. --epochs 1).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh trainguard
MPIRUN=(mpirun -np 2)
[ "$(id -u)" -eq 0 ] && MPIRUN+=(--allow-run-as-root)
exec "${MPIRUN[@]}" build/launcher/trainguard train --dataset fashion-mnist --width 0.5 --epochs 2 "$@"
