import json
import subprocess
import sys

import pytest

from ebm_course.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ebm_course", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--batch-size", "zero"], "invalid int value"),
        (["train", "--epochs", "0"], "epochs must be an integer >= 1"),
        (["train", "--lr", "-1"], "lr must be a finite number in (0, 100]"),
        (["train", "--precision", "fp16"], "precision must be one of"),
        (["train", "--no-such-flag"], "unrecognized arguments"),
        (["train", "--dataset", "cifar10", "--offline"], "unknown dataset"),
        (["train", "--threads", "0"], "--threads: must be an integer >= 1"),
        (["train", "--offline", "--init-from", "missing.pt"], "checkpoint not found: missing.pt"),
        (["sample", "missing.pt"], "checkpoint not found: missing.pt"),
        (["sample", "missing.pt", "--n", "0"], "--n: must be an integer >= 1"),
        (["fly"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_flags_and_inputs_exit_2_with_a_clear_message(args, message, capsys):
    with pytest.raises(SystemExit) as raised:
        sys.exit(main(args))
    assert raised.value.code == 2
    assert message.lower() in capsys.readouterr().err.lower()


def test_config_file_errors(tmp_path, capsys):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"learning_rate": 0.1}))
    assert main(["train", "--config", str(tmp_path / "none.json")]) == 2
    assert main(["train", "--config", str(bad_json)]) == 2
    assert main(["train", "--config", str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "config file not found" in err and "not valid JSON" in err
    assert "unknown TrainConfig fields ['learning_rate']" in err


def test_train_then_resume_then_sample(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"batch_size": 32, "mcmc_steps": 5, "iters_per_epoch": 2}))
    common = ["train", "--out", str(out), "--config", str(config), "--offline",
              "--train-limit", "256", "--no-progress"]  # fmt: skip
    first = run_cli(*common, "--epochs", "1")
    assert first.returncode == 0, first.stderr
    assert '"batch_size": 32' in first.stdout  # the config is printed
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    second = run_cli(*common, "--epochs", "2")  # resumes: one more epoch
    assert second.returncode == 0, second.stderr
    history = json.loads((out / "history.json").read_text())
    assert history["epoch"] == [1, 2]
    png = tmp_path / "samples.png"
    result = run_cli("sample", str(out / "best.pt"), "--n", "4", "--steps", "3", "--out", str(png))
    assert result.returncode == 0, result.stderr
    assert png.stat().st_size > 1000


def test_train_from_initial_weights_keeping_every_epoch(tmp_path):
    import torch

    from ebm_course.models import CNNEnergy

    start = CNNEnergy(hidden_features=8)
    start_file = str(tmp_path / "start.pt")
    torch.save({"model": start.state_dict()}, start_file)
    out = tmp_path / "run"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"batch_size": 32, "mcmc_steps": 2, "iters_per_epoch": 1}))
    result = run_cli("train", "--out", str(out), "--config", str(config), "--offline",
                     "--train-limit", "64", "--no-progress", "--epochs", "2", "--keep-epochs",
                     "--hidden-features", "8", "--init-from", start_file)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"initial weights: {start_file}" in result.stdout
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_001.pt", "epoch_002.pt"]
    # one iteration with a small learning rate: the weights moved, but only a little from start
    after = torch.load(out / "epochs" / "epoch_001.pt", weights_only=True)["model"]
    for name, value in start.state_dict().items():
        assert (after[name] - value).abs().max() < 0.01
    mismatch = run_cli("train", "--out", str(tmp_path / "other"), "--offline", "--no-progress",
                       "--init-from", start_file)  # fmt: skip
    assert mismatch.returncode == 2 and "hidden_features 8, not 32" in mismatch.stderr
