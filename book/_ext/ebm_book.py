"""Small Sphinx fixes for the course book (loaded through ``sphinx.local_extensions``).

- Citations read "Hinton (2002)" and "(Hinton, 2002)": sphinxcontrib-bibtex's author-year
  style, with round brackets instead of its default square ones (``bibtex_reference_style:
  author_year_round`` in ``_config.yml``).
- Each ``<script>`` is emitted once per page. sphinx-thebe's inline configuration
  (``const THEBE_JS_URL = ...``) is registered twice in a Jupyter Book build, and the second copy
  throws "Identifier 'THEBE_JS_URL' has already been declared" in the console of every page.
"""

from __future__ import annotations

import dataclasses

import sphinxcontrib.bibtex.plugin
from sphinxcontrib.bibtex.style.referencing import BracketStyle
from sphinxcontrib.bibtex.style.referencing.author_year import AuthorYearReferenceStyle


def _round() -> BracketStyle:
    return BracketStyle(left="(", right=")")


@dataclasses.dataclass
class AuthorYearRoundReferenceStyle(AuthorYearReferenceStyle):
    """Author-year references in round brackets: Hinton (2002); (Hinton, 2002)."""

    bracket_parenthetical: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_textual: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_author: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_label: BracketStyle = dataclasses.field(default_factory=_round)
    bracket_year: BracketStyle = dataclasses.field(default_factory=_round)


sphinxcontrib.bibtex.plugin.register_plugin(
    "sphinxcontrib.bibtex.style.referencing", "author_year_round", AuthorYearRoundReferenceStyle
)


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    """Drop repeated ``<script>`` entries (same file, or same inline body) from a page."""
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set = set()
    unique = []
    for script in scripts:
        # an inline script is registered with filename None by some extensions, "" by others
        key = (str(script.filename or ""), tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", _unique_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
