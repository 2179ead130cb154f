"""Interval charts drawn on the server as SVG geometry: no JavaScript, nothing from the network."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["interval_chart"]

ROW_H = 26
LABEL_W = 260
PLOT_W = 420
PAD = 12


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / n)) if span > 0 else 1.0
    for mult in (1, 2, 2.5, 5, 10):
        if span / (step * mult) <= n:
            step *= mult
            break
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def interval_chart(title: str, rows: list[dict[str, Any]], *, mean: str, ci: str | None,
                   fixed: tuple[float, float] | None = None) -> dict[str, Any]:
    """Geometry of one horizontal dot-and-whisker chart: a row per group, mean ± 95% CI.

    rows: {"label": str, mean: float | None, ci: float | None}; `fixed` pins the axis (rates: 0..1).
    """
    points = []
    for r in rows:
        m = r.get(mean)
        c = r.get(ci) if ci else None
        points.append((r["label"], m, c if c is not None and not math.isnan(c) else None))
    values = [v for _, m, c in points if m is not None for v in (m - (c or 0), m + (c or 0))]
    if fixed:
        lo, hi = fixed
    elif values:
        lo, hi = min(0.0, *values), max(values)
        if hi - lo < 1e-9:
            hi = lo + 1.0
        hi += (hi - lo) * 0.05
    else:
        lo, hi = 0.0, 1.0

    def x(v: float) -> float:
        return round(LABEL_W + PAD + (min(max(v, lo), hi) - lo) / (hi - lo) * PLOT_W, 1)

    out_rows = []
    for i, (label, m, c) in enumerate(points):
        y = PAD + i * ROW_H + ROW_H / 2
        row = {"label": label, "y": y, "text": "no data"}
        if m is not None:
            row.update(cx=x(m), x1=x(m - (c or 0)), x2=x(m + (c or 0)),
                       text=f"{m:.2f}" + (f" ± {c:.2f}" if c is not None else " (n=1, no interval)"))
        out_rows.append(row)
    height = PAD * 2 + ROW_H * max(len(points), 1) + 20
    axis_y = height - 20
    return {
        "title": title, "width": LABEL_W + PLOT_W + PAD * 2 + 130, "height": height, "axis_y": axis_y,
        "plot_x1": LABEL_W + PAD, "plot_x2": LABEL_W + PAD + PLOT_W, "label_x": LABEL_W,
        "value_x": LABEL_W + PLOT_W + PAD * 2, "rows": out_rows,
        "ticks": [{"x": x(t), "label": f"{t:g}"} for t in _ticks(lo, hi)],
    }
