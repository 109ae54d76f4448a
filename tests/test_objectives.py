"""Tests for ebm_course.objectives: DSM, SSM, NCE and their trainer, on known answers."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from ebm_course.models import MLPEnergy
from ebm_course.objectives import (
    TimedEvaluation,
    denoising_score_matching,
    fit_objective,
    noise_contrastive_estimation,
    persistent_config,
    short_run_config,
    sliced_score_matching,
)
from ebm_course.toy import GaussianScore
from ebm_course.training import TrainConfig

torch.set_num_threads(1)

DATA_STD = 0.5  # data ~ N(0, DATA_STD^2 I) in 2-D


class Quadratic(nn.Module):
    """``f(x) = -a |x|^2 / 2 + b``: an isotropic Gaussian score with a free normaliser."""

    def __init__(self, a: float = 1.0, b: float = 0.0) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.tensor(float(a)))
        self.b = nn.Parameter(torch.tensor(float(b)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * self.a * x.pow(2).sum(dim=1) + self.b


def gaussian_data(n: int = 20_000, seed: int = 0) -> torch.Tensor:
    return DATA_STD * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def parabola_minimiser(loss_at) -> float:
    """Vertex of a loss that is exactly quadratic in ``a``, from its values at 0, 1, 2."""
    l0, l1, l2 = (loss_at(a) for a in (0.0, 1.0, 2.0))
    curvature, slope_at_1 = l0 - 2 * l1 + l2, (l2 - l0) / 2
    return 1.0 - slope_at_1 / curvature


# ----------------------------------------------------------------------- DSM


def test_dsm_matches_the_formula_for_a_gaussian_score():
    model, x = GaussianScore(mean=(0.1, -0.2), std=0.3), gaussian_data(64)
    sigma = 0.2
    loss = denoising_score_matching(model, x, sigma, torch.Generator().manual_seed(3))
    eps = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    noisy = x + sigma * eps
    grad = -(noisy - model.mean) / model.std**2  # closed-form grad_x f
    by_hand = 0.5 * sigma**2 * (grad + (noisy - x) / sigma**2).pow(2).sum(dim=1).mean()
    assert loss.shape == ()
    torch.testing.assert_close(loss, by_hand)


@pytest.mark.parametrize("sigma", [0.1, 0.5])
def test_dsm_minimiser_is_the_score_of_the_noised_data(sigma):
    x = gaussian_data()

    def loss_at(a: float) -> float:
        gen = torch.Generator().manual_seed(1)  # the same noise for every a
        return denoising_score_matching(Quadratic(a), x, sigma, gen).item()

    expected = 1 / (DATA_STD**2 + sigma**2)  # p_sigma = N(0, (s^2 + sigma^2) I)
    assert parabola_minimiser(loss_at) == pytest.approx(expected, rel=0.03)


def test_dsm_trains_the_parameters():
    model = MLPEnergy(hidden=16, depth=2)
    loss = denoising_score_matching(model, gaussian_data(32), 0.1)
    loss.backward()
    *hidden, last_bias = model.parameters()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in hidden)
    assert last_bias.grad is None  # score matching is blind to a constant added to f


# ----------------------------------------------------------------------- SSM


@pytest.mark.parametrize("variance_reduced", [False, True])
def test_ssm_minimiser_is_the_data_score(variance_reduced):
    x = gaussian_data()

    def loss_at(a: float) -> float:
        gen = torch.Generator().manual_seed(1)
        return sliced_score_matching(Quadratic(a), x, 1, gen, variance_reduced).item()

    assert parabola_minimiser(loss_at) == pytest.approx(1 / DATA_STD**2, rel=0.03)


def exact_score_matching(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``tr(H) + |grad f|^2 / 2`` per example, the trace by one backward per dimension."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).sum(), x, create_graph=True)
    trace = sum(
        torch.autograd.grad(grad[:, i].sum(), x, retain_graph=True)[0][:, i]
        for i in range(x.shape[1])
    )
    return trace + 0.5 * grad.pow(2).sum(dim=1)


@pytest.mark.parametrize("variance_reduced", [False, True])
def test_ssm_is_exact_score_matching_in_expectation(variance_reduced):
    torch.manual_seed(0)
    model = MLPEnergy(hidden=16, depth=2)
    x = gaussian_data(8)
    exact = exact_score_matching(model, x).mean()
    gen = torch.Generator().manual_seed(0)
    sliced = sliced_score_matching(model, x, 4000, gen, variance_reduced)
    # per-example spread of the estimator, divided by sqrt(#projections * #examples)
    spread = exact.abs().item() + 1.0
    assert sliced.item() == pytest.approx(exact.item(), abs=5 * spread / math.sqrt(32_000))


def test_ssm_variance_reduced_is_exact_for_one_projection_of_a_linear_score():
    # f = -a|x|^2/2: H = -a I, so v^T H v = -2a for every Rademacher v in 2-D, and the
    # variance-reduced square term is |grad f|^2 / 2 exactly
    model, x = Quadratic(1.5), gaussian_data(64)
    exact = exact_score_matching(model, x).mean()
    torch.testing.assert_close(sliced_score_matching(model, x, variance_reduced=True), exact)


def test_ssm_uses_second_derivatives_of_the_parameters():
    # f = -a|x|^2/2 + b: the loss -2a + a^2 |x|^2 / 2 ... depends on a through the Hessian
    model, x = Quadratic(1.0), gaussian_data(256)
    sliced_score_matching(model, x, 2).backward()
    assert model.a.grad is not None and model.a.grad.abs() > 0
    assert model.b.grad is None or model.b.grad == 0  # the constant is invisible


# ----------------------------------------------------------------------- NCE


def test_nce_recovers_the_density_with_its_normaliser():
    torch.manual_seed(0)
    model, x = Quadratic(a=1.0, b=0.0), gaussian_data()
    noise = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    fit_objective(
        model,
        x,
        lambda m, batch: noise_contrastive_estimation(m, batch, noise, noise_ratio=2),
        steps=200,
        batch_size=512,
        lr=0.1,
        generator=torch.Generator().manual_seed(0),
    )
    assert model.a.item() == pytest.approx(1 / DATA_STD**2, rel=0.1)
    log_z = math.log(2 * math.pi * DATA_STD**2)  # b = -log Z: f is normalised
    assert model.b.item() == pytest.approx(-log_z, abs=0.1)


def test_nce_matches_the_logistic_loss_with_given_noise_samples():
    model, x = GaussianScore(std=0.5), gaussian_data(16)
    noise = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    y = noise.sample((48,))
    loss = noise_contrastive_estimation(model, x, noise, noise_ratio=3, noise_samples=y)

    def logit(u):
        return model(u) - noise.log_prob(u) - math.log(3)

    by_hand = (
        -torch.log(torch.sigmoid(logit(x))).sum() - torch.log(torch.sigmoid(-logit(y))).sum()
    ) / 16
    torch.testing.assert_close(loss, by_hand)


# ----------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("sigma", "error"),
    [
        (0.0, ValueError),
        (-0.1, ValueError),
        (math.nan, ValueError),
        (math.inf, ValueError),
        (True, TypeError),
    ],
)
def test_dsm_rejects_bad_sigma(sigma, error):
    with pytest.raises(error, match="sigma"):
        denoising_score_matching(Quadratic(), gaussian_data(4), sigma)


@pytest.mark.parametrize(
    ("n_projections", "error"),
    [(0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)],
)
def test_ssm_rejects_bad_n_projections(n_projections, error):
    with pytest.raises(error, match="n_projections"):
        sliced_score_matching(Quadratic(), gaussian_data(4), n_projections)


@pytest.mark.parametrize(
    ("x", "error"),
    [
        (torch.zeros(5), ValueError),
        (torch.zeros(0, 2), ValueError),
        (torch.zeros(3, 2, dtype=int), TypeError),
    ],
)
def test_objectives_reject_bad_batches(x, error):
    noise = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    for loss in (
        lambda: denoising_score_matching(Quadratic(), x, 0.1),
        lambda: sliced_score_matching(Quadratic(), x),
        lambda: noise_contrastive_estimation(Quadratic(), x, noise),
    ):
        with pytest.raises(error, match="x must"):
            loss()


def test_objectives_reject_a_model_without_one_score_per_example():
    wide = nn.Linear(2, 3)  # [B, 3], not [B]
    with pytest.raises(ValueError, match="scores"):
        denoising_score_matching(wide, gaussian_data(4), 0.1)


def test_nce_rejects_bad_noise_arguments():
    x = gaussian_data(4)
    normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="noise_ratio"):
        noise_contrastive_estimation(Quadratic(), x, normal, noise_ratio=0)
    with pytest.raises(ValueError, match="noise_samples"):
        noise_contrastive_estimation(Quadratic(), x, normal, 2, noise_samples=torch.zeros(4, 2))
    with pytest.raises(ValueError, match="Independent"):  # log_prob per coordinate: [N, 2]
        noise_contrastive_estimation(
            Quadratic(), x, torch.distributions.Normal(0.0, 1.0), noise_samples=torch.zeros(4, 2)
        )
    with pytest.raises(TypeError, match="noise must"):
        noise_contrastive_estimation(Quadratic(), x, "gaussian")


# ----------------------------------------------------------------------- trainer


def test_fit_objective_lowers_the_loss_and_logs_training_time():
    torch.manual_seed(0)
    model, x = MLPEnergy(hidden=16, depth=2), gaussian_data(2000)
    calls = []

    def evaluate(m):
        calls.append(1)
        return denoising_score_matching(m, x[:500], 0.3, torch.Generator().manual_seed(0)).item()

    log = fit_objective(
        model,
        x,
        lambda m, b: denoising_score_matching(m, b, 0.3),
        steps=50,
        batch_size=64,
        lr=1e-2,
        evaluate=evaluate,
        eval_every=20,
        generator=torch.Generator().manual_seed(0),
    )
    assert log["step"] == [0, 20, 40, 50] and len(calls) == 4
    assert len(log["loss"]) == 50
    assert log["seconds"][0] == pytest.approx(0.0, abs=1e-3)
    assert all(b > a for a, b in zip(log["seconds"], log["seconds"][1:], strict=False))
    assert log["value"][-1] < log["value"][0]
    assert not model.training


def test_timed_evaluation_excludes_evaluation_time():
    import time

    timer = TimedEvaluation(lambda m: time.sleep(0.05) or 1.0, every=2)
    timer.start(nn.Linear(1, 1))
    for step in range(1, 5):
        timer(step, None)
    assert timer.log["step"] == [0, 2, 4]
    assert timer.log["seconds"][-1] < 0.05  # three sleeps of 0.05 s not counted
    with pytest.raises(RuntimeError, match="start"):
        TimedEvaluation(lambda m: 0.0, every=1).record(1, None)


def test_fit_objective_rejects_bad_arguments():
    model, x = Quadratic(), gaussian_data(10)

    def loss(m, b):
        return denoising_score_matching(m, b, 0.1)

    for kwargs, name in [
        ({"steps": 0}, "steps"),
        ({"steps": 1, "batch_size": 11}, "batch_size"),
        ({"steps": 1, "batch_size": 0}, "batch_size"),
        ({"steps": 1, "lr": 0.0}, "lr"),
        ({"steps": 1, "eval_every": 0}, "eval_every"),
    ]:
        kwargs.setdefault("batch_size", 4)
        with pytest.raises(ValueError, match=name):
            fit_objective(model, x, loss, **kwargs)
    with pytest.raises(ValueError, match="data"):
        fit_objective(model, torch.zeros(10), loss, steps=1, batch_size=4)


def test_cd_flavours_are_train_config_settings():
    base = TrainConfig(mcmc_steps=20, reinit_prob=0.5)
    short = short_run_config(base, mcmc_steps=60)
    assert (short.reinit_prob, short.mcmc_steps) == (1.0, 60)
    assert persistent_config(base).reinit_prob == 0.05
    assert dataclasses.replace(persistent_config(base, 0.2), reinit_prob=0.5) == base
    with pytest.raises(ValueError, match="reinit_prob"):
        persistent_config(base, 1.0)
