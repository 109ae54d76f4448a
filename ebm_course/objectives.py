r"""Ways to train an energy model beside contrastive divergence.

Sign convention (as everywhere in :mod:`ebm_course`): ``model(x)`` returns the score
``f(x) = -E(x)`` of shape ``[B]``, and the model's density is ``q(x) = exp(f(x)) / Z``.
Names follow Song & Kingma (2021), *How to Train Your Energy-Based Models*
(arXiv:2101.03288):

- :func:`denoising_score_matching` (Vincent 2011): match ``grad_x f`` to the score of
  Gaussian-noised data. Needs neither ``Z`` nor samples from the model; learns the
  density of the *noised* data.
- :func:`sliced_score_matching` (Song et al. 2019): Hyvarinen's (2005) score matching
  with the Hessian trace replaced by random projections. Needs second derivatives.
- :func:`noise_contrastive_estimation` (Gutmann & Hyvarinen 2010): tell data from
  samples of a known noise density by logistic regression. Needs a noise distribution
  one can sample and evaluate; the learned score comes out normalised (``log Z ~ 0``).
- :func:`fit_objective`: a plain Adam loop for any of them, with a timed evaluation log.

Maximum likelihood by contrastive divergence stays in :mod:`ebm_course.training`. Its
two classic flavours are settings of :func:`ebm_course.training.fit`, not new trainers:
**persistent** CD keeps the chains alive in the replay buffer (``reinit_prob`` 0.05 to
0.2), **short-run** CD (Nijkamp et al. 2019) starts every chain from fresh uniform noise
(``reinit_prob=1.0``); see :func:`persistent_config` and :func:`short_run_config`.
:class:`TimedEvaluation` is a ``fit`` callback that logs the same things as
:func:`fit_objective`, so all methods can be compared on one clock.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from . import checks
from .training import TrainConfig, TrainingDiverged
from .utils import model_device

__all__ = [
    "denoising_score_matching",
    "sliced_score_matching",
    "noise_contrastive_estimation",
    "fit_objective",
    "TimedEvaluation",
    "persistent_config",
    "short_run_config",
]

LossFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------- helpers


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    checks.finite_tensor(name, x, min_dim=2)


def _score(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be one score per example: ``[B]``."""
    if not callable(model):
        raise TypeError(f"model must be a torch.nn.Module (scores [B]), got {type(model).__name__}")
    score = model(x)
    if tuple(score.shape) != (x.shape[0],):
        raise ValueError(
            f"model must map a batch [B, ...] to scores [B]; for B = {x.shape[0]} it "
            f"returned shape {list(score.shape)}"
        )
    return score


def _input_gradient(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``grad_x f(x)`` with the graph kept, so that a loss on it trains the parameters."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(_score(model, x).sum(), x, create_graph=True)
    return grad


def _check_callable(name: str, value: object) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")


def _check_config(config: object) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")


def _per_example(t: torch.Tensor) -> torch.Tensor:
    """Sum over every dimension but the first: ``[B, ...] -> [B]``."""
    return t.flatten(start_dim=1).sum(dim=1)


# ----------------------------------------------------------------------- objectives


def denoising_score_matching(
    model: nn.Module,
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Denoising score matching (Vincent 2011), with the usual :math:`\sigma^2` weighting.

    Perturb the data, :math:`\tilde x = x + \sigma\varepsilon` with
    :math:`\varepsilon \sim \mathcal N(0, I)`, and regress the model's input gradient on
    the score of the perturbation kernel, :math:`\nabla_{\tilde x} \log
    \mathcal N(\tilde x; x, \sigma^2 I) = -(\tilde x - x)/\sigma^2 = -\varepsilon/\sigma`:

    .. math::

        \mathcal L_\text{DSM} = \frac{\sigma^2}{2}\,\mathbb E_{x,\varepsilon}
        \Big\| \nabla_{\tilde x} f(\tilde x) + \frac{\tilde x - x}{\sigma^2} \Big\|^2
        = \frac12\,\mathbb E \big\| \sigma \nabla_{\tilde x} f(\tilde x) + \varepsilon \big\|^2 .

    This is Vincent's loss times :math:`\sigma^2` (Song & Ermon 2019's weighting): the
    same minimiser, but a loss of order ``dim / 2`` for every ``sigma``, so one learning
    rate suits all noise levels. Its minimiser is the score of the noised data density
    :math:`p_\sigma = p * \mathcal N(0, \sigma^2 I)`, not of :math:`p` itself: DSM
    learns the data blurred by ``sigma``. Neither ``Z`` nor model samples are needed.

    Args:
        model: maps ``[B, ...]`` to scores ``f = -E`` of shape ``[B]``.
        x: data batch ``[B, ...]``.
        sigma: noise standard deviation, ``> 0``.
        generator: optional ``torch.Generator`` (on ``x``'s device) for the noise.

    Returns:
        The scalar loss (mean over the batch, summed over dimensions), differentiable
        with respect to the model's parameters.
    """
    _check_batch(x)
    checks.number("sigma", sigma, 0.0, open_low=True)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    grad = _input_gradient(model, x + sigma * noise)
    return 0.5 * _per_example((sigma * grad + noise).pow(2)).mean()


def sliced_score_matching(
    model: nn.Module,
    x: torch.Tensor,
    n_projections: int = 1,
    generator: torch.Generator | None = None,
    variance_reduced: bool = False,
) -> torch.Tensor:
    r"""Sliced score matching (Song et al. 2019) with Rademacher projections.

    Hyvarinen's (2005) score matching minimises
    :math:`\mathbb E_p\big[\operatorname{tr}\nabla_x^2 f(x) + \tfrac12\|\nabla_x f(x)\|^2\big]`
    (the Fisher divergence up to a constant), but the Hessian trace costs one backward
    pass per dimension. Sliced score matching projects on random directions ``v``:

    .. math::

        \mathcal L_\text{SSM} = \mathbb E_{x \sim p}\,\mathbb E_v\Big[
        v^\top \nabla_x^2 f(x)\, v + \tfrac12 \big(v^\top \nabla_x f(x)\big)^2 \Big],

    which equals exact score matching in expectation because
    :math:`\mathbb E[v v^\top] = I`. ``v`` has independent Rademacher (``+-1``) entries,
    the lowest-variance choice for the trace estimator. :math:`v^\top \nabla_x^2 f\, v`
    is :math:`v^\top \nabla_x (v^\top \nabla_x f)`: a second backward pass (double
    backward), whatever the dimension.

    Args:
        model: maps ``[B, ...]`` to scores ``f = -E`` of shape ``[B]`` (twice
            differentiable in ``x``: smooth activations such as SiLU, not ReLU).
        x: data batch ``[B, ...]``.
        n_projections: directions per example (``>= 1``); more lowers the variance.
        generator: optional ``torch.Generator`` (on ``x``'s device) for the directions.
        variance_reduced: use :math:`\tfrac12\|\nabla_x f\|^2`, the exact expectation of
            :math:`\tfrac12 (v^\top \nabla_x f)^2`, instead of the projected square
            (Song et al.'s SSM-VR; only the Hessian term stays random).

    Returns:
        The scalar loss (mean over examples and projections).
    """
    _check_batch(x)
    checks.positive_int("n_projections", n_projections)
    checks.boolean("variance_reduced", variance_reduced)
    # every example once per projection: one double backward covers them all
    x = x.detach().repeat(n_projections, *([1] * (x.dim() - 1))).requires_grad_(True)
    signs = torch.randint(0, 2, x.shape, generator=generator, device=x.device)
    v = signs.to(x.dtype).mul_(2).sub_(1)
    (grad,) = torch.autograd.grad(_score(model, x).sum(), x, create_graph=True)
    grad_v = _per_example(grad * v)  # v^T grad f, [n * B]
    (hessian_v,) = torch.autograd.grad(grad_v.sum(), x, create_graph=True)  # H v
    # SSM-VR: E_v (v^T g)^2 = |g|^2 is known in closed form, so use it (less noise)
    square = _per_example(grad.pow(2)) if variance_reduced else grad_v.pow(2)
    return (_per_example(hessian_v * v) + 0.5 * square).mean()


def noise_contrastive_estimation(
    model: nn.Module,
    x: torch.Tensor,
    noise: torch.distributions.Distribution,
    noise_ratio: int = 1,
    noise_samples: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Noise-contrastive estimation (Gutmann & Hyvarinen 2010).

    Logistic regression between the data and ``nu = noise_ratio`` times as many samples
    ``y`` of a noise density :math:`p_n` that can be sampled and evaluated. The logit
    of "this point is data" is the log ratio of the two densities, with the model's
    score standing in for its normalised log density:

    .. math::

        G(u) = f(u) - \log p_n(u) - \log \nu, \qquad
        \mathcal L_\text{NCE} = -\mathbb E_{x\sim p} \log \sigma\big(G(x)\big)
        - \nu\, \mathbb E_{y \sim p_n} \log \sigma\big(-G(y)\big),

    with :math:`\sigma` the logistic function. The optimal classifier has
    :math:`G = \log p - \log p_n - \log\nu`, i.e. :math:`f = \log p`: the score itself
    is a *normalised* log density. No ``Z`` is computed; the model's free constant (e.g.
    its last bias) learns :math:`-\log Z`. NCE works when :math:`p_n` covers the data
    and is not too far from it: against an easy noise the classifier is done long
    before the density is right.

    Args:
        model: maps ``[B, ...]`` to scores ``f = -E`` of shape ``[B]``.
        x: data batch ``[B, ...]``.
        noise: a ``torch.distributions`` distribution over single examples (its
            ``log_prob`` maps ``[N, ...]`` to ``[N]``); its support must contain the data.
        noise_ratio: ``nu``, noise samples per data point (``>= 1``).
        noise_samples: optional ``[noise_ratio * B, ...]`` draws of ``noise``; by default
            ``noise.sample()`` draws them with torch's global RNG (distributions take no
            ``generator``).

    Returns:
        The scalar loss, normalised per data point.
    """
    _check_batch(x)
    points, log_noise = _data_and_noise(x, noise, noise_ratio, noise_samples)
    logit = _score(model, points) - log_noise - math.log(noise_ratio)
    data_logit, noise_logit = logit[: x.shape[0]], logit[x.shape[0] :]
    # -log sigmoid(G(x)) for data, -log sigmoid(-G(y)) for noise; sums per data point
    data_term = -F.logsigmoid(data_logit).mean()
    noise_term = -F.logsigmoid(-noise_logit).sum() / x.shape[0]
    return data_term + noise_term


def _data_and_noise(
    x: torch.Tensor,
    noise: torch.distributions.Distribution,
    noise_ratio: int,
    noise_samples: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """NCE's points ``[B + nu B, ...]`` (data first, then noise) and ``log p_n`` of each."""
    checks.positive_int("noise_ratio", noise_ratio)
    if not isinstance(noise, torch.distributions.Distribution):
        raise TypeError(f"noise must be a torch.distributions.Distribution, got {type(noise)}")
    n_noise = noise_ratio * x.shape[0]
    if noise_samples is None:
        noise_samples = noise.sample((n_noise,)).to(x)
    expected = [n_noise, *x.shape[1:]]
    checks.finite_tensor("noise_samples", noise_samples)
    if list(noise_samples.shape) != expected:
        got = list(noise_samples.shape)
        raise ValueError(f"noise_samples must have shape {expected} (noise_ratio * B), got {got}")
    points = torch.cat([x, noise_samples.to(x)])
    log_noise = noise.log_prob(points)
    if tuple(log_noise.shape) != (points.shape[0],):
        raise ValueError(
            f"noise.log_prob must give one value per example, [N]; got {list(log_noise.shape)} "
            "(wrap a per-coordinate distribution in torch.distributions.Independent)"
        )
    return points, log_noise


# ----------------------------------------------------------------------- training


class TimedEvaluation:
    """A log of ``(iteration, training seconds, evaluate(model))``, usable as ``fit``'s callback.

    The clock starts at :meth:`start` and excludes the time spent in ``evaluate``, so
    ``seconds`` is training time only. ``log`` holds three lists of equal length:
    ``step``, ``seconds`` and ``value``.

    Args:
        evaluate: ``evaluate(model) -> float``, e.g. the exact held-out NLL by ``toy.nll``.
        every: evaluate after every this many iterations.
    """

    def __init__(self, evaluate: Callable[[nn.Module], float], every: int) -> None:
        _check_callable("evaluate", evaluate)
        checks.positive_int("every", every)
        self.evaluate = evaluate
        self.every = every
        self.log: dict[str, list[float]] = {"step": [], "seconds": [], "value": []}
        self._started: float | None = None  # perf_counter at start, moved on by evaluations

    def start(self, model: nn.Module) -> None:
        """Evaluate the untrained model (iteration 0) and start the clock."""
        self._started = time.perf_counter()
        self.record(0, model)

    def record(self, step: int, model: nn.Module) -> None:
        """Evaluate now, at ``step``, without counting the evaluation's time."""
        if self._started is None:
            raise RuntimeError("call start(model) before the first iteration")
        paused = time.perf_counter()
        self.log["step"].append(step)
        self.log["seconds"].append(paused - self._started)
        self.log["value"].append(float(self.evaluate(model)))
        self._started += time.perf_counter() - paused

    def __call__(self, step: int, model: nn.Module) -> None:
        if step % self.every == 0:
            self.record(step, model)


def fit_objective(
    model: nn.Module,
    data: torch.Tensor,
    loss_fn: LossFn,
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    evaluate: Callable[[nn.Module], float] | None = None,
    eval_every: int = 100,
    generator: torch.Generator | None = None,
) -> dict[str, list[float]]:
    """Train ``model`` (score ``f = -E``) in place by Adam on ``loss_fn(model, batch)``.

    Each iteration draws ``batch_size`` rows of ``data`` uniformly with replacement.

    Args:
        model: the network; its output is the score ``f = -E``, ``[B]``.
        data: training examples ``[N, ...]`` (moved to the model's device).
        loss_fn: ``loss_fn(model, batch) -> scalar loss``, e.g.
            ``lambda m, b: denoising_score_matching(m, b, sigma=0.1)``.
        steps: number of iterations (``>= 1``).
        batch_size: examples per iteration (``>= 1``, at most ``N``).
        lr: Adam's learning rate (``> 0``).
        evaluate: optional ``evaluate(model) -> float`` (e.g. held-out NLL), run before
            training, every ``eval_every`` iterations and after the last one.
        eval_every: see ``evaluate``.
        generator: optional CPU ``torch.Generator`` for the batch indices.

    Returns:
        ``{"step", "seconds", "value"}`` from a :class:`TimedEvaluation` (``seconds``
        excludes evaluation time; ``value`` is NaN without ``evaluate``) and ``"loss"``:
        the training loss of every iteration.
    """
    _check_fit_arguments(data, loss_fn, steps, batch_size, lr, evaluate, eval_every)
    device = model_device(model)
    data = data.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    timer = TimedEvaluation(evaluate or (lambda _model: math.nan), eval_every)
    losses: list[float] = []
    model.train()
    timer.start(model)
    for step in range(1, steps + 1):
        index = torch.randint(data.shape[0], (batch_size,), generator=generator)
        loss = _checked_loss(loss_fn(model, data[index.to(device)]))
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):  # stop before the step would poison the weights
            raise TrainingDiverged(f"the loss became {losses[-1]} at iteration {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            timer.record(step, model)
    model.eval()
    return {**timer.log, "loss": losses}


def _check_fit_arguments(
    data: torch.Tensor,
    loss_fn: LossFn,
    steps: int,
    batch_size: int,
    lr: float,
    evaluate: Callable[[nn.Module], float] | None,
    eval_every: int,
) -> None:
    _check_batch(data, "data")
    _check_callable("loss_fn", loss_fn)
    checks.positive_int("steps", steps)
    checks.positive_int("batch_size", batch_size)
    checks.positive_int("eval_every", eval_every)
    if batch_size > data.shape[0]:
        raise ValueError(f"batch_size {batch_size} exceeds the {data.shape[0]} examples of data")
    checks.number("lr", lr, 0.0, open_low=True)
    if evaluate is not None:
        _check_callable("evaluate", evaluate)


def _checked_loss(loss: object) -> torch.Tensor:
    """``loss_fn``'s result, which must be a scalar tensor (one number to minimise)."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        got = list(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor (one loss), got {got}")
    return loss


def persistent_config(config: TrainConfig, reinit_prob: float = 0.05) -> TrainConfig:
    """``config`` for persistent CD: chains live on in the replay buffer, a few restart.

    Only ``reinit_prob`` (the share of chains restarted from uniform noise each
    iteration) changes; ``fit`` does the rest. Must be ``< 1`` to keep any chain.
    """
    _check_config(config)
    checks.number("reinit_prob", reinit_prob, 0.0, 1.0, open_high=True)
    return dataclasses.replace(config, reinit_prob=reinit_prob)


def short_run_config(config: TrainConfig, mcmc_steps: int | None = None) -> TrainConfig:
    """``config`` for short-run CD (Nijkamp et al. 2019): every chain starts from noise.

    ``reinit_prob=1.0``, so the replay buffer is never drawn from and each iteration runs
    ``mcmc_steps`` (default: unchanged) Langevin steps from fresh uniform noise.
    """
    _check_config(config)
    steps = config.mcmc_steps if mcmc_steps is None else mcmc_steps
    return dataclasses.replace(config, reinit_prob=1.0, mcmc_steps=steps)
