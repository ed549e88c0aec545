#!/usr/bin/env python3
# Loader-only peer for bench/compare_loader.sh: HW3's per-image pipeline as python_hw3.py runs it
# (PIL open + convert("RGB"), RandomResizedCrop, flip, ToTensor, Normalize) and default_collate
# into batches of 64, on one thread of this process (no DataLoader workers), over the first
# IMAGES files of a folder. Prints a line in build/bench/loader_bench's format.
#   python_loader.py FOLDER [IMAGE_SIZE=128] [IMAGES=5000]
import sys
import time

import torch
from torch.utils.data import default_collate

from python_hw3 import FolderDataset, train_transform  # beside this file


def main():
    if len(sys.argv) < 2:
        raise SystemExit("usage: python_loader.py FOLDER [IMAGE_SIZE] [IMAGES]")
    torch.set_num_threads(1)
    size = int(sys.argv[2]) if len(sys.argv) > 2 else 128
    dataset = FolderDataset(sys.argv[1], train_transform(size))
    n = min(int(sys.argv[3]) if len(sys.argv) > 3 else 5000, len(dataset))
    start = time.perf_counter()
    for begin in range(0, n, 64):
        default_collate([dataset[i][0] for i in range(begin, min(begin + 64, n))])
    seconds = time.perf_counter() - start
    print(f"images={n} image_size={size} seconds={seconds:.3f} images_per_s_per_core={n / seconds:.0f}")


if __name__ == "__main__":
    main()
