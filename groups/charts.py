"""A group's size over time as a small inline SVG, drawn on the server (no JavaScript)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

WIDTH = 640
HEIGHT = 180
# Room for the size labels on the left and the dates below.
LEFT = 64
RIGHT = 12
TOP = 12
BOTTOM = 28


def _count(value: int) -> str:
    return number_format(value, force_grouping=True)


def size_chart(history: Sequence[tuple[date, int]]) -> SafeString:
    """An area chart of ``(day, size)`` points, oldest first, with its axes labelled.

    The size axis starts at zero, so a small change in a large group looks small.
    """
    sizes = [size for _day, size in history]
    top = max(max(sizes, default=0), 1)
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    base = TOP + plot_height
    step = plot_width / max(len(history) - 1, 1)
    points = " ".join(
        f"{LEFT + index * step:.1f},{base - size / top * plot_height:.1f}"
        for index, size in enumerate(sizes)
    )
    first, last = (history[0], history[-1]) if history else ((None, 0), (None, 0))
    summary = (
        f"Members from {first[0]} to {last[0]}: {_count(first[1])} to {_count(last[1])}, "
        f"at most {_count(max(sizes, default=0))}."
    )
    return format_html(
        '<svg class="size-chart" xmlns="http://www.w3.org/2000/svg" role="img" '
        'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'aria-label="{summary}"><title>{summary}</title>'
        '<polygon points="{left},{base} {points} {right},{base}" fill="#79aec8" '
        'fill-opacity="0.35" stroke="none"/>'
        '<polyline points="{points}" fill="none" stroke="#417690" stroke-width="2"/>'
        '<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#999"/>'
        '<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#999"/>'
        '<g font-size="11" fill="currentColor">'
        '<text x="{label_x}" y="{top_label_y}" text-anchor="end">{top_label}</text>'
        '<text x="{label_x}" y="{base}" text-anchor="end">0</text>'
        '<text x="{left}" y="{date_y}" text-anchor="start">{first_day}</text>'
        '<text x="{right}" y="{date_y}" text-anchor="end">{last_day}</text>'
        "</g></svg>",
        width=WIDTH,
        height=HEIGHT,
        summary=summary,
        left=LEFT,
        right=WIDTH - RIGHT,
        top=TOP,
        base=base,
        points=points,
        label_x=LEFT - 6,
        top_label_y=TOP + 8,
        top_label=_count(top),
        date_y=HEIGHT - 8,
        first_day=first[0] or "",
        last_day=last[0] or "",
    )
