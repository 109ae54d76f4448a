"""Kernel-free explorers: sliders over precomputed figures, for JupyterLab and the static book.

An ipywidgets slider needs a live kernel to redraw its figure; in the book it moves but the
figure never changes. :func:`frames_slider` instead renders every figure once, as a PNG
embedded in the HTML, and shows an ``<input type="range">`` per parameter whose inline
JavaScript shows the frame of the chosen values. The output is plain ``text/html``: it works
in JupyterLab after the cell has run (trusted output) and in the book, which embeds the HTML
as it is.

Example, one parameter::

    frames = {t: show_mixture(temperature=t) for t in (0.2, 0.5, 1.0, 2.0, 5.0)}
    frames_slider(frames, "temperature", initial=1.0)

Two parameters (keys are tuples, one figure for every combination)::

    frames = {(t, w): show_mixture(t, w) for t in (0.5, 1.0, 2.0) for w in (0.2, 0.5, 0.8)}
    frames_slider(frames, ["temperature", "weight of bump 1"], initial=(1.0, 0.5))

Each frame adds its PNG to the notebook and the page (typically 20-80 kB): keep the grids
small (a few to a few dozen frames).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["frames_slider"]

# Runs in the page when a slider moves: show the frame whose key is the sliders' positions.
_ONINPUT = (
    "var r=this.closest('.ebm-explorer');"
    "var k=Array.prototype.map.call(r.querySelectorAll('input[type=range]'),"
    "function(s){return s.value;}).join(',');"
    "var v=JSON.parse(this.getAttribute('data-values'))[this.value];"
    "this.setAttribute('aria-valuetext',v);"
    "this.parentNode.querySelector('output').textContent=v;"
    "r.querySelectorAll('img.ebm-explorer-frame').forEach(function(m){"
    "m.style.display=m.getAttribute('data-key')===k?'':'none';});"
)


def _png_base64(frame: Any, dpi: float | None, close: bool) -> str:
    """A matplotlib figure (or PNG bytes) as base64 PNG; the figure is closed when asked."""
    if isinstance(frame, bytes | bytearray):
        return base64.b64encode(bytes(frame)).decode("ascii")
    if not hasattr(frame, "savefig"):
        raise TypeError(f"a frame must be a matplotlib Figure or PNG bytes, not {type(frame)}")
    buffer = io.BytesIO()
    frame.savefig(buffer, format="png", dpi=dpi or "figure", bbox_inches="tight")
    if close:
        import matplotlib.pyplot as plt

        plt.close(frame)  # or the inline backend shows it once more below the explorer
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _control(uid: str, name: str, texts: list[str], pos: int) -> str:
    """One labelled ``<input type="range">`` over ``texts``, at ``pos``, with its readout."""
    value = html.escape(texts[pos])
    return (
        '<span class="ebm-explorer-control" style="display:inline-flex;'
        'align-items:center;gap:0.5em;white-space:nowrap">'
        f'<label for="{uid}">{html.escape(str(name))}</label>'
        f'<input type="range" id="{uid}" min="0" max="{len(texts) - 1}" step="1" '
        f'value="{pos}" data-values="{html.escape(json.dumps(texts))}" '
        f'aria-valuetext="{value}" oninput="{html.escape(_ONINPUT)}">'
        f'<output for="{uid}" aria-live="polite" style="min-width:4ch">{value}</output></span>'
    )


def _axes(frames: Mapping[Any, Any], labels: list[str], multi: bool) -> list[list[Any]]:
    """The values of each parameter, in order of appearance; checks that the grid is full."""
    tuples = [tuple(key) if multi else (key,) for key in frames]
    if any(len(t) != len(labels) for t in tuples):
        raise ValueError(f"every key must hold {len(labels)} values, one per label {labels}")
    axes = [list(dict.fromkeys(t[i] for t in tuples)) for i in range(len(labels))]
    if len(tuples) != math.prod(len(values) for values in axes):
        raise ValueError("frames must hold one figure for every combination of the values")
    return axes


def frames_slider(
    frames: Mapping[Any, Any],
    label: str | Sequence[str],
    initial: Any = None,
    *,
    fmt: str | Callable[[Any], str] = "{}",
    dpi: float | None = None,
    close: bool = True,
) -> Any:
    """A slider (or one slider per parameter) that swaps precomputed figures, without a kernel.

    Args:
        frames: parameter value -> matplotlib ``Figure`` (or PNG ``bytes``), in slider order.
            With several parameters, keys are tuples (one value per parameter) and every
            combination of the values must be present.
        label: the parameter's name, shown in full beside its slider; a sequence of names for
            tuple keys.
        initial: the key shown first (default: the first key).
        fmt: how a value is shown in the readout: a format string such as ``"{:.2g}"`` or a
            function of the value.
        dpi: resolution of the PNGs (default: each figure's own).
        close: close each figure once rendered, so that the notebook does not show it again.

    Returns:
        An ``IPython.display.HTML`` object: the sliders, their readouts and one ``<img>`` per
        frame, of which the initial one is visible.
    """
    from IPython.display import HTML

    if not frames:
        raise ValueError("frames_slider needs at least one frame")
    multi = not isinstance(label, str)
    labels = list(label) if multi else [label]
    axes = _axes(frames, labels, multi)
    start = next(iter(frames)) if initial is None else initial
    if start not in frames:
        raise KeyError(f"initial={start!r} is not a key of frames")
    show = fmt.format if isinstance(fmt, str) else fmt
    uid = "ebm-explorer-" + uuid.uuid4().hex[:8]
    position = {key: tuple(key) if multi else (key,) for key in frames}
    controls = [
        _control(f"{uid}-{i}", name, [str(show(v)) for v in values], values.index(value))
        for i, (name, values, value) in enumerate(zip(labels, axes, position[start], strict=True))
    ]
    images = []
    for key, values in position.items():
        index = ",".join(str(axes[i].index(v)) for i, v in enumerate(values))
        alt = ", ".join(f"{name} = {show(v)}" for name, v in zip(labels, values, strict=True))
        images.append(
            f'<img class="ebm-explorer-frame" data-key="{index}" alt="{html.escape(alt)}" '
            f'style="{"" if key == start else "display:none;"}max-width:100%;height:auto" '
            f'src="data:image/png;base64,{_png_base64(frames[key], dpi, close)}">'
        )
    title = html.escape("Explorer: " + ", ".join(str(name) for name in labels))
    return HTML(
        f'<div class="ebm-explorer" id="{uid}" role="group" aria-label="{title}">'
        '<div class="ebm-explorer-controls" style="display:flex;flex-wrap:wrap;'
        f'gap:0.25em 2em;margin-bottom:0.5em">{"".join(controls)}</div>{"".join(images)}</div>'
    )
