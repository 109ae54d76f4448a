"""Run by tests/test_distributed.py under torchrun: train the toy energy on 2 CPU ranks."""

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from ebm_course.models import MLPEnergy
from ebm_course.training import TrainConfig, fit


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(100 + rank)  # different initial weights: DDP must broadcast rank 0's
    model = MLPEnergy(hidden=16, depth=2)
    gen = torch.Generator().manual_seed(0)
    data = (0.4 + 0.1 * torch.randn(512, 2, generator=gen)).clamp(-1, 1)
    config = TrainConfig(
        epochs=2, batch_size=32, lr=1e-2, grad_clip=1.0, mcmc_steps=10, step_size=0.05,
        mcmc_noise=0.01, grad_clamp=None, input_noise=0.0, buffer_capacity=256, noise_images=64,
    )  # fmt: skip
    history = fit(model, data, data[:128], config, progress=False, checkpoint_dir=out / "ckpt")
    torch.save({"model": model.state_dict(), "history": history.to_dict()}, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
