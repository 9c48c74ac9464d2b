"""The AHA bull's-eye as inline SVG: basal ring outside, mid ring, apical ring, apical cap (segment 17, not
measured on short-axis slices) in the centre; anterior at the top, septum on the left, as in Cerqueira et al.
2002. Each segment is coloured by its value on a white-to-blue scale and labelled with it."""

from __future__ import annotations

import html
import math

# segment -> (inner radius, outer radius, start angle, end angle), degrees counter-clockwise from 3 o'clock.
RINGS = {"basal": (0.75, 1.0), "mid": (0.5, 0.75), "apical": (0.25, 0.5)}
LAYOUT: dict[int, tuple[str, float, float]] = {
    **{1 + i: ("basal", 60.0 + 60.0 * i, 120.0 + 60.0 * i) for i in range(6)},
    **{7 + i: ("mid", 60.0 + 60.0 * i, 120.0 + 60.0 * i) for i in range(6)},
    **{13 + i: ("apical", 45.0 + 90.0 * i, 135.0 + 90.0 * i) for i in range(4)},
}
SIZE = 220  # pixels; the bull's-eye's radius is SIZE / 2 - 10


def _point(radius: float, degrees: float) -> tuple[float, float]:
    scale = SIZE / 2 - 10
    rad = math.radians(degrees)
    return SIZE / 2 + scale * radius * math.cos(rad), SIZE / 2 - scale * radius * math.sin(rad)


def _wedge(inner: float, outer: float, start: float, end: float) -> str:
    (x0, y0), (x1, y1) = _point(outer, start), _point(outer, end)
    (x2, y2), (x3, y3) = _point(inner, end), _point(inner, start)
    scale = SIZE / 2 - 10
    return (f"M{x0:.1f},{y0:.1f} A{scale * outer:.1f},{scale * outer:.1f} 0 0 0 {x1:.1f},{y1:.1f} "
            f"L{x2:.1f},{y2:.1f} A{scale * inner:.1f},{scale * inner:.1f} 0 0 1 {x3:.1f},{y3:.1f} Z")


def _colour(value: float | None, low: float, high: float) -> str:
    if value is None or not math.isfinite(value):
        return "#dddddd"
    t = min(max((value - low) / (high - low), 0.0), 1.0) if high > low else 0.5
    r, g, b = (round(255 + (c - 255) * t) for c in (33, 102, 172))  # white to blue
    return f"#{r:02x}{g:02x}{b:02x}"


def bullseye_svg(values: dict[int, float | None], title: str, unit: str, low: float, high: float) -> str:
    """An SVG bull's-eye of ``values`` per AHA segment (1-16), coloured from ``low`` to ``high``."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}" height="{SIZE + 24}" '
             f'viewBox="0 0 {SIZE} {SIZE + 24}" role="img" '
             f'aria-label="{html.escape(title)}"><title>{html.escape(title)}</title>']  # fmt: skip
    for segment, (ring, start, end) in LAYOUT.items():
        inner, outer = RINGS[ring]
        value = values.get(segment)
        parts.append(f'<path d="{_wedge(inner, outer, start, end)}" fill="{_colour(value, low, high)}" '
                     f'stroke="#555" stroke-width="1"><title>segment {segment}</title></path>')  # fmt: skip
        x, y = _point((inner + outer) / 2, (start + end) / 2)
        text = "-" if value is None or not math.isfinite(value) else f"{value:.0f}"
        parts.append(f'<text x="{x:.1f}" y="{y + 4:.1f}" font-size="11" fill="#000000" text-anchor="middle">'
                     f"{text}</text>")
    cx, cy = _point(0.0, 0.0)
    parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{(SIZE / 2 - 10) * 0.25:.1f}" fill="#f4f4f4" '
                 'stroke="#555"><title>segment 17 (apex, not measured)</title></circle>')  # fmt: skip
    parts.append(f'<text x="{SIZE / 2:.0f}" y="{SIZE + 18}" font-size="12" fill="#000000" text-anchor="middle">'
                 f"{html.escape(title)} ({html.escape(unit)})</text></svg>")  # fmt: skip
    return "".join(parts)


def regional_bullseyes(rows: list[dict]) -> list[str]:
    """The report's two bull's-eyes of :func:`cmrseg.regional.regional_wall_thickness` rows: ED wall thickness
    (0-20 mm) and systolic thickening (0-80 %)."""
    return [
        bullseye_svg({row["segment"]: row["ed_mm"] for row in rows}, "ED wall thickness", "mm", 0.0, 20.0),
        bullseye_svg({row["segment"]: row["thickening_pct"] for row in rows}, "Systolic thickening", "%", 0.0, 80.0),
    ]
