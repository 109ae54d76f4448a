"""Checkers of lesson 6: the divergence test, inpainting, MAP denoising."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._checks_sampling import UPHILL, grad_of
from ._engine import Case, Mistake, Spec, Tolerance, evaluate
from ._feedback import Feedback

# ----------------------------------------------------------------- lesson 6: divergence

_ROWS = (  # label, row, keyword arguments
    ("a healthy row", {"loss": -0.02, "cdiv": -0.05, "real_score": 0.12, "fake_score": 0.07}, {}),
    (
        "scores exploded upwards (real 62, fake 58)",
        {"loss": -4.0, "real_score": 62.0, "fake_score": 58.0},
        {},
    ),
    (
        "scores exploded downwards (real -70, fake -66)",
        {"loss": 4.0, "real_score": -70.0, "fake_score": -66.0},
        {},
    ),
    (
        "real far above fake (5.5 vs -5.5)",
        {"loss": -11.0, "real_score": 5.5, "fake_score": -5.5},
        {},
    ),
    ("fake far above real (-4 vs 8)", {"loss": 12.0, "real_score": -4.0, "fake_score": 8.0}, {}),
    ("a NaN real score", {"loss": 0.1, "real_score": float("nan"), "fake_score": 0.2}, {}),
    (
        "a NaN loss, healthy scores",
        {"loss": float("nan"), "real_score": 0.1, "fake_score": 0.0},
        {},
    ),
    (
        "only the fake score exploded (real 48, fake 55)",
        {"loss": 7.0, "real_score": 48.0, "fake_score": 55.0},
        {},
    ),
    (
        "just inside both limits (45 vs 36)",
        {"loss": -9.0, "real_score": 45.0, "fake_score": 36.0},
        {},
    ),
    (
        "max_abs_score=5 and scores 6 and 5.5",
        {"loss": -0.5, "real_score": 6.0, "fake_score": 5.5},
        {"max_abs_score": 5.0},
    ),
)


def _diverged(
    *, finite: str = "all", gap: str = "both", scale: str = "abs", limits: bool = True
) -> Callable:
    """The divergence test with one part changed or missing."""

    def wrong(row: dict, max_abs_score: float = 50.0, max_score_gap: float = 10.0) -> bool:
        big, wide = (max_abs_score, max_score_gap) if limits else (50.0, 10.0)
        checked = row.values() if finite == "all" else (row["real_score"], row["fake_score"])
        if finite != "none" and not all(v == v and abs(v) != float("inf") for v in checked):
            return True
        real, fake = row["real_score"], row["fake_score"]
        size = {"abs": max(abs(real), abs(fake)), "signed": max(real, fake), "none": 0.0}[scale]
        diff = {"both": abs(real - fake), "real": real - fake, "fake": fake - real, "none": 0.0}[
            gap
        ]
        return size > big or diff > wide

    return wrong


@functools.cache
def _looks_diverged_spec() -> Spec:
    cases = [Case(label, lambda r=row, k=kw: ((dict(r),), dict(k))) for label, row, kw in _ROWS]
    mistakes = [
        Mistake(
            _diverged(finite="none"),
            "A row with NaN passed as healthy: NaN fails every comparison (`nan > 50` is "
            "False), so test `math.isfinite` on the numbers first.",
        ),
        Mistake(
            _diverged(finite="scores"),
            "You check the scores for NaN but not the other numbers of the row: a NaN loss "
            "is divergence too. Test every value of `row`.",
        ),
        Mistake(
            _diverged(gap="real"),
            "You flag only real scores far *above* fake ones. Fake samples scoring far above "
            "the data (lesson 6) is divergence too: compare `abs(real - fake)`.",
        ),
        Mistake(
            _diverged(gap="fake"),
            "You flag only fake scores far above real ones; a real score far above the fake "
            "one is the tutorial's failure (samples stuck in spurious maxima): use `abs`.",
        ),
        Mistake(
            _diverged(scale="signed"),
            "You flag only large *positive* scores; scores of -70 have exploded too: compare "
            "`max(abs(real), abs(fake))`.",
        ),
        Mistake(
            _diverged(gap="none"),
            "You never test the gap between real and fake scores (`abs(real - fake) > "
            "max_score_gap`).",
        ),
        Mistake(
            _diverged(scale="none"),
            "You never test the size of the scores (`max(abs(real), abs(fake)) > "
            "max_abs_score`): two scores of 62 and 58 are close, yet exploded.",
        ),
        Mistake(
            _diverged(limits=False),
            "You ignore the thresholds passed in (`max_abs_score`, `max_score_gap`) and use "
            "fixed numbers.",
        ),
    ]
    return Spec("looks_diverged", cases, sol.looks_diverged, mistakes, Tolerance(0.0, 0.0))


def check_looks_diverged(answer: Any) -> Feedback:
    """Check ``looks_diverged(row, max_abs_score=50, max_score_gap=10) -> bool``.

    Ten rows: healthy, exploded up and down, a gap either way, a NaN score, a NaN loss, only
    the fake score exploded, just inside both limits, and custom limits. Tolerance: exact
    equality (each answer is a bool).
    Known mistakes: no NaN test, NaN tested on the scores only, one-sided gaps, signed
    scale, a missing gap or scale test, fixed thresholds.
    """
    return evaluate(_looks_diverged_spec(), answer)


# ----------------------------------------------------------------- lesson 6: inpainting


def _masked(*, mask_noise: str = "mask", mask_grad: str = "mask", sign: float = 1.0) -> Callable:
    """The masked step, with the mask applied to the noise / gradient as said."""

    def wrong(
        f: Any, x: Tensor, mask: Tensor, eps: float, std: float, c: float, noise: Tensor
    ) -> Tensor:
        m = mask.to(x.dtype)
        weight = {"mask": m, "inverse": 1 - m, "none": torch.ones_like(m)}
        x = (x + std * noise * weight[mask_noise]).clamp(-1.0, 1.0)
        g = (sign * grad_of(f, x)).clamp(-c, c) * weight[mask_grad]
        return (x + eps * g).clamp(-1.0, 1.0)

    return wrong


def _restore_after(
    f: Any, x: Tensor, mask: Tensor, eps: float, std: float, c: float, noise: Tensor
) -> Tensor:
    return torch.where(mask, sol.tutorial_langevin_step(f, x, eps, std, c, noise), x)


def _masked_case(label: str, score: Any, mask: Tensor, setting: tuple, seed: int) -> Case:
    """``setting`` is ``(batch, step_size, noise_std, grad_clamp)``."""
    batch, eps, std, c = setting
    x = torch.where(mask, fx.uniform(batch, 1, 28, 28, seed=seed + 1), fx.digits(batch, seed))
    noise = fx.randn(batch, 1, 28, 28, seed=seed + 2)
    return Case(label, lambda: ((score, x.clone(), mask.clone(), eps, std, c, noise.clone()), {}))


def _masked_cases() -> list[Case]:
    target = fx.digits(1, seed=40)
    bottom = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
    bottom[..., 14:, :] = True
    scattered = fx.uniform(1, 1, 28, 28, seed=41) > 0.3
    steep, coupled = fx.Quadratic(target, 0.5, k=1.0), fx.Quadratic(target, 1.0, k=5.0, m=-0.5)
    tutorial = "two images, bottom half missing (mask [1, 1, 28, 28]), the tutorial's settings"
    odd = "a single image, scattered missing pixels, noise_std 0.3, grad_clamp 10, step 0.1"
    flat = "a flat score: only the noise moves the missing pixels"
    return [
        _masked_case(tutorial, steep, bottom, (2, 10.0, 0.005, 0.03), 42),
        _masked_case(odd, coupled, scattered, (1, 0.1, 0.3, 10.0), 45),
        _masked_case(flat, fx.flat_score, bottom, (2, 10.0, 0.3, 0.03), 48),
    ]


@functools.cache
def _masked_langevin_step_spec() -> Spec:
    cases = _masked_cases()
    mistakes = [
        Mistake(
            _masked(mask_noise="inverse", mask_grad="inverse"),
            "You moved the known pixels and froze the missing ones: `mask` is True where "
            "pixels are *missing*, and those are the ones to move.",
        ),
        Mistake(
            _masked(mask_grad="none"),
            "The gradient step also moves the known pixels: multiply the clamped gradient "
            "by the mask too.",
        ),
        Mistake(
            _masked(mask_noise="none"),
            "The noise also changes the known pixels: multiply the noise by the mask too.",
        ),
        Mistake(
            _masked(mask_noise="none", mask_grad="none"),
            "You ignored the mask: every pixel moves, so the known half is not kept.",
        ),
        Mistake(
            _restore_after,
            "You noised every pixel and restored the known ones afterwards, so the gradient "
            "was taken on an image whose known pixels carried noise: the score did not see "
            "them as they are. Multiply the noise by the mask before adding it.",
        ),
        Mistake(_masked(sign=-1.0), UPHILL),
    ]
    spec = Spec("masked_langevin_step", cases, sol.masked_langevin_step, mistakes)
    spec.tolerance = Tolerance(1e-5, 1e-4)
    return spec


def check_masked_langevin_step(answer: Any) -> Feedback:
    """Check ``masked_langevin_step(score_fn, x, mask, step_size, noise_std, grad_clamp, noise)``.

    Inputs: two images with the bottom half missing (a ``[1, 1, 28, 28]`` mask to broadcast)
    at the tutorial's settings; one image with scattered missing pixels, large noise and
    a score that couples all pixels; a flat score. Tolerance ``1e-5 + 1e-4 |expected|``.
    Known mistakes: mask inverted, mask on the noise only / gradient only / nowhere, noise
    everywhere then known pixels restored, a step against the gradient.
    """
    return evaluate(_masked_langevin_step_spec(), answer)


# ----------------------------------------------------------------- lesson 6: MAP denoising


def _map(*, data: float = 1.0, power: int = 2, sign: float = 1.0, clamp: bool = True) -> Callable:
    def wrong(f: Any, x: Tensor, y: Tensor, sigma: float, eps: float) -> Tensor:
        out = x + eps * (sign * grad_of(f, x) - data * (x - y) / sigma**power)
        return out.clamp(-1.0, 1.0) if clamp else out

    return wrong


def _map_case(label: str, f: Any, batch: int, sigma: float, eps: float, seed: int) -> Case:
    """A case; ``x = y`` (the first step) when the label says so, else ``x`` is noise."""
    noisy = fx.digits(batch, seed) + sigma * fx.randn(batch, 1, 28, 28, seed=seed + 1)
    y = noisy.clamp(-1, 1)
    x = y.clone() if "x = y" in label else fx.uniform(batch, 1, 28, 28, seed=seed + 2)
    return Case(label, lambda: ((f, x.clone(), y.clone(), sigma, eps), {}))


@functools.cache
def _map_denoise_step_spec() -> Spec:
    score = fx.Quadratic(fx.digits(1, seed=50), s=0.5)
    far = "an estimate x far from the observation y, sigma 0.5, step 0.2"
    flat = "a flat score: only the data term acts, sigma 0.3, step 0.02"
    cases = [
        _map_case(
            "two noisy digits, first step (x = y), sigma 0.5, step 0.01", score, 2, 0.5, 0.01, 51
        ),
        _map_case(far, score, 2, 0.5, 0.2, 54),
        _map_case("a single image, sigma 0.2, step 0.005", score, 1, 0.2, 0.005, 57),
        _map_case(flat, fx.flat_score, 2, 0.3, 0.02, 60),
    ]
    mistakes = [
        Mistake(
            _map(data=-1.0),
            "Your data term pushes the estimate *away* from the observation `y`: the "
            "gradient of `-|x - y|^2 / (2 sigma^2)` is `-(x - y) / sigma^2`.",
        ),
        Mistake(_map(power=1), "Square sigma in the data term: `(x - y) / sigma**2`."),
        Mistake(
            _map(data=0.5),
            "Your data term is half as strong as it should be: the gradient of "
            "`|x - y|^2 / (2 sigma^2)` is `(x - y) / sigma^2` (the 2s cancel).",
        ),
        Mistake(
            _map(data=0.0),
            "You left out the data term `-(x - y) / sigma^2`: that is plain energy "
            "descent (lesson 6), which drifts to the model's favourite digit.",
        ),
        Mistake(_map(sign=-1.0), UPHILL),
        Mistake(_map(clamp=False), "Your estimate leaves `[-1, 1]`: clamp after the step."),
    ]
    spec = Spec("map_denoise_step", cases, sol.map_denoise_step, mistakes)
    spec.tolerance = Tolerance(1e-5, 1e-4)
    return spec


def check_map_denoise_step(answer: Any) -> Feedback:
    """Check ``map_denoise_step(score_fn, x, y, sigma, step_size) -> [B, 1, 28, 28]``.

    Inputs: the first step from ``x = y``, an estimate far from ``y``, a single image, a
    flat score. Tolerance ``1e-5 + 1e-4 |expected|``. Known mistakes: the data term's sign,
    sigma not squared, half the data term, no data term, a step against the score's
    gradient, no clamp.
    """
    return evaluate(_map_denoise_step_spec(), answer)
