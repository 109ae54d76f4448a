"""Static checks of the committed lessons (no kernel needed): what the book shows is current."""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LESSONS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE_SOURCE = "\n".join(p.read_text() for p in sorted((REPO / "ebm_course").rglob("*.py")))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def test_there_are_lessons():
    assert len(LESSONS) >= 8


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_shown_source_code_is_the_package_code(lesson):
    """A lesson that shows a helper's source (``inspect.getsource``) shows today's source:
    after a change to the package, the lesson must be re-run before its outputs are committed."""
    shown = 0
    for cell in _cells(lesson):
        if cell["cell_type"] != "code" or not _shows_source("".join(cell["source"])):
            continue
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", ""))
            if text.lstrip().startswith(("def ", "class ", "@")):
                shown += 1
                assert text in PACKAGE_SOURCE, (
                    f"{lesson.name}: the stored source beginning {text.splitlines()[0]!r} is "
                    "not in ebm_course/ any more: re-run the lesson"
                )
    if any(_shows_source("".join(c["source"])) for c in _cells(lesson)):
        assert shown > 0, f"{lesson.name}: source-showing cells without stored source outputs"


def _shows_source(code: str) -> bool:
    return "inspect.getsource(" in code or "show_source(" in code


def _code(lesson: Path) -> str:
    return "\n".join("".join(c["source"]) for c in _cells(lesson) if c["cell_type"] == "code")


RUNS_MODELS = re.compile(r"\b(langevin|fit|fit_jem|fit_objective|training_step|sample_quality)\(")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lessons_that_train_or_sample_pick_the_device(lesson):
    """A lesson that trains or samples picks ``DEVICE`` (ebm_course.device(), e.g. through
    ebm_course.lesson.setup) and uses it."""
    code = _code(lesson)
    if not RUNS_MODELS.search(code):
        return
    assert re.search(r"DEVICE\s*(,\s*QUICK\s*)?=\s*(ebm_course\.device\(\)|.*setup\()", code), (
        f"{lesson.name} trains or samples but never sets DEVICE = ebm_course.device()"
    )
    assert code.count("DEVICE") >= 3, f"{lesson.name} sets DEVICE but hardly uses it"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lessons_copy_tensors_to_the_cpu_before_numpy(lesson):
    """``.numpy()`` only right after ``.cpu()`` (or through ebm_course.lesson.to_numpy): on a
    GPU, ``.numpy()`` of a CUDA tensor fails."""
    code = _code(lesson)
    bad = [
        m.start()
        for m in re.finditer(r"\.numpy\(\)", code)
        if not re.search(r"\.cpu\(\)(\.detach\(\))?$", code[: m.start()])
    ]
    lines = [code[:i].count("\n") + 1 for i in bad]
    assert not bad, f"{lesson.name}: .numpy() without .cpu() at code lines {lines}"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_stored_outputs_have_no_errors_and_follow_the_order(lesson):
    """The stored outputs come from one top-to-bottom run without errors."""
    counts = []
    for cell in _cells(lesson):
        if cell["cell_type"] != "code":
            continue
        assert not any(o["output_type"] == "error" for o in cell.get("outputs", [])), lesson.name
        assert cell.get("execution_count") is not None, f"{lesson.name}: a cell was not run"
        counts.append(cell["execution_count"])
    assert counts == sorted(counts) and len(set(counts)) == len(counts), lesson.name


def test_every_lesson_is_in_the_book():
    toc = (REPO / "book" / "_toc.yml").read_text()
    for lesson in LESSONS:
        assert f"notebooks/{lesson.stem}" in toc, f"{lesson.stem} is missing from book/_toc.yml"
