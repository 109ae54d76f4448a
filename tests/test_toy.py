"""Tests for ebm_course.toy: toy data, true densities and exact grid normalisation."""

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ebm_course.models import MLPEnergy  # noqa: E402
from ebm_course.toy import (  # noqa: E402
    DATASETS,
    BlurredMixture1D,
    GaussianScore,
    Grid,
    MixtureScore,
    log_density,
    log_partition,
    nll,
    plot_comparison,
    sample,
    true_log_density,
)

torch.set_num_threads(1)

MEAN, STD = (0.1, -0.2), 0.15
FINE = Grid(n=200)  # cells of 0.01: <= std / 2.5 for every Gaussian feature of the toys


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def true_density_on_grid() -> dict[str, torch.Tensor]:
    """True density of each data set at FINE's cell centres, float64 ``[n, n]`` (row = y)."""
    pts = FINE.points.double()
    return {name: true_log_density(name, pts).exp().reshape(FINE.n, FINE.n) for name in DATASETS}


# ------------------------------------------------------------------------ data sets


@pytest.mark.parametrize("name", DATASETS)
def test_sample_shape_range_and_reproducible(name):
    x = sample(name, 500, generator=torch.Generator().manual_seed(1))
    assert x.shape == (500, 2) and x.dtype == torch.float32
    assert x.abs().max() <= 1.0
    assert x.std(dim=0).min() > 0.1  # spread over the square, not collapsed
    again = sample(name, 500, generator=torch.Generator().manual_seed(1))
    other = sample(name, 500, generator=torch.Generator().manual_seed(2))
    assert torch.equal(x, again)
    assert not torch.equal(x, other)


@pytest.mark.parametrize("name", DATASETS)
def test_true_density_integrates_to_one(name, true_density_on_grid):
    mass = float(true_density_on_grid[name].sum()) * FINE.cell_area
    assert mass == pytest.approx(1.0, abs=1e-2)


@pytest.mark.parametrize("name", DATASETS)
def test_samples_follow_true_density(name, true_density_on_grid):
    """sample() draws from true_log_density: 8x8-bin histogram (total variation) and mean log p."""
    bins, per_bin = 8, FINE.n // 8
    expected = true_density_on_grid[name].reshape(bins, per_bin, bins, per_bin).sum((1, 3))
    expected = expected * FINE.cell_area
    x = sample(name, 20_000, generator=torch.Generator().manual_seed(0)).double()
    idx = ((x + 1) / 2 * bins).long().clamp(0, bins - 1)
    counts = torch.zeros(bins, bins, dtype=torch.float64)
    counts.index_put_((idx[:, 1], idx[:, 0]), torch.ones(len(x), dtype=torch.float64), True)
    tv = 0.5 * float((counts / len(x) - expected).abs().sum())
    assert tv < 0.05
    # finer check: E_samples[log p] (cross-entropy) equals E_p[log p] only if they match
    p = true_density_on_grid[name]
    expected_log_p = float(torch.where(p > 0, p * p.log(), 0.0).sum()) * FINE.cell_area
    mc_log_p = float(true_log_density(name, x).mean())  # Monte Carlo error ~0.01
    assert mc_log_p == pytest.approx(expected_log_p, abs=0.05)


def test_true_log_density_values():
    # eight Gaussians: at a centre, 1/8 of a peak of 1/(2 pi s^2) (other centres are far)
    at_centre = true_log_density("eight_gaussians", torch.tensor([[0.7, 0.0]]))
    assert float(at_centre) == pytest.approx(math.log(1 / (8 * 2 * math.pi * 0.05**2)), abs=1e-6)
    board = true_log_density("checkerboard", torch.tensor([[-0.7, -0.7], [-0.3, -0.7], [0.9, 0]]))
    assert board[0] == pytest.approx(-math.log(1.28))
    assert torch.isneginf(board[1:]).all()
    for name in DATASETS:  # finite, never NaN, with the input's dtype
        out = true_log_density(name, torch.zeros(3, 2, dtype=torch.float32))
        assert out.shape == (3,) and out.dtype == torch.float32 and not out.isnan().any()


def test_errors():
    with pytest.raises(ValueError, match="eight_gaussians"):
        sample("spirals", 10)
    with pytest.raises(ValueError, match="checkerboard"):
        true_log_density("spirals", torch.zeros(1, 2))
    for bad, error in ((0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="n must be"):
            sample("rings", bad)
    with pytest.raises(ValueError, match=r"\[N, 2\]"):
        true_log_density("rings", torch.zeros(4, 3))
    with pytest.raises(ValueError):
        Grid(lim=(1.0, -1.0))
    with pytest.raises(ValueError):
        Grid(n=0)
    with pytest.raises(ValueError, match="inside the grid"):
        nll(GaussianScore(MEAN, STD), torch.tensor([[1.5, 0.0]]))


# -------------------------------------------------------------------- normalisation


def test_grid_geometry():
    grid = Grid(lim=(-1.0, 1.0), n=4)
    assert torch.allclose(grid.xs, torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert grid.points.shape == (16, 2)
    assert torch.allclose(grid.points[1], torch.tensor([-0.25, -0.75]))  # x varies fastest
    assert grid.cell_area == pytest.approx(0.25)


def test_log_partition_matches_analytic_gaussian():
    model = GaussianScore(mean=MEAN, std=STD)
    # mass of the Gaussian outside [-1, 1]^2: 1 - prod over axes of P(-1 < X_i < 1)
    inside = 1.0
    for m in MEAN:
        cdf = lambda z, m=m: 0.5 * (1 + math.erf((z - m) / (STD * math.sqrt(2))))
        inside *= cdf(1.0) - cdf(-1.0)
    assert 1 - inside < 1e-6  # nearest edge is 0.8 = 5.3 std away: ~5e-8 is outside
    assert log_partition(model) == pytest.approx(model.log_partition_exact(), abs=1e-3)
    assert model.log_partition_exact() == pytest.approx(math.log(2 * math.pi * STD**2))
    # batching does not change the result
    assert log_partition(model, batch_size=999) == pytest.approx(log_partition(model), abs=1e-9)


@pytest.mark.parametrize("kind", ["gaussian", "mlp"])
def test_log_density_integrates_to_one(kind):
    model = GaussianScore(MEAN, STD) if kind == "gaussian" else MLPEnergy(hidden=16, depth=2)
    grid = Grid(n=100)
    with torch.no_grad():
        density = log_density(model, grid.points, grid).double().exp()
    assert float(density.sum()) * grid.cell_area == pytest.approx(1.0, abs=1e-6)


def test_nll_matches_true_density_for_gaussian():
    model = GaussianScore(MEAN, STD)
    data = model.sample(5000, generator=torch.Generator().manual_seed(0))
    assert data.abs().max() <= 1.0
    exact = -float(model.log_prob(data).double().mean())
    assert nll(model, data) == pytest.approx(exact, abs=1e-3)
    # and near the entropy of the Gaussian, log(2 pi e std^2) (Monte Carlo error ~0.014)
    assert exact == pytest.approx(1 + math.log(2 * math.pi * STD**2), abs=0.06)


def test_nll_prefers_the_better_model():
    data = GaussianScore(MEAN, STD).sample(2000, generator=torch.Generator().manual_seed(0))
    good = nll(GaussianScore(MEAN, STD), data)
    shifted = nll(GaussianScore((MEAN[0] + 0.3, MEAN[1]), STD), data)
    wide = nll(GaussianScore(MEAN, 3 * STD), data)
    assert good < wide < shifted


def test_mixture_score():
    mixture = MixtureScore([2.0, 1.0], [[0.3, 0.0], [-0.4, 0.2]], [0.1, 0.15])
    assert log_partition(mixture) == pytest.approx(0.0, abs=1e-3)  # T = 1: normalised
    x = torch.tensor([[0.3, 0.0], [0.0, 0.0]])
    single = MixtureScore([1.0], [[0.3, 0.0]], [0.1])
    gauss = GaussianScore((0.3, 0.0), 0.1)
    assert torch.allclose(single(x), gauss.log_prob(x), atol=1e-5)
    hot = MixtureScore([2.0, 1.0], [[0.3, 0.0], [-0.4, 0.2]], [0.1, 0.15], temperature=2.0)
    assert torch.allclose(hot(x), mixture(x) / 2)
    with pytest.raises(ValueError):
        mixture.temperature = 0.0


def test_blurred_mixture_score_is_the_gradient_of_the_blurred_log_density():
    """Against autograd of log sum_k w_k N(x; mu_k, std^2 + sigma^2), at several levels."""
    weights, means, std = torch.tensor([0.3, 0.7]), torch.tensor([-3.0, 3.0]), 0.4
    mixture = BlurredMixture1D([3.0, 7.0], means, std)  # weights are normalised
    x = torch.linspace(-6, 6, 25, dtype=torch.float64)[:, None].requires_grad_()
    sigma = torch.tensor([0.0, 0.1, 1.0, 20.0], dtype=torch.float64).repeat_interleave(7)[:25]
    variance = std**2 + sigma[:, None] ** 2
    log_p = torch.logsumexp(
        weights.log() - 0.5 * (x - means) ** 2 / variance - 0.5 * variance.log(), dim=1
    )
    (expected,) = torch.autograd.grad(log_p.sum(), x)
    assert torch.allclose(mixture(x.detach(), sigma), expected, atol=1e-10)


def test_blurred_mixture_samples_and_errors():
    mixture = BlurredMixture1D([0.2, 0.8], [-4.0, 4.0], 0.5)
    x = mixture.sample(20000, torch.Generator().manual_seed(0))
    assert x.shape == (20000, 1) and x.dtype == torch.float32
    assert (x > 0).float().mean().item() == pytest.approx(0.8, abs=0.01)
    assert x[x > 0].std().item() == pytest.approx(0.5, rel=0.03)
    with pytest.raises(ValueError, match="shapes"):
        BlurredMixture1D([0.5, 0.5], [0.0], 1.0)
    with pytest.raises(ValueError, match="positive"):
        BlurredMixture1D([0.5, 0.0], [0.0, 1.0], 1.0)
    with pytest.raises(ValueError, match="std"):
        BlurredMixture1D([1.0], [0.0], 0.0)
    with pytest.raises(ValueError, match=r"x \[B, 1\] and sigma \[B\]"):
        mixture(torch.zeros(4, 1), torch.ones(3))


def test_plot_comparison_has_three_axes():
    data = sample("two_moons", 200, generator=torch.Generator().manual_seed(0))
    model = GaussianScore((0.0, 0.0), 0.3)
    fig = plot_comparison(data, model, samples=data, grid=Grid(n=50))
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 3
    assert all(ax.get_xlim() == (-1.0, 1.0) for ax in fig.axes)
    assert len(plot_comparison(data, model, grid=Grid(n=50)).axes) == 2
