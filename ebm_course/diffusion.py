r"""Sampling a noise-conditional score model as a diffusion (Song et al. 2021).

Blurring data with Gaussian noise of growing :math:`\sigma` is a *variance-exploding*
diffusion: :math:`x_\sigma = x + \sigma\varepsilon`. Song et al. (2021) show that it runs
backwards, from :math:`\mathcal N(0, \sigma_\max^2 I)` to the data, if the drift is the
score :math:`\nabla_x \log p_\sigma`, the very function a noise-conditional score model
(:mod:`ebm_course.score_models`) learns. Two ways to take the reverse steps on a ladder
:math:`\sigma_1 > \dots > \sigma_L` (then :math:`\sigma_{L+1} = 0`):

- :func:`reverse_diffusion` (stochastic, the *reverse-diffusion predictor*; for this
  diffusion the same as DDPM's ancestral step, Ho et al. 2020):
  :math:`x \leftarrow x + (\sigma_i^2 - \sigma_{i+1}^2)\, s(x, \sigma_i) + \sqrt{\sigma_i^2
  - \sigma_{i+1}^2}\, z`, no noise in the last step;
- ``ode=True`` (deterministic, the *probability-flow ODE* by Euler steps, as DDIM):
  :math:`x \leftarrow D + \tfrac{\sigma_{i+1}}{\sigma_i}(x - D)` with the denoiser
  :math:`D = x + \sigma_i^2 s(x, \sigma_i)` (Tweedie's posterior mean).

- :func:`heun_sampler` (Karras et al. 2022, Algorithm 2): the probability-flow ODE
  :math:`dx/d\sigma = -\sigma\, s(x, \sigma)` by Heun's second-order steps, optionally
  with some noise added back before each step (``churn``); with a schedule that crowds
  towards small :math:`\sigma` (:func:`~ebm_course.score_models.karras_levels`) a few
  dozen network calls give what the first-order steps need hundreds for.

With ``snr > 0`` each stochastic step is followed by a Langevin *corrector* step at the new
level (:func:`corrector_step`): the *predictor-corrector* sampler of Song et al. (2021), which
fixes part of the error of the coarse steps at the price of a second network call per level.

Each level costs one score evaluation, where :func:`~ebm_course.score_models.annealed_langevin`
spends several Langevin steps: the step sizes come from the noise ladder itself, so there
is no step size to tune. Sign convention as in :mod:`ebm_course.score_models`.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from . import checks
from .score_models import ScoreModel, Sigmas, as_sigmas, check_batch, score_function
from .utils import evaluation_mode

__all__ = [
    "corrector_step",
    "heun_sampler",
    "heun_steps",
    "prior_noise",
    "reverse_diffusion",
    "reverse_diffusion_steps",
]

MAX_CHURN = 2**0.5 - 1  # Karras et al.: more would add more noise than the level holds


def prior_noise(
    shape: tuple[int, ...],
    sigma_max: float,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    r"""Starting points of the reverse diffusion: :math:`\sigma_\max\, z`,
    :math:`z \sim \mathcal N(0, I)`, float32 of ``shape``, on ``device``.

    At :math:`\sigma_\max` the blurred data is close to this Gaussian when
    :math:`\sigma_\max` is about the largest distance between two training images.
    """
    checks.number("sigma_max", sigma_max, 0, open_low=True)
    return sigma_max * torch.randn(shape, generator=generator, device=device)


def reverse_diffusion(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: Sigmas,
    generator: torch.Generator | None = None,
    ode: bool = False,
    snr: float = 0.0,
) -> torch.Tensor:
    r"""Run the diffusion backwards down ``sigmas``: one step per level (module docs).

    Args:
        model: a score or energy model, or a function ``score(x, sigma)``
            (see :mod:`ebm_course.score_models`).
        x: starting points ``[B, ...]``, usually :func:`prior_noise` at ``sigmas[0]``;
            not modified.
        sigmas: levels ``[L]``, strictly decreasing, ``> 0``.
        generator: optional ``torch.Generator`` on ``x``'s device for the noise.
        ode: take the deterministic probability-flow steps instead.
        snr: with ``snr > 0`` (and not ``ode``), follow every stochastic step by one
            :func:`corrector_step` at the new level: the *predictor-corrector* sampler of
            Song et al. (2021), two network calls per level (they use ``snr = 0.16``).

    Returns:
        Samples ``[B, ...]`` (the last step lands on the denoiser's output; not clamped).
        Modules run in eval mode (restored afterwards), without parameter gradients.
    """
    check_batch(x)
    levels = as_sigmas(sigmas, x, decreasing=True)
    checks.boolean("ode", ode)
    checks.number("snr", snr, 0)
    is_module = isinstance(model, nn.Module)
    with evaluation_mode(model) if is_module else contextlib.nullcontext(), torch.no_grad():
        return reverse_diffusion_steps(model, x.detach().clone(), levels, generator, ode, snr)


def reverse_diffusion_steps(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator | None = None,
    ode: bool = False,
    snr: float = 0.0,
) -> torch.Tensor:
    """The algorithm of :func:`reverse_diffusion`, without its checks (updates ``x``)."""
    next_sigmas = torch.cat([sigmas[1:], sigmas.new_zeros(1)])
    for sigma, next_sigma in zip(sigmas, next_sigmas, strict=True):
        score = score_function(model, x, sigma.expand(x.shape[0]))
        if ode:  # Euler step of the probability-flow ODE, written with the denoiser
            denoised = x + sigma**2 * score
            x = denoised + (next_sigma / sigma) * (x - denoised)
        else:  # sample p(x at the next level | x at this level)
            variance = sigma**2 - next_sigma**2
            x = x + variance * score
            if next_sigma > 0:
                x = x + variance.sqrt() * _noise(x, generator)
                if snr > 0:  # the corrector: a Langevin step at the level just reached
                    x = corrector_step(model, x, next_sigma, snr, generator)
    return x


def heun_sampler(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: Sigmas,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Solve the probability-flow ODE down ``sigmas`` to 0 by Heun's method (Karras et al.
    2022, Algorithms 1 and 2): two network calls per level, one for the last.

    The ODE :math:`dx/d\sigma = -\sigma\, s(x, \sigma) = (x - D(x, \sigma))/\sigma`
    moves each point towards the denoiser's guess :math:`D`. An Euler step from
    :math:`\sigma_i` to :math:`\sigma_{i+1}` uses the slope at the start; Heun's step
    averages it with the slope where that Euler step lands, which cancels the error of
    the first order (no correction on the last step, to :math:`\sigma = 0`). With
    ``churn`` :math:`\gamma > 0`, each step first raises the level to
    :math:`\hat\sigma = (1 + \gamma)\sigma` by adding fresh noise, so the sampler forgets
    part of the errors made so far, as the stochastic samplers do.

    Args:
        model: a score or energy model, or a function ``score(x, sigma)``.
        x: starting points ``[B, ...]``, usually :func:`prior_noise` at ``sigmas[0]``;
            not modified.
        sigmas: levels ``[L]``, strictly decreasing, ``> 0`` (e.g.
            :func:`~ebm_course.score_models.karras_levels`).
        churn: :math:`\gamma`, in ``[0, sqrt(2) - 1]``.
        generator: optional ``torch.Generator`` on ``x``'s device (used when ``churn > 0``).

    Returns:
        Samples ``[B, ...]``, not clamped. Modules run in eval mode, without gradients.
    """
    check_batch(x)
    levels = as_sigmas(sigmas, x, decreasing=True)
    checks.number("churn", churn, 0, MAX_CHURN)
    is_module = isinstance(model, nn.Module)
    with evaluation_mode(model) if is_module else contextlib.nullcontext(), torch.no_grad():
        return heun_steps(model, x.detach().clone(), levels, churn, generator)


def heun_steps(
    model: ScoreModel,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    churn: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The algorithm of :func:`heun_sampler`, without its checks."""
    next_sigmas = torch.cat([sigmas[1:], sigmas.new_zeros(1)])
    for sigma, next_sigma in zip(sigmas, next_sigmas, strict=True):
        if churn > 0:  # back up to a higher level with fresh noise
            raised = sigma * (1 + churn)
            x = x + (raised**2 - sigma**2).sqrt() * _noise(x, generator)
            sigma = raised
        slope = -sigma * score_function(model, x, sigma.expand(x.shape[0]))
        euler = x + (next_sigma - sigma) * slope
        if next_sigma == 0:  # the last step lands on the denoiser's output
            x = euler
            break
        next_slope = -next_sigma * score_function(model, euler, next_sigma.expand(x.shape[0]))
        x = x + (next_sigma - sigma) * 0.5 * (slope + next_slope)
    return x


def corrector_step(
    model: ScoreModel,
    x: torch.Tensor,
    sigma: torch.Tensor,
    snr: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""One Langevin step on :math:`p_\sigma` (Song et al. 2021, Algorithm 5): ``x`` ``[B, ...]``
    -> ``[B, ...]``. The step :math:`\epsilon = 2 (r\, \overline{\|z\|} /
    \overline{\|s\|})^2` (norms averaged over the batch, as in the paper's code) makes the
    drift :math:`\epsilon s` ``snr`` (:math:`r`) times as long as the noise
    :math:`\sqrt{2\epsilon} z` on average, whatever the scale of the score at this level."""
    score = score_function(model, x, sigma.expand(x.shape[0]))
    z = _noise(x, generator)
    ratio = z.flatten(1).norm(dim=1).mean() / score.flatten(1).norm(dim=1).mean()
    step = 2 * (snr * ratio) ** 2
    return x + step * score + (2 * step).sqrt() * z


def _noise(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
