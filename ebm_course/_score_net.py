"""The network of :mod:`ebm_course.score_models`: :class:`ScoreNet` and its blocks (kept in
a module of its own so that the score-model module stays short; import it from there)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import checks

#: The spread of the data that Karras et al.'s (2022) preconditioning assumes (their
#: ``sigma_data``): about the pixel standard deviation of images in ``[-1, 1]``.
SIGMA_DATA = 0.5


def _expand(sigma: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-example ``sigma`` ``[B]`` reshaped to broadcast against ``x``: ``[B, 1, ...]``."""
    return sigma.view(-1, *([1] * (x.dim() - 1)))


class _ResBlock(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, the noise level as FiLM on the second
    norm (``(1 + scale) * norm(h) + shift``), and a residual connection.
    ``[B, c_in, H, W]`` and embedding ``[B, D]`` -> ``[B, c_out, H, W]``."""

    def __init__(self, c_in: int, c_out: int, embed_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.film = nn.Linear(embed_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(8, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(embedding)[:, :, None, None].chunk(2, dim=1)
        h = self.conv2(F.silu(self.norm2(h) * (1 + scale) + shift))
        return h + self.skip(x)


class _SelfAttention(nn.Module):
    """Multi-head self-attention over the pixels of a small feature map, with GroupNorm
    before and a residual connection: ``[B, C, H, W]`` -> ``[B, C, H, W]``. At 7x7 pixels
    every position sees every other, which a stack of 3x3 convolutions only reaches after
    many layers: the global shape of a digit. Written out (not a fused kernel) so that the
    energy view can differentiate it twice."""

    def __init__(self, channels: int, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(8, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, H*W, C]
        q, k, v = self.qkv(tokens).view(b, h * w, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
        mixed = (weights @ v).transpose(1, 2).reshape(b, h * w, c)  # [B, H*W, C]
        return x + self.out(mixed).transpose(1, 2).reshape(b, c, h, w)


class ScoreNet(nn.Module):
    r"""A small noise-conditional U-Net for 28x28 images, in either view.

    Its core is a noise predictor :math:`\hat\varepsilon(x, \sigma)` ``[B, 1, 28, 28]``
    built around a network :math:`F`: ``c, 2c, 4c`` channels at 28, 14 and 7 pixels (residual
    blocks at 14 and 7 pixels, single convolutions at 28, which keeps it cheap on a CPU),
    conditioned on :math:`\log\sigma` by an MLP embedding that scales and shifts each
    block's features. ``preconditioning`` says how :math:`F` is wired in:

    - ``"noise"`` (NCSN, DDPM): :math:`\hat\varepsilon = F(x / \sqrt{1 + \sigma^2})`. The
      denoised image :math:`D = x - \sigma\hat\varepsilon` then carries :math:`F`'s error
      times :math:`\sigma`: at :math:`\sigma = 10` a small error in the noise is a large one
      in the image.
    - ``"edm"`` (Karras et al. 2022): :math:`D = c_\text{skip} x + c_\text{out}
      F(c_\text{in} x)` with :math:`c_\text{in} = 1/\sqrt{\sigma^2 + \sigma_d^2}`,
      :math:`c_\text{skip} = \sigma_d^2 / (\sigma^2 + \sigma_d^2)`,
      :math:`c_\text{out} = \sigma\sigma_d / \sqrt{\sigma^2 + \sigma_d^2}`
      (:math:`\sigma_d` = :data:`SIGMA_DATA`), and :math:`\hat\varepsilon = (x - D)/\sigma`:
      at small :math:`\sigma` the network predicts the noise, at large :math:`\sigma` the
      image, and its input and target have unit variance at every level.

    - ``energy=False`` (direct, as NCSNv2): the score function
      :math:`s(x, \sigma) = -\hat\varepsilon(x, \sigma) / \sigma`, ``[B, 1, 28, 28]``; the
      DSM loss becomes :math:`\tfrac12\|\hat\varepsilon - \varepsilon\|^2`.
    - ``energy=True``: the score ``f = -E`` ``[B]``,
      :math:`f(x, \sigma) = -\tfrac12 \|\hat\varepsilon(x, \sigma)\|^2`, whose input
      gradient is the score function: Salimans & Ho's (2021) energy
      :math:`\|x - D(x)\|^2 / 2\sigma^2` for the denoiser :math:`D = x - \sigma\hat\varepsilon`.
      Every score then costs a backward pass: a training step about 3 times, a sampling
      step about 2 times the direct view's.

    Args:
        channels: width ``c`` at 28 pixels, a multiple of 8 (``c = 16``: 0.21 M parameters).
        energy: return the energy-view score ``f`` ``[B]`` instead of the score function.
        preconditioning: ``"noise"`` or ``"edm"`` (above).
        middle_blocks: extra residual blocks at 7 x 7 pixels (``>= 0``).
        attention: a self-attention layer at 7 x 7 pixels, after the first block there.

    Input: ``x`` ``[B, 1, 28, 28]`` (pixels in about ``[-1, 1]``, plus noise), ``sigma`` ``[B]``
    or a number, ``> 0``.
    """

    PRECONDITIONINGS = ("noise", "edm")

    def __init__(
        self,
        channels: int = 16,
        energy: bool = False,
        preconditioning: str = "noise",
        middle_blocks: int = 0,
        attention: bool = False,
    ) -> None:
        super().__init__()
        checks.one_of("preconditioning", preconditioning, self.PRECONDITIONINGS)
        checks.positive_int("middle_blocks", middle_blocks, minimum=0, maximum=64)
        checks.boolean("attention", attention)
        if (
            isinstance(channels, bool)
            or not isinstance(channels, int)
            or channels % 8
            or channels < 8
        ):
            raise ValueError(f"channels must be a positive multiple of 8, got {channels!r}")
        c, d = channels, 8 * channels
        self.channels, self.energy = c, bool(energy)
        self.preconditioning = preconditioning
        self.embed = nn.Sequential(nn.Linear(1, d), nn.SiLU(), nn.Linear(d, d), nn.SiLU())
        self.conv_in = nn.Conv2d(1, c, 3, padding=1)  # 28 x 28
        self.down1 = nn.Conv2d(c, 2 * c, 3, stride=2, padding=1)  # 28 -> 14
        self.block1 = _ResBlock(2 * c, 2 * c, d)
        self.down2 = nn.Conv2d(2 * c, 4 * c, 3, stride=2, padding=1)  # 14 -> 7
        self.block2 = _ResBlock(4 * c, 4 * c, d)
        # optional extra capacity at 7 x 7, where the digit's overall shape is decided
        self.attention = _SelfAttention(4 * c) if attention else None
        self.middle = nn.ModuleList(_ResBlock(4 * c, 4 * c, d) for _ in range(middle_blocks))
        self.block3 = _ResBlock(6 * c, 2 * c, d)  # 14 x 14, with the skip from block1
        self.up = nn.Conv2d(3 * c, c, 3, padding=1)  # 28 x 28, with the skip from conv_in
        self.conv_out = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, 1, 3, padding=1))

    def predict_noise(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        r"""The noise estimate :math:`\hat\varepsilon(x, \sigma)`: ``[B, 1, 28, 28]``, ``[B]``
        -> ``[B, 1, 28, 28]``."""
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(
                f"ScoreNet expects images of shape [B, 1, 28, 28], got {list(x.shape)}"
            )
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        if self.preconditioning == "noise":
            return self.network(x / _expand((1 + sigma**2).sqrt(), x), sigma)
        # edm: D = c_skip x + c_out F, written as the noise (x - D) / sigma
        spread = _expand((sigma**2 + SIGMA_DATA**2).sqrt(), x)
        out = self.network(x / spread, sigma)
        return _expand(sigma, x) / spread**2 * x - SIGMA_DATA / spread * out

    def network(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The U-Net :math:`F`: scaled input ``[B, 1, 28, 28]``, ``sigma`` ``[B]`` ->
        ``[B, 1, 28, 28]``."""
        e = self.embed(sigma.log()[:, None])  # [B, d]
        h0 = self.conv_in(x)  # [B, c, 28, 28]
        h1 = self.block1(self.down1(h0), e)  # [B, 2c, 14, 14]
        h = self.block2(self.down2(h1), e)  # [B, 4c, 7, 7]
        if self.attention is not None:
            h = self.attention(h)
        for block in self.middle:
            h = block(h, e)
        h = self.block3(torch.cat([F.interpolate(h, scale_factor=2.0), h1], dim=1), e)
        h = self.up(torch.cat([F.interpolate(h, scale_factor=2.0), h0], dim=1))
        return self.conv_out(h)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
        """The score function ``[B, 1, 28, 28]``, or with ``energy`` the score ``f`` ``[B]``."""
        noise = self.predict_noise(x, sigma)
        if self.energy:
            return -0.5 * noise.flatten(1).pow(2).sum(dim=1)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        return -noise / _expand(sigma, x)
