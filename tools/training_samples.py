"""Samples across the epochs of a training run, shipped beside the pretrained model.

    python tools/training_samples.py RUN_DIR --epochs 1 5 10 20 30 40 50 [--name mnist]
        [--continued-by RUN2 --continued-epochs 1 3]

For each kept epoch (``RUN_DIR/epochs/epoch_NNN.pt``, from ``train --keep-epochs``), the
samples ``fit(sample_every=...)`` would have recorded then: 16 images from the same uniform
noise after 256 steps of the run's sampler (``ebm_course.training.samples_from_noise``).
Written to ``ebm_course/pretrained/<name>_training_samples.pt`` as uint8 pixels (lesson 4
shows how the samples change while the curves look smooth);
``ebm_course.pretrained.training_samples(name)`` reads them back. For a two-stage recipe,
``--continued-by RUN2`` (a run started with ``--init-from RUN_DIR/epochs/epoch_K.pt``, where K
is the largest of ``--epochs``) adds its ``--continued-epochs``, labelled K + epoch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ebm_course.checkpoint import save_atomic
from ebm_course.models import load_energy
from ebm_course.training import TrainConfig, samples_from_noise

OUT = Path(__file__).resolve().parents[1] / "ebm_course" / "pretrained"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--epochs", type=int, nargs="+", required=True)
    parser.add_argument("--continued-by", type=Path)
    parser.add_argument("--continued-epochs", type=int, nargs="*", default=[])
    parser.add_argument("--name", default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    stages = [(args.run, args.epochs, 0)]
    if args.continued_by is not None:
        stages.append((args.continued_by, args.continued_epochs, max(args.epochs)))
    labels, grids = [], []
    for run, epochs, offset in stages:
        config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        for epoch in epochs:
            model = load_energy(run / "epochs" / f"epoch_{epoch:03d}.pt")
            samples = samples_from_noise(model, (1, 28, 28), config)
            grids.append(((samples + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
            labels.append(offset + epoch)
            print(f"epoch {offset + epoch}: done", flush=True)
    path = OUT / f"{args.name}_training_samples.pt"
    save_atomic({"epochs": labels, "pixels": torch.stack(grids)}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
