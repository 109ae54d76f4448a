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
- :func:`plot_comparison`: data, learned density and samples side by side.

Matplotlib is imported only by :func:`plot_comparison`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

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
    "plot_comparison",
]

ScoreFn = Callable[[Tensor], Tensor]

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


def _check_points(points: Tensor, name: str = "points") -> None:
    if not isinstance(points, Tensor) or points.dim() != 2 or points.shape[1] != 2:
        got = tuple(points.shape) if hasattr(points, "shape") else type(points).__name__
        raise ValueError(f"{name} must be a tensor of shape [N, 2], got {got}")


def _check_name(name: str) -> None:
    if name not in DATASETS:
        raise ValueError(f"unknown toy data set {name!r}; choose one of {DATASETS}")


def _gaussian_log_kernel(points: Tensor, centres: Tensor, std: Tensor | float) -> Tensor:
    """``log N(x; c, std^2 I)`` in 2-D for points ``[N, 2]`` and centres ``[K, 2]``: ``[N, K]``.

    ``std`` is a float or a ``[K]`` tensor.
    """
    var = torch.as_tensor(std, dtype=points.dtype, device=points.device) ** 2
    sq = (points[:, None, :] - centres[None, :, :]).pow(2).sum(-1)
    return -sq / (2 * var) - torch.log(2 * math.pi * var)


def _gmm_log_density(points: Tensor, log_weights: Tensor, means: Tensor, stds: Tensor) -> Tensor:
    """``log sum_k w_k N(x; mu_k, std_k^2 I)`` for points ``[N, 2]``: ``[N]``."""
    return torch.logsumexp(log_weights + _gaussian_log_kernel(points, means, stds), dim=1)


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
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
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


# --------------------------------------------------------------- normalising on a grid


@dataclass(frozen=True)
class Grid:
    """An ``n x n`` grid of equal cells covering the square ``lim x lim``.

    Attributes:
        lim: ``(low, high)`` of both axes.
        n: cells per axis.
    """

    lim: tuple[float, float] = (-1.0, 1.0)
    n: int = 200

    def __post_init__(self) -> None:
        lo, hi = (float(v) for v in self.lim)
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"lim must be (low, high) with finite low < high, got {self.lim!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"n must be an integer >= 1, got {self.n!r}")
        object.__setattr__(self, "lim", (lo, hi))

    @property
    def width(self) -> float:
        """Side length of one cell."""
        return (self.lim[1] - self.lim[0]) / self.n

    @property
    def xs(self) -> Tensor:
        """Cell centres along one axis: float32 ``[n]``."""
        idx = torch.arange(self.n, dtype=torch.float64)
        return (self.lim[0] + (idx + 0.5) * self.width).float()

    @property
    def points(self) -> Tensor:
        """All cell centres: float32 ``[n * n, 2]``, ``(x, y)``, row-major in ``y``.

        ``points.reshape(n, n, 2)[i, j]`` is ``(xs[j], xs[i])`` (row = y, as ``imshow``).
        """
        gy, gx = torch.meshgrid(self.xs, self.xs, indexing="ij")
        return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)

    @property
    def cell_area(self) -> float:
        """Area of one cell."""
        return self.width**2

    def contains(self, points: Tensor) -> Tensor:
        """Whether each point ``[N, 2]`` lies in the closed square: bool ``[N]``."""
        lo, hi = self.lim
        return ((points >= lo) & (points <= hi)).all(dim=1)


DEFAULT_GRID = Grid()


def _placement(score_fn: ScoreFn) -> tuple[torch.device, torch.dtype]:
    """Device and floating dtype of ``score_fn``'s first tensor (CPU float32 otherwise)."""
    if isinstance(score_fn, nn.Module):
        for tensor in (*score_fn.parameters(), *score_fn.buffers()):
            if tensor.is_floating_point():
                return tensor.device, tensor.dtype
    return torch.device("cpu"), torch.float32


def _scores(score_fn: ScoreFn, points: Tensor, batch_size: int) -> Tensor:
    """``score_fn`` on ``points`` ``[N, 2]`` in batches, on its device: ``[N]``."""
    device, dtype = _placement(score_fn)
    outs = []
    for chunk in points.split(batch_size):
        out = torch.as_tensor(score_fn(chunk.to(device=device, dtype=dtype)))
        if out.dim() == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if tuple(out.shape) != (len(chunk),):
            raise ValueError(
                f"score_fn must map [N, 2] points to scores [N]; for N = {len(chunk)} it "
                f"returned shape {tuple(out.shape)}"
            )
        outs.append(out)
    return torch.cat(outs)


def log_partition(score_fn: ScoreFn, grid: Grid = DEFAULT_GRID, batch_size: int = 65536) -> float:
    """``log Z = log of the integral of exp(f(x))`` over the square ``grid.lim x grid.lim``.

    Midpoint rule: ``logsumexp(f(cell centres)) + log(cell area)``, in float64 after the
    scores are computed. Runs under ``torch.no_grad()`` on ``score_fn``'s device (its
    first parameter's, when it is an ``nn.Module``; CPU otherwise) and leaves the module's
    train/eval mode alone. Mass outside the square is ignored: the density is that of
    the model restricted to the square, which is where the course's samplers keep
    their points (they clamp to ``value_range``).

    Args:
        score_fn: maps points ``[B, 2]`` to scores ``f = -E`` of shape ``[B]`` (or ``[B, 1]``).
        grid: the square and its resolution; the grid error is small once a cell is a
            fraction of the narrowest feature of ``exp(f)``.
        batch_size: points per call of ``score_fn``.

    Raises:
        ValueError: a score of the wrong shape, or NaN / ``+inf`` scores.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    with torch.no_grad():
        scores = _scores(score_fn, grid.points, batch_size).double()
    if torch.isnan(scores).any() or torch.isposinf(scores).any():
        raise ValueError("score_fn returned NaN or +inf scores on the grid")
    return float(torch.logsumexp(scores, dim=0)) + math.log(grid.cell_area)


def log_density(
    score_fn: ScoreFn,
    points: Tensor,
    grid: Grid = DEFAULT_GRID,
    log_z: float | None = None,
) -> Tensor:
    """Normalised log density ``log q(x) = f(x) - log Z`` at ``points`` ``[N, 2]``: ``[N]``.

    ``Z`` is :func:`log_partition` over ``grid`` (pass ``log_z`` to reuse one), so ``q``
    is a density on the grid square; outside it the value is not a normalised density.
    Gradients flow through ``f(points)`` (``log Z`` is a constant). The result has the
    dtype of ``score_fn``'s output and the device of ``points``.
    """
    _check_points(points)
    if log_z is None:
        log_z = log_partition(score_fn, grid)
    return (_scores(score_fn, points, 65536) - log_z).to(points.device)


def nll(score_fn: ScoreFn, data: Tensor, grid: Grid = DEFAULT_GRID) -> float:
    """Mean negative log-likelihood ``-mean log q(data)`` (nats per point), exact up to grid error.

    Args:
        score_fn: the score ``f = -E`` of the model, ``[B, 2] -> [B]``.
        data: points ``[N, 2]``, all inside the grid square.
        grid: where ``Z`` is computed (see :func:`log_partition`).

    Raises:
        ValueError: ``data`` not ``[N, 2]`` with ``N >= 1``, or outside the grid square
            (where ``q`` is not normalised).
    """
    _check_points(data, "data")
    if len(data) == 0:
        raise ValueError("data must hold at least one point")
    if not bool(grid.contains(data).all()):
        raise ValueError(f"data must lie inside the grid square {grid.lim} x {grid.lim}")
    with torch.no_grad():
        return -float(log_density(score_fn, data, grid).double().mean())


# ---------------------------------------------------------------- closed-form scores


class GaussianScore(nn.Module):
    """Score of an isotropic 2-D Gaussian: ``f(x) = -|x - mean|^2 / (2 std^2)``.

    Unnormalised: ``log Z`` over the plane is :meth:`log_partition_exact` =
    ``log(2 pi std^2)``. Input ``[B, 2]``, output ``[B]``.
    """

    mean: Tensor

    def __init__(self, mean: Sequence[float] | Tensor = (0.0, 0.0), std: float = 1.0) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        if mean_t.shape != (2,):
            raise ValueError(f"mean must be a 2-vector, got shape {tuple(mean_t.shape)}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std!r}")
        self.register_buffer("mean", mean_t)
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, "x")
        return -(x - self.mean).pow(2).sum(dim=1) / (2 * self.std**2)

    def log_partition_exact(self) -> float:
        """``log Z = log(2 pi std^2)``, the integral of ``exp(f)`` over the whole plane."""
        return math.log(2 * math.pi * self.std**2)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log density ``f(x) - log Z`` over the plane: ``[B]``."""
        return self(x) - self.log_partition_exact()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` exact draws ``[n, 2]`` (not clamped), on the CPU."""
        return self.mean.cpu() + self.std * torch.randn(n, 2, generator=generator)


class MixtureScore(nn.Module):
    """Score of a 2-D isotropic Gaussian mixture, optionally tempered.

    ``f(x) = log sum_k w_k N(x; mu_k, std_k^2 I) / T``. With ``T = 1`` the score is
    already normalised (``log Z = 0`` over the plane); ``T > 1`` flattens the density,
    ``T < 1`` sharpens it. ``temperature`` is a plain attribute, so an interactive
    explorer may change it in place.

    Args:
        weights: ``[K]`` positive mixture weights (normalised to sum to 1).
        means: ``[K, 2]`` component means.
        stds: ``[K]`` positive component standard deviations.
        temperature: ``T > 0``.

    Input ``[B, 2]``, output ``[B]``.
    """

    log_weights: Tensor
    means: Tensor
    stds: Tensor

    def __init__(
        self,
        weights: Sequence[float] | Tensor,
        means: Sequence[Sequence[float]] | Tensor,
        stds: Sequence[float] | Tensor,
        temperature: float = 1.0,
    ) -> None:
        super().__init__()
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        mu = torch.as_tensor(means, dtype=torch.float32)
        s = torch.as_tensor(stds, dtype=torch.float32).reshape(-1)
        k = len(w)
        if k < 1 or mu.shape != (k, 2) or s.shape != (k,):
            raise ValueError(
                "need weights [K], means [K, 2] and stds [K] with K >= 1, got shapes "
                f"{tuple(w.shape)}, {tuple(mu.shape)}, {tuple(s.shape)}"
            )
        if not bool((w > 0).all() and (s > 0).all()):
            raise ValueError("weights and stds must be positive")
        self.register_buffer("log_weights", torch.log(w / w.sum()))
        self.register_buffer("means", mu)
        self.register_buffer("stds", s)
        self.temperature = temperature

    @property
    def temperature(self) -> float:
        """The temperature ``T > 0`` dividing the log density."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value!r}")
        self._temperature = float(value)

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, "x")
        return _gmm_log_density(x, self.log_weights, self.means, self.stds) / self.temperature


# ----------------------------------------------------------------------- figure


def plot_comparison(
    data: Tensor,
    score_fn: ScoreFn,
    samples: Tensor | None = None,
    grid: Grid = DEFAULT_GRID,
    titles: Sequence[str] = ("data", "model density", "samples"),
) -> Figure:
    """One row of panels on the same limits: data scatter, model density, samples scatter.

    The density panel is :func:`ebm_course.plots.plot_density_2d` of ``score_fn`` on
    ``grid.lim`` with ``grid.n`` points per axis. The samples panel is drawn only when
    ``samples`` (``[M, 2]``) is given.

    Args:
        data: ``[N, 2]`` training points.
        score_fn: the model's score ``f = -E``, ``[B, 2] -> [B]``.
        samples: optional ``[M, 2]`` model samples (e.g. from Langevin dynamics).
        grid: limits and resolution of every panel.
        titles: one title per panel (data, density, samples).

    Returns:
        The figure, with 2 or 3 axes.
    """
    import matplotlib.pyplot as plt

    from .plots import plot_density_2d

    _check_points(data, "data")
    if samples is not None:
        _check_points(samples, "samples")
    ncols = 2 if samples is None else 3
    fig, axes = plt.subplots(1, ncols, figsize=(4.0 * ncols, 4.0), squeeze=False)
    axes = axes[0]
    plot_density_2d(score_fn, grid.lim, grid.lim, n=grid.n, ax=axes[1], title=titles[1])
    panels = [(axes[0], data, titles[0])]
    if samples is not None:
        panels.append((axes[2], samples, titles[2]))
    for ax, pts, title in panels:
        xy = pts.detach().cpu().float().numpy()
        ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.5, edgecolors="none")
        ax.set_title(title)
    for ax in axes:
        ax.set_xlim(*grid.lim)
        ax.set_ylim(*grid.lim)
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig
