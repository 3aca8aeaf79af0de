"""The overview's chart: messages per hour by action over the last days, as SVG geometry (no JavaScript).

Pure: the hourly counts from store/browse.py in, the bars, axes and legend out; templates/overview.html writes
the SVG. One stacked bar per hour, one colour per action (by CSS class, so the page's Content-Security-Policy
needs no inline style), and a <title> on each piece so that hovering says what it counts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from msgspec import Struct

# The order of the stack and of the legend: what an admin reads first at the bottom.
ACTION_ORDER = ("create", "update", "note", "duplicate", "hold", "ignore", "released", "reject", "quarantine")
WIDTH, HEIGHT = 840, 220
LEFT, BOTTOM, TOP = 40, 24, 10


class Bar(Struct, frozen=True):
    x: float
    y: float
    width: float
    height: float
    action: str
    css: str
    label: str


class Tick(Struct, frozen=True):
    position: float
    label: str


class Chart(Struct, frozen=True):
    width: int
    height: int
    left: int
    bottom: float  # y of the time axis
    bars: list[Bar]
    legend: list[tuple[str, str, int]]  # (action, css class, messages in the period)
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    total: int
    hours: int


def css_class(action: str) -> str:
    """`act-<action>` with anything but [a-z0-9-] dropped: a class name can never carry markup."""
    return "act-" + re.sub(r"[^a-z0-9-]", "", action.lower())


def _axis_top(peak: int) -> int:
    """The top of the count axis: twice a round step (1, 2, 5 times a power of ten), so that its middle tick
    is a whole number too."""
    if peak <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if 2 * step * magnitude >= peak:
                return 2 * step * magnitude
        magnitude *= 10


def hourly_chart(counts: list[tuple[str, str, int]], now: datetime, hours: int = 7 * 24) -> Chart:
    """The chart of `counts` ((hour "YYYY-MM-DD HH" UTC, action, n)) for the `hours` hours up to `now`."""
    end = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    slots = {(start + timedelta(hours=i)).strftime("%Y-%m-%d %H"): i for i in range(hours)}
    per_hour: list[dict[str, int]] = [{} for _ in range(hours)]
    totals: dict[str, int] = {}
    for hour, action, n in counts:
        if hour in slots:
            per_hour[slots[hour]][action] = per_hour[slots[hour]].get(action, 0) + n
            totals[action] = totals.get(action, 0) + n
    order = [a for a in ACTION_ORDER if a in totals] + sorted(a for a in totals if a not in ACTION_ORDER)
    peak = max((sum(h.values()) for h in per_hour), default=0)
    scale_top = _axis_top(peak)
    plot_h = HEIGHT - BOTTOM - TOP
    slot_w = (WIDTH - LEFT) / hours
    bars: list[Bar] = []
    for index, hour_counts in enumerate(per_hour):
        y = float(HEIGHT - BOTTOM)
        hour_label = (start + timedelta(hours=index)).strftime("%Y-%m-%d %H:00 UTC")
        for action in order:
            n = hour_counts.get(action, 0)
            if not n:
                continue
            h = plot_h * n / scale_top
            y -= h
            label = f"{hour_label}: {n} {action}"
            bars.append(Bar(LEFT + index * slot_w, y, max(slot_w - 0.5, 0.5), h, action, css_class(action), label))
    y_ticks = [Tick(HEIGHT - BOTTOM - plot_h * f, str(round(scale_top * f))) for f in (0, 0.5, 1)] if peak else []
    if scale_top == 1:
        y_ticks = [y_ticks[0], y_ticks[2]] if y_ticks else []
    x_ticks = [
        Tick(LEFT + i * slot_w, (start + timedelta(hours=i)).strftime("%a %d"))
        for i in range(hours)
        if (start + timedelta(hours=i)).hour == 0
    ]
    legend = [(a, css_class(a), totals[a]) for a in order]
    return Chart(WIDTH, HEIGHT, LEFT, HEIGHT - BOTTOM, bars, legend, y_ticks, x_ticks, sum(totals.values()), hours)
