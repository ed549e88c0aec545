#!/usr/bin/env bash
# End-to-end cases of the diagnosis that re-runs a failed step as training ran it (training mode,
# the training precision, backward, the step's own weights); ctest runs one case per test:
#   diagnosis.sh CASE     (TG_TEST_BIN: path of trainguard; set by ctest)
# Each case trains until a step fails, reads the failing rank's diagnosis (stdout and
# diagnosis.json), then re-runs `trainguard diagnose` on the bundle by hand: the same report,
# within --fault-grace minus 5 s (each case prints the time it took as "diagnosis time").
# shellcheck source=tests/e2e/lib.sh
source "$(dirname "$0")/lib.sh"

GRACE=20  # --fault-grace of every case: the diagnosis gets 15 s

# json_field BUNDLE KEY: the value of KEY in BUNDLE/diagnosis.json.
json_field() {
  python3 -c 'import json, sys; print(json.dumps(json.load(open(sys.argv[1] + "/diagnosis.json"))[sys.argv[2]]))' "$1" "$2"
}

# by_hand NAME BUNDLE: `trainguard diagnose BUNDLE` again; its report must equal the one the
# failing rank's child wrote, and it must end within --fault-grace minus 5 s.
by_hand() {
  local start elapsed
  cp "$2/diagnosis.json" "$WORK/$1.first.json"
  start=$(date +%s.%N)
  timeout 60 "$BIN" diagnose "$2" >"$WORK/$1.hand.out" 2>&1 || { cat "$WORK/$1.hand.out" >&2; fail "$1: diagnose by hand"; }
  elapsed=$(echo "$(date +%s.%N) - $start" | bc)
  cmp -s "$WORK/$1.first.json" "$2/diagnosis.json" || fail "$1: diagnose by hand gave another report"
  echo "diagnosis time ($1): $elapsed s"
  [ "$(echo "$elapsed < $GRACE - 5" | bc)" = 1 ] || fail "$1: the diagnosis took $elapsed s, over --fault-grace minus 5 s"
}

case ${1:?case} in
  exploding_update)
    # The issue's run: an exploding update (--lr 1e5) makes step 2's gradient norm infinite while
    # the loss is finite. Reproduced on the CPU, naming the parameter, its backward function and
    # the weights' growth in step 1's update; no advice to find a GPU.
    run lr 1 train --width 0.25 --epochs 1 --train-samples 3000 --lr 1e5 --threads 1 --bundle-dir "$WORK/faults" \
      --fault-grace $GRACE
    expect_rc lr 10
    expect_text lr err "the gradient norm is not finite while the loss is"
    expect_text lr out ": non_finite_gradient"
    expect_text lr out "reproduced in training mode, fp32 (the failing step's own weights)"
    expect_text lr out "parameter: classifier."
    expect_text lr out "operation: AddmmBackward0"
    expect_text lr out "weights: in the update of step 1, the last good step,"
    expect_text lr out "hint: lower --lr: the update of step 1 grew the weights"
    grep -q "GPU" "$WORK/lr.out" && fail "the diagnosis of a CPU run advises a GPU"
    bundle="$WORK/faults/step2-rank0"
    [ "$(json_field "$bundle" reproduced)" = true ] || fail "diagnosis.json: not reproduced"
    [ "$(json_field "$bundle" fault)" = '"non_finite_gradient"' ] || fail "diagnosis.json: $(json_field "$bundle" fault)"
    by_hand lr "$bundle"
    ;;
  nan_weight)
    # A NaN lands in rank 1's first weight after step 2's update: step 3's loss is not finite on
    # rank 1, whose diagnosis names the weight and the update, before any sample.
    run nanw 2 train --dataset synthetic --synthetic-samples 300 --width 0.25 --threads 1 \
      --inject-fault nan-weight:rank=1:step=2 --bundle-dir "$WORK/faults" --fault-grace $GRACE
    expect_rc nanw 10
    expect_text nanw out ": non_finite_weights"
    expect_text nanw out "parameter: features.0.weight"
    expect_text nanw out "features.0.weight holds 1 NaN and 0 infinite value(s) of 144 before the step ran; the update of step 2 last changed it"
    bundle="$WORK/faults/step3-rank1"
    [ -d "$bundle" ] || fail "the culprit rank 1 wrote no bundle for step 3"
    [ "$(json_field "$bundle" samples)" = "[]" ] || fail "a sample is blamed for NaN weights"
    by_hand nanw "$bundle"
    ;;
  bf16_overflow)
    # A pixel of 3.4e38 in step 2: finite in fp32, infinite in bf16. Under --precision bf16 the
    # step fails and the diagnosis says it fails in bf16 only, at the first convolution, for
    # that sample; the same run in fp32 trains through.
    run bf16 1 train --dataset synthetic --synthetic-samples 300 --width 0.25 --threads 1 --precision bf16 \
      --inject-fault bf16-overflow:rank=0:step=2 --bundle-dir "$WORK/faults" --fault-grace $GRACE
    expect_rc bf16 10
    expect_text bf16 out ": non_finite_activation"
    expect_text bf16 out "reproduced in training mode, bf16 autocast"
    expect_text bf16 out "fails in bf16 only: features.0 (Conv2d)'s input exceeds bf16's range"
    expect_text bf16 out "module: features.0 (Conv2d)"
    bundle="$WORK/faults/step2-rank0"
    [ "$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["samples"]))' "$bundle/diagnosis.json")" = 1 ] ||
      fail "the diagnosis does not name the one sample"
    by_hand bf16 "$bundle"
    run fp32 1 train --dataset synthetic --synthetic-samples 300 --width 0.25 --threads 1 \
      --inject-fault bf16-overflow:rank=0:step=2 --bundle-dir "$WORK/faults32" --epochs 1
    expect_rc fp32 0
    ;;
  *) fail "unknown case $1" ;;
esac
echo "PASS: $1"
