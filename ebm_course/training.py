"""Training an energy model with contrastive divergence (the tutorial's recipe).

One iteration, with the model's output the score ``f(x) = -E(x)``:

1. real images ``x+`` get a little Gaussian noise (``input_noise``), clamped to range;
2. fake images ``x-`` come from the replay buffer after ``mcmc_steps`` Langevin steps;
3. loss = contrastive divergence ``mean f(x-) - mean f(x+)``
   + ``alpha * mean(f(x+)^2 + f(x-)^2)`` (keeps scores near 0: CD alone is blind
   to adding a constant to f);
4. Adam step (``beta1 = 0``: momentum hurts when the loss surface moves with the
   samples), gradient-norm clip, and a per-epoch exponential learning-rate decay.

Validation contrastive divergence: ``mean f(uniform noise) - mean f(held-out images)``
(lower is better: noise should score far below real data).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .checkpoint import load_checkpoint, save_atomic
from .sampling import PRECISIONS, ReplayBuffer, uniform_noise


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`fit`; defaults are the tutorial's MNIST values.

    Invalid values raise ``ValueError`` naming the field, at construction time.
    """

    batch_size: int = 128
    alpha: float = 0.1  # weight of the score regulariser
    flatness: float = 0.0  # weight of Var(f(real)) in the loss; 0 is the tutorial's loss
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.999
    lr_gamma: float = 0.97  # learning rate x gamma after each epoch (StepLR, step 1)
    grad_clip: float | None = 0.1  # max gradient norm; None disables
    epochs: int = 60
    mcmc_steps: int = 60
    step_size: float = 10.0
    mcmc_noise: float = 0.005  # noise std of each Langevin step
    grad_clamp: float | None = 0.03  # per-pixel clamp of the Langevin gradient
    input_noise: float = 0.005  # noise std added to real images
    buffer_capacity: int = 8192
    reinit_prob: float = 0.05
    value_range: tuple[float, float] = (-1.0, 1.0)
    seed: int = 42
    iters_per_epoch: int | None = None  # None: one pass over the data (drop_last)
    val_batch_size: int = 256
    noise_images: int = 1024  # uniform-noise images scored after each epoch
    # speed switches of the sampler (see ebm_course.sampling.langevin)
    precision: str = "auto"  # "auto" | "fp32" | "bf16" for the MCMC forward passes
    channels_last: bool = True
    compile: bool = False
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        self.value_range = tuple(float(v) for v in self.value_range)  # type: ignore[assignment]
        problems = []

        def positive_int(name: str, allow_none: bool = False) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a positive integer, got {value!r}")

        def number(
            name: str,
            low: float,
            high: float = math.inf,
            *,
            open_low: bool = False,
            allow_none: bool = False,
        ) -> None:
            value = getattr(self, name)
            if allow_none and value is None:
                return
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = ok and math.isfinite(value) and value <= high
            ok = ok and (value > low if open_low else value >= low)
            if not ok:
                bound = f"> {low}" if open_low else f">= {low}"
                upper = "" if high == math.inf else f" and <= {high}"
                problems.append(f"{name} must be a finite number {bound}{upper}, got {value!r}")

        for name in (
            "batch_size",
            "epochs",
            "mcmc_steps",
            "buffer_capacity",
            "val_batch_size",
            "noise_images",
        ):
            positive_int(name)
        positive_int("iters_per_epoch", allow_none=True)
        number("alpha", 0.0)
        number("flatness", 0.0)
        number("lr", 0.0, open_low=True)
        number("beta1", 0.0, 1.0)
        number("beta2", 0.0, 1.0)
        number("lr_gamma", 0.0, 1.0, open_low=True)
        number("grad_clip", 0.0, open_low=True, allow_none=True)
        number("step_size", 0.0, open_low=True)
        number("mcmc_noise", 0.0)
        number("grad_clamp", 0.0, open_low=True, allow_none=True)
        number("input_noise", 0.0)
        number("reinit_prob", 0.0, 1.0)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        lo, hi = self.value_range if len(self.value_range) == 2 else (math.nan, math.nan)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            problems.append(
                f"value_range must be (low, high) with low < high, got {self.value_range}"
            )
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        for name in ("channels_last", "compile", "cuda_graph"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name} must be True or False, got {getattr(self, name)!r}")
        flat = isinstance(self.flatness, int | float) and self.flatness > 0
        if flat and isinstance(self.batch_size, int) and self.batch_size < 2:
            problems.append("flatness > 0 needs batch_size >= 2 (a variance over the batch)")
        if problems:
            raise ValueError("invalid TrainConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build a config from a dict; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {unknown}; valid fields: {sorted(known)}")
        return cls(**values)


@dataclass
class History:
    """Per-epoch training record (one list entry per finished epoch).

    Scores are the network's output ``f(x) = -E(x)``: ``real_score`` on (noised)
    training images, ``fake_score`` on replay-buffer samples, ``noise_score`` on
    uniform noise. ``val_cdiv`` is ``mean f(noise) - mean f(val images)`` (NaN
    without validation data).
    """

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    reg_loss: list[float] = field(default_factory=list)
    cdiv: list[float] = field(default_factory=list)
    real_score: list[float] = field(default_factory=list)
    fake_score: list[float] = field(default_factory=list)
    val_cdiv: list[float] = field(default_factory=list)
    noise_score: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)  # divergence-guard rollbacks

    def append(self, **row: float) -> None:
        for name, value in row.items():
            getattr(self, name).append(value)

    def __len__(self) -> int:
        return len(self.epoch)

    def to_dict(self) -> dict[str, list]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, list]) -> History:
        return cls(**{k: list(v) for k, v in values.items()})


def _as_images(data: torch.Tensor | torch.utils.data.Dataset, what: str) -> torch.Tensor:
    """Images as one float tensor ``[N, ...]`` (datasets are materialised once)."""
    if isinstance(data, torch.Tensor):
        images = data
    else:
        from .data import to_tensors

        images, _ = to_tensors(data)
    if not images.is_floating_point():
        raise TypeError(f"{what} must hold floating-point images, got {images.dtype}")
    if images.dim() < 2 or images.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty batch [N, ...], got {list(images.shape)}")
    if not torch.isfinite(images).all():
        raise ValueError(f"{what} contains NaN or Inf values")
    return images


def _check_range(images: torch.Tensor, value_range: tuple[float, float], what: str) -> None:
    low, high = images.min().item(), images.max().item()
    if low < value_range[0] or high > value_range[1]:
        raise ValueError(
            f"{what} has values in [{low:.4g}, {high:.4g}], outside config.value_range "
            f"{value_range}: the sampler could never reach such data (scale it first)"
        )


def contrastive_divergence_loss(
    real_score: torch.Tensor, fake_score: torch.Tensor, alpha: float, flatness: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tutorial's loss from scores ``f = -E``: returns ``(loss, reg_loss, cdiv)``.

    ``cdiv = mean f(fake) - mean f(real)`` pushes real scores up and fake scores
    down; ``reg_loss = alpha * mean(f(real)^2 + f(fake)^2)`` keeps both near zero.

    With ``flatness > 0``, ``reg_loss`` also holds ``flatness * Var(f(real))`` (the
    unbiased variance over the batch): it asks all real images to score alike, i.e. the
    data to sit on a plateau of the score. Why one would want that: a score that
    differs a lot *between* real digits (say ones high, twos low) lets a corrupted
    high-scoring digit outrank a clean low-scoring one, which is what out-of-distribution
    detection by the score counts against the model. The price: contrastive divergence
    corrects a short-run sampler's bias (classes its chains rarely reach) by raising
    those classes' scores, and a flat score forbids that, so class coverage of samples
    from noise gets worse. ``flatness=0`` (default) is the tutorial's loss.
    """
    reg_loss = alpha * (real_score.pow(2) + fake_score.pow(2)).mean()
    if flatness:
        reg_loss = reg_loss + flatness * real_score.var()
    cdiv = fake_score.mean() - real_score.mean()
    return reg_loss + cdiv, reg_loss, cdiv


@torch.no_grad()
def mean_score(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> float:
    """Mean score ``f(x) = -E(x)`` over ``images`` ``[N, ...]``, in batches."""
    device = next(model.parameters()).device
    total = 0.0
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size].to(device)
        total += model(batch).sum().item()
    return total / images.shape[0]


def noisy_real(
    real: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Real images ``[B, ...]`` plus Gaussian noise of std ``config.input_noise``, clamped.

    Real digits have backgrounds of exactly -1, which a sampler with noise never produces;
    the noise removes that trivial difference between real and fake images.
    """
    lo, hi = config.value_range
    noise = torch.randn(real.shape, device=real.device, generator=generator)
    return (real + config.input_noise * noise).clamp_(lo, hi)


def draw_negatives(
    model: nn.Module, buffer: ReplayBuffer, n: int, config: TrainConfig
) -> torch.Tensor:
    """``n`` fake images from ``buffer``, refreshed by Langevin on ``model``'s score.

    Uses the sampler settings of ``config`` (``mcmc_steps``, ``step_size``, ``mcmc_noise``,
    ``grad_clamp`` and the speed switches). Returns ``[n, ...]`` in ``config.value_range``.
    """
    return buffer.sample(
        model,
        n,
        steps=config.mcmc_steps,
        step_size=config.step_size,
        noise_std=config.mcmc_noise,
        grad_clamp=config.grad_clamp,
        precision=config.precision,
        channels_last=config.channels_last,
        compile=config.compile,
        cuda_graph=config.cuda_graph,
    )


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    real: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """One iteration of the tutorial's algorithm on a batch of real images ``[B, ...]``.

    Adds ``config.input_noise`` to the real images, draws ``B`` fake images from
    ``buffer`` (``config.mcmc_steps`` Langevin steps), takes one optimiser step on
    :func:`contrastive_divergence_loss` (with gradient-norm clipping) and returns
    the batch's ``loss, reg_loss, cdiv, real_score, fake_score`` as floats.
    """
    real = noisy_real(real, config, generator)
    # A DDP wrapper syncs parameter gradients; the sampler needs none, so use the bare module.
    fake = draw_negatives(getattr(model, "module", model), buffer, real.shape[0], config)
    # one forward pass for both, as in the tutorial
    real_score, fake_score = model(torch.cat([real, fake])).chunk(2)
    loss, reg_loss, cdiv = contrastive_divergence_loss(
        real_score, fake_score, config.alpha, config.flatness
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    values = (loss, reg_loss, cdiv, real_score.mean(), fake_score.mean())
    names = ("loss", "reg_loss", "cdiv", "real_score", "fake_score")
    return {name: value.item() for name, value in zip(names, values, strict=True)}


def _rank_and_world_size() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class TrainingDiverged(RuntimeError):
    """Raised when the divergence guard has rolled back too often."""


@dataclass
class DivergenceGuard:
    """Watches each training iteration and triggers a rollback when training diverges.

    Signs of divergence (scores are ``f = -E``; the regulariser keeps healthy ones near 0):

    - a non-finite loss or score (NaN / Inf);
    - an exploding energy scale: ``|mean real score|`` or ``|mean fake score|`` above
      ``max_abs_score``;
    - the sampler losing touch with the data: ``|real score - fake score|`` above
      ``max_score_gap`` (the tutorial's failure mode: real images score high while the
      MCMC samples are noise stuck in spurious maxima, or samples score far above data).

    On a rollback :func:`fit` restores the last stable state (the end of the last
    healthy epoch), reseeds the sampler, multiplies the learning rate by ``lr_factor``
    and carries on; after ``max_rollbacks`` it raises :class:`TrainingDiverged`.
    """

    enabled: bool = True
    max_abs_score: float = 50.0
    max_score_gap: float = 10.0
    max_rollbacks: int = 3
    lr_factor: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_abs_score", "max_score_gap"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"DivergenceGuard.{name} must be > 0, got {value!r}")
        if (
            isinstance(self.max_rollbacks, bool)
            or not isinstance(self.max_rollbacks, int)
            or (self.max_rollbacks < 0)
        ):
            raise ValueError(f"max_rollbacks must be an integer >= 0, got {self.max_rollbacks!r}")
        if not 0 < self.lr_factor <= 1:
            raise ValueError(f"lr_factor must be in (0, 1], got {self.lr_factor!r}")

    def problem(self, row: dict[str, float]) -> str | None:
        """Why the iteration's ``row`` (from :func:`training_step`) looks diverged, or None."""
        if not self.enabled:
            return None
        bad = [k for k, v in row.items() if not math.isfinite(v)]
        if bad:
            return f"non-finite {', '.join(bad)}"
        real, fake = row["real_score"], row["fake_score"]
        if max(abs(real), abs(fake)) > self.max_abs_score:
            return f"energy scale exploded (real {real:.3g}, fake {fake:.3g})"
        if abs(real - fake) > self.max_score_gap:
            return f"real/fake score gap {real - fake:.3g} beyond {self.max_score_gap}"
        return None


_SUMS = ("loss", "reg_loss", "cdiv", "real_score", "fake_score")


@dataclass
class _Progress:
    """Where a run is: what a checkpoint must hold beyond the modules' state dicts."""

    epoch: int = 0  # finished epochs
    step: int = 0  # finished iterations of the current epoch
    order: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long))
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(_SUMS, 0.0))
    seconds: float = 0.0  # time spent in the current epoch so far
    rollbacks: int = 0


@dataclass
class _Run:
    """Everything :func:`fit` mutates, so that it can be saved, restored and rolled back."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    buffer: ReplayBuffer
    config: TrainConfig
    history: History
    sample_gen: torch.Generator
    shuffle_gen: torch.Generator
    progress: _Progress = field(default_factory=_Progress)

    def state(self) -> dict[str, Any]:
        numpy_state = np.random.get_state()  # noqa: NPY002 (the global state user code may use)
        rng = {
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].copy()), *numpy_state[2:]),
            "sample": self.sample_gen.get_state(),
            "shuffle": self.shuffle_gen.get_state(),
        }
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "format": "ebm_course.fit/1",
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "buffer": self.buffer.state_dict(),
            "config": self.config.to_dict(),
            "history": self.history.to_dict(),
            "progress": dataclasses.asdict(self.progress),
            "epoch": self.progress.epoch,
            "rng": rng,
        }

    def load(self, state: dict[str, Any], rng: bool = True) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.buffer.load_state_dict(state["buffer"])
        self.history = History.from_dict(state["history"])
        self.progress = _Progress(**state["progress"])
        if rng:
            saved = state["rng"]
            torch.set_rng_state(saved["torch"].cpu())
            random.setstate(_as_tuple(saved["python"]))
            kind, keys, *rest = saved["numpy"]
            np.random.set_state((kind, keys.numpy(), *rest))  # noqa: NPY002
            self.sample_gen.set_state(saved["sample"].cpu())
            self.shuffle_gen.set_state(saved["shuffle"].cpu())
            if "cuda" in saved and torch.cuda.is_available():
                torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])


def _as_tuple(value: Any) -> Any:
    """Python's random state is nested tuples; a checkpoint may hand back lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list | tuple) else value


def _resume(run: _Run, path: Path, device: torch.device, rank: int) -> None:
    state = load_checkpoint(
        path,
        map_location=device,
        required=("model", "optimizer", "scheduler", "buffer", "config", "progress", "rng"),
    )
    saved = {k: v for k, v in state["config"].items() if k != "epochs"}
    now = {k: v for k, v in run.config.to_dict().items() if k != "epochs"}
    changed = sorted(k for k in now if now[k] != saved.get(k))
    if changed:
        raise ValueError(
            f"cannot resume from {path}: config differs in {changed}; "
            "use another checkpoint_dir or resume=False"
        )
    try:
        run.load(state)
    except (KeyError, RuntimeError, TypeError, ValueError) as err:
        raise ValueError(f"cannot resume from {path}: it does not fit this run ({err})") from err
    if rank > 0:  # only rank 0's sampler state is saved: give the others fresh streams
        run.sample_gen.manual_seed(run.config.seed + 1000 * rank + run.progress.epoch)


def _rollback(run: _Run, stable: dict[str, Any], guard: DivergenceGuard, reason: str) -> None:
    rollbacks = run.progress.rollbacks + 1
    if rollbacks > guard.max_rollbacks:
        raise TrainingDiverged(
            f"training diverged {rollbacks} times (last: {reason}); gave up after "
            f"{guard.max_rollbacks} rollbacks. Try a lower lr or step_size, or a larger alpha."
        )
    event = {"epoch": run.progress.epoch + 1, "step": run.progress.step + 1, "reason": reason}
    events = [*run.history.events, event]
    # A copy: the optimiser adopts the snapshot's state tensors and updates them in place.
    run.load(copy.deepcopy(stable), rng=False)
    # The snapshot holds the learning rate of its own time: cut it once for every rollback
    # to this same snapshot, so that repeated failures keep lowering it.
    factor = guard.lr_factor ** (rollbacks - run.progress.rollbacks)
    run.progress.rollbacks = rollbacks
    run.history.events = events
    run.sample_gen.manual_seed(run.config.seed + 7919 * rollbacks)  # a different chain
    for group in run.optimizer.param_groups:
        group["lr"] *= factor
    run.scheduler.base_lrs = [lr * factor for lr in run.scheduler.base_lrs]
    event["lr"] = run.optimizer.param_groups[0]["lr"]


def _evaluate(
    model: nn.Module, val_images: torch.Tensor | None, config: TrainConfig, shape: tuple
) -> tuple[float, float]:
    """``(noise_score, val_cdiv)`` on the same noise images every epoch (and rank)."""
    device = next(model.parameters()).device
    eval_gen = torch.Generator(device=device).manual_seed(config.seed + 7)
    noise = uniform_noise((config.noise_images, *shape), config.value_range, device, eval_gen)
    noise_score = mean_score(model, noise, config.val_batch_size)
    if val_images is None:
        return noise_score, math.nan
    # the tutorial compares each held-out image with a uniform-noise image
    val_noise = uniform_noise(val_images.shape, config.value_range, device, eval_gen)
    val_cdiv = mean_score(model, val_noise, config.val_batch_size) - mean_score(
        model, val_images, config.val_batch_size
    )
    return noise_score, val_cdiv


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
) -> History:
    """Train ``model`` (score ``f = -E``) by contrastive divergence with a replay buffer.

    Args:
        model: network mapping ``[B, ...]`` to scores ``[B]``; trained in place.
        train_data: images ``[N, ...]`` in ``config.value_range`` (a tensor, or a dataset
            of ``(image, label)`` pairs such as :func:`ebm_course.data.load_mnist`).
        val_data: held-out images for the validation contrastive divergence, or None.
        config: hyper-parameters (default: the tutorial's).
        checkpoint_dir: if given, ``last.pt`` (everything needed to resume: weights,
            optimiser, scheduler, replay buffer, every RNG state, config, history and
            position) is written after every epoch, and ``best.pt`` (model weights with
            the lowest ``val_cdiv``) when it improves; both atomically.
        checkpoint_every: also write ``last.pt`` every this many iterations.
        keep_epochs: also keep the weights after every epoch, as
            ``checkpoint_dir/epochs/epoch_NNN.pt`` (``{"model": state_dict, "epoch": N}``,
            0.3 MB each for the tutorial's CNN). The samples of contrastive-divergence training
            change from epoch to epoch even when the curves look smooth, so it pays to compare
            several checkpoints by their samples (e.g. ``tools/pick_checkpoint.py``).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists. On the CPU a
            resumed run ends with bit-identical weights to an uninterrupted one.
        buffer: a :class:`ReplayBuffer` to use (and keep); a new one by default.
        guard: the :class:`DivergenceGuard` (default: on, default thresholds); pass
            ``DivergenceGuard(enabled=False)`` to switch it off.
        device: where to train (default: the model's device).
        progress: show ``tqdm`` progress bars.
        tensorboard_dir: if given, log scalars there (needs the ``tensorboard`` package).
        callback: called as ``callback(global_step, model)`` after every iteration.

    Several processes (``torchrun --nproc_per_node N``): initialise ``torch.distributed``
    first (e.g. ``torch.distributed.init_process_group("gloo")`` on CPUs, ``"nccl"`` on
    GPUs); ``fit`` then wraps the model in ``DistributedDataParallel``. Each rank draws
    ``batch_size`` images per iteration from its shard of the data and keeps its own
    replay buffer; gradients are all-reduced, so all ranks hold the same weights. The
    history holds the mean over ranks; only rank 0 writes checkpoints and logs.

    Determinism: on the CPU, the same seed gives the same history and weights, and a
    resumed run matches an uninterrupted one bit for bit. On a GPU, cuDNN and atomic
    adds may reorder float sums, so runs agree only statistically unless
    ``torch.use_deterministic_algorithms(True)`` is set (slower).

    Returns:
        The :class:`History`, one entry per epoch (including resumed ones), with any
        rollbacks of the divergence guard in ``history.events``.
    """
    config = config or TrainConfig()
    guard = guard or DivergenceGuard()
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
        or checkpoint_every < 1
    ):  # fmt: skip
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    if keep_epochs and checkpoint_dir is None:
        raise ValueError("keep_epochs=True needs a checkpoint_dir to keep the epochs in")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    train_images = _as_images(train_data, "train_data").to(device)
    val_images = None if val_data is None else _as_images(val_data, "val_data")
    _check_range(train_images, config.value_range, "train_data")
    if val_images is not None:
        _check_range(val_images, config.value_range, "val_data")
    shape = tuple(train_images.shape[1:])
    if val_images is not None and tuple(val_images.shape[1:]) != shape:
        raise ValueError(
            f"val_data examples have shape {list(val_images.shape[1:])}, "
            f"train_data examples {list(shape)}"
        )
    # Under torchrun (torch.distributed initialised): each rank trains on its shard of every
    # shuffled epoch with its own replay buffer and MCMC noise; DDP all-reduces gradients.
    rank, world = _rank_and_world_size()
    main_process = rank == 0
    n = train_images.shape[0]
    iters = config.iters_per_epoch or (n // world) // config.batch_size
    if n // world < config.batch_size:
        raise ValueError(
            f"train_data has {n} examples, fewer than one batch (batch_size="
            f"{config.batch_size}) for each of {world} process(es)"
        )

    if buffer is None:
        buffer = ReplayBuffer(
            shape, config.buffer_capacity, config.reinit_prob, config.value_range, device=device
        )
    elif buffer.shape != shape:
        raise ValueError(f"buffer holds examples of shape {buffer.shape}, the data {shape}")
    # Two generators: one on the model's device for MCMC and noise, one on the CPU for
    # shuffling, so that a run is reproducible and can be resumed exactly.
    sample_gen = torch.Generator(device=device).manual_seed(config.seed + 1000 * rank)
    buffer.to(device).generator = sample_gen
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.lr, betas=(config.beta1, config.beta2)
    )
    run = _Run(
        model=model,
        optimizer=optimizer,
        scheduler=torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.lr_gamma),
        buffer=buffer,
        config=config,
        history=History(),
        sample_gen=sample_gen,
        shuffle_gen=torch.Generator().manual_seed(config.seed + 1),
    )
    last_path = Path(checkpoint_dir) / "last.pt" if checkpoint_dir is not None else None
    if last_path is not None and resume and last_path.exists():
        _resume(run, last_path, device, rank)
    best_val = min((v for v in run.history.val_cdiv if not math.isnan(v)), default=math.inf)
    stable = copy.deepcopy(run.state())  # where the guard rolls back to

    writer = None
    if tensorboard_dir is not None and main_process:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        writer = SummaryWriter(str(tensorboard_dir))
    from tqdm.auto import tqdm

    progress = progress and main_process
    train_model = model
    if world > 1:
        device_ids = [device] if device.type == "cuda" else None
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def save_last() -> None:
        if last_path is not None and main_process:
            save_atomic(run.state(), last_path)

    epochs = tqdm(total=config.epochs, initial=run.progress.epoch, desc="epochs",
                  disable=not progress)  # fmt: skip
    while run.progress.epoch < config.epochs:
        model.train()
        bar = tqdm(total=iters, initial=run.progress.step, leave=False,
                   desc=f"epoch {run.progress.epoch + 1}", disable=not progress)  # fmt: skip
        diverged = None
        while run.progress.step < iters and diverged is None:
            at = run.progress
            started = time.perf_counter()
            if at.order.numel() < config.batch_size:  # reshuffle (drop_last semantics)
                at.order = torch.randperm(n, generator=run.shuffle_gen)[rank::world]
            index, at.order = at.order[: config.batch_size], at.order[config.batch_size :]
            real = train_images[index.to(device)]
            row = training_step(train_model, optimizer, buffer, real, config, sample_gen)
            diverged = guard.problem(row)
            if diverged is not None:
                break
            for key in _SUMS:
                at.sums[key] += row[key]
            at.step += 1
            at.seconds += time.perf_counter() - started
            global_step = at.epoch * iters + at.step
            if writer is not None:
                writer.add_scalar("train/loss", row["loss"], global_step)
            if callback is not None:
                callback(global_step, model)
            if checkpoint_every and at.step % checkpoint_every == 0 and at.step < iters:
                save_last()
            bar.update()
            bar.set_postfix(loss=f"{row['loss']:.4f}", cdiv=f"{row['cdiv']:.4f}")
        bar.close()
        if diverged is not None:
            _rollback(run, stable, guard, diverged)
            continue

        at = run.progress
        sums = at.sums
        if world > 1:  # every rank records the mean over all ranks
            totals = torch.tensor(list(sums.values()), dtype=torch.float64, device=device)
            torch.distributed.all_reduce(totals)
            sums = dict(zip(sums, (totals / world).tolist(), strict=True))
        lr = optimizer.param_groups[0]["lr"]
        run.scheduler.step()
        model.eval()
        noise_score, val_cdiv = _evaluate(model, val_images, config, shape)
        row = {k: v / iters for k, v in sums.items()}
        run.history.append(epoch=at.epoch + 1, val_cdiv=val_cdiv, noise_score=noise_score,
                           lr=lr, seconds=at.seconds, **row)  # fmt: skip
        run.progress = _Progress(epoch=at.epoch + 1, order=at.order, rollbacks=at.rollbacks)
        if writer is not None:
            for key, values in run.history.to_dict().items():
                if key not in ("epoch", "events"):
                    writer.add_scalar(f"epoch/{key}", values[-1], at.epoch + 1)
        epochs.update()
        epochs.set_postfix(loss=f"{row['loss']:.4f}", val_cdiv=f"{val_cdiv:.3f}")
        stable = copy.deepcopy(run.state())
        if checkpoint_dir is not None and main_process and val_cdiv < best_val:
            best_val = val_cdiv
            save_atomic(
                {"model": model.state_dict(), "config": config.to_dict(),
                 "epoch": at.epoch + 1, "val_cdiv": val_cdiv},
                Path(checkpoint_dir) / "best.pt",
            )  # fmt: skip
        if keep_epochs and checkpoint_dir is not None and main_process:
            save_atomic(
                {"model": model.state_dict(), "epoch": at.epoch + 1},
                Path(checkpoint_dir) / "epochs" / f"epoch_{at.epoch + 1:03d}.pt",
            )
        save_last()
    epochs.close()
    if writer is not None:
        writer.close()
    model.eval()
    return run.history
