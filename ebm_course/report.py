"""Results side by side: the markdown table of :func:`ebm_course.metrics.evaluate`'s results
(one row per metric, one column per model), as ``python -m ebm_course evaluate`` prints it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["format_table"]


def _format_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):  # nan formats as "nan"
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    if isinstance(value, list | tuple):
        return " ".join(_format_value(v) for v in value)
    return str(value)


def format_table(results: Mapping[str, Mapping[str, Any]]) -> str:
    """A markdown table with one row per metric and one column per model.

    Args:
        results: ``{model name: result dict}``, e.g.
            ``{"shipped": evaluate(a), "tutorial": evaluate(b)}``.

    Returns:
        The table as a string (no trailing newline). Rows follow the order in which metrics
        first appear; a metric a model lacks shows as ``-``. Floats get 4 decimals, lists
        (the class histogram) are joined with spaces.
    """
    if not results:
        raise ValueError("results is empty")
    for name, result in results.items():
        if not isinstance(result, Mapping):
            raise TypeError(
                f"results[{name!r}] must be a dict of metrics, got {type(result).__name__}"
            )
    names = list(results)
    metrics: list[str] = []
    for result in results.values():
        metrics += [key for key in result if key not in metrics]
    lines = [
        "| metric | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in metrics:
        cells = [_format_value(results[name].get(key)) for name in names]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
