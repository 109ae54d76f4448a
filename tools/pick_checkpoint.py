"""Compare training checkpoints on training data only, and pick the one to ship.

    python tools/pick_checkpoint.py CKPT [CKPT ...] [--json out.json]
        [--recipe-seconds S [S ...]]

For each checkpoint, on data the test metrics never use:

- samples: 1,000 images from uniform noise (256 Langevin steps, the tutorial's generation
  setting, seed 1), judged by the package's classifier against the last 2,000 MNIST *training*
  images: Frechet classifier distance (lower is better), class entropy, ones per 1,000;
- detection: AUROC of those training images against the first 2,000 FashionMNIST *training*
  images, and against noisy copies of themselves (Gaussian, sigma 0.3); the share of noisy
  copies that score below their own clean image.

The selection rule (issue 15's priorities, fixed before any test evaluation): among the
checkpoints with class entropy >= 2.25, at least 70 ones per 1,000 samples and a FashionMNIST
AUROC >= 0.99, the one with the lowest distance; if none qualifies, the lowest distance among
those with the highest number of the three conditions met.

Time to quality (issue 15's second look, fixed before its candidates were measured): given
``--recipe-seconds`` (the wall-clock of each checkpoint's whole recipe, in the order of the
checkpoints), the qualifying checkpoints whose distance is within 10 % of the lowest count as
equal in sample quality (two seeds of 1,000 samples differ by about that much), and the one
with the shortest recipe among them is picked.
"""

from __future__ import annotations

import argparse
import json

import torch

from ebm_course import metrics
from ebm_course.classifier import load_classifier
from ebm_course.data import load_fashion_mnist, load_mnist, to_tensors
from ebm_course.models import load_energy

RULE = {"class_entropy": 2.25, "ones": 70, "auroc_fashion_train": 0.99}
SAME_QUALITY = 1.10  # distances within 10 % of the lowest count as equal when times are given


def measure(path: str, reference: torch.Tensor, fashion: torch.Tensor, classifier) -> dict:
    model = load_energy(path).eval()
    quality = metrics.sample_quality(
        model, classifier, reference, n=1000, generator=torch.Generator().manual_seed(1)
    )
    noisy = metrics.add_gaussian_noise(reference, 0.3, torch.Generator().manual_seed(1))
    clean_scores, noisy_scores = metrics.scores(model, reference), metrics.scores(model, noisy)
    return {
        "checkpoint": path,
        "distance": quality["frechet_classifier_distance"],
        "class_entropy": quality["class_entropy"],
        "ones": quality["class_histogram"][1],
        "histogram": quality["class_histogram"],
        "auroc_fashion_train": metrics.auroc(clean_scores, metrics.scores(model, fashion)),
        "auroc_noisy_train": metrics.auroc(clean_scores, noisy_scores),
        "noisy_below_clean": float((noisy_scores < clean_scores).float().mean()),
    }


def conditions_met(row: dict) -> int:
    return sum(row[key] >= bound for key, bound in RULE.items())


def select(rows: list[dict]) -> dict:
    """Issue 15's rule: the most conditions met, then the lowest distance; with recipe times,
    the shortest recipe among those within ``SAME_QUALITY`` of that distance."""
    best = min(rows, key=lambda row: (-conditions_met(row), row["distance"]))
    if any("recipe_seconds" not in row for row in rows):
        return best
    equal = [
        row
        for row in rows
        if conditions_met(row) == conditions_met(best)
        and row["distance"] <= SAME_QUALITY * best["distance"]
    ]
    return min(equal, key=lambda row: row["recipe_seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="also write the rows and the choice to this file")
    parser.add_argument(
        "--recipe-seconds",
        type=float,
        nargs="+",
        help="wall-clock of each checkpoint's whole recipe (same order): prefer the shortest "
        "among those of equal quality",
    )
    args = parser.parse_args()
    if args.recipe_seconds and len(args.recipe_seconds) != len(args.checkpoints):
        parser.error(
            f"--recipe-seconds: {len(args.recipe_seconds)} values for "
            f"{len(args.checkpoints)} checkpoints"
        )
    torch.set_num_threads(args.threads)

    train_images, _ = to_tensors(load_mnist(train=True, fallback=False))
    fashion, _ = to_tensors(load_fashion_mnist(train=True), limit=2000)
    reference, classifier = train_images[-2000:], load_classifier()
    print(
        "| checkpoint | distance | entropy | ones | AUROC Fashion (train) | AUROC noisy (train) "
        "| noisy below clean | samples per class |"
    )
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for i, path in enumerate(args.checkpoints):
        row = measure(path, reference, fashion, classifier)
        if args.recipe_seconds:
            row["recipe_seconds"] = args.recipe_seconds[i]
        rows.append(row)
        print(
            f"| {path} | {row['distance']:.1f} | {row['class_entropy']:.3f} | {row['ones']} | "
            f"{row['auroc_fashion_train']:.4f} | {row['auroc_noisy_train']:.4f} | "
            f"{row['noisy_below_clean']:.3f} | {' '.join(map(str, row['histogram']))} |",
            flush=True,
        )
    choice = select(rows)
    print(
        f"\nselected ({conditions_met(choice)} of {len(RULE)} conditions met): "
        f"{choice['checkpoint']}"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "rule": RULE,
                    "same_quality": SAME_QUALITY,
                    "rows": rows,
                    "selected": choice["checkpoint"],
                },
                handle,
                indent=2,
            )


if __name__ == "__main__":
    main()
