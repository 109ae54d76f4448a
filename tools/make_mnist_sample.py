"""Cut the offline MNIST sample that ``ebm_course`` ships.

Reads the MNIST **training** files (torchvision's raw layout, uncompressed IDX) under
``<root>/MNIST/raw`` and writes the first ``--count`` images and labels to
``ebm_course/assets/mnist_sample.npz`` with ``np.savez_compressed``:

- ``images``: uint8, shape ``[count, 28, 28]``, pixel values 0..255
- ``labels``: uint8, shape ``[count]``, digits 0..9

The test split is never read. The file must stay at most 1 MB (``--max-bytes``); the
script stops with an error if it does not, so that a smaller ``--count`` can be chosen.

Usage::

    PATH_DATASETS=/path/to/data python tools/make_mnist_sample.py
    python tools/make_mnist_sample.py --root /path/to/data --count 2000
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "ebm_course" / "assets" / "mnist_sample.npz"
IMAGES_FILE = "train-images-idx3-ubyte"
LABELS_FILE = "train-labels-idx1-ubyte"


def read_idx(path: Path, magic: int, ndim: int) -> np.ndarray:
    """Read an uncompressed big-endian IDX file of uint8 values."""
    raw = path.read_bytes()
    got_magic = int.from_bytes(raw[:4], "big")
    if got_magic != magic:
        raise ValueError(f"{path}: magic number {got_magic}, expected {magic}")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} values, header says {dims}")
    return data.reshape(dims)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=os.environ.get("PATH_DATASETS"),
        help="folder holding MNIST/raw/ (default: $PATH_DATASETS)",
    )
    parser.add_argument("--count", type=int, default=2000, help="number of images (default 2000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default {DEFAULT_OUT}")
    parser.add_argument(
        "--max-bytes", type=int, default=1_000_000, help="size limit (default 1,000,000)"
    )
    args = parser.parse_args(argv)

    if not args.root:
        parser.error("give --root or set PATH_DATASETS")
    raw = Path(args.root).expanduser() / "MNIST" / "raw"
    images = read_idx(raw / IMAGES_FILE, magic=2051, ndim=3)
    labels = read_idx(raw / LABELS_FILE, magic=2049, ndim=1)
    if len(images) != len(labels):
        parser.error(f"{len(images)} images but {len(labels)} labels in {raw}")
    if not 0 < args.count <= len(images):
        parser.error(f"--count must be in 1..{len(images)}")

    images = np.ascontiguousarray(images[: args.count])
    labels = np.ascontiguousarray(labels[: args.count])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=images, labels=labels)

    size = args.out.stat().st_size
    print(
        f"wrote {args.out}: {len(images)} images {images.shape[1:]}, "
        f"labels {np.bincount(labels, minlength=10).tolist()}, {size:,} bytes"
    )
    if size > args.max_bytes:
        print(f"error: {size:,} bytes > {args.max_bytes:,}; use a smaller --count", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
