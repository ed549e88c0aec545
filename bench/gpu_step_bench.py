#!/usr/bin/env python3
# The Python peers of the GPU step benchmark (scripts/gpu-check.sh): the HW3 classifier
# (bench/hw3_model.py) trained on inputs already resident on the GPU, one process, Adam
# (lr 3e-4, weight decay 1e-5), CrossEntropyLoss(ignore_index=-1), in the modes of --modes:
#   eager-fp32        plain eager, NCHW, fp32
#   eager-bf16        eager, bf16 autocast + channels-last
#   compile-bf16      torch.compile of the same step (Inductor), fused Adam, bf16 + channels-last
# For each mode it prints one line:
#   mode=<mode> batch=<B> steps=<N> img_per_s=<float> first_step_s=<float>
# img_per_s counts the timed steps only (after --warmup steps, synchronised at both ends).
import argparse
import time

import torch
import torch.nn as nn

from hw3_model import HW3Classifier  # beside this file


def run(mode, args):
    torch.manual_seed(0)
    dev = torch.device("cuda")
    bf16 = mode.endswith("bf16")
    model = HW3Classifier(args.width, args.classes, args.image_size, 3).to(dev)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = model.to(memory_format=fmt)
    compiled = mode.startswith("compile")
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-5, fused=compiled)
    loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
    x = torch.randn(args.batch, 3, args.image_size, args.image_size, device=dev).to(memory_format=fmt)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)

    def step(x, y):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x), y)
        loss.backward()
        return loss

    fwd_bwd = torch.compile(step) if compiled else step

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = fwd_bwd(x, y)
        opt.step()
        return loss

    t0 = time.perf_counter()
    train_step()
    torch.cuda.synchronize()
    first = time.perf_counter() - t0
    for _ in range(args.warmup):
        train_step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = train_step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    assert torch.isfinite(loss).item(), f"{mode}: loss is not finite"
    print(f"mode={mode} batch={args.batch} steps={args.steps} img_per_s={args.batch * args.steps / seconds:.0f} "
          f"first_step_s={first:.1f}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--modes", default="eager-fp32,eager-bf16,compile-bf16")
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--classes", type=int, default=11)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    args = p.parse_args()
    torch.backends.cudnn.benchmark = True
    for mode in args.modes.split(","):
        run(mode, args)


if __name__ == "__main__":
    main()
