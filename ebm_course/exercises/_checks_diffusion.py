"""Checkers of lesson 9: noise levels, the denoising target, a reverse-diffusion step."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate
from ._feedback import Feedback


@functools.cache
def _geometric_noise_levels_spec() -> Spec:
    cases = [
        Case("sigma 10 down to 0.01, 10 levels", lambda: ((10.0, 0.01, 10), {})),
        Case("sigma 1 down to 0.5, 2 levels", lambda: ((1.0, 0.5, 2), {})),
        Case(
            "sigma 50 down to 0.02, 232 levels (NCSNv2's CIFAR-10)", lambda: ((50.0, 0.02, 232), {})
        ),
    ]
    mistakes = [
        Mistake(
            lambda hi, lo, n: torch.linspace(hi, lo, n),
            "Your levels are evenly spaced; the ladder is *geometric*: every level is the "
            "previous one times the same ratio (evenly spaced in log sigma).",
        ),
        Mistake(
            lambda hi, lo, n: sol.geometric_noise_levels(hi, lo, n).flip(0),
            "Your levels go up; the ladder starts at the largest level (sigma_max first), "
            "the order in which the sampler walks it.",
        ),
        Mistake(
            lambda hi, lo, n: hi * (lo / hi) ** (torch.arange(n) / n),
            "Your last level is above sigma_min: the exponent must run from 0 to 1 "
            "inclusive, i / (n - 1) for i = 0 ... n - 1.",
        ),
    ]
    return Spec(
        "geometric_noise_levels",
        cases,
        sol.geometric_noise_levels,
        mistakes,
        Tolerance(1e-6, 1e-5),
        note="The ladder has one value per level: shape `[n]`.",
    )


def check_geometric_noise_levels(answer: Any) -> Feedback:
    """Check ``geometric_noise_levels(sigma_max, sigma_min, n) -> [n]``, largest first.

    Inputs: 10 levels from 10 to 0.01, 2 levels, 232 levels from 50 to 0.02. Tolerance
    ``1e-6 + 1e-5 |expected|``. Known mistakes: even spacing, the wrong order, an
    exponent ``i / n`` that stops short of ``sigma_min``.
    """
    return evaluate(_geometric_noise_levels_spec(), answer)


def _dsm_case(label: str, shape: tuple[int, ...], seed: int) -> Case:
    clean = fx.randn(*shape, seed=seed).clamp(-1, 1)
    sigma = torch.tensor([0.05, 0.5, 3.0, 1.0])[: shape[0]]
    noisy = clean + sigma.view(-1, *[1] * (len(shape) - 1)) * fx.randn(*shape, seed=seed + 1)
    return Case(label, lambda: ((clean.clone(), noisy.clone(), sigma.clone()), {}))


def _per_example(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return sigma.view(-1, *[1] * (x.dim() - 1))


@functools.cache
def _dsm_target_spec() -> Spec:
    cases = [
        _dsm_case("four images [4, 1, 28, 28], four levels", (4, 1, 28, 28), 200),
        _dsm_case("three 2-D points [3, 2]", (3, 2), 210),
    ]
    mistakes = [
        Mistake(
            lambda x, xt, s: (xt - x) / _per_example(s, x) ** 2,
            "Your target points *away* from the clean image. The score of the noise "
            "kernel points back to it: `-(noisy - clean) / sigma^2`.",
        ),
        Mistake(
            lambda x, xt, s: -(xt - x) / _per_example(s, x),
            "You divided by sigma; the Gaussian's score divides by its *variance*, sigma^2.",
        ),
        Mistake(
            lambda x, xt, s: -(xt - x),
            "You left out the noise level: the score of N(clean, sigma^2 I) is "
            "`-(noisy - clean) / sigma^2`.",
        ),
    ]
    return Spec(
        "dsm_target",
        cases,
        sol.dsm_target,
        mistakes,
        Tolerance(1e-5, 1e-5),
        note="The target has the images' shape; reshape sigma `[B]` to `[B, 1, ...]` to "
        "divide each example by its own level.",
    )


def check_dsm_target(answer: Any) -> Feedback:
    """Check ``dsm_target(clean [B, ...], noisy [B, ...], sigma [B]) -> [B, ...]``.

    Inputs: four images at four levels (0.05 to 3), three 2-D points. Tolerance
    ``1e-5 + 1e-5 |expected|``. Known mistakes: the sign, sigma instead of sigma^2, no sigma.
    """
    return evaluate(_dsm_target_spec(), answer)


def _step_case(label: str, shape: tuple[int, ...], sigma: float, next_sigma: float) -> Case:
    x, score, z = (fx.randn(*shape, seed=220 + i, scale=sigma) for i in range(3))
    score = score / sigma**2
    return Case(label, lambda: ((x.clone(), score.clone(), sigma, next_sigma, z.clone()), {}))


@functools.cache
def _reverse_diffusion_step_spec() -> Spec:
    cases = [
        _step_case("images at sigma 1.0 -> 0.8", (2, 1, 28, 28), 1.0, 0.8),
        _step_case("2-D points at sigma 10 -> 7", (5, 2), 10.0, 7.0),
        _step_case("the last step, sigma 0.02 -> 0 (no noise)", (3, 2), 0.02, 0.0),
    ]

    def variance(s: float, t: float) -> float:
        return s**2 - t**2

    mistakes = [
        Mistake(
            lambda x, g, s, t, z: x + (s - t) * g + math.sqrt(s - t) * z,
            "You used sigma - next_sigma; the step is the *variance* the noise removes, "
            "sigma^2 - next_sigma^2.",
        ),
        Mistake(
            lambda x, g, s, t, z: x + 0.5 * variance(s, t) * g + math.sqrt(variance(s, t)) * z,
            "You took a Langevin step (half the variance times the score). The reverse "
            "diffusion moves by the full variance: `x + (sigma^2 - next^2) * score + ...`.",
        ),
        Mistake(
            lambda x, g, s, t, z: x + variance(s, t) * g + variance(s, t) * z,
            "The noise is scaled by the *standard deviation*, sqrt(sigma^2 - next^2), "
            "not by the variance.",
        ),
        Mistake(
            lambda x, g, s, t, z: x - variance(s, t) * g + math.sqrt(variance(s, t)) * z,
            "You stepped against the score: the score points to more likely images, so "
            "add it: `x + (sigma^2 - next^2) * score`.",
        ),
    ]
    return Spec(
        "reverse_diffusion_step",
        cases,
        sol.reverse_diffusion_step,
        mistakes,
        Tolerance(1e-5, 1e-5),
        note="The step returns a tensor of x's shape.",
    )


def check_reverse_diffusion_step(answer: Any) -> Feedback:
    """Check ``reverse_diffusion_step(x, score, sigma, next_sigma, z) -> [B, ...]``.

    Inputs: images at sigma 1 -> 0.8, points at 10 -> 7, the last step 0.02 -> 0. Tolerance
    ``1e-5 + 1e-5 |expected|``. Known mistakes: sigma differences instead of variances, a
    Langevin half step, noise scaled by the variance, the score's sign.
    """
    return evaluate(_reverse_diffusion_step_spec(), answer)
