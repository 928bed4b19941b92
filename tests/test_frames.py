"""core.representation.frames without Blender: where an implicit object is placed, for similarities
and others."""

import numpy as np
import pytest

from core.representation.frames import mean_scale, placement


def _rotation(seed):
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _affine(A, t):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = A, t
    return T


@pytest.mark.parametrize("seed", range(4))
def test_similarity_object_takes_rotation_and_centre(seed):
    s, R, t = 2.5, _rotation(seed), np.array([0.3, -1.0, 2.0])
    T = _affine(s * R, t)
    M, T_local = placement(T)
    assert np.allclose(T_local @ np.linalg.inv(M), T)
    scale = T_local[0, 0]
    assert np.array_equal(T_local, np.diag([scale, scale, scale, 1.0])) and scale == pytest.approx(s)
    assert np.allclose(M[:3, :3], R.T) and mean_scale(M) == pytest.approx(1.0)
    assert np.allclose(T[:3, :3] @ M[:3, 3] + t, 0.0)              # the world point at the origin


def test_pure_scale_keeps_the_identity_rotation():
    T = _affine(0.5 * np.eye(3), [1.0, 2.0, 3.0])
    M, T_local = placement(T)
    assert np.array_equal(M[:3, :3], np.eye(3)) and np.allclose(M[:3, 3], [-2.0, -4.0, -6.0])
    assert np.array_equal(T_local, np.diag([0.5, 0.5, 0.5, 1.0]))


@pytest.mark.parametrize("A", [np.diag([-1.0, 1.0, 1.0]), np.array([[1.0, 0.3, 0], [0, 1, 0], [0, 0, 2]])])
def test_mirror_or_shear_keeps_its_linear_part(A):
    T = _affine(A, [0.5, 0.0, -0.5])
    M, T_local = placement(T)
    assert np.array_equal(M[:3, :3], np.eye(3))                     # only the translation moves
    assert np.allclose(T_local[:3, :3], A) and np.allclose(T_local @ np.linalg.inv(M), T)


def test_mean_scale():
    assert mean_scale(_affine(np.diag([2.0, 4.0, 1.0]), [9.0, 9.0, 9.0])) == pytest.approx(2.0)
    assert mean_scale(_affine(-3.0 * _rotation(1), 0.0)) == pytest.approx(3.0)
