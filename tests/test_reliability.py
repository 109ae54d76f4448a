"""Reliability: each defect of issue 14 reproduced, and shown caught.

1 poisoned checkpoints, 2 resume with other data, 3 two writers, 4 silent wrong output,
5 tracebacks for user errors (also tests/test_bad_input.py), 6 late failures, 7 Ctrl-C,
8 configs that crash later (tests/test_bad_input.py), 9 NaN outside fit, 10 the rest
(full disk, stale temporaries, file modes).
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ebm_course.checkpoint import RunLock, RunLocked, load_checkpoint, save_atomic
from ebm_course.cli import main
from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.objectives import fit_objective
from ebm_course.training import (
    DivergenceGuard,
    TrainConfig,
    TrainingDiverged,
    TrainingInterrupted,
    fit,
)

TOY = dict(
    batch_size=64,
    lr=1e-2,
    grad_clip=1.0,
    mcmc_steps=5,
    step_size=0.05,
    mcmc_noise=0.01,
    grad_clamp=None,
    input_noise=0.0,
    buffer_capacity=256,
    noise_images=128,
)
REPO = Path(__file__).resolve().parents[1]
TINY_RUN = [
    "--offline",
    "--train-limit",
    "64",
    "--batch-size",
    "32",
    "--mcmc-steps",
    "2",
    "--iters-per-epoch",
    "1",
    "--no-progress",
]


def toy_model() -> MLPEnergy:
    torch.manual_seed(0)
    return MLPEnergy(hidden=16, depth=2)


def blob(n: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (0.4 + 0.1 * torch.randn(n, 2, generator=gen)).clamp(-1, 1)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ebm_course", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=REPO,
    )


def one_line_error(result: subprocess.CompletedProcess | str, *phrases: str) -> str:
    """The one line that reports the error (warnings, one line each, may come before it)."""
    err = result if isinstance(result, str) else result.stderr
    lines = [line for line in err.splitlines() if line.strip() and ": warning: " not in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for phrase in phrases:
        assert phrase.lower() in lines[0].lower(), lines[0]
    return lines[0]


# --------------------------------------------------------------- 1. poisoned checkpoints


class BlowUpOnLastStep(DivergenceGuard):
    """The default guard, but the model's weights are set to huge values right after the last
    step of epoch 2 (where the step-level guard cannot see it: its scores came before)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def problem(self, row):
        self.calls += 1
        if self.calls == 4:  # epoch 2's last step (2 per epoch)
            with torch.no_grad():
                self.model.net[-1].bias.fill_(1e9)
        return super().problem(row)


def test_a_blow_up_on_an_epochs_last_step_never_becomes_a_checkpoint(tmp_path):
    model = toy_model()
    guard = BlowUpOnLastStep(model)
    history = fit(
        model,
        blob(128),
        blob(64, 1),
        TrainConfig(epochs=3, **TOY),
        guard=guard,
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert [e["epoch"] for e in history.events] == [2]
    assert "evaluation" in history.events[0]["reason"]
    for name in ("last.pt", "best.pt"):
        weights = load_checkpoint(tmp_path / name)["model"]
        assert all(torch.isfinite(w).all() and w.abs().max() < 1e6 for w in weights.values())
    assert all(abs(v) < 100 for v in history.val_cdiv)


def test_the_issues_reproduction_command_never_saves_a_blown_model(tmp_path):
    out = tmp_path / "P"
    result = cli(
        "train",
        "--out",
        str(out),
        "--epochs",
        "3",
        "--mcmc-steps",
        "10",
        "--lr",
        "10",
        *TINY_RUN[:-3],
        "--iters-per-epoch",
        "1",
        "--no-progress",
    )
    if result.returncode == 2:
        one_line_error(result, "diverged")
    else:
        assert result.returncode == 0, result.stderr
    for name in ("last.pt", "best.pt"):
        if (out / name).exists():
            state = load_checkpoint(out / name)
            assert all(torch.isfinite(w).all() for w in state["model"].values())
    history = load_checkpoint(out / "last.pt")["history"] if (out / "last.pt").exists() else None
    if history:
        assert all(math.isfinite(v) and abs(v) < 100 for v in history["val_cdiv"])


# ----------------------------------------------------------------- 2. resume, other data


def test_resume_refuses_other_data_before_writing_anything(tmp_path):
    fit(
        toy_model(),
        blob(128),
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(ValueError, match="other data.*train: same shape, other images"):
        fit(
            toy_model(),
            blob(128, seed=5),
            None,
            TrainConfig(epochs=2, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )
    with pytest.raises(ValueError, match=r"train: 128 examples .* then, 192"):
        fit(
            toy_model(),
            blob(192),
            None,
            TrainConfig(epochs=2, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert after == before  # config.json and the checkpoints untouched


def test_cli_resume_with_another_dataset_or_limit_exits_2(tmp_path):
    out = str(tmp_path / "run")
    assert cli("train", "--out", out, "--epochs", "1", *TINY_RUN).returncode == 0
    config_before = (tmp_path / "run" / "config.json").read_text()
    other = cli("train", "--out", out, "--epochs", "2", *TINY_RUN[:2], "96", *TINY_RUN[3:])
    assert other.returncode == 2
    one_line_error(other, "cannot resume", "other data")
    fashion = cli("train", "--out", out, "--epochs", "2", "--dataset", "fashion_mnist", *TINY_RUN)
    assert fashion.returncode == 2
    config_changed = cli("train", "--out", out, "--epochs", "2", "--lr", "0.5", *TINY_RUN)
    one_line_error(config_changed, "config differs in ['lr']")
    assert (tmp_path / "run" / "config.json").read_text() == config_before


# ------------------------------------------------------------------ 3. one writer per run


def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path):
    lock = RunLock(tmp_path).acquire()  # this (live) process holds the folder
    with pytest.raises(RunLocked, match=f"in use by process {os.getpid()}"):
        fit(
            toy_model(),
            blob(128),
            None,
            TrainConfig(epochs=1, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )
    result = cli("train", "--out", str(tmp_path), "--epochs", "1", *TINY_RUN)
    assert result.returncode == 2
    one_line_error(result, "in use by process")
    lock.release()
    # a lock left by a killed process: its PID no longer runs
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    (tmp_path / ".lock").write_text(f"{os.uname().nodename} {dead}")
    fit(
        toy_model(),
        blob(128),
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert (tmp_path / "last.pt").is_file() and not (tmp_path / ".lock").exists()


def test_two_cli_writers_at_once_one_is_refused(tmp_path):
    out = str(tmp_path / "run")
    slow = [*TINY_RUN[:-3], "--iters-per-epoch", "40", "--no-progress"]
    first = subprocess.Popen(
        [sys.executable, "-m", "ebm_course", "train", "--out", out, "--epochs", "2", *slow],
        cwd=REPO,
        stderr=subprocess.PIPE,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        for _ in range(600):  # wait until it holds the folder
            if (tmp_path / "run" / ".lock").exists():
                break
            time.sleep(0.1)
        second = cli("train", "--out", out, "--epochs", "2", *slow)
        assert second.returncode == 2
        one_line_error(second, "in use by process")
    finally:
        first.kill()
        first.wait()


# ------------------------------------------------------------- 4. silent wrong output


def test_sample_refuses_nan_weights_and_classifiers(tmp_path):
    model = CNNEnergy()
    state = model.state_dict()
    state["cnn_layers.11.bias"] = torch.tensor([math.nan])
    torch.save({"model": state}, tmp_path / "nan.pt")
    assert (
        main(
            [
                "sample",
                str(tmp_path / "nan.pt"),
                "--n",
                "2",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 2
    )
    torch.save({"model": CNNEnergy(out_dim=10).state_dict()}, tmp_path / "classifier.pt")
    assert (
        main(
            [
                "sample",
                str(tmp_path / "classifier.pt"),
                "--n",
                "2",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "s.png"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "s.png").exists()


def test_sample_out_names_the_file_it_writes(tmp_path, capsys):
    torch.save({"model": CNNEnergy().state_dict()}, tmp_path / "m.pt")
    assert (
        main(
            [
                "sample",
                str(tmp_path / "m.pt"),
                "--n",
                "2",
                "--steps",
                "1",
                "--out",
                str(tmp_path / "grid"),
            ]
        )
        == 0
    )
    assert (tmp_path / "grid.png").is_file()
    assert str(tmp_path / "grid.png") in capsys.readouterr().out
    with pytest.raises(SystemExit) as raised:
        main(["sample", str(tmp_path / "m.pt"), "--out", str(tmp_path)])  # a folder
    assert raised.value.code == 2
    assert "is a folder" in capsys.readouterr().err


@pytest.mark.parametrize("out", ["", "   "])
def test_train_refuses_an_empty_out(out, capsys):
    with pytest.raises(SystemExit) as raised:
        main(["train", "--out", out])
    assert raised.value.code == 2
    assert "empty path" in capsys.readouterr().err


def test_langevin_and_fit_refuse_a_network_with_ten_outputs():
    from ebm_course.sampling import langevin

    classifier = CNNEnergy(out_dim=10)
    with pytest.raises(ValueError, match=r"one score per example, shape \[2\], got \[2, 10\]"):
        langevin(classifier, torch.zeros(2, 1, 28, 28), steps=1)
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    config = TrainConfig(epochs=1, batch_size=32, mcmc_steps=1, iters_per_epoch=1)
    with pytest.raises(ValueError, match="one score per"):
        fit(classifier, images, None, config, progress=False)


# ------------------------------------------------------------------ 6. late failures


def test_bad_folders_and_huge_sizes_fail_before_the_first_iteration(tmp_path):
    calls = []
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    for folder in (a_file, a_file / "run"):
        with pytest.raises(OSError, match="file"):
            fit(
                toy_model(),
                blob(128),
                None,
                TrainConfig(epochs=1, **TOY),
                checkpoint_dir=folder,
                callback=lambda *a: calls.append(a),
                progress=False,
            )
    big = TrainConfig(epochs=1, **{**TOY, "buffer_capacity": 10**8})
    images = torch.rand(64, 1, 28, 28) * 2 - 1
    with pytest.raises(ValueError, match="the replay buffer would need"):
        fit(
            CNNEnergy(),
            images,
            None,
            TrainConfig(epochs=1, batch_size=32, buffer_capacity=10**8),
            callback=lambda *a: calls.append(a),
            progress=False,
        )
    with pytest.raises(ValueError, match="noise_images must be an integer <="):
        TrainConfig(noise_images=10**9)
    assert big.buffer_capacity == 10**8 and calls == []


# --------------------------------------------------------------------------- 7. Ctrl-C


def test_ctrl_c_saves_at_the_next_safe_point_and_the_run_resumes(tmp_path):
    def interrupt(step, model):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    config = TrainConfig(epochs=2, iters_per_epoch=4, **TOY)
    with pytest.raises(TrainingInterrupted, match="saved .*last.pt.*again to resume"):
        fit(
            toy_model(),
            blob(128),
            None,
            config,
            checkpoint_dir=tmp_path,
            callback=interrupt,
            progress=False,
        )
    state = load_checkpoint(tmp_path / "last.pt")
    assert (state["progress"]["epoch"], state["progress"]["step"]) == (0, 3)
    assert not (tmp_path / ".lock").exists()
    resumed = toy_model()
    fit(resumed, blob(128), None, config, checkpoint_dir=tmp_path, progress=False)
    straight = toy_model()
    fit(straight, blob(128), None, config, progress=False)
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ctrl_c_during_a_checkpoint_write_finishes_the_write(tmp_path, monkeypatch):
    import ebm_course.training.trainer as trainer

    real_save = trainer.save_atomic

    def save_with_ctrl_c(obj, path):
        os.kill(os.getpid(), signal.SIGINT)  # arrives in the middle of the write
        return real_save(obj, path)

    monkeypatch.setattr(trainer, "save_atomic", save_with_ctrl_c)
    with pytest.raises(TrainingInterrupted):
        fit(
            toy_model(),
            blob(128),
            None,
            TrainConfig(epochs=3, **TOY),
            checkpoint_dir=tmp_path,
            progress=False,
        )
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1  # complete and readable
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_ctrl_c_exits_130_with_a_resume_hint(tmp_path):
    out = tmp_path / "run"
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ebm_course",
            "train",
            "--out",
            str(out),
            "--epochs",
            "50",
            *TINY_RUN[:-3],
            "--iters-per-epoch",
            "2",
            "--no-progress",
        ],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    for _ in range(1200):  # until the first epoch is saved
        if (out / "last.pt").exists():
            break
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=300)
    assert run.returncode == 130, err
    one_line_error(err, "interrupted", "again to resume")
    assert "epoch" in load_checkpoint(out / "last.pt")


# ---------------------------------------------------------------- 9. NaN outside fit


def test_fit_objective_raises_when_the_loss_is_nan():
    def nan_loss(model, batch):
        return model(batch).mean() * math.nan

    with pytest.raises(TrainingDiverged, match="loss became nan at iteration 1"):
        fit_objective(toy_model(), blob(64), nan_loss, steps=3, batch_size=8)


def test_fit_jem_rolls_back_a_huge_loss_and_gives_up_clearly():
    from ebm_course.jem import JEM, fit_jem

    torch.manual_seed(0)
    model = JEM(CNNEnergy(hidden_features=8, out_dim=10))
    with torch.no_grad():
        model.net.cnn_layers[-1].bias.fill_(4e15)  # logits of 4e15: every loss explodes
        model.net.cnn_layers[-1].bias[0] = 0.0
    images, labels = torch.rand(32, 1, 28, 28) * 2 - 1, torch.arange(32) % 10
    config = TrainConfig(batch_size=16, mcmc_steps=1, buffer_capacity=32)
    with pytest.raises(TrainingDiverged, match="gave up after 3 rollbacks"):
        fit_jem(model, images, labels, config, iterations=4, progress=False)


def test_replay_buffer_refuses_nan_samples():
    from ebm_course.sampling import ReplayBuffer

    buffer = ReplayBuffer((2,), capacity=8)
    with pytest.raises(ValueError, match="NaN or Inf"):
        buffer.push(torch.tensor([[0.0, math.nan]]))
    assert len(buffer) == 0


# ----------------------------------------------------------------- 10. disk, files, modes


def test_a_full_disk_is_reported_and_the_old_checkpoint_kept(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_atomic({"epoch": 1}, path)

    real_fdopen = os.fdopen

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match=r"no space left on device to write .*last.pt") as raised:
        save_atomic({"epoch": 2}, path)
    assert raised.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_disk_during_training_is_one_line_from_the_cli(tmp_path):
    # a tiny file system would need root mounts; a sitecustomize that makes every write of a
    # checkpoint fail with ENOSPC stands in for it in a real CLI process
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import errno, os\n"
        "real = os.fdopen\n"
        "class Full:\n"
        "    def __init__(self, h): self.h = h\n"
        "    def __enter__(self): return self\n"
        "    def __exit__(self, *e): self.h.close()\n"
        "    def write(self, data): raise OSError(errno.ENOSPC, 'No space left on device')\n"
        "def fdopen(fd, mode='r', *a, **k):\n"
        "    checkpoint = os.readlink(f'/proc/self/fd/{fd}').endswith('.tmp')\n"
        "    return Full(real(fd, mode)) if checkpoint else real(fd, mode, *a, **k)\n"
        "os.fdopen = fdopen\n"
    )
    result = cli(
        "train",
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "1",
        *TINY_RUN,
        env={"PYTHONPATH": str(hook)},
    )
    assert result.returncode == 2
    one_line_error(result, "no space left on device")


def test_stale_temporaries_are_removed_and_files_get_normal_modes(tmp_path):
    stale = tmp_path / ".last.pt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    fit(
        toy_model(),
        blob(128),
        None,
        TrainConfig(epochs=1, **TOY),
        checkpoint_dir=tmp_path,
        progress=False,
    )
    assert not stale.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "last.pt").stat().st_mode & 0o777 == 0o666 & ~umask
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["batch_size"] == TOY["batch_size"]
