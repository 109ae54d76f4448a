"""Input checks shared by the whole package, with one rule for the error type.

- ``TypeError``: the argument is not the *kind* of thing asked for (a string where a number
  is needed, a float where an integer is, a list where a tensor is, integer pixels where
  floating-point images are).
- ``ValueError``: the kind is right but the *value* is not (a negative count, a shape that
  does not fit, NaN pixels, a range with ``low >= high``).

Every message names the argument. Each function returns the checked value, so that a check
and its use can be one line: ``steps = positive_int("steps", steps)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "as_images",
    "boolean",
    "checked_by",
    "device",
    "field_problems",
    "floating",
    "known_fields",
    "instance",
    "finite_tensor",
    "generator_for",
    "in_range",
    "number",
    "one_of",
    "positive_int",
    "same_device",
    "value_range",
]


def positive_int(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an ``int >= minimum`` (and ``<= maximum``); NumPy integers count, ``bool``
    does not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum:,}, got {value:,}")
    return int(value)


def number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> float:
    """``value`` as a finite real number in ``[low, high]`` (``(low, ...`` with ``open_low``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}")
    too_low = value <= low if open_low else value < low
    too_high = value >= high if open_high else value > high
    if not math.isfinite(value) or too_low or too_high:
        interval = _interval(low, high, open_low, open_high)
        raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")
    return float(value)


def _interval(low: float, high: float, open_low: bool, open_high: bool) -> str:
    """The allowed values in words: ``"> 0"``, ``">= 0"``, ``"in [0, 1)"``."""
    if high == math.inf:
        return f"{'>' if open_low else '>='} {low:g}"
    if low == -math.inf:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def one_of(name: str, value: Any, choices: tuple) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def value_range(name: str, value: Any) -> tuple[float, float]:
    """``value`` as a pair ``(low, high)`` of finite numbers with ``low < high``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a pair (low, high) of numbers, got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name} must be (low, high) with finite low < high, got {value!r}")
    return low, high


def finite_tensor(name: str, x: Any, *, min_dim: int = 1) -> torch.Tensor:
    """``x`` as a non-empty floating-point tensor with ``>= min_dim`` dimensions, no NaN/Inf."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point values, got {x.dtype}")
    if x.dim() < min_dim or x.shape[0] == 0:
        raise ValueError(
            f"{name} must be a non-empty batch [N, ...] with at least {min_dim} dimension(s), "
            f"got shape {list(x.shape)}"
        )
    if x.device.type != "meta" and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return x


def in_range(name: str, x: torch.Tensor, bounds: tuple[float, float] | None) -> torch.Tensor:
    """``x`` if all its values lie in ``bounds = (low, high)`` (anything when ``None``)."""
    if bounds is None or x.device.type == "meta":
        return x
    low, high = x.min().item(), x.max().item()
    if low < bounds[0] or high > bounds[1]:
        raise ValueError(
            f"{name} has values in [{low:.4g}, {high:.4g}], outside value_range "
            f"{tuple(bounds)}: scale the data to that range first"
        )
    return x


def as_images(name: str, data: Any) -> torch.Tensor:
    """A batch of examples ``[N, ...]`` as one float tensor (a dataset of ``(image, label)``
    pairs is materialised once with :func:`ebm_course.data.to_tensors`)."""
    if isinstance(data, torch.utils.data.Dataset):
        from .data import to_tensors

        data, _ = to_tensors(data)
    return finite_tensor(name, data, min_dim=2)


def boolean(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def same_device(name: str, tensor: torch.Tensor, other_name: str, other: torch.device) -> None:
    """Refuse ``tensor`` unless it lives on ``other`` (e.g. the model's device), naming both."""
    if tensor.device.type != other.type or _index(tensor.device) != _index(other):
        raise ValueError(
            f"{name} is on {tensor.device} but {other_name} is on {other}: move one of them "
            f"(e.g. {name}.to({str(other)!r}))"
        )


def generator_for(name: str, generator: torch.Generator | None, device: torch.device) -> None:
    """Refuse a ``torch.Generator`` that cannot draw on ``device``, saying how to make one."""
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is not None and generator.device.type != device.type:
        raise ValueError(
            f"{name} draws on {generator.device} but the tensors are on {device}: make it "
            f"with torch.Generator(device={str(device)!r}).manual_seed(seed)"
        )


def device(name: str, value: Any) -> torch.device:
    """``value`` (a ``torch.device`` or a name such as ``"cuda:0"``) as a ``torch.device``."""
    if not isinstance(value, str | torch.device):
        raise TypeError(f"{name} must be a torch.device or a name such as 'cpu', got {value!r}")
    try:
        return torch.device(value)
    except RuntimeError as err:
        raise ValueError(f"{name} {value!r} is not a device ({err})") from None


def instance(name: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """``value`` if it is an instance of ``kind`` (a ``TypeError`` naming both otherwise)."""
    if not isinstance(value, kind):
        names = " or ".join(
            _TORCH_NAMES.get(k, k.__name__) for k in (kind if isinstance(kind, tuple) else (kind,))
        )
        raise TypeError(f"{name} must be a {names}, got {type(value).__name__}")
    return value


def floating(name: str, x: Any) -> torch.Tensor:
    """``x`` if it is a floating-point tensor (no value checks: cheap enough for a hot path)."""
    instance(name, x, torch.Tensor)
    if not x.is_floating_point():
        raise TypeError(f"{name} must hold floating-point values, got {x.dtype}")
    return x


def module_input(x: Any, model: torch.nn.Module, what: str) -> None:
    """``x`` must be a floating-point tensor of ``model``'s dtype (cheap: no data is read)."""
    name = type(model).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of {what}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} expects floating-point {what}, got {x.dtype}")
    dtype = next(model.parameters()).dtype
    if x.dtype != dtype:
        raise ValueError(
            f"{name} has {dtype} weights but got {what} of dtype {x.dtype}: convert one of "
            f"them, e.g. x.to({dtype})"
        )


def checked_by(check: Callable[..., None]) -> Callable[[F], F]:
    """Decorator: run ``check`` with the same arguments before the function.

    The functions a lesson shows read as the algorithm; their input checks live in ``check``,
    around them, not inside them.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def checked(*args: Any, **kwargs: Any) -> Any:
            check(*args, **kwargs)
            return fn(*args, **kwargs)

        return checked  # type: ignore[return-value]

    return decorate


_TORCH_NAMES = {torch.Tensor: "torch.Tensor", torch.nn.Module: "torch.nn.Module"}


def _index(device: torch.device) -> int:
    """A device's index, the current one for ``cuda`` without an index."""
    if device.index is not None:
        return device.index
    return torch.cuda.current_device() if device.type == "cuda" else 0


def field_problems(
    config: Any, field_checks: dict[str, Callable[[str, Any], Any]], may_be_none: tuple = ()
) -> list[str]:
    """The complaint of every field of the dataclass ``config`` whose check fails: each field
    ``f`` is checked as ``field_checks[f](f, value)`` (``None`` passes in ``may_be_none``)."""
    problems = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None and field.name in may_be_none:
            continue
        try:
            field_checks[field.name](field.name, value)
        except (TypeError, ValueError) as err:
            problems.append(str(err))
    return problems


def known_fields(config_class: type, values: dict[str, Any]) -> dict[str, Any]:
    """``values``, after refusing (``ValueError``) keys that are not fields of the dataclass."""
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        name = config_class.__name__
        raise ValueError(f"unknown {name} fields {unknown}; valid fields: {sorted(known)}")
    return values
