"""Joint Energy-based Models (JEM): a classifier's logits read as an energy model.

Grathwohl et al. (2020), "Your Classifier is Secretly an Energy Based Model and You Should
Treat it Like One" (ICLR; arXiv:1912.03263). A classifier maps an image ``x`` to logits
``l(x)`` ``[B, C]``. Read as scores (the package's sign convention, score = -energy):

- ``f(x, y) = l(x)[y] = -E(x, y)``: the joint model ``p(x, y) = exp(f(x, y)) / Z``;
- ``f(x) = logsumexp_y l(x)[y] = -E(x)``: its marginal ``p(x) = exp(f(x)) / Z``;
- ``p(y | x) = p(x, y) / p(x) = softmax(l(x))[y]``: the unknown ``Z`` cancels, so the
  ordinary softmax classifier is the conditional of the joint model.

Training maximises ``log p(y | x) + log p(x)``: cross-entropy on labelled images plus the
contrastive-divergence loss of :mod:`ebm_course.training` on the marginal score ``f(x)``,
with negative samples from the replay-buffer Langevin sampler of :mod:`ebm_course.sampling`.

Images are float32 ``[B, 1, 28, 28]`` with pixels in ``[-1, 1]``; labels int64 ``[B]`` in
``0 .. C-1``.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .models import CNNEnergy
from .sampling import ReplayBuffer
from .training import (
    DivergenceGuard,
    RunOptions,
    TrainConfig,
    Trainer,
    contrastive_divergence_loss,
    draw_negatives,
    noisy_real,
)
from .utils import batched, model_device

__all__ = [
    "DETECTORS",
    "JEM",
    "JEM_STEP_KEYS",
    "ClassConditionalScore",
    "JEMHistory",
    "JEMTrainer",
    "detector_scores",
    "fit_jem",
    "jem_training_step",
]

#: Out-of-distribution scores of :func:`detector_scores` (higher = more in-distribution).
DETECTORS = ("marginal", "max_logit", "max_softmax")
#: What :func:`jem_training_step` reports, in order.
JEM_STEP_KEYS = ("loss", "ce", "cdiv", "reg_loss", "real_score", "fake_score", "accuracy")


class JEM(nn.Module):
    """A classifier whose logits double as an energy model (score ``f = -E``).

    Args:
        net: maps images ``[B, ...]`` to logits ``[B, C]``; default
            ``CNNEnergy(hidden_features=32, out_dim=10)``, the course's CNN with 10 outputs.

    ``forward(x)`` returns the marginal score ``f(x) = logsumexp_y l(x)[y] = -E(x)``, shape
    ``[B]``, so a JEM works wherever an energy network does (:func:`~ebm_course.sampling.langevin`,
    :class:`~ebm_course.sampling.ReplayBuffer`, :func:`ebm_course.metrics.scores`).
    """

    def __init__(self, net: nn.Module | None = None) -> None:
        super().__init__()
        if net is not None and not isinstance(net, nn.Module):
            raise TypeError(f"net must be a torch.nn.Module, got {type(net).__name__}")
        self.net = net if net is not None else CNNEnergy(hidden_features=32, out_dim=10)

    def logits(self, x: Tensor) -> Tensor:
        """Class logits ``l(x)`` ``[B, C]``; ``l(x)[y] = f(x, y) = -E(x, y)``."""
        out = self.net(x)
        if out.dim() != 2 or out.shape[0] != x.shape[0] or out.shape[1] < 2:
            raise ValueError(
                f"JEM needs a network that returns logits [B, C] with C >= 2, got shape "
                f"{list(out.shape)} for a batch of {x.shape[0]}"
            )
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Marginal score ``f(x) = logsumexp_y l(x)[y] = -E(x)``: ``[B, ...]`` -> ``[B]``."""
        return self.logits(x).logsumexp(dim=1)

    def class_score(self, x: Tensor, y: int | Tensor) -> Tensor:
        """Class-conditional score ``f(x, y) = l(x)[y] = -E(x, y)``, shape ``[B]``.

        ``y`` is one class for the whole batch (an int) or one per image (int tensor ``[B]``).
        """
        logits = self.logits(x)
        labels = _as_labels(y, logits.shape[0], logits.shape[1], "y")
        return logits.gather(1, labels.to(logits.device)[:, None]).squeeze(1)

    def probabilities(self, x: Tensor) -> Tensor:
        """``p(y | x) = softmax(l(x))`` ``[B, C]``: the partition function ``Z`` cancels."""
        return self.logits(x).softmax(dim=1)

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """The most probable class ``argmax_y l(x)[y]``, int64 ``[B]`` (no gradients)."""
        return self.logits(x).argmax(dim=1)

    def conditional(self, y: int | Tensor) -> ClassConditionalScore:
        """A module whose ``forward(x)`` is ``f(x, y) = l(x)[y]``, for class-conditional
        sampling with :func:`~ebm_course.sampling.langevin` (it shares this model's weights)."""
        return ClassConditionalScore(self, y)


class ClassConditionalScore(nn.Module):
    """``x -> f(x, y) = l(x)[y] = -E(x, y)`` ``[B]`` for a fixed class ``y`` of a :class:`JEM`.

    Sampling its density ``exp(f(x, y)) / Z_y = p(x | y)`` draws images of class ``y``.
    ``y`` is an int (every image) or an int tensor ``[B]`` (one class per image, so that one
    Langevin run can sample all classes at once). The weights are the JEM's own, not a copy.
    """

    def __init__(self, model: JEM, y: int | Tensor) -> None:
        super().__init__()
        _check_jem(model)
        _check_label_kind(y, "y")
        self.model = model
        self.y = y.detach().clone() if isinstance(y, Tensor) else y

    def forward(self, x: Tensor) -> Tensor:
        return self.model.class_score(x, self.y)


def _check_jem(model: Any) -> None:
    if not isinstance(model, JEM):
        raise TypeError(f"model must be a JEM, got {type(model).__name__}")


def _check_label_kind(y: Any, what: str) -> None:
    """``y`` must be an int or a tensor of integer class indices (``TypeError`` otherwise)."""
    if isinstance(y, bool) or not isinstance(y, int | Tensor):
        raise TypeError(f"{what} must be an int or an integer tensor, got {type(y).__name__}")
    if isinstance(y, Tensor) and (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
        raise TypeError(f"{what} must hold integer class indices, got dtype {y.dtype}")


def _as_labels(y: int | Tensor, batch: int, num_classes: int, what: str) -> Tensor:
    """``y`` as int64 ``[batch]`` (an int is repeated), checked to lie in ``0 .. C-1``."""
    _check_label_kind(y, what)
    if isinstance(y, int):
        y = torch.full((batch,), y, dtype=torch.int64)
    if tuple(y.shape) != (batch,):
        raise ValueError(f"{what} must have shape [{batch}], got {list(y.shape)}")
    if batch and (y.min().item() < 0 or y.max().item() >= num_classes):
        raise ValueError(
            f"{what} must lie in 0..{num_classes - 1}, got values in "
            f"[{y.min().item()}, {y.max().item()}]"
        )
    return y.long()


@torch.no_grad()
def detector_scores(model: JEM, images: Tensor, batch_size: int = 500) -> dict[str, Tensor]:
    """Three out-of-distribution scores of ``images`` ``[N, ...]`` from one pass of logits.

    Returns float32 ``[N]`` CPU tensors keyed by :data:`DETECTORS`, each higher for images
    that look in-distribution (the same direction as :func:`ebm_course.metrics.auroc`):

    - ``"marginal"``: ``f(x) = logsumexp_y l(x)[y]``, the unnormalised ``log p(x)``;
    - ``"max_logit"``: ``max_y f(x, y)``, the best class-conditional score;
    - ``"max_softmax"``: ``max_y p(y | x)``, the classifier's confidence (Hendrycks &
      Gimpel 2017's baseline detector), which ignores ``Z`` and ``p(x)`` entirely.

    Runs in eval mode on the model's device; the model's train/eval mode is restored.
    """
    _check_jem(model)
    checks.finite_tensor("images", images, min_dim=2)
    logits = batched(model.logits, model, images, batch_size)
    return {
        "marginal": logits.logsumexp(dim=1),
        "max_logit": logits.max(dim=1).values,
        "max_softmax": logits.softmax(dim=1).max(dim=1).values,
    }


def jem_training_step(
    model: JEM,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer | None,
    images: Tensor,
    labels: Tensor,
    config: TrainConfig,
    generator: torch.Generator | None = None,
    generative_weight: float = 1.0,
) -> dict[str, float]:
    """One JEM iteration on a labelled batch: ``images`` ``[B, ...]``, ``labels`` ``[B]``.

    ``loss = cross_entropy(l(x+), y) + generative_weight * cd_loss``, where ``cd_loss`` is
    :func:`~ebm_course.training.contrastive_divergence_loss` on the marginal scores
    ``f(x) = logsumexp_y l(x)[y]`` of the real images ``x+`` (with ``config.input_noise``)
    and of ``B`` samples ``x-`` drawn from ``buffer`` with ``config``'s Langevin sampler.
    With ``generative_weight == 0`` no samples are drawn (``buffer`` may be ``None``): a
    plain classifier step. ``generator`` drives the input noise and the sampler (default:
    torch's global generator for the noise, the buffer's own for the sampler).

    Returns floats ``loss, ce, cdiv, reg_loss, real_score, fake_score, accuracy`` (the
    scores are marginal scores ``f = -E``; ``accuracy`` on this batch, before the step).
    """
    _check_step_arguments(model, images, labels, generative_weight)
    batch = noisy_real(images, config, generator)
    generative = generative_weight > 0
    if generative:
        if buffer is None:
            raise ValueError("buffer must be a ReplayBuffer when generative_weight > 0")
        fake = draw_negatives(model, buffer, batch.shape[0], config, generator)
        batch = torch.cat([batch, fake])  # one forward pass for real and fake images
    logits = model.logits(batch)
    _as_labels(labels, images.shape[0], logits.shape[1], "labels")
    real_logits = logits[: labels.shape[0]]
    ce = F.cross_entropy(real_logits, labels)
    real_score = real_logits.logsumexp(dim=1)
    if generative:
        fake_score = logits[labels.shape[0] :].logsumexp(dim=1)
        cd_loss, reg_loss, cdiv = contrastive_divergence_loss(
            real_score, fake_score, config.alpha, config.flatness
        )
        loss = ce + generative_weight * cd_loss
    else:  # report NaN for what was not computed
        fake_score = reg_loss = cdiv = torch.tensor(math.nan)
        loss = ce
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    accuracy = (real_logits.argmax(dim=1) == labels).float().mean()
    values = (loss, ce, cdiv, reg_loss, real_score.mean(), fake_score.mean(), accuracy)
    return {key: value.item() for key, value in zip(JEM_STEP_KEYS, values, strict=True)}


def _check_step_arguments(
    model: JEM, images: Tensor, labels: Tensor, generative_weight: float
) -> None:
    _check_jem(model)
    checks.finite_tensor("images", images, min_dim=2)
    _check_label_kind(labels, "labels")
    if isinstance(labels, int) or tuple(labels.shape) != (images.shape[0],):
        got = list(labels.shape) if isinstance(labels, Tensor) else "an int"
        raise ValueError(f"labels must have shape [{images.shape[0]}] (one per image), got {got}")
    checks.number("generative_weight", generative_weight, 0.0)


class JEMHistory(dict):
    """``fit_jem``'s record: a dict of equally long lists (``iteration``, ``seconds`` and the
    means of :data:`JEM_STEP_KEYS` over each block of ``log_every`` iterations), plus the
    divergence guard's rollbacks in ``events``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[dict] = []

    def to_dict(self) -> dict[str, Any]:
        return {**{k: list(v) for k, v in self.items()}, "events": list(self.events)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> JEMHistory:
        history = cls({k: list(v) for k, v in values.items() if k != "events"})
        history.events = list(values.get("events", []))
        return history


class JEMTrainer(Trainer):
    """The shared :class:`~ebm_course.training.Trainer` loop on :func:`jem_training_step`.

    An epoch is one pass over the labelled data; ``iterations`` (if given) cuts the last one
    short. The history logs block means every ``log_every`` iterations (and at the end).
    """

    kind, format, step_keys = "fit_jem", "ebm_course.fit_jem/1", JEM_STEP_KEYS

    def __init__(
        self,
        model: JEM,
        images: Tensor,
        labels: Tensor,
        config: TrainConfig,
        options: RunOptions,
        *,
        iterations: int | None,
        generative_weight: float,
        log_every: int,
    ) -> None:
        super().__init__(model, images, config, options)
        self.labels = labels.to(self.device).long()
        self.total = iterations or config.epochs * self.iters
        self.generative_weight, self.log_every = generative_weight, log_every
        self.block: dict[str, float] = {}  # sums of the rows since the last log entry
        self.block_rows = 0
        self.started = time.perf_counter()

    @property
    def epochs(self) -> int:
        return -(-self.total // self.iters)  # ceil: the last pass may be cut short

    def iters_in_epoch(self, epoch: int) -> int:
        return min(self.iters, self.total - epoch * self.iters)

    def finished(self) -> bool:
        return self.progress.epoch * self.iters + self.progress.step >= self.total

    def end_epoch(self) -> str | None:
        if self.progress.step == self.iters:
            return super().end_epoch()
        # the last pass, cut short: saved mid-pass, so that a later call asking for more
        # iterations carries on from here
        problem = self.guard.state_problem(self.model)
        if problem is None:
            self.save()
        return problem

    def new_history(self) -> JEMHistory:
        return JEMHistory(iteration=[], seconds=[])

    def step(self, batch: Tensor) -> dict[str, float]:
        return jem_training_step(
            self.train_model,
            self.optimizer,
            self.buffer,
            self.images[batch],
            self.labels[batch],
            self.config,
            self.sample_gen,
            self.generative_weight,
        )

    def guarded(self, row: dict[str, float]) -> dict[str, float]:
        # without the generative term, nothing but the classifier's loss is computed
        keys = ("loss", "real_score", "fake_score") if self.generative_weight else ("loss",)
        return {key: value for key, value in row.items() if key in keys}

    def record(self, row: dict[str, float], seconds: float) -> None:
        super().record(row, seconds)
        for key, value in row.items():
            self.block[key] = self.block.get(key, 0.0) + value
        self.block_rows += 1
        done = self.progress.epoch * self.iters + self.progress.step
        if done % self.log_every == 0 or done == self.total:
            self.history["iteration"].append(done)
            self.history["seconds"].append(time.perf_counter() - self.started)
            for key, total in self.block.items():
                self.history.setdefault(key, []).append(total / self.block_rows)
            self.block, self.block_rows = {}, 0

    def state(self) -> dict[str, Any]:
        return {**super().state(), "block": dict(self.block), "block_rows": self.block_rows}

    def load(self, state: dict[str, Any], rng: bool = True) -> None:
        super().load(state, rng)
        self.block, self.block_rows = dict(state["block"]), int(state["block_rows"])


def _check_images(images: Tensor, config: TrainConfig) -> None:
    checks.in_range("images", checks.as_images("images", images), config.value_range)
    if images.shape[0] < config.batch_size:
        raise ValueError(
            f"images holds {images.shape[0]} examples, fewer than one batch "
            f"(config.batch_size={config.batch_size})"
        )


def fit_jem(
    model: JEM,
    images: Tensor,
    labels: Tensor,
    config: TrainConfig | None = None,
    *,
    iterations: int | None = None,
    generative_weight: float = 1.0,
    buffer: ReplayBuffer | None = None,
    log_every: int = 10,
    progress: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    resume: bool = True,
    guard: DivergenceGuard | None = None,
) -> JEMHistory:
    """Train ``model`` as a JEM on labelled ``images`` ``[N, ...]`` and ``labels`` ``[N]``.

    The loop is :class:`~ebm_course.training.Trainer`'s, as for
    :func:`~ebm_course.training.fit`: passes over the data in shuffled batches of
    ``config.batch_size`` (``drop_last``), :func:`jem_training_step` on each, Adam with
    ``config.lr`` and ``(beta1, beta2)``, the learning rate times ``config.lr_gamma`` after
    every pass, the divergence guard with rollbacks, and (with ``checkpoint_dir``) an atomic
    ``last.pt`` after every pass that a later call resumes from, bit for bit on the CPU.

    Args:
        model: the :class:`JEM`, trained in place on its own device and left in eval mode.
        images: float images in ``config.value_range``, on any device.
        labels: int64 class indices in ``0 .. C-1``.
        config: hyper-parameters (default: the tutorial's :class:`TrainConfig`); the sampler
            is ``config``'s, ``config.alpha`` weighs the score regulariser.
        iterations: optimiser steps; default ``config.epochs`` passes over the data.
        generative_weight: weight of the contrastive-divergence term (>= 0; 0 trains a plain
            classifier with the same schedule and draws no samples).
        buffer: the replay buffer to use (and keep); a new one by default.
        log_every: iterations averaged into one entry of the returned history.
        progress: show ``tqdm`` progress bars.
        checkpoint_dir, resume, guard: as for :func:`~ebm_course.training.fit`.

    Returns:
        The :class:`JEMHistory`: ``iteration`` (the last one of each logged block), the
        block means of :data:`JEM_STEP_KEYS`, ``seconds`` (cumulative wall time).
    """
    config = config if config is not None else TrainConfig()
    _check_jem_arguments(model, images, labels, config, iterations, generative_weight, log_every)
    options = RunOptions(
        buffer=buffer, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume, guard=guard
    )
    trainer = JEMTrainer(
        model,
        images,
        labels,
        config,
        options,
        iterations=iterations,
        generative_weight=generative_weight,
        log_every=log_every,
    )
    return trainer.fit()


def _check_jem_arguments(
    model: JEM,
    images: Tensor,
    labels: Tensor,
    config: TrainConfig,
    iterations: int | None,
    generative_weight: float,
    log_every: int,
) -> None:
    _check_jem(model)
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if iterations is not None:
        checks.positive_int("iterations", iterations)
    checks.positive_int("log_every", log_every)
    checks.number("generative_weight", generative_weight, 0.0)
    _check_images(images, config)
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be an integer tensor [N], got {type(labels).__name__}")
    _check_label_kind(labels, "labels")
    with torch.no_grad():
        num_classes = model.logits(images[:1].to(model_device(model))).shape[1]
    _as_labels(labels, images.shape[0], num_classes, "labels")
