"""What keeps a run's work safe: one writer per run folder, checks before the first
iteration, a fingerprint of the data a run was made on, and a clean stop on Ctrl-C."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import RunLock, remove_stale_temporaries


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training at a safe point, after the last state was saved (if there is a
    checkpoint folder); the message says how to resume."""


@contextlib.contextmanager
def claim_folder(folder: Path) -> Iterator[RunLock]:
    """Make ``folder`` (refusing a file), lock it for this process, clear stale temporaries.

    Raises :class:`~ebm_course.checkpoint.RunLocked` when another live process holds it and
    ``OSError`` (naming the folder) when it cannot be made or written.
    """
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"checkpoint folder {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = RunLock(folder).acquire()  # also proves the folder is writable
    except PermissionError as err:
        raise PermissionError(f"cannot write to the checkpoint folder {folder}: {err}") from err
    try:
        remove_stale_temporaries(folder)
        yield lock
    finally:
        lock.release()


def write_json(path: Path, values: dict[str, Any]) -> None:
    """``values`` as indented JSON at ``path``, replaced atomically."""
    tmp = path.with_name(f".{path.name}.json.tmp")
    tmp.write_text(json.dumps(values, indent=2))
    os.replace(tmp, path)


def fingerprint(images: torch.Tensor | None) -> dict[str, Any] | None:
    """Shape and SHA-256 of a data tensor: what a resume compares to refuse other data."""
    if images is None:
        return None
    data = images.detach().cpu().contiguous()
    digest = hashlib.sha256(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()
    return {"shape": list(data.shape), "dtype": str(data.dtype), "sha256": digest}


def data_changes(saved: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """How the data of a saved run (``saved``) differs from this run's, in words."""
    changes = []
    for name, old in saved.items():
        new = now.get(name)
        if old is None or new is None or old == new:
            continue
        if old["shape"] != new["shape"]:
            changes.append(
                f"{name}: {old['shape'][0]} examples of shape {old['shape'][1:]} "
                f"then, {new['shape'][0]} of shape {new['shape'][1:]} now"
            )
        else:
            changes.append(f"{name}: same shape, other images")
    return changes


def check_memory(nbytes: int, device: torch.device, what: str) -> None:
    """Refuse to allocate more than half of the memory ``device`` has, before training."""
    if device.type == "cuda":
        available = torch.cuda.mem_get_info(device)[1]
    else:
        try:
            available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not POSIX: cannot tell
            return
    if nbytes > available // 2:
        raise ValueError(
            f"{what} would need {nbytes / 2**30:.1f} GiB, more than half of the "
            f"{available / 2**30:.1f} GiB of memory of {device}: choose smaller sizes"
        )


class StopOnInterrupt:
    """Turns the first Ctrl-C (SIGINT) into a request that the loop honours at its next safe
    point; a second Ctrl-C interrupts at once. Only in the main thread (elsewhere Python
    delivers no signals), and the previous handler is restored on exit."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:  # asked twice: stop now
            raise KeyboardInterrupt
        self.requested = True
