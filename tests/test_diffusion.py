"""Reverse diffusion on analytic scores: a Gaussian and a two-mode mixture, whose noised
scores are known exactly, so the samplers' output can be checked against the truth."""

import math

import pytest
import torch

from ebm_course.diffusion import corrector_step, heun_sampler, prior_noise, reverse_diffusion
from ebm_course.score_models import karras_levels, noise_levels
from ebm_course.toy import BlurredMixture1D

torch.set_num_threads(1)

MU, STD = 0.7, 0.5  # data N(MU, STD^2)
MIX_STD = 0.4
MIXTURE = BlurredMixture1D([0.3, 0.7], [-3.0, 3.0], MIX_STD)  # exact score at every level


def gaussian_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score of N(MU, STD^2) noised by sigma: ``[B, 1]``, ``[B]`` -> ``[B, 1]``."""
    return -(x - MU) / (STD**2 + sigma[:, None] ** 2)


@pytest.mark.parametrize(("ode", "snr"), [(False, 0.0), (True, 0.0), (False, 0.16)])
def test_reverse_diffusion_of_a_gaussian_gives_its_mean_and_variance(ode, snr):
    """With the exact score, 200 levels take the noised data N(MU, STD^2 + 20^2) back to
    N(MU, STD^2) (20,000 chains: 0.02 on the mean, 4 % on the standard deviation); the
    prior N(0, 20^2) is close enough for the stochastic sampler, which forgets its start."""
    sigmas = noise_levels(20.0, 0.01, 200)
    g = torch.Generator().manual_seed(0)
    start = MU + math.sqrt(STD**2 + 20.0**2) * torch.randn(20000, 1, generator=g)
    if not ode:
        start = prior_noise((20000, 1), 20.0, g)
    x = reverse_diffusion(gaussian_score, start, sigmas, g, ode=ode, snr=snr)
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(STD, rel=0.04)


@pytest.mark.parametrize(("ode", "snr"), [(False, 0.0), (True, 0.0), (False, 0.16)])
def test_reverse_diffusion_recovers_mixture_weights(ode, snr):
    """From the noised mixture at sigma 20, both samplers put 30 % of the chains in the left
    mode and give each mode its width: the flow carries the noised law to the data law."""
    sigmas = noise_levels(20.0, 0.01, 200)
    g = torch.Generator().manual_seed(1)
    start = MIXTURE.sample(8000, g) + 20.0 * torch.randn(8000, 1, generator=g)
    x = reverse_diffusion(MIXTURE, start, sigmas, g, ode=ode, snr=snr)
    assert (x < 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    right = x[x > 0]
    assert right.mean().item() == pytest.approx(3.0, abs=0.03)
    assert right.std().item() == pytest.approx(MIX_STD, rel=0.06)


def test_too_few_levels_leave_the_stochastic_sampler_too_wide():
    """A check that the tests above can fail: with 3 levels the ancestral steps are large
    and leave extra variance, sum of (sigma_i^2 - sigma_j^2)^2 / (STD^2 + sigma_i^2)."""
    sigmas = noise_levels(20.0, 0.01, 3)
    g = torch.Generator().manual_seed(0)
    x = reverse_diffusion(gaussian_score, prior_noise((20000, 1), 20.0, g), sigmas, g)
    assert x.std().item() > 1.5 * STD


def test_heun_follows_the_exact_flow_of_a_gaussian_to_second_order():
    """For Gaussian data the probability-flow ODE maps a point noised at sigma_max to
    MU + (x - MU) STD / sqrt(STD^2 + sigma_max^2). Heun's error falls as 1 / levels^2
    (doubling the levels cuts it by about 4) and Euler's as 1 / levels (by about 2), so at
    the same number of network calls Heun is several times closer."""
    g = torch.Generator().manual_seed(0)
    start = MU + math.sqrt(STD**2 + 20.0**2) * torch.randn(2000, 1, generator=g)
    exact = MU + (start - MU) * STD / math.sqrt(STD**2 + 20.0**2)

    def heun_error(n: int) -> float:
        x = heun_sampler(gaussian_score, start, karras_levels(20.0, 0.01, n))
        return (x - exact).abs().max().item()

    def euler_error(n: int) -> float:
        x = reverse_diffusion(gaussian_score, start, karras_levels(20.0, 0.01, n), ode=True)
        return (x - exact).abs().max().item()

    assert heun_error(18) / heun_error(35) > 3.5
    assert euler_error(35) / euler_error(69) < 2.5
    assert heun_error(35) < 0.02 and euler_error(69) > 3 * heun_error(35)  # 69 calls each


@pytest.mark.parametrize("churn", [0.0, 0.2])
def test_heun_recovers_mixture_weights(churn):
    """From the noised mixture at sigma 20, 18 Karras levels put 30 % of the points in the
    left mode and give each mode its width, with or without fresh noise on the way."""
    g = torch.Generator().manual_seed(1)
    start = MIXTURE.sample(8000, g) + 20.0 * torch.randn(8000, 1, generator=g)
    x = heun_sampler(MIXTURE, start, karras_levels(20.0, 0.01, 18), churn, g)
    assert (x < 0).float().mean().item() == pytest.approx(0.3, abs=0.02)
    right = x[x > 0]
    assert right.mean().item() == pytest.approx(3.0, abs=0.03)
    assert right.std().item() == pytest.approx(MIX_STD, rel=0.06)


def test_heun_with_churn_is_reproducible_and_leaves_its_input_alone():
    start = prior_noise((100, 1), 20.0, torch.Generator().manual_seed(0))
    kept = start.clone()
    levels = karras_levels(20.0, 0.01, 10)
    a = heun_sampler(gaussian_score, start, levels, 0.3, torch.Generator().manual_seed(4))
    b = heun_sampler(gaussian_score, start, levels, 0.3, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and torch.equal(start, kept)
    assert not torch.equal(a, heun_sampler(gaussian_score, start, levels))


@pytest.mark.parametrize(
    ("sigmas", "churn", "match"),
    [([1.0, 2.0], 0.0, "decrease"), ([2.0, 1.0], -0.1, "churn"), ([2.0, 1.0], 0.5, "churn")],
)
def test_heun_rejects_bad_arguments(sigmas, churn, match):
    with pytest.raises(ValueError, match=match):
        heun_sampler(gaussian_score, torch.zeros(4, 1), sigmas, churn)


def test_corrector_steps_keep_the_right_law_and_pull_a_wrong_one_towards_it():
    """Langevin steps on the exact score leave N(MU, STD^2 + s^2) in place (up to the small
    bias of the step) and move chains started too wide towards it."""
    sigma = torch.tensor(0.3)
    g = torch.Generator().manual_seed(2)
    width = math.sqrt(STD**2 + 0.3**2)
    x = MU + width * torch.randn(20000, 1, generator=g)
    wide = MU + 3 * width * torch.randn(20000, 1, generator=g)
    for _ in range(50):
        x = corrector_step(gaussian_score, x, sigma, 0.16, g)
        wide = corrector_step(gaussian_score, wide, sigma, 0.16, g)
    assert x.mean().item() == pytest.approx(MU, abs=0.02)
    assert x.std().item() == pytest.approx(width, rel=0.05)
    assert wide.std().item() < 0.8 * 3 * width  # each step contracts it a little


def test_prior_noise_has_the_asked_scale_and_is_reproducible():
    a = prior_noise((50000,), 3.0, torch.Generator().manual_seed(0))
    b = prior_noise((50000,), 3.0, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert a.std().item() == pytest.approx(3.0, rel=0.02)
    assert math.isclose(a.mean().item(), 0.0, abs_tol=0.05)


def test_reverse_diffusion_leaves_its_input_alone_and_restores_train_mode():
    net = torch.nn.Linear(1, 1)
    net.train()

    def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        return -x / (1 + sigma[:, None] ** 2)

    x0 = torch.randn(10, 1)
    copy = x0.clone()
    reverse_diffusion(score, x0, [2.0, 1.0])
    assert torch.equal(x0, copy)


@pytest.mark.parametrize(
    ("sigmas", "kwargs", "match"),
    [
        ([1.0, 2.0], {}, "decrease"),
        ([1.0, -1.0], {}, "> 0"),
        ([], {}, "non-empty"),
        ([2.0, 1.0], {"ode": "yes"}, "ode"),
        ([2.0, 1.0], {"snr": -0.1}, "snr"),
    ],
)
def test_reverse_diffusion_rejects_bad_arguments(sigmas, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        reverse_diffusion(gaussian_score, torch.zeros(4, 1), sigmas, **kwargs)


def test_prior_noise_rejects_a_bad_scale():
    with pytest.raises(ValueError, match="sigma_max"):
        prior_noise((2, 2), 0.0)
