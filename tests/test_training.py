import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.sampling import ReplayBuffer
from ebm_course.training import (
    DivergenceGuard,
    History,
    TrainConfig,
    TrainingDiverged,
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
        ("flatness", -1.0),
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


def test_flatness_adds_the_variance_of_the_real_scores():
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([-1.0, -3.0])
    base, base_reg, cdiv = contrastive_divergence_loss(real, fake, alpha=0.1)
    loss, reg, cdiv_flat = contrastive_divergence_loss(real, fake, alpha=0.1, flatness=0.5)
    assert reg.item() == pytest.approx(base_reg.item() + 0.5 * 2.0)  # unbiased Var([1, 3]) = 2
    assert loss.item() == pytest.approx(base.item() + 1.0)
    assert cdiv_flat.item() == cdiv.item()


def test_flatness_needs_a_batch_to_take_a_variance_over():
    with pytest.raises(ValueError, match="flatness > 0 needs batch_size >= 2"):
        TrainConfig(flatness=1.0, batch_size=1)
    assert TrainConfig(flatness=0.0, batch_size=1).batch_size == 1


def test_flatness_makes_the_real_scores_more_alike():
    # Two blobs, one tight and one wide: a density model scores the tight one higher.
    torch.manual_seed(0)
    tight = torch.randn(512, 2) * 0.05 + torch.tensor([-0.5, 0.0])
    wide = torch.randn(512, 2) * 0.2 + torch.tensor([0.5, 0.0])
    data = torch.cat([tight, wide]).clamp(-1, 1)
    spread = {}
    sampler = dict(mcmc_steps=40, step_size=0.01, mcmc_noise=0.02)  # chains that mix here
    for flatness in (0.0, 5.0):
        model = toy_model()
        config = TrainConfig(**{**TOY, **sampler}, epochs=8, iters_per_epoch=50, flatness=flatness)
        fit(model, data, None, config, progress=False)
        with torch.no_grad():
            spread[flatness] = (model(tight).mean() - model(wide).mean()).item()
    assert spread[0.0] > 0.08  # without it, the tight blob scores clearly higher (0.12)
    assert abs(spread[5.0]) < 0.6 * spread[0.0]  # with it, much less (0.05)


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


def test_keep_epochs_keeps_the_weights_of_every_epoch(tmp_path, blob):
    data, val = blob(256), blob(128, seed=1)
    model = toy_model()
    with pytest.raises(ValueError, match="keep_epochs=True needs a checkpoint_dir"):
        fit(model, data, val, TrainConfig(epochs=1, **TOY), keep_epochs=True, progress=False)
    fit(model, data, val, TrainConfig(epochs=2, **TOY), checkpoint_dir=tmp_path,
        keep_epochs=True, progress=False)  # fmt: skip
    kept = sorted(p.name for p in (tmp_path / "epochs").iterdir())
    assert kept == ["epoch_001.pt", "epoch_002.pt"]
    first = torch.load(tmp_path / "epochs" / "epoch_001.pt", weights_only=True)
    last = torch.load(tmp_path / "epochs" / "epoch_002.pt", weights_only=True)
    assert (first["epoch"], last["epoch"]) == (1, 2)
    for name, value in model.state_dict().items():
        assert torch.equal(last["model"][name], value)  # the last one is the final model
    assert any(not torch.equal(first["model"][k], last["model"][k]) for k in first["model"])


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


def test_an_older_run_without_a_newer_config_field_resumes(tmp_path, blob):
    """A run saved before a TrainConfig field existed resumes: the field takes its default."""
    data = blob(128)
    fit(
        toy_model(),
        data,
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    last = tmp_path / "last.pt"
    state = torch.load(last, weights_only=True)
    del state["config"]["flatness"]  # as written before flatness existed
    torch.save(state, last)
    history = fit(
        toy_model(),
        data,
        None,
        TrainConfig(epochs=2, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert history.epoch == [1, 2]
    # but asking for a non-default value of the missing field changes the algorithm
    with pytest.raises(ValueError, match=r"config differs in \['flatness'\]"):
        fit(
            toy_model(),
            data,
            None,
            TrainConfig(epochs=3, flatness=1.0, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_resume_accepts_other_speed_switches_and_reads_the_format_tag(tmp_path, blob):
    data = blob(128)
    fit(
        toy_model(),
        data,
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    faster = TrainConfig(epochs=2, precision="fp32", channels_last=False, **TOY)
    assert fit(toy_model(), data, None, faster, checkpoint_dir=tmp_path, progress=False).epoch == [
        1,
        2,
    ]
    last = tmp_path / "last.pt"
    state = torch.load(last, weights_only=True)
    assert state["format"] == "ebm_course.fit/2"
    state["format"] = "ebm_course.fit/99"
    torch.save(state, last)
    with pytest.raises(ValueError, match="fit/99"):
        fit(
            toy_model(),
            data,
            None,
            TrainConfig(epochs=3, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )


def test_a_version_1_checkpoint_is_upgraded_on_resume(tmp_path, blob):
    data = blob(128)
    config = TrainConfig(epochs=1, **TOY)
    fit(toy_model(), data, None, config, checkpoint_dir=tmp_path, progress=False)
    last = tmp_path / "last.pt"
    state = torch.load(last, weights_only=True)
    rng = state["rng"]
    state["rng"] = {**rng, "sample": rng["generators"][0], "shuffle": rng["generators"][1]}
    del state["rng"]["generators"], state["history"]["iterations"], state["format"]
    torch.save(state, last)
    history = fit(
        toy_model(),
        data,
        None,
        TrainConfig(epochs=2, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert history.iterations == [2, 4]  # 128 examples / batch 64 per epoch


def test_the_history_counts_iterations(blob):
    config = TrainConfig(epochs=2, iters_per_epoch=3, **TOY)
    history = fit(toy_model(), blob(128), None, config, progress=False)
    assert history.iterations == [3, 6]


def test_fit_leaves_the_callers_buffer_generator_alone(blob):
    own = torch.Generator().manual_seed(123)
    buffer = ReplayBuffer((2,), capacity=64, generator=own)
    before = own.get_state().clone()
    fit(toy_model(), blob(128), None, TrainConfig(epochs=1, **TOY), buffer=buffer, progress=False)
    assert buffer.generator is own and torch.equal(own.get_state(), before)
    assert len(buffer) == 64  # but the samples went into it


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


def test_history_roundtrip_and_columns_defined_once():
    from ebm_course.plots import HISTORY_PANELS
    from ebm_course.training import HISTORY_KEYS, STEP_KEYS

    history = History()
    row = dict.fromkeys(HISTORY_KEYS, 0.25)
    history.append(**{**row, "epoch": 1, "loss": 0.5})
    assert History.from_dict(history.to_dict()).loss == [0.5]
    assert History.from_dict(history.to_dict()) == history
    with pytest.raises(ValueError, match="missing"):
        history.append(epoch=2, loss=0.5)
    # the step keys, the history's columns and the plot panels come from one table
    assert set(STEP_KEYS) < set(HISTORY_KEYS)
    assert {key for _, _, keys in HISTORY_PANELS for key in keys} < set(HISTORY_KEYS)


def test_an_older_history_without_a_column_reads_it_as_nan():
    old = {"epoch": [1, 2], "loss": [0.5, 0.4], "events": []}
    history = History.from_dict(old)
    assert history.loss == [0.5, 0.4] and all(math.isnan(v) for v in history.iterations)


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


# --- reliability: interruption, divergence, determinism --------------------------------------

WORKER = Path(__file__).with_name("resume_worker.py")


def _worker(out: Path, *flags: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(WORKER.parents[1])}
    return subprocess.Popen([sys.executable, str(WORKER), str(out), *flags], env=env)


def test_sigkill_at_a_random_step_then_resume_gives_bit_identical_weights(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir(), killed.mkdir()
    assert _worker(straight).wait(timeout=300) == 0
    total = 4 * (256 // 32)
    kill_at = random.Random().randint(3, total - 3)  # a different step each run
    proc = _worker(killed, "--slow")
    deadline = time.monotonic() + 240
    step_file = killed / "step.txt"
    while time.monotonic() < deadline:
        if step_file.exists() and int(step_file.read_text()) >= kill_at:
            break
        assert proc.poll() is None, "worker ended before it could be killed"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "final.pt").exists()
    assert not list((killed / "ckpt").glob("*.tmp"))  # no half-written checkpoint left
    assert _worker(killed).wait(timeout=300) == 0  # resumes from ckpt/last.pt
    a = torch.load(straight / "final.pt", weights_only=True)
    b = torch.load(killed / "final.pt", weights_only=True)
    for name in a:
        assert torch.equal(a[name], b[name]), f"{name} differs after kill at step {kill_at}"


def test_injected_nan_weights_are_rolled_back_and_training_recovers(blob):
    model = toy_model()
    poisoned = []

    def poison(step: int, net: torch.nn.Module) -> None:
        if step == 10 and not poisoned:  # epoch 3 of 4 (4 iterations per epoch), once
            poisoned.append(step)
            with torch.no_grad():
                net.net[0].weight.fill_(float("nan"))

    history = fit(model, blob(256), blob(128, seed=1), TrainConfig(epochs=4, **TOY),
                  callback=poison, progress=False)  # fmt: skip
    assert len(history.events) == 1
    event = history.events[0]
    assert "non-finite" in event["reason"] and event["epoch"] == 3
    assert event["lr"] == pytest.approx(TOY["lr"] * 0.97**2 * 0.5)  # lowered after rollback
    assert history.epoch == [1, 2, 3, 4]
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(math.isfinite(v) for v in history.loss)


def test_exploding_energy_scale_is_detected(blob):
    model = toy_model()
    exploded = []

    def blow_up(step: int, net: torch.nn.Module) -> None:
        if step == 5 and not exploded:
            exploded.append(step)
            with torch.no_grad():
                net.net[-1].bias.fill_(1e4)  # every score jumps to about 1e4

    history = fit(model, blob(256), None, TrainConfig(epochs=3, **TOY), callback=blow_up,
                  progress=False)  # fmt: skip
    assert [e["reason"].split(" (")[0] for e in history.events] == ["energy scale exploded"]
    assert abs(history.real_score[-1]) < 50


def test_guard_gives_up_after_max_rollbacks(blob):
    def always_poison(step: int, net: torch.nn.Module) -> None:
        with torch.no_grad():
            net.net[0].bias.fill_(float("inf"))

    with pytest.raises(TrainingDiverged, match="gave up after 2 rollbacks"):
        fit(toy_model(), blob(256), None, TrainConfig(epochs=2, **TOY), callback=always_poison,
            guard=DivergenceGuard(max_rollbacks=2), progress=False)  # fmt: skip


def test_guard_options_are_validated():
    with pytest.raises(ValueError, match="lr_factor"):
        DivergenceGuard(lr_factor=0.0)
    with pytest.raises(ValueError, match="max_score_gap"):
        DivergenceGuard(max_score_gap=-1.0)
    assert DivergenceGuard(enabled=False).problem({"loss": math.nan}) is None


def test_same_seed_same_history_on_cpu(blob):
    runs = [fit(toy_model(), blob(256), blob(64, seed=1), TrainConfig(epochs=2, **TOY),
                progress=False).to_dict() for _ in range(2)]  # fmt: skip
    for key in runs[0]:
        if key != "seconds":
            assert runs[0][key] == runs[1][key], key


def test_fit_rejects_data_outside_the_value_range_and_nan(blob):
    with pytest.raises(ValueError, match=r"train_data has values in \[-1.6.*outside value_range"):
        fit(toy_model(), blob(128) * 10 - 3, config=TrainConfig(**TOY), progress=False)
    nan_data = blob(128)
    nan_data[3, 0] = float("nan")
    with pytest.raises(ValueError, match="train_data contains NaN"):
        fit(toy_model(), nan_data, config=TrainConfig(**TOY), progress=False)
    with pytest.raises(ValueError, match="val_data examples have shape"):
        fit(toy_model(), blob(128), torch.zeros(8, 3), TrainConfig(**TOY), progress=False)
    with pytest.raises(ValueError, match="checkpoint_every"):
        fit(toy_model(), blob(128), checkpoint_every=0, progress=False)


def test_resume_from_a_corrupt_checkpoint_names_the_file(blob, tmp_path):
    (tmp_path / "last.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="last.pt"):
        fit(toy_model(), blob(128), None, TrainConfig(**TOY), checkpoint_dir=tmp_path,
            progress=False)  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            "batch_size": st.integers(-3, 300) | st.floats(-1, 10) | st.booleans(),
            "lr": st.floats(allow_nan=True, allow_infinity=True),
            "alpha": st.floats(-1, 1),
            "beta1": st.floats(-0.5, 1.5),
            "reinit_prob": st.floats(-0.5, 1.5),
            "mcmc_steps": st.integers(-2, 100) | st.text(max_size=3),
            "value_range": st.tuples(st.floats(-2, 2), st.floats(-2, 2)),
            "grad_clip": st.none() | st.floats(-1, 1),
            "precision": st.sampled_from(["auto", "fp32", "bf16", "fp16", ""]),
        },
    )
)
def test_config_is_either_valid_or_rejected_with_value_error(values):
    try:
        config = TrainConfig(**values)
    except ValueError as err:
        assert str(err).startswith("invalid TrainConfig: ")
        return
    assert config.batch_size >= 1 and config.lr > 0 and 0 <= config.reinit_prob <= 1
    assert config.value_range[0] < config.value_range[1]
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_repeated_rollbacks_keep_lowering_the_learning_rate(blob):
    poisoned = []

    def poison_twice(step: int, net: torch.nn.Module) -> None:
        if step == 6 and len(poisoned) < 2:  # epoch 2, twice in a row
            poisoned.append(step)
            with torch.no_grad():
                net.net[0].weight.fill_(float("nan"))

    history = fit(toy_model(), blob(256), None, TrainConfig(epochs=3, **TOY),
                  callback=poison_twice, progress=False)  # fmt: skip
    lrs = [event["lr"] for event in history.events]
    assert lrs == pytest.approx([TOY["lr"] * 0.97 * 0.5, TOY["lr"] * 0.97 * 0.25])
    assert history.lr[1] == pytest.approx(TOY["lr"] * 0.97 * 0.25)


def test_sample_every_records_samples_from_noise_and_the_buffer(tmp_path, mnist_sample_images):
    torch.manual_seed(0)
    config = TrainConfig(
        epochs=2,
        iters_per_epoch=2,
        batch_size=16,
        mcmc_steps=2,
        buffer_capacity=64,
        noise_images=16,
    )
    history = fit(
        CNNEnergy(hidden_features=8),
        mnist_sample_images[:64],
        None,
        config,
        sample_every=1,
        checkpoint_dir=tmp_path,
        tensorboard_dir=tmp_path / "tb",
        progress=False,
    )
    assert [s["epoch"] for s in history.samples] == [1, 2]
    first = history.samples[0]
    assert first["from_noise"].shape == (16, 1, 28, 28) and first["buffer"].shape == (16, 1, 28, 28)
    assert first["from_noise"].min() >= -1 and first["from_noise"].max() <= 1
    assert not torch.equal(history.samples[0]["from_noise"], history.samples[1]["from_noise"])
    assert "samples" not in history.to_dict(samples=False)
    from ebm_course.checkpoint import load_checkpoint

    saved = load_checkpoint(tmp_path / "last.pt")["history"]["samples"]
    assert torch.equal(saved[1]["buffer"], history.samples[1]["buffer"])
    assert list((tmp_path / "tb").glob("events.*"))
