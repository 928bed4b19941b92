"""Minimum enclosing ball of a point set (Welzl's algorithm, move-to-front, vectorised scans).

Why: the paper's released networks were normalised by the minimum enclosing ball of the mesh
vertices (centre to the origin, radius to 0.9); placing them back on their mesh needs that ball.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-10


def _ball(R: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Smallest ball with all points of R (1 to 4 points) on its boundary."""
    if len(R) == 1:
        return R[0].copy(), 0.0
    if len(R) == 2:
        c = 0.5 * (R[0] + R[1])
        return c, float(((R[0] - c) ** 2).sum())
    a = R[0]
    B = np.array([r - a for r in R[1:]])                 # (k, 3), k = 2 or 3
    # centre c = a + B^T x lies in the affine span; |c - r_i|^2 equal for all i
    M = 2.0 * B @ B.T
    rhs = (B * B).sum(axis=1)
    try:
        x = np.linalg.solve(M, rhs)
    except np.linalg.LinAlgError:
        x = np.linalg.lstsq(M, rhs, rcond=None)[0]
    c = a + B.T @ x
    return c, float(((a - c) ** 2).sum())


def _welzl(P: np.ndarray, R: list[np.ndarray]) -> tuple[np.ndarray, float]:
    if len(R) == 4 or len(P) == 0:
        if not R:
            return np.zeros(3), 0.0
        return _ball(R)
    if R:
        c, r2 = _ball(R)
        start = 0
    else:
        c, r2 = P[0].copy(), 0.0
        start = 1
    while start < len(P):
        d2 = ((P[start:] - c) ** 2).sum(axis=1)
        out = np.nonzero(d2 > r2 * (1 + _EPS) + _EPS * _EPS)[0]
        if len(out) == 0:
            break
        i = start + int(out[0])
        c, r2 = _welzl(P[:i], R + [P[i]])
        start = i + 1
    return c, r2


def minimum_enclosing_ball(V: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float]:
    """Centre (3,) and radius of the smallest ball containing all rows of V (n, 3)."""
    P = np.unique(np.asarray(V, dtype=np.float64), axis=0)
    P = P[np.random.default_rng(seed).permutation(len(P))]
    c, r2 = _welzl(P, [])
    # guard against round-off: grow to contain every point exactly
    r = float(np.sqrt(((P - c) ** 2).sum(axis=1).max()))
    return c, max(r, float(np.sqrt(r2)))
