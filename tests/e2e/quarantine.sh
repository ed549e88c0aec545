#!/usr/bin/env bash
# End-to-end cases of --bad-samples quarantine on a food-11-style JPEG folder whose training set
# holds 3 files with labels out of range, label validation off; ctest runs one case per test:
#   quarantine.sh CASE     (TG_TEST_BIN: trainguard; TG_TORCH_PYTHON: the torch wheel's Python)
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"
PY=${TG_TORCH_PYTHON:?set TG_TORCH_PYTHON to the Python of the torch wheel}

# The folder: 400 training JPEGs (about 40 per class), 3 of them renamed to labels 10, 11 and 12
# of a 10-class model. Prints the 3 renamed paths.
make_bad_folder() {
  "$BIN" make-folder "$WORK/food" --train-samples 400 --test-samples 4 >"$WORK/make.out" 2>&1 || fail "make-folder"
  local label=10 class f
  for class in 3 5 7; do
    f=$(find "$WORK/food/training" -name "${class}_*.jpg" | sort | head -1)
    mv "$f" "$WORK/food/training/${label}_${f##*_}" || fail "cannot plant a bad label on $f"
    echo "$WORK/food/training/${label}_${f##*_}"
    label=$((label + 1))
  done
}

# train_args DIR [MAX_QUARANTINED [LABEL_REPORT]]: sets TRAIN to one run's command line, its
# checkpoint and quarantine file in DIR, --max-quarantined MAX_QUARANTINED (default 5), and label
# validation with its report at LABEL_REPORT when given (none by default).
train_args() {
  local labels=(--no-validate-labels --label-report "")
  [ -z "${3:-}" ] || labels=(--validate-labels --label-report "$3")
  TRAIN=(train --dataset folder --data-dir "$WORK/food/training" --num-classes 10 --image-size 32 --width 0.25 \
    --batch-size 16 --epochs 2 --threads 1 --no-eval "${labels[@]}" \
    --bad-samples quarantine --max-quarantined "${2:-5}" --checkpoint "$1/ckpt" --bundle-dir "$1/faults")
}

# seconds NAME: how long the runs of NAME took, from its .start and .end stamps.
seconds() { echo $(( $(cat "$WORK/$1.end") - $(cat "$WORK/$1.start") )); }
timed_run() { date +%s >"$WORK/$1.start"; run "$@"; date +%s >"$WORK/$1.end"; }

# expect_three_set_aside DIR: the quarantine file of DIR names the 3 planted files, nothing else.
expect_three_set_aside() {
  local f
  [ "$(wc -l <"$1/ckpt.quarantine")" = 3 ] || { cat "$1/ckpt.quarantine" >&2; fail "$1: not 3 samples set aside"; }
  for f in "${planted[@]}"; do
    grep -qF "\"file\":\"$f\"" "$1/ckpt.quarantine" || fail "$1: $f is not in the quarantine file"
  done
}

# expect_same_model DIR_A DIR_B: the final checkpoints of A and B are equal bit for bit.
expect_same_model() {
  "$PY" -W ignore "$(dirname "$0")/same_tensors.py" "$1/ckpt" "$2/ckpt" >"$WORK/compare.out" 2>&1 ||
    { cat "$WORK/compare.out" >&2; fail "the model of $1 differs from the one of $2"; }
}

case ${1:?case} in
  in_process_2ranks | in_process_3ranks)
    # The ranks set the samples aside in the process and go on from the last checkpoint, and end
    # with the model of a run that excluded those samples from the start.
    np=${1: -6:1}
    mapfile -t planted < <(make_bad_folder)
    mkdir -p "$WORK/a" "$WORK/b"
    train_args "$WORK/a"
    timed_run a "$np" "${TRAIN[@]}"
    expect_rc a 0
    expect_three_set_aside "$WORK/a"
    expect_text a out "3 sample(s) set aside in $WORK/a/ckpt.quarantine (--bad-samples quarantine):"
    expect_text a err "step(s) done since that checkpoint are trained again"
    cp "$WORK/a/ckpt.quarantine" "$WORK/b/"
    train_args "$WORK/b"
    timed_run b "$np" "${TRAIN[@]}"
    expect_rc b 0
    expect_text b err "3 sample(s) of $WORK/b/ckpt.quarantine are set aside: not trained on"
    grep -q "set aside after step" "$WORK/b.err" && fail "the run that excluded the samples from the start set some aside"
    expect_same_model "$WORK/a" "$WORK/b"
    # With label validation on, the set-aside samples are not validated (nor counted) again, and
    # the label report lists them.
    mkdir -p "$WORK/c"
    cp "$WORK/a/ckpt.quarantine" "$WORK/c/"
    train_args "$WORK/c" 5 "$WORK/c/labels.json"
    run c "$np" "${TRAIN[@]}"
    expect_rc c 0
    expect_text c out "397 valid"
    expect_text c out "0 >= 10 classes"   # the 3 set-aside labels are not counted again
    for f in "${planted[@]}"; do
      grep -qF "\"file\": \"$f\"" "$WORK/c/labels.json" || fail "the label report does not list $f as set aside"
    done
    echo "time lost to 3 quarantines on $np ranks: $(( $(seconds a) - $(seconds b) )) s ($(seconds a) s with them, $(seconds b) s without)"
    ;;
  over_budget)
    # More bad samples than --max-quarantined allows: the job fails as without quarantine (exit 8),
    # listing the samples set aside and those it could not take.
    mapfile -t planted < <(make_bad_folder)
    mkdir -p "$WORK/a"
    train_args "$WORK/a" 2
    run a 2 "${TRAIN[@]}"
    expect_rc a 8
    expect_text a err "would pass --max-quarantined 2 (2 samples); a dataset this bad needs fixing"
    expect_text a err "Set aside before:"
    expect_text a err "exiting with code 8"
    [ "$(wc -l <"$WORK/a/ckpt.quarantine")" = 2 ] || fail "not 2 samples set aside within the budget"
    ;;
  rerun_me)
    # As after a CUDA device-side assert, where the process cannot go on: each quarantine ends the
    # job with exit 15, and the same command line with --resume auto goes on; after the third it
    # finishes, with the model of a run that excluded the samples from the start.
    mapfile -t planted < <(make_bad_folder)
    mkdir -p "$WORK/a" "$WORK/b"
    train_args "$WORK/a"
    for attempt in 1 2 3 4 5; do
      run "a$attempt" 2 "${TRAIN[@]}" --quarantine-by-restart --resume auto
      [ "$(rc_of "a$attempt")" = 15 ] || break
      expect_text "a$attempt" err "set aside; the device cannot go on in this process: rerun the same command with --resume auto"
      grep -q "exiting with code 15" "$WORK/a$attempt.err" || fail "attempt $attempt: no rank said it exits with 15"
      grep -q "^exit=15 kind=quarantined " "$WORK/a/ckpt.failure" || fail "attempt $attempt: no fingerprint of exit 15"
    done
    [ "$attempt" = 4 ] || fail "$((attempt - 1)) reruns instead of 3 (one per bad sample)"
    expect_rc a4 0
    expect_three_set_aside "$WORK/a"
    cp "$WORK/a/ckpt.quarantine" "$WORK/b/"
    train_args "$WORK/b"
    run b 2 "${TRAIN[@]}"
    expect_rc b 0
    expect_same_model "$WORK/a" "$WORK/b"
    ;;
  slow_diagnosis_default_flags)
    # Default flags: the third bad sample fails step 11 on rank 1, after the step deadline was
    # learned (10 s); its diagnosis takes 15 s more. Rank 0 waits for it in the agreement on the
    # bad samples, whose deadline is never learned: no stall, the three samples are set aside.
    mapfile -t planted < <(make_bad_folder)
    mkdir -p "$WORK/a"
    train_args "$WORK/a"
    run a 2 "${TRAIN[@]}" --inject-fault slow-diagnosis:rank=1:step=11:seconds=15
    expect_rc a 0
    expect_text a err "deadline of training steps: 10 s (learned"
    expect_text a err "injected fault: the diagnosis sleeps"
    expect_text a err "1 sample(s) set aside after step 11 failed"
    expect_three_set_aside "$WORK/a"
    ;;
  *) fail "unknown case $1" ;;
esac
echo PASS
