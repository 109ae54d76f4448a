"""Contrastive divergence with a replay buffer: the tutorial's training, as :func:`fit`.

Several processes: under ``torchrun`` (``torch.distributed`` initialised first, e.g.
``init_process_group("gloo")`` on CPUs, ``"nccl"`` on GPUs) each process trains on its share
of every epoch with its own replay buffer; DDP all-reduces the gradients, the history holds
the mean over processes, and only the first process writes files. On a GPU, cuDNN may
reorder float sums, so runs agree only statistically unless
``torch.use_deterministic_algorithms(True)`` is set.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .. import checks
from ..checkpoint import save_atomic
from ..sampling import ReplayBuffer, langevin, uniform_noise
from ..utils import model_device
from .config import EVAL_SEED_OFFSET, WATCH_SEED_OFFSET, TrainConfig
from .guard import DivergenceGuard
from .history import STEP_KEYS, History
from .safety import fingerprint
from .step import mean_score, training_step
from .trainer import RunOptions, Trainer

# watching samples during training (fit's sample_every): how many, how long, which noise
WATCH_IMAGES = 16
WATCH_STEPS = 256  # the tutorial's generation setting


class ContrastiveDivergenceTrainer(Trainer):
    """:class:`~ebm_course.training.trainer.Trainer` for an energy network trained by
    :func:`~ebm_course.training.step.training_step`; records a :class:`History` and keeps
    ``best.pt`` (the weights with the lowest validation contrastive divergence)."""

    step_keys = STEP_KEYS

    def __init__(
        self,
        model: nn.Module,
        images: torch.Tensor,
        val_images: torch.Tensor | None,
        config: TrainConfig,
        options: RunOptions,
    ) -> None:
        super().__init__(model, images, config, options)
        self.val_images = val_images
        self.noise_shape = (config.noise_images, *images.shape[1:])

    def new_history(self) -> History:
        return History()

    def guarded(self, row: dict[str, float]) -> dict[str, float]:
        # without validation data, val_cdiv is NaN by design
        return {k: v for k, v in row.items() if k != "val_cdiv" or self.val_images is not None}

    def preflight(self) -> None:
        super().preflight()
        self.data_fingerprint["val"] = fingerprint(self.val_images)

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        real = self.images[batch]
        return training_step(
            self.train_model,
            self.optimizer,
            self.buffer,
            real,
            self.config,
            self.sample_gen,
            sampler_model=self.model,
        )

    def evaluate(self) -> dict[str, float]:
        """``noise_score`` and ``val_cdiv`` on the same noise images every epoch (and rank)."""
        c, device = self.config, self.device
        eval_gen = torch.Generator(device).manual_seed(c.seed + EVAL_SEED_OFFSET)
        noise = uniform_noise(self.noise_shape, c.value_range, device, eval_gen)
        noise_score = mean_score(self.model, noise, c.val_batch_size)
        if self.val_images is None:
            return {"noise_score": noise_score, "val_cdiv": math.nan}
        # the tutorial compares each held-out image with a uniform-noise image
        val_noise = uniform_noise(self.val_images.shape, c.value_range, device, eval_gen)
        val_cdiv = mean_score(self.model, val_noise, c.val_batch_size) - mean_score(
            self.model, self.val_images, c.val_batch_size
        )
        return {"noise_score": noise_score, "val_cdiv": val_cdiv}

    def log_epoch(self, means: dict[str, float], lr: float, evaluation: dict[str, float]) -> None:
        at = self.progress
        done = self.history.iterations[-1] if len(self.history) else 0
        self.history.append(
            epoch=at.epoch + 1,
            **means,
            **evaluation,
            lr=lr,
            iterations=done + at.step,
            seconds=at.seconds,
        )
        every = self.options.sample_every
        if every and (at.epoch + 1) % every == 0:
            self.history.samples.append(self.watch_samples(at.epoch + 1))
        if self.writer is not None:
            self.log_tensorboard(at.epoch + 1)

    def watch_samples(self, epoch: int) -> dict[str, Any]:
        """:func:`samples_from_noise` and a slice of the replay buffer, on the CPU."""
        shape = tuple(self.images.shape[1:])
        from_noise = samples_from_noise(self.model, shape, self.config)
        buffer = self.buffer.examples[: min(WATCH_IMAGES, len(self.buffer))]
        return {"epoch": epoch, "from_noise": from_noise.cpu(), "buffer": buffer.cpu().clone()}

    def log_tensorboard(self, epoch: int) -> None:
        for key, values in self.history.to_dict(samples=False).items():
            if key not in ("epoch", "events"):
                self.writer.add_scalar(f"epoch/{key}", values[-1], epoch)
        if self.history.samples and self.history.samples[-1]["epoch"] == epoch:
            low, high = self.config.value_range
            for name in ("from_noise", "buffer"):
                images = (self.history.samples[-1][name] - low) / (high - low)
                if images.dim() == 4:  # images only; 2-D points have no picture
                    self.writer.add_images(f"samples/{name}", images.clamp(0, 1), epoch)

    def save_epoch(self) -> None:
        """``best.pt`` when the validation contrastive divergence improved, then the kept epoch."""
        val_cdiv = self.history.val_cdiv[-1]
        best = min((v for v in self.history.val_cdiv[:-1] if not math.isnan(v)), default=math.inf)
        path = self._path("best.pt")
        if path is not None and self.rank == 0 and val_cdiv < best:
            best_state = {
                "model": self.model.state_dict(),
                "config": self.config.to_dict(),
                "epoch": self.progress.epoch,
                "val_cdiv": val_cdiv,
            }
            save_atomic(best_state, path)
        super().save_epoch()


def samples_from_noise(
    model: nn.Module, shape: tuple[int, ...], config: TrainConfig, n: int = WATCH_IMAGES
) -> torch.Tensor:
    """What the tutorial watches during training: ``n`` samples ``[n, *shape]`` from uniform
    noise after :data:`WATCH_STEPS` steps of ``config``'s sampler, from the same starting
    noise every time (seed ``config.seed + WATCH_SEED_OFFSET``), on the model's device."""
    device = model_device(model)
    gen = torch.Generator(device).manual_seed(config.seed + WATCH_SEED_OFFSET)
    start = uniform_noise((n, *shape), config.value_range, device, gen)
    sampler = {
        "noise_std": config.mcmc_noise,
        "grad_clamp": config.grad_clamp,
        "value_range": config.value_range,
        "speed": config.speed,
    }
    return langevin(model, start, WATCH_STEPS, config.step_size, generator=gen, **sampler)


def fit(
    model: nn.Module,
    train_data: torch.Tensor | torch.utils.data.Dataset,
    val_data: torch.Tensor | torch.utils.data.Dataset | None = None,
    config: TrainConfig | None = None,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    keep_epochs: bool = False,
    resume: bool = True,
    buffer: ReplayBuffer | None = None,
    guard: DivergenceGuard | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
    tensorboard_dir: str | os.PathLike[str] | None = None,
    callback: Callable[[int, nn.Module], None] | None = None,
    sample_every: int | None = None,
) -> History:
    """Train ``model`` (score ``f = -E``) by contrastive divergence with a replay buffer.

    Args:
        model: maps ``[B, ...]`` to scores ``[B]``; trained in place, left in eval mode.
        train_data: images ``[N, ...]`` in ``config.value_range`` (a tensor, or a dataset of
            ``(image, label)`` pairs such as :func:`ebm_course.data.load_mnist`).
        val_data: held-out images for the validation contrastive divergence, or None.
        config: hyper-parameters (default: the tutorial's :class:`TrainConfig`).
        checkpoint_dir: if given, ``last.pt`` (all a resume needs) is written after every
            epoch and ``best.pt`` (weights with the lowest ``val_cdiv``) when it improves.
        checkpoint_every: also write ``last.pt`` every this many iterations.
        keep_epochs: also keep each epoch's weights as ``checkpoint_dir/epochs/epoch_NNN.pt``
            (samples change from epoch to epoch even when the curves look smooth).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists. On the CPU, at the
            same thread count, a resumed run ends bit-identical to an uninterrupted one.
        buffer: a :class:`ReplayBuffer` on the training device to use (and keep).
        guard: the :class:`DivergenceGuard` (default: on; ``DivergenceGuard(enabled=False)``).
        device: where to train (default: the model's device).
        progress: show ``tqdm`` progress bars. tensorboard_dir: log scalars there too.
        callback: called as ``callback(global_step, model)`` after every iteration.
        sample_every: every this many epochs, record samples from noise and a slice of the
            replay buffer in ``history.samples`` (and TensorBoard): the tutorial's way to
            watch training, which the curves alone do not show.

    Returns the :class:`History`: one entry per epoch, the guard's rollbacks in ``events``.
    """
    options = RunOptions.pick(locals())  # the keyword arguments from checkpoint_dir on
    config = TrainConfig() if config is None else checks.instance("config", config, TrainConfig)
    train_images, val_images = _checked_data(train_data, val_data, config)
    _check_buffer(buffer, train_images, device, model)
    trainer = ContrastiveDivergenceTrainer(model, train_images, val_images, config, options)
    return trainer.fit()


def _checked_data(
    train_data: torch.Tensor | torch.utils.data.Dataset,
    val_data: torch.Tensor | torch.utils.data.Dataset | None,
    config: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    train_images = checks.in_range(
        "train_data", checks.as_images("train_data", train_data), config.value_range
    )
    if val_data is None:
        return train_images, None
    val_images = checks.in_range(
        "val_data", checks.as_images("val_data", val_data), config.value_range
    )
    if val_images.shape[1:] != train_images.shape[1:]:
        raise ValueError(
            f"val_data examples have shape {list(val_images.shape[1:])}, "
            f"train_data examples {list(train_images.shape[1:])}"
        )
    return train_images, val_images


def _check_buffer(
    buffer: ReplayBuffer | None, images: torch.Tensor, device: object, model: nn.Module
) -> None:
    if buffer is None:
        return
    checks.instance("buffer", buffer, ReplayBuffer)
    if buffer.shape != tuple(images.shape[1:]):
        raise ValueError(
            f"buffer holds examples of shape {buffer.shape}, the data {tuple(images.shape[1:])}"
        )
    where = checks.device("device", device) if device is not None else model_device(model)
    if buffer.device != where and not (buffer.device.type == where.type == "cpu"):
        raise ValueError(
            f"buffer lives on {buffer.device} but training runs on {where}: "
            f"move it first with buffer.to({str(where)!r})"
        )
