"""Golden runs (see tests/test_golden.py): computed in a fresh process, printed as JSON.

The package's numbers, bit for bit, pinned before a refactor.

Each case runs a small fixed-seed piece of the package on the CPU (two threads) and compares
SHA-256 digests of what it produced (weights, samples, replay buffer, checkpoint) and the exact
history floats with ``tests/golden/golden.json``. A refactor that is meant to change nothing
must leave every case identical; a change that is meant to alter the numbers regenerates the
file on purpose (``EBM_UPDATE_GOLDEN=1 pytest tests/test_golden.py``) and says why in its commit.

The cases: ``fit`` of the tutorial's CNN (replay buffer, ``checkpoint_every``, one forced
rollback, then a resume for one more epoch), ``fit`` of the 2-D toy MLP, ``langevin`` in fp32
(with a trajectory, and with an inpainting mask), ``fit_jem`` (a last partial pass, block
logging) and ``fit_objective`` with denoising score matching.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from ebm_course.jem import JEM, fit_jem
from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.objectives import denoising_score_matching, fit_objective
from ebm_course.sampling import langevin
from ebm_course.speed import SamplerSpeed
from ebm_course.training import DivergenceGuard, TrainConfig, fit

# History columns that existed when the golden file was first written (wall-clock excluded).
FIT_COLUMNS = (
    "epoch",
    "loss",
    "reg_loss",
    "cdiv",
    "real_score",
    "fake_score",
    "val_cdiv",
    "noise_score",
    "lr",
)


def digest(value: Any) -> str:
    """SHA-256 over tensors' bytes (and the keys of dicts, in sorted order)."""
    h = hashlib.sha256()

    def feed(v: Any) -> None:
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous().reshape(-1)
            h.update(f"{t.dtype}{list(t.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            for key in sorted(v, key=str):
                h.update(str(key).encode())
                feed(v[key])
        elif isinstance(v, list | tuple):
            for item in v:
                feed(item)
        else:
            h.update(repr(v).encode())

    feed(value)
    return h.hexdigest()


def _clean(values: list) -> list:
    """Floats as JSON can hold them (NaN as the string 'nan')."""
    return ["nan" if isinstance(v, float) and math.isnan(v) else v for v in values]


def _cnn_fit(tmp_path: Path, images: torch.Tensor) -> dict[str, Any]:
    torch.manual_seed(0)
    model = CNNEnergy(hidden_features=16)
    config = TrainConfig(
        epochs=2,
        iters_per_epoch=3,
        batch_size=16,
        mcmc_steps=4,
        buffer_capacity=64,
        noise_images=32,
        val_batch_size=32,
        precision="fp32",
        seed=3,
    )
    calls = {"n": 0}

    class FailOnFifthStep(DivergenceGuard):
        def problem(self, row: dict[str, float]) -> str | None:
            calls["n"] += 1
            if calls["n"] == 5:  # epoch 2, step 2: roll back to the end of epoch 1
                return "forced by the golden test"
            return super().problem(row)

    history = fit(
        model,
        images[:96],
        images[96:160],
        config,
        checkpoint_dir=tmp_path,
        checkpoint_every=2,
        guard=FailOnFifthStep(),
        progress=False,
    )
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    first = {
        "weights": digest(model.state_dict()),
        "buffer": digest(last["buffer"]),
        "optimizer": digest(last["optimizer"]),
        "best": digest(best["model"]),
        "events": [{k: e[k] for k in ("epoch", "step", "reason", "lr")} for e in history.events],
        "history": {k: _clean(getattr(history, k)) for k in FIT_COLUMNS},
    }
    # resume for one more epoch, in a fresh model as a new process would
    torch.manual_seed(1)
    resumed = CNNEnergy(hidden_features=16)
    more = TrainConfig.from_dict({**config.to_dict(), "epochs": 3})
    history = fit(
        resumed, images[:96], images[96:160], more, checkpoint_dir=tmp_path, progress=False
    )
    return {
        "first": first,
        "resumed_weights": digest(resumed.state_dict()),
        "resumed_history": {k: _clean(getattr(history, k)) for k in FIT_COLUMNS},
    }


def _toy_fit() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    data = (0.4 + 0.1 * torch.randn(256, 2, generator=gen)).clamp(-1, 1)
    val = (0.4 + 0.1 * torch.randn(128, 2, generator=gen)).clamp(-1, 1)
    torch.manual_seed(0)
    model = MLPEnergy(hidden=32, depth=2)
    config = TrainConfig(
        epochs=3,
        batch_size=64,
        lr=1e-2,
        grad_clip=1.0,
        mcmc_steps=20,
        step_size=0.05,
        mcmc_noise=0.01,
        grad_clamp=None,
        input_noise=0.0,
        buffer_capacity=512,
        noise_images=512,
    )
    history = fit(model, data, val, config, progress=False)
    return {
        "weights": digest(model.state_dict()),
        "history": {k: _clean(getattr(history, k)) for k in FIT_COLUMNS},
    }


def _langevin() -> dict[str, Any]:
    torch.manual_seed(0)
    model = CNNEnergy(hidden_features=16)
    gen = torch.Generator().manual_seed(5)
    start = torch.rand(6, 1, 28, 28, generator=gen) * 2 - 1
    fp32 = SamplerSpeed(precision="fp32")
    trajectory = langevin(model, start, steps=7, return_trajectory=True, generator=gen, speed=fp32)
    mask = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
    mask[..., 14:, :] = True
    inpainted = langevin(model, start, steps=5, generator=gen, speed=fp32, mask=mask)
    textbook = langevin(
        model,
        start,
        steps=5,
        step_size=1e-3,
        noise_std=math.sqrt(2e-3),
        grad_clamp=None,
        value_range=None,
        generator=gen,
        speed=SamplerSpeed(precision="fp32", channels_last=False),
    )
    return {
        "trajectory": digest(trajectory),
        "inpainted": digest(inpainted),
        "textbook": digest(textbook),
        "generator_after": digest(gen.get_state()),
    }


def _jem(images: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    torch.manual_seed(0)
    model = JEM(CNNEnergy(hidden_features=16, out_dim=10))
    config = TrainConfig(batch_size=16, mcmc_steps=3, buffer_capacity=64, precision="fp32")
    history = fit_jem(
        model,
        images[:64],
        labels[:64],
        config,
        iterations=7,
        generative_weight=0.5,
        log_every=3,
        progress=False,
    )
    history.pop("seconds")
    return {"weights": digest(model.state_dict()), "history": history}


def _objective() -> dict[str, Any]:
    gen = torch.Generator().manual_seed(0)
    data = torch.randn(200, 2, generator=gen) * 0.3
    torch.manual_seed(0)
    model = MLPEnergy(hidden=16, depth=2)
    log = fit_objective(
        model,
        data,
        lambda m, b: denoising_score_matching(m, b, sigma=0.1, generator=gen),
        steps=12,
        batch_size=32,
        lr=1e-2,
        evaluate=lambda m: m(data[:50]).mean().item(),
        eval_every=5,
        generator=torch.Generator().manual_seed(1),
    )
    return {
        "weights": digest(model.state_dict()),
        "loss": log["loss"],
        "value": log["value"],
        "step": log["step"],
    }


def _run_all(tmp_path: Path) -> dict[str, Any]:
    from ebm_course.data import MNISTSample, to_tensors

    images, labels = to_tensors(MNISTSample(), limit=160)
    return {
        "cnn_fit": _cnn_fit(tmp_path, images),
        "toy_fit": _toy_fit(),
        "langevin": _langevin(),
        "fit_jem": _jem(images, labels),
        "fit_objective": _objective(),
    }


if __name__ == "__main__":
    # a fresh process with two threads: oneDNN's float sums depend on the thread count and on
    # what the process ran before, so the pinned numbers are made where nothing ran before
    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as folder:
        json.dump(_run_all(Path(folder)), sys.stdout)
