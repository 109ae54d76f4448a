"""Bad input, table-driven (issue 14): no silent failure, no traceback for a user's mistake.

Every public entry point and the command line is fed what a careful user might get wrong.
A case is ``(call, expected exception, pattern)``: it passes only when the call raises that
exception type (or a subclass) and the message matches the pattern, which names the
argument (or file) and the problem. A command-line case passes only when it exits with
code 2 and prints exactly one non-empty line on stderr, without "Traceback", matching the
pattern.

The error-type rule (see ``ebm_course/checks.py``):

- ``TypeError``: the argument is not the kind of thing asked for: a string, list, NumPy
  array or ``None`` where a tensor, number or model is needed; a float or ``bool`` where an
  integer is; a non-bool switch; integer pixels (or float labels) where floating-point
  images (or integer labels) are.
- ``ValueError``: the kind is right but the value is not: a shape, a range, NaN/Inf, an
  empty batch, an option outside its choices (an unknown name is a ValueError, as in
  ``checks.one_of``), a float64 batch for a float32 model (the message names both dtypes),
  a corrupt or unsuitable file (the message names the file). ``TrainConfig`` reports all its
  bad fields as one ValueError.
- ``FileNotFoundError`` for a missing file, ``NotADirectoryError`` for a folder that is a file,
  ``TrainingDiverged`` (a ``RuntimeError``) when training produces a non-finite loss.

Cases marked ``xfail(strict=True)`` with "owner: <file>" fail because of a file another
engineer owns; the owner removes the mark with the fix.

Case count: 440 API cases + 50 command-line cases = 490 (checked by ``test_case_count``).
"""

from __future__ import annotations

import inspect
import math
import re
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn

from ebm_course import checkpoint, data, metrics, models, objectives, plots, pretrained, toy
from ebm_course.classifier import MNISTClassifier, accuracy, load_classifier, train_classifier
from ebm_course.cli import main
from ebm_course.jem import JEM, ClassConditionalScore, detector_scores, fit_jem, jem_training_step
from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.sampling import ReplayBuffer, SamplerSpeed, langevin, uniform_noise
from ebm_course.training import (
    DivergenceGuard,
    TrainConfig,
    TrainingDiverged,
    contrastive_divergence_loss,
    fit,
    training_step,
)

NAN, INF = math.nan, math.inf


# --------------------------------------------------------------------------- helpers


def case(name, call, error, match, owner=None):
    """One API case: ``call()`` (or ``call(tmp_path)``) must raise ``error`` matching ``match``.
    ``owner``: "<file>: <what is wrong>" for a case another engineer's file fails."""
    marks = () if owner is None else pytest.mark.xfail(reason=f"owner: {owner}", strict=True)
    return pytest.param(call, error, match, id=name, marks=marks)


def _run(call, error, match, tmp_path):
    with pytest.raises(error) as raised:
        call(tmp_path) if inspect.signature(call).parameters else call()
    message = str(raised.value)
    assert re.search(match, message, re.IGNORECASE | re.DOTALL), message
    assert "Traceback" not in message
    plt.close("all")


def images(n=2, value=0.0, dtype=torch.float32):
    return torch.full((n, 1, 28, 28), value, dtype=dtype)


def cnn(out_dim=1):
    return CNNEnergy(hidden_features=2, out_dim=out_dim)


def tiny_jem():
    return JEM(cnn(out_dim=10))


def labels(*values):
    return torch.tensor(values, dtype=torch.int64)


X = images()
X_NAN = images(value=NAN)
TINY = {
    "batch_size": 2,
    "epochs": 1,
    "mcmc_steps": 1,
    "iters_per_epoch": 1,
    "buffer_capacity": 8,
    "noise_images": 2,
    "val_batch_size": 2,
}


def tiny_config(**changes):
    return TrainConfig(**{**TINY, **changes})


def saved(tmp, obj, name="file.pt"):
    path = tmp / name
    torch.save(obj, path)
    return path


def written(tmp, content=b"this is not a checkpoint\x00\x01", name="garbage.pt"):
    path = tmp / name
    path.write_bytes(content)
    return path


def nan_state(value=NAN):
    state = cnn().state_dict()
    state["cnn_layers.0.weight"][0, 0, 0, 0] = value
    return state


def missing_key_state():
    state = cnn().state_dict()
    del state["cnn_layers.2.weight"]
    return state


class NaNScore(nn.Module):
    """A model whose score is NaN: training on it must stop, not return NaN losses."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x.flatten(1).sum(1) * self.w * NAN


class Quadratic(nn.Module):
    """``f(x) = -w |x|^2`` for points ``[B, 2]``."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return -self.w * x.pow(2).sum(1)


POINTS = torch.zeros(8, 2)
NORMAL_2D = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))


def dsm(model, batch):
    return objectives.denoising_score_matching(model, batch, 0.1)


def fit_objective(**kwargs):
    arguments = {"model": Quadratic(), "data": POINTS, "loss_fn": dsm, "steps": 1}
    arguments.update(kwargs)
    arguments.setdefault("batch_size", 4)
    return objectives.fit_objective(
        arguments.pop("model"), arguments.pop("data"), arguments.pop("loss_fn"), **arguments
    )


DEFAULT = object()  # "the helper's default", so that None can be a case's bad value


def run_fit(model=DEFAULT, train=None, **kwargs):
    config = kwargs.pop("config", tiny_config())
    model = cnn() if model is DEFAULT else model
    train = images(4) if train is None else train
    return fit(model, train, config=config, progress=False, **kwargs)


def run_fit_jem(model=None, x=None, y=None, **kwargs):
    config = kwargs.pop("config", tiny_config())
    model = tiny_jem() if model is None else model
    x = images(4) if x is None else x
    y = labels(0, 1, 2, 3) if y is None else y
    kwargs.setdefault("iterations", 1)
    return fit_jem(model, x, y, config, progress=False, **kwargs)


def jem_step(model=None, x=None, y=None, buffer="new", **kwargs):
    model = tiny_jem() if model is None else model
    parameters = model.parameters() if isinstance(model, nn.Module) else [torch.zeros(1)]
    optimizer = torch.optim.Adam(parameters)
    buffer = ReplayBuffer(capacity=8) if buffer == "new" else buffer
    x = X if x is None else x
    y = labels(0, 1) if y is None else y
    return jem_training_step(model, optimizer, buffer, x, y, tiny_config(), **kwargs)


def cd_step(model=None, real=None, config="tiny", buffer="new"):
    model = cnn() if model is None else model
    optimizer = torch.optim.Adam(model.parameters())
    buffer = ReplayBuffer(capacity=8) if buffer == "new" else buffer
    config = tiny_config() if config == "tiny" else config
    return training_step(model, optimizer, buffer, X if real is None else real, config)


def sample_quality(**kwargs):
    arguments = {"model": cnn(), "classifier": MNISTClassifier(), "real_images": images(8)}
    arguments.update(kwargs)
    arguments.setdefault("n", 2)
    arguments.setdefault("steps", 1)
    return metrics.sample_quality(
        arguments.pop("model"), arguments.pop("classifier"), arguments.pop("real_images"),
        **arguments,
    )  # fmt: skip


def trajectory(steps=4, chains=2):
    return torch.zeros(steps, chains, 1, 6, 6)


def gauss_score(x):
    return -x.pow(2).sum(1)


# ---------------------------------------------------------------- ebm_course.sampling

OWN_SAMPLING = "sampling.py"
SAMPLING_CASES = [
    case("langevin-x-is-a-string", lambda: langevin(cnn(), "noise"), TypeError,
         "x must be a torch.Tensor"),
    case("langevin-x-is-a-list", lambda: langevin(cnn(), [[0.0] * 4] * 2), TypeError,
         "x must be a torch.Tensor"),
    case("langevin-x-is-numpy", lambda: langevin(cnn(), np.zeros((2, 1, 28, 28))), TypeError,
         "x must be a torch.Tensor"),
    case("langevin-x-integer", lambda: langevin(cnn(), images(dtype=torch.int64)), TypeError,
         "x must hold floating-point"),
    case("langevin-x-1d", lambda: langevin(cnn(), torch.zeros(5)), ValueError,
         r"x must be a non-empty batch .*\[5\]"),
    case("langevin-x-empty-batch", lambda: langevin(cnn(), images(0)), ValueError,
         r"x must be a non-empty batch .*\[0, 1, 28, 28\]"),
    case("langevin-x-nan", lambda: langevin(cnn(), X_NAN), ValueError, "x contains NaN"),
    case("langevin-x-inf", lambda: langevin(cnn(), images(value=INF)), ValueError,
         "x contains NaN or Inf"),
    case("langevin-x-outside-value-range", lambda: langevin(cnn(), images(value=2.0)),
         ValueError, r"x has values in \[2, 2\], outside value_range"),
    case("langevin-x-three-channels", lambda: langevin(cnn(), torch.zeros(2, 3, 28, 28), 1),
         ValueError, r"\[B, 1, 28, 28\].*\[2, 3, 28, 28\]"),
    case("langevin-steps-0", lambda: langevin(cnn(), X, steps=0), ValueError,
         "steps must be an integer >= 1"),
    case("langevin-steps-float", lambda: langevin(cnn(), X, steps=2.5), TypeError,
         "steps must be an integer"),
    case("langevin-steps-string", lambda: langevin(cnn(), X, steps="10"), TypeError,
         "steps must be an integer"),
    case("langevin-steps-bool", lambda: langevin(cnn(), X, steps=True), TypeError,
         "steps must be an integer"),
    case("langevin-step-size-0", lambda: langevin(cnn(), X, 1, step_size=0), ValueError,
         "step_size must be a finite number > 0"),
    case("langevin-step-size-negative", lambda: langevin(cnn(), X, 1, step_size=-1.0),
         ValueError, "step_size must be a finite number > 0"),
    case("langevin-step-size-nan", lambda: langevin(cnn(), X, 1, step_size=NAN), ValueError,
         "step_size must be a finite number"),
    case("langevin-step-size-inf", lambda: langevin(cnn(), X, 1, step_size=INF), ValueError,
         "step_size must be a finite number"),
    case("langevin-step-size-string", lambda: langevin(cnn(), X, 1, step_size="big"),
         TypeError, "step_size must be a number"),
    case("langevin-noise-negative", lambda: langevin(cnn(), X, 1, noise_std=-0.1), ValueError,
         "noise_std must be a finite number >= 0"),
    case("langevin-noise-none", lambda: langevin(cnn(), X, 1, noise_std=None), TypeError,
         "noise_std must be a number"),
    case("langevin-grad-clamp-0", lambda: langevin(cnn(), X, 1, grad_clamp=0.0), ValueError,
         "grad_clamp must be a finite number > 0"),
    case("langevin-grad-clamp-string", lambda: langevin(cnn(), X, 1, grad_clamp="x"),
         TypeError, "grad_clamp must be a number"),
    case("langevin-value-range-reversed", lambda: langevin(cnn(), X, 1, value_range=(1, -1)),
         ValueError, r"value_range must be \(low, high\) with finite low < high"),
    case("langevin-value-range-empty", lambda: langevin(cnn(), X, 1, value_range=(0, 0)),
         ValueError, "value_range must be .* low < high"),
    case("langevin-value-range-nan", lambda: langevin(cnn(), X, 1, value_range=(NAN, 1)),
         ValueError, "value_range must be .*finite"),
    case("langevin-value-range-number", lambda: langevin(cnn(), X, 1, value_range=5),
         TypeError, r"value_range must be a pair \(low, high\)"),
    case("langevin-value-range-triple", lambda: langevin(cnn(), X, 1, value_range=(0, 1, 2)),
         TypeError, "value_range must be a pair"),
    case("langevin-mask-wrong-shape",
         lambda: langevin(cnn(), X, 1, mask=torch.ones(3, 1, 28, 28, dtype=torch.bool)),
         ValueError, r"mask of shape \[3, 1, 28, 28\] does not broadcast to x"),
    case("langevin-mask-string", lambda: langevin(cnn(), X, 1, mask="all"), TypeError,
         r"mask must be a (boolean )?(torch\.)?tensor"),
    case("langevin-model-returns-logits", lambda: langevin(cnn(10), X, 1), ValueError,
         r"one score per example, shape \[2\], got \[2, 10\]"),
    case("langevin-model-none", lambda: langevin(None, X, 1), TypeError,
         "model must be a torch.nn.Module"),
    case("langevin-model-string", lambda: langevin("cnn", X, 1), TypeError,
         "model must be a torch.nn.Module"),
    case("langevin-float64-x-float32-cnn", lambda: langevin(cnn(), X.double(), 1), ValueError,
         "float64.*float32|float32.*float64"),
    case("langevin-float64-x-float32-sequential",
         lambda: langevin(nn.Sequential(nn.Flatten(), nn.Linear(784, 1), nn.Flatten(0)),
                          X.double(), 1),
         ValueError, "float64.*float32|float32.*float64"),
    case("langevin-speed-string", lambda: langevin(cnn(), X, 1, speed="fast"), TypeError,
         "speed must be a SamplerSpeed"),
    case("langevin-return-trajectory-string",
         lambda: langevin(cnn(), X, 1, return_trajectory="no"), TypeError,
         "return_trajectory must be True or False"),
    case("langevin-generator-string", lambda: langevin(cnn(), X, 1, generator="seed"),
         TypeError, "generator must be a torch.Generator"),
    case("buffer-shape-zero", lambda: ReplayBuffer(shape=(1, 0, 28)), ValueError,
         "shape entry must be an integer >= 1"),
    case("buffer-shape-empty", lambda: ReplayBuffer(shape=()), ValueError,
         "shape must be a non-empty sequence"),
    case("buffer-shape-float", lambda: ReplayBuffer(shape=(1, 28.0, 28)), TypeError,
         "shape entry must be an integer"),
    case("buffer-shape-int", lambda: ReplayBuffer(shape=28), TypeError,
         "shape must be a (non-empty )?sequence"),
    case("buffer-capacity-0", lambda: ReplayBuffer(capacity=0), ValueError,
         "capacity must be an integer >= 1"),
    case("buffer-capacity-negative", lambda: ReplayBuffer(capacity=-5), ValueError,
         "capacity must be an integer >= 1"),
    case("buffer-capacity-float", lambda: ReplayBuffer(capacity=100.0), TypeError,
         "capacity must be an integer"),
    case("buffer-reinit-prob-above-1", lambda: ReplayBuffer(capacity=4, reinit_prob=1.5),
         ValueError, r"reinit_prob must be a finite number in \[0, 1\]"),
    case("buffer-reinit-prob-negative", lambda: ReplayBuffer(capacity=4, reinit_prob=-0.1),
         ValueError, "reinit_prob must be"),
    case("buffer-reinit-prob-nan", lambda: ReplayBuffer(capacity=4, reinit_prob=NAN),
         ValueError, "reinit_prob must be a finite number"),
    case("buffer-reinit-prob-string", lambda: ReplayBuffer(capacity=4, reinit_prob="0.1"),
         TypeError, "reinit_prob must be a number"),
    case("buffer-value-range-reversed", lambda: ReplayBuffer(capacity=4, value_range=(1, -1)),
         ValueError, "value_range must be .*low < high"),
    case("buffer-value-range-none", lambda: ReplayBuffer(capacity=4, value_range=None),
         TypeError, "value_range must be a pair"),
    case("buffer-push-wrong-shape", lambda: ReplayBuffer(capacity=4).push(torch.zeros(2, 28, 28)),
         ValueError, r"samples must have shape \[n, 1, 28, 28\], got \[2, 28, 28\]"),
    case("buffer-push-nan", lambda: ReplayBuffer(capacity=4).push(X_NAN), ValueError,
         "samples contains NaN or Inf"),
    case("buffer-push-list", lambda: ReplayBuffer(capacity=4).push([[0.0]]), TypeError,
         "samples must be a torch.Tensor"),
    case("buffer-push-integer", lambda: ReplayBuffer(capacity=4).push(images(dtype=torch.int64)),
         TypeError, "samples must hold floating-point"),
    case("buffer-draw-0", lambda: ReplayBuffer(capacity=4).draw(0), ValueError,
         "batch_size must be an integer >= 1"),
    case("buffer-draw-float", lambda: ReplayBuffer(capacity=4).draw(2.5), TypeError,
         "batch_size must be an integer"),
    case("buffer-load-other-shape",
         lambda: ReplayBuffer(capacity=4).load_state_dict(
             ReplayBuffer((1, 8, 8), capacity=4).state_dict()),
         ValueError, r"buffer state has shape \(1, 8, 8\)"),
    case("uniform-noise-negative-size", lambda: uniform_noise((2, -1)), ValueError,
         "shape"),
    case("uniform-noise-reversed-range", lambda: uniform_noise((2, 2), (1.0, -1.0)), ValueError,
         "value_range must be .*low < high"),
    case("uniform-noise-string-range", lambda: uniform_noise((2, 2), "ab"), TypeError,
         "value_range must be a pair"),
    case("speed-precision-fp16", lambda: SamplerSpeed(precision="fp16"), ValueError,
         r"precision must be one of \('auto', 'fp32', 'bf16'\)"),
    case("speed-precision-none", lambda: SamplerSpeed(precision=None), ValueError,
         "precision must be one of"),
    case("speed-channels-last-string", lambda: SamplerSpeed(channels_last="yes"), TypeError,
         "channels_last must be True or False"),
    case("speed-compile-int", lambda: SamplerSpeed(compile=1), TypeError,
         "compile must be True or False"),
    case("speed-cuda-graph-none", lambda: SamplerSpeed(cuda_graph=None), TypeError,
         "cuda_graph must be True or False"),
]  # fmt: skip


# ---------------------------------------------------------------- ebm_course.training


def config_case(field, value, match):
    name = f"TrainConfig-{field}={value!r}"[:60]
    pattern = rf"invalid TrainConfig: .*{field} must {match}"
    return case(name, lambda: TrainConfig(**{field: value}), ValueError, pattern)


OWN_STEP, OWN_CD = "training/step.py", "training/cd.py"
CONFIG_CASES = [
    config_case("batch_size", "64", "be an integer"),
    config_case("batch_size", 0, "be an integer >= 1"),
    config_case("batch_size", 2**40, r"be an integer <= 1,048,576"),
    config_case("alpha", -1.0, r"be a finite number in \[0, 1e\+06\]"),
    config_case("alpha", NAN, "be a finite number"),
    config_case("flatness", -0.5, "be a finite number"),
    config_case("lr", 0.0, r"be a finite number in \(0, 100\]"),
    config_case("lr", -1.0, "be a finite number"),
    config_case("lr", 1e300, r"be a finite number in \(0, 100\]"),
    config_case("lr", INF, "be a finite number"),
    config_case("lr", "1e-4", "be a number"),
    config_case("beta1", 1.0, r"be a finite number in \[0, 1\)"),
    config_case("beta1", -0.1, "be a finite number"),
    config_case("beta2", 1.0, r"be a finite number in \[0, 1\)"),
    config_case("lr_gamma", 0.0, r"be a finite number in \(0, 1\]"),
    config_case("lr_gamma", 1.5, "be a finite number"),
    config_case("grad_clip", 0.0, "be a finite number"),
    config_case("grad_clip", "none", "be a number"),
    config_case("epochs", 0, "be an integer >= 1"),
    config_case("epochs", 1.5, "be an integer"),
    config_case("epochs", True, "be an integer"),
    config_case("mcmc_steps", 10**6, "be an integer <= 100,000"),
    config_case("step_size", 0.0, "be a finite number"),
    config_case("step_size", 1e300, r"be a finite number in \(0, 10000\]"),
    config_case("mcmc_noise", -1.0, "be a finite number"),
    config_case("grad_clamp", 0.0, "be a finite number"),
    config_case("input_noise", NAN, "be a finite number"),
    config_case("buffer_capacity", 0, "be an integer >= 1"),
    config_case("buffer_capacity", 10**12, "be an integer <= 100,000,000"),
    config_case("reinit_prob", 1.5, r"be a finite number in \[0, 1\]"),
    config_case("value_range", (1.0, -1.0), r"be \(low, high\) with finite low < high"),
    config_case("value_range", "ab", r"be a pair \(low, high\)"),
    config_case("seed", -1, "be an integer >= 0"),
    config_case("seed", 2**70, "be an integer <="),
    config_case("seed", 1.5, "be an integer"),
    config_case("iters_per_epoch", 0, "be an integer >= 1"),
    config_case("val_batch_size", 0, "be an integer >= 1"),
    config_case("noise_images", 10**9, "be an integer <= 10,000,000"),
    config_case("precision", "fp16", "be one of"),
    config_case("channels_last", "yes", "be True or False"),
    config_case("compile", 1, "be True or False"),
    config_case("cuda_graph", None, "be True or False"),
    case("TrainConfig-several-bad-fields", lambda: TrainConfig(lr=-1.0, epochs=0, seed=-1),
         ValueError, "lr must .*epochs must .*seed must"),
    case("TrainConfig-flatness-needs-batch-2", lambda: TrainConfig(flatness=1.0, batch_size=1),
         ValueError, r"flatness > 0 needs batch_size >= 2"),
    case("TrainConfig-from-dict-unknown", lambda: TrainConfig.from_dict({"learning_rate": 1}),
         ValueError, r"unknown TrainConfig fields \['learning_rate'\]"),
]  # fmt: skip

TRAINING_CASES = [
    case("fit-data-list", lambda: run_fit(train=[[0.0]] * 4), TypeError,
         "train_data must be a torch.Tensor"),
    case("fit-data-numpy", lambda: run_fit(train=np.zeros((4, 1, 28, 28))), TypeError,
         "train_data must be a torch.Tensor"),
    case("fit-data-integer", lambda: run_fit(train=images(4, dtype=torch.uint8)), TypeError,
         "train_data must hold floating-point values, got torch.uint8"),
    case("fit-data-1d", lambda: run_fit(train=torch.zeros(8)), ValueError,
         r"train_data must be a non-empty batch .*\[8\]"),
    case("fit-data-nan", lambda: run_fit(train=images(4, NAN)), ValueError,
         "train_data contains NaN"),
    case("fit-data-out-of-range", lambda: run_fit(train=images(4, 255.0)), ValueError,
         r"train_data has values in \[255, 255\], outside value_range"),
    case("fit-fewer-examples-than-a-batch", lambda: run_fit(train=images(1)), ValueError,
         r"1 examples, fewer than one batch \(batch_size=2\)"),
    case("fit-val-data-other-shape",
         lambda: run_fit(val_data=torch.zeros(4, 1, 14, 14)), ValueError,
         r"val_data examples have shape \[1, 14, 14\], train_data examples \[1, 28, 28\]"),
    case("fit-val-data-nan", lambda: run_fit(val_data=images(4, NAN)), ValueError,
         "val_data contains NaN"),
    case("fit-buffer-other-shape", lambda: run_fit(buffer=ReplayBuffer((1, 8, 8), 8)),
         ValueError, r"buffer holds examples of shape \(1, 8, 8\), the data \(1, 28, 28\)"),
    case("fit-buffer-string", lambda: run_fit(buffer="replay"), TypeError,
         "buffer must be a ReplayBuffer"),
    case("fit-checkpoint-every-0", lambda: run_fit(checkpoint_every=0), ValueError,
         "checkpoint_every must be an integer >= 1"),
    case("fit-checkpoint-every-float", lambda: run_fit(checkpoint_every=1.5), TypeError,
         "checkpoint_every must be an integer"),
    case("fit-keep-epochs-without-dir", lambda: run_fit(keep_epochs=True), ValueError,
         "keep_epochs=True needs a checkpoint_dir"),
    case("fit-checkpoint-dir-is-a-file",
         lambda tmp: run_fit(checkpoint_dir=written(tmp, b"x", "file")), NotADirectoryError,
         "checkpoint folder .*file is a file"),
    case("fit-model-none", lambda: run_fit(model=None), TypeError,
         "model must be a torch.nn.Module"),
    case("fit-model-returns-logits", lambda: run_fit(model=cnn(10)), ValueError,
         r"one score per (example|image), shape \[2\], got \[2, 10\]"),
    case("fit-config-dict", lambda: run_fit(config={"lr": 0.1}), TypeError,
         "config must be a TrainConfig"),
    case("fit-device-tpu", lambda: run_fit(device="tpu"), ValueError, "device"),
    case("cd-loss-list-scores", lambda: contrastive_divergence_loss([1.0], [0.0], 0.1),
         TypeError, "real_score must be a torch.Tensor"),
    case("cd-loss-logits", lambda: contrastive_divergence_loss(torch.zeros(4, 10),
                                                               torch.zeros(4, 10), 0.1),
         ValueError, r"real_score must .*\[B\]"),
    case("cd-loss-alpha-negative",
         lambda: contrastive_divergence_loss(torch.zeros(4), torch.zeros(4), -1.0),
         ValueError, "alpha must be"),
    case("training-step-model-returns-logits", lambda: cd_step(model=cnn(10)), ValueError,
         r"one score per (example|image)"),
    case("training-step-config-none", lambda: cd_step(config=None), TypeError,
         "config must be a TrainConfig"),
    case("training-step-buffer-none", lambda: cd_step(buffer=None), TypeError,
         "buffer must be a ReplayBuffer"),
    case("training-step-integer-real", lambda: cd_step(real=images(dtype=torch.int64)),
         TypeError, "real must hold floating-point"),
    case("training-step-real-other-shape", lambda: cd_step(real=torch.zeros(2, 1, 14, 14)),
         ValueError, r"real .*\[1, 14, 14\]"),
    case("guard-enabled-string", lambda: DivergenceGuard(enabled="yes"), TypeError,
         "enabled must be True or False"),
    case("guard-max-abs-score-0", lambda: DivergenceGuard(max_abs_score=0.0), ValueError,
         "max_abs_score must be a finite number > 0"),
    case("guard-max-score-gap-negative", lambda: DivergenceGuard(max_score_gap=-1.0),
         ValueError, "max_score_gap must be"),
    case("guard-max-rollbacks-negative", lambda: DivergenceGuard(max_rollbacks=-1), ValueError,
         "max_rollbacks must be an integer >= 0"),
    case("guard-max-rollbacks-float", lambda: DivergenceGuard(max_rollbacks=1.5), TypeError,
         "max_rollbacks must be an integer"),
    case("guard-lr-factor-0", lambda: DivergenceGuard(lr_factor=0.0), ValueError,
         r"lr_factor must be a finite number in \(0, 1\]"),
    case("guard-lr-factor-above-1", lambda: DivergenceGuard(lr_factor=1.5), ValueError,
         "lr_factor must be"),
    case("guard-max-abs-loss-nan", lambda: DivergenceGuard(max_abs_loss=NAN), ValueError,
         "max_abs_loss must be a finite number"),
]  # fmt: skip


# --------------------------------------------------------------------- ebm_course.jem

JEM_CASES = [
    case("jem-net-string", lambda: JEM("cnn"), TypeError, "net must be a torch.nn.Module"),
    case("jem-net-one-output", lambda: JEM(cnn(1))(X), ValueError,
         r"JEM needs a network that returns logits \[B, C\] with C >= 2, got shape \[2\]"),
    case("jem-class-score-float-class", lambda: tiny_jem().class_score(X, 1.5), TypeError,
         "y must be an int or an integer tensor"),
    case("jem-class-score-bool-class", lambda: tiny_jem().class_score(X, True), TypeError,
         "y must be an int or an integer tensor"),
    case("jem-class-score-string-class", lambda: tiny_jem().class_score(X, "3"), TypeError,
         "y must be an int or an integer tensor"),
    case("jem-class-score-float-labels", lambda: tiny_jem().class_score(X, torch.zeros(2)),
         TypeError, "y must hold integer class indices, got dtype torch.float32"),
    case("jem-class-score-wrong-shape", lambda: tiny_jem().class_score(X, labels(0, 1, 2)),
         ValueError, r"y must have shape \[2\], got \[3\]"),
    case("jem-class-score-class-10", lambda: tiny_jem().class_score(X, 10), ValueError,
         r"y must lie in 0\.\.9"),
    case("jem-class-score-class-negative", lambda: tiny_jem().class_score(X, labels(-1, 0)),
         ValueError, r"y must lie in 0\.\.9"),
    case("jem-conditional-string-class", lambda: tiny_jem().conditional("3"), TypeError,
         "y must be an int or an integer tensor"),
    case("jem-conditional-not-a-jem", lambda: ClassConditionalScore(cnn(), 0), TypeError,
         "model must be a JEM, got CNNEnergy"),
    case("jem-detectors-not-a-jem", lambda: detector_scores(cnn(), X), TypeError,
         "model must be a JEM, got CNNEnergy"),
    case("jem-detectors-images-string", lambda: detector_scores(tiny_jem(), "images"),
         TypeError, "images must be a torch.Tensor"),
    case("jem-detectors-images-nan", lambda: detector_scores(tiny_jem(), X_NAN), ValueError,
         "images contains NaN"),
    case("jem-detectors-batch-size-0", lambda: detector_scores(tiny_jem(), X, 0), ValueError,
         "batch_size must be an integer >= 1"),
    case("jem-step-labels-wrong-shape", lambda: jem_step(y=labels(0)), ValueError,
         r"labels must have shape \[2\]"),
    case("jem-step-labels-float", lambda: jem_step(y=torch.zeros(2)), TypeError,
         "labels must hold integer class indices"),
    case("jem-step-labels-out-of-range", lambda: jem_step(y=labels(0, 10)), ValueError,
         r"labels must lie in 0\.\.9"),
    case("jem-step-images-list", lambda: jem_step(x=[[0.0]] * 2), TypeError,
         "images must be a torch.Tensor"),
    case("jem-step-images-integer", lambda: jem_step(x=images(dtype=torch.int64)), TypeError,
         "images must hold floating-point"),
    case("jem-step-buffer-none", lambda: jem_step(buffer=None), ValueError,
         "buffer must be a ReplayBuffer when generative_weight > 0"),
    case("jem-step-generative-weight-negative", lambda: jem_step(generative_weight=-1.0),
         ValueError, "generative_weight must be a finite number >= 0"),
    case("jem-step-not-a-jem", lambda: jem_step(model=cnn(10)), TypeError,
         "model must be a JEM"),
    case("fit-jem-not-a-jem", lambda: run_fit_jem(model=cnn(10)), TypeError,
         "model must be a JEM, got CNNEnergy"),
    case("fit-jem-images-list", lambda: run_fit_jem(x=[[0.0]] * 4), TypeError,
         "images must be a torch.Tensor"),
    case("fit-jem-images-nan", lambda: run_fit_jem(x=images(4, NAN)), ValueError,
         "images contains NaN"),
    case("fit-jem-images-out-of-range", lambda: run_fit_jem(x=images(4, 2.0)), ValueError,
         "images has values in .*outside value_range"),
    case("fit-jem-fewer-images-than-a-batch", lambda: run_fit_jem(x=images(1), y=labels(0)),
         ValueError, r"images holds 1 examples, fewer than one batch"),
    case("fit-jem-labels-list", lambda: run_fit_jem(y=[0, 1, 2, 3]), TypeError,
         "labels must be an integer tensor"),
    case("fit-jem-labels-float", lambda: run_fit_jem(y=torch.zeros(4)), TypeError,
         "labels must hold integer class indices"),
    case("fit-jem-labels-wrong-shape", lambda: run_fit_jem(y=labels(0, 1)), ValueError,
         r"labels must have shape \[4\], got \[2\]"),
    case("fit-jem-labels-out-of-range", lambda: run_fit_jem(y=labels(0, 1, 2, 10)),
         ValueError, r"labels must lie in 0\.\.9"),
    case("fit-jem-iterations-0", lambda: run_fit_jem(iterations=0), ValueError,
         "iterations must be an integer >= 1"),
    case("fit-jem-iterations-float", lambda: run_fit_jem(iterations=1.5), TypeError,
         "iterations must be an integer"),
    case("fit-jem-generative-weight-string", lambda: run_fit_jem(generative_weight="1"),
         TypeError, "generative_weight must be a number"),
    case("fit-jem-log-every-0", lambda: run_fit_jem(log_every=0), ValueError,
         "log_every must be an integer >= 1"),
    case("fit-jem-config-dict", lambda: run_fit_jem(config={"lr": 0.1}), TypeError,
         "config must be a TrainConfig"),
]  # fmt: skip


# -------------------------------------------------------------- ebm_course.objectives

OBJECTIVE_CASES = [
    case("dsm-x-list", lambda: dsm(Quadratic(), [[0.0, 0.0]]), TypeError,
         "x must be a torch.Tensor"),
    case("dsm-x-integer", lambda: dsm(Quadratic(), torch.zeros(4, 2, dtype=torch.int64)),
         TypeError, "x must hold floating-point"),
    case("dsm-x-1d", lambda: dsm(Quadratic(), torch.zeros(4)), ValueError,
         "x must be a non-empty batch"),
    case("dsm-x-nan", lambda: dsm(Quadratic(), torch.full((4, 2), NAN)), ValueError,
         "x contains NaN"),
    case("dsm-sigma-0", lambda: objectives.denoising_score_matching(Quadratic(), POINTS, 0.0),
         ValueError, "sigma must be a finite number > 0"),
    case("dsm-sigma-string",
         lambda: objectives.denoising_score_matching(Quadratic(), POINTS, "0.1"), TypeError,
         "sigma must be a number"),
    case("dsm-sigma-inf", lambda: objectives.denoising_score_matching(Quadratic(), POINTS, INF),
         ValueError, "sigma must be a finite number"),
    case("dsm-model-returns-two-scores", lambda: dsm(nn.Linear(2, 3), POINTS), ValueError,
         r"model must map a batch \[B, \.\.\.\] to scores \[B\]; for B = 8 it returned "
         r"shape \[8, 3\]"),
    case("dsm-model-none", lambda: dsm(None, POINTS), TypeError,
         "model must be a torch.nn.Module"),
    case("ssm-projections-0",
         lambda: objectives.sliced_score_matching(Quadratic(), POINTS, n_projections=0),
         ValueError, "n_projections must be an integer >= 1"),
    case("ssm-projections-float",
         lambda: objectives.sliced_score_matching(Quadratic(), POINTS, n_projections=1.5),
         TypeError, "n_projections must be an integer"),
    case("ssm-variance-reduced-string",
         lambda: objectives.sliced_score_matching(Quadratic(), POINTS, variance_reduced="yes"),
         TypeError, "variance_reduced must be True or False"),
    case("ssm-x-empty", lambda: objectives.sliced_score_matching(Quadratic(), torch.zeros(0, 2)),
         ValueError, "x must be a non-empty batch"),
    case("nce-noise-string",
         lambda: objectives.noise_contrastive_estimation(Quadratic(), POINTS, "gaussian"),
         TypeError, "noise must be a torch.distributions.Distribution"),
    case("nce-noise-ratio-0",
         lambda: objectives.noise_contrastive_estimation(Quadratic(), POINTS, NORMAL_2D, 0),
         ValueError, "noise_ratio must be an integer >= 1"),
    case("nce-noise-ratio-float",
         lambda: objectives.noise_contrastive_estimation(Quadratic(), POINTS, NORMAL_2D, 1.5),
         TypeError, "noise_ratio must be an integer"),
    case("nce-noise-samples-wrong-shape",
         lambda: objectives.noise_contrastive_estimation(
             Quadratic(), POINTS, NORMAL_2D, 1, noise_samples=torch.zeros(3, 2)),
         ValueError, r"noise_samples must have shape \[8, 2\]"),
    case("nce-noise-samples-list",
         lambda: objectives.noise_contrastive_estimation(
             Quadratic(), POINTS, NORMAL_2D, 1, noise_samples=[[0.0, 0.0]] * 8),
         TypeError, "noise_samples must be a torch.Tensor"),
    case("nce-noise-samples-nan",
         lambda: objectives.noise_contrastive_estimation(
             Quadratic(), POINTS, NORMAL_2D, 1, noise_samples=torch.full((8, 2), NAN)),
         ValueError, "noise_samples contains NaN"),
    case("nce-per-coordinate-noise",
         lambda: objectives.noise_contrastive_estimation(
             Quadratic(), POINTS, torch.distributions.Normal(0.0, 1.0),
             noise_samples=torch.zeros(8, 2)),
         ValueError, "noise.log_prob must give one value per example.*Independent"),
    case("fit-objective-data-list", lambda: fit_objective(data=[[0.0, 0.0]] * 8), TypeError,
         "data must be a torch.Tensor"),
    case("fit-objective-data-integer", lambda: fit_objective(data=torch.zeros(8, 2).long()),
         TypeError, "data must hold floating-point"),
    case("fit-objective-data-1d", lambda: fit_objective(data=torch.zeros(8)), ValueError,
         "data must be a non-empty batch"),
    case("fit-objective-data-inf", lambda: fit_objective(data=torch.full((8, 2), INF)),
         ValueError, "data contains NaN or Inf"),
    case("fit-objective-steps-0", lambda: fit_objective(steps=0), ValueError,
         "steps must be an integer >= 1"),
    case("fit-objective-steps-float", lambda: fit_objective(steps=1.5), TypeError,
         "steps must be an integer"),
    case("fit-objective-batch-larger-than-data", lambda: fit_objective(batch_size=9),
         ValueError, "batch_size 9 exceeds the 8 examples of data"),
    case("fit-objective-lr-0", lambda: fit_objective(lr=0.0), ValueError,
         "lr must be a finite number > 0"),
    case("fit-objective-lr-string", lambda: fit_objective(lr="fast"), TypeError,
         "lr must be a number"),
    case("fit-objective-eval-every-0", lambda: fit_objective(eval_every=0), ValueError,
         "eval_every must be an integer >= 1"),
    case("fit-objective-loss-fn-string", lambda: fit_objective(loss_fn="dsm"), TypeError,
         "loss_fn must be callable"),
    case("fit-objective-loss-not-scalar",
         lambda: fit_objective(loss_fn=lambda m, b: m(b)), ValueError,
         r"loss_fn must return a scalar .*\[4\]"),
    case("fit-objective-evaluate-string", lambda: fit_objective(evaluate="nll"), TypeError,
         "evaluate must be callable"),
    case("fit-objective-model-none", lambda: fit_objective(model=None), TypeError,
         "model must be a torch.nn.Module"),
    case("fit-objective-nan-model", lambda: fit_objective(model=NaNScore(), steps=3),
         TrainingDiverged, "loss became nan at iteration 1"),
    case("persistent-config-reinit-1", lambda: objectives.persistent_config(TrainConfig(), 1.0),
         ValueError, r"reinit_prob must be .*\[0, 1\)"),
    case("persistent-config-reinit-string",
         lambda: objectives.persistent_config(TrainConfig(), "0.1"), TypeError,
         "reinit_prob must be a number"),
    case("persistent-config-dict", lambda: objectives.persistent_config({"lr": 1.0}),
         TypeError, "config must be a TrainConfig"),
    case("short-run-config-steps-0",
         lambda: objectives.short_run_config(TrainConfig(), mcmc_steps=0), ValueError,
         "mcmc_steps must be an integer >= 1"),
    case("short-run-config-none", lambda: objectives.short_run_config(None), TypeError,
         "config must be a TrainConfig"),
    case("timed-evaluation-every-0", lambda: objectives.TimedEvaluation(lambda m: 0.0, 0),
         ValueError, "every must be an integer >= 1"),
    case("timed-evaluation-evaluate-none", lambda: objectives.TimedEvaluation(None, 1),
         TypeError, "evaluate must be callable"),
    case("timed-evaluation-record-before-start",
         lambda: objectives.TimedEvaluation(lambda m: 0.0, 1).record(1, Quadratic()),
         RuntimeError, r"call start\(model\) before"),
]  # fmt: skip


# ----------------------------------------------------------------- ebm_course.metrics

METRIC_CASES = [
    case("auroc-in-empty", lambda: metrics.auroc([], [1.0]), ValueError, "in_scores is empty"),
    case("auroc-out-empty", lambda: metrics.auroc([1.0], []), ValueError,
         "out_scores is empty"),
    case("auroc-in-nan", lambda: metrics.auroc([NAN, 1.0], [1.0]), ValueError,
         "in_scores contains NaN"),
    case("auroc-out-inf", lambda: metrics.auroc([1.0], [INF]), ValueError,
         "out_scores contains NaN or Inf"),
    case("auroc-in-2d-list", lambda: metrics.auroc([[1.0, 2.0]], [1.0]), ValueError,
         r"in_scores must be one-dimensional, got shape \(1, 2\)"),
    case("auroc-out-2d-tensor", lambda: metrics.auroc([1.0], torch.zeros(3, 2)), ValueError,
         "out_scores must be one-dimensional"),
    case("auroc-in-none", lambda: metrics.auroc(None, [1.0]), TypeError,
         "in_scores must be .*numbers"),
    case("auroc-out-string", lambda: metrics.auroc([1.0], "abc"), TypeError,
         "out_scores must be .*numbers"),
    case("frechet-1d", lambda: metrics.frechet_distance(np.zeros(5), np.zeros((5, 2))),
         ValueError, r"feats_a must be \[N, D\] with N >= 2"),
    case("frechet-one-row", lambda: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((1, 2))),
         ValueError, r"feats_b must be \[N, D\] with N >= 2 and D >= 1, got \(1, 2\)"),
    case("frechet-empty", lambda: metrics.frechet_distance(np.zeros((0, 2)), np.zeros((3, 2))),
         ValueError, r"feats_a must be \[N, D\]"),
    case("frechet-dims-differ",
         lambda: metrics.frechet_distance(np.zeros((3, 2)), np.zeros((3, 4))), ValueError,
         "feats_a and feats_b .*differ.*2.*4"),
    case("frechet-nan",
         lambda: metrics.frechet_distance(np.zeros((3, 2)), np.full((3, 2), NAN)), ValueError,
         "feats_b contains NaN"),
    case("frechet-string", lambda: metrics.frechet_distance("abc", np.zeros((3, 2))),
         TypeError, "feats_a must be .*numbers"),
    case("frechet-none", lambda: metrics.frechet_distance(np.zeros((3, 2)), None), TypeError,
         "feats_b must be .*numbers"),
    case("class-entropy-empty", lambda: metrics.class_entropy([]), ValueError,
         "histogram must be a non-empty"),
    case("class-entropy-negative", lambda: metrics.class_entropy([-1, 2]), ValueError,
         "histogram must be .*counts >= 0"),
    case("class-entropy-all-zero", lambda: metrics.class_entropy([0] * 10), ValueError,
         "histogram must be .*positive sum"),
    case("class-entropy-nan", lambda: metrics.class_entropy([NAN, 1.0]), ValueError,
         "histogram .*(NaN|finite)"),
    case("class-entropy-inf", lambda: metrics.class_entropy([INF, 1.0]), ValueError,
         "histogram .*(Inf|finite)"),
    case("class-entropy-2d", lambda: metrics.class_entropy([[1, 2], [3, 4]]), ValueError,
         "histogram must be a non-empty list"),
    case("class-entropy-none", lambda: metrics.class_entropy(None), TypeError,
         "histogram must be .*numbers"),
    case("class-entropy-string", lambda: metrics.class_entropy("abc"), TypeError,
         "histogram must be .*numbers"),
    case("scores-images-list", lambda: metrics.scores(cnn(), [[0.0]]), TypeError,
         "images must be a torch.Tensor"),
    case("scores-images-three-channels", lambda: metrics.scores(cnn(), torch.zeros(2, 3, 28, 28)),
         ValueError, r"images must be images of shape \[B, 1, 28, 28\], got \[2, 3, 28, 28\]"),
    case("scores-images-uint8", lambda: metrics.scores(cnn(), images(dtype=torch.uint8)),
         TypeError, "images must hold floating-point values, got torch.uint8"),
    case("scores-images-nan", lambda: metrics.scores(cnn(), X_NAN), ValueError,
         "images contains NaN"),
    case("scores-images-empty", lambda: metrics.scores(cnn(), images(0)), ValueError,
         "images must be a non-empty batch"),
    case("scores-model-returns-logits", lambda: metrics.scores(cnn(10), X), ValueError,
         r"model must return one score per image, shape \[2\], got \[2, 10\]"),
    case("scores-model-none", lambda: metrics.scores(None, X), TypeError,
         "model must be a torch.nn.Module"),
    case("scores-batch-size-0", lambda: metrics.scores(cnn(), X, 0), ValueError,
         "batch_size must be an integer >= 1"),
    case("ood-table-fashion-string", lambda: metrics.ood_table(cnn(), X, "fashion"), TypeError,
         "fashion_test must be a torch.Tensor"),
    case("ood-table-mnist-small-images",
         lambda: metrics.ood_table(cnn(), torch.zeros(2, 1, 14, 14), X), ValueError,
         r"mnist_test must be images of shape \[B, 1, 28, 28\]"),
    case("ood-table-mnist-nan", lambda: metrics.ood_table(cnn(), X_NAN, X), ValueError,
         "mnist_test contains NaN"),
    case("gaussian-noise-string", lambda: metrics.add_gaussian_noise("x"), TypeError,
         "x must be a torch.Tensor"),
    case("gaussian-noise-sigma-negative", lambda: metrics.add_gaussian_noise(X, -1.0),
         ValueError, "sigma must be a finite number >= 0"),
    case("flip-list", lambda: metrics.flip([1, 2]), TypeError, "x must be a torch.Tensor"),
    case("tiny-3d", lambda: metrics.tiny(torch.zeros(2, 28, 28)), ValueError,
         r"x must be .*\[B, 1, 28, 28\]"),
    case("sample-quality-n-1", lambda: sample_quality(n=1), ValueError,
         "n must be an integer >= 2"),
    case("sample-quality-n-float", lambda: sample_quality(n=2.5), TypeError,
         "n must be an integer"),
    case("sample-quality-steps-0", lambda: sample_quality(steps=0), ValueError,
         "steps must be an integer >= 1"),
    case("sample-quality-batch-size-0", lambda: sample_quality(batch_size=0), ValueError,
         "batch_size must be an integer >= 1"),
    case("sample-quality-three-real-images", lambda: sample_quality(real_images=images(3)),
         ValueError, "real_images must hold at least 4 images, got 3"),
    case("sample-quality-real-images-list", lambda: sample_quality(real_images=[0.0]),
         TypeError, "real_images must be a torch.Tensor"),
    case("sample-quality-classifier-none", lambda: sample_quality(classifier=None), TypeError,
         "classifier must be .*MNISTClassifier"),
    case("sample-quality-model-none", lambda: sample_quality(model=None), TypeError,
         "model must be a torch.nn.Module"),
    case("evaluate-n-samples-1", lambda tmp: metrics.evaluate(cnn(), n_samples=1, data_root=tmp),
         ValueError, "n_samples must be an integer >= 2"),
    case("evaluate-seed-negative", lambda tmp: metrics.evaluate(cnn(), seed=-1, data_root=tmp),
         ValueError, "seed must be an integer >= 0"),
    case("evaluate-model-none", lambda tmp: metrics.evaluate(None, data_root=tmp), TypeError,
         "model must be a torch.nn.Module"),
    case("evaluate-no-data", lambda tmp: metrics.evaluate(cnn(), data_root=tmp),
         FileNotFoundError, r"MNIST not found at .*MNIST/raw"),
    case("format-table-empty", lambda: metrics.format_table({}), ValueError,
         "results is empty"),
    case("format-table-not-nested", lambda: metrics.format_table({"model": 5}), TypeError,
         r"results\['model'\] must be a dict"),
]  # fmt: skip


# ------------------------------------------------------------------- ebm_course.plots

PLOT_CASES = [
    case("image-grid-string", lambda: plots.image_grid("img"), TypeError,
         "images must be a torch.Tensor, got str"),
    case("image-grid-2d", lambda: plots.image_grid(torch.zeros(28, 28)), ValueError,
         r"images must have shape \[B, C, H, W\].*\(28, 28\)"),
    case("image-grid-two-channels", lambda: plots.image_grid(torch.zeros(2, 2, 8, 8)),
         ValueError, r"C in \{1, 3\}, got shape \(2, 2, 8, 8\)"),
    case("image-grid-empty", lambda: plots.image_grid(torch.zeros(0, 1, 8, 8)), ValueError,
         r"B >= 1 .*\(0, 1, 8, 8\)"),
    case("image-grid-nan", lambda: plots.image_grid(X_NAN), ValueError,
         "images contains NaN"),
    case("image-grid-nrow-0", lambda: plots.image_grid(X, nrow=0), ValueError,
         "nrow must be an integer >= 1"),
    case("image-grid-nrow-string", lambda: plots.image_grid(X, nrow="8"), TypeError,
         "nrow must be an integer"),
    case("image-grid-padding-negative", lambda: plots.image_grid(X, padding=-1), ValueError,
         "padding must be an integer >= 0"),
    case("image-grid-value-range-reversed", lambda: plots.image_grid(X, value_range=(1, -1)),
         ValueError, "value_range must be .*low < high"),
    case("image-grid-pad-value-string", lambda: plots.image_grid(X, pad_value="grey"),
         TypeError, "pad_value must be a number"),
    case("image-grid-ax-string", lambda: plots.image_grid(X, ax="left"), TypeError,
         "ax must be a matplotlib Axes"),
    case("trajectory-list", lambda: plots.plot_trajectory([[0.0]]), TypeError,
         "trajectory must be a torch.Tensor"),
    case("trajectory-4d", lambda: plots.plot_trajectory(torch.zeros(4, 1, 6, 6)), ValueError,
         r"trajectory must have shape \[steps, B, C, H, W\]"),
    case("trajectory-vis-steps-too-many", lambda: plots.plot_trajectory(trajectory(), 5),
         ValueError, r"vis_steps \(5\) must be <= the number of steps in the trajectory \(4\)"),
    case("trajectory-vis-steps-0", lambda: plots.plot_trajectory(trajectory(), 0), ValueError,
         "vis_steps must be an integer >= 1"),
    case("trajectory-vis-steps-float", lambda: plots.plot_trajectory(trajectory(), 1.5),
         TypeError, "vis_steps must be an integer"),
    case("trajectory-max-chains-0",
         lambda: plots.plot_trajectory(trajectory(), 2, max_chains=0), ValueError,
         "max_chains must be an integer >= 1"),
    case("trajectory-start-wrong-shape",
         lambda: plots.plot_trajectory(trajectory(), 2, start=torch.zeros(3, 1, 6, 6)),
         ValueError, r"start must have shape \(2, 1, 6, 6\)"),
    case("trajectory-start-list", lambda: plots.plot_trajectory(trajectory(), 2, start=[0.0]),
         TypeError, "start must be a torch.Tensor"),
    case("history-none", lambda: plots.plot_history(None), TypeError,
         "history must be a training History"),
    case("history-list", lambda: plots.plot_history([1.0, 2.0]), TypeError,
         "history must be a training History .* got list"),
    case("history-empty", lambda: plots.plot_history({}), ValueError, "nothing to plot"),
    case("history-unknown-key", lambda: plots.plot_history({"loss": [1.0]}, keys=["nope"]),
         ValueError, r"history has no \(non-empty\) values for \['nope'\]"),
    case("history-values-not-a-list", lambda: plots.plot_history({"loss": 3}), TypeError,
         r"history\['loss'\] must be a list"),
    case("history-values-strings", lambda: plots.plot_history({"loss": ["a", "b"]}),
         TypeError, r"history\['loss'\] must .*numbers"),
    case("history-keys-number", lambda: plots.plot_history({"loss": [1.0]}, keys=5), TypeError,
         "keys must be"),
    case("histograms-list", lambda: plots.plot_score_histograms([1.0, 2.0]), TypeError,
         "scores must be a mapping"),
    case("histograms-empty-mapping", lambda: plots.plot_score_histograms({}), ValueError,
         "scores must be a non-empty mapping"),
    case("histograms-empty-set", lambda: plots.plot_score_histograms({"real": []}), ValueError,
         r"scores\['real'\] is empty"),
    case("histograms-nan", lambda: plots.plot_score_histograms({"fake": [0.0, NAN]}),
         ValueError, r"scores\['fake'\] has 1 non-finite"),
    case("histograms-strings", lambda: plots.plot_score_histograms({"real": "abc"}), TypeError,
         r"scores\['real'\] must be .*numbers"),
    case("histograms-none", lambda: plots.plot_score_histograms({"real": None}), TypeError,
         r"scores\['real'\] must be .*numbers"),
    case("histograms-bins-0", lambda: plots.plot_score_histograms({"a": [1.0]}, bins=0),
         ValueError, "bins must be an integer >= 1"),
    case("histograms-bins-float", lambda: plots.plot_score_histograms({"a": [1.0]}, bins=2.5),
         TypeError, "bins must be an integer"),
    case("density-score-fn-string", lambda: plots.plot_density_2d("f", (-1, 1), (-1, 1)),
         TypeError, "score_fn must be callable"),
    case("density-xlim-reversed", lambda: plots.plot_density_2d(gauss_score, (1, -1), (-1, 1)),
         ValueError, "xlim must be .*low < high"),
    case("density-xlim-number", lambda: plots.plot_density_2d(gauss_score, 5, (-1, 1)),
         TypeError, "xlim must be a pair"),
    case("density-ylim-nan", lambda: plots.plot_density_2d(gauss_score, (-1, 1), (0, NAN)),
         ValueError, "ylim must be .*finite"),
    case("density-n-1", lambda: plots.plot_density_2d(gauss_score, (-1, 1), (-1, 1), n=1),
         ValueError, "n must be an integer >= 2"),
    case("density-n-float", lambda: plots.plot_density_2d(gauss_score, (-1, 1), (-1, 1), 2.5),
         TypeError, "n must be an integer"),
    case("density-n-huge", lambda: plots.plot_density_2d(gauss_score, (-1, 1), (-1, 1), 10**6),
         ValueError, "n must be an integer <="),
    case("density-data-three-columns",
         lambda: plots.plot_density_2d(gauss_score, (-1, 1), (-1, 1), 5, data=torch.zeros(4, 3)),
         ValueError, r"data must be a tensor of shape \[M, 2\], got \(4, 3\)"),
    case("density-data-list",
         lambda: plots.plot_density_2d(gauss_score, (-1, 1), (-1, 1), 5, data=[[0.0, 0.0]]),
         TypeError, "data must be a torch.Tensor"),
    case("density-score-wrong-shape",
         lambda: plots.plot_density_2d(lambda x: x, (-1, 1), (-1, 1), 5), ValueError,
         r"score_fn must map \[N, 2\] points to scores \[N\]; for N = 25 it returned "
         r"shape \(25, 2\)"),
    case("density-score-nan",
         lambda: plots.plot_density_2d(lambda x: x[:, 0] * NAN, (-1, 1), (-1, 1), 5),
         ValueError, "score_fn returned NaN"),
]  # fmt: skip


# --------------------------------------------------------------------- ebm_course.toy

TOY_CASES = [
    case("toy-sample-unknown", lambda: toy.sample("spirals", 10), ValueError,
         "unknown toy data set 'spirals'; choose one of"),
    case("toy-sample-none-name", lambda: toy.sample(None, 10), ValueError,
         "unknown toy data set None"),
    case("toy-sample-n-0", lambda: toy.sample("rings", 0), ValueError,
         "n must be an integer >= 1"),
    case("toy-sample-n-float", lambda: toy.sample("rings", 2.5), TypeError,
         "n must be an integer"),
    case("toy-sample-n-string", lambda: toy.sample("rings", "10"), TypeError,
         "n must be an integer"),
    case("toy-sample-n-huge", lambda: toy.sample("rings", 10**12), ValueError,
         "n must be an integer <="),
    case("toy-true-density-unknown", lambda: toy.true_log_density("spirals", POINTS),
         ValueError, "unknown toy data set"),
    case("toy-true-density-3-columns",
         lambda: toy.true_log_density("rings", torch.zeros(4, 3)), ValueError,
         r"points must be a tensor of shape \[N, 2\], got \(4, 3\)"),
    case("toy-true-density-list", lambda: toy.true_log_density("rings", [[0.0, 0.0]]),
         TypeError, "points must be a torch.Tensor"),
    case("toy-true-density-nan",
         lambda: toy.true_log_density("rings", torch.full((2, 2), NAN)), ValueError,
         "points contains NaN"),
    case("toy-log-partition-wrong-shape", lambda: toy.log_partition(lambda x: x), ValueError,
         r"score_fn must map \[N, 2\] points to scores \[N\]"),
    case("toy-log-partition-nan", lambda: toy.log_partition(lambda x: x[:, 0] * NAN),
         ValueError, "score_fn returned NaN"),
    case("toy-log-partition-batch-0", lambda: toy.log_partition(gauss_score, batch_size=0),
         ValueError, "batch_size must be an integer >= 1"),
    case("toy-log-partition-grid-string", lambda: toy.log_partition(gauss_score, "fine"),
         TypeError, "grid must be a Grid"),
    case("toy-log-partition-score-none", lambda: toy.log_partition(None), TypeError,
         "score_fn must be callable"),
    case("toy-log-density-3-columns", lambda: toy.log_density(gauss_score, torch.zeros(3, 3)),
         ValueError, r"points must be a tensor of shape \[N, 2\]"),
    case("toy-nll-outside-grid", lambda: toy.nll(gauss_score, torch.tensor([[1.5, 0.0]])),
         ValueError, r"data must lie inside the grid square \(-1.0, 1.0\)"),
    case("toy-nll-empty", lambda: toy.nll(gauss_score, torch.zeros(0, 2)), ValueError,
         "data must hold at least one point"),
    case("toy-nll-nan", lambda: toy.nll(gauss_score, torch.full((2, 2), NAN)), ValueError,
         "data contains NaN"),
    case("toy-nll-list", lambda: toy.nll(gauss_score, [[0.0, 0.0]]), TypeError,
         "data must be a torch.Tensor"),
    case("toy-grid-reversed", lambda: toy.Grid(lim=(1.0, -1.0)), ValueError,
         "lim must be .*low < high"),
    case("toy-grid-lim-string", lambda: toy.Grid(lim="ab"), TypeError, "lim must be a pair"),
    case("toy-grid-n-0", lambda: toy.Grid(n=0), ValueError, "n must be an integer >= 1"),
    case("toy-grid-n-float", lambda: toy.Grid(n=2.5), TypeError, "n must be an integer"),
    case("toy-grid-n-huge", lambda: toy.Grid(n=10**6), ValueError,
         "n must be an integer <= 10,000"),
    case("toy-gaussian-std-0", lambda: toy.GaussianScore(std=0.0), ValueError,
         "std must be .*> 0"),
    case("toy-gaussian-std-string", lambda: toy.GaussianScore(std="1"), TypeError,
         "std must be a number"),
    case("toy-gaussian-mean-3d", lambda: toy.GaussianScore(mean=(0.0, 0.0, 0.0)), ValueError,
         r"mean must be a 2-vector, got shape \(3,\)"),
    case("toy-gaussian-mean-string", lambda: toy.GaussianScore(mean="ab"), TypeError,
         "mean must be .*numbers"),
    case("toy-gaussian-points-3d", lambda: toy.GaussianScore()(torch.zeros(3, 3)), ValueError,
         r"x must be a tensor of shape \[N, 2\]"),
    case("toy-mixture-negative-weight", lambda: toy.MixtureScore([-1.0], [[0, 0]], [0.1]),
         ValueError, "weights and stds must be positive"),
    case("toy-mixture-shapes", lambda: toy.MixtureScore([1.0, 1.0], [[0, 0]], [0.1]),
         ValueError, r"need weights \[K\], means \[K, 2\] and stds \[K\]"),
    case("toy-mixture-temperature-0", lambda: toy.MixtureScore([1.0], [[0, 0]], [0.1], 0.0),
         ValueError, "temperature must be .*> 0"),
    case("toy-mixture-temperature-string",
         lambda: toy.MixtureScore([1.0], [[0, 0]], [0.1], "hot"), TypeError,
         "temperature must be a number"),
    case("toy-plot-comparison-3-columns",
         lambda: toy.plot_comparison(torch.zeros(4, 3), gauss_score), ValueError,
         r"data must be a tensor of shape \[N, 2\]"),
]  # fmt: skip


# -------------------------------------------------------------------- ebm_course.data

IMAGES_T10K, LABELS_T10K = "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"


def idx(kind, n=4, dims=None):
    """A valid IDX file (uint8): ``n`` 28x28 images or ``n`` labels, unless ``dims``."""
    ndim = 3 if kind == "images" else 1
    dims = dims or ((n, 28, 28) if kind == "images" else (n,))
    header = bytes((0, 0, 8, ndim)) + b"".join(d.to_bytes(4, "big") for d in dims)
    return header + bytes(math.prod(dims))


def mnist_root(tmp, replace=None, folder="MNIST"):
    """A dataset root with four small valid IDX files, some replaced by ``replace``."""
    raw = tmp / folder / "raw"
    raw.mkdir(parents=True)
    files = {f"{split}-{kind}-idx{3 if kind == 'images' else 1}-ubyte": idx(kind)
             for split in ("train", "t10k") for kind in ("images", "labels")}  # fmt: skip
    files.update(replace or {})
    for name, content in files.items():
        (raw / name).write_bytes(content)
    return tmp


def load_test_split(tmp, replace, **kwargs):
    return data.load_dataset("mnist", train=False, root=mnist_root(tmp, replace), **kwargs)


def npz(tmp, **arrays):
    path = tmp / "sample.npz"
    np.savez(path, **arrays)
    return path


DATA_CASES = [
    case("data-unknown-name", lambda: data.load_dataset("cifar10"), ValueError,
         "unknown dataset 'cifar10'; valid names: mnist, fashion_mnist"),
    case("data-name-number", lambda: data.load_dataset(42), ValueError, "unknown dataset 42"),
    case("data-root-is-a-file",
         lambda tmp: data.load_dataset("mnist", root=written(tmp, b"x", "root.txt")),
         NotADirectoryError, "dataset root .*root.txt exists but is not a folder"),
    case("data-fashion-missing", lambda tmp: data.load_fashion_mnist(root=tmp, download=False),
         FileNotFoundError, r"FashionMNIST not found at .*FashionMNIST/raw"),
    case("data-mnist-missing-no-fallback",
         lambda tmp: data.load_mnist(root=tmp, download=False, fallback=False),
         FileNotFoundError, r"MNIST not found at .*missing: train-images-idx3-ubyte"),
    case("data-idx-truncated", lambda tmp: load_test_split(tmp, {IMAGES_T10K: idx("images")[:500]}),
         ValueError, rf"{IMAGES_T10K}.*(truncated|bytes)"),
    case("data-idx-garbage",
         lambda tmp: load_test_split(tmp, {IMAGES_T10K: b"not an IDX file at all" * 8}),
         ValueError, rf"corrupt .*{IMAGES_T10K}"),
    case("data-idx-empty", lambda tmp: load_test_split(tmp, {IMAGES_T10K: b""}), ValueError,
         rf"corrupt .*{IMAGES_T10K}"),
    case("data-idx-labels-in-place-of-images",
         lambda tmp: load_test_split(tmp, {IMAGES_T10K: idx("labels")}), ValueError,
         rf"corrupt .*{IMAGES_T10K}"),
    case("data-idx-wrong-image-size",
         lambda tmp: load_test_split(tmp, {IMAGES_T10K: idx("images", dims=(4, 28, 27))}),
         ValueError, rf"corrupt .*{IMAGES_T10K}.*28, 27"),
    case("data-idx-garbage-labels",
         lambda tmp: load_test_split(tmp, {LABELS_T10K: b"\xff" * 30}), ValueError,
         rf"corrupt .*{LABELS_T10K}"),
    case("data-idx-count-mismatch",
         lambda tmp: load_test_split(tmp, {LABELS_T10K: idx("labels", 3)}), ValueError,
         rf"{IMAGES_T10K} holds 4 images but .*{LABELS_T10K} 3 labels"),
    case("data-idx-garbage-train-split",
         lambda tmp: data.load_dataset("mnist", root=mnist_root(
             tmp, {"train-images-idx3-ubyte": b"garbage"})),
         ValueError, "corrupt .*train-images-idx3-ubyte"),
    case("data-idx-garbage-fashion",
         lambda tmp: data.load_fashion_mnist(
             train=False, root=mnist_root(tmp, {IMAGES_T10K: b"garbage"}, "FashionMNIST")),
         ValueError, rf"corrupt .*FashionMNIST/raw/{IMAGES_T10K}"),
    case("data-unknown-keyword", lambda: data.load_mnist(bogus=1), TypeError,
         "unexpected keyword argument.*bogus"),
    case("to-tensors-list", lambda: data.to_tensors([1, 2]), TypeError,
         "dataset must be a .*Dataset"),
    case("to-tensors-limit-negative", lambda: data.to_tensors(data.MNISTSample(), limit=-1),
         ValueError, "limit must be .*>= 0"),
    case("to-tensors-limit-float", lambda: data.to_tensors(data.MNISTSample(), limit=2.5),
         TypeError, "limit must be an integer"),
    case("to-tensors-pil-items",
         lambda: data.to_tensors(data.MNISTSample(transform=lambda img: img), limit=2),
         TypeError, "item 0 is a Image, not a tensor"),
    case("sample-missing-file", lambda tmp: data.MNISTSample(tmp / "none.npz"),
         FileNotFoundError, "none.npz"),
    case("sample-garbage-file", lambda tmp: data.MNISTSample(written(tmp, b"junk", "s.npz")),
         ValueError, "s.npz"),
    case("sample-missing-array", lambda tmp: data.MNISTSample(npz(tmp, pictures=np.zeros(3))),
         ValueError, r"sample.npz .*'images'"),
    case("sample-wrong-shapes",
         lambda tmp: data.MNISTSample(npz(tmp, images=np.zeros((3, 28)), labels=np.zeros(3))),
         ValueError, r"sample.npz: expected images \[N, 28, 28\]"),
]  # fmt: skip


def test_the_synthetic_idx_root_is_valid(tmp_path):
    """The corrupt-file cases above differ from this valid root only by the named file."""
    images_, labels_ = data.to_tensors(load_test_split(tmp_path, {}))
    assert images_.shape == (4, 1, 28, 28) and labels_.tolist() == [0, 0, 0, 0]


# ------------------------------------- models, classifier, pretrained, checkpoint files


def clf_state(**changes):
    state = MNISTClassifier().state_dict()
    state.update(changes)
    return state


MODEL_CASES = [
    case("cnn-hidden-odd", lambda: CNNEnergy(hidden_features=3), ValueError,
         "hidden_features must be an even integer >= 2, got 3"),
    case("cnn-hidden-0", lambda: CNNEnergy(hidden_features=0), ValueError,
         "hidden_features must be an (even )?integer >= 2"),
    case("cnn-hidden-string", lambda: CNNEnergy(hidden_features="32"), TypeError,
         "hidden_features must be an integer"),
    case("cnn-hidden-float", lambda: CNNEnergy(hidden_features=32.0), TypeError,
         "hidden_features must be an integer"),
    case("cnn-hidden-bool", lambda: CNNEnergy(hidden_features=True), TypeError,
         "hidden_features must be an integer"),
    case("cnn-hidden-huge", lambda: CNNEnergy(hidden_features=2**20), ValueError,
         "hidden_features must be an integer <="),
    case("cnn-out-dim-0", lambda: CNNEnergy(out_dim=0), ValueError,
         "out_dim must be an integer >= 1"),
    case("cnn-out-dim-float", lambda: CNNEnergy(out_dim=1.5), TypeError,
         "out_dim must be an integer"),
    case("cnn-forward-list", lambda: cnn()([[0.0]]), TypeError,
         "CNNEnergy expects a torch.Tensor"),
    case("cnn-forward-three-channels", lambda: cnn()(torch.zeros(2, 3, 28, 28)), ValueError,
         r"CNNEnergy expects images of shape \[B, 1, 28, 28\], got \[2, 3, 28, 28\]"),
    case("cnn-forward-2d", lambda: cnn()(torch.zeros(28, 28)), ValueError,
         r"\[B, 1, 28, 28\], got \[28, 28\]"),
    case("cnn-forward-uint8", lambda: cnn()(images(dtype=torch.uint8)), TypeError,
         "floating-point images, got torch.uint8"),
    case("cnn-forward-float64", lambda: cnn()(X.double()), ValueError,
         "torch.float32 weights but got .* torch.float64"),
    case("mlp-in-features-0", lambda: MLPEnergy(in_features=0), ValueError,
         "in_features must be an integer >= 1, got 0"),
    case("mlp-in-features-string", lambda: MLPEnergy(in_features="2"), TypeError,
         "in_features must be an integer"),
    case("mlp-depth-0", lambda: MLPEnergy(depth=0), ValueError, "depth"),
    case("mlp-forward-3-columns", lambda: MLPEnergy()(torch.zeros(7, 3)), ValueError,
         r"MLPEnergy expects points of shape \[B, 2\], got \[7, 3\]"),
    case("mlp-forward-float64", lambda: MLPEnergy()(POINTS.double()), ValueError,
         "torch.float32 weights but got .* torch.float64"),
    case("load-energy-missing", lambda tmp: models.load_energy(tmp / "nope.pt"),
         FileNotFoundError, "checkpoint not found: .*nope.pt"),
    case("load-energy-garbage", lambda tmp: models.load_energy(written(tmp)), ValueError,
         "could not read checkpoint .*garbage.pt"),
    case("load-energy-empty-file", lambda tmp: models.load_energy(written(tmp, b"")),
         ValueError, "could not read checkpoint .*garbage.pt"),
    case("load-energy-not-a-dict", lambda tmp: models.load_energy(saved(tmp, [1, 2])),
         ValueError, r"file.pt is not an ebm_course checkpoint \(got list\)"),
    case("load-energy-nan-weights", lambda tmp: models.load_energy(saved(tmp, nan_state())),
         ValueError, r"file.pt has non-finite \(NaN or Inf\) weights in \['cnn_layers.0.weight'"),
    case("load-energy-inf-weights-in-run-checkpoint",
         lambda tmp: models.load_energy(saved(tmp, {"model": nan_state(INF)})), ValueError,
         "non-finite .*weights"),
    case("load-energy-classifier-10-outputs",
         lambda tmp: models.load_energy(saved(tmp, {"model": cnn(10).state_dict()})),
         ValueError, "file.pt holds a network with 10 outputs .*not an energy"),
    case("load-energy-mnist-classifier",
         lambda tmp: models.load_energy(saved(tmp, MNISTClassifier().state_dict())),
         ValueError, r"file.pt has no CNNEnergy weights \('cnn_layers.\*' keys\)"),
    case("load-energy-model-not-a-dict",
         lambda tmp: models.load_energy(saved(tmp, {"model": 5})), ValueError,
         "file.pt holds no model weights"),
    case("load-energy-missing-key",
         lambda tmp: models.load_energy(saved(tmp, missing_key_state())), ValueError,
         "file.pt does not match CNNEnergy.*cnn_layers.2.weight"),
    case("load-energy-non-tensor-values",
         lambda tmp: models.load_energy(saved(tmp, {"cnn_layers.0.weight": "w",
                                                    "cnn_layers.11.weight": "v"})),
         ValueError, "file.pt .*not tensors|file.pt .*non-tensor"),
    case("load-energy-tutorial-without-cnn",
         lambda tmp: models.load_energy(saved(tmp, {"state_dict": {"x": torch.zeros(1)}})),
         ValueError, "file.pt is not a tutorial checkpoint"),
    case("load-energy-path-none", lambda: models.load_energy(None), TypeError,
         "path must be a file path"),
    case("load-classifier-nan-weights",
         lambda tmp: load_classifier(saved(tmp, clf_state(**{"fc2.bias": torch.full((10,),
                                                                                  NAN)}))),
         ValueError, r"file.pt has non-finite \(NaN or Inf\) weights in \['fc2.bias'\]"),
    case("load-classifier-energy-file",
         lambda tmp: load_classifier(saved(tmp, cnn().state_dict())), ValueError,
         r"file.pt is not an ebm_course checkpoint: missing \['fc2.weight'\]"),
    case("load-classifier-missing", lambda tmp: load_classifier(tmp / "clf.pt"),
         FileNotFoundError, "MNIST classifier weights not found at .*clf.pt"),
    case("load-classifier-garbage", lambda tmp: load_classifier(written(tmp)), ValueError,
         "could not read checkpoint .*garbage.pt"),
    case("load-classifier-five-classes",
         lambda tmp: load_classifier(saved(tmp, clf_state(**{"fc2.weight": torch.zeros(5, 128),
                                                             "fc2.bias": torch.zeros(5)}))),
         ValueError, "file.pt does not match MNISTClassifier"),
    case("classifier-forward-small-images", lambda: MNISTClassifier()(torch.zeros(2, 1, 14, 14)),
         ValueError, r"MNISTClassifier expects images of shape \[B, 1, 28, 28\]"),
    case("classifier-forward-list", lambda: MNISTClassifier()([[0.0]]), TypeError,
         "MNISTClassifier expects a torch.Tensor"),
    case("classifier-forward-uint8", lambda: MNISTClassifier()(images(dtype=torch.uint8)),
         TypeError, "floating-point images, got torch.uint8"),
    case("train-classifier-epochs-0", lambda: train_classifier(X, labels(0, 1), epochs=0),
         ValueError, "epochs must be an integer >= 1"),
    case("train-classifier-epochs-float", lambda: train_classifier(X, labels(0, 1), epochs=1.5),
         TypeError, "epochs must be an integer"),
    case("train-classifier-images-list", lambda: train_classifier([[0.0]], labels(0)),
         TypeError, "images must be a torch.Tensor"),
    case("train-classifier-images-nan", lambda: train_classifier(X_NAN, labels(0, 1)),
         ValueError, "images contains NaN"),
    case("train-classifier-labels-float", lambda: train_classifier(X, torch.zeros(2)),
         TypeError, "labels must hold integer class indices"),
    case("train-classifier-labels-shape", lambda: train_classifier(X, labels(0)), ValueError,
         r"labels must be \[N\] with N=2, got \[1\]"),
    case("train-classifier-labels-10", lambda: train_classifier(X, labels(0, 10)), ValueError,
         r"labels must lie in 0\.\.9"),
    case("train-classifier-batch-size-0",
         lambda: train_classifier(X, labels(0, 1), batch_size=0), ValueError,
         "batch_size must be an integer >= 1"),
    case("train-classifier-lr-negative", lambda: train_classifier(X, labels(0, 1), lr=-1.0),
         ValueError, "lr must be a finite number > 0"),
    case("train-classifier-max-shift-negative",
         lambda: train_classifier(X, labels(0, 1), max_shift=-1), ValueError,
         "max_shift must be an integer >= 0"),
    case("classifier-accuracy-label-count",
         lambda: accuracy(MNISTClassifier(), X, labels(0, 1, 2)), ValueError,
         r"labels must be \[N\] with N=2, got \[3\]"),
    case("pretrained-unknown", lambda: pretrained.load("cifar"), ValueError,
         r"unknown pretrained model 'cifar'; available: \['mnist'\]"),
    case("pretrained-name-number", lambda: pretrained.load(42), ValueError,
         "unknown pretrained model 42"),
    case("pretrained-card-unknown", lambda: pretrained.model_card("x"), ValueError,
         "unknown pretrained model 'x'"),
    case("pretrained-weights-path-none", lambda: pretrained.weights_path(None), ValueError,
         "unknown pretrained model None"),
    case("load-checkpoint-missing", lambda tmp: checkpoint.load_checkpoint(tmp / "gone.pt"),
         FileNotFoundError, "checkpoint not found: .*gone.pt"),
    case("load-checkpoint-garbage", lambda tmp: checkpoint.load_checkpoint(written(tmp)),
         ValueError, "could not read checkpoint .*garbage.pt"),
    case("load-checkpoint-not-a-dict",
         lambda tmp: checkpoint.load_checkpoint(saved(tmp, torch.zeros(3))), ValueError,
         r"file.pt is not an ebm_course checkpoint \(got Tensor\)"),
    case("load-checkpoint-missing-keys",
         lambda tmp: checkpoint.load_checkpoint(saved(tmp, {"a": 1}), required=("model",)),
         ValueError, r"file.pt is not an ebm_course checkpoint: missing \['model'\]"),
    case("load-checkpoint-path-none", lambda: checkpoint.load_checkpoint(None), TypeError,
         "path must be"),
]  # fmt: skip

API_CASES = (
    SAMPLING_CASES
    + CONFIG_CASES
    + TRAINING_CASES
    + JEM_CASES
    + OBJECTIVE_CASES
    + METRIC_CASES
    + PLOT_CASES
    + TOY_CASES
    + DATA_CASES
    + MODEL_CASES
)


@pytest.mark.parametrize(("call", "error", "match"), SAMPLING_CASES)
def test_sampling(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), CONFIG_CASES + TRAINING_CASES)
def test_training(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), JEM_CASES + OBJECTIVE_CASES)
def test_jem_and_objectives(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), METRIC_CASES + PLOT_CASES)
def test_metrics_and_plots(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), TOY_CASES + DATA_CASES)
def test_toy_and_data(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


@pytest.mark.parametrize(("call", "error", "match"), MODEL_CASES)
def test_models_and_files(call, error, match, tmp_path):
    _run(call, error, match, tmp_path)


# ----------------------------------------------------------------------- command line

OWN_CLI = "cli.py"
USAGE = f"{OWN_CLI}: argparse prints its multi-line usage block before the error line"
TRAIN = ["train", "--offline", "--no-progress", "--train-limit", "64", "--batch-size", "32",
         "--mcmc-steps", "2", "--iters-per-epoch", "1", "--epochs", "1"]  # fmt: skip


def cli_case(name, argv, match, owner=None, marks=()):
    """One command-line case: ``argv`` (or ``argv(tmp_path)``) must exit 2 with one line."""
    marks = list(marks)
    if owner is not None:
        marks.append(pytest.mark.xfail(reason=f"owner: {owner}", strict=True))
    return pytest.param(argv, match, id=name, marks=marks)


def json_file(tmp, text, name="config.json"):
    path = tmp / name
    path.write_text(text)
    return str(path)


def nan_checkpoint(tmp):
    return str(saved(tmp, {"model": nan_state()}, "nan.pt"))


def classifier_checkpoint(tmp):
    return str(saved(tmp, {"model": cnn(10).state_dict()}, "jem.pt"))


def corrupt_last(tmp):
    (tmp / "run").mkdir()
    written(tmp / "run", b"\x00garbage" * 10, "last.pt")
    return [*TRAIN, "--out", str(tmp / "run")]


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is available here")
CLI_CASES = [
    cli_case("train-epochs-0", [*TRAIN, "--epochs", "0"], "epochs must be an integer >= 1"),
    cli_case("train-lr-negative", [*TRAIN, "--lr", "-1"],
             r"lr must be a finite number in \(0, 100\]"),
    cli_case("train-lr-huge", [*TRAIN, "--lr", "1e300"], "lr must be a finite number"),
    cli_case("train-lr-nan", [*TRAIN, "--lr", "nan"], "lr must be a finite number"),
    cli_case("train-beta1-1", [*TRAIN, "--beta1", "1"], r"beta1 must be .*\[0, 1\)"),
    cli_case("train-seed-negative", [*TRAIN, "--seed", "-1"], "seed must be an integer >= 0"),
    cli_case("train-seed-huge", [*TRAIN, "--seed", str(2**70)], "seed must be an integer <="),
    cli_case("train-buffer-huge", [*TRAIN, "--buffer-capacity", str(10**12)],
             "buffer_capacity must be an integer <="),
    cli_case("train-noise-images-huge", [*TRAIN, "--noise-images", str(10**9)],
             "noise_images must be an integer <="),
    cli_case("train-value-range-reversed", [*TRAIN, "--value-range", "1", "-1"],
             "value_range must be .*low < high"),
    cli_case("train-precision-fp16", [*TRAIN, "--precision", "fp16"],
             "precision must be one of"),
    cli_case("train-limit-below-batch", [*TRAIN, "--train-limit", "16"],
             "--train-limit must be >= batch size 32"),
    cli_case("train-hidden-features-odd", [*TRAIN, "--hidden-features", "3"],
             "hidden-features.*even integer"),
    cli_case("train-threads-0", [*TRAIN, "--threads", "0"], "threads.*>= 1"),
    cli_case("train-checkpoint-every-0", [*TRAIN, "--checkpoint-every", "0"],
             "checkpoint-every.*>= 1"),
    cli_case("train-batch-size-word", [*TRAIN, "--batch-size", "zero"],
             "batch-size.*invalid int value"),
    cli_case("train-unknown-flag", [*TRAIN, "--no-such-flag"], "unrecognized arguments"),
    cli_case("train-out-empty", [*TRAIN, "--out", ""], "out.*empty path"),
    cli_case("train-out-is-a-file", lambda tmp: [*TRAIN, "--out", str(written(tmp))],
             "garbage.pt is a file, not a folder"),
    cli_case("train-config-missing", lambda tmp: [*TRAIN, "--config", str(tmp / "none.json")],
             "config file not found: .*none.json"),
    cli_case("train-config-not-json", lambda tmp: [*TRAIN, "--config", json_file(tmp, "{no")],
             "config file .*config.json is not valid JSON"),
    cli_case("train-config-empty-file", lambda tmp: [*TRAIN, "--config", json_file(tmp, "")],
             "is not valid JSON"),
    cli_case("train-config-not-an-object",
             lambda tmp: [*TRAIN, "--config", json_file(tmp, "[1, 2]")],
             "config file .*config.json must hold a JSON object"),
    cli_case("train-config-unknown-field",
             lambda tmp: [*TRAIN, "--config", json_file(tmp, '{"learning_rate": 0.1}')],
             r"unknown TrainConfig fields \['learning_rate'\]"),
    cli_case("train-config-bad-value",
             lambda tmp: [*TRAIN, "--config", json_file(tmp, '{"reinit_prob": 2}')],
             r"reinit_prob must be a finite number in \[0, 1\]"),
    cli_case("train-config-wrong-type",
             lambda tmp: [*TRAIN, "--config", json_file(tmp, '{"alpha": "big"}')],
             "alpha must be a number"),
    cli_case("train-dataset-cifar10", [*TRAIN, "--dataset", "cifar10"],
             "unknown dataset 'cifar10'"),
    cli_case("train-device-tpu", [*TRAIN, "--device", "tpu"], "unknown device 'tpu'"),
    cli_case("train-device-cuda-without-gpu", [*TRAIN, "--device", "cuda"],
             "--device cuda asked for, but no CUDA GPU", marks=[NO_CUDA]),
    cli_case("train-fashion-missing",
             lambda tmp: [*TRAIN, "--dataset", "fashion_mnist", "--data-root", str(tmp)],
             "FashionMNIST not found at"),
    cli_case("train-data-root-is-a-file",
             lambda tmp: [*TRAIN, "--data-root", str(written(tmp, b"x", "root.txt"))],
             "dataset root .*root.txt exists but is not a folder"),
    cli_case("train-init-from-missing", lambda tmp: [*TRAIN, "--init-from", str(tmp / "a.pt")],
             "checkpoint not found: .*a.pt"),
    cli_case("train-init-from-corrupt", lambda tmp: [*TRAIN, "--init-from", str(written(tmp))],
             "could not read checkpoint .*garbage.pt"),
    cli_case("train-init-from-classifier",
             lambda tmp: [*TRAIN, "--init-from", classifier_checkpoint(tmp)],
             "jem.pt holds a network with 10 outputs"),
    cli_case("train-init-from-nan", lambda tmp: [*TRAIN, "--init-from", nan_checkpoint(tmp)],
             r"nan.pt has non-finite \(NaN or Inf\) weights"),
    cli_case("train-resume-corrupt-last", corrupt_last, "could not read checkpoint .*last.pt"),
    cli_case("sample-missing", ["sample", "missing.pt", "--n", "2", "--steps", "1"],
             "checkpoint not found: missing.pt"),
    cli_case("sample-corrupt", lambda tmp: ["sample", str(written(tmp)), "--n", "2"],
             "could not read checkpoint .*garbage.pt"),
    cli_case("sample-nan-weights", lambda tmp: ["sample", nan_checkpoint(tmp), "--n", "2"],
             "nan.pt has non-finite"),
    cli_case("sample-classifier", lambda tmp: ["sample", classifier_checkpoint(tmp)],
             "jem.pt holds a network with 10 outputs"),
    cli_case("sample-n-0", ["sample", "pretrained", "--n", "0"], "n.*>= 1"),
    cli_case("sample-seed-negative", ["sample", "pretrained", "--seed", "-1"], "seed.*>= 0"),
    cli_case("sample-out-is-a-folder", lambda tmp: ["sample", "pretrained", "--out", str(tmp)],
             "is a folder; give a file"),
    cli_case("evaluate-missing", ["evaluate", "missing.pt"], "checkpoint not found: missing.pt"),
    cli_case("evaluate-flag-n-samples-1", ["evaluate", "pretrained", "--n-samples", "1"],
             "n-samples.*>= 2"),
    cli_case("evaluate-data-root-empty",
             lambda tmp: ["evaluate", "pretrained", "--data-root", str(tmp)],
             "MNIST not found at .*set PATH_DATASETS or --data-root"),
    cli_case("no-command", [], "required"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "match"), CLI_CASES)
def test_command_line(argv, match, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # nothing lands in the repository (runs/, samples.png)
    argv = argv(tmp_path) if callable(argv) else argv
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert re.search(match, lines[0], re.IGNORECASE), lines[0]


SUBPROCESS_CASES = [
    pytest.param(["train", "--epochs", "0"], "epochs must be an integer >= 1", id="train"),
    pytest.param(["sample", "missing.pt"], "checkpoint not found: missing.pt", id="sample"),
    pytest.param(["evaluate", "missing.pt"], "checkpoint not found", id="evaluate"),
]


@pytest.mark.parametrize(("argv", "match"), SUBPROCESS_CASES)
def test_no_traceback_reaches_the_user(argv, match, tmp_path):
    """The real ``python -m ebm_course``: exit code 2, one line, no traceback."""
    result = subprocess.run(
        [sys.executable, "-m", "ebm_course", *argv],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr
    assert re.search(match, lines[0]), lines[0]


def test_case_count():
    """At least 170 cases, and the module docstring says how many there are."""
    n_api, n_cli = len(API_CASES), len(CLI_CASES) + len(SUBPROCESS_CASES)
    assert n_api + n_cli >= 170
    doc = " ".join(__doc__.split())
    expected = f"{n_api} API cases + {n_cli} command-line cases = {n_api + n_cli}"
    assert expected in doc, f"update the docstring: {expected}"
    ids = [p.id for p in API_CASES + CLI_CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
