"""The MNIST classifier that judges samples: architecture, training loop, shipped weights."""

from __future__ import annotations

import json

import pytest
import torch

from ebm_course.classifier import (
    CLASSIFIER_PATH,
    FEATURE_DIM,
    MNISTClassifier,
    accuracy,
    load_classifier,
    train_classifier,
)
from ebm_course.data import MNISTSample, to_tensors


def test_shapes() -> None:
    model = MNISTClassifier().eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    assert model(x).shape == (5, 10)
    feats = model.features(x)
    assert feats.shape == (5, FEATURE_DIM)
    assert (feats >= 0).all()
    with pytest.raises(ValueError, match=r"\[B, 1, 28, 28\]"):
        model(torch.zeros(5, 28, 28))


def test_shipped_weights_small_and_documented() -> None:
    assert CLASSIFIER_PATH.is_file()
    assert CLASSIFIER_PATH.stat().st_size < 1_000_000
    meta = json.loads(CLASSIFIER_PATH.with_suffix(".json").read_text())
    assert meta["test_accuracy"] >= 0.985
    for key in ("epochs", "seed", "command", "torch", "date", "data"):
        assert key in meta


def test_shipped_classifier_accuracy_without_datasets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PATH_DATASETS", raising=False)
    model = load_classifier()
    assert not model.training
    images, labels = to_tensors(MNISTSample(), limit=1000)
    assert accuracy(model, images, labels) >= 0.98


def test_load_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="train_classifier.py"):
        load_classifier(tmp_path / "nope.pt")


def test_load_wrong_file(tmp_path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"fc2.weight": torch.zeros(3, 3)}, path)
    with pytest.raises(ValueError, match="MNISTClassifier"):
        load_classifier(path)


def test_train_classifier_is_seeded_and_leaves_global_rng() -> None:
    images, labels = to_tensors(MNISTSample(), limit=64)
    state = torch.get_rng_state()
    a = train_classifier(images, labels, epochs=1, seed=3, batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_classifier(images, labels, epochs=1, seed=3, batch_size=32)
    assert not a.training
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    with pytest.raises(ValueError, match="epochs"):
        train_classifier(images, labels, epochs=0)
