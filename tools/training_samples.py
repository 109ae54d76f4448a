"""Samples across the epochs of a training run, shipped beside the pretrained model.

    python tools/training_samples.py RUN_DIR --epochs 1 5 10 20 30 40 50 [--name mnist]

For each kept epoch (``RUN_DIR/epochs/epoch_NNN.pt``, from ``train --keep-epochs``), the
samples ``fit(sample_every=...)`` would have recorded then: 16 images from the same uniform
noise after 256 steps of the run's sampler (``ebm_course.training.samples_from_noise``).
Written to ``ebm_course/pretrained/<name>_training_samples.pt`` as uint8 pixels (lesson 4
shows how the samples change while the curves look smooth);
``ebm_course.pretrained.training_samples(name)`` reads them back.
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
    parser.add_argument("--name", default="mnist")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TrainConfig.from_dict(json.loads((args.run / "config.json").read_text()))
    grids = []
    for epoch in args.epochs:
        model = load_energy(args.run / "epochs" / f"epoch_{epoch:03d}.pt")
        samples = samples_from_noise(model, (1, 28, 28), config)
        grids.append(((samples + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
        print(f"epoch {epoch}: done", flush=True)
    path = OUT / f"{args.name}_training_samples.pt"
    save_atomic({"epochs": args.epochs, "pixels": torch.stack(grids)}, path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
