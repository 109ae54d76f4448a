"""One iteration of the tutorial's algorithm: the loss, the negatives, the step.

Scores are the network's output ``f(x) = -E(x)``. One iteration:

1. real images ``x+`` get a little Gaussian noise (``input_noise``), clamped to range;
2. fake images ``x-`` come from the replay buffer after ``mcmc_steps`` Langevin steps;
3. loss = contrastive divergence ``mean f(x-) - mean f(x+)``
   + ``alpha * mean(f(x+)^2 + f(x-)^2)`` (keeps scores near 0: CD alone is blind
   to adding a constant to f);
4. one Adam step with the gradient norm clipped.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import checks
from ..sampling import ReplayBuffer
from ..utils import batched, scores
from .config import TrainConfig
from .history import STEP_KEYS


def _check_scores(
    real_score: torch.Tensor, fake_score: torch.Tensor, alpha: float, flatness: float = 0.0
) -> None:
    for name, score in (("real_score", real_score), ("fake_score", fake_score)):
        if checks.floating(name, score).dim() != 1:
            raise ValueError(f"{name} must hold one score per image, [B]; got {list(score.shape)}")
    checks.number("alpha", alpha, 0.0)
    checks.number("flatness", flatness, 0.0)


@checks.checked_by(_check_scores)
def contrastive_divergence_loss(
    real_score: torch.Tensor, fake_score: torch.Tensor, alpha: float, flatness: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The tutorial's loss from scores ``f = -E``: returns ``(loss, reg_loss, cdiv)``.

    ``cdiv = mean f(fake) - mean f(real)`` pushes real scores up and fake scores
    down; ``reg_loss = alpha * mean(f(real)^2 + f(fake)^2)`` keeps both near zero.

    With ``flatness > 0`` (the course's own experiment, not the tutorial's nor a published
    recipe), ``reg_loss`` also holds ``flatness * Var(f(real))`` over the batch: it asks all
    real images to score alike, which helps detecting corrupted digits by their score but
    forbids contrastive divergence to raise the classes its chains rarely reach (worse class
    coverage of samples). ``flatness=0`` (default) is the tutorial's loss.
    """
    reg_loss = alpha * (real_score.pow(2) + fake_score.pow(2)).mean()
    if flatness:
        reg_loss = reg_loss + flatness * real_score.var()
    cdiv = fake_score.mean() - real_score.mean()
    return reg_loss + cdiv, reg_loss, cdiv


def mean_score(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> float:
    """Mean score ``f(x) = -E(x)`` over ``images`` ``[N, ...]``, in batches on the model's
    device (eval mode, no gradients; the model's mode is restored)."""
    scores = batched(model, model, images, batch_size)
    # summed batch by batch in float64, as in the tutorial's logging
    return sum(chunk.sum().item() for chunk in scores.split(batch_size)) / images.shape[0]


def noisy_real(
    real: torch.Tensor, config: TrainConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Real images ``[B, ...]`` plus Gaussian noise of std ``config.input_noise``, clamped.

    As in the tutorial, the noise keeps the model from relying on perfectly clean inputs:
    without it, the score could single out real images by details no sample reproduces.
    """
    lo, hi = config.value_range
    noise = torch.randn(real.shape, device=real.device, generator=generator)
    return (real + config.input_noise * noise).clamp_(lo, hi)


def draw_negatives(
    model: nn.Module,
    buffer: ReplayBuffer,
    n: int,
    config: TrainConfig,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n`` fake images from ``buffer``, refreshed by Langevin on ``model``'s score.

    Uses the sampler settings of ``config`` (``mcmc_steps``, ``step_size``, ``mcmc_noise``,
    ``grad_clamp``, ``config.speed``) and ``generator`` (default: the buffer's own).
    Returns ``[n, ...]`` in ``config.value_range``.
    """
    return buffer.sample(
        model,
        n,
        steps=config.mcmc_steps,
        step_size=config.step_size,
        generator=generator,
        noise_std=config.mcmc_noise,
        grad_clamp=config.grad_clamp,
        speed=config.speed,
    )


def _check_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    real: torch.Tensor,
    config: TrainConfig,
    *args: object,
    **kwargs: object,
) -> None:
    checks.instance("model", model, nn.Module)
    checks.instance("optimizer", optimizer, torch.optim.Optimizer)
    checks.instance("buffer", buffer, ReplayBuffer)
    checks.instance("config", config, TrainConfig)
    if tuple(checks.floating("real", real).shape[1:]) != buffer.shape:
        raise ValueError(
            f"real holds images of shape {list(real.shape[1:])}, the buffer {list(buffer.shape)}"
        )


@checks.checked_by(_check_step)
def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    buffer: ReplayBuffer,
    real: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator | None = None,
    sampler_model: nn.Module | None = None,
) -> dict[str, float]:
    """One iteration of the tutorial's algorithm on a batch of real images ``[B, ...]``.

    Returns the batch's :data:`~ebm_course.training.history.STEP_KEYS` as floats: ``loss,
    reg_loss, cdiv, real_score, fake_score``. ``sampler_model`` is the network Langevin
    climbs (default ``model``; pass the bare module when ``model`` is a DDP wrapper).
    """
    real = noisy_real(real, config, generator)
    fake = draw_negatives(sampler_model or model, buffer, real.shape[0], config, generator)
    # one forward pass for both, as in the tutorial
    real_score, fake_score = scores(model, torch.cat([real, fake])).chunk(2)
    loss, reg_loss, cdiv = contrastive_divergence_loss(
        real_score, fake_score, config.alpha, config.flatness
    )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    values = (loss, reg_loss, cdiv, real_score.mean(), fake_score.mean())
    return {key: value.item() for key, value in zip(STEP_KEYS, values, strict=True)}
