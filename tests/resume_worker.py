"""Run by tests/test_training.py: a small CPU training run that checkpoints every iteration.

``python tests/resume_worker.py OUT [--slow]``: trains the toy energy into OUT/ckpt
(resuming from OUT/ckpt/last.pt when present), records each finished iteration in
OUT/step.txt, and writes the final weights to OUT/final.pt.
"""

import os
import sys
import time
from pathlib import Path

import torch

from ebm_course.checkpoint import save_atomic
from ebm_course.models import MLPEnergy
from ebm_course.training import TrainConfig, fit

CONFIG = dict(
    epochs=4, batch_size=32, lr=1e-2, grad_clip=1.0, mcmc_steps=10, step_size=0.05,
    mcmc_noise=0.01, grad_clamp=None, input_noise=0.01, buffer_capacity=256, noise_images=64,
    seed=5,
)  # fmt: skip


def main(out: Path, slow: bool) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(3)
    model = MLPEnergy(hidden=16, depth=2)
    gen = torch.Generator().manual_seed(0)
    data = (0.4 + 0.1 * torch.randn(256, 2, generator=gen)).clamp(-1, 1)

    def record(step: int, _model: torch.nn.Module) -> None:
        (out / "step.tmp").write_text(str(step))
        os.replace(out / "step.tmp", out / "step.txt")  # the test never sees a partial file
        if slow:
            time.sleep(0.05)  # leave the test time to kill us mid-run

    fit(model, data, data[:64], TrainConfig(**CONFIG), checkpoint_dir=out / "ckpt",
        checkpoint_every=1, progress=False, callback=record)  # fmt: skip
    save_atomic(model.state_dict(), out / "final.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), "--slow" in sys.argv)
