"""Charts drawn on the server as inline SVG: bars (one or more series) or a line.

No script and no ``style`` attribute (the finance pages' CSP forbids inline styles): shapes
carry presentation attributes and classes that finance.css styles. Every text is escaped.
Each bar or point has a ``<title>`` with its label and value (a tooltip on hover); the chart
as a whole is an image named by its title, the figures themselves being in a table beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

Format = Callable[[float], str]
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 14, 48
LEGEND = 20
LABEL_WIDTH = 56  # room one month label needs on the axis
MAX_BAR = 64  # a bar no wider than this, however few the months


@dataclass(frozen=True)
class Series:
    """One named row of values (one per label), drawn with the class ``css``."""

    name: str
    values: Sequence[float]
    css: str = "series-1"


@dataclass(frozen=True)
class Frame:
    """The plot area in SVG units and the values its bottom and top stand for."""

    left: float
    top: float
    right: float
    bottom: float
    low: float
    high: float

    def y(self, value: float) -> float:
        """The vertical position of ``value``."""
        share = (value - self.low) / (self.high - self.low)
        return self.bottom - share * (self.bottom - self.top)

    def slot(self, index: int, count: int) -> tuple[float, float]:
        """The left edge and width of the ``index``-th of ``count`` equal columns."""
        width = (self.right - self.left) / count
        return self.left + index * width, width


def compact(value: float) -> str:
    """``12500`` → ``12.5k``: short numbers for an axis."""
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Rounded ticks (steps of 1, 2, 2.5 or 5 times 10^n) from ≤ min(low, 0) to ≥ max(high, 0)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if low == high:
        return [0.0, 1.0]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if raw <= m * power * (1 + 1e-9))
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    return [round(i * step, 10) + 0.0 for i in range(first, last + 1)]


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _ident(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", value) or "chart"


def _frame(values: Sequence[float], legend: bool) -> tuple[Frame, list[float]]:
    scale = ticks(min(values, default=0.0), max(values, default=0.0))
    top = TOP + (LEGEND if legend else 0)
    return Frame(LEFT, top, WIDTH - RIGHT, HEIGHT - BOTTOM, scale[0], scale[-1]), scale


def _open(title: str, ident: str, kind: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {kind}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-labelledby="{ident}-title" data-kind="{kind}">'
        f'<title id="{ident}-title">{escape(title)}</title>'
    )


def _axes(frame: Frame, scale: list[float], labels: Sequence[str], fmt: Format) -> list[str]:
    parts = []
    for value in scale:
        y = _n(frame.y(value))
        css = "zero" if value == 0 else "grid"
        parts.append(
            f'<line class="{css}" x1="{frame.left}" x2="{frame.right}" y1="{y}" y2="{y}"/>'
        )
        parts.append(
            f'<text class="tick" x="{frame.left - 6}" y="{y}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(fmt(value))}</text>'
        )
    every = max(1, math.ceil(len(labels) / ((frame.right - frame.left) / LABEL_WIDTH)))
    for index, label in enumerate(labels):
        if index % every:
            continue
        left, width = frame.slot(index, len(labels))
        x = _n(left + width / 2)
        lines = label.split(" ", 1)
        spans = "".join(
            f'<tspan x="{x}" dy="{1.25 if n == 0 else 1.1}em">{escape(line)}</tspan>'
            for n, line in enumerate(lines)
        )
        parts.append(
            f'<text class="label" x="{x}" y="{frame.bottom}" text-anchor="middle">{spans}</text>'
        )
    if not labels:
        middle = _n((frame.left + frame.right) / 2)
        parts.append(
            f'<text class="empty" x="{middle}" y="{_n(frame.y(0.5))}" '
            'text-anchor="middle">No data</text>'
        )
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts, x = [], float(LEFT)
    for item in series:
        parts.append(
            f'<rect class="swatch {escape(item.css)}" x="{_n(x)}" y="{TOP - 4}" '
            'width="10" height="10"/>'
        )
        parts.append(
            f'<text class="legend" x="{_n(x + 14)}" y="{TOP + 5}">{escape(item.name)}</text>'
        )
        x += 24 + 10 * len(item.name)
    return parts


def _tip(label: str, series: Series, value: float, fmt: Format, named: bool) -> str:
    prefix = f"{label} · {series.name}" if named else label
    return f"<title>{escape(prefix)}: {escape(fmt(value))}</title>"


def _svg(parts: list[str]) -> Markup:
    # Every text and attribute value in ``parts`` was escaped where it was written.
    return Markup("".join([*parts, "</svg>"]))  # noqa: S704


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    ident: str = "chart",
    fmt: Format = compact,
    tick_fmt: Format = compact,
) -> Markup:
    """Bars, one group per label and one bar per series in it; ``fmt`` writes each value."""
    ident, named = _ident(ident), len(series) > 1
    frame, scale = _frame([v for s in series for v in s.values], named)
    parts = [_open(title, ident, "bars"), *_axes(frame, scale, labels, tick_fmt)]
    zero = frame.y(0)
    for index, label in enumerate(labels):
        left, width = frame.slot(index, len(labels))
        bar = min(width * 0.72 / max(1, len(series)), MAX_BAR)
        start = left + (width - bar * len(series)) / 2
        for number, item in enumerate(series):
            value = item.values[index]
            y = frame.y(value)
            x = start + number * bar
            parts.append(
                f'<rect class="bar {escape(item.css)}" x="{_n(x)}" y="{_n(min(y, zero))}" '
                f'width="{_n(bar)}" height="{_n(abs(zero - y))}" data-value="{value}">'
                f"{_tip(label, item, value, fmt, named)}</rect>"
            )
    if named:
        parts.extend(_legend(series))
    return _svg(parts)


def line_chart(
    labels: Sequence[str],
    series: Series,
    *,
    title: str,
    ident: str = "chart",
    fmt: Format = compact,
    tick_fmt: Format = compact,
) -> Markup:
    """A line through one point per label, each point with its value as a tooltip."""
    ident = _ident(ident)
    frame, scale = _frame(list(series.values), False)
    parts = [_open(title, ident, "line"), *_axes(frame, scale, labels, tick_fmt)]
    points = []
    for index, (label, value) in enumerate(zip(labels, series.values, strict=True)):
        left, width = frame.slot(index, len(labels))
        points.append((label, value, _n(left + width / 2), _n(frame.y(value))))
    if len(points) > 1:
        path = " ".join(f"{x},{y}" for _, _, x, y in points)
        parts.append(f'<polyline class="trend {escape(series.css)}" fill="none" points="{path}"/>')
    for label, value, x, y in points:
        parts.append(
            f'<circle class="point {escape(series.css)}" cx="{x}" cy="{y}" r="4" '
            f'data-value="{value}">{_tip(label, series, value, fmt, False)}</circle>'
        )
    return _svg(parts)
