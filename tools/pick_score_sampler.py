"""Choose how the shipped score model samples, on MNIST *training* images only.

    python tools/pick_score_sampler.py RUN_DIR/score_model.pt \\
        --candidate sampler=heun,levels=18,churn=0 --candidate sampler=heun,levels=25 ... \\
        [--n 1000] [--seeds 1 2] [--json OUT.json]

Each candidate overrides fields of the run's ``ScoreConfig`` (sampling fields only); its
``n`` samples per seed are judged by the course's classifier against ``2 n`` MNIST training
images (``ebm_course.metrics.judge_samples``): Frechet distance, class entropy, malformed
share, seconds. The test images are never read, so the choice cannot fit them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from ebm_course.classifier import load_classifier
from ebm_course.data import load_mnist, to_tensors
from ebm_course.metrics import judge_samples
from ebm_course.score_training import (
    SAMPLING_FIELDS,
    ScoreConfig,
    load_score_model,
    sample_score_model,
)


def parse_candidate(text: str, base: ScoreConfig) -> ScoreConfig:
    """``"sampler=heun,levels=18"`` -> ``base`` with those fields (typed as ``base``'s)."""
    changes = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        if key not in (*SAMPLING_FIELDS, "levels"):
            raise SystemExit(f"--candidate {text!r}: {key!r} is not a sampling field")
        kind = type(getattr(base, key))
        changes[key] = kind(float(value)) if kind is int else kind(value)
    return dataclasses.replace(base, **changes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--candidate", action="append", required=True)
    parser.add_argument("--n", type=int, default=1000, help="samples per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, base = load_score_model(args.checkpoint)
    real, _ = to_tensors(load_mnist(train=True, download=False, fallback=False), limit=2 * args.n)
    classifier = load_classifier()
    found = {}
    for text in args.candidate:
        config = parse_candidate(text, base)
        draws = []
        for seed in args.seeds:
            started = time.perf_counter()
            samples = sample_score_model(model, config, args.n, torch.Generator().manual_seed(seed))
            seconds = time.perf_counter() - started
            draws.append({**judge_samples(classifier, samples, real), "seconds": seconds})
        mean = {
            key: sum(d[key] for d in draws) / len(draws)
            for key in ("frechet_classifier_distance", "class_entropy", "malformed_fraction")
        }
        found[text] = {**mean, "seconds": draws[0]["seconds"], "draws": draws}
        per_seed = ", ".join(f"{d['frechet_classifier_distance']:.1f}" for d in draws)
        print(
            f"{text:45s} FD {mean['frechet_classifier_distance']:6.1f} "
            f"(per seed {per_seed}; "
            f"floor {draws[0]['frechet_classifier_distance_real_vs_real']:.1f}) entropy "
            f"{mean['class_entropy']:.3f} malformed {mean['malformed_fraction']:.3f} "
            f"{draws[0]['seconds']:.0f} s",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
