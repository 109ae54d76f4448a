"""Safe checkpoint files: atomic writes, ``weights_only`` reads, clear errors, one writer.

A checkpoint is a dict of tensors, plain numbers, strings, lists, tuples and dicts. It is
serialised in memory, written to a temporary file in the same folder, flushed to disk
(fsync) and renamed over the target, so a crash never leaves a half-written file behind
(a full disk is reported as such, and the old file stays). It is read with
``torch.load(..., weights_only=True)``: no stored code can run. Files get the usual
permissions (``0666`` minus the umask), like any file the user writes.

:class:`RunLock` keeps two training processes from writing the same run folder.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

import torch

TEMPORARY_GLOB = ".*.tmp"  # what save_atomic's temporary files look like


def save_atomic(obj: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write ``obj`` to ``path`` atomically (temporary file, fsync, rename). Returns the path.

    Raises:
        OSError: the folder cannot be written, or the disk is full (``errno.ENOSPC``, with
            a message that says so); ``path`` is then unchanged.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # serialise first: a write error is then a plain OSError
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(buffer.getbuffer())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())
        os.replace(tmp_name, path)
    except BaseException as err:
        Path(tmp_name).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.errno == errno.ENOSPC:
            size = buffer.getbuffer().nbytes / 2**20
            raise OSError(
                errno.ENOSPC, f"no space left on device to write {path} ({size:.1f} MiB)"
            ) from err
        raise
    _fsync_folder(path.parent)  # make the rename itself durable
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_stale_temporaries(folder: str | os.PathLike[str]) -> list[Path]:
    """Delete what interrupted :func:`save_atomic` calls left in ``folder``; returns them.

    Call it only while holding the folder's :class:`RunLock` (no writer is active then).
    """
    stale = sorted(Path(folder).glob(TEMPORARY_GLOB))
    for tmp in stale:
        tmp.unlink(missing_ok=True)
    return stale


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
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a file path (str or Path), got {type(path).__name__}")
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


class RunLocked(RuntimeError):
    """Another live process is writing the same run folder."""


class RunLock:
    """An exclusive claim on a run folder: the file ``.lock`` holding ``host pid``.

    :meth:`acquire` creates it atomically (``O_EXCL``). A lock left by a process of this
    host that no longer runs (killed) is stale and taken over; a live owner, or one on
    another host (which cannot be checked from here), raises :class:`RunLocked` with the
    owner and how to clear the lock by hand.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.path = Path(folder) / ".lock"
        self.held = False

    def acquire(self) -> RunLock:
        me = f"{socket.gethostname()} {os.getpid()}"
        for _ in range(2):  # a second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                if not self._owner_is_gone():
                    raise RunLocked(self._busy_message()) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(me)
            self.held = True
            return self
        raise RunLocked(self._busy_message())

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def _owner(self) -> tuple[str, int] | None:
        try:
            host, pid = self.path.read_text().split()
            return host, int(pid)
        except (OSError, ValueError):
            return None

    def _owner_is_gone(self) -> bool:
        owner = self._owner()
        if owner is None:  # unreadable or half-written: its writer died mid-write
            return True
        host, pid = owner
        if host != socket.gethostname():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False

    def _busy_message(self) -> str:
        owner = self._owner()
        who = f"process {owner[1]} on {owner[0]}" if owner else "another process"
        return (
            f"{self.path.parent} is in use by {who} (lock file {self.path}); wait for it to "
            "finish, choose another folder, or delete the lock file if that process is gone"
        )
