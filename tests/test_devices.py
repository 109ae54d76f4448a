"""Devices: every function that takes a model and tensors moves what it documents moving, or
refuses a mismatch with an error that names both devices. Mismatches are built with the
``meta`` device (tensors without storage), so these tests need no GPU."""

from __future__ import annotations

import pytest
import torch

import ebm_course
from ebm_course.models import CNNEnergy, MLPEnergy
from ebm_course.sampling import ReplayBuffer, langevin
from ebm_course.training import TrainConfig, fit


def meta_images(n: int = 2) -> torch.Tensor:
    return torch.empty(n, 1, 28, 28, device="meta")


def test_device_follows_the_environment(monkeypatch):
    monkeypatch.setenv("EBM_COURSE_DEVICE", "cpu")
    assert ebm_course.device() == torch.device("cpu")
    monkeypatch.setenv("EBM_COURSE_DEVICE", "tpu9")
    with pytest.raises(ValueError, match="EBM_COURSE_DEVICE='tpu9' is not a device"):
        ebm_course.device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("EBM_COURSE_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="no CUDA GPU is available"):
            ebm_course.device()
    monkeypatch.delenv("EBM_COURSE_DEVICE")
    assert ebm_course.device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_langevin_names_both_devices_when_model_and_start_differ():
    with pytest.raises(ValueError, match=r"x is on meta but the model is on cpu"):
        langevin(CNNEnergy(), meta_images(), steps=1)


def test_langevin_refuses_a_generator_on_another_device_and_says_how_to_make_one():
    model = CNNEnergy().to("meta")
    with pytest.raises(
        ValueError, match=r"draws on cpu .* on meta: .*torch.Generator\(device='meta'\)"
    ):
        langevin(model, meta_images(), steps=1, generator=torch.Generator())


def test_replay_buffer_refuses_a_generator_on_another_device():
    buffer = ReplayBuffer(capacity=4, device="meta")
    with pytest.raises(ValueError, match="draws on cpu .* on meta"):
        buffer.draw(2, generator=torch.Generator())


def test_fit_refuses_a_buffer_on_another_device():
    model = MLPEnergy(hidden=8, depth=1)
    data = torch.rand(64, 2) * 2 - 1
    buffer = ReplayBuffer((2,), capacity=16, device="meta")
    config = TrainConfig(epochs=1, batch_size=32, mcmc_steps=1, iters_per_epoch=1)
    with pytest.raises(ValueError, match=r"buffer lives on meta but training runs on cpu"):
        fit(model, data, None, config, buffer=buffer, progress=False)


def test_fit_moves_the_data_to_the_models_device():
    """Documented: ``train_data`` and ``val_data`` may live anywhere; training happens on the
    model's device (here the CPU, the data given in float32 on the CPU as well)."""
    model = MLPEnergy(hidden=8, depth=1)
    data = (torch.rand(64, 2) * 2 - 1).to(torch.float32)
    config = TrainConfig(
        epochs=1, batch_size=32, mcmc_steps=1, iters_per_epoch=1, step_size=0.1, grad_clamp=None
    )
    history = fit(model, data, data[:32], config, progress=False)
    assert len(history) == 1
