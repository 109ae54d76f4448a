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


def format_table(
    results: Mapping[str, Mapping[str, Any]], models_as_rows: bool = False, corner: str = ""
) -> str:
    """A markdown table with one row per metric and one column per model (or the transpose).

    Args:
        results: ``{model name: result dict}``, e.g.
            ``{"shipped": evaluate(a), "tutorial": evaluate(b)}``.
        models_as_rows: put one model per row and one metric per column instead; narrower
            when there are many models with long names and few metrics.
        corner: the header of the first column; by default ``"metric"``, or ``"model"``
            with ``models_as_rows`` (a lesson comparing samplers says ``"sampler"``).

    Returns:
        The table as a string (no trailing newline). Metrics follow the order in which they
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
    if models_as_rows:
        header = [corner or "model", *metrics]
        rows = [[name, *(_format_value(results[name].get(k)) for k in metrics)] for name in names]
    else:
        header = [corner or "metric", *names]
        rows = [[key, *(_format_value(results[n].get(key)) for n in names)] for key in metrics]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---|" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
