"""Comparing an answer's output with the reference's: numbers, bools, tensors, dicts.

:func:`compare` returns ``None`` for a match, else a short phrase saying what differs (type,
shape, dtype, or which values), for the feedback messages.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tolerance:
    """Elementwise ``|got - expected| <= atol + rtol * |expected|``."""

    atol: float = 1e-5
    rtol: float = 1e-4

    def __str__(self) -> str:
        bounds = [f"{self.atol:g}"] if self.atol else []
        bounds += [f"{self.rtol:g} * |expected|"] if self.rtol else []
        if not bounds:
            return "exact equality"
        return f"|got - expected| <= {' + '.join(bounds)} (entry by entry for tensors)"


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _fmt_pair(expected: float, got: float) -> tuple[str, str]:
    """Both numbers, with enough digits to tell them apart (up to 12)."""
    for digits in range(6, 13):
        a, b = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if a != b:
            break
    return a, b


def describe(value: Any) -> str:
    """A short description of a value's type, shape and dtype."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {list(value.shape)} and dtype {value.dtype}"
    if isinstance(value, bool):
        return f"the bool {value}"
    if isinstance(value, int | float):
        return f"the number {_fmt(value)}"
    return f"a value of type `{type(value).__name__}`"


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Tensor) and value.dim() == 0 and value.is_floating_point():
        return float(value.detach())
    if type(value).__module__ == "numpy" and hasattr(value, "item") and value.ndim == 0:
        item = value.item()
        return float(item) if isinstance(item, int | float) and not isinstance(item, bool) else None
    return None


def _as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, Tensor) and value.dim() == 0 and value.dtype == torch.bool:
        return bool(value)
    if type(value).__name__ == "bool_":  # numpy.bool_
        return bool(value)
    return None


def _close(expected: float, got: float, tol: Tolerance) -> bool:
    if math.isnan(expected) or math.isnan(got):
        return math.isnan(expected) and math.isnan(got)
    if math.isinf(expected) or math.isinf(got):
        return expected == got
    return abs(got - expected) <= tol.atol + tol.rtol * abs(expected)


def _tensor_difference(expected: Tensor, got: Tensor, tol: Tolerance) -> str | None:
    e, g = expected.detach().double(), got.detach().double()
    ok = torch.isclose(g, e, rtol=tol.rtol, atol=tol.atol, equal_nan=True)
    if bool(ok.all()):
        return None
    bad = int((~ok).sum())
    if e.dim() == 0:
        want, have = _fmt_pair(float(e), float(g))
        return f"expected {want}, got {have}"
    if e.numel() <= 8:
        show = lambda t: "[" + ", ".join(_fmt(v) for v in t.flatten().tolist()) + "]"
        return f"expected {show(e)}, got {show(g)}"
    index = tuple(int(i) for i in (~ok).nonzero()[0])
    nan = int(torch.isnan(g).sum())
    nan_note = f"; {nan} of your entries are NaN" if nan else ""
    want, have = _fmt_pair(float(e[index]), float(g[index]))
    return (
        f"{bad:,} of {e.numel():,} entries differ{nan_note}; the first at index {index}: "
        f"expected {want}, got {have}"
    )


def compare(expected: Any, got: Any, tol: Tolerance, path: str = "") -> str | None:
    """None when ``got`` matches ``expected`` within ``tol``, else what differs (a phrase)."""
    where = f"in {path}, " if path else ""
    if isinstance(expected, dict):
        for key, value in expected.items():
            problem = compare(value, got.get(key) if isinstance(got, dict) else None, tol, key)
            if problem:
                return problem
        return None
    if isinstance(expected, tuple | list):
        if not isinstance(got, tuple | list) or len(got) != len(expected):
            return f"{where}expected {len(expected)} values in a tuple, got {describe(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            problem = compare(e, g, tol, f"{path} item {i}".strip())
            if problem:
                return problem
        return None
    if expected is None:
        return None if got is None else f"{where}expected nothing (None), got {describe(got)}"
    if got is None:
        return f"{where}expected {describe(expected)}, got None"
    if isinstance(expected, bool):
        value = _as_bool(got)
        if value is None:
            return f"{where}expected a bool (True or False), got {describe(got)}"
        return None if value == expected else f"{where}expected {expected}, got {value}"
    if isinstance(expected, int | float):
        value = _as_number(got)
        if value is None:
            return f"{where}expected a number (a float or a 0-d tensor), got {describe(got)}"
        if _close(float(expected), value, tol):
            return None
        want, have = _fmt_pair(float(expected), value)
        return f"{where}expected {want}, got {have}"
    if not isinstance(got, Tensor):
        return f"{where}expected {describe(expected)}, got {describe(got)}"
    if got.shape != expected.shape:
        return f"{where}expected shape {list(expected.shape)}, got shape {list(got.shape)}"
    if got.dtype != expected.dtype:
        return f"{where}expected dtype {expected.dtype}, got dtype {got.dtype}"
    problem = _tensor_difference(expected, got, tol)
    return f"{where}{problem}" if problem else None
