#!/usr/bin/env bash
# Our JPEG loader alone against HW3's Python per-image pipeline, side by side on one core:
# build/bench/loader_bench (libjpeg-turbo with DCT scaling, uint8 crop/resize/flip, normalise into
# the batch) vs bench/python_loader.py (PIL + torchvision transforms + default_collate), both
# with training augmentation, over the same files, read from the page cache (the folder is read
# once before timing). Each side runs twice, alternately; the faster run of each counts.
#
#   bench/compare_loader.sh [FOLDER]      (default: a food-11-like photo folder written by
#                                          bench/make_photo_folder.py into a temporary folder)
# Environment: SIZE (model input, default 128), IMAGES (default 3000).
set -euo pipefail
SIZE="${SIZE:-128}"
IMAGES="${IMAGES:-3000}"
SCRIPT=compare_loader.sh
source "$(dirname "$0")/bench_env.sh"
PY="$VENV/bin/python"
"$PY" -c 'import torchvision, PIL' 2>/dev/null ||
  { echo "$SCRIPT: pip install torchvision==0.26.0 pillow into $VENV" >&2; exit 1; }

FOLDER="${1:-}"
if [[ -z "$FOLDER" ]]; then
  WORK_DIR="$(mktemp -d)"
  trap 'rm -rf "$WORK_DIR"' EXIT
  "$PY" bench/make_photo_folder.py "$WORK_DIR/photos" --count "$IMAGES" >&2
  FOLDER="$WORK_DIR/photos/training"
fi
compgen -G "$FOLDER/*.jpg" >/dev/null ||
  { echo "$SCRIPT: no .jpg files in $FOLDER; pass a food-11-style folder (or nothing, for photos)" >&2; exit 2; }
cat "$FOLDER"/*.jpg >/dev/null

# rate CMD...: the images_per_s_per_core figure CMD prints.
rate() { "$@" | sed -n 's/.*images_per_s_per_core=\([0-9]*\).*/\1/p'; }
best() { if (($1 > $2)); then echo "$1"; else echo "$2"; fi; }
OURS=0 PY_RATE=0
for _ in 1 2; do
  OURS=$(best "$OURS" "$(rate build/bench/loader_bench "$FOLDER" "$SIZE" "$IMAGES")")
  PY_RATE=$(best "$PY_RATE" "$(rate "$PY" bench/python_loader.py "$FOLDER" "$SIZE" "$IMAGES")")
done

echo "date:     $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "machine:  $(uname -m), nproc=$NPROC; folder $FOLDER; $IMAGES images at ${SIZE}x${SIZE}"
printf '%-30s %10s\n' "loader (1 core)" "images/s"
printf '%-30s %10d\n' "ours (loader_bench)" "$OURS"
printf '%-30s %10d\n' "python (PIL + torchvision)" "$PY_RATE"
awk -v a="$OURS" -v b="$PY_RATE" 'BEGIN { printf "ours / python: %.2f\n", a / b }'
