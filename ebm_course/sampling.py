"""Sampling from an energy model: Langevin dynamics and the replay buffer.

Sign convention: ``model(x)`` returns the score ``f(x) = -E(x)``. Sampling climbs
the score (descends the energy): ``x <- x + step_size * grad_x f(x)`` plus noise.
Nothing here plots or prints: this is the hot path of training.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import checks
from .speed import PRECISIONS, SamplerSpeed, autocast_dtype, score_gradient  # noqa: F401
from .utils import evaluation_mode, model_device

ValueRange = tuple[float, float] | None
__all__ = [
    "NonFiniteSamples",
    "ReplayBuffer",
    "SamplerSpeed",
    "langevin",
    "langevin_steps",
    "uniform_noise",
]


class NonFiniteSamples(ValueError):
    """Samples with NaN or Inf values, refused by :meth:`ReplayBuffer.push` (the training
    loop treats them as divergence and rolls back)."""


def uniform_noise(
    shape: Sequence[int],
    value_range: tuple[float, float] = (-1.0, 1.0),
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Uniform noise over ``value_range`` (the chains' usual starting point), of ``shape``."""
    shape = tuple(checks.positive_int("shape entry", n, minimum=0) for n in _sequence(shape))
    lo, hi = checks.value_range("value_range", value_range)
    noise = torch.rand(tuple(shape), device=device, generator=generator)
    return noise.mul_(hi - lo).add_(lo)


def langevin_steps(
    gradient: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    steps: int,
    step_size: float,
    noise_std: float,
    grad_clamp: float | None = None,
    value_range: ValueRange = None,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    trajectory: torch.Tensor | None = None,
) -> torch.Tensor:
    """Langevin dynamics on ``x`` ``[B, ...]``, in place; ``gradient(x)`` is grad_x f(x).

    Each step: (1) add ``N(0, noise_std^2)`` noise; (2) climb the score, moving by
    ``step_size * clamp(grad_x f(x), +-grad_clamp)``. Every move is masked (only entries
    where ``mask`` is True move) and clamped to ``value_range``. Step ``k``'s samples are
    copied to ``trajectory[k]`` when one is given. Returns ``x``.
    """
    noise = torch.empty_like(x)  # reused every step: no allocation on the hot path
    for k in range(steps):
        if noise_std > 0:
            noise.normal_(0.0, noise_std, generator=generator)
            _move(x, noise, mask, value_range)
        grad = gradient(x)  # uphill on f = -E: towards likely images
        if grad_clamp is not None:  # bounded moves: one steep gradient cannot fling a sample
            grad.clamp_(-grad_clamp, grad_clamp)
        _move(x, grad, mask, value_range, scale=step_size)
        if trajectory is not None:
            trajectory[k].copy_(x)
    return x


def _move(
    x: torch.Tensor,
    delta: torch.Tensor,
    mask: torch.Tensor | None,
    value_range: ValueRange,
    scale: float = 1.0,
) -> None:
    """``x <- clamp(x + scale * delta)`` where ``mask`` is True, in place (``delta`` too)."""
    if mask is not None:
        delta.mul_(mask)
    x.add_(delta, alpha=scale)
    if value_range is not None:
        x.clamp_(*value_range)


def langevin(
    model: nn.Module,
    x: torch.Tensor,
    steps: int = 60,
    step_size: float = 10.0,
    noise_std: float = 0.005,
    grad_clamp: float | None = 0.03,
    value_range: ValueRange = (-1.0, 1.0),
    *,
    return_trajectory: bool = False,
    generator: torch.Generator | None = None,
    mask: torch.Tensor | None = None,
    speed: SamplerSpeed | None = None,
) -> torch.Tensor:
    """Run ``steps`` steps of (the tutorial's) Langevin dynamics on ``model``'s score from ``x``.

    The algorithm is :func:`langevin_steps`; this function checks the arguments, builds the
    gradient function with the ``speed`` switches (:class:`~ebm_course.speed.SamplerSpeed`,
    default: fast, see there) and runs the model in eval mode. The defaults are the
    tutorial's MNIST setting (step 10, noise 0.005, gradient clamp 0.03, pixels in [-1, 1]).
    Textbook (unadjusted) Langevin for a density ``exp(f)`` is ``step_size=eps,
    noise_std=sqrt(2 * eps), grad_clamp=None, value_range=None``.

    Only the input gradient is computed: parameters' ``.grad`` and ``requires_grad`` and the
    model's train/eval mode are unchanged afterwards. ``x`` is not modified.

    Args:
        model: maps ``[B, ...]`` to scores ``f(x) = -E(x)`` of shape ``[B]``.
        x: starting points ``[B, ...]`` in ``value_range`` (e.g. uniform noise in [-1, 1]).
        steps: number of Langevin steps (>= 1).
        step_size: gradient step (> 0).
        noise_std: standard deviation of the Gaussian noise added each step (>= 0).
        grad_clamp: clamp of each gradient entry, or ``None`` for no clamp.
        value_range: ``(low, high)`` the samples are clamped to, or ``None``.
        return_trajectory: return every step's samples, ``[steps, B, ...]``.
        generator: ``torch.Generator`` for the noise, on ``x``'s device.
        mask: boolean, broadcastable to ``x``: only entries where it is True move (inpainting).
        speed: the speed switches (precision, memory layout, compile, CUDA graph).

    Returns:
        The final samples ``[B, ...]`` (detached, fp32, contiguous), or the trajectory.
    """
    _check_langevin_arguments(x, steps, step_size, noise_std, grad_clamp, value_range)
    _check_devices(model, x, generator)
    checks.boolean("return_trajectory", return_trajectory)
    mask = None if mask is None else _broadcast_mask(mask, x)
    speed = SamplerSpeed() if speed is None else checks.instance("speed", speed, SamplerSpeed)
    with evaluation_mode(model):
        x = speed.layout(x)
        gradient = speed.gradient(model, x)
        trajectory = x.new_empty((steps, *x.shape)) if return_trajectory else None
        moves = (step_size, noise_std, grad_clamp, value_range)
        langevin_steps(gradient, x, steps, *moves, generator, mask, trajectory)
    return trajectory if trajectory is not None else x.contiguous()


def _check_langevin_arguments(
    x: torch.Tensor,
    steps: int,
    step_size: float,
    noise_std: float,
    grad_clamp: float | None,
    value_range: ValueRange,
) -> None:
    checks.positive_int("steps", steps)
    checks.number("step_size", step_size, 0.0, open_low=True)
    checks.number("noise_std", noise_std, 0.0)
    if grad_clamp is not None:
        checks.number("grad_clamp", grad_clamp, 0.0, open_low=True)
    checks.finite_tensor("x", x, min_dim=2)
    if value_range is not None:
        bounds = checks.value_range("value_range", value_range)
        checks.in_range("x", x, bounds)


def _check_devices(model: nn.Module, x: torch.Tensor, generator: torch.Generator | None) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    checks.same_device("x", x, "the model", model_device(model))
    checks.generator_for("generator", generator, x.device)
    weights = next((p for p in model.parameters() if p.is_floating_point()), None)
    if weights is not None and weights.dtype != x.dtype:
        raise ValueError(
            f"x is {x.dtype} but the model's weights are {weights.dtype}: convert one of them "
            f"(e.g. x.to({weights.dtype}))"
        )


def _sequence(shape: Any) -> Sequence:
    if not isinstance(shape, Sequence | torch.Size):
        raise TypeError(f"shape must be a sequence of ints such as (1, 28, 28), got {shape!r}")
    return shape


def _broadcast_mask(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    checks.instance("mask", mask, torch.Tensor)
    try:
        return torch.broadcast_to(mask.to(device=x.device, dtype=x.dtype), x.shape)
    except RuntimeError as err:
        raise ValueError(
            f"mask of shape {list(mask.shape)} does not broadcast to x {list(x.shape)}"
        ) from err


class ReplayBuffer:
    """A fixed-size store of past MCMC samples to restart chains from (persistent CD).

    Starting each training batch's chains from recent samples instead of fresh
    noise means a few dozen Langevin steps suffice. To keep exploring, each drawn
    example is re-initialised from uniform noise with probability ``reinit_prob``
    (the count is ``Binomial(batch, reinit_prob)``, as in the tutorial).

    Storage is one preallocated tensor ``[capacity, *shape]`` on ``device``, used as
    a ring: once full, new samples replace the oldest ones. An empty buffer draws
    uniform noise only.

    Args:
        shape: shape of one example, e.g. ``(1, 28, 28)``.
        capacity: maximum number of stored examples (the tutorial uses 8192).
        reinit_prob: fraction of each batch drawn fresh from uniform noise.
        value_range: ``(low, high)`` of the uniform noise (and of valid samples).
        device: where the storage lives (use the model's device).
        generator: optional ``torch.Generator`` on ``device`` for reproducible draws.
    """

    def __init__(
        self,
        shape: Sequence[int] = (1, 28, 28),
        capacity: int = 8192,
        reinit_prob: float = 0.05,
        value_range: tuple[float, float] = (-1.0, 1.0),
        device: str | torch.device = "cpu",
        generator: torch.Generator | None = None,
    ) -> None:
        checks.positive_int("capacity", capacity)
        shape = tuple(checks.positive_int("shape entry", s) for s in _sequence(shape))
        if not shape:
            raise ValueError("shape must be a non-empty sequence of positive ints, got ()")
        self.shape = shape
        self.capacity = capacity
        self.reinit_prob = checks.number("reinit_prob", reinit_prob, 0.0, 1.0)
        self.value_range = checks.value_range("value_range", value_range)
        self.generator = generator
        self.examples = torch.empty((capacity, *shape), device=device)
        self._size = 0  # how many slots hold samples
        self._next = 0  # ring position of the next write

    @property
    def device(self) -> torch.device:
        return self.examples.device

    def __len__(self) -> int:
        return self._size

    def uniform(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` examples of uniform noise over ``value_range``: ``[n, *shape]``."""
        generator = self.generator if generator is None else generator
        return uniform_noise((n, *self.shape), self.value_range, self.device, generator)

    def draw(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Starting points for a batch: fresh noise for about ``reinit_prob`` of them,
        stored samples (uniformly, with replacement) for the rest. ``[batch_size, *shape]``.
        ``generator`` (default: the buffer's own) draws the choices and the noise."""
        checks.positive_int("batch_size", batch_size)
        generator = self.generator if generator is None else generator
        checks.generator_for("generator", generator, self.device)
        if self._size == 0:
            return self.uniform(batch_size, generator)
        counts = torch.full((1,), float(batch_size), device=self.device)
        n_new = int(torch.binomial(counts, torch.full_like(counts, self.reinit_prob), generator))
        index = torch.randint(
            self._size, (batch_size - n_new,), device=self.device, generator=generator
        )
        return torch.cat([self.uniform(n_new, generator), self.examples[index]], dim=0)

    def push(self, samples: torch.Tensor) -> None:
        """Store ``samples`` ``[n, *shape]``, overwriting the oldest when full."""
        checks.floating("samples", samples)
        if tuple(samples.shape[1:]) != self.shape:
            raise ValueError(
                f"samples must have shape [n, {', '.join(map(str, self.shape))}], "
                f"got {list(samples.shape)}"
            )
        if not torch.isfinite(samples).all():
            raise NonFiniteSamples(
                "samples contains NaN or Inf values: they would poison the buffer"
            )
        samples = samples.detach()[-self.capacity :]  # only the newest can survive
        n = samples.shape[0]
        positions = (torch.arange(n, device=self.device) + self._next) % self.capacity
        self.examples[positions] = samples.to(self.examples)
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)

    def sample(
        self,
        model: nn.Module,
        batch_size: int,
        steps: int = 60,
        step_size: float = 10.0,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """Draw starting points, run :func:`langevin` on them, store and return the samples.

        ``generator`` (default: the buffer's own) drives the draw and the Langevin noise.
        Extra keyword arguments go to :func:`langevin`; ``value_range`` is the buffer's.
        """
        generator = self.generator if generator is None else generator
        start = self.draw(batch_size, generator)
        samples = langevin(
            model,
            start,
            steps=steps,
            step_size=step_size,
            value_range=self.value_range,
            generator=generator,
            **kwargs,
        )
        self.push(samples)
        return samples

    def to(self, device: str | torch.device) -> ReplayBuffer:
        """Move the storage to ``device`` (in place); returns ``self``."""
        self.examples = self.examples.to(device)
        return self

    def state_dict(self) -> dict[str, torch.Tensor | int | float | tuple]:
        """Everything needed to restore the buffer (tensors and plain numbers only)."""
        return {
            "examples": self.examples[: self._size].clone(),
            "capacity": self.capacity,
            "next": self._next,
            "reinit_prob": self.reinit_prob,
            "shape": self.shape,
            "value_range": self.value_range,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a buffer saved by :meth:`state_dict` (same shape and capacity)."""
        if tuple(state["shape"]) != self.shape or int(state["capacity"]) != self.capacity:
            raise ValueError(
                f"buffer state has shape {tuple(state['shape'])} and capacity "
                f"{state['capacity']}, this buffer {self.shape} and {self.capacity}"
            )
        examples = state["examples"]
        self._size = int(examples.shape[0])
        self._next = int(state["next"])
        self.examples[: self._size] = examples.to(self.examples)
        self.reinit_prob = float(state["reinit_prob"])
        self.value_range = (float(state["value_range"][0]), float(state["value_range"][1]))
