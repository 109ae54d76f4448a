"""Tests for ebm_course.score_models: noise-conditional score models on known answers."""

import functools
import math

import pytest
import torch
from torch import nn

from ebm_course.score_models import (
    SIGMA_DATA,
    OODScore,
    ScoreNet,
    annealed_langevin,
    ema_copy,
    fit_score_model,
    karras_levels,
    lognormal_dsm_loss,
    multi_level_dsm_loss,
    noise_levels,
    score_function,
)
from ebm_course.toy import BlurredMixture1D

torch.set_num_threads(1)

MU, STD = 0.7, 0.5  # 1-D Gaussian data N(MU, STD^2)
SIGMAS = noise_levels(2.0, 0.1, 4)


def gaussian_data(n: int, seed: int = 0) -> torch.Tensor:
    return MU + STD * torch.randn(n, 1, generator=torch.Generator().manual_seed(seed))


def exact_gaussian_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Score of the noised data N(MU, STD^2 + sigma^2): ``[B, 1]``, ``[B]`` -> ``[B, 1]``."""
    return -(x - MU) / (STD**2 + sigma[:, None] ** 2)


def level_index(sigma: torch.Tensor) -> torch.Tensor:
    """Which of SIGMAS each entry of ``sigma`` ``[B]`` is: ``[B]`` int."""
    return (sigma[:, None] - SIGMAS[None, :]).abs().argmin(dim=1)


class LinearPerLevel(nn.Module):
    """``s(x, sigma_i) = a_i x + b_i``, or as an energy ``f = a_i x^2 / 2 + b_i x``."""

    def __init__(self, energy: bool = False) -> None:
        super().__init__()
        self.energy = energy
        self.a = nn.Parameter(torch.zeros(len(SIGMAS)))
        self.b = nn.Parameter(torch.zeros(len(SIGMAS)))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        i = level_index(sigma)
        a, b = self.a[i][:, None], self.b[i][:, None]
        return (0.5 * a * x**2 + b * x).sum(dim=1) if self.energy else a * x + b


# ----------------------------------------------------------------------- noise levels


def test_noise_levels_are_geometric_and_largest_first():
    sigmas = noise_levels(50.0, 0.01, 7)
    assert sigmas.shape == (7,) and sigmas.dtype == torch.float32
    assert sigmas[0].item() == pytest.approx(50.0) and sigmas[-1].item() == pytest.approx(0.01)
    ratios = sigmas[1:] / sigmas[:-1]
    assert torch.allclose(ratios, torch.full_like(ratios, (0.01 / 50) ** (1 / 6)), rtol=1e-5)
    assert noise_levels(0.3, 0.3, 1).tolist() == pytest.approx([0.3])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1.0, 0.0, 5), "sigma_min"),
        ((-1.0, 0.1, 5), "sigma_max"),
        ((0.1, 1.0, 5), "sigma_max >= sigma_min"),
        ((1.0, 0.1, 0), "n must"),
        ((1.0, 0.1, 1), "equal when n = 1"),
        ((1.0, 0.1, 2.5), "n must"),
    ],
)
def test_noise_levels_reject_bad_arguments(args, match):
    with pytest.raises((TypeError, ValueError), match=match):
        noise_levels(*args)


def test_karras_levels_take_equal_steps_in_sigma_to_the_one_over_rho():
    sigmas = karras_levels(80.0, 0.002, 18, rho=7.0)
    assert sigmas.shape == (18,) and sigmas.dtype == torch.float32
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-1].item() == pytest.approx(0.002)
    steps = sigmas.double().pow(1 / 7).diff()
    assert torch.allclose(steps, steps[:1].expand_as(steps), rtol=1e-4)
    assert (sigmas.diff() < 0).all()
    # a large rho approaches the geometric ladder; rho 1 is evenly spaced
    assert torch.allclose(karras_levels(10.0, 0.1, 6, 1e4), noise_levels(10.0, 0.1, 6), rtol=1e-3)
    assert karras_levels(3.0, 1.0, 3, 1.0).tolist() == pytest.approx([3.0, 2.0, 1.0])


@pytest.mark.parametrize(
    ("args", "match"), [((1.0, 0.1, 5, 0.0), "rho"), ((0.1, 1.0, 5, 7.0), "sigma_max >=")]
)
def test_karras_levels_reject_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        karras_levels(*args)


# ----------------------------------------------------------------------- the DSM loss


def test_dsm_loss_matches_its_formula():
    x = gaussian_data(64)
    loss = multi_level_dsm_loss(exact_gaussian_score, x, SIGMAS, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    sigma = SIGMAS[torch.randint(len(SIGMAS), (64,), generator=g)]
    noise = torch.randn(x.shape, generator=g)
    noisy = x + sigma[:, None] * noise
    expected = 0.5 * (sigma[:, None] * exact_gaussian_score(noisy, sigma) + noise).pow(2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_lognormal_dsm_loss_matches_its_formula():
    x = gaussian_data(64)
    loss = lognormal_dsm_loss(exact_gaussian_score, x, -1.0, 0.8, torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(1)
    sigma = (-1.0 + 0.8 * torch.randn(64, generator=g)).exp()
    noise = torch.randn(x.shape, generator=g)
    noisy = x + sigma[:, None] * noise
    per_example = 0.5 * (sigma[:, None] * exact_gaussian_score(noisy, sigma) + noise).pow(2)
    expected = ((1 + sigma**2 / SIGMA_DATA**2) * per_example[:, 0]).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_lognormal_dsm_loss_is_lowest_at_the_noised_gaussian_score():
    """On the same draws of levels and noise, the exact score of N(MU, STD^2 + sigma^2)
    beats every nearby score of the same form, -(x - m) / (v + sigma^2), at all levels."""
    x = gaussian_data(200_000)

    def loss_at(m: float, v: float) -> float:
        def score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return -(x - m) / (v + sigma[:, None] ** 2)

        return lognormal_dsm_loss(score, x, generator=torch.Generator().manual_seed(3)).item()

    best = loss_at(MU, STD**2)
    for m, v in [(MU + 0.05, STD**2), (MU - 0.05, STD**2), (MU, 1.2 * STD**2), (MU, 0.8 * STD**2)]:
        assert loss_at(m, v) > best


def test_lognormal_dsm_loss_rejects_bad_options():
    with pytest.raises(ValueError, match="p_std"):
        lognormal_dsm_loss(exact_gaussian_score, gaussian_data(4), p_std=0.0)
    with pytest.raises(TypeError, match="p_mean"):
        lognormal_dsm_loss(exact_gaussian_score, gaussian_data(4), p_mean="low")


class LinearScore:
    """``s(x, sigma_i) = a_i x + b_i`` from a flat ``theta = (a, b)``; with ``energy`` as
    ``f = a_i x^2 / 2 + b_i x`` (same score). A plain callable, for functional derivatives."""

    def __init__(self, theta: torch.Tensor, energy: bool) -> None:
        self.a, self.b = theta.chunk(2)
        self.energy = energy

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        i = level_index(sigma)
        a, b = self.a[i][:, None], self.b[i][:, None]
        return (0.5 * a * x**2 + b * x).sum(dim=1) if self.energy else a * x + b


@pytest.mark.parametrize("energy", [False, True])
def test_dsm_minimiser_is_the_noised_gaussian_score_at_every_level(energy):
    """The loss is quadratic in (a, b): one Newton step from 0 lands on its minimiser,
    which must be the score of N(MU, STD^2 + sigma^2), -(x - MU) / (STD^2 + sigma^2)."""
    x = gaussian_data(200_000)

    def loss_at(theta: torch.Tensor) -> torch.Tensor:
        model = LinearScore(theta, energy)
        return multi_level_dsm_loss(model, x, SIGMAS, torch.Generator().manual_seed(2))

    theta0 = torch.zeros(2 * len(SIGMAS))
    grad = torch.autograd.functional.jacobian(loss_at, theta0)
    hessian = torch.autograd.functional.hessian(loss_at, theta0)
    a, b = (theta0 - torch.linalg.solve(hessian, grad)).chunk(2)
    variance = STD**2 + SIGMAS**2
    assert torch.allclose(a, -1 / variance, rtol=0.03)  # the exact score's slope ...
    assert torch.allclose(b, MU / variance, rtol=0.05)  # ... and intercept, per level
    exact = torch.cat([-1 / variance, MU / variance])
    for shift in (0.05, -0.05):  # and a perturbed exact score has a higher loss
        assert loss_at(exact * (1 + shift)) > loss_at(exact)


def test_fit_with_ema_recovers_the_gaussian_score():
    model = LinearPerLevel(energy=True)
    ema = ema_copy(model)
    history = fit_score_model(
        model,
        gaussian_data(20_000),
        SIGMAS,
        steps=300,
        batch_size=256,
        lr=0.1,
        ema=ema,
        ema_decay=0.95,
        generator=torch.Generator().manual_seed(4),
    )
    assert set(history) == {"step", "loss", "seconds"} and len(history["loss"]) == 300
    assert history["step"] == list(range(1, 301))
    variance = STD**2 + SIGMAS**2
    assert torch.allclose(ema.a, -1 / variance, rtol=0.12)  # the average of the iterates
    assert torch.allclose(ema.b, MU / variance, rtol=0.12)
    assert not torch.equal(ema.a, model.a) and not ema.a.requires_grad


# ----------------------------------------------------------------------- annealed Langevin

MIX_STD = 0.5
MIXTURE = BlurredMixture1D([0.2, 0.8], [-4.0, 4.0], MIX_STD)  # exact score at every level


def test_annealed_langevin_recovers_mixture_weights_where_plain_langevin_does_not():
    """From uniform starts on [-4, 4] (half on each side), annealing from sigma 10 down to
    0.1 finds the 0.2 / 0.8 weights; Langevin at sigma 0.1 alone, with as many steps,
    keeps the starting 50 / 50 split: chains cannot cross the empty space between modes.
    The tolerance (0.03) covers the small bias annealing has toward the starting split."""
    sigmas = noise_levels(10.0, 0.1, 10)
    g = torch.Generator().manual_seed(0)
    start = torch.rand(4000, 1, generator=g) * 8 - 4
    x = annealed_langevin(MIXTURE, start, sigmas, 100, 3e-3, generator=g, denoise=False)
    right = x[x[:, 0] > 0, 0]
    assert (x > 0).float().mean().item() == pytest.approx(0.8, abs=0.03)
    assert right.mean().item() == pytest.approx(4.0, abs=0.03)
    assert right.std().item() == pytest.approx(math.sqrt(MIX_STD**2 + 0.1**2), rel=0.05)
    g = torch.Generator().manual_seed(0)
    plain = annealed_langevin(MIXTURE, start, sigmas[-1:], 1000, 3e-3, generator=g)
    assert (plain > 0).float().mean().item() == pytest.approx(0.5, abs=0.05)


def test_denoising_step_is_tweedies_posterior_mean():
    """One level, one tiny step, then x + sigma^2 s(x): for Gaussian data this is the
    posterior mean MU + (x - MU) STD^2 / (STD^2 + sigma^2)."""
    x = gaussian_data(8)
    sigma = 0.3
    out = annealed_langevin(exact_gaussian_score, x, [sigma], 1, 1e-12)
    moved = annealed_langevin(exact_gaussian_score, x, [sigma], 1, 1e-12, denoise=False)
    expected = MU + (moved - MU) * STD**2 / (STD**2 + sigma**2)
    assert torch.allclose(out, expected, atol=1e-5)


def test_annealed_langevin_shapes_modes_and_reproducibility():
    model = ScoreNet(8).train()
    start = torch.rand(3, 1, 28, 28) * 2 - 1
    kept = start.clone()
    levels = annealed_langevin(
        model, start, SIGMAS, 2, 1e-3, torch.Generator().manual_seed(0), return_levels=True
    )
    assert levels.shape == (len(SIGMAS), 3, 1, 28, 28) and model.training
    assert torch.equal(start, kept)
    again = annealed_langevin(model, start, SIGMAS, 2, 1e-3, torch.Generator().manual_seed(0))
    assert torch.allclose(again, levels[-1])
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigmas": [0.1, 0.5]}, "decrease strictly"),
        ({"sigmas": [1.0, 0.0]}, "finite and > 0"),
        ({"sigmas": []}, "non-empty"),
        ({"sigmas": [[1.0]]}, "1-D"),
        ({"steps_per_level": 0}, "steps_per_level"),
        ({"step_lr": -1.0}, "step_lr"),
        ({"x": torch.zeros(5)}, "x must be a non-empty batch"),
        ({"x": torch.zeros(2, 3, dtype=torch.long)}, "floating-point"),
    ],
)
def test_annealed_langevin_rejects_bad_arguments(kwargs, match):
    args = {"x": torch.zeros(4, 1), "sigmas": [1.0, 0.1], "steps_per_level": 2, "step_lr": 0.1}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        annealed_langevin(MIXTURE, **args)


def test_a_score_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match="direct score model must return"):
        annealed_langevin(lambda x, s: x.sum(dim=1), torch.zeros(4, 2), [1.0], 1, 0.1)


# ----------------------------------------------------------------------- ScoreNet


@pytest.mark.parametrize("energy", [False, True])
def test_scorenet_shapes_and_the_two_views(energy):
    torch.manual_seed(0)
    model = ScoreNet(8, energy=energy)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    sigma = torch.full((5,), 0.5)
    out = model(x, sigma)
    assert out.shape == ((5,) if energy else (5, 1, 28, 28))
    score = score_function(model, x, sigma)
    assert score.shape == x.shape
    # the score is the input gradient of f (energy) / -noise / sigma (direct)
    direction = torch.randn_like(x)
    if energy:
        h = 1e-3
        slope = (model(x + h * direction, sigma) - model(x - h * direction, sigma)) / (2 * h)
        assert torch.allclose((score * direction).flatten(1).sum(1), slope, rtol=0.02, atol=1e-3)
    else:
        assert torch.allclose(score, -model.predict_noise(x, sigma) / 0.5)
    assert OODScore(model, 0.5)(x).shape == (5,)


def test_both_views_give_the_same_ood_score():
    direct, energy = ScoreNet(8), ScoreNet(8, energy=True)
    energy.load_state_dict(direct.state_dict())
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    assert torch.allclose(OODScore(direct, 0.1)(x), OODScore(energy, 0.1)(x), rtol=1e-5)


def test_dsm_loss_trains_scorenet_in_both_views():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    for energy in (False, True):
        model = ScoreNet(8, energy=energy)
        loss = multi_level_dsm_loss(model, x, SIGMAS)
        assert loss.dim() == 0
        loss.backward()
        assert all(p.grad is not None for p in model.parameters())


def test_edm_preconditioning_wires_the_network_in_as_karras_et_al():
    """With the network F silenced (last convolution zero), the denoiser is c_skip x, so the
    predicted noise (x - D) / sigma is sigma x / (sigma^2 + sigma_d^2); the "noise" view
    predicts no noise at all. With F on, D = c_skip x + c_out F(c_in x)."""
    torch.manual_seed(0)
    model = ScoreNet(8, preconditioning="edm")
    x, sigma = torch.rand(3, 1, 28, 28) * 2 - 1, torch.tensor([0.05, 0.5, 5.0])
    spread = (sigma**2 + SIGMA_DATA**2).sqrt()[:, None, None, None]
    s = sigma[:, None, None, None]
    denoised = x - s * model.predict_noise(x, sigma)
    c_skip, c_out = SIGMA_DATA**2 / spread**2, s * SIGMA_DATA / spread
    expected = c_skip * x + c_out * model.network(x / spread, sigma)
    assert torch.allclose(denoised, expected, atol=1e-5)
    last = model.conv_out[-1]
    nn.init.zeros_(last.weight), nn.init.zeros_(last.bias)
    assert torch.allclose(model.predict_noise(x, sigma), s * x / spread**2, atol=1e-6)
    plain = ScoreNet(8, preconditioning="noise")
    nn.init.zeros_(plain.conv_out[-1].weight), nn.init.zeros_(plain.conv_out[-1].bias)
    assert plain.predict_noise(x, sigma).abs().max().item() == 0.0


def test_the_middle_of_scorenet_is_optional_and_keeps_shapes():
    """Extra blocks and attention at 7 x 7 add parameters, keep every shape, and a network
    without them has exactly the first shipped model's parameter names."""
    plain, wide = ScoreNet(8), ScoreNet(8, middle_blocks=2, attention=True)
    assert sum(p.numel() for p in wide.parameters()) > sum(p.numel() for p in plain.parameters())
    assert not any(k.startswith(("middle", "attention")) for k in plain.state_dict())
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    out = wide(x, torch.full((3,), 0.5))
    assert out.shape == x.shape and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="middle_blocks"):
        ScoreNet(8, middle_blocks=-1)
    # the energy view differentiates the attention twice (score, then the loss's gradient)
    energy = ScoreNet(8, energy=True, middle_blocks=1, attention=True)
    multi_level_dsm_loss(energy, x, SIGMAS).backward()
    assert all(p.grad is not None for p in energy.parameters())


def test_scorenet_rejects_an_unknown_preconditioning():
    with pytest.raises(ValueError, match="preconditioning must be one of"):
        ScoreNet(8, preconditioning="vp")


@pytest.mark.parametrize("channels", [4, 12, 8.0, True])
def test_scorenet_rejects_bad_channels(channels):
    with pytest.raises(ValueError, match="channels"):
        ScoreNet(channels)


def test_scorenet_rejects_wrong_image_shape():
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        ScoreNet(8)(torch.zeros(2, 1, 32, 32), 0.5)


# ----------------------------------------------------------------------- training loop


def test_fit_score_model_rejects_bad_arguments():
    model, images = LinearPerLevel(), gaussian_data(10)
    with pytest.raises(ValueError, match="batch_size 20 exceeds"):
        fit_score_model(model, images, SIGMAS, steps=1, batch_size=20)
    with pytest.raises(ValueError, match="ema_decay"):
        fit_score_model(model, images, SIGMAS, steps=1, batch_size=5, ema_decay=1.0)
    with pytest.raises(ValueError, match="steps"):
        fit_score_model(model, images, SIGMAS, steps=0, batch_size=5)
    with pytest.raises(ValueError, match="sigmas"):
        fit_score_model(model, images, [0.5, -1.0], steps=1, batch_size=5)
    with pytest.raises(ValueError, match="images must be"):
        fit_score_model(model, torch.zeros(10), SIGMAS, steps=1, batch_size=5)
    with pytest.raises(ValueError, match="needs sigmas"):
        fit_score_model(model, images, None, steps=1, batch_size=5)
    with pytest.raises(ValueError, match="loss must be callable"):
        fit_score_model(model, images, None, loss="edm", steps=1, batch_size=5)


def test_fit_with_the_lognormal_loss_learns_the_gaussian_score():
    """A score of the form -(x - m) / (v + sigma^2) trained on the log-normal loss finds
    the data's mean and variance."""

    class GaussianFamily(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m, self.log_v = nn.Parameter(torch.tensor(0.0)), nn.Parameter(torch.tensor(0.0))

        def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            return -(x - self.m) / (self.log_v.exp() + sigma[:, None] ** 2)

    model = GaussianFamily()
    fit_score_model(
        model,
        gaussian_data(20_000),
        None,
        loss=functools.partial(lognormal_dsm_loss, p_mean=-1.0, p_std=1.0),
        steps=400,
        batch_size=512,
        lr=0.05,
        generator=torch.Generator().manual_seed(5),
    )
    assert model.m.item() == pytest.approx(MU, abs=0.03)
    assert model.log_v.exp().item() == pytest.approx(STD**2, rel=0.1)


def test_fit_score_model_calls_back_every_step_and_is_reproducible():
    calls = []

    def run() -> list[float]:
        torch.manual_seed(0)
        model = ScoreNet(8)
        images = torch.rand(16, 1, 28, 28) * 2 - 1
        history = fit_score_model(
            model,
            images,
            SIGMAS,
            steps=3,
            batch_size=4,
            generator=torch.Generator().manual_seed(0),
            callback=lambda step, m: calls.append(step),
        )
        assert not model.training
        return history["loss"]

    assert run() == run()
    assert calls == [1, 2, 3, 1, 2, 3]
