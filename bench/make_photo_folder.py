#!/usr/bin/env python3
# Benchmark tool only: writes a food-11-style folder of colour photo JPEGs, shaped like HW3's
# data, so that JPEG decoding can be measured (`trainguard make-folder` writes 28x28 grayscale
# Fashion-MNIST JPEGs, too small for that).
#
#   make_photo_folder.py OUT [--count N=3000] [--seed S=0] [--quality Q=90]
#
# Layout, as make-folder's: OUT/training/<class>_<n>.jpg for n < N with class = n % 11,
# OUT/validation/<class>_<n>.jpg for n < N//10, OUT/test/<nnnnn>.jpg (unlabelled) for n < N//10.
# Each image is a random crop (30-100% of the source's area, at the output's aspect ratio) of one
# of a few real colour photographs, resized with LANCZOS to 512x512, 512x384, 384x512 or 512x341,
# maybe flipped, with mild brightness/contrast/saturation jitter, saved as baseline 4:2:0 JPEG.
# The same seed gives byte-identical files.
#
# The photos are scikit-image's sample images, as shipped by Debian's python3-skimage package:
# its data folder is used where the package is installed; otherwise its .deb is fetched with
# `apt-get download` (not installed) and unpacked with `dpkg -x` into
# ${TRAINGUARD_HOME:-~/.cache/trainguard}/photos, once.
#
# Run with the venv of scripts/setup.sh (Pillow only), e.g.
#   ~/.cache/trainguard/venv/bin/python bench/make_photo_folder.py /tmp/photos --count 3000

import argparse
import collections
import glob
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time

from PIL import Image, ImageEnhance, ImageOps

# The real colour photographs among scikit-image's sample data (not the synthetic ones).
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
          "rocket.jpg", "ihc.png", "retina.jpg", "hubble_deep_field.jpg")
SIZES = ((512, 512), (512, 384), (384, 512), (512, 341))  # (width, height), food-11-like
CLASSES = 11
JOBS = 2
SYSTEM_DATA = "/usr/lib/python3/dist-packages/skimage/data"
DATA_IN_DEB = "usr/lib/python3/dist-packages/skimage/data"


class Failure(Exception):
    """A problem the user can fix; main prints it and exits 1."""


def has_photos(folder):
    """True when `folder` holds every file of PHOTOS."""
    return all(os.path.isfile(os.path.join(folder, p)) for p in PHOTOS)


def photo_folder():
    """The folder holding PHOTOS: the installed package's, or an unpacked .deb in the cache
    (downloading and unpacking it first if needed). Raises Failure when it cannot be had."""
    if has_photos(SYSTEM_DATA):
        return SYSTEM_DATA
    cache = os.path.join(os.environ.get("TRAINGUARD_HOME") or os.path.expanduser("~/.cache/trainguard"), "photos")
    data = os.path.join(cache, "deb", DATA_IN_DEB)
    if has_photos(data):
        return data
    os.makedirs(cache, exist_ok=True)
    debs = sorted(glob.glob(os.path.join(cache, "python3-skimage_*.deb")))
    if not debs:
        run(["apt-get", "download", "python3-skimage"], cache,
            f"cannot download python3-skimage (no network, or no apt lists: try `apt-get update`); "
            f"on a machine that can, run `apt-get download python3-skimage` and copy the .deb into {cache}")
        debs = sorted(glob.glob(os.path.join(cache, "python3-skimage_*.deb")))
    unpacked = os.path.join(cache, "deb.tmp")
    shutil.rmtree(unpacked, ignore_errors=True)
    run(["dpkg", "-x", debs[-1], unpacked], cache, f"cannot unpack {debs[-1]}; delete it and run again")
    shutil.rmtree(os.path.join(cache, "deb"), ignore_errors=True)
    os.rename(unpacked, os.path.join(cache, "deb"))  # whole or absent: a crash mid-unpack is retried
    if not has_photos(data):
        raise Failure(f"{debs[-1]} lacks some of {', '.join(PHOTOS)}")
    return data


def run(argv, cwd, advice):
    """Runs `argv` in `cwd`; raises Failure with `advice` and the command's output if it fails."""
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise Failure(f"'{argv[0]}' not found: {advice}") from None
    if done.returncode != 0:
        raise Failure(f"{' '.join(argv)} failed ({(done.stderr or done.stdout).strip()}): {advice}")


def plan(count, seed):
    """(relative path, parameters) of every output image, drawn in a fixed order from
    random.Random(seed), so that the files depend on the seed only, not on the workers."""
    rng = random.Random(seed)
    names = [f"training/{n % CLASSES}_{n}.jpg" for n in range(count)]
    names += [f"validation/{n % CLASSES}_{n}.jpg" for n in range(count // 10)]
    names += [f"test/{n:05d}.jpg" for n in range(count // 10)]
    jobs = []
    for name in names:
        params = dict(photo=rng.choice(PHOTOS), size=rng.choice(SIZES), area=rng.uniform(0.3, 1.0),
                      x=rng.random(), y=rng.random(), flip=rng.random() < 0.5,
                      jitter=[rng.uniform(0.8, 1.2) for _ in range(3)])
        jobs.append((name, params))
    return jobs


_sources = {}  # photo name -> RGB image, per worker process


def load_sources(folder):
    """Worker initialiser: loads PHOTOS from `folder` as RGB images."""
    for p in PHOTOS:
        with Image.open(os.path.join(folder, p)) as im:
            _sources[p] = im.convert("RGB")


def crop_box(src_w, src_h, params):
    """The crop of the source, as a float box: `area` of its area at the output's aspect
    ratio, shrunk to the largest such crop that fits, placed at fractions (x, y) of the slack."""
    w, h = params["size"]
    ratio = w / h
    most = min(src_w, src_h * ratio) * min(src_w / ratio, src_h)
    area = min(params["area"] * src_w * src_h, most)
    cw, ch = math.sqrt(area * ratio), math.sqrt(area / ratio)
    left, top = params["x"] * (src_w - cw), params["y"] * (src_h - ch)
    return (left, top, left + cw, top + ch)


def render(job, out, quality):
    """Writes one image of plan() under `out`; returns (relative path, bytes, (w, h))."""
    name, params = job
    src = _sources[params["photo"]]
    im = src.resize(params["size"], Image.Resampling.LANCZOS, box=crop_box(*src.size, params))
    if params["flip"]:
        im = ImageOps.mirror(im)
    for enhancer, factor in zip((ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color),
                                params["jitter"]):
        im = enhancer(im).enhance(factor)
    path = os.path.join(out, name)
    im.save(path, "JPEG", quality=quality, subsampling="4:2:0", progressive=False, optimize=False)
    return name, os.path.getsize(path), params["size"]


def _render_star(args):
    return render(*args)


def report(results, seconds):
    """Prints the count, total MB, mean KB and size distribution of `results` from render()."""
    sizes = [b for _, b, _ in results]
    print(f"files={len(results)} total_mb={sum(sizes) / 1e6:.1f} mean_kb={sum(sizes) / len(sizes) / 1e3:.1f} "
          f"min_kb={min(sizes) / 1e3:.1f} max_kb={max(sizes) / 1e3:.1f} seconds={seconds:.1f}")
    for (w, h), n in sorted(collections.Counter(s for _, _, s in results).items()):
        print(f"  {w}x{h}: {n}")
    for split, n in sorted(collections.Counter(name.split("/")[0] for name, _, _ in results).items()):
        print(f"  {split}/: {n}")


def parse_args(argv):
    """Parsed arguments; exits 2 with a message on bad ones."""
    parser = argparse.ArgumentParser(description="Write a food-11-style folder of colour photo JPEGs "
                                                 "(benchmark tool).")
    parser.add_argument("out", help="folder to create (must not exist or be empty)")
    parser.add_argument("--count", type=int, default=3000, help="training images (validation, test: count//10)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality, 1..95")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error(f"--count must be at least 1, not {args.count}")
    if not 1 <= args.quality <= 95:
        parser.error(f"--quality must be in 1..95, not {args.quality}")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        parser.error(f"{args.out} exists and is not an empty folder; remove it first")
    return args


def main(argv):
    args = parse_args(argv)
    try:
        folder = photo_folder()
    except Failure as e:
        print(f"make_photo_folder: {e}", file=sys.stderr)
        return 1
    for split in ("training", "validation", "test"):
        os.makedirs(os.path.join(args.out, split), exist_ok=True)
    start = time.monotonic()
    work = [(job, args.out, args.quality) for job in plan(args.count, args.seed)]
    with multiprocessing.Pool(min(JOBS, os.cpu_count() or 1), load_sources, (folder,)) as pool:
        results = pool.map(_render_star, work, chunksize=32)
    print(f"photos: {folder}")
    report(results, time.monotonic() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
