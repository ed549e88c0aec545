#!/usr/bin/env bash
# End-to-end wall-clock comparison on a JPEG folder: trainguard (`train --dataset folder`,
# C++ libtorch + MPI) vs. the HW3-style Python pipeline (bench/python_hw3.py: PIL +
# torchvision transforms + DataLoader + DDP over gloo), same model, data, epochs.
# Each run is timed from process start to exit (start-up and data loading included).
#
# Settings come from the environment or from flags (flags win):
#   SOURCE        (--source,        default photos) the folder's images: `photos`, food-11-like
#                 colour photos of about 512x512 (bench/make_photo_folder.py, 11 classes), or
#                 `fashion`, 28x28 grayscale Fashion-MNIST (`trainguard make-folder`, 10 classes)
#   TRAIN_SAMPLES (--train-samples, default 3000)  images written to the training folder
#   EPOCHS        (--epochs,        default 1)     full epochs
#   SIZE          (--size,          default 128)   crop size (multiple of 32; HW3: 128)
#   WIDTH         (--width,         default 0.25)  channel width multiplier
#   BATCH         (--batch,         default 64)    batch size per rank
#   RANKS         (--ranks,         default 2)     number of processes
#   THREADS       (--threads,       default 1)     intra-op threads per rank (also OMP_NUM_THREADS)
#   WORKERS       (--workers,       default 1)     Python DataLoader workers per rank
#   PY_CHANNELS_LAST (--py-channels-last, default 0) 1: the Python peer also trains in
#                 channels-last layout, as trainguard does (HW3's code does not)
#
# Both run unpinned (mpirun --bind-to none; torchrun does not pin).
#
# Usage: bench/compare_folder.sh [--train-samples N] [--epochs N] [--size N] [--width W] ...
set -euo pipefail

SOURCE="${SOURCE:-photos}"
TRAIN_SAMPLES="${TRAIN_SAMPLES:-3000}"
EPOCHS="${EPOCHS:-1}"
SIZE="${SIZE:-128}"
WIDTH="${WIDTH:-0.25}"
BATCH="${BATCH:-64}"
RANKS="${RANKS:-2}"
THREADS="${THREADS:-1}"
WORKERS="${WORKERS:-1}"
PY_CHANNELS_LAST="${PY_CHANNELS_LAST:-0}"
TEST_SAMPLES=10   # make-folder also writes validation/ and test/; keep them tiny

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --source)        SOURCE="$2";        shift 2 ;;
    --train-samples) TRAIN_SAMPLES="$2"; shift 2 ;;
    --epochs)        EPOCHS="$2";        shift 2 ;;
    --size)          SIZE="$2";          shift 2 ;;
    --width)         WIDTH="$2";         shift 2 ;;
    --batch)         BATCH="$2";         shift 2 ;;
    --ranks)         RANKS="$2";         shift 2 ;;
    --threads)       THREADS="$2";       shift 2 ;;
    --workers)       WORKERS="$2";       shift 2 ;;
    --py-channels-last) PY_CHANNELS_LAST=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare_folder.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

SCRIPT=compare_folder.sh
source "$(dirname "$0")/bench_env.sh"
# The interpreter torchrun uses (its shebang), so the check below tests the right environment.
PY_BIN="$(head -n 1 "$(command -v torchrun)" | sed -n 's/^#! *//p' | awk '{print $1}')"
[[ -x "$PY_BIN" ]] || PY_BIN=python3
if ! "$PY_BIN" -c 'import torchvision, PIL' >/dev/null 2>&1; then
  echo "compare_folder.sh: torchvision/pillow not importable by $PY_BIN --" \
       "pip install torchvision==0.26.0 pillow into the venv ($VENV)" >&2
  exit 1
fi

export OMP_NUM_THREADS="$THREADS"

WORK_DIR="$(mktemp -d)"
trap 'rm -rf "$WORK_DIR"' EXIT
DATA="$WORK_DIR/folder"

case "$SOURCE" in
  photos)  MAKE=("$PY_BIN" bench/make_photo_folder.py "$DATA" --count "$TRAIN_SAMPLES"); CLASSES=11 ;;
  fashion) MAKE=("$OURS_BIN" make-folder "$DATA" --train-samples "$TRAIN_SAMPLES" --test-samples "$TEST_SAMPLES")
           CLASSES=10 ;;
  *) echo "compare_folder.sh: --source must be photos or fashion, not '$SOURCE'" >&2; exit 2 ;;
esac
echo ">> [folder] ${MAKE[*]}" >&2
if ! "${MAKE[@]}" >"$WORK_DIR/make-folder.log" 2>&1; then
  echo "compare_folder.sh: writing the folder failed; its output:" >&2
  cat "$WORK_DIR/make-folder.log" >&2
  exit 1
fi
cat "$DATA"/training/*.jpg >/dev/null   # both sides read from the page cache
N_JPG="$(find "$DATA/training" -maxdepth 1 -name '*.jpg' | wc -l)"

# time_run NAME CMD... : run CMD with output in $WORK_DIR/NAME.log and print its
# end-to-end wall-clock seconds (process start to exit).
time_run() {
  local name="$1"; shift
  local log="$WORK_DIR/$name.log"
  echo ">> [$name] $*" >&2
  local t0 t1
  t0="$(date +%s.%N)"
  if ! "$@" >"$log" 2>&1; then
    echo "compare_folder.sh: $name run failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  t1="$(date +%s.%N)"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}

OURS="$(time_run ours \
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$RANKS" -x OMP_NUM_THREADS \
    "$OURS_BIN" train --dataset folder --data-dir "$DATA/training" --num-classes "$CLASSES" \
    --image-size "$SIZE" --width "$WIDTH" --batch-size "$BATCH" --threads "$THREADS" \
    --epochs "$EPOCHS" --no-eval --label-report "" --loader-threads 1)"

PY_EXTRA=()
[[ "$PY_CHANNELS_LAST" = 1 ]] && PY_EXTRA+=(--channels-last)
PY="$(time_run python \
  torchrun --standalone --nproc_per_node "$RANKS" bench/python_hw3.py \
    --data-dir "$DATA/training" --num-classes "$CLASSES" --image-size "$SIZE" --width "$WIDTH" \
    --batch-size "$BATCH" --epochs "$EPOCHS" --workers "$WORKERS" --threads "$THREADS" "${PY_EXTRA[@]}")"

PY_LINE="$(grep -o 'images=[0-9]* train_seconds=[0-9.]*' "$WORK_DIR/python.log" | tail -n 1 || true)"
RATIO="$(awk -v a="$OURS" -v b="$PY" 'BEGIN { if (a > 0) printf "%.2f", b / a; else print "nan" }')"

echo
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(uname -m), nproc=$NPROC"
echo "settings: source=$SOURCE train_samples=$TRAIN_SAMPLES (jpg=$N_JPG) epochs=$EPOCHS size=$SIZE width=$WIDTH" \
     "batch/rank=$BATCH ranks=$RANKS threads/rank=$THREADS python_workers/rank=$WORKERS" \
     "python_channels_last=$PY_CHANNELS_LAST"
[[ -n "$PY_LINE" ]] && echo "python:   $PY_LINE (training loop only, rank 0)"
printf '%-26s %12s\n' "run (end to end)" "seconds"
printf '%-26s %12.3f\n' "ours (trainguard)" "$OURS"
printf '%-26s %12.3f\n' "python (HW3 DataLoader)" "$PY"
printf '%-26s %12s\n' "ratio python/ours" "$RATIO"
echo "ours is ${RATIO} x faster"
