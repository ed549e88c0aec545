#!/usr/bin/env bash
# GPU end-to-end cases of the trainguard executable (label gpu); ctest runs one case per test:
#   cases.sh CASE     (TG_TEST_BIN: path of trainguard, set by ctest)
# Exits 77 (ctest: skipped) with the reason where no CUDA device is visible. Measurements (the
# time from a fault to the last rank's exit, the loader's share) are appended to
# $TG_GPU_REPORT when it is set (scripts/gpu-check.sh collects them into its table).
# TG_FASHION_MNIST: the Fashion-MNIST IDX folder that make-folder reads (default: Debian's).
set -uo pipefail
BIN=${TG_TEST_BIN:?set TG_TEST_BIN to the trainguard executable}
FMNIST=${TG_FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
REPORT=${TG_GPU_REPORT:-/dev/null}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tg_gpu_XXXXXX")
trap 'rm -rf "$WORK"' EXIT
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)

if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "SKIPPED: no CUDA device is visible (nvidia-smi -L fails); these cases run on a GPU machine"
  exit 77
fi

fail() { echo "FAIL: $*" >&2; exit 1; }
report() { echo "$1: $2" >>"$REPORT"; echo "measured: $2"; }

# run NAME NP ARGS... : trainguard train under mpirun (120 s limit); output in $WORK/NAME.log
run() {
  local name=$1 np=$2; shift 2
  local start=$SECONDS
  timeout 120 "${MPIRUN[@]}" -np "$np" "$BIN" train "$@" >"$WORK/$name.log" 2>&1
  echo $? >"$WORK/$name.rc"
  echo $((SECONDS - start)) >"$WORK/$name.secs"
}
show() { cat "$WORK/$1.log" >&2; }
expect_text() { grep -qF -- "$2" "$WORK/$1.log" || { show "$1"; fail "$1: '$2' not in the output"; }; }
expect_exits() {  # expect_exits NAME NP CODE: every rank logs "exiting with code CODE"
  [ "$(grep -c "exiting with code $3" "$WORK/$1.log")" = "$2" ] || { show "$1"; fail "$1: not every one of $2 ranks exited with $3"; }
  grep -q "exiting with code 134\|Aborted\|signal 6" "$WORK/$1.log" && { show "$1"; fail "$1: a rank aborted (134)"; }
  return 0
}
# Seconds from the first line matching $2 to the last "exiting with code" line (log timestamps).
span() {
  local from to
  from=$(grep -m1 -- "$2" "$WORK/$1.log" | sed -n 's/^\[\([0-9:]*\).*/\1/p')
  to=$(grep "exiting with code" "$WORK/$1.log" | sed -n 's/^\[\([0-9:]*\).*/\1/p' | sort | tail -1)
  echo $(( $(date -d "$to" +%s) - $(date -d "$from" +%s) ))
}

# A make-folder JPEG folder whose 100th training file is relabelled $1; prints its new name.
folder_with_label() {
  local dir=$WORK/folder
  "$BIN" make-folder "$dir" --train-samples 6000 --test-samples 64 --data-dir "$FMNIST" >/dev/null || fail "make-folder"
  local victim
  victim=$(ls "$dir/training" | sort | sed -n 100p)
  mv "$dir/training/$victim" "$dir/training/$1_${victim#*_}"
  echo "$dir/training/$1_${victim#*_}"
}

# The seed: one bad label, validation off, on NP ranks; every rank exits 9 within 60 s and the
# culprit's diagnosis names the step, rank, row, sample, file, label and the kernel's assertion.
seed() {
  local name=$1 np=$2 label=$3; shift 3
  local file
  file=$(folder_with_label "$label")
  run "$name" "$np" --dataset folder --data-dir "$WORK/folder/training" --num-classes 11 --no-validate-labels \
    --device cuda --epochs 1 --batch-size 64 --image-size 32 --width 0.25 --no-eval --loader-threads 2 \
    --bundle-dir "$WORK/bundles" "$@"
  [ "$(cat "$WORK/$name.rc")" != 0 ] || { show "$name"; fail "$name: the job succeeded"; }
  [ "$(cat "$WORK/$name.secs")" -le 60 ] || fail "$name: took $(cat "$WORK/$name.secs") s"
  expect_exits "$name" "$np" 9
  local diag
  diag=$(find "$WORK/bundles" -name diagnosis.json | head -1)
  [ -n "$diag" ] || { show "$name"; fail "$name: no diagnosis.json"; }
  python3 - "$diag" "$file" "$label" <<'PY' || { show "$name"; fail "$name: diagnosis.json incomplete"; }
import json, sys
d = json.load(open(sys.argv[1]))
file, label = sys.argv[2], sys.argv[3]
s = d["samples"]
assert d["fault"] == "bad_label", d["fault"]
assert d["global_step"] >= 1 and d["rank"] >= 0, d
assert len(s) == 1 and s[0]["source"] == file and s[0]["raw_label"] == label and s[0]["row"] >= 0 and s[0]["index"] >= 0, s
assert "CUDA_LAUNCH_BLOCKING=1" in d["reproduction"], d["reproduction"]
assert "Loss.cu" in d["device_assert"] and "t >= 0 && t < n_classes" in d["device_assert"], d["device_assert"]
print("diagnosis:", d["global_step"], d["rank"], s[0], d["device_assert"])
PY
  report "$name" "fault to last exit $(span "$name" "repro bundle written") s, $np rank(s), whole run $(cat "$WORK/$name.secs") s"
}

# The seed under --bad-samples quarantine on NP ranks: the device-side assert is localized, the
# sample set aside, every rank exits 15 (the CUDA context cannot go on), and the same command
# line with --resume auto finishes without it.
quarantine() {
  local name=$1 np=$2; shift 2
  local file args
  file=$(folder_with_label 11)
  mkdir -p "$WORK/q"
  args=(--dataset folder --data-dir "$WORK/folder/training" --num-classes 11 --no-validate-labels --device cuda
        --epochs 1 --batch-size 64 --image-size 32 --width 0.25 --no-eval --loader-threads 2 --bundle-dir "$WORK/bundles"
        --bad-samples quarantine --checkpoint "$WORK/q/ckpt" --resume auto "$@")
  run "$name" "$np" "${args[@]}"
  expect_exits "$name" "$np" 15
  grep -qF "\"file\":\"$file\"" "$WORK/q/ckpt.quarantine" || { show "$name"; fail "$name: $file not set aside"; }
  run "$name.rerun" "$np" "${args[@]}"
  [ "$(cat "$WORK/$name.rerun.rc")" = 0 ] || { show "$name.rerun"; fail "$name: the rerun exited $(cat "$WORK/$name.rerun.rc")"; }
  expect_text "$name.rerun" "1 sample(s) set aside in $WORK/q/ckpt.quarantine"
  report "$name" "fault to last exit $(span "$name" "repro bundle written") s, rerun $(cat "$WORK/$name.rerun.secs") s, $np rank(s)"
}

# The diagnosis of a failure where the device survives (no device-side assert): the bundle holds
# the step's own weights, copied off the GPU at the failure, and the re-run on the GPU reproduces
# the step as it ran. diagnosis NAME PYTHON-ASSERTS TRAIN-ARGS...: one rank, exit 10, then the
# asserts run over the diagnosis.json as `d`.
diagnosis() {
  local name=$1 asserts=$2; shift 2
  run "$name" 1 --device cuda --width 0.25 --epochs 1 --no-eval --bundle-dir "$WORK/bundles" "$@"
  [ "$(cat "$WORK/$name.rc")" = 10 ] || { show "$name"; fail "$name: exit $(cat "$WORK/$name.rc"), expected 10"; }
  local diag
  diag=$(find "$WORK/bundles" -name diagnosis.json | head -1)
  [ -n "$diag" ] || { show "$name"; fail "$name: no diagnosis.json"; }
  python3 - "$diag" "$asserts" <<'PY' || { show "$name"; fail "$name: diagnosis.json"; }
import json, sys
d = json.load(open(sys.argv[1]))
assert d["reproduced"] and d["weights_own"], d
assert d["weights_from"] == "the failing step's own weights", d["weights_from"]
assert "re-run on cuda" in d["reproduction"], d["reproduction"]
assert "GPU machine" not in d["hint"], d["hint"]
exec(sys.argv[2])
print("diagnosis:", d["fault"], d["module"], d["parameter"], d["differs"], d["weights_growth"])
PY
  report "$name" "fault to last exit $(span "$name" "repro bundle written") s: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["fault"])' "$diag")"
}

case ${1:?case} in
  diagnosis_exploding_update)
    diagnosis exploding_update 'assert d["fault"] in ("non_finite_gradient", "non_finite_loss", "non_finite_activation"), d["fault"]' \
      --dataset fashion-mnist --data-dir "$FMNIST" --train-samples 3000 --lr 1e5 ;;
  diagnosis_nan_weight)
    diagnosis nan_weight 'assert d["fault"] == "non_finite_weights" and d["parameter"] == "features.0.weight", d' \
      --dataset synthetic --synthetic-samples 300 --inject-fault nan-weight:rank=0:step=2 ;;
  diagnosis_bf16_overflow)
    diagnosis bf16_overflow 'assert d["differs"].startswith("fails in bf16 only: features.0 (Conv2d)"), d["differs"]' \
      --dataset synthetic --synthetic-samples 300 --precision bf16 --inject-fault bf16-overflow:rank=0:step=2 ;;
  seed_nccl) seed seed_nccl 1 11 ;;
  quarantine_nccl) quarantine quarantine_nccl 1 ;;
  quarantine_mpi_2ranks) quarantine quarantine_mpi 2 --data-plane mpi ;;
  seed_mpi_2ranks)
    seed seed_mpi 2 11 --data-plane mpi
    # The rank that did not fail logs one cause: the culprit's.
    culprit=$(python3 -c 'import json,glob,sys; print(json.load(open(glob.glob(sys.argv[1])[0]))["rank"])' \
      "$WORK/bundles/*/diagnosis.json")
    others=$(grep -E "^\[[0-9:]+ rank [0-9]+\] error:" "$WORK/seed_mpi.log" | grep -vc "rank $culprit\]")
    [ "$others" = 1 ] || { show seed_mpi; fail "the other rank logged $others errors, expected 1"; }
    ;;
  negative_label) seed negative_label 1 -1 --ignore-index -100 ;;
  nccl_shared_gpu_refused)
    # 2 ranks, one GPU, NCCL: every rank refuses at start (exit 2), naming the ranks and the GPU.
    run shared 2 --dataset synthetic --synthetic-samples 256 --width 0.25 --device cuda --data-plane nccl
    [ "$(cat "$WORK/shared.rc")" = 2 ] || { show shared; fail "shared: exit $(cat "$WORK/shared.rc"), expected 2"; }
    expect_text shared "ranks 0, 1 share the GPU"
    expect_text shared "NCCL allows one rank per GPU"
    ;;
  nan)
    run nan 1 --dataset synthetic --device cuda --epochs 1 --no-eval --width 0.5 \
      --inject-fault nan:rank=0:step=3 --bundle-dir "$WORK/bundles"
    [ "$(cat "$WORK/nan.rc")" = 10 ] || { show nan; fail "nan: exit $(cat "$WORK/nan.rc"), expected 10"; }
    expect_text nan "the first module whose output is not finite is features.0 (Conv2d)"
    ;;
  out_of_memory)
    # A batch that does not fit on any GPU: 400,000 images of 32x32 per rank (the first
    # convolution's output alone is 105 GB in fp32). Exit 13, not 1; the message names the batch
    # size, the caching allocator's figures and the device's total; no diagnosis child.
    run oom 1 --dataset synthetic --synthetic-samples 400000 --batch-size 400000 --device cuda --epochs 1 \
      --no-eval --max-steps 1 --bundle-dir "$WORK/bundles"
    [ "$(cat "$WORK/oom.rc")" = 13 ] || { show oom; fail "out_of_memory: exit $(cat "$WORK/oom.rc"), expected 13"; }
    expect_exits oom 1 13
    expect_text oom "out of GPU memory in step 1 with --batch-size 400000 per rank of 1x32x32 images"
    expect_text oom "of the device's"
    grep -q "diagnosis" "$WORK/oom.log" && { show oom; fail "out_of_memory: a diagnosis ran"; }
    report out_of_memory "$(grep -o 'out of GPU memory.*' "$WORK/oom.log" | head -1 | cut -c1-300)"
    ;;
  killed_rank)
    run kill 2 --dataset synthetic --synthetic-samples 20000 --device cuda --data-plane mpi --epochs 1 --no-eval \
      --width 0.5 --inject-fault kill:rank=1:step=5
    [ "$(cat "$WORK/kill.secs")" -le 30 ] || fail "killed_rank: took $(cat "$WORK/kill.secs") s"
    expect_text kill "[rank 0] stopped by SIGTERM"
    expect_text kill "exiting with code 6"
    report killed_rank "every rank gone $(cat "$WORK/kill.secs") s after start (kill at step 5)"
    ;;
  stopped_rank)
    # A real SIGSTOP of one rank mid-training: the other rank gives up at --step-timeout.
    timeout 120 "${MPIRUN[@]}" -np 2 "$BIN" train --dataset synthetic --synthetic-samples 60000 --device cuda \
      --data-plane mpi --epochs 1 --no-eval --width 0.5 --log-every 5 --step-timeout 5 --fault-grace 5 \
      >"$WORK/stop.log" 2>&1 &
    job=$!
    for _ in $(seq 600); do grep -q "step 10/" "$WORK/stop.log" && break; sleep 0.1; done
    pid=$(pgrep -n -f "$BIN train") || fail "no rank to stop"
    kill -STOP "$pid"
    stopped=$SECONDS
    wait $job
    rc=$?
    gone=$((SECONDS - stopped))
    [ "$gone" -le 30 ] || { show stop; fail "stopped_rank: ranks gone $gone s after SIGSTOP"; }
    [ "$rc" != 0 ] || { show stop; fail "stopped_rank: the job succeeded"; }
    expect_text stop "did not arrive within --step-timeout 5 s"
    report stopped_rank "every rank gone $gone s after SIGSTOP of one of 2 (--step-timeout 5)"
    ;;
  jpeg_loader)
    folder_with_label 0 >/dev/null  # a valid label: only the folder is wanted
    run jpeg 1 --dataset folder --data-dir "$WORK/folder/training" --num-classes 11 --device cuda --epochs 1 \
      --batch-size 256 --image-size 128 --no-eval --loader-threads 8
    [ "$(cat "$WORK/jpeg.rc")" = 0 ] || { show jpeg; fail "jpeg_loader: exit $(cat "$WORK/jpeg.rc")"; }
    expect_text jpeg "loader wait:"
    report jpeg_loader "$(grep -E 'throughput|loader wait' "$WORK/jpeg.log" | tr '\n' ' ')"
    ;;
  checkpoint_any_device)
    # A checkpoint written on the GPU resumes on the GPU and serves predict on the CPU.
    folder_with_label 0 >/dev/null
    common=(--dataset folder --num-classes 11 --image-size 32 --width 0.25 --batch-size 64 --no-eval
            --checkpoint "$WORK/ckpt")
    run gpu_train 1 "${common[@]}" --data-dir "$WORK/folder/training" --device cuda --epochs 2 --max-steps 20
    [ "$(cat "$WORK/gpu_train.rc")" = 0 ] || { show gpu_train; fail "training on the GPU: exit $(cat "$WORK/gpu_train.rc")"; }
    run gpu_resume 1 "${common[@]}" --data-dir "$WORK/folder/training" --device cuda --epochs 2 --resume
    [ "$(cat "$WORK/gpu_resume.rc")" = 0 ] || { show gpu_resume; fail "resume on the GPU: exit $(cat "$WORK/gpu_resume.rc")"; }
    timeout 120 "$BIN" predict "${common[@]}" --data-dir "$WORK/folder/test" --device cpu \
      --predictions "$WORK/predictions.csv" >"$WORK/predict.log" 2>&1 || { show predict; fail "predict on the CPU"; }
    [ "$(wc -l <"$WORK/predictions.csv")" = 65 ] || { show predict; fail "predict on the CPU: not 64 predictions"; }
    ;;
  *) fail "unknown case $1" ;;
esac
echo "PASS: $1"
