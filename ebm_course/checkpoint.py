"""Safe checkpoint files: atomic writes, ``weights_only`` reads, clear errors.

A checkpoint is a dict of tensors, plain numbers, strings, lists, tuples and
dicts. It is written to a temporary file in the same folder, flushed to disk
(fsync) and renamed over the target, so a crash never leaves a half-written
file behind. It is read with ``torch.load(..., weights_only=True)``: no stored
code can run.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def save_atomic(obj: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``path`` atomically (temporary file, fsync, rename). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    # make the rename itself durable
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def load_checkpoint(
    path: str | os.PathLike[str],
    map_location: str | torch.device = "cpu",
    required: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_atomic` with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt, truncated, not a checkpoint dict, or lacks
            one of the ``required`` keys; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"could not read checkpoint {path}: {err}") from err
    if not isinstance(obj, dict):
        raise ValueError(f"{path} is not an ebm_course checkpoint (got {type(obj).__name__})")
    missing = [key for key in required if key not in obj]
    if missing:
        raise ValueError(f"{path} is not an ebm_course checkpoint: missing {missing}")
    return obj
