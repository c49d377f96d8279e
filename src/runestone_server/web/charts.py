"""Plots drawn on the server as plain SVG geometry (no chart library, no script): the page
template turns these numbers into <rect> elements styled by class, which the CSP allows."""

from __future__ import annotations

from dataclasses import dataclass

HEIGHT = 120  # plot area in SVG units
BAR = 18
GAP = 8


@dataclass(frozen=True, slots=True)
class Segment:
    cls: str
    label: str
    count: int
    y: float
    height: float


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    label: str
    total: int
    segments: tuple[Segment, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    bars: tuple[Bar, ...]
    width: float
    height: int
    peak: int


def stacked(columns: list[tuple[str, dict[str, int]]], order: tuple[str, ...]) -> Chart:
    """Stacked bars: one per (label, {series: count}), series stacked in `order`."""
    peak = max((sum(c.values()) for _, c in columns), default=0)
    scale = HEIGHT / peak if peak else 0
    bars = []
    for index, (label, counts) in enumerate(columns):
        top = float(HEIGHT)
        segments = []
        for series in order:
            count = counts.get(series, 0)
            if not count:
                continue
            height = count * scale
            top -= height
            segments.append(Segment(series, series, count, round(top, 2), round(height, 2)))
        bars.append(Bar(index * (BAR + GAP), label, sum(counts.values()), tuple(segments)))
    return Chart(tuple(bars), max(len(columns) * (BAR + GAP), BAR), HEIGHT, peak)
