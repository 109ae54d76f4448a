"""Compare training checkpoints on training data only, to pick the one to ship.

    python tools/pick_checkpoint.py CKPT [CKPT ...]

For each checkpoint: the Frechet classifier distance of 1,000 samples (uniform noise, 256
Langevin steps, seed 1) to the last 2,000 MNIST *training* images, the class entropy of the
samples, and the AUROC of those training images against the same images plus Gaussian noise
(sigma 0.3). No test image is used, so the test-set metrics of the model card stay unbiased
by the choice. Lower distance is better.
"""

from __future__ import annotations

import argparse

import torch

from ebm_course import metrics
from ebm_course.classifier import load_classifier
from ebm_course.data import load_mnist, to_tensors
from ebm_course.models import load_energy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    train_images, _ = to_tensors(load_mnist(train=True, fallback=False))
    reference = train_images[-2000:]
    classifier = load_classifier()
    print(
        "| checkpoint | FCD vs training images | class entropy | AUROC vs noisy training | "
        "samples per class |"
    )
    print("|---|---|---|---|---|")
    for path in args.checkpoints:
        model = load_energy(path).eval()
        quality = metrics.sample_quality(
            model, classifier, reference, n=1000, generator=torch.Generator().manual_seed(1)
        )
        noisy = metrics.add_gaussian_noise(reference, 0.3, torch.Generator().manual_seed(1))
        noise_auroc = metrics.auroc(metrics.scores(model, reference), metrics.scores(model, noisy))
        print(
            f"| {path} | {quality['frechet_classifier_distance']:.1f} | "
            f"{quality['class_entropy']:.3f} | {noise_auroc:.4f} | "
            f"{' '.join(map(str, quality['class_histogram']))} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
