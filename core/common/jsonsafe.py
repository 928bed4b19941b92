"""JSON that every reader accepts: no NaN or Infinity, numpy scalars and arrays as plain values.

Why: Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which strict parsers (browsers,
jq, most other languages) reject. A measurement that is not finite (no surface, no samples) is
written as ``null`` instead, in the command line's ``--json`` output, manifests and file metadata.
"""

from __future__ import annotations

import json
import math

import numpy as np


def finite_or_none(value):
    """``value`` with every non-finite float replaced by None and numpy types made plain, recursively."""
    if isinstance(value, dict):
        return {str(k): finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(v) for v in value]
    if isinstance(value, np.ndarray):
        return finite_or_none(value.tolist())
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


def dumps(value, **kwargs) -> str:
    """``json.dumps`` of :func:`finite_or_none` (``value``), refusing anything still not JSON."""
    return json.dumps(finite_or_none(value), allow_nan=False, **kwargs)
