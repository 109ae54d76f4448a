"""Small helpers for the lessons' notebooks: the set-up cell, numbers glued into the prose,
package source shown where a lesson is about it.

Numbers a lesson's text quotes come from its own run: :func:`numbers` prints them in the cell
(what a reader in JupyterLab sees) and hands them to myst-nb's ``glue`` (what the book's prose
shows, as ``{glue:text}`name:.3f```), so text and outputs cannot drift apart. Without myst-nb
installed (a plain JupyterLab set-up) the values are only printed.
"""

from __future__ import annotations

import inspect
import numbers as _numbers
import os
from typing import Any

import torch

__all__ = ["numbers", "setup", "show_source", "to_numpy"]


def setup(seed: int = 0, threads: int | None = None) -> tuple[torch.device, bool]:
    """The lessons' first cell: seeds, thread count, device and quick mode, printed.

    Returns ``(DEVICE, QUICK)``: :func:`ebm_course.device` (CUDA when available; the
    environment variable ``EBM_COURSE_DEVICE`` forces one) and :func:`ebm_course.quick`
    (``EBM_COURSE_QUICK=1`` shrinks every run, as CI does).
    """
    import random

    import numpy as np

    from . import device, quick

    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (what user code in the lesson may use)
    if threads is not None:
        torch.set_num_threads(threads)
    chosen, fast = device(), quick()
    print(f"device: {chosen} | quick mode: {'on' if fast else 'off'} | torch {torch.__version__}")
    return chosen, fast


def numbers(**values: Any) -> None:
    """Print each ``name = value`` and glue it for the book's prose (myst-nb), when available.

    Tensors become Python numbers; ``name`` must be a valid identifier, as in the prose's
    ``{glue:text}`name```.
    """
    for name, value in values.items():
        if isinstance(value, torch.Tensor):
            value = value.item()
        elif isinstance(value, _numbers.Real) and not isinstance(value, bool | int):
            value = float(value)  # NumPy floats print and glue as plain numbers
        print(f"{name} = {value:.6g}" if isinstance(value, float) else f"{name} = {value}")
        _glue(name, value)


def _glue(name: str, value: Any) -> None:
    if os.environ.get("EBM_COURSE_NO_GLUE"):
        return
    try:
        from myst_nb import glue
    except ImportError:  # JupyterLab without the book's packages: printing is enough
        return
    glue(name, value, display=False)


def show_source(obj: Any) -> Any:
    """The package's own source of ``obj`` (a function, class or method), as syntax-highlighted
    code: lessons show the code they teach instead of copying it."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")


def to_numpy(tensor: torch.Tensor) -> Any:
    """``tensor`` as a NumPy array, from any device (detached and copied to the CPU first)."""
    return tensor.detach().cpu().numpy()
