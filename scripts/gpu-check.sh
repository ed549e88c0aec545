#!/usr/bin/env bash
# The GPU check: run from the repository root on the GPU machine as one command. It installs
# what that machine lacks from the .deb files carried in $GPU_DEBS (default .gpu-debs, made
# here by ../shared/gpu/fetch-debs.sh .gpu-debs), builds against the machine's torch with every
# core, runs the GPU cases and benchmarks, and writes logs and a results table into $OUT
# (default gpu-results/). The table is printed last. Sized to finish in a few minutes on an H100.
#   scripts/gpu-check.sh [CASE...]      (default: every case; see the list at the bottom)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-results}
DEBS=${GPU_DEBS:-$ROOT/.gpu-debs}
DEPS=/opt/deps
BUILD=$ROOT/build-gpu
LOGS=$OUT/logs
WORK=$(mktemp -d /tmp/tg-gpu.XXXXXX)
TABLE=$OUT/results.md
mkdir -p "$LOGS"
: >"$TABLE"
T0=$(date +%s)

say() { printf '[gpu-check %3ds] %s\n' $(($(date +%s) - T0)) "$*" >&2; }
row() { printf '| %s | %s | %s |\n' "$1" "$2" "$3" >>"$TABLE"; say "$1: $2 ($3)"; }

install_deps() {
  [ -f $DEPS/.unpacked ] && return
  ls "$DEBS"/*.deb >/dev/null 2>&1 || { say "no .deb files in $DEBS"; exit 1; }
  mkdir -p $DEPS
  for d in "$DEBS"/*.deb; do dpkg -x "$d" $DEPS; done
  # Debian's libcurl needs an OpenLDAP the machine lacks: link the machine's own libcurl.
  rm -f $DEPS/usr/lib/x86_64-linux-gnu/libcurl.so.4*
  ln -sf /usr/lib/x86_64-linux-gnu/libcurl.so.4 $DEPS/usr/lib/x86_64-linux-gnu/libcurl.so
  touch $DEPS/.unpacked
}

build() {
  local torch_prefix
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  if [ ! -f "$BUILD/build.ninja" ]; then
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$DEPS/usr;$torch_prefix" \
      -DCMAKE_BUILD_RPATH=$DEPS/usr/lib/x86_64-linux-gnu \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags >"$LOGS/configure.log" 2>&1 ||
      { tail -30 "$LOGS/configure.log"; say "configure failed"; exit 1; }
  fi
  grep -iE "cuda|nccl|trainguard" "$LOGS/configure.log" | head -20 >&2
  ninja -C "$BUILD" "$@" >"$LOGS/build.log" 2>&1 || { grep -B2 -A10 "error" "$LOGS/build.log" | head -80; say "build failed"; exit 1; }
}

TG=$BUILD/launcher/trainguard
MPIRUN=(mpirun --allow-run-as-root --oversubscribe --bind-to none)

# run NAME TIMEOUT CMD...: runs with a timeout, log in $LOGS/NAME.log; sets RC and SECS.
run() {
  local name=$1 limit=$2; shift 2
  local t
  t=$(date +%s%N)
  timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  RC=$?
  SECS=$((($(date +%s%N) - t) / 1000000000))
}

folder() {  # folder DIR TRAIN: a make-folder JPEG folder of TRAIN training images
  [ -d "$1" ] || "$TG" make-folder "$1" --train-samples "$2" --test-samples 256 \
    --data-dir $DEPS/usr/share/datasets/fashion-mnist >"$LOGS/make-folder.log" 2>&1
}

case_info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$LOGS/info.log" 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "nccl", ".".join(map(str, torch.cuda.nccl.version())))' >>"$LOGS/info.log" 2>&1
  row info "$(tr '\n' ' ' <"$LOGS/info.log")" "-"
}

case_nccl1() {  # 1 rank over NCCL, synthetic data, 30 steps
  run nccl1 120 "${MPIRUN[@]}" -np 1 "$TG" train --dataset synthetic --device cuda --epochs 1 --max-steps 30 \
    --no-eval --log-every 5 --width 0.5
  row nccl1 "rc=$RC in ${SECS}s; $(grep -E 'throughput|loss' "$LOGS/nccl1.log" | tail -2 | tr '\n' ' ')" "expect 0"
}

case_shared2() {  # 2 ranks on the one GPU with the default plane: refused at start (exit 2)
  run shared2 120 "${MPIRUN[@]}" -np 2 "$TG" train --dataset synthetic --device cuda --epochs 1 --max-steps 10 --no-eval
  row shared2 "rc=$RC in ${SECS}s; $(grep -iE 'error|exit' "$LOGS/shared2.log" | head -3 | tr '\n' ' ' | cut -c1-300)" "expect 2, naming host and GPU count"
}

seed_case() {  # seed_case NAME LABEL EXTRA...: one file of the folder relabelled LABEL, validation off
  local name=$1 label=$2; shift 2
  local dir=$WORK/$name
  mkdir -p "$dir"
  cp -r "$WORK/folder/training" "$dir/"
  local victim
  victim=$(ls "$dir/training" | sort | sed -n 100p)
  mv "$dir/training/$victim" "$dir/training/${label}_${victim#*_}"
  run "$name" 180 "${MPIRUN[@]}" -np "${RANKS:-1}" "$TG" train --dataset folder --data-dir "$dir/training" --num-classes 11 \
    --no-validate-labels --device cuda --epochs 1 --batch-size 64 --image-size 32 --width 0.25 --no-eval \
    --bundle-dir "$dir/bundles" --loader-threads 2 "$@"
  mkdir -p "$OUT/$name"
  find "$dir/bundles" -name '*.json' -exec cp --parents {} "$OUT/$name" \; 2>/dev/null
  local diag
  diag=$(find "$dir/bundles" -name diagnosis.json | head -1)
  row "$name" "rc=$RC in ${SECS}s; file ${label}_${victim#*_}; $(grep -E 'exiting with code' "$LOGS/$name.log" | tr '\n' ' '); diagnosis: $([ -n "$diag" ] && python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(str(d)[:600])' "$diag" || echo none)" "expect 9 + diagnosis"
}

case_seed11() { seed_case seed11 11; }
case_seedneg() { seed_case seedneg -1 --ignore-index -100; }
case_seed11mpi() { RANKS=2 seed_case seed11mpi 11 --data-plane mpi; }

case_mpi2() {  # 2 ranks sharing the GPU over the MPI plane (CUDA tensors staged through host memory)
  run mpi2 120 "${MPIRUN[@]}" -np 2 "$TG" train --dataset synthetic --device cuda --data-plane mpi --epochs 1 \
    --max-steps 30 --no-eval --log-every 10 --width 0.5
  row mpi2 "rc=$RC in ${SECS}s; $(grep -E 'throughput|loss' "$LOGS/mpi2.log" | tail -2 | tr '\n' ' ')" "expect 0"
}

case_kill2() {  # one of 2 GPU ranks SIGKILLed at step 5: every rank gone within 30 s
  run kill2 90 "${MPIRUN[@]}" -np 2 "$TG" train --dataset synthetic --device cuda --data-plane mpi --epochs 1 \
    --no-eval --width 0.5 --inject-fault kill:rank=1:step=5
  row kill2 "rc=$RC in ${SECS}s; $(grep -E 'exiting with code|SIGTERM' "$LOGS/kill2.log" | tr '\n' ' ' | cut -c1-300)" "all gone < 30 s"
}

case_nan() {
  run nan 120 "${MPIRUN[@]}" -np 1 "$TG" train --dataset synthetic --device cuda --epochs 1 --no-eval --width 0.5 \
    --inject-fault nan:rank=0:step=3 --bundle-dir "$WORK/nan-bundles"
  row nan "rc=$RC in ${SECS}s; $(grep -iE 'module|non-finite' "$LOGS/nan.log" | head -2 | tr '\n' ' ' | cut -c1-300)" "expect 10 + first module"
}

case_jpeg() {  # JPEG-fed throughput: 128x128, batch 512, full width, several loader threads
  run jpeg 240 "${MPIRUN[@]}" -np 1 "$TG" train --dataset folder --data-dir "$WORK/folder/training" --num-classes 11 \
    --device cuda --epochs 2 --batch-size 512 --image-size 128 --no-eval --loader-threads 14 --prefetch 28 --log-every 10
  row jpeg "rc=$RC in ${SECS}s; $(grep -E 'throughput|loader wait' "$LOGS/jpeg.log" | tr '\n' ' ')" "trainguard fp32, JPEG-fed"
}

case_pybench() {
  run pybench 300 python3 bench/gpu_step_bench.py
  row pybench "rc=$RC in ${SECS}s; $(grep mode= "$LOGS/pybench.log" | tr '\n' ' ')" "Python peers, resident inputs"
}

install_deps
build trainguard
say "built"
folder "$WORK/folder" 12000
cases=("$@")
((${#cases[@]})) || cases=(info nccl1 nan seed11 seedneg shared2 mpi2 seed11mpi kill2 jpeg pybench)
for c in "${cases[@]}"; do "case_$c"; done
say "done in $(($(date +%s) - T0)) s"
# The device tool brings back few files: logs and bundles travel as one archive.
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs $(cd "$OUT" && ls -d seed* 2>/dev/null) && rm -rf "$LOGS" "$OUT"/seed*
echo
cat "$TABLE"
