"""The package as a whole: cheap import, typed public API, consistent environments."""

import inspect
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

import ebm_course

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PIP = {"pytorch": "torch"}
NOT_A_PACKAGE = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_import_is_cheap():
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import ebm_course"], check=True)
    assert time.perf_counter() - started < 3.0
    out = subprocess.run(
        [sys.executable, "-c", "import ebm_course, sys; print('torch' in sys.modules)"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "False"  # torch loads on first use, not on import


def test_every_public_name_resolves_and_is_typed():
    for name in ebm_course.__all__:
        obj = getattr(ebm_course, name)
        if inspect.isfunction(obj):
            hints = obj.__annotations__
            params = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
            missing = [p for p in params if p not in hints]
            assert not missing and "return" in hints, f"{name} lacks type hints for {missing}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ebm_course.nope  # noqa: B018


def test_device_is_cuda_or_cpu():
    assert ebm_course.device().type in {"cuda", "cpu"}


def test_environment_yml_and_pyproject_list_the_same_packages():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    pip_names = {_name(r) for r in project["dependencies"] + extras["test"] + extras["lab"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    conda_names, pip_section = set(), []
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            pip_section += dep["pip"]
        else:
            conda_names.add(CONDA_TO_PIP.get(_name(dep), _name(dep)))
    conda_names -= NOT_A_PACKAGE
    assert conda_names == pip_names, (
        f"only in environment.yml: {sorted(conda_names - pip_names)}; "
        f"only in pyproject.toml: {sorted(pip_names - conda_names)}"
    )
    assert "-e ." in pip_section
    for required in ("torch", "torchvision", "jupyterlab", "nbval", "ipywidgets", "seaborn"):
        assert required in conda_names


def test_torch_is_not_pinned_above_the_supported_release():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    torch_req = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert "<=2.14.1" in torch_req
