#!/usr/bin/env bash
# The time `trainguard diagnose` takes per case (bench/RESULTS.md, "Diagnosis time per case"):
# each case trains until a step fails and leaves its repro bundle, then the diagnosis of that
# bundle is run 3 times by hand (no time budget: every re-run it would make in the failing rank's
# child, which gets --fault-grace minus 5 s). Prints one line per case: its 3 times and the fault.
#   bench/diagnosis_times.sh BUILD_DIR
set -euo pipefail
BIN=$(realpath "${1:?usage: diagnosis_times.sh BUILD_DIR}/launcher/trainguard")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tg_diag_XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
small=(--dataset synthetic --synthetic-samples 300 --width 0.25 --threads 1 --label-report "")

# bundle NAME TRAIN-ARGS...: trains (a failure is expected) and leaves the bundle in $WORK/NAME.
bundle() {
  local name=$1; shift
  "$BIN" train "$@" --bundle-dir "$WORK/$name" --no-diagnose >"$WORK/$name.log" 2>&1 && {
    echo "$name: the run did not fail" >&2; exit 1; }
  find "$WORK/$name" -mindepth 1 -maxdepth 1 -name "step*-rank*" | head -1
}

# time_case NAME BUNDLE: the three times of `trainguard diagnose BUNDLE`, and the fault it names.
time_case() {
  local times="" start
  for _ in 1 2 3; do
    start=$(date +%s.%N)
    "$BIN" diagnose "$2" >"$WORK/$1.diag" 2>&1
    times+="$(printf '%.2f' "$(echo "$(date +%s.%N) - $start" | bc)") "
  done
  echo "$1: ${times}s; $(head -1 "$WORK/$1.diag" | sed 's/.*: //')"
}

time_case exploding_update "$(bundle lr --width 0.25 --epochs 1 --train-samples 3000 --lr 1e5 --threads 1)"
time_case exploding_update_width1 "$(bundle lr1 --width 1 --epochs 1 --train-samples 3000 --lr 1e5 --threads 2)"
time_case bad_label "$(bundle label "${small[@]}" --synthetic-classes 11 --no-validate-labels --plant-label 37=11)"
time_case nan_input "$(bundle nan "${small[@]}" --inject-fault nan:rank=0:step=2)"
time_case nan_weight "$(bundle nanw "${small[@]}" --inject-fault nan-weight:rank=0:step=2)"
time_case bf16_overflow "$(bundle bf16 "${small[@]}" --precision bf16 --inject-fault bf16-overflow:rank=0:step=2)"
