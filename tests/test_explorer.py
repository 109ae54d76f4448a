"""ebm_course.explorer: sliders over precomputed figures (no kernel needed)."""

from __future__ import annotations

import html
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from ebm_course.explorer import frames_slider  # noqa: E402


def _figure(value) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.set_title(f"value {value}")
    ax.plot([0, 1], [0, value])
    return fig


def _html(obj) -> str:
    return obj.data


def _images(page: str) -> list[str]:
    return re.findall(r"<img [^>]*>", page)


def _ranges(page: str) -> list[str]:
    return re.findall(r'<input type="range"[^>]*>', page)


def test_one_image_per_frame_and_a_slider_over_all_of_them():
    values = [0.1, 0.5, 1.0, 2.0, 5.0]
    page = _html(frames_slider({v: _figure(v) for v in values}, "temperature", initial=1.0))
    images = _images(page)
    assert len(images) == len(values)
    assert all('src="data:image/png;base64,' in img for img in images)
    (slider,) = _ranges(page)
    assert 'min="0"' in slider and f'max="{len(values) - 1}"' in slider and 'step="1"' in slider
    assert 'value="2"' in slider  # the initial value, 1.0, is the third
    visible = [img for img in images if "display:none" not in img]
    assert len(visible) == 1 and 'data-key="2"' in visible[0]
    assert plt.get_fignums() == []  # every figure was closed once rendered


def test_label_readout_and_accessibility():
    page = _html(frames_slider({1: _figure(1), 2: _figure(2)}, "temperature T", fmt="{:.1f}"))
    (slider,) = _ranges(page)
    uid = re.search(r'id="([^"]+)"', slider).group(1)
    assert f'<label for="{uid}">temperature T</label>' in page  # the full label, not cut
    assert f'<output for="{uid}" aria-live="polite"' in page
    assert 'aria-valuetext="1.0"' in slider
    assert html.unescape(re.search(r'data-values="([^"]*)"', slider).group(1)) == '["1.0", "2.0"]'
    assert 'role="group"' in page and 'aria-label="Explorer: temperature T"' in page
    assert 'alt="temperature T = 2.0"' in page
    assert "oninput=" in slider


def test_labels_and_values_are_escaped():
    label = 'a<b & "c"'
    page = _html(frames_slider({"<x>": _figure(0), "y&z": _figure(1)}, label))
    assert label not in page and "<x>" not in page
    assert html.escape(label) in page
    assert "&lt;x&gt;" in page
    for attribute in re.findall(r'(?:data-values|alt|aria-valuetext|aria-label)="([^"]*)"', page):
        assert "<" not in attribute and '"' not in attribute


def test_several_parameters_make_one_slider_each_over_a_full_grid():
    frames = {(t, w): _figure(t * w) for t in (1, 2, 3) for w in (0.2, 0.8)}
    page = _html(frames_slider(frames, ["temperature", "weight"], initial=(2, 0.8)))
    assert len(_images(page)) == 6
    sliders = _ranges(page)
    assert len(sliders) == 2
    assert 'max="2"' in sliders[0] and 'value="1"' in sliders[0]
    assert 'max="1"' in sliders[1] and 'value="1"' in sliders[1]
    visible = [img for img in _images(page) if "display:none" not in img]
    assert len(visible) == 1 and 'data-key="1,1"' in visible[0]
    keys = sorted(re.findall(r'data-key="([^"]+)"', page))
    assert keys == ["0,0", "0,1", "1,0", "1,1", "2,0", "2,1"]


def test_png_bytes_are_accepted_and_figures_can_stay_open():
    fig = _figure(1)
    page = _html(frames_slider({"a": b"\x89PNG-not-really", "b": fig}, "frame", close=False))
    assert len(_images(page)) == 2
    assert plt.fignum_exists(fig.number)
    plt.close(fig)


@pytest.mark.parametrize(
    ("frames", "label", "initial", "error"),
    [
        ({}, "x", None, ValueError),
        ({1: b"", 2: b""}, "x", 3, KeyError),
        ({(1, 1): b"", (1, 2): b"", (2, 1): b""}, ["a", "b"], None, ValueError),
        ({(1, 1): b""}, ["a", "b", "c"], None, ValueError),
        ({1: "not a figure"}, "x", None, TypeError),
    ],
)
def test_bad_arguments_are_refused(frames, label, initial, error):
    with pytest.raises(error):
        frames_slider(frames, label, initial=initial)
