"""Checkers of lessons 1 and 2: from a score to a density, contrastive divergence."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate, value_and_grads
from ._feedback import Feedback

# ----------------------------------------------------------------- shared grid inputs


def _grid_cases(include_large: bool = True) -> list[Case]:
    points, area = fx.grid_points(30)
    bump = fx.bump(points)
    cases = [
        Case(
            "f = 0 on a 4 x 4 grid over [-1, 1]^2 (log Z = log 4)",
            lambda: ((torch.zeros(16), 0.25), {}),
        ),
        Case("a Gaussian bump on a 30 x 30 grid", lambda: ((bump.clone(), area), {})),
        Case("a single cell of area 0.5 with f = 0.7", lambda: ((torch.tensor([0.7]), 0.5), {})),
    ]
    if include_large:
        large = Case(
            "the bump + 100 (exp(f) overflows float32)", lambda: ((bump + 100.0, area), {})
        )
        cases.append(large)
    return cases


def _lse(s: torch.Tensor) -> torch.Tensor:
    return torch.logsumexp(s, dim=0)


# ----------------------------------------------------------------- lesson 1


@functools.cache
def _grid_log_partition_spec() -> Spec:
    mistakes = [
        Mistake(
            lambda s, a: float(torch.log(torch.exp(s).sum() * a)),
            "`exp(f)` overflowed to infinity for large scores (float32 ends near exp(88)). "
            "Work in log space: `torch.logsumexp(f, dim=0) + math.log(cell_area)`.",
        ),
        Mistake(
            lambda s, a: float(_lse(s)),
            "You summed `exp(f)` over the cells but forgot the cell area: the Riemann sum "
            "of an integral is sum(value x area), so add `log(cell_area)`.",
        ),
        Mistake(
            lambda s, a: float(torch.exp(_lse(s)) * a),
            "You returned `Z` itself; the exercise asks for `log Z` (take the log, or "
            "better stay in log space with `logsumexp`).",
        ),
        Mistake(
            lambda s, a: float(_lse(-s)) + math.log(a),
            "You integrated `exp(-f)`: the inputs are scores `f = -E`, not energies, so "
            "the unnormalised density is `exp(+f)`.",
        ),
        Mistake(
            lambda s, a: float(_lse(s)) - math.log(len(s)) + math.log(a),
            "You averaged `exp(f)` over the cells; the Riemann sum adds them up: "
            "`Z = sum_i exp(f_i) * cell_area`.",
        ),
    ]
    note = "Return `log Z` as one number (a float or a 0-d tensor)."
    return Spec(
        "grid_log_partition",
        _grid_cases(),
        sol.grid_log_partition,
        mistakes,
        Tolerance(atol=1e-4, rtol=1e-5),
        note=note,
    )


def check_grid_log_partition(answer: Any) -> Feedback:
    """Check ``grid_log_partition(scores [N], cell_area) -> float``.

    Inputs: f = 0 on a 4 x 4 grid (log Z = log 4), a Gaussian bump on 30 x 30 cells, a
    single cell, and the bump + 100 (where ``exp(f)`` overflows float32). Tolerance:
    ``|got - expected| <= 1e-4 + 1e-5 |expected|``. Known mistakes: overflow, no cell area,
    ``Z`` instead of ``log Z``, ``exp(-f)``, a mean instead of a sum.
    """
    return evaluate(_grid_log_partition_spec(), answer)


@functools.cache
def _grid_density_spec() -> Spec:
    def log_z(s: torch.Tensor, a: float) -> torch.Tensor:
        return _lse(s) + math.log(a)

    mistakes = [
        Mistake(
            lambda s, a: torch.exp(s) / (torch.exp(s).sum() * a),
            "`exp(f)` overflowed (inf / inf = NaN) for large scores. Subtract `log Z` "
            "before exponentiating: `torch.exp(f - log_z)` with `log_z` from `logsumexp`.",
        ),
        Mistake(
            lambda s, a: torch.softmax(s, dim=0),
            "Your `q` sums to 1 over the cells, but a density must *integrate* to 1: "
            "`q.sum() * cell_area == 1`. `Z` includes the cell area.",
        ),
        Mistake(
            lambda s, a: torch.exp(s),
            "You returned `exp(f)` without dividing by `Z`: that is the unnormalised density.",
        ),
        Mistake(
            lambda s, a: s - log_z(s, a),
            "You returned `log q = f - log Z`; the exercise asks for `q` itself (exponentiate).",
        ),
        Mistake(
            lambda s, a: torch.exp(-s - log_z(-s, a)),
            "You normalised `exp(-f)`: the inputs are scores `f = -E`, so the density is "
            "`exp(+f) / Z` (high score = likely).",
        ),
    ]
    note = "`q` has one value per cell: the same shape and dtype as `scores`."
    return Spec(
        "grid_density",
        _grid_cases(),
        sol.grid_density,
        mistakes,
        Tolerance(atol=1e-6, rtol=1e-4),
        note=note,
    )


def check_grid_density(answer: Any) -> Feedback:
    """Check ``grid_density(scores [N], cell_area) -> q [N]``.

    Same inputs as :func:`check_grid_log_partition`. Tolerance ``1e-6 + 1e-4 |expected|``
    per entry. Known mistakes: overflow to NaN, a softmax (sums, not integrates, to 1),
    no normalisation, ``log q`` returned, ``exp(-f)``.
    """
    return evaluate(_grid_density_spec(), answer)


# ----------------------------------------------------------------- lesson 2


def _score_pair(real: list[float], fake: list[float], alpha: float) -> Any:
    def make() -> tuple[tuple, dict]:
        r = torch.tensor(real, requires_grad=True)
        f = torch.tensor(fake, requires_grad=True)
        return (r, f, alpha), {}

    return make


def _cd(r: torch.Tensor, f: torch.Tensor, alpha: float, reg: torch.Tensor) -> torch.Tensor:
    return f.mean() - r.mean() + alpha * reg


def _cd_cases() -> list[Case]:
    six_real, six_fake = fx.randn(6, seed=1).tolist(), fx.randn(6, seed=2).tolist()
    four = _score_pair([0.5, 1.2, -0.3, 0.8], [-1.0, 0.2, -0.7, -2.0], 0.1)
    large = _score_pair([5.0, 3.0, 4.0], [-6.0, -2.0, 1.0], 1.0)
    return [
        Case("four real and four fake scores, alpha = 0.1", four),
        Case(
            "a single image: one real and one fake score, alpha = 0.1",
            _score_pair([0.3], [-0.4], 0.1),
        ),
        Case("six scores each, alpha = 0 (no regulariser)", _score_pair(six_real, six_fake, 0.0)),
        Case("three large scores each, alpha = 1", large),
    ]


@functools.cache
def _cd_loss_spec() -> Spec:
    cases = _cd_cases()
    sq = lambda r, f: (r.pow(2) + f.pow(2)).mean()
    detached = "Your loss is cut off from the scores (`.item()`, `float(...)`, `.detach()` or "
    detached += "`torch.tensor(...)` somewhere), so `loss.backward()` could not train the model."
    mistakes = [
        Mistake(
            lambda r, f, a: r.mean() - f.mean() + a * sq(r, f),
            "Your loss pulls the fake samples up and pushes the real data down: the sign of "
            "the contrastive term is flipped. Minimise `mean f(x-) - mean f(x+)` (scores "
            "`f = -E`: the data should end with the higher score).",
        ),
        Mistake(
            lambda r, f, a: f.mean() - r.mean(),
            "You left out the regulariser `alpha * mean(f(x+)^2 + f(x-)^2)`. Without it "
            "nothing pins the level of the scores (lesson 2, section 3).",
        ),
        Mistake(
            lambda r, f, a: _cd(r, f, a, r.pow(2).mean()),
            "You regularise only the real scores; the regulariser is "
            "`alpha * mean(f(x+)^2 + f(x-)^2)`, over both batches.",
        ),
        Mistake(
            lambda r, f, a: _cd(r, f, a, f.pow(2).mean()),
            "You regularise only the fake scores; the regulariser is "
            "`alpha * mean(f(x+)^2 + f(x-)^2)`, over both batches.",
        ),
        Mistake(
            lambda r, f, a: _cd(r, f, a, r.mean().pow(2) + f.mean().pow(2)),
            "You squared the *mean* scores; the regulariser is the mean of the *squared* "
            "scores, `(real_score**2 + fake_score**2).mean()`.",
        ),
        Mistake(
            lambda r, f, a: _cd(r, f, a, (r + f).pow(2).mean()),
            "You squared the sum `(f(x+) + f(x-))^2`; the regulariser squares each score "
            "separately: `f(x+)^2 + f(x-)^2`.",
        ),
        Mistake(
            lambda r, f, a: f.mean() - r.mean() + sq(r, f),
            "The regulariser is not multiplied by `alpha`.",
        ),
        Mistake(
            lambda r, f, a: f.sum() - r.sum() + a * (r.pow(2) + f.pow(2)).sum(),
            "You summed over the batch instead of averaging: the loss (and the learning "
            "rate it needs) would grow with the batch size. Use `.mean()`.",
        ),
        Mistake(
            lambda r, f, a: (sol.cd_loss(r, f, a), a * sq(r, f), f.mean() - r.mean()),
            "You returned a tuple `(loss, reg_loss, cdiv)`, as the package's "
            "`contrastive_divergence_loss` does; this exercise asks for the loss alone.",
        ),
        Mistake(lambda r, f, a: sol.cd_loss(r, f, a).detach(), detached),
        Mistake(lambda r, f, a: float(sol.cd_loss(r, f, a).detach()), detached),
    ]
    observe = value_and_grads(lambda args, kwargs: [args[0], args[1]])
    note = "The loss is one number: a 0-d tensor that `loss.backward()` can use."
    return Spec("cd_loss", cases, sol.cd_loss, mistakes, Tolerance(1e-5, 1e-5), observe, note)


def check_cd_loss(answer: Any) -> Feedback:
    """Check ``cd_loss(real_score [B], fake_score [B], alpha) -> 0-d tensor``.

    Inputs: four scores each (alpha 0.1), a single image, six each with alpha 0, three
    large ones with alpha 1. The value *and* its gradient with respect to both score
    tensors are compared; Tolerance ``1e-5 + 1e-5 |expected|``. Known mistakes: flipped
    contrastive sign, no regulariser, only real / only fake regularised, square of the
    mean, square of the sum, no alpha, sums instead of means, a detached loss.
    """
    return evaluate(_cd_loss_spec(), answer)


@functools.cache
def _grid_nll_spec() -> Spec:
    points, area = fx.grid_points(30)
    grid = fx.bump(points)
    data = fx.bump(torch.tensor([[0.2, -0.1], [0.5, 0.1], [-0.3, 0.4]]))
    cases = [
        Case(
            "three data points under a Gaussian bump (30 x 30 grid)",
            lambda: ((data.clone(), grid.clone(), area), {}),
        ),
        Case("a single data point", lambda: ((data[:1].clone(), grid.clone(), area), {})),
        Case(
            "f = 0 everywhere on a 4 x 4 grid (uniform: NLL = log 4)",
            lambda: ((torch.zeros(5), torch.zeros(16), 0.25), {}),
        ),
    ]

    def log_z(g: torch.Tensor, a: float) -> float:
        return float(_lse(g)) + math.log(a)

    mistakes = [
        Mistake(
            lambda d, g, a: float(d.mean()) - log_z(g, a),
            "You returned the log-likelihood `mean log q`; the NLL is its negative, "
            "`log Z - mean f(data)`.",
        ),
        Mistake(
            lambda d, g, a: -float(d.mean()),
            "You forgot `log Z`: `-mean f(data)` is not a likelihood, since adding a "
            "constant to `f` would change it. `log q = f - log Z`.",
        ),
        Mistake(
            lambda d, g, a: float(_lse(g)) - float(d.mean()),
            "Your `log Z` lacks the cell area: `log Z = logsumexp(f on the grid) + "
            "log(cell_area)`.",
        ),
        Mistake(
            lambda d, g, a: len(d) * log_z(g, a) - float(d.sum()),
            "You summed over the data points; the NLL here is the *mean* per point "
            "(nats per point).",
        ),
    ]
    return Spec("grid_nll", cases, sol.grid_nll, mistakes, Tolerance(atol=1e-4, rtol=1e-5))


def check_grid_nll(answer: Any) -> Feedback:
    """Check ``grid_nll(data_scores [M], grid_scores [N], cell_area) -> float``.

    Inputs: three points under a Gaussian bump, a single point, a constant score (NLL log 4).
    Tolerance ``1e-4 + 1e-5 |expected|``. Known mistakes: the log-likelihood's sign, no
    ``log Z``, no cell area in ``log Z``, a sum over the data instead of a mean.
    """
    return evaluate(_grid_nll_spec(), answer)
