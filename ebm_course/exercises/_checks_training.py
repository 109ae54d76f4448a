"""Checkers of lesson 4: the data range and one training step."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from . import _fixtures as fx
from . import solutions as sol
from ._engine import Case, Mistake, Spec, Tolerance, evaluate
from ._feedback import Feedback

# ----------------------------------------------------------------- lesson 4: data range


@functools.cache
def _to_model_range_spec() -> Spec:
    every_byte = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16)
    random_bytes = torch.randint(0, 256, (2, 1, 28, 28), generator=fx.gen(30), dtype=torch.uint8)
    two_pixels = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    cases = [
        Case(
            "all 256 byte values as one [1, 1, 16, 16] image", lambda: ((every_byte.clone(),), {})
        ),
        Case("two random byte images [2, 1, 28, 28]", lambda: ((random_bytes.clone(),), {})),
        Case("one black (0) and one white (255) pixel", lambda: ((two_pixels.clone(),), {})),
    ]
    mistakes = [
        Mistake(
            lambda x: x.float() / 255,
            "Your images lie in `[0, 1]`; the sampler's box is `[-1, 1]`: `x / 255 * 2 - 1`.",
        ),
        Mistake(
            lambda x: (x.float() - 127.5) / 255,
            "Your images lie in `[-0.5, 0.5]`: after centring, divide by 127.5, not 255.",
        ),
        Mistake(
            lambda x: (x * 2) / 255 - 1,
            "`x * 2` overflowed in uint8 (bytes above 127 wrapped round to small values): "
            "convert to float first, `x.float() / 255 * 2 - 1`.",
        ),
        Mistake(
            lambda x: 1 - x.float() / 255 * 2,
            "Ink and paper are swapped: paper (0) must become -1 and ink (255) +1.",
        ),
        Mistake(
            lambda x: x.double() / 255 * 2 - 1,
            "Your images are float64; the networks' weights are float32, so use `.float()`.",
        ),
    ]
    return Spec("to_model_range", cases, sol.to_model_range, mistakes, Tolerance(1e-6, 1e-6))


def check_to_model_range(answer: Any) -> Feedback:
    """Check ``to_model_range(pixels uint8 [...]) -> float32 [...] in [-1, 1]``.

    Inputs: every byte value, two random byte images, a black and a white pixel.
    Tolerance ``1e-6 + 1e-6 |expected|``. Known mistakes: ``[0, 1]``, ``[-0.5, 0.5]``,
    uint8 overflow, ink and paper swapped, float64.
    """
    return evaluate(_to_model_range_spec(), answer)


# ----------------------------------------------------------------- lesson 4: training step

STALE = 0.5  # every parameter's .grad before the call, as left over by a previous iteration


def _train_case(label: str, batch: int, input_noise: float, seed: int) -> Case:
    real, fake = fx.digits(batch, seed), fx.uniform(batch, 1, 28, 28, seed=seed + 1)
    noise = fx.randn(batch, 1, 28, 28, seed=seed + 2)

    def make() -> tuple[tuple, dict]:
        model = fx.TinyEnergy(784, hidden=8, seed=seed)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for p in model.parameters():
            p.grad = torch.full_like(p, STALE)
        return (model, optimizer, real.clone(), fake.clone(), 0.1, input_noise, noise.clone()), {}

    return Case(label, make)


def _step(
    *,
    zero: bool = True,
    noised: bool = True,
    clamp: bool = True,
    step: bool = True,
    sign: float = 1.0,
    reg: bool = True,
) -> Callable:
    """The reference training step with one thing changed."""

    def wrong(
        model: Any, opt: Any, real: Tensor, fake: Tensor, alpha: float, s: float, noise: Tensor
    ) -> float:
        if noised:
            real = real + s * noise
        if clamp:
            real = real.clamp(-1.0, 1.0)
        r, f = model(real), model(fake)
        loss = sign * (f.mean() - r.mean()) + (alpha * (r**2 + f**2).mean() if reg else 0.0)
        if zero:
            opt.zero_grad()
        loss.backward()
        if step:
            opt.step()
        return loss.item()

    return wrong


def _observe_step(result: Any, args: tuple, kwargs: dict) -> dict[str, Any]:
    return {
        "the returned loss": result,
        "the parameters after the step": fx.flat_parameters(args[0]),
    }


@functools.cache
def _training_step_spec() -> Spec:
    cases = [
        _train_case("four digit-like images, input_noise 0.005", 4, 0.005, 31),
        _train_case("a single image, input_noise 0.005", 1, 0.005, 35),
        _train_case("three images, input_noise 0.5 (the clamp matters)", 3, 0.5, 39),
    ]
    mistakes = [
        Mistake(
            _step(zero=False),
            "You did not clear the old gradients: PyTorch *adds* to `.grad`, so the previous "
            "iteration's gradient leaked into this step. Call `optimizer.zero_grad()` before "
            "`loss.backward()` (the test's parameters start with a stale `.grad`).",
        ),
        Mistake(
            _step(step=False),
            "Your parameters did not change: call `optimizer.step()` after `loss.backward()` "
            "(and `optimizer.zero_grad()` before the backward pass, not between it and the step).",
        ),
        Mistake(
            _step(noised=False, clamp=False),
            "You did not add the input noise to the real images: `real + input_noise * noise` "
            "(then clamp). Without it the model can tell real from fake by the exact -1 "
            "background alone.",
        ),
        Mistake(
            _step(clamp=False),
            "You did not clamp the noised real images to `[-1, 1]`: real data must stay in "
            "the sampler's box.",
        ),
        Mistake(
            _step(sign=-1.0),
            "Your step pulls the fake samples up and the real images down: the sign of the "
            "contrastive term is flipped (minimise `mean f(fake) - mean f(real)`).",
        ),
        Mistake(
            _step(reg=False),
            "You left out the regulariser `alpha * mean(f(real)^2 + f(fake)^2)`.",
        ),
    ]
    spec = Spec("training_step", cases, sol.training_step, mistakes, Tolerance(1e-5, 1e-4))
    spec.observe = _observe_step
    return spec


def check_training_step(answer: Any) -> Feedback:
    """Check ``training_step(model, optimizer, real, fake, alpha, input_noise, noise) -> float``.

    Each input is a fresh seeded SiLU network with SGD (lr 0.05) whose parameters carry a
    stale ``.grad`` of 0.5: four images (input noise 0.005), a single image, three images
    with input noise 0.5 (clamping active). The returned loss and every parameter after
    the step are compared; Tolerance ``1e-5 + 1e-4 |expected|``. Known mistakes: no
    ``zero_grad``, no ``step``, no input noise, no clamp, flipped sign, no regulariser.
    """
    return evaluate(_training_step_spec(), answer)
