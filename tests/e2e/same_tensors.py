"""same_tensors.py A B: exit 0 when the trainguard checkpoints A and B hold the same tensors, bit for
bit (weights, BatchNorm statistics, optimizer state, position); else exit 1 naming the first that
differs; the time each was written (written_at) is not compared. Checkpoint files are not
byte-comparable: the archive numbers its records in no fixed order. Runs on the Python of the
torch wheel's venv (TG_TORCH_PYTHON)."""
import io
import sys

import torch


def tensors(path):
    data = open(path, "rb").read()
    archive = torch.jit.load(io.BytesIO(data[data.index(b"PK\x03\x04"):]))  # after trainguard's header
    found = dict(archive.named_parameters())
    found.update(archive.named_buffers())
    found.pop("written_at", None)
    return found


def main():
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    if a.keys() != b.keys():
        print(f"different tensors: {sorted(a.keys() ^ b.keys())}")
        return 1
    for name in sorted(a):
        if a[name].dtype != b[name].dtype or not torch.equal(a[name], b[name]):
            print(f"{name} differs")
            return 1
    print(f"{len(a)} tensors identical")
    return 0


if __name__ == "__main__":
    sys.exit(main())
