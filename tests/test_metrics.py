"""Metrics: known answers for AUROC, Frechet distance, transforms; smoke tests end to end."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_course.classifier import MNISTClassifier
from ebm_course.data import MNISTSample, to_tensors
from ebm_course.metrics import (
    OOD_SETS,
    add_gaussian_noise,
    auroc,
    class_entropy,
    evaluate,
    flip,
    format_table,
    frechet_distance,
    ood_table,
    sample_quality,
    scores,
    tiny,
)
from ebm_course.models import CNNEnergy


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return to_tensors(MNISTSample(), limit=64)[0]


def _data_root() -> Path:
    root = Path(os.environ.get("PATH_DATASETS") or "data")
    for folder in ("MNIST", "FashionMNIST"):
        if not (root / folder / "raw").is_dir():
            pytest.skip(f"{folder} not found under {root} (set PATH_DATASETS)")
    return root


# --- AUROC ------------------------------------------------------------------------------------


def test_auroc_known_answers() -> None:
    assert auroc([2.0, 3.0, 4.0], [0.0, 1.0]) == 1.0
    assert auroc([0.0, 1.0], [2.0, 3.0, 4.0]) == 0.0
    assert auroc([1.0, 1.0, 1.0], [1.0, 1.0]) == 0.5
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [([], [1.0], "empty"), ([1.0], [float("nan")], "NaN"), ([[1.0, 2.0]], [1.0], "one-dim")],
)
def test_auroc_rejects_bad_input(a, b, match) -> None:
    with pytest.raises(ValueError, match=match):
        auroc(a, b)


# --- Frechet distance ---------------------------------------------------------------------------


def test_frechet_identical_sets_is_zero() -> None:
    feats = np.random.default_rng(0).normal(size=(500, 32)) * 3 + 1
    reference = np.trace(np.cov(feats, rowvar=False))
    assert frechet_distance(feats, feats) < 1e-6 * reference
    assert frechet_distance(torch.from_numpy(feats).float(), torch.from_numpy(feats).float()) < (
        1e-6 * reference
    )


def test_frechet_diagonal_gaussians_closed_form() -> None:
    rng = np.random.default_rng(1)
    mu1, mu2 = np.zeros(4), np.array([1.0, 0.5, 0.0, -1.0])
    s1, s2 = np.array([1.0, 2.0, 0.5, 1.0]), np.array([2.0, 1.0, 0.5, 3.0])
    a = mu1 + rng.normal(size=(50_000, 4)) * np.sqrt(s1)
    b = mu2 + rng.normal(size=(50_000, 4)) * np.sqrt(s2)
    expected = ((mu1 - mu2) ** 2).sum() + (s1 + s2 - 2 * np.sqrt(s1 * s2)).sum()
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)


def test_frechet_matches_scipy_on_full_covariances() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6)) + 0.5
    c1, c2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(c1 @ c2).real
    diff = a.mean(0) - b.mean(0)
    expected = diff @ diff + np.trace(c1) + np.trace(c2) - 2 * np.trace(root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_frechet_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="differ"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="N >= 2"):
        frechet_distance(np.zeros((1, 2)), np.zeros((3, 2)))


def test_class_entropy() -> None:
    assert class_entropy([7] * 10) == pytest.approx(math.log(10))
    assert class_entropy([0, 5, 0, 0, 0, 0, 0, 0, 0, 0]) == 0.0
    with pytest.raises(ValueError):
        class_entropy([0] * 10)


# --- transforms ---------------------------------------------------------------------------------


def test_gaussian_noise(images: torch.Tensor) -> None:
    gen = torch.Generator().manual_seed(0)
    noisy = add_gaussian_noise(images, 0.3, gen)
    assert noisy.shape == images.shape
    assert noisy.min() >= -1 and noisy.max() <= 1
    assert not torch.equal(noisy, images)
    again = add_gaussian_noise(images, 0.3, torch.Generator().manual_seed(0))
    assert torch.equal(noisy, again)
    # where no clamp bites, the noise has the requested spread
    inside = (noisy > -1) & (noisy < 1) & (images > -0.5) & (images < 0.5)
    if inside.sum() > 500:
        assert (noisy - images)[inside].std() == pytest.approx(0.3, rel=0.25)


def test_flip(images: torch.Tensor) -> None:
    flipped = flip(images)
    assert flipped.shape == images.shape
    assert torch.equal(flip(flipped), images)
    assert torch.equal(flipped[0, 0, 0, 0], images[0, 0, 27, 27])
    assert torch.equal(flipped[3, 0], images[3, 0].flip(0).flip(1))
    # the tutorial's per-image call
    assert torch.equal(flipped[5], images[5].flip(dims=(1, 2)))


def test_tiny(images: torch.Tensor) -> None:
    small = tiny(images)
    assert small.shape == images.shape
    assert small.min() >= -1 and small.max() <= 1
    assert torch.equal(small[..., 14:, 14:], images[..., ::2, ::2])
    mask = torch.ones(28, 28, dtype=torch.bool)
    mask[14:, 14:] = False
    assert (small[..., mask] == -1).all()
    assert (small[..., 14:, 14:] > -1).any()


# --- scores, OOD table, sample quality ---------------------------------------------------------


def test_scores_batches_and_restores_mode(images: torch.Tensor) -> None:
    model = CNNEnergy().train()
    s = scores(model, images, batch_size=10)
    assert s.shape == (len(images),)
    assert model.training
    with torch.no_grad():
        assert torch.allclose(s, model.eval()(images), atol=1e-5)


def test_ood_table_keys_and_range(images: torch.Tensor) -> None:
    model = CNNEnergy().eval()
    fashion = -images.flip(dims=(3,))  # any other image set will do here
    table = ood_table(model, images, fashion, torch.Generator().manual_seed(0))
    assert tuple(table) == OOD_SETS
    assert all(0.0 <= v <= 1.0 for v in table.values())
    again = ood_table(model, images, fashion, torch.Generator().manual_seed(0))
    assert table == again


def test_sample_quality_smoke(images: torch.Tensor) -> None:
    model = CNNEnergy().eval()
    clf = MNISTClassifier().eval()
    out = sample_quality(
        model, clf, images, n=12, steps=2, batch_size=5, generator=torch.Generator().manual_seed(0)
    )
    assert len(out["class_histogram"]) == 10 and sum(out["class_histogram"]) == 12
    assert 0 <= out["class_entropy"] <= math.log(10) + 1e-9
    assert 0 <= out["malformed_fraction"] <= 1
    assert out["frechet_classifier_distance"] >= 0
    assert out["frechet_classifier_distance_real_vs_real"] >= 0
    assert out["n_real"] == 12


def test_format_table() -> None:
    table = format_table(
        {"shipped": {"auroc_tiny": 0.91234, "class_histogram": [1, 2]}, "tutorial": {"x": 3}}
    )
    lines = table.splitlines()
    assert lines[0] == "| metric | shipped | tutorial |"
    assert "| auroc_tiny | 0.9123 | - |" in lines
    assert "| class_histogram | 1 2 | - |" in lines
    assert "| x | - | 3 |" in lines


def test_format_table_models_as_rows_is_the_transpose() -> None:
    results = {"shipped": {"auroc_tiny": 0.91234, "class_histogram": [1, 2]}, "tutorial": {"x": 3}}
    lines = format_table(results, models_as_rows=True).splitlines()
    assert lines[0] == "| model | auroc_tiny | class_histogram | x |"
    assert lines[1] == "|---|---|---|---|"
    assert lines[2:] == ["| shipped | 0.9123 | 1 2 | - |", "| tutorial | - | - | 3 |"]
    assert format_table(results, models_as_rows=True, corner="run").startswith("| run |")


def test_evaluate_tutorial_checkpoint_smoke(tutorial_checkpoint: Path) -> None:
    from ebm_course.models import load_tutorial_checkpoint

    root = _data_root()
    model = load_tutorial_checkpoint(tutorial_checkpoint)
    result = evaluate(model, n_samples=20, steps=5, seed=0, data_root=root)
    for name in OOD_SETS:
        assert 0.0 <= result[f"auroc_{name}"] <= 1.0
    # the tutorial's model tells MNIST from uniform noise and FashionMNIST
    assert result["auroc_uniform_noise"] > 0.9
    assert result["auroc_fashion_mnist"] > 0.8
    assert sum(result["class_histogram"]) == 20
    assert (
        result["frechet_classifier_distance"] > result["frechet_classifier_distance_real_vs_real"]
    )
    assert "tutorial" in format_table({"tutorial": result})


def test_noisy_below_clean_is_the_share_of_pairs_where_noise_costs_score():
    from ebm_course.metrics import noisy_below_clean

    class Smoothness(torch.nn.Module):  # high score = a smooth image; noise always costs
        def forward(self, x):
            return -(x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)

    flat = torch.zeros(8, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    assert noisy_below_clean(Smoothness(), flat, 0.3, gen) == 1.0

    class Roughness(Smoothness):  # the opposite: noise always gains score
        def forward(self, x):
            return -super().forward(x)

    assert noisy_below_clean(Roughness(), flat, 0.3, gen) == 0.0


def test_format_table_still_lives_in_metrics():
    from ebm_course import metrics, report

    assert metrics.format_table is report.format_table
