# Shared set-up of the benchmark scripts, sourced by compare.sh and compare_folder.sh with
# SCRIPT set to the caller's name: runs from the repository root, checks that trainguard is
# built, puts the venv of scripts/setup.sh first on PATH (for torchrun), checks mpirun and
# torchrun, and records NPROC before OMP_NUM_THREADS (which GNU nproc honours) is set.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

OURS_BIN=build/launcher/trainguard
if [[ ! -x "$OURS_BIN" ]]; then
  echo "$SCRIPT: $OURS_BIN not found or not executable -- run scripts/setup.sh first" >&2
  exit 1
fi
VENV="${TRAINGUARD_HOME:-$HOME/.cache/trainguard}/venv"
[[ -x "$VENV/bin/torchrun" ]] && PATH="$VENV/bin:$PATH"
for tool in mpirun torchrun; do
  command -v "$tool" >/dev/null || { echo "$SCRIPT: '$tool' not found in PATH" >&2; exit 1; }
done
NPROC="$(nproc)"
