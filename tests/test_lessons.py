"""Static checks of the committed lessons (no kernel needed): what the book shows is current."""

import json
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
        if cell["cell_type"] != "code" or "inspect.getsource(" not in "".join(cell["source"]):
            continue
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", ""))
            if text.lstrip().startswith(("def ", "class ", "@")):
                shown += 1
                assert text in PACKAGE_SOURCE, (
                    f"{lesson.name}: the stored source beginning {text.splitlines()[0]!r} is "
                    "not in ebm_course/ any more: re-run the lesson"
                )
    if any("inspect.getsource(" in "".join(c["source"]) for c in _cells(lesson)):
        assert shown > 0, f"{lesson.name}: getsource cells without stored source outputs"


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
