#!/usr/bin/env bash
# The GPU check: run from the repository root on the GPU machine as one command. It installs
# what that machine lacks from the .deb files carried in $GPU_DEBS (default .gpu-debs, made
# here by `../shared/gpu/fetch-debs.sh .gpu-debs dataset-fashion-mnist libjpeg62-turbo-dev
# libjpeg62-turbo`: the tests make JPEG folders from Fashion-MNIST, and the decoder uses the
# libjpeg API beside TurboJPEG) and food-11-like photos from $GPU_PHOTOS (default .gpu-photos,
# made here by `bench/make_photo_folder.py .gpu-photos --count 240`, about 13 MB once its
# validation/ and test/ are deleted; without them the photo cases are skipped), builds against the machine's torch with every core, runs
# `ctest -L gpu` and the benchmarks, and writes a results table and logs.tar.gz into $OUT
# (default gpu-results/). The table is printed last. 224 s on an H200 (bench/RESULTS.md) before
# the fused-block and Adam cases were added, which add a CUDA file to the build and three timed runs.
#   scripts/gpu-check.sh [CASE...]      (default: every case; see the list at the bottom)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-results}
DEBS=${GPU_DEBS:-$ROOT/.gpu-debs}
PHOTOS=${GPU_PHOTOS:-$ROOT/.gpu-photos}/training
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
  ls "$DEBS"/libjpeg62-turbo-dev_*.deb >/dev/null 2>&1 ||
    { say "no libjpeg62-turbo-dev in $DEBS: fetch it (see the top of this script)"; exit 1; }
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
    # Only the H100/H200 generation (9.0) for trainguard's own CUDA kernels: half the nvcc time.
    cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTORCH_CUDA_ARCH_LIST=9.0 \
      -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc \
      -DCMAKE_PREFIX_PATH="$DEPS/usr;$torch_prefix" \
      -DCMAKE_BUILD_RPATH=$DEPS/usr/lib/x86_64-linux-gnu \
      -DCMAKE_EXE_LINKER_FLAGS=-Wl,--disable-new-dtags >"$LOGS/configure.log" 2>&1 ||
      { tail -30 "$LOGS/configure.log"; say "configure failed"; exit 1; }
  fi
  grep -iE "cuda|nccl|trainguard" "$LOGS/configure.log" | head -20 >&2
  ninja -C "$BUILD" >"$LOGS/build.log" 2>&1 || { grep -B2 -A10 "error" "$LOGS/build.log" | head -80; say "build failed"; exit 1; }
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

# photo_folder DIR: 12,000 training files, each carried photo 50 times under new names (the
# label stays the part before the first '_'); every copy costs a full decode, as a new photo would.
photo_folder() {
  [ -d "$PHOTOS" ] || return 1
  [ -d "$1" ] && return 0
  python3 - "$PHOTOS" "$1" <<'PY'
import os, shutil, sys
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst)
for copy in range(50):
    for name in sorted(os.listdir(src)):
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, f"{name[:-4]}_{copy}.jpg"))
PY
}

case_info() {
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$LOGS/info.log" 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "nccl", ".".join(map(str, torch.cuda.nccl.version())))' >>"$LOGS/info.log" 2>&1
  row info "$(tr '\n' ' ' <"$LOGS/info.log")" "-"
  # trainguard's own report (versions it runs with, the GPUs with their bus ids), in the logs.
  "$BUILD/launcher/trainguard" env >"$LOGS/env.log" 2>&1 || true
  row "trainguard env" "$(grep -E '^GPUs|^  cuda:|^  NCCL|^  cuDNN' "$LOGS/env.log" | tr '\n' ' ')" "-"
}

case_ctest() {  # the tests labelled gpu (tests/gpu/cases.sh, tests/multirank)
  local report=$WORK/measured.txt
  run ctest 420 env TG_FASHION_MNIST=$DEPS/usr/share/datasets/fashion-mnist TG_GPU_REPORT="$report" \
    ctest --test-dir "$BUILD" -L gpu --output-on-failure -j 1
  row "ctest -L gpu" "rc=$RC in ${SECS}s; $(grep -E 'tests passed|tests failed' "$LOGS/ctest.log")" "expect all passed"
  grep -E "^ *[0-9]+/[0-9]+ Test" "$LOGS/ctest.log" | while read -r line; do row test "$line" "-"; done
  grep -hE "max \||loss .* at step" "$LOGS/ctest.log" | sort -u | while read -r line; do row measured "$line" "-"; done
  [ -f "$report" ] && while read -r line; do row measured "$line" "-"; done <"$report"
}

case_jpeg() {  # JPEG-fed throughput: 128x128, batch 512, full width, several loader threads
  folder "$WORK/folder" 12000
  run jpeg 240 "${MPIRUN[@]}" -np 1 "$TG" train --dataset folder --data-dir "$WORK/folder/training" --num-classes 11 \
    --device cuda --epochs 2 --batch-size 512 --image-size 128 --no-eval --loader-threads 14 --prefetch 28 --log-every 10
  row jpeg "rc=$RC in ${SECS}s; $(grep -E 'throughput|loader wait' "$LOGS/jpeg.log" | tr '\n' ' ')" "trainguard fp32, JPEG-fed"
}

case_jpeg_bf16() {  # the same, bf16 autocast
  folder "$WORK/folder" 12000
  run jpeg_bf16 240 "${MPIRUN[@]}" -np 1 "$TG" train --dataset folder --data-dir "$WORK/folder/training" \
    --num-classes 11 --device cuda --precision bf16 --epochs 2 --batch-size 512 --image-size 128 --no-eval \
    --loader-threads 14 --prefetch 28 --log-every 10
  row jpeg_bf16 "rc=$RC in ${SECS}s; $(grep -E 'throughput|loader wait' "$LOGS/jpeg_bf16.log" | tr '\n' ' ')" \
    "trainguard bf16, JPEG-fed"
}

# small_photo_folder DIR: the photo folder shrunk by `trainguard shrink-folder` (shorter side 160).
small_photo_folder() {
  photo_folder "$WORK/photos" || return 1
  [ -d "$1" ] || "$TG" shrink-folder "$WORK/photos" "$1" >"$LOGS/shrink-folder.log" 2>&1
}

case_loader() {  # the JPEG loader alone on the photos, as they are and shrunk: one core, 14 threads of 16, the floor
  small_photo_folder "$WORK/photos-160" || { row loader "skipped: no photos in $PHOTOS" "-"; return; }
  row shrink-folder "$(tail -1 "$LOGS/shrink-folder.log")" "12,000 photos, shorter side 160"
  for f in photos photos-160; do
    run "loader_$f" 120 "$BUILD/bench/loader_bench" "$WORK/$f" 128 6000 14 16
    row "loader $f" "rc=$RC in ${SECS}s; $(grep images= "$LOGS/loader_$f.log")" "JPEG loader, 128x128 crops"
  done
}

case_jpeg_photos() {  # JPEG-fed bf16 on the photos, as they are and shrunk: what decoding costs a HW3-like run
  small_photo_folder "$WORK/photos-160" || { row jpeg_photos "skipped: no photos in $PHOTOS" "-"; return; }
  for f in photos photos-160; do
    run "jpeg_$f" 240 "${MPIRUN[@]}" -np 1 "$TG" train --dataset folder --data-dir "$WORK/$f" \
      --num-classes 11 --device cuda --precision bf16 --epochs 2 --batch-size 512 --image-size 128 --no-eval \
      --loader-threads 14 --prefetch 28 --log-every 10
    row "jpeg $f" "rc=$RC in ${SECS}s; $(grep -E 'throughput|loader wait' "$LOGS/jpeg_$f.log" | tr '\n' ' ')" \
      "trainguard bf16, JPEG-fed"
  done
}

case_step() {  # trainguard's step on resident inputs (bench/step_bench.cc), beside the Python peers
  for precision in fp32 bf16; do
    for fused in off on; do  # the modules, then the fused BatchNorm-ReLU-pool kernels
      run "step_${precision}_$fused" 120 "$BUILD/bench/step_bench" --device cuda --precision "$precision" \
        --fused-blocks "$fused"
      row "step $precision fused-blocks=$fused" "rc=$RC in ${SECS}s; $(grep mode= "$LOGS/step_${precision}_$fused.log")" \
        "trainguard, resident inputs"
    done
  done
  run adam 60 "$BUILD/bench/adam_bench" --device cuda
  row adam "rc=$RC in ${SECS}s; $(grep -E 'adam=|speedup' "$LOGS/adam.log" | tr '\n' ' ')" \
    "torch::optim::Adam vs FusedAdam, optimizer step alone"
}

case_gpu_health() {  # NVML's values for the rank's GPU as the run exports them (its textfile)
  rm -rf "$WORK/textfile" && mkdir -p "$WORK/textfile"
  run gpu_health 120 "${MPIRUN[@]}" -np 1 "$TG" train --dataset synthetic --synthetic-samples 20000 \
    --synthetic-classes 11 --device cuda --epochs 2 --no-eval --metrics-textfile "$WORK/textfile" --metrics-job gpu-check
  cp "$WORK"/textfile/*.prom "$LOGS/" 2>/dev/null
  row gpu_health "rc=$RC in ${SECS}s; $(grep -hE '^trainguard_gpu_(utilization|temperature|power|memory_used|ecc|throttled)' \
    "$WORK"/textfile/*.prom 2>/dev/null | grep -v ' 0$' | sed 's/{.*gpu="\([^"]*\)"[^}]*}/{\1}/' | tr '\n' ' ')" \
    "NVML through the run; GPU lines of the log: $(grep -cE 'GPU health|GPU event' "$LOGS/gpu_health.log")"
}

case_pybench() {
  run pybench 300 python3 bench/gpu_step_bench.py
  row pybench "rc=$RC in ${SECS}s; $(grep mode= "$LOGS/pybench.log" | tr '\n' ' ')" "Python peers, resident inputs"
}

install_deps
build
say "built"
cases=("$@")
((${#cases[@]})) || cases=(info gpu_health ctest step pybench jpeg jpeg_bf16 loader jpeg_photos)
for c in "${cases[@]}"; do "case_$c"; done
say "done in $(($(date +%s) - T0)) s"
# The device tool brings back few files: logs and bundles travel as one archive.
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
echo
cat "$TABLE"
