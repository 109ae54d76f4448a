"""Checkers of lesson 3: Langevin steps, the sampler's temperature, the replay buffer's draw."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._engine import (
    Case,
    Mistake,
    Spec,
    Tolerance,
    evaluate,
)
from ._feedback import Feedback


def grad_of(score_fn: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``grad_x sum_i f(x_i)``."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(score_fn(x).sum(), x)
    return grad


UPHILL = (
    "Your update moves against the gradient: `grad_x f` points uphill, towards higher "
    "score (higher density, lower energy), and the sampler must climb it. Add it: "
    "`x + step_size * grad`."
)

# ----------------------------------------------------------------- textbook Langevin


def _point_case(label: str, score: Any, x: Tensor, eps: float, seed: int) -> Case:
    noise = fx.randn(*x.shape, seed=seed)
    return Case(label, lambda: ((score, x.clone(), eps, noise.clone()), {}))


def _langevin_cases() -> list[Case]:
    gauss = fx.Quadratic(torch.tensor([0.3, -0.2]), s=0.5)
    image_score = fx.Quadratic(fx.digits(1, seed=5), s=1.0)
    five, one, four = fx.randn(5, 2, seed=3), fx.randn(1, 2, seed=5), fx.randn(4, 2, seed=7)
    images = fx.uniform(2, 1, 28, 28, seed=9)
    return [
        _point_case("five 2-D points, a Gaussian score, step 0.01", gauss, five, 0.01, 4),
        _point_case("a single 2-D point, step 0.1", gauss, one, 0.1, 6),
        _point_case("a flat score (zero gradient), step 0.04", fx.flat_score, four, 0.04, 8),
        _point_case("two images [2, 1, 28, 28], step 0.001", image_score, images, 1e-3, 10),
    ]


def _textbook(grad_scale: Callable, noise_scale: Callable, use_mean: bool = False) -> Callable:
    """Textbook Langevin with the gradient and noise scaled by the given functions of eps."""

    def wrong(f: Any, x: Tensor, eps: float, noise: Tensor) -> Tensor:
        g = grad_of(f, x) / (len(x) if use_mean else 1)
        return x + grad_scale(eps) * g + noise_scale(eps) * noise

    return wrong


@functools.cache
def _langevin_step_spec() -> Spec:
    cases = _langevin_cases()
    step = _textbook
    textbook = lambda e: math.sqrt(2 * e)
    noise_msg = (
        "The noise does not scale with the step size as the textbook update needs: its "
        "standard deviation must be `sqrt(2 * step_size)`, "
    )
    mistakes = [
        Mistake(step(lambda e: -e, textbook), UPHILL),
        Mistake(
            step(lambda e: e, lambda e: 0.0),
            "You left out the noise: without it Langevin is plain gradient ascent, and every "
            "chain collapses onto a peak of `f` instead of sampling `q`.",
        ),
        Mistake(step(lambda e: e, lambda e: 1.0), noise_msg + "yours is the raw `noise` (std 1)."),
        Mistake(
            step(lambda e: e, lambda e: math.sqrt(e)),
            noise_msg + "yours is `sqrt(step_size)`: the factor 2 is missing.",
        ),
        Mistake(step(lambda e: e, lambda e: e), noise_msg + "yours is `step_size`, not its root."),
        Mistake(
            step(lambda e: 1.0, textbook),
            "The gradient is not multiplied by the step size: `x + step_size * grad`.",
        ),
        Mistake(
            step(lambda e: e, textbook, use_mean=True),
            "You differentiated the *mean* of the batch's scores, which makes every "
            "gradient `B` times too small. Differentiate `score_fn(x).sum()`: each `f(x_i)` "
            "depends on `x_i` only, so the sum's gradient is every point's own gradient.",
        ),
    ]
    return Spec("langevin_step", cases, sol.langevin_step, mistakes, Tolerance(1e-5, 1e-4))


def check_langevin_step(answer: Any) -> Feedback:
    """Check ``langevin_step(score_fn, x [B, ...], step_size, noise) -> [B, ...]``.

    Inputs: five 2-D points under a Gaussian score, a single point, a flat score (zero
    gradient), two images. Tolerance ``1e-5 + 1e-4 |expected|`` per entry. Known mistakes:
    a step against the gradient, no noise, noise scaled by 1, ``sqrt(eps)`` or ``eps``
    instead of ``sqrt(2 eps)``, an unscaled gradient, the gradient of the batch mean.
    """
    return evaluate(_langevin_step_spec(), answer)


# ----------------------------------------------------------------- the tutorial's sampler


def _tutorial_step(
    *,
    sign: float = 1.0,
    clamp_grad: bool = True,
    clamp_noise: bool = True,
    clamp_end: bool = True,
    grad_first: bool = False,
    textbook_noise: bool = False,
    raw_noise: bool = False,
    low: float = -1.0,
) -> Callable:
    """The tutorial's step with one thing changed (the reference when nothing is)."""

    def step(f: Any, x: Tensor, eps: float, std: float, c: float, noise: Tensor) -> Tensor:
        scale = math.sqrt(2 * eps) if textbook_noise else 1.0 if raw_noise else std
        g0 = grad_of(f, x) if grad_first else None
        x = x + scale * noise
        if clamp_noise:
            x = x.clamp(low, 1.0)
        g = sign * (g0 if g0 is not None else grad_of(f, x))
        x = x + eps * (g.clamp(-c, c) if clamp_grad else g)
        return x.clamp(low, 1.0) if clamp_end else x

    return step


def _image_case(label: str, score: Any, batch: int, std: float, seed: int) -> Case:
    """Images from uniform noise; step size 10 and gradient clamp 0.03, as the tutorial's."""
    x, noise = fx.uniform(batch, 1, 28, 28, seed=seed), fx.randn(batch, 1, 28, 28, seed=seed + 1)
    return Case(label, lambda: ((score, x.clone(), 10.0, std, 0.03, noise.clone()), {}))


def _tutorial_cases() -> list[Case]:
    target = fx.digits(1, seed=11)
    steep, gentle = fx.Quadratic(target, s=0.5), fx.Quadratic(target, s=10.0)
    tutorial = "two images, the tutorial's settings (step 10, noise 0.005, clamp 0.03)"
    return [
        _image_case(tutorial, steep, 2, 0.005, 12),
        _image_case("a single image, noise_std 0.5 (every clamp active)", steep, 1, 0.5, 14),
        _image_case("small gradients (|grad f| < grad_clamp), noise_std 0.1", gentle, 2, 0.1, 16),
        _image_case("a flat score (zero gradient), noise_std 0.3", fx.flat_score, 2, 0.3, 18),
    ]


@functools.cache
def _tutorial_langevin_step_spec() -> Spec:
    cases = _tutorial_cases()
    mistakes = [
        Mistake(_tutorial_step(sign=-1.0), UPHILL),
        Mistake(
            _tutorial_step(clamp_grad=False),
            "You did not clamp the gradient: the tutorial clamps each entry to "
            "`[-grad_clamp, grad_clamp]` before the step, so no pixel moves more than "
            "`step_size * grad_clamp` (0.3) per step.",
        ),
        Mistake(
            _tutorial_step(clamp_end=False),
            "Your images leave `[-1, 1]`: clamp again after the gradient step.",
        ),
        Mistake(
            _tutorial_step(clamp_noise=False),
            "You did not clamp after adding the noise, so the gradient is taken at (and the "
            "step starts from) an image outside `[-1, 1]`. Clamp right after the noise.",
        ),
        Mistake(
            _tutorial_step(clamp_noise=False, clamp_end=False),
            "You clamp nowhere: the tutorial clamps the pixels to `[-1, 1]` after the noise "
            "and again after the gradient step.",
        ),
        Mistake(
            _tutorial_step(grad_first=True),
            "You took the gradient before adding the noise. The tutorial's order: add the "
            "noise (and clamp), *then* take the gradient at the noisy image and step.",
        ),
        Mistake(
            _tutorial_step(textbook_noise=True),
            "You used the textbook noise `sqrt(2 * step_size)`; the tutorial's sampler uses "
            "its own, far smaller `noise_std` (lesson 3, section 7).",
        ),
        Mistake(
            _tutorial_step(raw_noise=True),
            "You added the standard normal `noise` without multiplying it by `noise_std`.",
        ),
        Mistake(
            _tutorial_step(low=0.0),
            "You clamp to `[0, 1]`; the course's images live in `[-1, 1]`.",
        ),
    ]
    spec = Spec("tutorial_langevin_step", cases, sol.tutorial_langevin_step, mistakes)
    spec.tolerance = Tolerance(1e-5, 1e-4)
    return spec


def check_tutorial_langevin_step(answer: Any) -> Feedback:
    """Check ``tutorial_langevin_step(score_fn, x, step_size, noise_std, grad_clamp, noise)``.

    Inputs (images ``[B, 1, 28, 28]``): the tutorial's settings, a single image with
    ``noise_std`` 0.5 (all clamps active), gradients below the clamp, a flat score.
    Tolerance ``1e-5 + 1e-4 |expected|`` per pixel. Known mistakes: a step against the
    gradient, no gradient clamp, no final clamp, no clamp after the noise, no clamp at all,
    the gradient before the noise, textbook noise, unscaled noise, clamping to ``[0, 1]``.
    """
    return evaluate(_tutorial_langevin_step_spec(), answer)


# ----------------------------------------------------------------- temperature


@functools.cache
def _sampler_temperature_spec() -> Spec:
    pairs = [(10.0, 0.005), (1e-3, math.sqrt(2e-3)), (0.02, 0.3), (0.5, 0.1)]
    cases = [
        Case(f"step_size {eps:g}, noise_std {std:.4g}", lambda e=eps, s=std: ((e, s), {}))
        for eps, std in pairs
    ]
    mistakes = [
        Mistake(
            lambda e, s: 2 * e / s**2,
            "Your formula is upside down: `T = noise_std**2 / (2 * step_size)` (more noise, "
            "hotter; the tutorial's sampler is nearly frozen, `T ~ 1e-6`).",
        ),
        Mistake(
            lambda e, s: s**2 / e,
            "The factor 2 is missing: textbook noise is `sqrt(2 * eps * T)`, so "
            "`T = noise_std**2 / (2 * step_size)`.",
        ),
        Mistake(
            lambda e, s: s / (2 * e),
            "Square the noise: variances, not standard deviations, must match: "
            "`noise_std**2 = 2 * step_size * T`.",
        ),
        Mistake(
            lambda e, s: s / math.sqrt(2 * e),
            "You compared standard deviations (`noise_std / sqrt(2 * step_size)`); `T` is "
            "the ratio of the variances: `noise_std**2 / (2 * step_size)`.",
        ),
    ]
    tol = Tolerance(atol=0.0, rtol=1e-6)
    return Spec("sampler_temperature", cases, sol.sampler_temperature, mistakes, tol)


def check_sampler_temperature(answer: Any) -> Feedback:
    """Check ``sampler_temperature(step_size, noise_std) -> float``.

    Inputs: the tutorial's (10, 0.005), textbook noise (T = 1), and two more pairs.
    Tolerance: relative ``1e-6``. Known mistakes: the inverse, no factor 2, ``sigma``
    instead of ``sigma^2``, the ratio of standard deviations.
    """
    return evaluate(_sampler_temperature_spec(), answer)
