"""Tests for ebm_course.plots: every figure is built from small real tensors (Agg backend)."""

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ebm_course.plots import (  # noqa: E402
    image_grid,
    plot_density_2d,
    plot_history,
    plot_score_histograms,
    plot_trajectory,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _drawn_array(fig: Figure, axes_index: int = 0) -> np.ndarray:
    images = fig.axes[axes_index].get_images()
    assert len(images) == 1
    return np.asarray(images[0].get_array())


# ------------------------------------------------------------------------ image_grid


def test_image_grid_size_matches_make_grid():
    fig = image_grid(torch.rand(8, 1, 28, 28) * 2 - 1, nrow=8)
    assert isinstance(fig, Figure)
    array = _drawn_array(fig)
    assert array.shape == (32, 8 * 30 + 2, 3)
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [] and list(ax.get_yticks()) == []


def test_image_grid_two_rows_and_title():
    fig = image_grid(torch.rand(10, 1, 28, 28), nrow=4, title="samples")
    assert _drawn_array(fig).shape == (3 * 30 + 2, 4 * 30 + 2, 3)
    assert fig.axes[0].get_title() == "samples"


def test_image_grid_value_scaling_and_padding():
    images = torch.empty(2, 1, 4, 4)
    images[0] = -1.0
    images[1] = 1.0
    array = _drawn_array(image_grid(images, nrow=2, padding=2, pad_value=0.5))
    assert array.shape == (8, 14, 3)
    np.testing.assert_allclose(array[2:6, 2:6], 0.0)  # -1 -> black
    np.testing.assert_allclose(array[2:6, 8:12], 1.0)  # +1 -> white
    np.testing.assert_allclose(array[0, :], 0.5)  # padding
    np.testing.assert_allclose(array[:, 6:8], 0.5)


def test_image_grid_clamps_and_custom_range_and_does_not_modify_input():
    images = torch.tensor([0.0, 0.5, 1.0, 3.0]).reshape(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    before = images.clone()
    array = _drawn_array(image_grid(images, nrow=4, value_range=(0.0, 1.0), padding=0))
    np.testing.assert_allclose(array[0, ::2, 0], [0.0, 0.5, 1.0, 1.0])
    assert torch.equal(images, before)


def test_image_grid_draws_into_given_axes():
    fig, axes = plt.subplots(1, 2)
    out = image_grid(torch.rand(3, 3, 8, 8), ax=axes[1])
    assert out is fig
    assert len(axes[1].get_images()) == 1 and len(axes[0].get_images()) == 0


@pytest.mark.parametrize("shape", [(1, 28, 28), (4, 2, 28, 28), (2, 1, 1, 28, 28), (0, 1, 4, 4)])
def test_image_grid_rejects_bad_shapes(shape):
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        image_grid(torch.zeros(shape))


# ------------------------------------------------------------------- plot_trajectory


def _tiny_trajectory(steps: int = 16, chains: int = 3) -> torch.Tensor:
    # chain i at step s (0-based) is a constant image of value (s + 1) / steps * 2 - 1
    values = (torch.arange(1, steps + 1, dtype=torch.float32) / steps) * 2 - 1
    traj = values.reshape(steps, 1, 1, 1, 1).expand(steps, chains, 1, 6, 6).clone()
    return traj


def test_trajectory_columns_ticks_and_content():
    steps, chains, vis = 16, 3, 4
    traj = _tiny_trajectory(steps, chains)
    fig = plot_trajectory(traj, vis_steps=vis)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    array = _drawn_array(fig)
    # one row per chain, vis + 1 columns of 6x6 tiles with padding 2
    assert array.shape == (chains * 8 + 2, (vis + 1) * 8 + 2, 3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "4", "8", "12", "16"]
    assert len(ax.get_yticks()) == chains
    assert ax.get_xlabel() == "Langevin step"
    # column j > 0 shows step j*k (1-based): value (j*k)/steps*2-1 mapped to [0, 1] = j*k/steps
    k = steps // vis
    for j in range(vis + 1):
        step = 1 if j == 0 else j * k
        tile = array[2:8, 2 + j * 8 : 8 + j * 8, 0]
        np.testing.assert_allclose(tile, step / steps, atol=1e-6)


def test_trajectory_start_and_max_chains():
    traj = _tiny_trajectory(8, 5)
    start = torch.full((5, 1, 6, 6), -1.0)
    fig = plot_trajectory(traj, vis_steps=8, max_chains=2, start=start)
    array = _drawn_array(fig)
    assert array.shape == (2 * 8 + 2, 9 * 8 + 2, 3)
    np.testing.assert_allclose(array[2:8, 2:8], 0.0)  # start column is the given start
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert labels == ["1", "1", "2", "3", "4", "5", "6", "7", "8"]


def test_trajectory_uneven_steps_keeps_vis_steps_columns():
    fig = plot_trajectory(_tiny_trajectory(10, 1), vis_steps=4)  # k = 2, 5 candidates
    assert len(fig.axes[0].get_xticks()) == 5
    assert _drawn_array(fig).shape[1] == 5 * 8 + 2


def test_trajectory_errors():
    with pytest.raises(ValueError, match=re.escape("(3, 1, 6, 6)")):
        plot_trajectory(torch.zeros(3, 1, 6, 6))
    with pytest.raises(ValueError, match="vis_steps"):
        plot_trajectory(_tiny_trajectory(4, 1), vis_steps=5)
    with pytest.raises(ValueError, match="start"):
        plot_trajectory(_tiny_trajectory(4, 2), vis_steps=2, start=torch.zeros(3, 1, 6, 6))


# ---------------------------------------------------------------------- plot_history


class _FakeHistory:
    def __init__(self, data):
        self._data = data

    def to_dict(self):
        return dict(self._data)


FULL_HISTORY = {
    "epoch": [1, 2, 3],
    "loss": [0.5, 0.3, 0.2],
    "reg_loss": [0.1, 0.05, 0.04],
    "cdiv": [0.4, 0.25, 0.16],
    "real_score": [0.1, 0.2, 0.3],
    "fake_score": [-0.1, -0.2, -0.3],
    "val_cdiv": [0.5, 0.4, 0.35],
    "noise_score": [-1.0, -2.0, -3.0],
    "lr": [1e-4, 1e-4, 9.7e-5],
    "seconds": [10.0, 9.0, 9.5],
}


def test_history_all_panels_from_object():
    fig = plot_history(_FakeHistory(FULL_HISTORY))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    assert labels == [
        ["loss", "reg_loss", "cdiv"],
        ["real_score", "fake_score", "noise_score"],
        ["val_cdiv"],
        ["lr"],
    ]
    np.testing.assert_allclose(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])
    assert fig.axes[3].get_yscale() == "log"


def test_history_skips_absent_and_empty_keys_and_uses_index():
    data = {"loss": [1.0, 0.5], "cdiv": [0.2, 0.1], "val_cdiv": [], "lr": []}
    fig = plot_history(data)
    assert len(fig.axes) == 1
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), [0, 1])
    np.testing.assert_allclose(line.get_ydata(), [1.0, 0.5])


def test_history_keys_selection_and_errors():
    fig = plot_history(FULL_HISTORY, keys=["fake_score", "seconds"])
    assert len(fig.axes) == 2
    assert [line.get_label() for line in fig.axes[0].get_lines()] == ["fake_score"]
    assert [line.get_label() for line in fig.axes[1].get_lines()] == ["seconds"]
    with pytest.raises(ValueError, match="val_cdiv"):
        plot_history({"loss": [1.0]}, keys=["val_cdiv"])
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_history({"epoch": [1], "seconds": [1.0]})


# -------------------------------------------------------------- plot_score_histograms


def test_score_histograms_one_artist_per_key():
    scores = {
        "real": torch.randn(200) + 2,
        "fake": np.random.default_rng(0).normal(size=150),
        "noise": torch.randn(100) - 3,
    }
    fig = plot_score_histograms(scores, bins=20, title="scores")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["real", "fake", "noise"]
    assert ax.get_xlabel().startswith("score f(x) = -E(x)")
    assert ax.get_title() == "scores"


def test_score_histograms_are_densities():
    fig = plot_score_histograms({"a": torch.rand(1000)}, bins=10)
    # the step outline's top edge is the density; bin width 0.1 -> total area ~ 1
    verts = fig.axes[0].collections[0].get_paths()[0].vertices
    assert verts[:, 1].max() > 0.5 and verts[:, 1].max() < 2.0


def test_score_histograms_errors():
    with pytest.raises(ValueError, match="non-empty"):
        plot_score_histograms({})
    with pytest.raises(ValueError, match="'fake'"):
        plot_score_histograms({"real": torch.zeros(3), "fake": torch.tensor([0.0, float("nan")])})
    with pytest.raises(ValueError, match="'noise'"):
        plot_score_histograms({"noise": np.array([1.0, np.inf])})


# -------------------------------------------------------------------- plot_density_2d


def test_density_2d_normalised_peak_and_data():
    calls = []

    def score_fn(x):
        calls.append((tuple(x.shape), torch.is_grad_enabled()))
        return -((x - torch.tensor([1.0, -1.0])) ** 2).sum(dim=1)

    data = torch.randn(20, 2)
    fig = plot_density_2d(score_fn, (-3, 3), (-2, 2), n=61, data=data, title="toy")
    assert calls == [((61 * 61, 2), False)]
    density = _drawn_array(fig)
    assert density.shape == (61, 61)
    cell = (6 / 60) * (4 / 60)
    assert density.sum() * cell == pytest.approx(1.0)
    row, col = np.unravel_index(np.argmax(density), density.shape)
    xs, ys = np.linspace(-3, 3, 61), np.linspace(-2, 2, 61)
    assert xs[col] == pytest.approx(1.0) and ys[row] == pytest.approx(-1.0)
    ax = fig.axes[0]
    half_dx, half_dy = 6 / 60 / 2, 4 / 60 / 2
    np.testing.assert_allclose(
        ax.get_images()[0].get_extent(), [-3 - half_dx, 3 + half_dx, -2 - half_dy, 2 + half_dy]
    )
    assert ax.get_xlim() == (-3, 3) and ax.get_ylim() == (-2, 2)
    assert len(ax.collections) == 1 and ax.get_title() == "toy"


def test_density_2d_module_and_errors():
    model = torch.nn.Linear(2, 1)
    fig = plot_density_2d(model, (-1, 1), (-1, 1), n=5)
    assert _drawn_array(fig).shape == (5, 5)
    with pytest.raises(ValueError, match="shape"):
        plot_density_2d(lambda x: x, (-1, 1), (-1, 1), n=5)
    with pytest.raises(ValueError, match="xlim"):
        plot_density_2d(lambda x: x[:, 0], (1, -1), (-1, 1))
    with pytest.raises(ValueError, match=re.escape("(4, 3)")):
        plot_density_2d(lambda x: x[:, 0], (-1, 1), (-1, 1), data=torch.zeros(4, 3))
