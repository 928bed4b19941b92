"""How distances are shown to people: every metric is in the unit-sphere frame
(core/common/constants.py), where 1 is the distance from the shape's centre to its farthest vertex,
so it reads as a fraction of the shape's size — "0.21% of size" — comparable between shapes,
whatever their units."""

from __future__ import annotations

import math


def format_fraction(x) -> str:
    """0.0021 -> '0.21%'; None or a non-finite value -> 'n/a'."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.2g}%" if x < 0.001 else f"{100 * x:.2f}%"
