"""Syncs per hour over 24 hours as an inline SVG of stacked bars: no script, no library, works offline."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

SERIES = (("synced", "#1b7f3b"), ("unchanged", "#9aa0a6"), ("failed", "#b3261e"))  # bottom to top
WIDTH, HEIGHT = 960, 180
LEFT, RIGHT, TOP, BOTTOM = 36, 8, 10, 22


def hourly_chart(hourly: list[dict[str, Any]]) -> str:
    hours = hourly[-24:]
    slots = max(len(hours), 1)
    top = max((sum(int(h.get(name) or 0) for name, _ in SERIES) for h in hours), default=0)
    scale = _nice(top)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / slots
    bar = step * 0.72
    parts = [
        f'<svg class="chart" id="hourly-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Syncs per hour over the last 24 hours, by outcome" xmlns="http://www.w3.org/2000/svg">',
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e0e0e0"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 3:.1f}" text-anchor="end">{round(scale * fraction):d}</text>')
    for n, hour in enumerate(hours):
        x = LEFT + n * step + (step - bar) / 2
        y = TOP + plot_h
        label = _hour_label(hour.get("hour"))
        counts = {name: int(hour.get(name) or 0) for name, _ in SERIES}
        tip = f"{label} UTC: " + ", ".join(f"{v} {k}" for k, v in counts.items())
        parts.append(f'<g data-hour="{html.escape(str(hour.get("hour") or ""))}"><title>{html.escape(tip)}</title>')
        for name, colour in SERIES:
            if counts[name]:
                h = plot_h * counts[name] / scale
                y -= h
                parts.append(
                    f'<rect class="{name}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}"/>'
                )
        parts.append("</g>")
        if n % 3 == 0 or n == len(hours) - 1:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">{html.escape(label)}</text>'
            )
    parts.append("</svg>")
    legend = "".join(f'<span><i class="{name}"></i>{name}</span>' for name, _ in SERIES)
    return "".join(parts) + f'<div class="legend">{legend}<span>(per hour, UTC; retries not shown)</span></div>'


def _nice(top: int) -> int:
    """A round axis maximum at or above ``top`` (at least 2, so the half-way line is a whole number)."""
    for candidate in (2, 4, 6, 10, 20, 40, 60, 100, 200, 400, 600, 1000):
        if top <= candidate:
            return candidate
    magnitude = 10 ** (len(str(top)) - 1)
    return -(-top // magnitude) * magnitude


def _hour_label(value: object) -> str:
    try:
        return dt.datetime.fromisoformat(str(value)).strftime("%H:00")
    except ValueError:
        return "--:--"
