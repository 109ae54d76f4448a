"""2-D toy data sets with known densities, and exact normalisation of 2-D energy models.

Sign convention (as everywhere in :mod:`ebm_course`): a model returns the *score*
``f(x) = -E(x)``, shape ``[B]``, and its density is ``q(x) = exp(f(x)) / Z``.

In two dimensions ``Z`` can be computed by brute force on a grid, so a toy model's
density and negative log-likelihood are exact (up to a small grid error):

- :data:`DATASETS`, :func:`sample` and :func:`true_log_density`: four toy data sets
  inside ``[-1, 1]^2`` (the course's default ``value_range``) and their true log density.
- :class:`Grid`, :func:`log_partition`, :func:`log_density` and :func:`nll`: normalise
  any score function on the square ``grid.lim x grid.lim``.
- :class:`GaussianScore` and :class:`MixtureScore`: closed-form score functions.
- :class:`BlurredMixture1D`: a 1-D Gaussian mixture with the exact gradient of its log
  density at every noise level, to check the noise-conditional samplers of lesson 9.
- :func:`plot_comparison`: data, learned density and samples side by side.

This module holds the data sets and their true densities; the models' half (grid, scores,
figure) is written in :mod:`ebm_course._toy_models` and re-exported here, so import every
name from ``ebm_course.toy``. Matplotlib is imported only by :func:`plot_comparison`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from . import checks
from ._toy_models import (
    DEFAULT_GRID,
    BlurredMixture1D,
    GaussianScore,
    Grid,
    MixtureScore,
    ScoreFn,  # noqa: F401 (the type of a score function, importable from here as before)
    _check_points,
    _gmm_log_density,
    log_density,
    log_partition,
    nll,
    plot_comparison,
)

__all__ = [
    "DATASETS",
    "sample",
    "true_log_density",
    "Grid",
    "DEFAULT_GRID",
    "log_partition",
    "log_density",
    "nll",
    "GaussianScore",
    "MixtureScore",
    "BlurredMixture1D",
    "plot_comparison",
]

DATASETS = ("eight_gaussians", "rings", "checkerboard", "two_moons")

# eight Gaussians: equal-weight isotropic components on a circle
EIGHT_RADIUS, EIGHT_STD = 0.7, 0.05
# rings: equal-weight rings, radius = ring radius + Gaussian radial noise
RING_RADII, RING_STD = (0.25, 0.5, 0.75), 0.025
# checkerboard: 4x4 squares on [-CHECKER_LIM, CHECKER_LIM]^2, uniform on the "black" ones
CHECKER_LIM, CHECKER_CELLS = 0.8, 4
# two moons: sklearn's arcs, centred and scaled by MOON_SCALE, plus isotropic Gaussian noise
MOON_SCALE, MOON_STD, MOON_NODES = 0.5, 0.04, 512

_LOG_2PI = math.log(2 * math.pi)


# ----------------------------------------------------------------------- helpers


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown toy data set {name!r}; choose one of {DATASETS}")


def _eight_centres(dtype: torch.dtype = torch.float64) -> Tensor:
    angles = torch.arange(8, dtype=dtype) * (2 * math.pi / 8)
    return EIGHT_RADIUS * torch.stack([angles.cos(), angles.sin()], dim=1)  # [8, 2]


def _checker_indices(points: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Column and row index of each point's square and whether the square is black."""
    size = 2 * CHECKER_LIM / CHECKER_CELLS
    idx = torch.floor((points + CHECKER_LIM) / size).long()
    inside = ((idx >= 0) & (idx < CHECKER_CELLS)).all(dim=1)
    black = inside & ((idx[:, 0] + idx[:, 1]) % 2 == 0)
    return idx[:, 0], idx[:, 1], black


def _moon_centres(t: Tensor) -> Tensor:
    """Noise-free two-moons curve at arc parameters ``t`` in ``[0, pi]``: ``[2, T, 2]``.

    Moon 0 is sklearn's upper arc ``(cos t, sin t)``, moon 1 the lower arc
    ``(1 - cos t, 0.5 - sin t)``; both are shifted by ``(-0.5, -0.25)`` (centring the
    pair) and scaled by :data:`MOON_SCALE`.
    """
    upper = torch.stack([t.cos(), t.sin()], dim=-1)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=-1)
    shift = torch.tensor([0.5, 0.25], dtype=t.dtype, device=t.device)
    return MOON_SCALE * (torch.stack([upper, lower]) - shift)


# ----------------------------------------------------------------------- samplers


def _sample_eight_gaussians(n: int, g: torch.Generator | None) -> Tensor:
    comp = torch.randint(0, 8, (n,), generator=g)
    return _eight_centres()[comp] + EIGHT_STD * torch.randn(n, 2, generator=g, dtype=torch.float64)


def _sample_rings(n: int, g: torch.Generator | None) -> Tensor:
    comp = torch.randint(0, len(RING_RADII), (n,), generator=g)
    theta = 2 * math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    radius = torch.tensor(RING_RADII, dtype=torch.float64)[comp]
    radius = radius + RING_STD * torch.randn(n, generator=g, dtype=torch.float64)
    return radius[:, None] * torch.stack([theta.cos(), theta.sin()], dim=1)


def _sample_checkerboard(n: int, g: torch.Generator | None) -> Tensor:
    size = 2 * CHECKER_LIM / CHECKER_CELLS
    grid = torch.cartesian_prod(torch.arange(CHECKER_CELLS), torch.arange(CHECKER_CELLS))
    black = grid[(grid.sum(dim=1) % 2) == 0]  # [8, 2] (column, row) of the black squares
    square = black[torch.randint(0, len(black), (n,), generator=g)].double()
    offset = torch.rand(n, 2, generator=g, dtype=torch.float64)
    return -CHECKER_LIM + size * (square + offset)


def _sample_two_moons(n: int, g: torch.Generator | None) -> Tensor:
    moon = torch.randint(0, 2, (n,), generator=g)
    t = math.pi * torch.rand(n, generator=g, dtype=torch.float64)
    centres = _moon_centres(t)[moon, torch.arange(n)]
    return centres + MOON_STD * torch.randn(n, 2, generator=g, dtype=torch.float64)


_SAMPLERS: dict[str, Callable[[int, torch.Generator | None], Tensor]] = {
    "eight_gaussians": _sample_eight_gaussians,
    "rings": _sample_rings,
    "checkerboard": _sample_checkerboard,
    "two_moons": _sample_two_moons,
}


def sample(name: str, n: int, generator: torch.Generator | None = None) -> Tensor:
    """Draw ``n`` points of the toy data set ``name``: float32 ``[n, 2]`` inside ``[-1, 1]^2``.

    - ``"eight_gaussians"``: equal mixture of 8 isotropic Gaussians (std 0.05) centred on
      a circle of radius 0.7.
    - ``"rings"``: 3 concentric rings (radii 0.25, 0.5, 0.75, equal weights), uniform
      angle, radius = ring radius + Gaussian noise (std 0.025).
    - ``"checkerboard"``: uniform on the 8 "black" squares of a 4x4 board on
      ``[-0.8, 0.8]^2`` (the square holding the bottom-left corner is black).
    - ``"two_moons"``: sklearn's two half-circles, centred and scaled by 0.5, arc
      parameter uniform on ``[0, pi]``, plus isotropic Gaussian noise (std 0.04).

    Points are clamped to ``[-1, 1]^2``; every Gaussian is at least 6 std from the
    border, so the clamp moves a fraction < 1e-8 of the points and
    :func:`true_log_density` ignores it.

    Args:
        name: one of :data:`DATASETS`.
        n: number of points (>= 1).
        generator: optional CPU ``torch.Generator`` for reproducible draws.

    Raises:
        ValueError: unknown ``name`` or ``n < 1``.
    """
    _check_name(name)
    checks.positive_int("n", n, maximum=10**7)
    return _SAMPLERS[name](n, generator).clamp(-1.0, 1.0).float()


# ----------------------------------------------------------------- true densities


def _log_density_eight_gaussians(points: Tensor) -> Tensor:
    k = 8
    log_w = torch.full((k,), -math.log(k), dtype=points.dtype)
    stds = torch.full((k,), EIGHT_STD, dtype=points.dtype)
    return _gmm_log_density(points, log_w, _eight_centres(points.dtype), stds)


def _log_density_rings(points: Tensor) -> Tensor:
    # radius r = r_k + s*eps, angle uniform; a negative draw lands at |r| on the opposite
    # side, so the radial density is the folded normal N(r; r_k, s) + N(r; -r_k, s) and
    # p(x) = sum_k w_k [N(|x|; r_k, s) + N(|x|; -r_k, s)] / (2 pi |x|).
    r = points.norm(dim=1).clamp_min(1e-12)[:, None]  # caps the integrable 1/r at the origin
    radii = torch.tensor(RING_RADII, dtype=points.dtype)
    radii = torch.cat([radii, -radii])
    log_radial = -((r - radii) ** 2) / (2 * RING_STD**2) - math.log(RING_STD) - _LOG_2PI / 2
    log_w = -math.log(len(RING_RADII))
    return torch.logsumexp(log_radial, dim=1) + log_w - torch.log(2 * math.pi * r[:, 0])


def _log_density_checkerboard(points: Tensor) -> Tensor:
    area = (2 * CHECKER_LIM) ** 2 / 2  # half of the board is black
    _, _, black = _checker_indices(points)
    out = torch.full((len(points),), -math.inf, dtype=points.dtype)
    return out.masked_fill(black, -math.log(area))


def _log_density_two_moons(points: Tensor, chunk: int = 1024) -> Tensor:
    # p(x) = 1/2 sum_m (1/pi) int_0^pi N(x; c_m(t), s^2 I) dt, by the midpoint rule with
    # MOON_NODES nodes per moon (spacing ~ s/13 along the arc: error < 1e-4 of the peak).
    t = (torch.arange(MOON_NODES, dtype=points.dtype) + 0.5) * (math.pi / MOON_NODES)
    centres = _moon_centres(t).reshape(-1, 2)  # [2 * nodes, 2]
    log_norm = math.log(len(centres))
    log_c = -math.log(2 * math.pi * MOON_STD**2) - log_norm
    c_sq = centres.pow(2).sum(dim=1)
    parts = []
    for p in points.split(chunk):  # |x - c|^2 by a matmul (float64: no harmful cancellation)
        sq = (p.pow(2).sum(dim=1, keepdim=True) + c_sq - 2 * p @ centres.T).clamp_min(0)
        parts.append(torch.logsumexp(-sq / (2 * MOON_STD**2), dim=1) + log_c)
    return torch.cat(parts) if parts else points.new_zeros(0)


_TRUE_LOG_DENSITIES: dict[str, Callable[[Tensor], Tensor]] = {
    "eight_gaussians": _log_density_eight_gaussians,
    "rings": _log_density_rings,
    "checkerboard": _log_density_checkerboard,
    "two_moons": _log_density_two_moons,
}


def true_log_density(name: str, points: Tensor) -> Tensor:
    """Exact log density of the toy data set ``name`` at ``points`` ``[N, 2]``: ``[N]``.

    A density over the whole plane (the < 1e-8 clamp of :func:`sample` is ignored):

    - ``"eight_gaussians"``: the Gaussian mixture, in closed form.
    - ``"rings"``: closed form in polar coordinates. The radius is ``r_k + s * eps``, so
      its density is a folded normal and ``p(x) = sum_k w_k [N(|x|; r_k, s) +
      N(|x|; -r_k, s)] / (2 pi |x|)``. The ``1/|x|`` factor is integrable; it is capped
      at ``|x| = 1e-12`` (where the density is ~1e-9 anyway).
    - ``"checkerboard"``: ``log(1 / 1.28)`` on the black squares, ``-inf`` elsewhere.
    - ``"two_moons"``: ``1/2 sum_m (1/pi) int_0^pi N(x; c_m(t), s^2 I) dt`` over the arc
      parameter ``t``, by a 512-node midpoint rule per moon (error < 1e-4 of the peak).

    Computed in float64 on the CPU; returned with the dtype and device of ``points``
    (float64 for integer input).

    Raises:
        ValueError: unknown ``name`` or ``points`` not of shape ``[N, 2]``.
    """
    _check_name(name)
    _check_points(points)
    out = _TRUE_LOG_DENSITIES[name](points.detach().double().cpu())
    dtype = points.dtype if points.is_floating_point() else torch.float64
    return out.to(device=points.device, dtype=dtype)
