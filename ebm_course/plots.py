"""Figures for the course: image grids, MCMC trajectories, training curves, score histograms
and 2-D densities.

Sign convention (as everywhere in :mod:`ebm_course`): a model returns the *score*
``f(x) = -E(x)``; higher score = lower energy = more likely. Images are float tensors
``[B, C, H, W]`` with pixels in ``[-1, 1]`` unless a ``value_range`` says otherwise.

Every function returns a :class:`matplotlib.figure.Figure` and never calls ``plt.show()`` or
sets the matplotlib backend: in a notebook the figure displays itself, in a script call
``fig.savefig(...)``. Functions that accept ``ax`` draw into that axes and return its figure.
``torchvision`` and ``seaborn`` are imported inside the functions that need them, so
importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from . import checks
from .training.history import PANELS
from .utils import model_device

__all__ = [
    "image_grid",
    "plot_trajectory",
    "plot_history",
    "plot_score_histograms",
    "plot_density_2d",
    "HISTORY_PANELS",
]

# Panels of ``plot_history``: (title, y label, keys), defined in ebm_course.training.history.
HISTORY_PANELS = PANELS


# --------------------------------------------------------------------------- helpers
def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes (or None), got {type(ax).__name__}")
    if ax is not None:
        return ax.figure, ax
    return plt.subplots(figsize=figsize)


def _grid_tensor(
    images: Tensor, nrow: int, value_range: tuple, padding: int, pad_value: float
) -> Tensor:
    """``torchvision.utils.make_grid`` with normalisation to [0, 1]: ``[3, H', W']``."""
    from torchvision.utils import make_grid

    options = {"normalize": True, "value_range": value_range, "padding": padding}
    return make_grid(images.detach().cpu().float(), nrow=nrow, pad_value=pad_value, **options)


def _check_images(images: Any, name: str = "images") -> None:
    if not isinstance(images, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] not in (1, 3) or images.shape[0] < 1:
        raise ValueError(
            f"{name} must have shape [B, C, H, W] with B >= 1 and C in {{1, 3}}, "
            f"got shape {tuple(images.shape)}"
        )
    if images.is_floating_point() and not torch.isfinite(images).all():
        raise ValueError(f"{name} contains NaN or Inf values")


# ------------------------------------------------------------------------ image grid
def image_grid(
    images: Tensor,
    nrow: int = 8,
    ax: Axes | None = None,
    title: str | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    padding: int = 2,
    pad_value: float = 0.5,
) -> Figure:
    """Show a batch of images as one grid (``torchvision.utils.make_grid``).

    Args:
        images: ``[B, C, H, W]`` with ``C`` in {1, 3}, any device/dtype (detached and
            copied to the CPU as float32). Pixels are clamped to ``value_range`` and
            mapped linearly to [0, 1] (``low`` -> black, ``high`` -> white).
        nrow: images per row of the grid.
        ax: axes to draw into; a new figure is made when ``None``.
        title: optional axes title.
        value_range: ``(low, high)`` of the pixel values, ``(-1, 1)`` for the course data.
        padding: pixels between (and around) the images.
        pad_value: colour of the padding in the displayed [0, 1] scale (0.5 = grey).

    Returns:
        The figure. Its axes hold one ``AxesImage`` whose array is the grid,
        ``[rows * (H + padding) + padding, ncols * (W + padding) + padding, 3]`` in
        [0, 1] (``make_grid`` returns a single image unpadded when ``B == 1``).

    Raises:
        ValueError: for a shape other than ``[B, C, H, W]`` with C in {1, 3}, a bad
            ``nrow``/``padding`` or an invalid ``value_range``.
    """
    _check_images(images)
    checks.positive_int("nrow", nrow)
    checks.positive_int("padding", padding, minimum=0)
    value_range = checks.value_range("value_range", value_range)
    checks.number("pad_value", pad_value)

    grid = _grid_tensor(images, nrow, value_range, padding, pad_value)
    array = grid.permute(1, 2, 0).numpy()
    ncols = min(nrow, images.shape[0])
    nrows = math.ceil(images.shape[0] / ncols)
    fig, ax = _new_axes(ax, figsize=(max(2.0, 0.9 * ncols), max(2.0, 0.9 * nrows)))
    ax.imshow(array, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title)
    return fig


# ------------------------------------------------------------------ MCMC trajectory

_TRAJECTORY_PADDING = 2  # pixels between the tiles (the tick positions depend on it)


def plot_trajectory(
    trajectory: Tensor,
    vis_steps: int = 8,
    max_chains: int | None = None,
    start: Tensor | None = None,
) -> Figure:
    """The tutorial's MCMC figure: a few snapshots of each Langevin chain.

    With ``k = steps // vis_steps``, each chain (``trajectory[:, i]``) gets one row: its
    starting image (``start[i]`` if given, else ``trajectory[0, i]``) followed by
    ``trajectory[k-1::k, i]`` (the samples after steps ``k, 2k, ..., vis_steps * k``), so
    ``vis_steps + 1`` columns. As in the tutorial, the x tick labels are the 1-based step
    numbers ``1, k, 2k, ...`` (the first column is labelled 1 even when it shows ``start``,
    the input to step 1).

    Args:
        trajectory: ``[steps, B, C, H, W]`` (e.g. ``langevin(..., return_trajectory=True)``),
            pixels in [-1, 1], C in {1, 3}.
        vis_steps: number of snapshots after the start (1 <= vis_steps <= steps).
        max_chains: show only the first ``max_chains`` chains (all when ``None``).
        start: optional starting images ``[B, C, H, W]`` (the sampler's input).

    Returns:
        The figure: one image (a ``make_grid`` of ``chains x (vis_steps + 1)`` tiles),
        x label "Langevin step", one y tick per chain.

    Raises:
        ValueError: for a trajectory that is not 5-D ``[steps, B, C, H, W]``, a ``start``
            whose shape is not ``trajectory.shape[1:]``, or ``vis_steps`` outside ``[1, steps]``.
    """
    chains = _check_trajectory(trajectory, vis_steps, max_chains, start)
    k = trajectory.shape[0] // vis_steps  # show the sample after every k-th step
    first = (trajectory[0] if start is None else start)[:chains].detach().cpu().float()
    snaps = trajectory[k - 1 :: k][:vis_steps, :chains].detach().cpu().float()  # [V, B', ...]
    columns = vis_steps + 1
    tiles = torch.cat([first.unsqueeze(0), snaps], dim=0)  # [columns, B', C, H, W]
    tiles = tiles.transpose(0, 1).reshape(-1, *tiles.shape[2:])  # chain-major rows

    grid = _grid_tensor(tiles, columns, (-1.0, 1.0), _TRAJECTORY_PADDING, 0.5)
    fig, ax = plt.subplots(figsize=(max(3.0, 1.0 * columns), max(1.5, 1.0 * chains + 0.6)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), vmin=0.0, vmax=1.0, interpolation="nearest")
    step_labels = [1] + [k * j for j in range(1, vis_steps + 1)]
    _label_trajectory_axes(ax, tiles.shape[-2:], step_labels, chains)
    fig.tight_layout()
    return fig


def _check_trajectory(trajectory: Any, vis_steps: Any, max_chains: Any, start: Any) -> int:
    """Check the arguments of :func:`plot_trajectory`; return the number of chains to show."""
    if not isinstance(trajectory, Tensor):
        raise TypeError(f"trajectory must be a torch.Tensor, got {type(trajectory).__name__}")
    if trajectory.dim() != 5 or trajectory.shape[2] not in (1, 3) or 0 in trajectory.shape[:2]:
        raise ValueError(
            "trajectory must have shape [steps, B, C, H, W] with steps, B >= 1 and C in {1, 3}, "
            f"got shape {tuple(trajectory.shape)}"
        )
    checks.positive_int("vis_steps", vis_steps)
    steps, chains = trajectory.shape[0], trajectory.shape[1]
    if vis_steps > steps:
        raise ValueError(
            f"vis_steps ({vis_steps}) must be <= the number of steps in the trajectory ({steps})"
        )
    if max_chains is not None:
        checks.positive_int("max_chains", max_chains)
        chains = min(chains, max_chains)
    expected = tuple(trajectory.shape[1:])
    if start is not None and not isinstance(start, Tensor):
        raise TypeError(f"start must be a torch.Tensor, got {type(start).__name__}")
    if start is not None and tuple(start.shape) != expected:
        got = tuple(start.shape)
        raise ValueError(f"start must have shape {expected} (trajectory.shape[1:]), got {got}")
    return chains


def _label_trajectory_axes(ax: Axes, tile_hw: Sequence[int], steps: list[int], chains: int) -> None:
    """Ticks at the tile centres: the step numbers along x, the chain index along y."""
    (h, w), pad = tile_hw, _TRAJECTORY_PADDING
    ax.set_xticks([pad + j * (w + pad) + (w - 1) / 2 for j in range(len(steps))])
    ax.set_xticklabels([str(s) for s in steps])
    ax.set_yticks([pad + i * (h + pad) + (h - 1) / 2 for i in range(chains)])
    ax.set_yticklabels([str(i) for i in range(chains)])
    ax.set_xlabel("Langevin step")
    ax.set_ylabel("chain")
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)


# -------------------------------------------------------------------- training curves
def _history_dict(history: Any) -> dict[str, list]:
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if not isinstance(history, Mapping):
        raise TypeError(
            "history must be a training History (with .to_dict()) or a dict of lists, "
            f"got {type(history).__name__}"
        )
    bad = [k for k, v in history.items() if isinstance(v, str) or not isinstance(v, Iterable)]
    if bad:
        raise TypeError(f"history[{bad[0]!r}] must be a list (one value per epoch)")
    return {str(key): list(values) for key, values in history.items()}


def _as_float(values: list, key: str) -> np.ndarray:
    """``values`` as floats (``None``: NaN); a TypeError naming ``history[key]`` otherwise."""
    try:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"history[{key!r}] must hold numbers (or None)") from None


def plot_history(history: Any, keys: Sequence[str] | None = None) -> Figure:
    """Training curves per epoch, one panel per group of related quantities.

    Panels (each drawn only if at least one of its keys is present and non-empty): (1)
    ``loss``, ``reg_loss``, ``cdiv``; (2) ``real_score``, ``fake_score``, ``noise_score``
    (scores ``f(x) = -E(x)``); (3) ``val_cdiv``; (4) ``lr`` (log scale when all positive).
    Any key in ``keys`` outside these groups gets a panel of its own.

    Args:
        history: an ``ebm_course.training.History`` (anything with ``.to_dict()``) or a
            mapping ``name -> list`` with one value per epoch (``None`` = missing).
        keys: restrict the plot to these keys (each must be present and non-empty);
            all known keys present when ``None``.

    Returns:
        The figure, one axes per panel drawn. The x axis is ``history["epoch"]`` when present
        (and of matching length), else the index 0, 1, ...

    Raises:
        ValueError: when a requested key is missing or empty, or nothing is left to plot.
    """
    data = _history_dict(history)
    panels = _history_panels(data, keys)
    drawn = [key for panel in panels for key in panel[2]] + [k for k in ["epoch"] if k in data]
    curves = {key: _as_float(data[key], key) for key in drawn}  # checked before a figure
    size = (4.2 * len(panels), 3.4)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False, layout="constrained")
    for ax, panel in zip(axes[0], panels, strict=True):
        _draw_history_panel(ax, panel, curves)
    return fig


def _history_panels(data: dict[str, list], keys: str | Sequence[str] | None) -> list[tuple]:
    """``(title, y label, keys)`` per panel: the known groups present in ``data``, then one
    panel per requested key outside them. A requested key must be present and non-empty."""
    present = {key for key, values in data.items() if len(values) > 0}
    if keys is not None and not isinstance(keys, str | Iterable):
        raise TypeError(f"keys must be a key or a list of keys, got {type(keys).__name__}")
    if keys is not None:
        keys = [keys] if isinstance(keys, str) else list(keys)
        missing = [key for key in keys if key not in present]
        if missing:
            raise ValueError(
                f"history has no (non-empty) values for {missing}; present: {sorted(present)}"
            )
    wanted = present if keys is None else set(keys)
    panels: list[tuple[str, str, list[str]]] = []
    known: set[str] = set()
    for title, ylabel, group in HISTORY_PANELS:
        known.update(group)
        chosen = [key for key in group if key in wanted and key in present]
        if chosen:
            panels.append((title, ylabel, chosen))
    if keys is not None:
        panels += [(key, key, [key]) for key in keys if key not in known]
    if not panels:
        raise ValueError(
            f"nothing to plot: none of the known keys are present in history (keys: {sorted(data)})"
        )
    return panels


def _draw_history_panel(ax: Axes, panel: tuple, curves: dict[str, np.ndarray]) -> None:
    """One curve per key of ``panel`` against the epochs (or the index when they do not fit)."""
    title, ylabel, group = panel
    epochs = curves.get("epoch", np.empty(0))
    all_positive = True
    for key in group:
        y = curves[key]
        x = epochs if len(epochs) == len(y) else np.arange(len(y), dtype=float)
        ax.plot(x, y, marker="o" if len(y) <= 20 else None, markersize=3, label=key)
        finite = y[np.isfinite(y)]
        all_positive = all_positive and finite.size > 0 and bool(np.all(finite > 0))
    if group == ["lr"] and all_positive:  # learning rates span decades
        ax.set_yscale("log")
    ax.set_title(title)
    ax.set_xlabel("epoch" if len(epochs) > 0 else "index")
    ax.set_ylabel(ylabel)
    if len(group) > 1:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------- score histograms
def plot_score_histograms(
    scores: Mapping[str, Tensor | np.ndarray],
    bins: int = 50,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Overlaid histograms (``seaborn.histplot``) of named sets of scores.

    Typical use: scores of real images, of model samples and of noise, to see how far apart
    the model pushes them. All sets share the same ``bins`` bin edges (spanning every value)
    and each is normalised to a density on its own (``stat="density", common_norm=False``),
    drawn as a step outline (``element="step"``).

    Args:
        scores: ``name -> scores`` (tensors or arrays of any shape, flattened; all values
            must be finite). Names become the legend labels, in order.
        bins: number of bins.
        ax: axes to draw into; a new figure is made when ``None``.
        title: optional axes title.

    Returns:
        The figure: one histogram per name (one ``PolyCollection`` each), with a legend.

    Raises:
        ValueError: for an empty mapping, an empty set of scores, or non-finite scores (the
            message names the key).
    """
    import seaborn as sns

    if not isinstance(scores, Mapping):
        raise TypeError(f"scores must be a mapping name -> scores, got {type(scores).__name__}")
    if len(scores) == 0:
        raise ValueError("scores must be a non-empty mapping name -> scores")
    checks.positive_int("bins", bins)
    arrays = _score_arrays(scores)
    edges = _shared_bin_edges(arrays.values(), bins)

    fig, ax = _new_axes(ax, figsize=(6.0, 3.8))
    # each set is a density of its own, drawn as an outline so that the overlaps stay visible
    style = {"stat": "density", "common_norm": False, "element": "step", "alpha": 0.3}
    for name, array in arrays.items():
        sns.histplot(x=array, bins=edges, label=name, ax=ax, **style)
    ax.set_xlabel("score f(x) = -E(x)  (higher = more likely)")
    ax.set_ylabel("density")
    ax.legend()
    if title is not None:
        ax.set_title(title)
    return fig


def _score_arrays(scores: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Each set of scores flattened to a float array, checked to be non-empty and finite."""
    arrays: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        if isinstance(values, Tensor):
            values = values.detach().cpu().double().numpy()
        array = None
        if values is not None and not isinstance(values, str):
            with contextlib.suppress(TypeError, ValueError):
                array = np.asarray(values, dtype=float).reshape(-1)
        if array is None:
            raise TypeError(f"scores[{name!r}] must be an array of numbers, got {values!r:.40}")
        if array.size == 0:
            raise ValueError(f"scores[{name!r}] is empty")
        if not np.all(np.isfinite(array)):
            bad = int(np.sum(~np.isfinite(array)))
            raise ValueError(f"scores[{name!r}] has {bad} non-finite value(s) (nan/inf)")
        arrays[str(name)] = array
    return arrays


def _shared_bin_edges(arrays: Iterable[np.ndarray], bins: int) -> np.ndarray:
    """``bins + 1`` equally spaced edges from the smallest to the largest value of all arrays."""
    everything = np.concatenate(list(arrays))
    lo, hi = float(everything.min()), float(everything.max())
    if lo == hi:  # a single value everywhere: give the bins some width
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, bins + 1)


# ---------------------------------------------------------------------- 2-D density
def plot_density_2d(
    score_fn: Callable[[Tensor], Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    n: int = 200,
    data: Tensor | None = None,
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """Show the model density ``q(x) ∝ exp(f(x))`` of a 2-D energy model on a grid.

    The score is evaluated (under ``torch.no_grad()``) at the ``n x n`` grid points spanning
    ``xlim x ylim`` in one batch, and ``exp(f - max f)`` normalised so that it integrates to 1
    over the grid (sum * cell area = 1) is drawn with ``imshow`` (``origin="lower"``, pixel
    centres on the grid points, axes limits ``xlim``, ``ylim``).

    Args:
        score_fn: maps points ``[N, 2]`` (float32; on the module's device when
            ``score_fn`` is an ``nn.Module``, else CPU) to scores ``[N]`` (or ``[N, 1]``).
        xlim, ylim: ``(min, max)`` of the grid along x and along y.
        n: grid points per axis (>= 2).
        data: optional points ``[M, 2]`` scattered on top (e.g. training data).
        ax, title: axes to draw into (a new figure when ``None``) and an optional title.

    Returns:
        The figure; its ``AxesImage`` holds the ``[n, n]`` density (row = y, column = x).

    Raises:
        TypeError, ValueError: bad limits, ``n`` or ``data`` (``[M, 2]``), NaN or misshapen scores.
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    x0, x1 = checks.value_range("xlim", xlim)
    y0, y1 = checks.value_range("ylim", ylim)
    checks.positive_int("n", n, minimum=2, maximum=4096)  # n^2 points in one batch
    if data is not None and not isinstance(data, Tensor):
        raise TypeError(f"data must be a torch.Tensor [M, 2], got {type(data).__name__}")
    if data is not None and (data.dim() != 2 or data.shape[1] != 2):
        raise ValueError(f"data must be a tensor of shape [M, 2], got {tuple(data.shape)}")

    score = _grid_scores(score_fn, (x0, x1), (y0, y1), n)
    density = np.exp(score - score.max())  # shifted by max f, so that exp cannot overflow
    dx, dy = (x1 - x0) / (n - 1), (y1 - y0) / (n - 1)
    density /= density.sum() * dx * dy

    own_figure = ax is None
    fig, ax = _new_axes(ax, figsize=(4.8, 4.2))
    # pixel centres on the grid points: the image reaches half a cell past the limits
    extent = (x0 - dx / 2, x1 + dx / 2, y0 - dy / 2, y1 + dy / 2)
    _draw_density(ax, density, extent, colorbar=own_figure)
    if data is not None:
        pts = data.detach().cpu().float().numpy()
        ax.scatter(pts[:, 0], pts[:, 1], s=4, c="white", alpha=0.6, edgecolors="none")
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title is not None:
        ax.set_title(title)
    return fig


def _grid_scores(score_fn: Callable, xlim: tuple, ylim: tuple, n: int) -> np.ndarray:
    """``score_fn`` at the ``n x n`` grid points, in one batch: float64 ``[n, n]``, row = y."""
    device = model_device(score_fn) if isinstance(score_fn, torch.nn.Module) else "cpu"
    xs = torch.linspace(*xlim, n, device=device)
    ys = torch.linspace(*ylim, n, device=device)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")  # [n, n], row = y
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    with torch.no_grad():
        out = torch.as_tensor(score_fn(points))
    if out.dim() == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if tuple(out.shape) != (n * n,):
        raise ValueError(
            f"score_fn must map [N, 2] points to scores [N]; for N = {n * n} it returned "
            f"shape {tuple(out.shape)}"
        )
    score = out.detach().double().cpu().numpy().reshape(n, n)
    if np.isnan(score).any() or not np.isfinite(score.max()):
        raise ValueError("score_fn returned NaN or +inf scores on the grid")
    return score


def _draw_density(ax: Axes, density: np.ndarray, extent: tuple, colorbar: bool) -> None:
    """``density`` ``[n, n]`` as an image over ``extent``, row 0 at the bottom."""
    style = {"origin": "lower", "aspect": "auto", "cmap": "viridis", "interpolation": "nearest"}
    image = ax.imshow(density, extent=extent, **style)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="density")
