"""Frame maths of implicit objects, pure numpy (the Blender add-on's bridge applies it to objects).

An implicit object's ``matrix_world`` maps its local frame (the implicit's mesh frame) to the world;
the stored ``Implicit.transform`` maps that local frame to the network, so world -> network is
``transform @ inverse(matrix_world)`` (neural_implicit_addon/bridge.py, "Frames").
"""

import numpy as np


def placement(T_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a world -> network transform into the object's ``matrix_world`` and the transform to store.

    T_world : (4, 4) affine map from world (the mesh frame of a conversion or a file) to the network.
    Returns ``(M, T_local)`` with ``T_local @ inverse(M) == T_world``: M puts the object at the
    network origin with the rotation of a similarity T_world and scale 1; T_local is then a uniform
    scale. A transform that is no rotation-similarity (a reflection or shear from some other tool)
    keeps its linear part in T_local and only the translation moves to M.
    """
    T_world = np.asarray(T_world, dtype=np.float64)
    A = T_world[:3, :3]
    M = np.eye(4)
    M[:3, 3] = -np.linalg.solve(A, T_world[:3, 3])       # the world point at the network origin
    U, S, Vt = np.linalg.svd(A)
    s = float(S.mean())
    similarity = np.linalg.det(A) > 0 and np.allclose(S, s, rtol=1e-6)
    if similarity and not np.allclose(A, s * np.eye(3), rtol=0.0, atol=1e-12 * s):
        M[:3, :3] = (U @ Vt).T                            # A = s R: the object takes R
    T_local = T_world @ M
    T_local[:3, 3] = 0.0                                  # A @ centre + t = 0 by construction
    T_local[3] = (0.0, 0.0, 0.0, 1.0)
    if similarity:
        T_local[:3, :3] = s * np.eye(3)                   # exactly uniform, without rounding noise
    return M, T_local


def mean_scale(M: np.ndarray) -> float:
    """The mean scale of a (4, 4) affine map: the cube root of its linear part's |determinant|."""
    return float(np.cbrt(abs(np.linalg.det(np.asarray(M, dtype=np.float64)[:3, :3]))))
