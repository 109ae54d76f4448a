"""Tests for ebm_course.data: transform, tensors, the shipped sample and the offline fallback.

Uses real data only: the shipped sample, and the full sets under ``$PATH_DATASETS`` when that
folder exists (those tests are skipped otherwise).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ebm_course import data
from ebm_course.data import (
    DATASETS,
    SAMPLE_PATH,
    MNISTSample,
    dataset_root,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    mnist_tensors,
    mnist_transform,
    to_tensors,
)


def _shared_root(folder: str) -> Path:
    """The ``$PATH_DATASETS`` root when it holds ``<folder>/raw``; skip the test otherwise."""
    env = os.environ.get("PATH_DATASETS")
    if not env:
        pytest.skip("PATH_DATASETS is not set")
    root = Path(env)
    if not (root / folder / "raw" / "train-images-idx3-ubyte").is_file():
        pytest.skip(f"{root}/{folder}/raw is absent")
    return root


@pytest.fixture(scope="module")
def sample() -> MNISTSample:
    return MNISTSample()


# --- transform and to_tensors -------------------------------------------------------------


def test_transform_shape_range_and_formula():
    from PIL import Image

    pixels = np.resize(np.arange(256, dtype=np.uint8), (28, 28))  # every value 0..255
    out = mnist_transform()(Image.fromarray(pixels))
    assert out.dtype == torch.float32 and out.shape == (1, 28, 28)
    assert out.min().item() == -1.0 and out.max().item() == 1.0
    expected = torch.from_numpy(pixels).float() / 255 * 2 - 1
    torch.testing.assert_close(out[0], expected, rtol=0, atol=1e-6)


def test_to_tensors_equals_per_item_transform_exactly(sample):
    images, labels = to_tensors(sample)
    assert images.dtype == torch.float32 and images.shape == (2000, 1, 28, 28)
    assert labels.dtype == torch.int64 and labels.shape == (2000,)
    assert images.min() >= -1 and images.max() <= 1
    for i in (0, 1, 7, 500, 1999):
        image, label = sample[i]
        assert isinstance(label, int) and label == labels[i].item()
        assert torch.equal(image, images[i])  # bit-identical, not just close


def test_to_tensors_fast_path_equals_iterating_path(sample):
    fast_x, fast_y = to_tensors(sample, limit=300)
    # a Subset has no .data, so to_tensors iterates it item by item
    slow_x, slow_y = to_tensors(torch.utils.data.Subset(sample, range(len(sample))), limit=300)
    assert torch.equal(fast_x, slow_x) and torch.equal(fast_y, slow_y)


def test_to_tensors_limit(sample):
    x, y = to_tensors(sample, limit=5)
    assert x.shape == (5, 1, 28, 28) and y.shape == (5,)
    assert torch.equal(y, sample.targets[:5])
    assert to_tensors(sample, limit=10**9)[0].shape[0] == len(sample)
    assert to_tensors(sample, limit=0)[0].shape == (0, 1, 28, 28)
    with pytest.raises(ValueError):
        to_tensors(sample, limit=-1)


def test_to_tensors_respects_a_custom_transform():
    from torchvision import transforms

    ds = MNISTSample(transform=transforms.ToTensor())  # [0, 1], not the course transform
    x, _ = to_tensors(ds, limit=3)
    assert torch.equal(x, ds.data[:3].unsqueeze(1).float() / 255)
    assert x.min() >= 0


# --- the shipped sample -------------------------------------------------------------------


def test_sample_file(sample):
    assert SAMPLE_PATH.is_file()
    assert SAMPLE_PATH.stat().st_size <= 1_000_000
    with np.load(SAMPLE_PATH, allow_pickle=False) as npz:
        assert set(npz.files) == {"images", "labels"}
        assert npz["images"].dtype == np.uint8 and npz["images"].shape == (2000, 28, 28)
        assert npz["labels"].dtype == np.uint8 and npz["labels"].shape == (2000,)
    assert len(sample) == 2000
    assert sample.data.dtype == torch.uint8 and sample.data.shape == (2000, 28, 28)
    assert sample.targets.dtype == torch.int64
    assert sorted(sample.targets.unique().tolist()) == list(range(10))
    image, label = sample[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and 0 <= label <= 9


def test_sample_is_the_first_mnist_train_images(sample):
    root = _shared_root("MNIST")
    full = load_dataset("mnist", train=True, root=root, download=False, fallback=False)
    n = len(sample)
    assert torch.equal(sample.data, full.data[:n])
    assert torch.equal(sample.targets, full.targets[:n])


# --- offline fallback and errors ----------------------------------------------------------


def test_fallback_without_download(tmp_path):
    with pytest.warns(UserWarning, match="2,000-image sample") as record:
        ds = load_mnist(root=tmp_path, download=False)
    assert isinstance(ds, MNISTSample) and len(ds) == 2000
    message = str(record[0].message)
    assert str(tmp_path) in message and "PATH_DATASETS" in message
    assert record[0].filename == __file__  # points at the caller


def test_fallback_test_split_says_so(tmp_path):
    with pytest.warns(UserWarning, match="test split") as record:
        ds = load_dataset("mnist", train=False, root=tmp_path, download=False)
    assert isinstance(ds, MNISTSample)
    assert record[0].filename == __file__


def test_fallback_when_download_fails(tmp_path, monkeypatch):
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", ["http://127.0.0.1:9/"])
    with pytest.warns(UserWarning, match="download failed"):
        ds = load_mnist(root=tmp_path, download=True)
    assert isinstance(ds, MNISTSample)
    x, y = to_tensors(ds, limit=4)
    assert x.shape == (4, 1, 28, 28) and y.shape == (4,)


def test_no_fallback_raises_naming_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(root=tmp_path, download=False, fallback=False)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "MNIST/raw/train-images-idx3-ubyte" in message


def test_fashion_mnist_missing_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="FashionMNIST/raw/t10k-images-idx3-ubyte") as info:
        load_fashion_mnist(root=tmp_path, download=False)
    assert str(tmp_path) in str(info.value)


def test_unknown_name():
    with pytest.raises(ValueError, match="mnist, fashion_mnist"):
        load_dataset("cifar10")
    assert DATASETS == ("mnist", "fashion_mnist")


def test_root_that_is_a_file(tmp_path):
    not_a_folder = tmp_path / "file.txt"
    not_a_folder.write_text("x")
    with pytest.raises(NotADirectoryError, match="not a folder"):
        load_mnist(root=not_a_folder, download=False)


def test_path_datasets_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH_DATASETS", str(tmp_path))
    assert dataset_root() == tmp_path
    assert dataset_root(tmp_path / "other") == tmp_path / "other"
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_dataset("fashion_mnist", download=False)
    monkeypatch.delenv("PATH_DATASETS")
    assert dataset_root() == Path("data")


# --- the full sets, when present ----------------------------------------------------------


def test_full_mnist(monkeypatch):
    root = _shared_root("MNIST")
    monkeypatch.setenv("PATH_DATASETS", str(root))
    train = load_mnist(train=True, download=False, fallback=False)
    test = load_mnist(train=False, download=False, fallback=False)
    assert not isinstance(train, MNISTSample)
    assert len(train) == 10_000 and len(test) == 10_000
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32 and 0 <= label <= 9
    x, y = to_tensors(test, limit=8)
    for i in range(8):
        assert torch.equal(x[i], test[i][0]) and y[i].item() == test[i][1]


def test_full_fashion_mnist(monkeypatch):
    root = _shared_root("FashionMNIST")
    monkeypatch.setenv("PATH_DATASETS", str(root))
    train = load_fashion_mnist(train=True, download=False)
    test = load_dataset("fashion_mnist", train=False, download=False)
    assert len(train) == 60_000 and len(test) == 10_000
    x, y = to_tensors(train, limit=4)
    assert x.shape == (4, 1, 28, 28) and x.min() >= -1 and x.max() <= 1
    assert torch.equal(x[3], train[3][0]) and y[3].item() == train[3][1]


# --- import cost --------------------------------------------------------------------------


def test_import_does_not_load_torchvision():
    code = "import sys, ebm_course.data; print('torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert data.__doc__


@pytest.mark.filterwarnings("ignore::UserWarning")  # the offline fallback, when no data
def test_mnist_tensors_is_to_tensors_of_load_mnist():
    images, labels = mnist_tensors(train=True, limit=5, download=False)
    expected_images, expected_labels = to_tensors(load_mnist(train=True, download=False), limit=5)
    assert images.shape == (5, 1, 28, 28) and labels.dtype == torch.int64
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
