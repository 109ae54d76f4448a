"""Fixed test inputs for the checkers: seeded tensors, small score functions and models.

Everything is built from its own ``torch.Generator``, so checking an answer never touches
the global random state of the learner's notebook. Scores follow the package's convention:
a score function maps ``[B, ...]`` to ``f = -E`` of shape ``[B]``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, scale: float = 1.0) -> Tensor:
    return scale * torch.randn(shape, generator=gen(seed))


def uniform(*shape: int, seed: int, low: float = -1.0, high: float = 1.0) -> Tensor:
    return low + (high - low) * torch.rand(shape, generator=gen(seed))


def digits(batch: int, seed: int) -> Tensor:
    """Digit-like images ``[batch, 1, 28, 28]``: background exactly -1, a bright random blob."""
    g = gen(seed)
    images = torch.full((batch, 1, 28, 28), -1.0)
    for i in range(batch):
        top, left = (int(v) for v in torch.randint(4, 16, (2,), generator=g))
        patch = torch.rand((1, 8, 6), generator=g) * 1.6 - 0.6
        images[i, :, top : top + 8, left : left + 6] = patch
    return images


def grid_points(n: int, lim: float = 1.0) -> tuple[Tensor, float]:
    """Cell centres ``[n * n, 2]`` of an ``n x n`` grid over ``[-lim, lim]^2``; a cell's area."""
    width = 2 * lim / n
    xs = -lim + width * (torch.arange(n, dtype=torch.float32) + 0.5)
    gy, gx = torch.meshgrid(xs, xs, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1), width**2


def bump(points: Tensor, centre: tuple[float, float] = (0.2, -0.1), std: float = 0.3) -> Tensor:
    """A Gaussian bump's score ``-|x - c|^2 / (2 std^2)`` at points ``[N, 2]``: ``[N]``."""
    c = torch.tensor(centre, dtype=points.dtype)
    return -(points - c).pow(2).sum(dim=1) / (2 * std**2)


class Quadratic:
    """``f(x) = -|x - target|^2 / (2 s^2) - k * D * (mean(x) - m)^2`` per example, ``[B]``.

    ``k = 0`` is a Gaussian score (each coordinate's gradient depends on itself only);
    ``k > 0`` couples all coordinates of an example through their mean.
    """

    def __init__(self, target: Tensor, s: float, k: float = 0.0, m: float = 0.0) -> None:
        self.target, self.s, self.k, self.m = target, s, k, m

    def __call__(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        value = -(flat - self.target.flatten()).pow(2).sum(1) / (2 * self.s**2)
        if self.k:
            value = value - self.k * flat.shape[1] * (flat.mean(1) - self.m).pow(2)
        return value


def flat_score(x: Tensor) -> Tensor:
    """A constant score (0 everywhere, zero gradient), still connected to ``x``'s graph."""
    return x.flatten(1).sum(1) * 0.0


class TinyEnergy(nn.Module):
    """A small SiLU network ``[B, ...] -> [B]`` with seeded weights (no global RNG)."""

    def __init__(self, in_features: int, hidden: int = 16, seed: int = 0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(in_features, hidden), nn.SiLU(), nn.Linear(hidden, 1)
        )
        g = gen(seed)
        with torch.no_grad():
            for p in self.parameters():
                fan_in = p.shape[-1] if p.dim() > 1 else hidden
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in**0.5))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)


def flat_parameters(model: nn.Module) -> Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()
