r"""Noise-conditional score models (NCSN): the bridge from energy models to diffusion.

Song & Ermon (2019, 2020). One network learns the *score function*
:math:`\nabla_x \log p_\sigma(x)` of the data blurred by Gaussian noise,
:math:`p_\sigma = p * \mathcal N(0, \sigma^2 I)`, at every level of a geometric ladder
:math:`\sigma_1 > \dots > \sigma_L` (:func:`noise_levels`). At large :math:`\sigma`,
:math:`p_\sigma` is smooth and fills space, so its score is easy to learn everywhere and
Langevin chains mix between modes; at small :math:`\sigma`, :math:`p_\sigma \approx p` but
chains cannot cross the empty space between modes. :func:`annealed_langevin` walks down
the ladder so that each level starts where the previous one has mixed.

Sign convention (as everywhere in :mod:`ebm_course`): an energy network returns the score
``f = -E``, a density ``q = exp(f) / Z``; the *score function* is ``grad_x log q``. A
noise-conditional model is called as ``model(x, sigma)``, ``x`` ``[B, ...]`` and ``sigma``
``[B]`` (one level per example), and is either a **direct score model**, returning
:math:`s(x, \sigma)` of ``x``'s shape, or an **energy model** (attribute ``energy = True``),
returning :math:`f(x, \sigma)` ``[B]`` with :math:`s = \nabla_x f`. :func:`score_function`
turns either into the score; a plain function ``score(x, sigma)`` counts as a direct
model, so the sampler runs on analytic scores too. :class:`ScoreNet` offers both views.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import checks
from ._score_net import SIGMA_DATA, ScoreNet, _expand
from .utils import evaluation_mode

__all__ = [
    "ScoreNet",
    "OODScore",
    "noise_levels",
    "karras_levels",
    "score_function",
    "multi_level_dsm_loss",
    "lognormal_dsm_loss",
    "SIGMA_DATA",
    "annealed_langevin",
    "annealed_langevin_steps",
    "fit_score_model",
    "ema_copy",
]

ScoreModel = nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Sigmas = torch.Tensor | Sequence[float]
DSMLoss = Callable[[nn.Module, torch.Tensor, torch.Generator | None], torch.Tensor]


def check_batch(x: torch.Tensor, name: str = "x") -> None:
    """Raise ValueError unless ``x`` is a non-empty floating-point batch ``[B, ...]``."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[0] == 0:
        got = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a non-empty batch [B, ...] (at least 2-D), got {got}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must hold floating-point values, got {x.dtype}")


def as_sigmas(sigmas: Sigmas, like: torch.Tensor, decreasing: bool = False) -> torch.Tensor:
    """``sigmas`` as a checked 1-D tensor ``[L]`` on ``like``'s device and dtype."""
    try:
        values = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"sigmas must be a 1-D sequence of numbers, got {sigmas!r}") from err
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"sigmas must be a non-empty 1-D sequence, got shape {list(values.shape)}")
    if not (torch.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"sigmas must be finite and > 0, got {values.tolist()}")
    if decreasing and (values[1:] >= values[:-1]).any():
        raise ValueError(f"sigmas must decrease strictly (largest first), got {values.tolist()}")
    return values.to(device=like.device, dtype=like.dtype)


def noise_levels(sigma_max: float, sigma_min: float, n: int) -> torch.Tensor:
    r"""A geometric ladder of noise levels, largest first: float32 ``[n]``.

    :math:`\sigma_i = \sigma_\max\,(\sigma_\min / \sigma_\max)^{(i-1)/(n-1)}`, so
    consecutive levels have the same ratio (Song & Ermon 2019). Song & Ermon (2020)
    advise :math:`\sigma_\max` about the largest distance between two training examples
    (so chains can travel between any two) and :math:`\sigma_\min` below what the eye can
    see (the last level's samples are the output).

    Args:
        sigma_max: the largest level, ``>= sigma_min``.
        sigma_min: the smallest level, ``> 0``.
        n: number of levels, ``>= 1`` (``n = 1`` needs ``sigma_max == sigma_min``).
    """
    checks.number("sigma_max", sigma_max, 0, open_low=True)
    checks.number("sigma_min", sigma_min, 0, open_low=True)
    checks.positive_int("n", n)
    if sigma_min > sigma_max or (n == 1 and sigma_min != sigma_max):
        raise ValueError(
            f"need sigma_max >= sigma_min (equal when n = 1), got sigma_max={sigma_max}, "
            f"sigma_min={sigma_min}, n={n}"
        )
    steps = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    return (math.log(sigma_max) + steps * math.log(sigma_min / sigma_max)).exp().float()


def karras_levels(sigma_max: float, sigma_min: float, n: int, rho: float = 7.0) -> torch.Tensor:
    r"""The sampling schedule of Karras et al. (2022, eq. 5), largest first: float32 ``[n]``.

    :math:`\sigma_i = \big(\sigma_\max^{1/\rho} + \tfrac{i-1}{n-1}(\sigma_\min^{1/\rho}
    - \sigma_\max^{1/\rho})\big)^\rho`: equal steps in :math:`\sigma^{1/\rho}`. With
    :math:`\rho = 7` the steps crowd towards small :math:`\sigma`, where the details of an
    image are decided and a sampler's error shows most; :math:`\rho \to \infty` gives
    :func:`noise_levels`' geometric ladder. Arguments as :func:`noise_levels`; ``rho > 0``.
    """
    noise_levels(sigma_max, sigma_min, n)  # the same checks
    checks.number("rho", rho, 0, open_low=True)
    steps = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    top, bottom = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return (top + steps * (bottom - top)).pow(rho).float()


def score_function(
    model: ScoreModel, x: torch.Tensor, sigma: torch.Tensor, create_graph: bool = False
) -> torch.Tensor:
    r"""The model's score function :math:`s(x, \sigma) \approx \nabla_x \log p_\sigma(x)`:
    ``x`` ``[B, ...]`` and ``sigma`` ``[B]`` -> ``[B, ...]``.

    A direct model's output is returned (checked to have ``x``'s shape); an energy model's
    ``f(x, sigma)`` ``[B]`` is differentiated, :math:`s = \nabla_x f`, also under
    ``torch.no_grad()``; ``create_graph`` keeps that gradient's graph, to train on it.
    """
    if not getattr(model, "energy", False):
        out = model(x, sigma)
        if out.shape != x.shape:
            raise ValueError(
                f"a direct score model must return x's shape {list(x.shape)}, got "
                f"{list(out.shape)} (an energy model returning [B] needs .energy = True)"
            )
        return out
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        f = model(x, sigma)
        if tuple(f.shape) != (x.shape[0],):
            raise ValueError(
                f"an energy model must return [B] = [{x.shape[0]}], got {list(f.shape)}"
            )
        (grad,) = torch.autograd.grad(f.sum(), x, create_graph=create_graph)
    return grad


def multi_level_dsm_loss(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: Sigmas,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching at a random noise level per example (Song & Ermon 2019).

    Each example draws a level :math:`\sigma` uniformly from ``sigmas`` and noise
    :math:`\varepsilon \sim \mathcal N(0, I)`; with :math:`\tilde x = x + \sigma\varepsilon`
    and the weighting :math:`\lambda(\sigma) = \sigma^2`,

    .. math::

        \mathcal L = \frac1L \sum_{i=1}^L \frac{\sigma_i^2}{2}\,\mathbb E\,
        \Big\| s(\tilde x, \sigma_i) + \frac{\tilde x - x}{\sigma_i^2} \Big\|^2
        = \frac12\,\mathbb E \big\| \sigma\, s(\tilde x, \sigma) + \varepsilon \big\|^2 .

    Its minimiser is the score of the noised data at every level,
    :math:`s(\cdot, \sigma_i) = \nabla \log p_{\sigma_i}`; the weighting makes every
    level's loss of order ``dim / 2``, so no level dominates.

    Args:
        model: a noise-conditional score or energy model (see the module docs).
        x: clean data ``[B, ...]``.
        sigmas: the noise levels ``[L]``, all ``> 0``.
        generator: optional ``torch.Generator`` on ``x``'s device (levels and noise).

    Returns:
        The scalar loss (mean over the batch, summed over dimensions), differentiable
        with respect to the model's parameters.
    """
    check_batch(x)
    levels = as_sigmas(sigmas, x)
    index = torch.randint(levels.numel(), (x.shape[0],), generator=generator, device=x.device)
    return _dsm_per_example(model, x, levels[index], generator).mean()


def lognormal_dsm_loss(
    model: ScoreModel,
    x: torch.Tensor,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching as Karras et al. (2022) train it: levels from a log-normal.

    Each example draws :math:`\ln\sigma \sim \mathcal N(P_\text{mean}, P_\text{std}^2)`,
    a continuum of levels that puts most of the effort where denoising is neither trivial
    nor hopeless (about :math:`0.1 < \sigma < 1` for pixels in ``[-1, 1]``), and the loss of
    :func:`multi_level_dsm_loss` is weighted by :math:`1 + \sigma^2/\sigma_d^2`
    (:math:`\sigma_d` = :data:`SIGMA_DATA`):

    .. math::

        \mathcal L = \frac12\,\mathbb E\,\Big(1 + \frac{\sigma^2}{\sigma_d^2}\Big)
        \big\| \sigma\, s(\tilde x, \sigma) + \varepsilon \big\|^2 .

    That weight is Karras et al.'s :math:`\lambda(\sigma)` on the denoised image's error,
    :math:`\|D - x\|^2`; with :class:`ScoreNet`'s ``"edm"`` preconditioning it makes the
    loss :math:`\tfrac12\|F - F_\text{target}\|^2`, the same scale at every level. The
    minimiser is still the score of the noised data at every level.

    Args:
        model, x, generator: as :func:`multi_level_dsm_loss`.
        p_mean, p_std: mean and standard deviation of :math:`\ln\sigma`; ``p_std > 0``.
    """
    check_batch(x)
    checks.number("p_mean", p_mean, -20.0, 20.0)
    checks.number("p_std", p_std, 0, 20.0, open_low=True)
    normal = torch.randn(x.shape[0], generator=generator, device=x.device, dtype=x.dtype)
    sigma = (p_mean + p_std * normal).exp()
    weight = 1 + sigma**2 / SIGMA_DATA**2
    return (weight * _dsm_per_example(model, x, sigma, generator)).mean()


def _dsm_per_example(
    model: ScoreModel, x: torch.Tensor, sigma: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    r""":math:`\tfrac12\|\sigma s(x + \sigma\varepsilon, \sigma) + \varepsilon\|^2` per
    example: ``x`` ``[B, ...]``, ``sigma`` ``[B]`` -> ``[B]``."""
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    score = score_function(model, x + _expand(sigma, x) * noise, sigma, create_graph=True)
    return 0.5 * (_expand(sigma, x) * score + noise).flatten(1).pow(2).sum(dim=1)


def annealed_langevin(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: Sigmas,
    steps_per_level: int,
    step_lr: float,
    generator: torch.Generator | None = None,
    denoise: bool = True,
    return_levels: bool = False,
) -> torch.Tensor:
    r"""Annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1).

    For each level :math:`\sigma_i`, largest first, take ``steps_per_level`` Langevin steps
    on :math:`p_{\sigma_i}` with step :math:`\alpha_i = \epsilon\, \sigma_i^2 / \sigma_L^2`
    (:math:`\epsilon` = ``step_lr``, the step at the last level):

    .. math::

        x \leftarrow x + \frac{\alpha_i}{2}\, s(x, \sigma_i) + \sqrt{\alpha_i}\, z,
        \qquad z \sim \mathcal N(0, I).

    The step scales with :math:`\sigma_i^2`, the variance the noise adds at that level, so
    every level moves the same fraction of its width: for a Gaussian of variance
    :math:`v` a step contracts by :math:`1 - \alpha / 2v`, so ``step_lr`` about
    :math:`\sigma_L^2` mixes fast and from :math:`4\sigma_L^2` on the chains diverge.
    With ``denoise``, a last step :math:`x + \sigma_L^2 s(x, \sigma_L)` removes the noise
    of the last level (Tweedie's posterior mean; Song & Ermon 2020, Jolicoeur-Martineau et
    al. 2021). Samples are not clamped. Modules run in eval mode (restored afterwards)
    and no parameter gradients are computed.

    Args:
        model: a score or energy model, or a plain function ``score(x, sigma)`` returning
            ``x``'s shape (``sigma`` comes as ``[B]``).
        x: starting points ``[B, ...]`` (e.g. uniform noise in ``[-1, 1]``); not modified.
        sigmas: levels ``[L]``, strictly decreasing, ``> 0``; a single level is plain
            Langevin dynamics on that level.
        steps_per_level: Langevin steps per level, ``>= 1``.
        step_lr: :math:`\epsilon`, ``> 0``.
        generator: optional ``torch.Generator`` on ``x``'s device for the noise.
        denoise: finish with the denoising step.
        return_levels: return ``[L, B, ...]``, the samples after each level (the last
            one denoised when ``denoise``), instead of the final ``[B, ...]``.
    """
    check_batch(x)
    checks.positive_int("steps_per_level", steps_per_level)
    checks.number("step_lr", step_lr, 0, open_low=True)
    levels = as_sigmas(sigmas, x, decreasing=True)
    is_module = isinstance(model, nn.Module)
    with evaluation_mode(model) if is_module else contextlib.nullcontext(), torch.no_grad():
        trace = annealed_langevin_steps(
            model, x.detach().clone(), levels, steps_per_level, step_lr, generator, denoise
        )
    return torch.stack(trace) if return_levels else trace[-1]


def annealed_langevin_steps(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    steps_per_level: int,
    step_lr: float,
    generator: torch.Generator | None = None,
    denoise: bool = True,
) -> list[torch.Tensor]:
    """The algorithm of :func:`annealed_langevin`, without its checks: updates ``x`` in
    place and returns the samples after each level (the last one denoised)."""
    trace = []
    for sigma in sigmas:
        alpha = step_lr * float(sigma / sigmas[-1]) ** 2  # the same relative step per level
        per_example = sigma.expand(x.shape[0])
        for _ in range(steps_per_level):
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x += 0.5 * alpha * score_function(model, x, per_example)
            x += math.sqrt(alpha) * z
        trace.append(x.clone())
    if denoise:  # Tweedie: the posterior mean of the clean image given the last level
        x += sigmas[-1] ** 2 * score_function(model, x, sigmas[-1].expand(x.shape[0]))
        trace[-1] = x.clone()
    return trace


class OODScore(nn.Module):
    r"""A noise-conditional model at one fixed level as a plain score ``[B]``, for OOD.

    ``OODScore(model, sigma)(x)`` is ``f(x, sigma)`` for an energy model and
    :math:`-\tfrac12 \sigma^2 \|s(x, \sigma)\|^2` for a direct one; for :class:`ScoreNet`
    both are :math:`-\tfrac12\|\hat\varepsilon(x, \sigma)\|^2`, how much noise the model
    sees in ``x``. Higher means more typical: at a small ``sigma`` a clean digit looks
    noise-free. ``x`` ``[B, ...]`` -> ``[B]``; plugs into :func:`ebm_course.metrics.ood_table`.
    """

    def __init__(self, model: nn.Module, sigma: float) -> None:
        super().__init__()
        checks.number("sigma", sigma, 0, open_low=True)
        self.model, self.sigma = model, float(sigma)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sigma = torch.full((x.shape[0],), self.sigma, dtype=x.dtype, device=x.device)
        if getattr(self.model, "energy", False):
            return self.model(x, sigma)
        return -0.5 * self.sigma**2 * self.model(x, sigma).flatten(1).pow(2).sum(dim=1)


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for target, source in zip(ema.parameters(), model.parameters(), strict=True):
        target.lerp_(source, 1.0 - decay)
    for target, source in zip(ema.buffers(), model.buffers(), strict=True):
        target.copy_(source)


def fit_score_model(
    model: nn.Module,
    images: torch.Tensor,
    sigmas: Sigmas | None,
    *,
    loss: DSMLoss | None = None,
    steps: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    ema: nn.Module | None = None,
    ema_decay: float = 0.999,
    generator: torch.Generator | None = None,
    progress: bool = False,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` in place by Adam on a denoising score-matching loss; returns the
    history. The loss is :func:`multi_level_dsm_loss` on ``sigmas``, or ``loss``.

    Each step draws ``batch_size`` rows of ``images`` uniformly with replacement. Song &
    Ermon (2020) sample from an exponential moving average (EMA) of the weights: pass ``ema``
    (from :func:`ema_copy`), updated after every step by ``ema_decay``.

    Args:
        model: a noise-conditional score or energy model (e.g. :class:`ScoreNet`).
        images: training data ``[N, ...]`` (moved to the model's device).
        sigmas: the noise levels ``[L]`` (``None`` when ``loss`` is given).
        loss: instead, a scalar ``loss(model, batch, generator=generator)``, e.g.
            ``functools.partial(lognormal_dsm_loss, p_mean=-1.2, p_std=1.2)``.
        steps, batch_size: Adam steps (``>= 1``), examples per step (``1 <= batch_size <= N``).
        lr, optimizer: Adam's learning rate (``> 0``), or an optimizer to use (to resume one).
        ema, ema_decay: optional EMA copy of ``model``, updated in place; decay in ``[0, 1)``.
        generator: optional CPU ``torch.Generator`` for the batches (the noise generator
            on the model's device is seeded from it).
        progress, callback: a ``tqdm`` bar; ``callback(step, model)`` after every step.

    Returns ``{"step", "loss", "seconds"}``, one entry per step (seconds since the start).
    """
    loss = _checked_loss(images, sigmas, steps, batch_size, lr, ema_decay, loss)
    device = next(model.parameters()).device
    images = images.to(device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    noise_generator = torch.Generator(device=device).manual_seed(seed)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict[str, list[float]] = {"step": [], "loss": [], "seconds": []}
    start = time.perf_counter()
    model.train()
    for step in tqdm(range(1, steps + 1), desc="score model", disable=not progress):
        index = torch.randint(images.shape[0], (batch_size,), generator=generator)
        value = _train_step(model, optimizer, loss, images[index.to(device)], noise_generator)
        if ema is not None:
            _update_ema(ema, model, ema_decay)
        if callback is not None:
            callback(step, model)
        for key, entry in (("step", step), ("loss", value)):
            history[key].append(entry)
        history["seconds"].append(time.perf_counter() - start)
    model.eval()
    return history


def _train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: DSMLoss,
    batch: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """One Adam step on ``loss_fn``; returns the loss."""
    loss = loss_fn(model, batch, generator=generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def _checked_loss(
    images: torch.Tensor,
    sigmas: Sigmas | None,
    steps: int,
    batch_size: int,
    lr: float,
    decay: float,
    loss: DSMLoss | None,
) -> DSMLoss:
    """Check :func:`fit_score_model`'s arguments; return the loss it trains on."""
    check_batch(images, "images")
    checks.positive_int("steps", steps)
    checks.positive_int("batch_size", batch_size)
    checks.number("lr", lr, 0, open_low=True)
    if batch_size > images.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {images.shape[0]} images")
    checks.number("ema_decay", decay, 0, 1, open_high=True)
    if loss is None:
        if sigmas is None:
            raise ValueError("fit_score_model needs sigmas (or a loss)")
        as_sigmas(sigmas, images)
        return functools.partial(multi_level_dsm_loss, sigmas=sigmas)
    if not callable(loss):
        raise ValueError(f"loss must be callable as loss(model, batch, generator), got {loss!r}")
    return loss


def ema_copy(model: nn.Module) -> nn.Module:
    """A frozen deep copy of ``model`` in eval mode, to pass as ``fit_score_model(ema=...)``."""
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    return ema
