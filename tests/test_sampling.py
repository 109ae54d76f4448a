import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from ebm_course.models import CNNEnergy, load_tutorial_checkpoint
from ebm_course.sampling import ReplayBuffer, autocast_dtype, langevin, score_gradient
from ebm_course.speed import SamplerSpeed


class GaussianScore(nn.Module):
    """Score of an isotropic Gaussian: f(x) = -|x - mean|^2 / (2 std^2), so q = N(mean, std^2)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.mean = nn.Parameter(torch.tensor(mean))
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -((x - self.mean) ** 2).sum(dim=1) / (2 * self.std**2)


def test_textbook_langevin_reproduces_gaussian_mean_and_variance():
    mean, std, eps = 0.5, 1.0, 0.01
    model = GaussianScore(mean, std)
    gen = torch.Generator().manual_seed(1)
    start = torch.full((20_000, 4), -3.0)  # far from the mode: the chains must travel
    samples = langevin(
        model,
        start,
        steps=1500,
        step_size=eps,
        noise_std=math.sqrt(2 * eps),
        grad_clamp=None,
        value_range=None,
        generator=gen,
    )
    # The sampler (noise, then gradient step) is the AR(1) chain
    # x' = mean + a (x + sigma xi - mean), a = 1 - eps/std^2, whose stationary
    # variance is a^2 sigma^2 / (1 - a^2); as eps -> 0 it tends to std^2.
    a = 1 - eps / std**2
    exact_var = a**2 * 2 * eps / (1 - a**2)
    n = samples.numel()
    assert abs(samples.mean().item() - mean) < 4 * math.sqrt(exact_var / n)
    assert abs(samples.var().item() - exact_var) < 4 * exact_var * math.sqrt(2 / n)
    assert abs(samples.var().item() - std**2) < 0.03  # close to the continuous-time answer


def test_langevin_climbs_the_score_without_noise():
    model = GaussianScore(0.0, 1.0)
    x = torch.full((3, 2), 0.5)
    out = langevin(model, x, steps=1, step_size=0.1, noise_std=0.0, grad_clamp=None)
    # grad f = -(x - 0) = -0.5, so one step moves x to 0.5 - 0.05
    torch.testing.assert_close(out, torch.full((3, 2), 0.45))
    clamped = langevin(model, x, steps=1, step_size=0.1, noise_std=0.0, grad_clamp=0.03)
    torch.testing.assert_close(clamped, torch.full((3, 2), 0.5 - 0.003))


@pytest.mark.parametrize("training", [True, False])
def test_tutorial_sampler_keeps_range_and_leaves_the_model_untouched(training):
    model = CNNEnergy().train(training)
    frozen = model.cnn_layers[0].weight
    frozen.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    x_copy = x.clone()
    with torch.no_grad():  # must still work under no_grad
        traj = langevin(model, x, steps=5, return_trajectory=True)
    assert traj.shape == (5, 8, 1, 28, 28)
    assert traj.min() >= -1 and traj.max() <= 1
    assert not traj.requires_grad
    assert model.training is training
    assert [p.requires_grad for p in model.parameters()] == [False] + [True] * 11
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    torch.testing.assert_close(x, x_copy)  # input untouched
    assert not torch.equal(traj[-1], x)


def test_trajectory_last_step_equals_the_plain_result():
    model = CNNEnergy()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    final = langevin(model, x, steps=6, generator=torch.Generator().manual_seed(3))
    traj = langevin(
        model, x, steps=6, return_trajectory=True, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(traj[-1], final)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be an integer >= 1"),
        ({"step_size": -1.0}, "step_size"),
        ({"noise_std": -0.1}, "noise_std"),
        ({"grad_clamp": 0.0}, "grad_clamp"),
        ({"value_range": (1.0, -1.0)}, "value_range"),
    ],
)
def test_langevin_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        langevin(CNNEnergy(), torch.zeros(2, 1, 28, 28), **kwargs)


def test_langevin_rejects_bad_inputs():
    model = CNNEnergy()
    with pytest.raises(ValueError, match="NaN"):
        langevin(model, torch.full((2, 1, 28, 28), float("nan")))
    with pytest.raises(TypeError, match="floating-point"):
        langevin(model, torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="28, 28"):
        langevin(model, torch.zeros(2, 1, 14, 14), steps=1)


def test_replay_buffer_reinitialises_about_five_percent():
    buffer = ReplayBuffer(shape=(1, 4, 4), capacity=64, generator=torch.Generator().manual_seed(0))
    buffer.push(torch.full((64, 1, 4, 4), 2.0))  # a value uniform noise in [-1, 1] never takes
    fresh = 0
    draws = 400
    for _ in range(draws):
        batch = buffer.draw(128)
        assert batch.shape == (128, 1, 4, 4)
        fresh += int((batch.flatten(1) != 2.0).all(dim=1).sum())
    rate = fresh / (draws * 128)
    assert abs(rate - 0.05) < 4 * math.sqrt(0.05 * 0.95 / (draws * 128))


def test_replay_buffer_never_exceeds_capacity_and_keeps_the_newest():
    buffer = ReplayBuffer(shape=(2,), capacity=10)
    assert len(buffer) == 0
    assert buffer.examples.shape == (10, 2)  # one preallocated tensor
    for i in range(7):
        buffer.push(torch.full((3, 2), float(i)))
        assert len(buffer) == min(3 * (i + 1), 10)
    assert len(buffer) == 10
    stored = sorted(buffer.examples[:, 0].tolist())
    assert stored == [3.0] + [4.0] * 3 + [5.0] * 3 + [6.0] * 3  # the oldest were replaced
    buffer.push(torch.arange(30.0).reshape(15, 2))  # more than capacity at once
    assert len(buffer) == 10
    assert sorted(buffer.examples[:, 0].tolist()) == list(range(10, 30, 2))


def test_empty_buffer_draws_uniform_noise_in_range():
    buffer = ReplayBuffer(shape=(3,), capacity=8, value_range=(-2.0, 0.5))
    batch = buffer.draw(5000)
    assert batch.min() >= -2.0 and batch.max() <= 0.5
    assert abs(batch.mean().item() - (-0.75)) < 0.05


def test_replay_buffer_sample_runs_langevin_and_stores(tmp_path):
    model = CNNEnergy()
    buffer = ReplayBuffer(capacity=32)
    out = buffer.sample(model, 16, steps=3)
    assert out.shape == (16, 1, 28, 28) and len(buffer) == 16
    torch.testing.assert_close(buffer.examples[:16], out)


def test_replay_buffer_state_roundtrip_and_errors():
    buffer = ReplayBuffer(shape=(2,), capacity=5)
    buffer.push(torch.randn(3, 2))
    other = ReplayBuffer(shape=(2,), capacity=5)
    other.load_state_dict(buffer.state_dict())
    assert len(other) == 3
    torch.testing.assert_close(other.examples[:3], buffer.examples[:3])
    with pytest.raises(ValueError, match="shape"):
        ReplayBuffer(shape=(3,), capacity=5).load_state_dict(buffer.state_dict())
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        buffer.push(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="capacity"):
        ReplayBuffer(capacity=0)
    with pytest.raises(ValueError, match="reinit_prob"):
        ReplayBuffer(reinit_prob=1.5)


# --- the fast path computes the same function as the plain fp32 path -------------------------
# Tolerances: channels_last only reorders float sums inside the convolutions (about 1e-7
# relative per gradient; 60 clamped steps amplify that to ~1e-5), so fp32 is held to 1e-5
# relative per gradient and 1e-3 absolute per pixel after 60 steps. bf16 keeps 8 mantissa
# bits (~0.4 % per value), so each gradient may differ by a few percent (L2), while what
# matters, the distribution of the samples, must agree: mean score within 0.25 standard
# deviations and standard deviation within 10 % over 256 chains.


def test_channels_last_fp32_gradient_matches_plain(tutorial_checkpoint):
    model = load_tutorial_checkpoint(tutorial_checkpoint)
    x = torch.rand(64, 1, 28, 28) * 2 - 1
    plain = score_gradient(model, x.clone().requires_grad_(True))
    fast = score_gradient(model, x.clone(memory_format=torch.channels_last).requires_grad_(True))
    torch.testing.assert_close(fast, plain, rtol=0, atol=1e-5 * plain.abs().max().item())


def test_fast_fp32_chains_match_plain_chains(tutorial_checkpoint):
    model = load_tutorial_checkpoint(tutorial_checkpoint)
    x = torch.rand(32, 1, 28, 28) * 2 - 1

    def run(**speed):
        gen = torch.Generator().manual_seed(1)
        return langevin(model, x, steps=60, generator=gen, speed=SamplerSpeed("fp32", **speed))

    torch.testing.assert_close(run(channels_last=True), run(channels_last=False), rtol=0, atol=1e-3)


def test_bf16_gradient_is_close_and_bf16_samples_have_the_same_scores(tutorial_checkpoint):
    model = load_tutorial_checkpoint(tutorial_checkpoint)
    x = torch.rand(256, 1, 28, 28) * 2 - 1
    exact = score_gradient(model, x.clone().requires_grad_(True))
    approx = score_gradient(model, x.clone().requires_grad_(True), torch.bfloat16)
    assert ((approx - exact).norm() / exact.norm()).item() < 0.03

    def scores(precision):
        gen = torch.Generator().manual_seed(2)
        samples = langevin(model, x, steps=60, generator=gen, speed=SamplerSpeed(precision))
        with torch.no_grad():
            return model(samples)

    fp32, bf16 = scores("fp32"), scores("bf16")
    assert abs(bf16.mean() - fp32.mean()) < 0.25 * fp32.std()
    assert abs(bf16.std() / fp32.std() - 1) < 0.1


def test_precision_option_is_validated_and_auto_resolves():
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("auto", torch.device("cpu")) in (None, torch.bfloat16)
    with pytest.raises(ValueError, match="precision must be one of"):
        langevin(CNNEnergy(), torch.zeros(2, 1, 28, 28), speed=SamplerSpeed(precision="fp16"))


def test_compile_falls_back_to_eager_with_a_warning(monkeypatch):
    import ebm_course.sampling as sampling

    def broken_compile(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no compiler here")

        return fail

    monkeypatch.setattr(sampling.torch, "compile", broken_compile)
    model = CNNEnergy()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    with pytest.warns(RuntimeWarning, match="torch.compile failed"):
        fast = SamplerSpeed(compile=True)
        out = langevin(model, x, steps=2, speed=fast, generator=torch.Generator().manual_seed(0))
    eager = langevin(model, x, steps=2, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out, eager)


def test_langevin_rejects_starts_outside_the_value_range():
    with pytest.raises(ValueError, match=r"outside value_range \(-1.0, 1.0\)"):
        langevin(CNNEnergy(), torch.full((2, 1, 28, 28), 3.0))
    out = langevin(GaussianScore(0.0, 1.0), torch.full((2, 2), 3.0), steps=1, value_range=None)
    assert out.shape == (2, 2)  # unbounded sampling accepts any start


# --- properties (hypothesis) -----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(1, 6),
    dim=st.integers(1, 5),
    steps=st.integers(1, 8),
    step_size=st.floats(1e-3, 50.0),
    noise_std=st.floats(0.0, 1.0),
    grad_clamp=st.none() | st.floats(1e-3, 1.0),
    bounds=st.tuples(st.floats(-5, 0), st.floats(0.01, 5)),
)
def test_langevin_always_stays_in_range_and_keeps_shape(
    batch, dim, steps, step_size, noise_std, grad_clamp, bounds
):
    lo, hi = bounds
    model = GaussianScore(0.3, 0.5)
    x = torch.rand(batch, dim) * (hi - lo) + lo
    out = langevin(model, x, steps=steps, step_size=step_size, noise_std=noise_std,
                   grad_clamp=grad_clamp, value_range=(lo, hi))  # fmt: skip
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert out.min() >= lo and out.max() <= hi


@settings(max_examples=50, deadline=None)
@given(
    capacity=st.integers(1, 40),
    pushes=st.lists(st.integers(1, 25), min_size=1, max_size=12),
    batch=st.integers(1, 30),
)
def test_buffer_size_is_min_of_pushed_and_capacity(capacity, pushes, batch):
    buffer = ReplayBuffer(shape=(2,), capacity=capacity)
    pushed = 0
    for count in pushes:
        buffer.push(torch.rand(count, 2) * 2 - 1)
        pushed += count
        assert len(buffer) == min(pushed, capacity) <= capacity
    drawn = buffer.draw(batch)
    assert drawn.shape == (batch, 2) and drawn.min() >= -1 and drawn.max() <= 1


@settings(max_examples=60, deadline=None)
@given(
    steps=st.one_of(st.integers(-5, 0), st.floats(0.5, 3.0), st.text(max_size=2)),
    step_size=st.one_of(st.floats(max_value=0.0), st.just(float("nan"))),
)
def test_bad_sampler_options_always_raise_a_clear_error(steps, step_size):
    x = torch.zeros(1, 2)
    model = GaussianScore(0.0, 1.0)
    # the wrong kind of value (a float or text for a count) is a TypeError, a bad value a
    # ValueError; both name the argument
    with pytest.raises((TypeError, ValueError), match="steps"):
        langevin(model, x, steps=steps)
    with pytest.raises(ValueError, match="step_size"):
        langevin(model, x, steps=1, step_size=step_size)


def test_cuda_graph_switch_is_ignored_off_cuda():
    model = CNNEnergy()
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    runs = [
        langevin(
            model,
            x,
            steps=3,
            speed=SamplerSpeed(cuda_graph=flag),
            generator=torch.Generator().manual_seed(0),
        )
        for flag in (True, False)
    ]
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu.sh)")
def test_cuda_graph_chains_match_eager_chains_on_gpu():
    model = CNNEnergy().cuda()
    x = torch.rand(64, 1, 28, 28, device="cuda") * 2 - 1

    def run(flag):
        gen = torch.Generator(device="cuda").manual_seed(0)
        speed = SamplerSpeed(precision="fp32", cuda_graph=flag)
        return langevin(model, x, steps=20, speed=speed, generator=gen)

    torch.testing.assert_close(run(True), run(False), rtol=0, atol=1e-4)


def test_mask_keeps_unmasked_entries_fixed():
    model = CNNEnergy()
    x = torch.rand(3, 1, 28, 28) * 2 - 1
    mask = torch.zeros(1, 1, 28, 28, dtype=torch.bool)
    mask[..., 14:, :] = True  # only the bottom half may change (inpainting)
    out = langevin(model, x, steps=5, mask=mask)
    assert torch.equal(out[..., :14, :], x[..., :14, :])
    assert not torch.equal(out[..., 14:, :], x[..., 14:, :])
    with pytest.raises(ValueError, match="does not broadcast"):
        langevin(model, x, steps=1, mask=torch.ones(2, 2, dtype=torch.bool))
