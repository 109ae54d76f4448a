"""Speed switches of the sampler, kept out of the algorithm.

:func:`ebm_course.sampling.langevin_steps` needs one thing from the network: a function
``gradient(x) -> grad_x f(x)`` (``f = -E``, the score). :class:`SamplerSpeed` builds that
function, faster where the hardware allows, and never changes what it computes beyond
floating-point rounding:

- ``precision``: ``"auto"`` runs the forward pass in bf16 autocast where the hardware has
  native bf16 (CUDA GPUs that support it, CPUs with AVX512-BF16 or AMX), else fp32;
  ``"fp32"`` forces full precision (bit for bit the plain algorithm); ``"bf16"`` forces bf16
  (about 1 % relative change per gradient, far below the effect of the Langevin noise).
- ``channels_last``: lay 4-D image batches out channels-last (NHWC), which oneDNN and cuDNN
  convolutions prefer. Same numbers up to rounding, different memory order.
- ``compile``: ``torch.compile`` the gradient (off by default: compiling takes tens of
  seconds on a CPU and did not pay off there). Falls back to eager, with a warning.
- ``cuda_graph``: on CUDA, capture the gradient once as a CUDA graph and replay it each step
  (a tiny network's many short kernels are launch-bound on a GPU). Ignored elsewhere; falls
  back to eager, with a warning, when capture fails.

See ``benchmarks/`` for what each switch is worth.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import checks
from .utils import scores

PRECISIONS = ("auto", "fp32", "bf16")
Gradient = Callable[[torch.Tensor], torch.Tensor]


@functools.cache
def _cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: stay with fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype the MCMC forward passes run in for ``precision`` on ``device``, or ``None``
    for plain fp32 (see the module docstring for ``"auto"``)."""
    checks.one_of("precision", precision, PRECISIONS)
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    if device.type == "cpu":
        return torch.bfloat16 if _cpu_has_native_bf16() else None
    return None


def score_gradient(
    model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """``grad_x sum_i f(x_i)``: the gradient of the score with respect to the input only.

    ``x`` ``[B, ...]`` need not require grad (a detached alias is differentiated; no
    parameter gets a ``.grad``). With ``dtype`` (e.g. ``torch.bfloat16``) the forward pass
    runs under autocast; the gradient comes back in ``x``'s dtype and layout.
    """
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        autocast = dtype is not None
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=autocast):
            score = scores(model, x)
        (grad,) = torch.autograd.grad(score.float().sum(), x)
    return grad


@dataclass(frozen=True)
class SamplerSpeed:
    """How the sampler computes its gradients; never what it computes. Defaults: the fast
    settings (``"auto"`` precision, channels-last), without compile and CUDA graphs."""

    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    cuda_graph: bool = False

    def __post_init__(self) -> None:
        checks.one_of("precision", self.precision, PRECISIONS)
        for name in ("channels_last", "compile", "cuda_graph"):
            checks.boolean(name, getattr(self, name))

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """A private copy of ``x`` in the memory layout the switches ask for."""
        nhwc = self.channels_last and x.dim() == 4
        return x.detach().clone(
            memory_format=torch.channels_last if nhwc else torch.contiguous_format
        )

    def gradient(self, model: nn.Module, x: torch.Tensor) -> Gradient:
        """``x -> grad_x f(x)`` for ``model``, for batches shaped (and laid out) like ``x``."""
        dtype = autocast_dtype(self.precision, x.device)
        eager = functools.partial(score_gradient, model, dtype=dtype)
        if self.cuda_graph and x.device.type == "cuda":
            try:
                return _graphed_gradient(model, x, dtype)
            except Exception as err:  # capture fails for models with host syncs, etc.
                _warn(f"CUDA graph capture failed ({type(err).__name__}: {err}); using eager mode")
                _graphs.pop(model, None)
        if self.compile:
            return _EagerFallback(_compiled_gradient(model, dtype), eager, model)
        return eager


def _warn(message: str) -> None:
    warnings.warn(message, RuntimeWarning, stacklevel=4)


# torch.compile'd score_gradient per model (compiling costs seconds: reuse it)
_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _compiled_gradient(model: nn.Module, dtype: torch.dtype | None) -> Gradient:
    if model not in _compiled:
        _compiled[model] = torch.compile(score_gradient, dynamic=False)
    return functools.partial(_compiled[model], model, dtype=dtype)


class _EagerFallback:
    """Calls ``fast``; the first time it fails, warns once and uses ``eager`` from then on."""

    def __init__(self, fast: Gradient, eager: Gradient, model: nn.Module) -> None:
        self.fast, self.eager, self.model = fast, eager, model

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            try:
                return self.fast(x)
            except Exception as err:
                _warn(f"torch.compile failed ({type(err).__name__}: {err}); using eager mode")
                _compiled.pop(self.model, None)
                self.fast = None
        return self.eager(x)


class _GraphedGradient:
    """``score_gradient`` replayed from a captured CUDA graph (one per model, shape, dtype).

    The graph reads the parameters in place, so optimiser steps are seen; a model whose
    parameters were replaced (``load_state_dict`` keeps them, ``.to()`` may not) is
    recaptured.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> None:
        self.static_x = x.detach().clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the graph, as CUDA graphs require
            for _ in range(3):
                score_gradient(model, self.static_x, dtype)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.static_grad = score_gradient(model, self.static_x, dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.static_x.copy_(x)
        self.graph.replay()
        return self.static_grad.clone()


_graphs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _graphed_gradient(model: nn.Module, x: torch.Tensor, dtype: torch.dtype | None) -> Gradient:
    key = (tuple(x.shape), x.stride(), dtype, tuple(p.data_ptr() for p in model.parameters()))
    per_model = _graphs.setdefault(model, {})
    if key not in per_model:
        per_model.clear()  # parameters moved or shape changed: old graphs are stale
        per_model[key] = _GraphedGradient(model, x, dtype)
    return per_model[key]
