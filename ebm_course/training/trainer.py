"""The training loop every model of the course shares, over a small trainer object.

:meth:`Trainer.fit` is the whole algorithm::

    for each epoch:
        for each batch: step, then let the guard judge it
        end of epoch: evaluate, record, checkpoint   (or roll back if the guard objected)

A subclass says what a step is (:meth:`Trainer.step`) and what the end of an epoch measures
and records (:meth:`Trainer.evaluate`, :meth:`Trainer.log_epoch`); the base class owns the
rest: shuffling, the replay buffer, the optimiser and its schedule, the divergence guard and
rollbacks, atomic checkpoints and bit-identical resume, progress bars, TensorBoard and
several processes (``torch.distributed``).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checks
from ..checkpoint import save_atomic
from ..sampling import NonFiniteSamples, ReplayBuffer
from ..utils import model_device
from .config import RANK_SEED_STRIDE, ROLLBACK_SEED_STRIDE, SHUFFLE_SEED_OFFSET, TrainConfig
from .guard import DivergenceGuard
from .safety import (
    StopOnInterrupt,
    TrainingInterrupted,
    check_memory,
    claim_folder,
    data_changes,
    fingerprint,
    write_json,
)
from .state import Progress, capture_rng, read_run_checkpoint, restore_rng


@dataclass
class RunOptions:
    """How a run is kept and watched, beside what it computes (that is the config): the
    keyword arguments of :func:`~ebm_course.training.fit`, documented there."""

    checkpoint_dir: str | os.PathLike[str] | None = None
    checkpoint_every: int | None = None
    keep_epochs: bool = False
    resume: bool = True
    buffer: ReplayBuffer | None = None
    guard: DivergenceGuard | None = None
    device: str | torch.device | None = None
    progress: bool = True
    tensorboard_dir: str | os.PathLike[str] | None = None
    callback: Callable[[int, nn.Module], None] | None = None
    sample_every: int | None = None

    def __post_init__(self) -> None:
        if self.device is not None:
            self.device = checks.device("device", self.device)
        if self.guard is not None:
            checks.instance("guard", self.guard, DivergenceGuard)
        for name in ("checkpoint_every", "sample_every"):
            if getattr(self, name) is not None:
                checks.positive_int(name, getattr(self, name))
        if self.keep_epochs and self.checkpoint_dir is None:
            raise ValueError("keep_epochs=True needs a checkpoint_dir to keep the epochs in")

    @classmethod
    def pick(cls, arguments: dict[str, Any]) -> RunOptions:
        """The options among a function's ``arguments`` (e.g. ``locals()`` of ``fit``)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in arguments.items() if name in names})


class Trainer:
    """State and short steps of one training run; :meth:`fit` is the loop over them."""

    kind = "fit"  # which checkpoint formats this trainer reads (see state.FORMATS)
    format = "ebm_course.fit/2"  # the format it writes
    step_keys: tuple[str, ...] = ()  # what step() reports; summed over an epoch

    def __init__(
        self, model: nn.Module, images: torch.Tensor, config: TrainConfig, options: RunOptions
    ) -> None:
        self.config, self.options = config, options
        self.guard = options.guard or DivergenceGuard()
        self.device = model_device(model) if options.device is None else options.device
        self.model = model.to(self.device)
        self.images = images.to(self.device)
        self.rank, self.world = _rank_and_world_size()
        self.iters = self._iterations_per_epoch()
        self._check_memory()
        self.buffer = options.buffer if options.buffer is not None else self._new_buffer()
        seed = config.seed + RANK_SEED_STRIDE * self.rank
        self.sample_gen = torch.Generator(self.device).manual_seed(seed)
        self.shuffle_gen = torch.Generator().manual_seed(config.seed + SHUFFLE_SEED_OFFSET)
        betas = (config.beta1, config.beta2)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=betas)
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, 1, config.lr_gamma)
        self.progress = self._fresh_progress()
        self.history = self.new_history()
        self.checkpoint_dir = (
            None if options.checkpoint_dir is None else Path(options.checkpoint_dir)
        )
        self.train_model = self._distributed(model)

    # ------------------------------------------------------------------ the loop

    def fit(self) -> Any:
        """For each epoch: for each batch: step; end of epoch: evaluate, guard, checkpoint."""
        with self.running():  # lock the run folder, resume, stop cleanly on Ctrl-C
            while not self.finished():
                problem = self.train_epoch()
                if problem is None:
                    problem = self.end_epoch()
                if problem is not None:
                    self.rollback(problem)
        return self.history

    def train_epoch(self) -> str | None:
        """Run the epoch's steps; the guard's reason to stop, or None when the epoch is done."""
        self.model.train()
        for batch in self.batches():
            started = time.perf_counter()
            try:
                row = self.step(batch)
            except NonFiniteSamples:  # the score broke down inside the sampler
                return "non-finite Langevin samples (the model's score is NaN or Inf)"
            problem = self.guard.problem(self.guarded(row))
            if problem is not None:
                return problem
            self.record(row, time.perf_counter() - started)
            if self.checkpoint_due() or self.interrupt.requested:
                problem = self.guard.state_problem(self.model)
                if problem is not None:
                    return problem
                self.save()
                self.stop_if_interrupted()
        return None

    def end_epoch(self) -> str | None:
        """Evaluate and judge the epoch; if healthy, record it and make it the new stable
        (saved) state. Returns the guard's objection, if any."""
        means = {k: v / self.progress.step for k, v in self._all_reduce(self.progress.sums).items()}
        lr = self.optimizer.param_groups[0]["lr"]
        self.scheduler.step()
        self.model.eval()
        evaluation = self.evaluate()
        problem = self.guard.state_problem(self.model, self.guarded(evaluation))
        if problem is not None:
            return problem
        self.log_epoch(means, lr, evaluation)
        self.bars.end_epoch(means)
        at = self.progress
        self.progress = self._fresh_progress(at.epoch + 1, at.order, at.rollbacks)
        self.stable = copy.deepcopy(self.state())
        self.save_epoch()
        self.save()
        self.stop_if_interrupted()
        return None

    def rollback(self, reason: str) -> None:
        """Back to the last stable state, with another sampler seed and a lower learning rate."""
        rollbacks = self.progress.rollbacks + 1
        self.guard.give_up(rollbacks, reason)
        event = {"epoch": self.progress.epoch + 1, "step": self.progress.step + 1, "reason": reason}
        events = [*self.history.events, event]
        # a copy: the optimiser adopts the snapshot's state tensors and updates them in place
        self.load(copy.deepcopy(self.stable), rng=False)
        # the snapshot holds the learning rate of its own time: cut it once for every rollback
        # to this same snapshot, so that repeated failures keep lowering it
        factor = self.guard.lr_factor ** (rollbacks - self.progress.rollbacks)
        self.progress.rollbacks = rollbacks
        self.history.events = events
        self.sample_gen.manual_seed(self.config.seed + ROLLBACK_SEED_STRIDE * rollbacks)
        for group in self.optimizer.param_groups:
            group["lr"] *= factor
        self.scheduler.base_lrs = [lr * factor for lr in self.scheduler.base_lrs]
        event["lr"] = self.optimizer.param_groups[0]["lr"]

    # ---------------------------------------------------- what a subclass defines

    def new_history(self) -> Any:
        """An empty history, with ``events`` (the rollbacks) and ``to_dict``/``from_dict``."""
        raise NotImplementedError

    def step(self, batch: torch.Tensor) -> dict[str, float]:
        """One optimiser step on the examples at indices ``batch``; returns the step's values."""
        raise NotImplementedError

    def guarded(self, row: dict[str, float]) -> dict[str, float]:
        """The values of a step's row (or of an evaluation) that the guard judges: all of
        them by default; a subclass leaves out values that are not computed (NaN by design)."""
        return row

    def evaluate(self) -> dict[str, float]:
        """What the end of an epoch measures (the model is in eval mode)."""
        return {}

    def log_epoch(self, means: dict[str, float], lr: float, evaluation: dict[str, float]) -> None:
        """Record a finished epoch: the means of the step values, its lr, the evaluation."""

    # -------------------------------------------------------------- the pieces

    @property
    def epochs(self) -> int:
        return self.config.epochs

    def finished(self) -> bool:
        """True once the run has done all its epochs."""
        return self.progress.epoch >= self.epochs

    def batches(self) -> Iterator[torch.Tensor]:
        """Index batches of the current epoch on the device; a new shuffled pass over this
        process's share of the data whenever the last one is used up (``drop_last``)."""
        at, size = self.progress, self.config.batch_size
        while at.step < self.iters_in_epoch(at.epoch):
            if at.order.numel() < size:
                n = self.images.shape[0]
                at.order = torch.randperm(n, generator=self.shuffle_gen)[self.rank :: self.world]
            index, at.order = at.order[:size], at.order[size:]
            yield index.to(self.device)

    def iters_in_epoch(self, epoch: int) -> int:
        """Iterations of epoch ``epoch`` (0-based): all the same here; a subclass with a
        total number of iterations may cut the last one short."""
        return self.iters

    def record(self, row: dict[str, float], seconds: float) -> None:
        """Count a healthy step: sums, time, logs, the callback, a mid-epoch checkpoint."""
        at = self.progress
        for key in self.step_keys:
            at.sums[key] += row[key]
        at.step += 1
        at.seconds += seconds
        global_step = at.epoch * self.iters + at.step
        if self.writer is not None:
            self.writer.add_scalar("train/loss", row["loss"], global_step)
        if self.options.callback is not None:
            self.options.callback(global_step, self.model)
        self.bars.step(at.epoch, row)

    def checkpoint_due(self) -> bool:
        """A mid-epoch ``last.pt`` is due (every ``checkpoint_every`` iterations)."""
        every, at = self.options.checkpoint_every, self.progress
        return bool(every) and at.step % every == 0 and at.step < self.iters_in_epoch(at.epoch)

    def stop_if_interrupted(self) -> None:
        """After Ctrl-C, at a safe point (the state just saved): stop, saying how to resume."""
        if not self.interrupt.requested:
            return
        where = f"epoch {self.progress.epoch + 1}, iteration {self.progress.step}"
        if self.checkpoint_dir is None:
            raise TrainingInterrupted(
                f"interrupted at {where}; nothing was saved (no checkpoint_dir)"
            )
        raise TrainingInterrupted(
            f"interrupted at {where}; saved {self._path('last.pt')}: run the same command "
            "(or fit with the same checkpoint_dir) again to resume"
        )

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: modules, history, position and every RNG state."""
        return {
            "format": self.format,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "buffer": self.buffer.state_dict(),
            "config": self.config.to_dict(),
            "history": self.history.to_dict(),
            "progress": dataclasses.asdict(self.progress),
            "epoch": self.progress.epoch,
            "rng": capture_rng(self.sample_gen, self.shuffle_gen),
            "data": self.data_fingerprint,
        }

    def load(self, state: dict[str, Any], rng: bool = True) -> None:
        """Restore a :meth:`state` (with or without the RNG states)."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.buffer.load_state_dict(state["buffer"])
        self.history = type(self.history).from_dict(state["history"])
        self.progress = Progress(**state["progress"])
        if rng:
            restore_rng(state["rng"], self.sample_gen, self.shuffle_gen)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The run's set-up and clean-up around the loop: lock the folder (one writer), check
        what can be checked before the first iteration, resume, open logs and bars, turn
        Ctrl-C into a clean stop; and always release and close."""
        with contextlib.ExitStack() as stack:
            if self.checkpoint_dir is not None and self.rank == 0:
                stack.enter_context(claim_folder(self.checkpoint_dir))
            self.preflight()
            last = self._path("last.pt")
            if last is not None and self.options.resume and last.exists():
                self.resume(last)
            if self.checkpoint_dir is not None and self.rank == 0:
                write_json(self.checkpoint_dir / "config.json", self.config.to_dict())
            self.stable = copy.deepcopy(self.state())  # where the guard rolls back to
            self.writer = self._tensorboard()
            show = self.options.progress and self.rank == 0
            self.bars = _Bars(self.epochs, self.progress.epoch, self.iters, show)
            stack.callback(self.close)
            self.interrupt = stack.enter_context(StopOnInterrupt())
            yield

    def preflight(self) -> None:
        """Before the first iteration: the data's fingerprint, which checkpoints carry so that
        a resume can refuse other data."""
        self.data_fingerprint = {"train": fingerprint(self.images)}

    def resume(self, path: Path) -> None:
        """Continue the run saved at ``path``; refuses a config that changes the algorithm."""
        state = read_run_checkpoint(path, self.kind, self.device, self.iters)
        changed = self.config.changes_from(state["config"])
        if changed:
            raise ValueError(
                f"cannot resume from {path}: config differs in {changed}; "
                "use another checkpoint_dir or resume=False"
            )
        other_data = data_changes(state.get("data") or {}, self.data_fingerprint)
        if other_data:
            raise ValueError(
                f"cannot resume from {path}: the run was made on other data "
                f"({'; '.join(other_data)}); use another checkpoint_dir or resume=False"
            )
        try:
            self.load(state)
        except (KeyError, RuntimeError, TypeError, ValueError) as err:
            raise ValueError(
                f"cannot resume from {path}: it does not fit this run ({err})"
            ) from err
        if self.rank > 0:  # only rank 0's sampler state is saved: give the others fresh streams
            seed = self.config.seed + RANK_SEED_STRIDE * self.rank + self.progress.epoch
            self.sample_gen.manual_seed(seed)

    def save(self) -> None:
        """Write ``last.pt`` (atomically; only the first process writes)."""
        path = self._path("last.pt")
        if path is not None and self.rank == 0:
            save_atomic(self.state(), path)

    def save_epoch(self) -> None:
        """End-of-epoch files beside ``last.pt`` (a subclass adds ``best.pt`` and the like)."""
        path = self._path(Path("epochs") / f"epoch_{self.progress.epoch:03d}.pt")
        if self.options.keep_epochs and path is not None and self.rank == 0:
            save_atomic({"model": self.model.state_dict(), "epoch": self.progress.epoch}, path)

    def close(self) -> None:
        self.bars.close()
        if self.writer is not None:
            self.writer.close()
        self.model.eval()

    # ------------------------------------------------------------------ helpers

    def _path(self, name: str | Path) -> Path | None:
        return None if self.checkpoint_dir is None else self.checkpoint_dir / name

    def _fresh_progress(self, epoch: int = 0, order: Any = None, rollbacks: int = 0) -> Progress:
        sums = dict.fromkeys(self.step_keys, 0.0)
        order = torch.empty(0, dtype=torch.long) if order is None else order
        return Progress(epoch=epoch, order=order, sums=sums, rollbacks=rollbacks)

    def _iterations_per_epoch(self) -> int:
        n, size = self.images.shape[0], self.config.batch_size
        if n // self.world < size:
            raise ValueError(
                f"the training data has {n} examples, fewer than one batch (batch_size="
                f"{size}) for each of {self.world} process(es)"
            )
        return self.config.iters_per_epoch or (n // self.world) // size

    def _check_memory(self) -> None:
        """The replay buffer and the evaluation's noise images fit in memory (else the run
        would fail after its first epoch, or swap)."""
        example = self.images[0].numel() * self.images.element_size()
        check_memory(self.config.buffer_capacity * example, self.device, "the replay buffer")
        check_memory(self.config.noise_images * example, self.device, "the noise images")

    def _new_buffer(self) -> ReplayBuffer:
        c = self.config
        shape = tuple(self.images.shape[1:])
        return ReplayBuffer(shape, c.buffer_capacity, c.reinit_prob, c.value_range, self.device)

    def _distributed(self, model: nn.Module) -> nn.Module:
        """Under torchrun, a DDP wrapper that all-reduces gradients; else the model itself."""
        if self.world == 1:
            return model
        device_ids = [self.device] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    def _all_reduce(self, sums: dict[str, float]) -> dict[str, float]:
        """The mean over all processes of each sum (every rank records the same history)."""
        if self.world == 1:
            return sums
        totals = torch.tensor(list(sums.values()), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(totals)
        return dict(zip(sums, (totals / self.world).tolist(), strict=True))

    def _tensorboard(self) -> Any:
        if self.options.tensorboard_dir is None or self.rank != 0:
            return None
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        return SummaryWriter(str(self.options.tensorboard_dir))


def _rank_and_world_size() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _Bars:
    """tqdm progress bars: one over the epochs, one over the current epoch's iterations."""

    def __init__(self, epochs: int, done: int, iters: int, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.tqdm, self.iters, self.enabled = tqdm, iters, enabled
        self.epochs = tqdm(total=epochs, initial=done, desc="epochs", disable=not enabled)
        self.bar: Any = None

    def step(self, epoch: int, row: dict[str, float]) -> None:
        if self.bar is None:
            desc = f"epoch {epoch + 1}"
            self.bar = self.tqdm(total=self.iters, leave=False, desc=desc, disable=not self.enabled)
        self.bar.update()
        self.bar.set_postfix(loss=f"{row['loss']:.4f}")

    def end_epoch(self, means: dict[str, float]) -> None:
        self.close_epoch()
        self.epochs.update()
        self.epochs.set_postfix(loss=f"{means.get('loss', float('nan')):.4f}")

    def close_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self) -> None:
        self.close_epoch()
        self.epochs.close()
