#!/usr/bin/env bash
# Throughput comparison: trainguard (C++ libtorch + MPI) vs. plain PyTorch DDP
# (bench/python_ddp.py over gloo), same model/data/optimiser and step count.
# Prints ours img/s, python img/s and the ratio ours/python.
#
# Settings come from the environment or from flags (flags win):
#   STEPS   (--steps,   default 60)    total optimiser steps, 5 of them warm-up
#   BATCH   (--batch,   default 64)    batch size per rank
#   WIDTH   (--width,   default 0.25)  channel width multiplier
#   RANKS   (--ranks,   default 2)     number of processes
#   THREADS (--threads, default 1)     intra-op threads per rank (also OMP_NUM_THREADS)
#
# Both run unpinned (mpirun --bind-to none; torchrun does not pin), from the same in-memory data.
#
# Usage: bench/compare.sh [--steps N] [--batch N] [--width W] [--ranks N] [--threads N]
set -euo pipefail

STEPS="${STEPS:-60}"
BATCH="${BATCH:-64}"
WIDTH="${WIDTH:-0.25}"
RANKS="${RANKS:-2}"
THREADS="${THREADS:-1}"
WARMUP=5

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --steps)   STEPS="$2";   shift 2 ;;
    --batch)   BATCH="$2";   shift 2 ;;
    --width)   WIDTH="$2";   shift 2 ;;
    --ranks)   RANKS="$2";   shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
done

SCRIPT=compare.sh
source "$(dirname "$0")/bench_env.sh"
export OMP_NUM_THREADS="$THREADS"

LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

# run_and_parse NAME CMD... : run CMD with output in $LOG_DIR/NAME.log and
# print the value of its last `throughput_img_per_s=` line.
run_and_parse() {
  local name="$1"; shift
  local log="$LOG_DIR/$name.log"
  echo ">> [$name] $*" >&2
  if ! "$@" >"$log" 2>&1; then
    echo "compare.sh: $name run failed; its output:" >&2
    cat "$log" >&2
    exit 1
  fi
  local value
  value="$(grep -o 'throughput_img_per_s=[0-9.eE+-]*' "$log" | tail -n 1 | cut -d= -f2)"
  if [[ -z "$value" ]]; then
    echo "compare.sh: no 'throughput_img_per_s=' line in $name output:" >&2
    cat "$log" >&2
    exit 1
  fi
  echo "$value"
}

OURS="$(run_and_parse ours \
  mpirun --allow-run-as-root --oversubscribe --bind-to none -np "$RANKS" -x OMP_NUM_THREADS \
    "$OURS_BIN" train --dataset fashion-mnist --batch-size "$BATCH" --width "$WIDTH" \
    --threads "$THREADS" --max-steps "$STEPS" --warmup-steps "$WARMUP" --no-eval)"

PY="$(run_and_parse python \
  torchrun --standalone --nproc_per_node "$RANKS" bench/python_ddp.py \
    --batch-size "$BATCH" --width "$WIDTH" --threads "$THREADS" \
    --steps "$STEPS" --warmup "$WARMUP")"

RATIO="$(awk -v a="$OURS" -v b="$PY" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "nan" }')"

echo
echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(uname -m), nproc=$NPROC"
echo "settings: steps=$STEPS (warmup $WARMUP) batch/rank=$BATCH width=$WIDTH ranks=$RANKS threads/rank=$THREADS"
printf '%-22s %12s\n' "run" "img/s"
printf '%-22s %12.1f\n' "ours (trainguard)" "$OURS"
printf '%-22s %12.1f\n' "python (torch DDP)" "$PY"
printf '%-22s %12s\n' "ratio ours/python" "$RATIO"
