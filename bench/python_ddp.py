#!/usr/bin/env python3
# Python/PyTorch reference peer for the trainguard throughput benchmark.
#
# Trains exactly the same model, data pipeline, loss and optimiser as the C++
# trainer (trainguard, libtorch + MPI) but with plain PyTorch
# DistributedDataParallel over gloo, so bench/compare.sh can report the ratio
# "ours / python" in images per second. Launch with:
#
#   torchrun --standalone --nproc_per_node N bench/python_ddp.py [options]
#
# Rank 0 prints informative lines and, last, exactly one line
#   throughput_img_per_s=<float>
# which is GLOBAL images/s = batch * world * timed_steps / seconds, where the
# first --warmup steps are excluded from timing.

import argparse
import gzip
import math
import os
import struct
import time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data.distributed import DistributedSampler

from hw3_model import HW3Classifier  # beside this file

# Fashion-MNIST normalisation constants (must match the C++ trainer).
MEAN = 0.2860
STD = 0.3530
PAD = 2            # 28x28 -> 32x32, zero padding applied after normalisation
IMAGE_SIZE = 32
NUM_CLASSES = 10


def parse_args():
    p = argparse.ArgumentParser(description="PyTorch DDP peer of the trainguard benchmark")
    p.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--train-samples", type=int, default=0, help="limit the train set (0 = all)")
    p.add_argument("--batch-size", type=int, default=64, help="batch size PER RANK")
    p.add_argument("--width", type=float, default=1.0, help="channel width multiplier")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    p.add_argument("--steps", type=int, default=60, help="total optimiser steps (crosses epochs)")
    p.add_argument("--epochs", type=int, default=0,
                   help="if > 0, overrides --steps with this many full epochs")
    p.add_argument("--warmup", type=int, default=5, help="steps excluded from timing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--verbose", action="store_true", help="print mean loss every 20 steps")
    return p.parse_args()


# ---------------------------------------------------------------------------
# Data: gzip IDX files parsed with the stdlib + torch.frombuffer (no numpy).
# ---------------------------------------------------------------------------

def read_idx(path):
    """Read a gzip'ed IDX file into a uint8 tensor of its declared shape."""
    with gzip.open(path, "rb") as f:
        data = bytearray(f.read())  # bytearray: writable buffer, no frombuffer warning
    zero, dtype_code, ndim = struct.unpack(">HBB", bytes(data[:4]))
    if zero != 0 or dtype_code != 0x08:  # 0x08 = unsigned byte
        raise ValueError(f"{path}: unsupported IDX header (dtype 0x{dtype_code:02x})")
    dims = struct.unpack(">" + "I" * ndim, bytes(data[4:4 + 4 * ndim]))
    offset = 4 + 4 * ndim
    count = math.prod(dims)
    if len(data) - offset != count:
        raise ValueError(f"{path}: expected {count} bytes of data, got {len(data) - offset}")
    return torch.frombuffer(data, dtype=torch.uint8, count=count, offset=offset).reshape(dims)


def load_fashion_mnist_train(data_dir, limit):
    """Return (images [N,1,32,32] float32, labels [N] int64), fully in memory."""
    images = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, "train-labels-idx1-ubyte.gz"))
    if limit > 0:
        images, labels = images[:limit], labels[:limit]
    x = images.to(torch.float32).div_(255.0)          # [N,28,28] in [0,1]
    x = x.sub_(MEAN).div_(STD)                         # normalise first ...
    x = F.pad(x, (PAD, PAD, PAD, PAD), value=0.0)      # ... then zero-pad to 32x32
    x = x.unsqueeze(1).contiguous()                    # [N,1,32,32]
    y = labels.to(torch.int64).contiguous()
    return x, y


# ---------------------------------------------------------------------------
# Batches: DistributedSampler indices, sliced directly from the in-memory tensor.
# ---------------------------------------------------------------------------

def batches(x, y, sampler, batch_size):
    """Yield (images, labels) forever, calling set_epoch at each epoch start."""
    epoch = 0
    while True:
        sampler.set_epoch(epoch)
        idx = torch.tensor(list(iter(sampler)), dtype=torch.int64)
        for start in range(0, len(idx), batch_size):   # last partial batch kept
            b = idx[start:start + batch_size]
            yield x.index_select(0, b), y.index_select(0, b)
        epoch += 1


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)

    dist.init_process_group(backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    is_main = rank == 0

    x, y = load_fashion_mnist_train(args.data_dir, args.train_samples)
    sampler = DistributedSampler(range(len(x)), num_replicas=world, rank=rank,
                                 shuffle=True, seed=args.seed, drop_last=False)
    steps_per_epoch = math.ceil(len(sampler) / args.batch_size)
    total_steps = args.epochs * steps_per_epoch if args.epochs > 0 else args.steps
    warmup = min(args.warmup, total_steps - 1)
    if total_steps - warmup <= 0:
        raise SystemExit("need at least one timed step (steps > warmup)")

    torch.manual_seed(args.seed)                       # identical init; DDP broadcasts anyway
    model = HW3Classifier(args.width, NUM_CLASSES, IMAGE_SIZE, in_channels=1)
    ddp_model = DDP(model)
    criterion = nn.CrossEntropyLoss(ignore_index=-1)
    optimizer = torch.optim.Adam(ddp_model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)
    ddp_model.train()

    if is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"torch={torch.__version__} backend=gloo world={world} threads/rank={args.threads}")
        print(f"samples={len(x)} per_rank={len(sampler)} batch/rank={args.batch_size} "
              f"steps/epoch={steps_per_epoch}")
        print(f"width={args.width} channels={model.channels} params={n_params}")
        print(f"steps={total_steps} warmup={warmup} timed={total_steps - warmup}")

    data = batches(x, y, sampler, args.batch_size)
    loss_sum, loss_n = 0.0, 0
    t0 = None
    for step in range(total_steps):
        if step == warmup:
            dist.barrier()                             # start timing with all ranks aligned
            t0 = time.perf_counter()

        images, labels = next(data)
        optimizer.zero_grad(set_to_none=True)
        loss = criterion(ddp_model(images), labels)
        loss.backward()                                # DDP all-reduces gradients here
        optimizer.step()

        if args.verbose:
            loss_sum += loss.item()
            loss_n += 1
            if (step + 1) % 20 == 0 or step + 1 == total_steps:
                t = torch.tensor([loss_sum / loss_n], dtype=torch.float64)
                dist.all_reduce(t)                     # mean over ranks
                if is_main:
                    print(f"step {step + 1}/{total_steps} mean_loss={t.item() / world:.4f}",
                          flush=True)
                loss_sum, loss_n = 0.0, 0

    dist.barrier()                                     # all ranks finished the timed steps
    seconds = time.perf_counter() - t0
    timed = total_steps - warmup
    if is_main:
        imgs = args.batch_size * world * timed
        print(f"timed_steps={timed} seconds={seconds:.3f} step_ms={1000 * seconds / timed:.2f}")
        print(f"throughput_img_per_s={imgs / seconds:.3f}", flush=True)

    dist.destroy_process_group()


if __name__ == "__main__":
    main()
