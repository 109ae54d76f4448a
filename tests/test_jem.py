"""Joint Energy-based Models: the scores, a training step, a short run, input checks."""

import math

import pytest
import torch
from torch import nn

from ebm_course.jem import (
    DETECTORS,
    JEM,
    ClassConditionalScore,
    detector_scores,
    fit_jem,
    jem_training_step,
)
from ebm_course.models import CNNEnergy
from ebm_course.sampling import ReplayBuffer, langevin, uniform_noise
from ebm_course.speed import SamplerSpeed
from ebm_course.training import TrainConfig

# a cheap sampler for tests: few short chains, small buffer
TINY = dict(batch_size=8, lr=1e-3, mcmc_steps=3, buffer_capacity=64)
STEP_KEYS = {"loss", "ce", "cdiv", "reg_loss", "real_score", "fake_score", "accuracy"}


@pytest.fixture(autouse=True)
def _one_thread():
    # These tiny networks run fastest on one thread; spare threads only spin on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_jem() -> JEM:
    torch.manual_seed(0)
    return JEM(CNNEnergy(hidden_features=4, out_dim=10))


def test_forward_is_logsumexp_of_logits():
    model = tiny_jem()
    x = uniform_noise((5, 1, 28, 28))
    logits = model.logits(x)
    assert logits.shape == (5, 10)
    assert model(x).shape == (5,)
    torch.testing.assert_close(model(x), torch.logsumexp(logits, dim=1))
    # the marginal score is above every class score, and within log(C) of the best one
    assert (model(x) >= logits.max(dim=1).values).all()
    assert (model(x) <= logits.max(dim=1).values + math.log(10) + 1e-5).all()


def test_default_network_is_the_course_cnn_with_ten_classes():
    net = JEM().net
    assert isinstance(net, CNNEnergy)
    assert (net.hidden_features, net.out_dim) == (32, 10)


def test_conditional_scores_are_logit_columns():
    model = tiny_jem()
    x = uniform_noise((6, 1, 28, 28))
    logits = model.logits(x)
    for y in (0, 3, 9):
        conditional = model.conditional(y)
        assert isinstance(conditional, ClassConditionalScore)
        torch.testing.assert_close(conditional(x), logits[:, y])
    per_image = torch.tensor([0, 1, 2, 7, 8, 9])
    torch.testing.assert_close(model.class_score(x, per_image), logits[torch.arange(6), per_image])


def test_probabilities_and_predictions_match_softmax():
    model = tiny_jem()
    x = uniform_noise((4, 1, 28, 28))
    probs = model.probabilities(x)
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(4))
    # p(y|x) = exp(f(x, y)) / exp(f(x)): the partition function cancels
    torch.testing.assert_close(probs, (model.logits(x) - model(x)[:, None]).exp())
    assert torch.equal(model.predict(x), probs.argmax(dim=1))


def test_gradients_flow_to_parameters_and_inputs():
    model = tiny_jem()
    x = uniform_noise((3, 1, 28, 28)).requires_grad_(True)
    (model(x).sum() + model.class_score(x, 2).sum()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_conditional_module_shares_weights_and_samples_with_langevin():
    model = tiny_jem()
    conditional = model.conditional(torch.arange(10))
    assert all(a is b for a, b in zip(conditional.parameters(), model.parameters(), strict=True))
    start = uniform_noise((10, 1, 28, 28), generator=torch.Generator().manual_seed(0))
    before = conditional(start).detach()
    samples = langevin(conditional, start, steps=5, step_size=1.0, speed=SamplerSpeed("fp32"))
    assert samples.shape == start.shape
    assert samples.min() >= -1 and samples.max() <= 1
    assert conditional(samples).mean() > before.mean()  # the chains climb f(x, y)


def test_detector_scores():
    model = tiny_jem()
    x = uniform_noise((7, 1, 28, 28))
    scores = detector_scores(model, x, batch_size=3)
    assert tuple(scores) == DETECTORS
    logits = model.logits(x).detach()
    torch.testing.assert_close(scores["marginal"], model(x).detach())
    torch.testing.assert_close(scores["max_logit"], logits.max(dim=1).values)
    torch.testing.assert_close(scores["max_softmax"], logits.softmax(dim=1).max(dim=1).values)
    assert model.training  # mode restored


def test_training_step_changes_weights_and_reports_finite_floats():
    model = tiny_jem()
    config = TrainConfig(**TINY)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.0, 0.999))
    buffer = ReplayBuffer(capacity=64)
    images = uniform_noise((8, 1, 28, 28))
    labels = torch.arange(8)
    before = [p.detach().clone() for p in model.parameters()]
    row = jem_training_step(model, optimizer, buffer, images, labels, config)
    assert set(row) == STEP_KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in row.values())
    assert row["loss"] == pytest.approx(
        row["ce"] + row["cdiv"] + row["reg_loss"], rel=1e-5, abs=1e-6
    )
    assert len(buffer) == 8  # the fake images were stored
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_training_step_without_generative_term_is_a_classifier_step():
    model = tiny_jem()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    row = jem_training_step(
        model, optimizer, None, uniform_noise((8, 1, 28, 28)), torch.arange(8),
        TrainConfig(**TINY), generative_weight=0.0,
    )  # fmt: skip
    assert row["loss"] == pytest.approx(row["ce"])
    assert math.isnan(row["cdiv"]) and math.isnan(row["fake_score"])


def separable_data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two easy classes: a bright left half or a bright right half, plus noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    images = torch.full((n, 1, 28, 28), -0.8)
    images[labels == 0, :, :, :14] = 0.8
    images[labels == 1, :, :, 14:] = 0.8
    images += 0.1 * torch.randn(images.shape, generator=gen)
    return images.clamp(-1, 1), labels


def test_fit_jem_learns_a_separable_problem():
    torch.manual_seed(0)
    model = JEM(CNNEnergy(hidden_features=4, out_dim=2))
    images, labels = separable_data(64)
    test_images, test_labels = separable_data(200, seed=1)
    assert (model.predict(test_images) == test_labels).float().mean() < 0.9
    config = TrainConfig(**{**TINY, "batch_size": 16, "lr": 1e-2})
    history = fit_jem(model, images, labels, config, iterations=10, log_every=4, progress=False)
    assert history["iteration"] == [4, 8, 10]
    assert set(history) == STEP_KEYS | {"iteration", "seconds"}
    assert all(math.isfinite(v) for values in history.values() for v in values)
    assert history["ce"][-1] < history["ce"][0]
    assert (model.predict(test_images) == test_labels).float().mean() > 0.9
    assert not model.training


def test_fit_jem_is_reproducible():
    images, labels = separable_data(16)
    weights = []
    for _ in range(2):
        model = tiny_jem()
        fit_jem(model, images, labels, TrainConfig(**TINY), iterations=2, progress=False)
        weights.append(nn.utils.parameters_to_vector(model.parameters()))
    assert torch.equal(weights[0], weights[1])


@pytest.mark.parametrize(
    ("images", "labels", "match"),
    [
        (torch.zeros(16, 1, 28, 28), torch.zeros(15, dtype=torch.long), "labels must have shape"),
        (torch.zeros(16, 1, 28, 28), torch.full((16,), 10), r"labels must lie in 0\.\.9"),
        (torch.zeros(16, 1, 28, 28), torch.full((16,), -1), r"labels must lie in 0\.\.9"),
        (torch.zeros(4, 1, 28, 28), torch.zeros(4, dtype=torch.long), "fewer than one batch"),
        (torch.full((16, 1, 28, 28), 2.0), torch.zeros(16, dtype=torch.long), "value_range"),
    ],
)
def test_fit_jem_rejects_bad_data(images, labels, match):
    with pytest.raises(ValueError, match=match):
        fit_jem(tiny_jem(), images, labels, TrainConfig(**TINY), iterations=1, progress=False)


def test_fit_jem_rejects_float_labels():
    images, labels = torch.zeros(16, 1, 28, 28), torch.zeros(16)
    with pytest.raises(TypeError, match="integer class indices"):  # the wrong kind of labels
        fit_jem(tiny_jem(), images, labels, TrainConfig(**TINY), iterations=1, progress=False)


def test_fit_jem_rejects_integer_images_like_fit_does():
    images, labels = torch.zeros(16, 1, 28, 28, dtype=torch.long), torch.zeros(16)
    with pytest.raises(TypeError, match="floating-point"):  # the same check as training.fit
        fit_jem(tiny_jem(), images, labels, TrainConfig(**TINY), iterations=1, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iterations": 0}, "iterations"),
        ({"log_every": 1.5}, "log_every"),
        ({"generative_weight": -1.0}, "generative_weight"),
        ({"generative_weight": math.nan}, "generative_weight"),
    ],
)
def test_fit_jem_rejects_bad_arguments(kwargs, match):
    images, labels = separable_data(16)
    error = TypeError if kwargs.get("log_every") == 1.5 else ValueError  # a float for a count
    with pytest.raises(error, match=match):
        fit_jem(tiny_jem(), images, labels, TrainConfig(**TINY), progress=False, **kwargs)


def test_bad_classes_and_networks_raise():
    model = tiny_jem()
    x = uniform_noise((2, 1, 28, 28))
    with pytest.raises(ValueError, match="y must lie in"):
        model.class_score(x, 10)
    with pytest.raises(ValueError, match=r"y must have shape \[2\]"):
        model.conditional(torch.tensor([1, 2, 3]))(x)
    with pytest.raises(TypeError, match="int or an integer tensor"):
        model.conditional(1.5)
    with pytest.raises(ValueError, match="logits"):
        JEM(CNNEnergy(hidden_features=4, out_dim=1))(x)
    with pytest.raises(TypeError, match="must be a JEM"):
        ClassConditionalScore(CNNEnergy(hidden_features=4), 0)
    with pytest.raises(ValueError, match="buffer"):
        jem_training_step(model, torch.optim.Adam(model.parameters()), None, x,
                          torch.zeros(2, dtype=torch.long), TrainConfig(**TINY))  # fmt: skip


def test_training_step_rejects_mismatched_labels():
    model = tiny_jem()
    with pytest.raises(ValueError, match=r"labels must have shape \[4\]"):
        jem_training_step(model, torch.optim.Adam(model.parameters()), ReplayBuffer(capacity=8),
                          uniform_noise((4, 1, 28, 28)), torch.zeros(3, dtype=torch.long),
                          TrainConfig(**TINY))  # fmt: skip


def test_fit_jem_runs_on_the_shared_loop_with_checkpoints_and_resume(tmp_path):
    """JEM gets what fit has: last.pt after every pass, and a resume that ends bit-identical."""
    images, labels = separable_data(64)
    config = TrainConfig(**TINY)

    def run(iterations, folder=None):
        torch.manual_seed(0)
        model = tiny_jem()
        history = fit_jem(
            model,
            images,
            labels,
            config,
            iterations=iterations,
            log_every=2,
            progress=False,
            checkpoint_dir=folder,
        )
        return model, history

    straight, straight_history = run(8)
    run(5, tmp_path)  # one pass of 4 iterations, then 1 of the second: saved mid-pass
    assert (tmp_path / "last.pt").is_file()
    resumed, resumed_history = run(8, tmp_path)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)
    # the first call logged its last, partial block (iteration 5) before stopping
    assert resumed_history["iteration"] == [2, 4, 5, 6, 8]
    assert straight_history["iteration"] == [2, 4, 6, 8]


def test_fit_jem_rolls_back_a_diverged_step():
    from ebm_course.training import DivergenceGuard

    images, labels = separable_data(32)
    calls = {"n": 0}

    class FailOnce(DivergenceGuard):
        def problem(self, row):
            calls["n"] += 1
            return "forced" if calls["n"] == 5 else super().problem(row)

    torch.manual_seed(0)
    history = fit_jem(
        tiny_jem(),
        images,
        labels,
        TrainConfig(**TINY),
        iterations=8,
        guard=FailOnce(),
        progress=False,
    )
    assert [event["reason"] for event in history.events] == ["forced"]
