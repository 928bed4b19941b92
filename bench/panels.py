"""Side-by-side renders for docs/results.md: meshes and implicits through one tracer and one shading.

Why one tracer for both: a comparison image is honest only if every panel is drawn the same way.
``core.geometry.trace`` sphere-traces implicits; a triangle mesh is traced by the same code through
:class:`MeshField`, its exact unsigned distance (libigl's AABB tree) presented as an implicit, so
camera, hit test, normals (finite differences) and shading are identical in every panel.
"""

from __future__ import annotations


import numpy as np


from core.geometry.trace import TraceSettings, look_at, perspective, trace
from core.samples.sampling import SignedDistance

#: Camera direction (network frame, from the shape's centre) and vertical field of view.
EYE_DIRECTION = np.array([0.55, 0.35, 0.76])
EYE_DISTANCE = 3.0
FOV_DEGREES = 38.0
COLOR = (0.62, 0.66, 0.72, 1.0)


class MeshField:
    """A triangle mesh (mesh frame) as something core.geometry.trace can trace: ``evaluate`` is the
    exact signed distance (winding-number sign, as for training) in the network frame given by
    ``transform`` (the source mesh's). Signed, not unsigned, so that the finite-difference normals
    at a hit do not straddle a kink of the field."""

    bound_radius = 1.0

    def __init__(self, V, F, transform):
        self.transform = np.asarray(transform, dtype=np.float64)
        Vn = np.asarray(V, np.float64) @ self.transform[:3, :3].T + self.transform[:3, 3]
        self._sd = SignedDistance(Vn, np.asarray(F, np.int64))

    def evaluate(self, Q, chunk=None):
        return self._sd.signed(np.asarray(Q, np.float64)).astype(np.float32)


def render(shape, transform, size: int = 256) -> np.ndarray:
    """(size, size, 4) display-encoded RGBA of ``shape`` (an Implicit or a MeshField) seen from
    EYE_DIRECTION; ``transform`` is the source mesh's normalisation (mesh -> network frame), used as
    the object's matrix_world so that world = network frame of the source mesh for every panel."""
    view = look_at(EYE_DIRECTION / np.linalg.norm(EYE_DIRECTION) * EYE_DISTANCE, (0, 0, 0), (0, 1, 0))
    proj = perspective(np.radians(FOV_DEGREES), 1.0, 0.1, 10.0)
    r = trace([(shape, transform, COLOR)], view, proj, size, size,
              TraceSettings(max_steps=160, epsilon=1e-3, step_factor=0.9))
    img = r.rgba.copy()
    img[~r.coverage] = (1.0, 1.0, 1.0, 1.0)          # white background
    img[..., 3] = 1.0
    return img


def save_row(images, titles, path, suptitle=None):
    """Panels in one row with a title each, written as a PNG with matplotlib."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images), figsize=(2.6 * len(images), 3.1), dpi=100)
    for ax, img, title in zip(np.atleast_1d(axes), images, titles):
        ax.imshow(img)
        ax.set_title(title, fontsize=7.5)
        ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout(pad=1.5)
    fig.savefig(path)
    plt.close(fig)
