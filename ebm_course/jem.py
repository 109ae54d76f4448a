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
import time

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .models import CNNEnergy
from .sampling import ReplayBuffer, _check_positive_int
from .training import (
    TrainConfig,
    TrainingDiverged,
    _as_images,
    _check_range,
    contrastive_divergence_loss,
    draw_negatives,
    noisy_real,
)

__all__ = [
    "DETECTORS",
    "JEM",
    "ClassConditionalScore",
    "detector_scores",
    "fit_jem",
    "jem_training_step",
]

#: Out-of-distribution scores of :func:`detector_scores` (higher = more in-distribution).
DETECTORS = ("marginal", "max_logit", "max_softmax")


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
        if not isinstance(model, JEM):
            raise ValueError(f"model must be a JEM, got {type(model).__name__}")
        self.model = model
        self.y = y.detach().clone() if isinstance(y, Tensor) else y

    def forward(self, x: Tensor) -> Tensor:
        return self.model.class_score(x, self.y)


def _as_labels(y: int | Tensor, batch: int, num_classes: int, what: str) -> Tensor:
    """``y`` as int64 ``[batch]`` (an int is repeated), checked to lie in ``0 .. C-1``."""
    if isinstance(y, bool) or not isinstance(y, int | Tensor):
        raise ValueError(f"{what} must be an int or an integer tensor, got {type(y).__name__}")
    if isinstance(y, int):
        y = torch.full((batch,), y, dtype=torch.int64)
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"{what} must hold integer class indices, got dtype {y.dtype}")
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
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        logits = torch.cat(
            [
                model.logits(images[i : i + batch_size].to(device)).float().cpu()
                for i in range(0, images.shape[0], batch_size)
            ]
        )
    finally:
        model.train(was_training)
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
    plain classifier step.

    Returns floats ``loss, ce, cdiv, reg_loss, real_score, fake_score, accuracy`` (the
    scores are marginal scores ``f = -E``; ``accuracy`` on this batch, before the step).
    """
    if tuple(labels.shape) != (images.shape[0],):
        raise ValueError(
            f"labels must have shape [{images.shape[0]}] (one per image), got {list(labels.shape)}"
        )
    batch = noisy_real(images, config, generator)
    generative = generative_weight > 0
    if generative:
        if buffer is None:
            raise ValueError("buffer must be a ReplayBuffer when generative_weight > 0")
        fake = draw_negatives(model, buffer, batch.shape[0], config)
        batch = torch.cat([batch, fake])  # one forward pass for real and fake images
    logits = model.logits(batch)
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
    values = {
        "loss": loss,
        "ce": ce,
        "cdiv": cdiv,
        "reg_loss": reg_loss,
        "real_score": real_score.mean(),
        "fake_score": fake_score.mean(),
        "accuracy": accuracy,
    }
    return {name: value.item() for name, value in values.items()}


def _check_images(images: Tensor, config: TrainConfig) -> None:
    _check_range(_as_images(images, "images"), config.value_range, "images")
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
) -> dict[str, list[float]]:
    """Train ``model`` as a JEM on labelled ``images`` ``[N, ...]`` and ``labels`` ``[N]``.

    Each iteration draws ``config.batch_size`` examples (reshuffling after each pass, the
    last partial batch dropped) and calls :func:`jem_training_step`. Adam with
    ``config.lr``, ``(config.beta1, config.beta2)``; the learning rate is multiplied by
    ``config.lr_gamma`` after every pass over the data. The sampler is ``config``'s
    (``mcmc_steps``, ``step_size``, ``mcmc_noise``, ``grad_clamp``, ``buffer_capacity``,
    ``reinit_prob``); ``config.alpha`` weighs the score regulariser. With the same seed and
    device the run is reproducible (on the CPU, bit for bit).

    Args:
        model: the :class:`JEM`, trained in place on its own device and left in eval mode.
        images: float images in ``config.value_range``, on any device.
        labels: int64 class indices in ``0 .. C-1``.
        config: hyper-parameters (default: the tutorial's :class:`TrainConfig`).
        iterations: optimiser steps; default ``config.epochs`` passes over the data.
        generative_weight: weight of the contrastive-divergence term (>= 0; 0 trains a plain
            classifier with the same schedule and draws no samples).
        buffer: the replay buffer to use (and keep); a new one by default.
        log_every: iterations averaged into one entry of the returned history.
        progress: show a ``tqdm`` progress bar.

    Returns:
        The history, a dict of equally long lists: ``iteration`` (the last one of each
        logged block), the means of :func:`jem_training_step`'s values over the block, and
        ``seconds`` (cumulative wall time).

    Raises:
        ValueError: bad images, labels or arguments (the message names which).
        TypeError: images that are not floating-point (as for :func:`~ebm_course.training.fit`).
        TrainingDiverged: the loss became NaN or Inf.
    """
    config = config or TrainConfig()
    if not isinstance(model, JEM):
        raise ValueError(f"model must be a JEM, got {type(model).__name__}")
    if iterations is not None:
        _check_positive_int("iterations", iterations)
    _check_positive_int("log_every", log_every)
    if not (isinstance(generative_weight, int | float) and math.isfinite(generative_weight)
            and generative_weight >= 0):  # fmt: skip
        raise ValueError(
            f"generative_weight must be a finite number >= 0, got {generative_weight!r}"
        )
    _check_images(images, config)
    device = next(model.parameters()).device
    with torch.no_grad():
        num_classes = model.logits(images[:1].to(device)).shape[1]
    if not isinstance(labels, Tensor):
        raise ValueError(f"labels must be an integer tensor [N], got {type(labels).__name__}")
    _as_labels(labels, images.shape[0], num_classes, "labels")
    images, labels = images.to(device), labels.to(device).long()
    n = images.shape[0]
    per_epoch = n // config.batch_size
    iterations = iterations or config.epochs * per_epoch

    generator = torch.Generator(device=device).manual_seed(config.seed)
    shuffle_gen = torch.Generator().manual_seed(config.seed + 1)
    if buffer is None:
        buffer = ReplayBuffer(images.shape[1:], config.buffer_capacity, config.reinit_prob,
                              config.value_range, device=device)  # fmt: skip
    buffer.to(device).generator = generator
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 betas=(config.beta1, config.beta2))  # fmt: skip
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=config.lr_gamma)

    from tqdm.auto import tqdm

    history: dict[str, list[float]] = {"iteration": [], "seconds": []}
    block: dict[str, float] = {}
    order = torch.empty(0, dtype=torch.long)
    started = time.perf_counter()
    model.train()
    for it in tqdm(range(1, iterations + 1), desc="JEM", disable=not progress):
        if order.numel() < config.batch_size:  # a new pass over the data
            if it > 1:
                scheduler.step()
            order = torch.randperm(n, generator=shuffle_gen)
        index, order = order[: config.batch_size].to(device), order[config.batch_size :]
        row = jem_training_step(model, optimizer, buffer, images[index], labels[index], config,
                                generator, generative_weight)  # fmt: skip
        if not math.isfinite(row["loss"]):
            raise TrainingDiverged(
                f"JEM loss became {row['loss']} at iteration {it}; try a lower lr or "
                "generative_weight, or a larger alpha"
            )
        for key, value in row.items():
            block[key] = block.get(key, 0.0) + value
        if it % log_every == 0 or it == iterations:
            count = log_every if it % log_every == 0 else it % log_every
            history["iteration"].append(it)
            history["seconds"].append(time.perf_counter() - started)
            for key, total in block.items():
                history.setdefault(key, []).append(total / count)
            block = {}
    model.eval()
    return history
