import math

import pytest
import torch

from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.sampling import ReplayBuffer
from ebm_course.training import (
    History,
    TrainConfig,
    contrastive_divergence_loss,
    fit,
    mean_score,
)

TOY = dict(
    batch_size=64,
    lr=1e-2,
    grad_clip=1.0,
    mcmc_steps=20,
    step_size=0.05,
    mcmc_noise=0.01,
    grad_clamp=None,
    input_noise=0.0,
    buffer_capacity=512,
    noise_images=512,
)


def toy_model() -> MLPEnergy:
    torch.manual_seed(0)
    return MLPEnergy(hidden=32, depth=2)


def test_tutorial_defaults():
    c = TrainConfig()
    assert (c.batch_size, c.alpha, c.lr, c.beta1, c.beta2) == (128, 0.1, 1e-4, 0.0, 0.999)
    assert (c.lr_gamma, c.grad_clip, c.epochs, c.mcmc_steps) == (0.97, 0.1, 60, 60)
    assert (c.step_size, c.mcmc_noise, c.input_noise, c.grad_clamp) == (10.0, 0.005, 0.005, 0.03)
    assert (c.buffer_capacity, c.reinit_prob, c.value_range) == (8192, 0.05, (-1.0, 1.0))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 0),
        ("batch_size", 2.5),
        ("batch_size", True),
        ("epochs", -1),
        ("lr", 0.0),
        ("lr", float("nan")),
        ("alpha", -0.1),
        ("beta1", 1.5),
        ("lr_gamma", 0.0),
        ("grad_clip", -1.0),
        ("step_size", float("inf")),
        ("mcmc_noise", -0.01),
        ("reinit_prob", 2.0),
        ("value_range", (1.0, -1.0)),
        ("seed", -3),
        ("iters_per_epoch", 0),
        ("mcmc_steps", "60"),
    ],
)
def test_config_rejects_nonsense_with_the_field_name(field, value):
    with pytest.raises(ValueError, match=field):
        TrainConfig(**{field: value})


def test_config_dict_roundtrip_and_unknown_keys():
    config = TrainConfig(epochs=3, grad_clip=None)
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown TrainConfig fields.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-3})


def test_loss_signs():
    real, fake = torch.tensor([1.0, 1.0]), torch.tensor([-1.0, -3.0])
    loss, reg, cdiv = contrastive_divergence_loss(real, fake, alpha=0.1)
    assert cdiv.item() == pytest.approx(-3.0)  # fake mean -2 minus real mean 1
    assert reg.item() == pytest.approx(0.1 * (1 + 1 + 1 + 9) / 2)
    assert loss.item() == pytest.approx(reg.item() + cdiv.item())


def test_a_few_epochs_on_a_toy_lower_the_validation_contrastive_divergence(blob):
    data, val = blob(1024), blob(512, seed=1)
    noise = torch.rand(512, 2) * 2 - 1
    model = toy_model()

    def val_cdiv() -> float:  # mean f(noise) - mean f(data): lower is better
        return mean_score(model, noise) - mean_score(model, val)

    before = val_cdiv()
    history = fit(model, data, val, TrainConfig(epochs=4, **TOY), progress=False)
    assert len(history) == 4 and history.epoch == [1, 2, 3, 4]
    assert val_cdiv() < before - 0.2
    assert history.val_cdiv[-1] < before - 0.2  # fit's own record agrees
    assert history.lr[1] == pytest.approx(history.lr[0] * 0.97)
    assert not model.training


def test_one_cnn_epoch_on_sample_images(mnist_sample_images):
    torch.manual_seed(0)
    model = CNNEnergy()
    config = TrainConfig(epochs=1, iters_per_epoch=3, batch_size=32, mcmc_steps=5)
    buffer = ReplayBuffer(capacity=256)
    history = fit(
        model, mnist_sample_images, mnist_sample_images[:256], config, buffer=buffer, progress=False
    )
    assert len(buffer) == 96  # 3 iterations x 32 samples were stored
    assert all(math.isfinite(v) for v in history.to_dict()["loss"])
    assert math.isfinite(history.val_cdiv[0]) and math.isfinite(history.noise_score[0])


def test_checkpoints_resume_to_the_same_weights(tmp_path, blob):
    data, val = blob(256), blob(128, seed=1)
    config = TrainConfig(epochs=3, **TOY)

    straight = toy_model()
    fit(straight, data, val, config, progress=False)

    resumed = toy_model()
    fit(resumed, data, val, TrainConfig(epochs=2, **TOY), checkpoint_dir=tmp_path, progress=False)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    assert not list(tmp_path.glob("*.tmp"))  # atomic writes leave no temporaries
    fresh = toy_model()  # a new process would start from fresh weights
    history = fit(fresh, data, val, config, checkpoint_dir=tmp_path, progress=False)
    assert history.epoch == [1, 2, 3]
    for a, b in zip(straight.parameters(), fresh.parameters(), strict=True):
        assert torch.equal(a, b)


def test_resume_refuses_a_different_config(tmp_path, blob):
    data = blob(128)
    fit(
        toy_model(),
        data,
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    with pytest.raises(ValueError, match=r"config differs in \['lr'\]"):
        fit(
            toy_model(),
            data,
            None,
            TrainConfig(epochs=2, **{**TOY, "lr": 0.5}),
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_best_checkpoint_holds_the_lowest_val_cdiv(tmp_path, blob):
    from ebm_course.checkpoint import load_checkpoint

    history = fit(
        toy_model(),
        blob(256),
        blob(128, seed=1),
        TrainConfig(epochs=3, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    best = load_checkpoint(tmp_path / "best.pt", required=("model", "val_cdiv"))
    assert best["val_cdiv"] == pytest.approx(min(history.val_cdiv))


def test_fit_rejects_bad_data(blob):
    with pytest.raises(ValueError, match="fewer than one batch"):
        fit(toy_model(), blob(10), config=TrainConfig(**TOY), progress=False)
    with pytest.raises(TypeError, match="floating-point"):
        fit(toy_model(), torch.zeros(100, 2, dtype=torch.long), progress=False)


def test_history_roundtrip():
    history = History()
    history.append(epoch=1, loss=0.5)
    assert History.from_dict(history.to_dict()).loss == [0.5]


def test_tensorboard_logging(tmp_path, blob):
    pytest.importorskip("tensorboard")
    fit(
        toy_model(),
        blob(128),
        None,
        TrainConfig(epochs=1, **TOY),
        tensorboard_dir=tmp_path / "tb",
        progress=False,
    )
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))


def test_bf16_sampling_gives_the_same_short_training_curve(mnist_sample_images):
    # Tolerance 0.01 on per-epoch means whose scale is ~0.05-0.1: bf16 only perturbs the
    # MCMC gradients (~1 % each), far below what would change the learning signal.
    curves = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        config = TrainConfig(
            epochs=3, iters_per_epoch=3, batch_size=32, mcmc_steps=20, precision=precision
        )
        images = mnist_sample_images
        curves[precision] = fit(CNNEnergy(), images, images[:256], config, progress=False)
    for key in ("loss", "cdiv", "real_score", "fake_score", "val_cdiv"):
        fp32, bf16 = getattr(curves["fp32"], key), getattr(curves["bf16"], key)
        assert max(abs(a - b) for a, b in zip(fp32, bf16, strict=True)) < 0.01, key
