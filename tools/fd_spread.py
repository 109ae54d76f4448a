"""How much the Frechet classifier distance of 1,000 samples moves with the seed and the reference.

    PATH_DATASETS=../shared/data python tools/fd_spread.py [--seeds 0 1] [--name mnist]

For the shipped energy model, the distance of ``metrics.sample_quality`` (1,000 samples from
uniform noise, 256 steps) for each seed against three reference sets: the first 2,000 test
images (what ``metrics.evaluate`` and the model card use), the last 2,000 training images (what
``tools/pick_checkpoint.py`` selects on) and the first 2,000 training images; then the distance
between real sets, the last 1,000 training images against the first 1,000 test images. The
metrics' classifier was trained on all the training images, so training images sit apart from
test images in its features; the model card's limitations quote these numbers. Measurement only:
nothing here chooses a model.
"""

from __future__ import annotations

import argparse

import torch

from ebm_course import metrics, pretrained
from ebm_course.classifier import load_classifier
from ebm_course.data import load_mnist, to_tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--name", default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, classifier = pretrained.load(args.name), load_classifier()
    test, _ = to_tensors(load_mnist(train=False, fallback=False))
    train, _ = to_tensors(load_mnist(train=True, fallback=False))
    references = {
        "test, first 2,000": test[:2000],
        "train, last 2,000": train[-2000:],
        "train, first 2,000": train[:2000],
    }
    print("| reference | seed | distance | real-vs-real floor |")
    print("|---|---|---|---|")
    for name, reference in references.items():
        for seed in args.seeds:
            quality = metrics.sample_quality(
                model, classifier, reference, n=1000, generator=torch.Generator().manual_seed(seed)
            )
            print(
                f"| {name} | {seed} | {quality['frechet_classifier_distance']:.1f} | "
                f"{quality['frechet_classifier_distance_real_vs_real']:.1f} |",
                flush=True,
            )
    # judge_samples compares its "samples" with the first 1,000 of the reference images
    across = metrics.judge_samples(classifier, train[-1000:], test[:2000])
    print(
        "\nreal against real, last 1,000 train vs first 1,000 test: "
        f"{across['frechet_classifier_distance']:.1f}"
    )


if __name__ == "__main__":
    main()
