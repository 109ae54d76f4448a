"""The book's sources agree with each other: intro vs table of contents, API page vs package,
citations vs bibliography, repository link vs configuration. No build, no browser."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from pathlib import Path

import pytest
import yaml

import ebm_course

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text())
TOC = yaml.safe_load((BOOK / "_toc.yml").read_text())
CHAPTERS = [chapter["file"] for part in TOC["parts"] for chapter in part["chapters"]]
LESSONS = [page for page in CHAPTERS if page.startswith("notebooks/")]
# Modules that are not part of the Python API: the command line is documented by --help.
NOT_API = {"cli", "cli_score", "__main__"}


def _markdown_sources() -> dict[str, str]:
    """Every Markdown text of the book: its .md pages and the lessons' Markdown cells."""
    texts = {path.name: path.read_text() for path in BOOK.glob("*.md")}
    for page in LESSONS:
        notebook = json.loads((BOOK / f"{page}.ipynb").read_text())
        cells = [c for c in notebook["cells"] if c["cell_type"] == "markdown"]
        texts[page] = "\n\n".join("".join(c["source"]) for c in cells)
    return texts


def test_intro_lists_every_lesson_of_the_toc_with_its_time():
    intro = (BOOK / "intro.md").read_text()
    rows = [line for line in intro.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    listed = [re.search(r"\{doc\}`[^`<]*<([^>]+)>`", row).group(1) for row in rows]
    assert listed == LESSONS, "the intro's lesson table must list the toc's lessons, in order"
    for row in rows:
        reading, run = [cell.strip() for cell in row.strip().strip("|").split("|")][-2:]
        assert re.search(r"\d+\s*min", reading) and re.search(r"\d+(\.\d+)?\s*min", run), row


def test_repository_link_comes_from_the_config():
    url = CONFIG["repository"]["url"]
    assert re.fullmatch(r"https://\S+", url)
    assert CONFIG["html"]["use_repository_button"] is True
    assert CONFIG["parse"]["myst_substitutions"]["repository_url"] == url  # one YAML anchor
    intro = (BOOK / "intro.md").read_text()
    assert "{{ repository_url }}" in intro and url not in intro
    for name, text in _markdown_sources().items():
        assert "<this repository>" not in text, f"{name}: placeholder instead of the link"


def _public_modules() -> set[str]:
    found = {
        m.name
        for m in pkgutil.iter_modules(ebm_course.__path__)
        if not m.name.startswith("_") and m.name not in NOT_API
    }
    return {f"ebm_course.{name}" for name in found | set(ebm_course._SUBMODULES)}


def test_api_reference_covers_every_public_module():
    api = (BOOK / "api.md").read_text()
    documented = set(re.findall(r"^\.\. automodule:: (\S+)", api, flags=re.M))
    missing = sorted(_public_modules() - documented)
    assert not missing, f"book/api.md has no automodule for {missing}"
    for module in documented:
        importlib.import_module(module)  # the page documents only modules that exist


def _bib_entries() -> dict[str, str]:
    text = (BOOK / "references.bib").read_text()
    return dict(re.findall(r"^@\w+\{([^,\s]+),(.*?)^\}", text, flags=re.M | re.S))


def _cited_keys() -> dict[str, set[str]]:
    cited: dict[str, set[str]] = {}
    for name, text in _markdown_sources().items():
        for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            for key in keys.split(","):
                cited.setdefault(key.strip(), set()).add(name)
    return cited


def test_bibliography_entries_are_complete_and_unique():
    text = (BOOK / "references.bib").read_text()
    keys = re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.M)
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    for key, fields in _bib_entries().items():
        for field in ("author", "title", "year"):
            assert re.search(rf"^\s*{field}\s*=", fields, flags=re.M), f"{key}: no {field}"


def test_every_citation_is_in_the_bibliography_and_every_entry_is_cited():
    entries, cited = set(_bib_entries()), _cited_keys()
    unknown = {key: sorted(pages) for key, pages in cited.items() if key not in entries}
    assert not unknown, f"cited but not in book/references.bib: {unknown}"
    uncited = sorted(entries - set(cited))
    assert not uncited, f"in book/references.bib but cited nowhere in the book: {uncited}"


def test_notation_page_is_a_glossary_in_the_toc():
    notation = (BOOK / "notation.md").read_text()
    assert "notation" in CHAPTERS
    assert "```{glossary}" in notation
    for term in ("score function", "cdiv", "val_cdiv", "AUROC", "class entropy", "replay buffer"):
        assert re.search(rf"^{re.escape(term)}$", notation, flags=re.M), f"no glossary term {term}"


@pytest.mark.parametrize("page", ["intro", "notation", "references", "api"])
def test_reference_pages_are_in_the_book(page):
    assert (BOOK / f"{page}.md").is_file()
    assert page == TOC["root"] or page in CHAPTERS
