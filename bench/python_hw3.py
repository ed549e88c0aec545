#!/usr/bin/env python3
# HW3-style Python peer for bench/compare_folder.sh: trains the HW3 classifier on a food-11-style JPEG folder with PIL + torchvision transforms, a DataLoader and DDP over gloo.
#
# The pipeline mirrors what `trainguard train --dataset folder` does:
#   - one sample per OUT/training/<label>_<n>.jpg, label = integer before the first "_"
#   - PIL Image.open(...).convert("RGB") (grayscale becomes 3 channels)
#   - RandomResizedCrop(SIZE, scale=(0.08, 1.0), ratio=(3/4, 4/3)), bilinear, antialiased
#   - RandomHorizontalFlip(0.5), ToTensor, Normalize(ImageNet mean/std)
#   - DataLoader with --workers worker processes per rank over a
#     DistributedSampler(shuffle=True, seed=0), --batch-size images per rank
#   - HW3 classifier (width multiplier --width), CrossEntropyLoss(ignore_index=-1),
#     Adam(lr=3e-4, weight_decay=1e-5), DistributedDataParallel over gloo
#
# Launch with:
#   torchrun --standalone --nproc_per_node 2 bench/python_hw3.py \
#       --data-dir OUT/training --image-size 64 --width 0.25 --batch-size 64 --epochs 1 --workers 1
#
# Rank 0 prints, last, the line
#   images=<N> train_seconds=<float> throughput_img_per_s=<float>
# where images is the global number of images processed over all ranks and
# train_seconds is the time of the training loop (all epochs, data loading included,
# not counting process start-up, imports and model construction).

import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler

from hw3_model import HW3Classifier  # beside this file

try:
    from PIL import Image
    import torchvision.transforms as transforms
except ImportError as e:  # pragma: no cover - environment check
    raise SystemExit(f"python_hw3.py: {e}; pip install torchvision==0.26.0 pillow into the venv")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def parse_args():
    p = argparse.ArgumentParser(description="HW3-style PyTorch DDP peer on a JPEG folder")
    p.add_argument("--data-dir", required=True, help="folder of <label>_<n>.jpg files")
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--image-size", type=int, default=64, help="crop size (multiple of 32)")
    p.add_argument("--width", type=float, default=0.25, help="channel width multiplier")
    p.add_argument("--batch-size", type=int, default=64, help="batch size PER RANK")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="DataLoader worker processes per rank")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads per rank")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=1e-5)
    p.add_argument("--verbose", action="store_true", help="print mean loss at each epoch end")
    p.add_argument("--channels-last", action="store_true",
                   help="model and inputs in channels-last memory format (not what HW3 does; "
                        "trainguard does it), to show how much of the gap is layout")
    return p.parse_args()


# ---------------------------------------------------------------------------
# Data: the HW3 FoodDataset pattern (file list + PIL + torchvision transforms).
# ---------------------------------------------------------------------------

def label_of(name):
    """Integer before the first '_' of the file name; -1 (ignored) when there is none."""
    head = name.split("_", 1)[0]
    try:
        return int(head) if "_" in name else -1
    except ValueError:
        return -1


class FolderDataset(Dataset):
    def __init__(self, path, tfm):
        super().__init__()
        self.files = sorted(os.path.join(path, x) for x in os.listdir(path) if x.endswith(".jpg"))
        if not self.files:
            raise SystemExit(f"python_hw3.py: no .jpg files in {path}")
        self.labels = [label_of(os.path.basename(f)) for f in self.files]
        self.transform = tfm

    def __len__(self):
        return len(self.files)

    def __getitem__(self, idx):
        im = Image.open(self.files[idx]).convert("RGB")
        return self.transform(im), self.labels[idx]


def train_transform(size):
    return transforms.Compose([
        transforms.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0),
                                     interpolation=transforms.InterpolationMode.BILINEAR,
                                     antialias=True),
        transforms.RandomHorizontalFlip(0.5),
        transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])


def worker_init(_worker_id):
    torch.set_num_threads(1)


def main():
    args = parse_args()
    if args.image_size % 32 != 0 or args.image_size <= 0:
        raise SystemExit("python_hw3.py: --image-size must be a positive multiple of 32")
    torch.set_num_threads(args.threads)

    dist.init_process_group(backend="gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    is_main = rank == 0

    dataset = FolderDataset(args.data_dir, train_transform(args.image_size))
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank,
                                 shuffle=True, seed=args.seed, drop_last=False)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler,
                        num_workers=args.workers, pin_memory=False, drop_last=False,
                        worker_init_fn=worker_init if args.workers > 0 else None,
                        persistent_workers=args.workers > 0)

    torch.manual_seed(args.seed)                       # identical init; DDP broadcasts anyway
    model = HW3Classifier(args.width, args.num_classes, args.image_size, in_channels=3)
    layout = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=layout)
    ddp_model = DDP(model)
    criterion = nn.CrossEntropyLoss(ignore_index=-1)
    optimizer = torch.optim.Adam(ddp_model.parameters(), lr=args.lr,
                                 weight_decay=args.weight_decay)

    if is_main:
        n_params = sum(p.numel() for p in model.parameters())
        print(f"torch={torch.__version__} backend=gloo world={world} threads/rank={args.threads} "
              f"workers/rank={args.workers} channels_last={args.channels_last}")
        print(f"samples={len(dataset)} per_rank={len(sampler)} batch/rank={args.batch_size} "
              f"steps/epoch={len(loader)} image_size={args.image_size}")
        print(f"width={args.width} channels={model.channels} params={n_params}", flush=True)

    dist.barrier()
    t0 = time.perf_counter()
    images_local = 0
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        ddp_model.train()
        loss_sum, loss_n = 0.0, 0
        for imgs, labels in loader:
            optimizer.zero_grad(set_to_none=True)
            loss = criterion(ddp_model(imgs.contiguous(memory_format=layout)), labels)
            loss.backward()                            # DDP all-reduces gradients here
            optimizer.step()
            images_local += imgs.shape[0]
            if args.verbose:
                loss_sum += loss.item()
                loss_n += 1
        if args.verbose:
            t = torch.tensor([loss_sum / max(loss_n, 1)], dtype=torch.float64)
            dist.all_reduce(t)
            if is_main:
                print(f"epoch {epoch + 1}/{args.epochs} mean_loss={t.item() / world:.4f}",
                      flush=True)
    dist.barrier()
    seconds = time.perf_counter() - t0

    total = torch.tensor([images_local], dtype=torch.int64)
    dist.all_reduce(total)
    if is_main:
        n = int(total.item())
        print(f"images={n} train_seconds={seconds:.3f} "
              f"throughput_img_per_s={n / seconds:.3f}", flush=True)

    dist.destroy_process_group()


if __name__ == "__main__":
    main()
