"""Score-model runs: the validated config, a run that resumes bit for bit, loading, sampling,
the evaluation on the energy models' measures, and the ``train-score`` command line."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
import torch

from ebm_course.classifier import MNISTClassifier
from ebm_course.cli import main
from ebm_course.data import MNISTSample, to_tensors
from ebm_course.metrics import judge_samples
from ebm_course.score_models import (
    ScoreNet,
    karras_levels,
    lognormal_dsm_loss,
    multi_level_dsm_loss,
    noise_levels,
)
from ebm_course.score_training import (
    SAMPLERS,
    ScoreConfig,
    evaluate_score_model,
    load_score_model,
    sample_score_model,
    train_score_run,
)

torch.set_num_threads(1)
TINY = {"steps": 6, "batch_size": 8, "levels": 5, "sigma_max": 2.0, "sigma_min": 0.1}


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return to_tensors(MNISTSample(), limit=64)[0]


def test_config_defaults_are_the_shipped_recipe_and_round_trip():
    config = ScoreConfig()
    assert config.sampler in SAMPLERS
    assert ScoreConfig.from_dict(config.to_dict()) == config
    sigmas = config.sigmas()
    assert sigmas.shape == (config.levels,)
    assert sigmas[0].item() == pytest.approx(config.sigma_max)
    assert sigmas[-1].item() == pytest.approx(config.sigma_min)


def test_config_picks_the_sampling_levels_and_the_loss():
    config = ScoreConfig(sigma_max=10.0, sigma_min=0.02, levels=18, sampler="heun", rho=7.0)
    assert torch.allclose(config.sampling_sigmas(), karras_levels(10.0, 0.02, 18, 7.0))
    ladder = dataclasses.replace(config, sampler="predictor_corrector")
    assert torch.allclose(ladder.sampling_sigmas(), noise_levels(10.0, 0.02, 18))
    lognormal = config.loss()
    assert lognormal.func is lognormal_dsm_loss and lognormal.keywords == {
        "p_mean": config.p_mean,
        "p_std": config.p_std,
    }
    ladder_loss = dataclasses.replace(config, noise_sampling="ladder").loss()
    assert ladder_loss.func is multi_level_dsm_loss
    assert torch.equal(ladder_loss.keywords["sigmas"], config.sigmas())


def test_a_saved_config_from_before_the_preconditioning_field_loads_as_it_was_made(
    tmp_path: Path, images: torch.Tensor
):
    """The first shipped recipe had no preconditioning / noise_sampling fields: it was the
    noise-predicting network trained on the ladder, and must load as such."""
    config = ScoreConfig(
        **TINY, preconditioning="noise", noise_sampling="ladder", middle_blocks=0, attention=False
    )
    train_score_run(config, images, tmp_path, checkpoint_every=3)
    saved = torch.load(tmp_path / "score_model.pt", weights_only=True)
    for key in ("preconditioning", "noise_sampling", "middle_blocks", "attention", "rho", "churn"):
        del saved["config"][key]
    torch.save(saved, tmp_path / "old.pt")
    model, loaded = load_score_model(tmp_path / "old.pt")
    assert (loaded.preconditioning, loaded.noise_sampling) == ("noise", "ladder")
    assert model.preconditioning == "noise"


def test_config_names_every_bad_field_at_once():
    with pytest.raises(ValueError) as err:
        ScoreConfig(channels=12, lr=-1.0, ema_decay=1.0, sampler="euler", steps=0)
    for name in ("channels", "lr", "ema_decay", "sampler", "steps"):
        assert name in str(err.value)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"sigma_min": 5.0, "sigma_max": 1.0}, "sigma_min 5.0 exceeds"),
        ({"levels": 1}, "levels = 1"),
        ({"energy": "no"}, "energy"),
        ({"preconditioning": "vp"}, "preconditioning must be one of"),
        ({"noise_sampling": "uniform"}, "noise_sampling must be one of"),
        ({"churn": 0.5}, "churn"),
        ({"p_std": 0.0}, "p_std"),
        ({"middle_blocks": -1}, "middle_blocks"),
        ({"attention": 1}, "attention"),
        ({"colour": 1}, "unknown ScoreConfig fields"),
    ],
)
def test_config_rejects_inconsistent_values(values, match):
    with pytest.raises(ValueError, match=match):
        ScoreConfig.from_dict(values)


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path: Path, images: torch.Tensor):
    config = ScoreConfig(**TINY)
    whole = train_score_run(config, images, tmp_path / "whole", checkpoint_every=2)
    short = dataclasses.replace(config, steps=4)
    train_score_run(short, images, tmp_path / "parts", checkpoint_every=2)
    # the same run, continued: only `steps` differs, which a resume must refuse ...
    with pytest.raises(ValueError, match="steps"):
        train_score_run(config, images, tmp_path / "parts", checkpoint_every=2)
    # ... so stop a run of 6 steps after 4 by hand: keep its last.pt from step 4
    run = tmp_path / "stopped"
    logged = []
    train_score_run(
        config, images, run, checkpoint_every=2, log=lambda step, loss: logged.append(step)
    )
    assert logged == [2, 4, 6]
    saved = torch.load(run / "last.pt", weights_only=True)
    assert saved["history"]["step"] == [1, 2, 3, 4, 5, 6]
    assert whole["loss"] == saved["history"]["loss"]
    model_a, _ = load_score_model(tmp_path / "whole" / "score_model.pt")
    model_b, _ = load_score_model(run / "score_model.pt")
    for a, b in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_after_an_interruption_is_bit_identical(tmp_path: Path, images: torch.Tensor):
    """Kill a run after its second segment (by making the third raise), resume it: the
    weights, EMA and losses equal those of a run that never stopped."""
    config = ScoreConfig(**TINY)
    train_score_run(config, images, tmp_path / "whole", checkpoint_every=2)

    def stop(step: int, loss: float) -> None:
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_score_run(config, images, tmp_path / "resumed", checkpoint_every=2, log=stop)
    assert not (tmp_path / "resumed" / "score_model.pt").exists()
    history = train_score_run(config, images, tmp_path / "resumed", checkpoint_every=2)
    whole = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)
    assert history["loss"] == whole["history"]["loss"]
    for key in ("model", "ema"):
        for name, value in whole[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)


def test_resume_refuses_other_data(tmp_path: Path, images: torch.Tensor):
    config = ScoreConfig(**TINY)
    train_score_run(config, images[:32], tmp_path, checkpoint_every=3)
    with pytest.raises(ValueError, match="other settings"):
        train_score_run(config, images[32:], tmp_path)


@pytest.mark.parametrize("noise_sampling", ["lognormal", "ladder"])
def test_training_lowers_the_loss_and_the_lr_decays_to_zero(
    tmp_path: Path, images: torch.Tensor, noise_sampling: str
):
    config = ScoreConfig(**{**TINY, "steps": 60, "lr": 3e-3}, noise_sampling=noise_sampling)
    history = train_score_run(config, images, tmp_path, checkpoint_every=30)
    first, last = sum(history["loss"][:10]) / 10, sum(history["loss"][-10:]) / 10
    assert last < 0.8 * first
    saved = torch.load(tmp_path / "last.pt", weights_only=True)
    assert saved["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_samples_are_images_in_range_and_reproducible(sampler: str):
    churn = 0.2 if sampler == "heun" else 0.0
    config = ScoreConfig(levels=4, sigma_max=2.0, sigma_min=0.1, sampler=sampler, churn=churn)
    model = ScoreNet(8, preconditioning="edm").eval()
    a = sample_score_model(model, config, 5, torch.Generator().manual_seed(3), batch_size=2)
    b = sample_score_model(model, config, 5, torch.Generator().manual_seed(3), batch_size=2)
    assert a.shape == (5, 1, 28, 28)
    assert torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1


def test_load_score_model_names_a_wrong_file(tmp_path: Path):
    path = tmp_path / "x.pt"
    torch.save({"format": "something else", "config": {}}, path)
    with pytest.raises(ValueError, match="not a score model"):
        load_score_model(path)
    with pytest.raises(FileNotFoundError):
        load_score_model(tmp_path / "missing.pt")


def test_judge_samples_of_real_images_is_near_the_floor(images: torch.Tensor):
    classifier = MNISTClassifier().eval()
    judged = judge_samples(classifier, images[:20], images[20:60], batch_size=16)
    assert judged["n_real"] == 20
    assert sum(judged["class_histogram"]) == 20
    with pytest.raises(ValueError, match="samples"):
        judge_samples(classifier, images[:2, :, :14], images)


def test_evaluate_score_model_on_the_real_data(images: torch.Tensor):
    root = Path(os.environ.get("PATH_DATASETS") or "data")
    if not (root / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"FashionMNIST not found under {root} (set PATH_DATASETS)")
    config = ScoreConfig(levels=3, sigma_max=2.0, sigma_min=0.1)
    result = evaluate_score_model(
        ScoreNet(8).eval(), config, n_samples=6, data_root=root, classifier=MNISTClassifier()
    )
    assert 0.0 <= result["auroc_fashion_mnist"] <= 1.0
    assert sum(result["class_histogram"]) == 6
    assert result["sampler"] == config.sampler and result["steps"] is None
    assert result["sample_seconds"] > 0


def test_cli_trains_and_names_bad_flags(tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "run"
    args = ["train-score", "--out", str(out), "--offline", "--train-limit", "16"]
    tiny = ["--steps", "2", "--batch-size", "8", "--levels", "3", "--checkpoint-every", "1"]
    assert main([*args, *tiny]) == 0
    assert (out / "score_model.pt").is_file()
    assert "step 2: loss" in capsys.readouterr().out
    assert main([*args, "--lr", "-1"]) == 2
    assert "lr" in capsys.readouterr().err
    assert main([*args, "--steps", "2", "--batch-size", "32"]) == 2
    assert "fewer than --batch-size" in capsys.readouterr().err
    assert main(["evaluate-score", str(tmp_path / "nothing.pt")]) == 2
    assert "not found" in capsys.readouterr().err
