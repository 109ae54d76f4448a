"""The models' half of :mod:`ebm_course.toy`: exact normalisation of 2-D score functions on
a grid, closed-form scores (and the closed-form score *function* of a blurred 1-D mixture, for
the samplers of lesson 9) and the comparison figure. Import these names from
``ebm_course.toy``, which re-exports them beside the toy data sets.

Sign convention (as everywhere in :mod:`ebm_course`): a model returns the *score*
``f(x) = -E(x)``, shape ``[B]``, and its density is ``q(x) = exp(f(x)) / Z``.

Matplotlib is imported only by :func:`plot_comparison`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from . import checks

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

ScoreFn = Callable[[Tensor], Tensor]
MAX_GRID_N = 10_000  # cells per axis: n^2 scores are computed, 10^8 at most


# ------------------------------------------------------- helpers (shared with toy.py)


def _check_points(points: Tensor, name: str = "points", finite: bool = True) -> None:
    """``points`` must be a tensor ``[N, 2]`` (without NaN/Inf when ``finite``: a data set; a
    model's forward pass skips that check, which would read the batch)."""
    if not isinstance(points, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, 2], got {type(points).__name__}")
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must be a tensor of shape [N, 2], got {tuple(points.shape)}")
    if finite and points.is_floating_point() and not torch.isfinite(points).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def _check_grid(grid: Grid) -> None:
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a Grid (ebm_course.toy.Grid), got {type(grid).__name__}")


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
        object.__setattr__(self, "lim", checks.value_range("lim", self.lim))
        checks.positive_int("n", self.n, maximum=MAX_GRID_N)

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
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
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
    checks.positive_int("batch_size", batch_size)
    _check_grid(grid)
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
    _check_grid(grid)
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
        try:
            mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"mean must be a pair of numbers, got {mean!r}") from None
        if mean_t.shape != (2,):
            raise ValueError(f"mean must be a 2-vector, got shape {tuple(mean_t.shape)}")
        checks.number("std", std, 0.0, open_low=True)
        self.register_buffer("mean", mean_t)
        self.std = float(std)

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, "x", finite=False)
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
        self._temperature = checks.number("temperature", value, 0.0, open_low=True)

    def forward(self, x: Tensor) -> Tensor:
        _check_points(x, "x", finite=False)
        return _gmm_log_density(x, self.log_weights, self.means, self.stds) / self.temperature


class BlurredMixture1D:
    """A 1-D Gaussian mixture and the exact score function of every blurred version of it.

    The data law is ``p = sum_k w_k N(mu_k, std^2)``. Blurred by Gaussian noise of standard
    deviation ``sigma`` it stays a mixture, ``p_sigma = sum_k w_k N(mu_k, std^2 + sigma^2)``,
    so its *score function* ``d/dx log p_sigma(x)`` (the gradient of the log-density, not
    the course's network output ``f = -E``) is known in closed form at every level. Called
    as ``mixture(x, sigma)`` it is a noise-conditional score function with the interface of
    :class:`ebm_course.score_models.ScoreNet`, so the samplers of
    :mod:`ebm_course.score_models` and :mod:`ebm_course.diffusion` can be checked against
    the truth without any training.

    Args:
        weights: ``[K]`` positive mixture weights (normalised to sum to 1).
        means: ``[K]`` component means.
        std: the components' common standard deviation, ``> 0``.

    Call: ``x`` ``[B, 1]`` and ``sigma`` ``[B]`` (``> 0``, or 0 for the data itself) ->
    ``[B, 1]``.
    """

    def __init__(
        self, weights: Sequence[float] | Tensor, means: Sequence[float] | Tensor, std: float
    ) -> None:
        w = torch.as_tensor(weights, dtype=torch.float32).reshape(-1)
        mu = torch.as_tensor(means, dtype=torch.float32).reshape(-1)
        if len(w) < 1 or mu.shape != w.shape:
            raise ValueError(
                f"need weights [K] and means [K] with K >= 1, got shapes {tuple(w.shape)} "
                f"and {tuple(mu.shape)}"
            )
        if not bool((w > 0).all()):
            raise ValueError(f"weights must be positive, got {w.tolist()}")
        self.weights, self.means = w / w.sum(), mu
        self.std = checks.number("std", std, 0.0, open_low=True)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        if x.dim() != 2 or x.shape[1] != 1 or sigma.shape != x.shape[:1]:
            raise ValueError(
                f"need x [B, 1] and sigma [B], got {tuple(x.shape)} and {tuple(sigma.shape)}"
            )
        variance = self.std**2 + sigma[:, None] ** 2  # [B, 1]: each component's, once blurred
        log_joint = self.weights.log().to(x) - 0.5 * (x - self.means.to(x)) ** 2 / variance
        responsibility = log_joint.softmax(dim=1)  # [B, K]; the common 1/sqrt(2 pi var) cancels
        return (responsibility * (self.means.to(x) - x) / variance).sum(dim=1, keepdim=True)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` draws from the (unblurred) mixture: float32 ``[n, 1]``."""
        checks.positive_int("n", n, maximum=10**8)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, generator=generator)
        return (self.means[component] + self.std * noise)[:, None]


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
