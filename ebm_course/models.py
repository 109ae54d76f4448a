"""Energy networks.

Every network here returns the **score** ``f(x) = -E(x)`` as a tensor of shape
``[B]``: higher means more likely. Networks know nothing of how they are sampled
or trained (see :mod:`ebm_course.sampling` and :mod:`ebm_course.training`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from . import checks

IMAGE_SHAPE = (1, 28, 28)
MAX_HIDDEN_FEATURES = 4096  # far beyond MNIST's needs; stops sizes that exhaust memory


class CNNEnergy(nn.Module):
    """The tutorial's small CNN energy for 28x28 grey-scale images.

    Four stride-2 convolutions (5x5 with padding 4 so that 28 -> 16, then 3x3:
    16 -> 8 -> 4 -> 2) with SiLU ("Swish") activations, then two linear layers.
    SiLU rather than ReLU because sampling follows the gradient of the score with
    respect to the *input*, and ReLU's gradients are sparse and piecewise constant.

    Args:
        hidden_features: width ``c``; the convolutions have ``c/2, c, 2c, 2c`` channels.
        out_dim: 1 for an energy model (the score is squeezed to shape ``[B]``);
            more than 1 gives ``[B, out_dim]`` logits (e.g. for a JEM classifier).

    Input: ``[B, 1, 28, 28]`` floats, pixels in ``[-1, 1]``.
    Output: the score ``f(x) = -E(x)``, shape ``[B]``.
    """

    def __init__(self, hidden_features: int = 32, out_dim: int = 1) -> None:
        super().__init__()
        checks.positive_int(
            "hidden_features", hidden_features, minimum=2, maximum=MAX_HIDDEN_FEATURES
        )
        if hidden_features % 2:
            raise ValueError(f"hidden_features must be an even integer >= 2, got {hidden_features}")
        checks.positive_int("out_dim", out_dim)
        c1, c2, c3 = hidden_features // 2, hidden_features, hidden_features * 2
        self.hidden_features = hidden_features
        self.out_dim = out_dim
        # Same layer order as the tutorial, so its state-dict keys (cnn_layers.N.*) load as is.
        self.cnn_layers = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=5, stride=2, padding=4),  # 28 -> 16
            nn.SiLU(),
            nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1),  # 16 -> 8
            nn.SiLU(),
            nn.Conv2d(c2, c3, kernel_size=3, stride=2, padding=1),  # 8 -> 4
            nn.SiLU(),
            nn.Conv2d(c3, c3, kernel_size=3, stride=2, padding=1),  # 4 -> 2
            nn.SiLU(),
            nn.Flatten(),
            nn.Linear(c3 * 4, c3),
            nn.SiLU(),
            nn.Linear(c3, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.module_input(x, self, "images")
        if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(
                f"CNNEnergy expects images of shape [B, 1, 28, 28], got {list(x.shape)}"
            )
        out = self.cnn_layers(x)
        return out.squeeze(-1) if self.out_dim == 1 else out


class MLPEnergy(nn.Module):
    """A small fully connected energy for low-dimensional points (e.g. 2-D toys).

    Args:
        in_features: dimension of a point (2 for the toy data sets).
        hidden: width of each hidden layer.
        depth: number of hidden layers (>= 1).

    Input: ``[B, in_features]``. Output: the score ``f(x) = -E(x)``, shape ``[B]``.
    SiLU activations keep the input gradient (used by Langevin sampling) smooth.
    """

    def __init__(self, in_features: int = 2, hidden: int = 128, depth: int = 3) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("hidden", hidden), ("depth", depth)):
            checks.positive_int(name, value)
        self.in_features = in_features
        layers: list[nn.Module] = []
        width = in_features
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        checks.module_input(x, self, "points")
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(
                f"MLPEnergy expects points of shape [B, {self.in_features}], got {list(x.shape)}"
            )
        return self.net(x).squeeze(-1)


def load_tutorial_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> CNNEnergy:
    """Load the original tutorial's PyTorch Lightning checkpoint into a :class:`CNNEnergy`.

    The file is read with ``torch.load(..., weights_only=True)``, so no stored code
    runs. Its ``state_dict`` holds ``cnn.cnn_layers.*`` keys (the Lightning module
    wrapped the CNN as ``self.cnn``); the prefix is stripped. The model is returned
    in eval mode. Its output is the score ``f(x) = -E(x)``, as in the tutorial.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a readable tutorial checkpoint (corrupt, truncated,
            or without ``cnn.cnn_layers.*`` weights).
    """
    from .checkpoint import load_checkpoint

    path = Path(path)
    state = load_checkpoint(path, map_location=map_location).get("state_dict")
    prefix = "cnn."
    if not isinstance(state, dict) or not any(k.startswith(prefix) for k in state):
        raise ValueError(
            f"{path} is not a tutorial checkpoint: expected a 'state_dict' with "
            f"'cnn.cnn_layers.*' keys"
        )
    weights = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    model = cnn_from_state_dict(weights, str(path))
    return model.to(map_location).eval()


def cnn_from_state_dict(state: dict[str, torch.Tensor], source: str = "state dict") -> CNNEnergy:
    """A :class:`CNNEnergy` sized from (and loaded with) ``state`` (``cnn_layers.*`` keys)."""
    first, last = state.get("cnn_layers.0.weight"), state.get("cnn_layers.11.weight")
    if first is None or last is None:
        raise ValueError(f"{source} has no CNNEnergy weights ('cnn_layers.*' keys)")
    odd = [name for name, value in state.items() if not isinstance(value, torch.Tensor)]
    if odd:
        raise ValueError(f"{source} holds weights that are not tensors: {odd[:3]}")
    bad = [name for name, tensor in state.items() if not _finite(tensor)]
    if bad:
        raise ValueError(f"{source} has non-finite (NaN or Inf) weights in {bad[:3]}")
    model = CNNEnergy(hidden_features=first.shape[0] * 2, out_dim=last.shape[0])
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{source} does not match CNNEnergy: {err}") from err
    return model


def load_energy(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> CNNEnergy:
    """Load a :class:`CNNEnergy` from any checkpoint this course produces or uses.

    Accepts a checkpoint written by :func:`ebm_course.training.fit` (``best.pt`` or
    ``last.pt``: a dict with a ``"model"`` state dict), a bare state dict, or the
    original tutorial's Lightning checkpoint. Always read with ``weights_only=True``.
    Returns the model in eval mode; its output is the score ``f(x) = -E(x)``.
    """
    from .checkpoint import load_checkpoint

    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str or Path), got {type(path).__name__}")
    path = Path(path)
    checkpoint = load_checkpoint(path, map_location=map_location)
    if "state_dict" in checkpoint:  # the tutorial's Lightning format
        return load_tutorial_checkpoint(path, map_location)
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no model weights")
    model = cnn_from_state_dict(state, str(path))
    if model.out_dim != 1:
        raise ValueError(
            f"{path} holds a network with {model.out_dim} outputs (a classifier, e.g. a JEM's "
            "logits), not an energy with one score per image"
        )
    return model.to(map_location).eval()


def _finite(tensor: torch.Tensor) -> bool:
    """True unless ``tensor`` holds floating-point NaN or Inf."""
    return not tensor.is_floating_point() or bool(torch.isfinite(tensor).all())
