"""Server-drawn SVG charts: no chart library, no script, readable without JavaScript.

A chart is a list of days and any number of series (the Stats page draws sends, bounces, opens
and clicks). Colours come from CSS classes, so the page's
Content-Security-Policy needs no inline styles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

WIDTH = 760
HEIGHT = 240
LEFT = 44
BOTTOM = 28
TOP = 12
RIGHT = 8


@dataclass(frozen=True, slots=True)
class Series:
    """One line of numbers, one per day; `key` names its CSS class (`series-<key>`)."""

    key: str
    label: str
    values: list[int]


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    series: Series
    value: int
    x: float
    y: float
    width: float
    height: float


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 × 10ⁿ at or above `value` (at least 1), for the y-axis top."""
    top = 1
    while True:
        for step in (1, 2, 5):
            if step * top >= value:
                return step * top
        top *= 10


def layout(days: list[date], series: list[Series]) -> tuple[int, list[Bar]]:
    """Where every bar goes: grouped per day, heights proportional to the value over the axis top."""
    for s in series:
        if len(s.values) != len(days):
            raise ValueError(f"series {s.key} has {len(s.values)} values for {len(days)} days")
        if any(v < 0 for v in s.values):
            raise ValueError(f"series {s.key} has a negative value")
    top = nice_ceiling(max((v for s in series for v in s.values), default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(1, len(days))
    bar_w = max(1.0, slot * 0.8 / max(1, len(series)))
    bars = []
    for i, day in enumerate(days):
        for j, s in enumerate(series):
            height = plot_h * s.values[i] / top
            x = LEFT + i * slot + slot * 0.1 + j * bar_w
            bars.append(Bar(day=day, series=s, value=s.values[i], x=x, y=TOP + plot_h - height, width=bar_w, height=height))
    return top, bars


def _n(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bar_chart(days: list[date], series: list[Series], *, title: str) -> Markup:
    """An accessible SVG bar chart (role img, a <title>, one <title> per bar for hovering)."""
    top, bars = layout(days, series)
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        value = top * fraction
        label = _n(value) if value != int(value) else str(int(value))
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y)}" y2="{_n(y)}"/>')
        parts.append(f'<text class="axis" x="{LEFT - 6}" y="{_n(y + 4)}" text-anchor="end">{label}</text>')
    every = max(1, len(days) // 8)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(days))
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            x = LEFT + slot * (i + 0.5)
            parts.append(f'<text class="axis" x="{_n(x)}" y="{HEIGHT - 8}" text-anchor="middle">{day.strftime("%b %d")}</text>')
    for bar in bars:
        parts.append(
            f'<rect class="bar series-{escape(bar.series.key)}" x="{_n(bar.x)}" y="{_n(bar.y)}" width="{_n(bar.width)}" '
            f'height="{_n(bar.height)}" data-value="{bar.value}"><title>{bar.day.isoformat()}: {bar.value} {escape(bar.series.label)}</title></rect>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text above is escaped or a number
