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


def _functions(tree):
    import ast

    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([d.lineno for d in node.decorator_list] + [node.lineno])
            yield node.name, node.lineno, node.end_lineno - first + 1


def test_functions_and_modules_stay_short_enough_to_read():
    """No function of the package over 60 lines (docstring included), no module over 500."""
    import ast

    too_long = []
    for path in sorted((REPO / "ebm_course").rglob("*.py")):
        source = path.read_text()
        lines = len(source.splitlines())
        if lines > 500:
            too_long.append(f"{path.name}: {lines} lines")
        for name, line, length in _functions(ast.parse(source)):
            if length > 60:
                too_long.append(f"{path.name}:{line} {name}: {length} lines")
    assert not too_long, too_long


def test_no_module_imports_another_modules_private_names():
    import ast

    offenders = []
    for path in sorted((REPO / "ebm_course").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level >= 1:
                private = [a.name for a in node.names if a.name.startswith("_")]
                if private and not node.module.split(".")[-1].startswith("_"):
                    offenders.append(f"{path.name}: from {node.module} import {private}")
    assert not offenders, offenders


def test_no_formatter_islands():
    hits = [p.name for p in (REPO / "ebm_course").rglob("*.py") if "fmt: skip" in p.read_text()]
    assert not hits, hits
