"""Shared fixtures: small real data, the tutorial's checkpoint when it is beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tutorial_checkpoint() -> Path:
    """The original tutorial's Lightning checkpoint (skips when it is not available)."""
    path = Path(
        os.environ.get("EBM_TUTORIAL_CKPT", SHARED / "anchors" / "seed_tutorial" / "MNIST.ckpt")
    )
    if not path.is_file():
        pytest.skip(f"tutorial checkpoint not found at {path}")
    return path


@pytest.fixture(scope="session")
def mnist_sample_images() -> torch.Tensor:
    """The first 1,000 images of the shipped MNIST sample, [1000, 1, 28, 28] in [-1, 1]."""
    from ebm_course.data import MNISTSample, to_tensors

    images, _ = to_tensors(MNISTSample(), limit=1000)
    return images


def _gaussian_blob(n: int, center: float = 0.4, std: float = 0.1, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (center + std * torch.randn(n, 2, generator=gen)).clamp(-1, 1)


@pytest.fixture
def blob():
    """Factory for 2-D toy data inside [-1, 1]^2: ``blob(n, seed=0)`` -> [n, 2]."""
    return _gaussian_blob
