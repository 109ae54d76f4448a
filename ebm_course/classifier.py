"""A small MNIST digit classifier, used to judge generated samples.

The energy models in this course are generative: to ask "do the samples look like digits, and
which ones?" we need an independent judge. :class:`MNISTClassifier` is a plain CNN trained on
MNIST train (the project's offline 10,000 images, see ``tools/train_classifier.py``); its
penultimate layer (128 features) is the feature space of the *Frechet classifier distance* in
:mod:`ebm_course.metrics`, and its predictions give the class histogram of a set of samples.

Images everywhere are float32 ``[B, 1, 28, 28]`` with pixels in ``[-1, 1]`` (as
:mod:`ebm_course.data` hands them out).

Example::

    from ebm_course.classifier import load_classifier

    clf = load_classifier()                 # the shipped weights, eval mode
    logits = clf(images)                    # [B, 10]
    feats = clf.features(images)            # [B, 128]
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .utils import batched

__all__ = [
    "CLASSIFIER_PATH",
    "FEATURE_DIM",
    "MNISTClassifier",
    "accuracy",
    "load_classifier",
    "train_classifier",
]

#: The shipped weights (a plain state dict), written by ``tools/train_classifier.py``.
CLASSIFIER_PATH = Path(__file__).resolve().parent / "assets" / "mnist_classifier.pt"

#: Width of :meth:`MNISTClassifier.features`.
FEATURE_DIM = 128

_IMAGE_SHAPE = (1, 28, 28)


class MNISTClassifier(nn.Module):
    """A small CNN for 28x28 grey-scale digits.

    Three 3x3 convolutions (32, 64, 64 channels, ReLU), each followed by 2x2 max pooling
    (28 -> 14 -> 7 -> 3), then a fully connected layer of :data:`FEATURE_DIM` = 128 units
    (ReLU; the *feature layer*) and a linear layer to 10 logits. About 131k parameters
    (0.5 MB in fp32).

    Input: float32 ``[B, 1, 28, 28]``, pixels in ``[-1, 1]``.
    Output of :meth:`forward`: logits ``[B, 10]``; of :meth:`features`: ``[B, 128]`` (>= 0).
    """

    def __init__(self, dropout: float = 0.25) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3, padding=1)
        self.fc1 = nn.Linear(64 * 3 * 3, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, 10)
        self.dropout = nn.Dropout(dropout)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (after ReLU): ``[B, 1, 28, 28]`` -> ``[B, 128]``."""
        checks.module_input(x, self, "images")
        if x.dim() != 4 or tuple(x.shape[1:]) != _IMAGE_SHAPE:
            raise ValueError(
                f"MNISTClassifier expects images of shape [B, 1, 28, 28], got {list(x.shape)}"
            )
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # [B, 32, 14, 14]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # [B, 64, 7, 7]
        h = F.max_pool2d(F.relu(self.conv3(h)), 2)  # [B, 64, 3, 3]
        return F.relu(self.fc1(h.flatten(1)))  # [B, 128]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits: ``[B, 1, 28, 28]`` -> ``[B, 10]``."""
        return self.fc2(self.dropout(self.features(x)))


def _random_shift(x: Tensor, max_shift: int, generator: torch.Generator | None) -> Tensor:
    """Shift each image of ``x`` ``[B, 1, H, W]`` by up to ``max_shift`` pixels in each
    direction, filling with the background value -1. Returns ``[B, 1, H, W]``."""
    if max_shift <= 0:
        return x
    b, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, b), generator=generator).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :] + offsets[0][:, None]  # [B, H]
    cols = torch.arange(w, device=x.device)[None, :] + offsets[1][:, None]  # [B, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def train_classifier(
    images: Tensor,
    labels: Tensor,
    epochs: int = 15,
    seed: int = 0,
    batch_size: int = 128,
    lr: float = 2e-3,
    max_shift: int = 2,
    device: str | torch.device | None = None,
    verbose: bool = False,
) -> MNISTClassifier:
    """Train an :class:`MNISTClassifier` with Adam and a cosine learning-rate schedule.

    Args:
        images: float32 ``[N, 1, 28, 28]`` in ``[-1, 1]``.
        labels: int64 ``[N]``, digits 0..9.
        epochs: passes over the data (>= 1).
        seed: seeds the initialisation, the shuffling, the augmentation and dropout. The global
            RNG state is left as it was.
        batch_size: images per step.
        lr: Adam's initial learning rate (decayed to 0 by a cosine schedule).
        max_shift: random shift augmentation, in pixels (0 turns it off).
        device: where to train; default the device of ``images``.
        verbose: print the loss and training accuracy after each epoch.

    Returns:
        The trained classifier in eval mode, on ``device``.

    Raises:
        TypeError: a count that is not an integer, non-tensor or integer ``images``, labels
            that are not integers.
        ValueError: ``epochs < 1`` (or another bad number), ``images`` not finite
            ``[N, 1, 28, 28]``, ``labels`` not ``[N]`` digits 0..9.
    """
    _check_training_data(images, labels, epochs, batch_size, lr, max_shift)
    device = torch.device(device) if device is not None else images.device
    images = images.to(device, torch.float32)
    labels = labels.to(device, torch.int64)
    steps_per_epoch = math.ceil(len(images) / batch_size)

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # the caller's global RNG stays as it was
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)  # shuffling and augmentation
        model = MNISTClassifier().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs * steps_per_epoch
        )
        model.train()
        for epoch in range(epochs):
            loss, train_acc = _train_epoch(
                model, optimizer, scheduler, images, labels, batch_size, max_shift, generator
            )
            if verbose:
                print(
                    f"epoch {epoch + 1}/{epochs}: loss {loss:.4f}, train accuracy {train_acc:.4f}",
                    flush=True,
                )
    return model.eval()


def _check_training_data(
    images: Tensor, labels: Tensor, epochs: int, batch_size: int, lr: float, max_shift: int
) -> None:
    """Check the arguments of :func:`train_classifier` that training cannot do without."""
    checks.positive_int("epochs", epochs)
    checks.positive_int("batch_size", batch_size)
    checks.number("lr", lr, 0.0, open_low=True)
    checks.positive_int("max_shift", max_shift, minimum=0)
    checks.finite_tensor("images", images, min_dim=4)
    if images.dim() != 4 or tuple(images.shape[1:]) != _IMAGE_SHAPE:
        raise ValueError(f"images must be [N, 1, 28, 28], got {list(images.shape)}")
    _check_labels(labels, len(images))


def _check_labels(labels: Tensor, n: int) -> None:
    """``labels`` must be ``n`` integer digits 0..9."""
    if not isinstance(labels, Tensor):
        raise TypeError(f"labels must be an integer tensor [N], got {type(labels).__name__}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(f"labels must be [N] with N={n}, got {list(labels.shape)}")
    if n and (labels.min().item() < 0 or labels.max().item() > 9):
        raise ValueError(
            f"labels must lie in 0..9, got values in [{labels.min().item()}, {labels.max().item()}]"
        )


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    images: Tensor,
    labels: Tensor,
    batch_size: int,
    max_shift: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass over the data in a random order, an optimizer and a scheduler step per batch.
    Returns the mean cross-entropy and the training accuracy (both as measured during the pass)."""
    n = len(images)
    order = torch.randperm(n, generator=generator).to(images.device)
    total_loss, correct = 0.0, 0
    for start in range(0, n, batch_size):
        index = order[start : start + batch_size]
        x = _random_shift(images[index], max_shift, generator)
        y = labels[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(index)
        correct += int((logits.argmax(1) == y).sum())
    return total_loss / n, correct / n


def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``images`` ``[N, 1, 28, 28]`` whose argmax logit equals ``labels`` ``[N]``.

    Runs in eval mode on the model's device (the model's train/eval mode is restored).
    """
    checks.finite_tensor("images", images, min_dim=4)
    _check_labels(labels, len(images))
    predicted = batched(lambda x: model(x).argmax(1), model, images, batch_size)
    return int((predicted.long() == labels.cpu()).sum()) / max(len(images), 1)


def load_classifier(
    path: str | os.PathLike[str] | None = None, map_location: str | torch.device = "cpu"
) -> MNISTClassifier:
    """Load the shipped classifier (or the state dict at ``path``), in eval mode.

    The file is read with ``torch.load(..., weights_only=True)`` (via
    :func:`ebm_course.checkpoint.load_checkpoint`), so no stored code runs.

    Args:
        path: a state dict saved by ``tools/train_classifier.py``; default
            :data:`CLASSIFIER_PATH` (``ebm_course/assets/mnist_classifier.pt``).
        map_location: device to load onto.

    Raises:
        FileNotFoundError: no file at ``path`` (the message says how to make one).
        ValueError: the file is not a readable :class:`MNISTClassifier` state dict, or its
            weights are not finite (NaN or Inf).
    """
    from .checkpoint import load_checkpoint

    path = Path(path) if path is not None else CLASSIFIER_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"MNIST classifier weights not found at {path}. The package ships them as "
            f"ebm_course/assets/mnist_classifier.pt; to rebuild them run "
            f"`PATH_DATASETS=/path/to/data python tools/train_classifier.py`."
        )
    state = load_checkpoint(path, map_location=map_location, required=("fc2.weight",))
    bad = [k for k, v in state.items() if isinstance(v, Tensor) and not torch.isfinite(v).all()]
    if bad:
        raise ValueError(f"{path} has non-finite (NaN or Inf) weights in {bad[:3]}")
    model = MNISTClassifier()
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match MNISTClassifier: {err}") from err
    return model.to(map_location).eval()
