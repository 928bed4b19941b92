"""Classical representations of a mesh at a byte budget, to compare neural implicits against.

Why a module of its own: the paper's compression claim (Figure 8, §3.3) compares an implicit with a
decimated mesh and a uniform signed-distance grid *of the same number of bytes*. The benchmarks of
issues 6 and 10 and the tests all count those bytes here, in one way:

* **decimated mesh** (libigl's ``qslim``, Garland & Heckbert quadric error collapses):
  ``12 × vertices + 12 × faces`` bytes: three float32 coordinates per vertex, three int32 indices
  per face, nothing else (no normals, no header). The largest face count that fits is found by
  bisection; a mesh that already fits is returned unchanged (lossless, method ``"original"``).
* **SDF grid**: exact signed distances (negative inside) at the points of a uniform grid covering the
  mesh's bounding box plus one cell on every side, meshed with marching cubes. Stored as a 28-byte
  header (origin 3 × float32, spacing float32, point counts 3 × int32) plus one value per point: ``float32`` (4 bytes), ``float16`` (2 bytes) or ``int8`` (1 byte,
  truncated SDF: ``round(127 · clip(d / (TSDF_CELLS · h), -1, 1))`` with ``h`` the spacing; marching
  cubes only reads values next to the surface, where the truncation does not act). The finest
  spacing whose grid fits the budget is used.
* the **implicit** counts ``Implicit.weight_bytes``: weights, biases and quantisation scales at their
  stored size plus the 128-byte transform (docs/file-format.md).

All distances are measured by :func:`core.geometry.metrics.surface_distances` in the unit-sphere
frame. Everything here runs in the mesh frame and returns mesh-frame vertices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..common.errors import InputError
from ..meshes.mesh import Mesh, remove_unreferenced
from ..samples.sampling import SignedDistance
from .marching_cubes import marching_cubes

#: Bytes per vertex (3 × float32) and per triangle (3 × int32) of a stored mesh.
VERTEX_BYTES = 12
FACE_BYTES = 12

#: Bytes of an SDF grid's header: origin (3 × float32), spacing (float32), counts (3 × int32).
GRID_HEADER_BYTES = 28

#: Bytes per grid value for each storage.
GRID_VALUE_BYTES = {"float32": 4, "float16": 2, "int8": 1}

#: int8 grids store the signed distance truncated at this many cells (a TSDF). Marching cubes reads
#: only cells the surface crosses, whose corner values are within one cell diagonal (1.74 cells) of
#: zero, so 4 cells never clips a value it uses, and the step is 4/127 of a cell.
TSDF_CELLS = 4.0


@dataclass
class Baseline:
    """A classical representation at a byte budget.

    method : ``"qslim"``, ``"original"`` (the mesh already fits) or ``"sdf-grid"``
    V : (n, 3) float64 vertices in the mesh frame; F : (m, 3) int64 triangles
    bytes : stored size counted as in the module docstring
    details : what was chosen (face count, grid shape, storage, ...)
    """

    method: str
    V: np.ndarray
    F: np.ndarray
    bytes: int
    details: dict = field(default_factory=dict)


def mesh_bytes(n_vertices: int, n_faces: int) -> int:
    """Stored size of a triangle mesh with float32 coordinates and int32 indices."""
    return VERTEX_BYTES * int(n_vertices) + FACE_BYTES * int(n_faces)


def _check_budget(budget_bytes) -> int:
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, (int, np.integer)) \
            or budget_bytes < 1:
        raise InputError(f"budget_bytes must be a positive integer, got {budget_bytes!r}")
    return int(budget_bytes)


def _qslim(V: np.ndarray, F: np.ndarray, faces: int) -> tuple[np.ndarray, np.ndarray]:
    import igl

    U, G, _, _ = igl.qslim(np.asfortranarray(V, dtype=np.float64),
                           np.asfortranarray(F, dtype=np.int32), int(faces))
    G = np.asarray(G, dtype=np.int64).reshape(-1, 3)
    U = np.asarray(U, dtype=np.float64).reshape(-1, 3)
    if len(G) == 0:
        return U[:0], G
    U, G, _ = remove_unreferenced(U, G)
    return U, G


def decimate_to_bytes(mesh: Mesh, budget_bytes: int) -> Baseline:
    """The mesh decimated by quadric error collapses (libigl ``qslim``) to the most faces that fit.

    Returns the original mesh (method ``"original"``) when it fits already. Raises InputError when no
    decimation fits (the budget is below a handful of triangles, or qslim cannot simplify the mesh:
    it needs an edge-manifold input).
    """
    budget = _check_budget(budget_bytes)
    if mesh_bytes(len(mesh.V), len(mesh.F)) <= budget:
        return Baseline("original", mesh.V.copy(), mesh.F.copy(), mesh_bytes(len(mesh.V), len(mesh.F)),
                        {"faces": int(len(mesh.F)), "vertices": int(len(mesh.V)), "lossless": True})
    lo, hi = 1, len(mesh.F) - 1           # bisection on qslim's face target
    best = None
    # a closed mesh has about half as many vertices as faces: start near the answer
    guess = min(hi, max(lo, budget // (FACE_BYTES + VERTEX_BYTES // 2)))
    tried = {}

    def attempt(m):
        if m not in tried:
            U, G = _qslim(mesh.V, mesh.F, m)
            tried[m] = (U, G, mesh_bytes(len(U), len(G)) if len(G) else None)
        return tried[m]

    m = guess
    while lo <= hi:
        U, G, b = attempt(m)
        if b is not None and b <= budget:
            if best is None or len(G) > len(best[1]):
                best = (U, G, b, m)
            lo = m + 1
        else:
            hi = m - 1
        m = (lo + hi) // 2
    if best is None:
        raise InputError(f"{mesh.name}: no quadric decimation fits in {budget} bytes "
                         "(qslim needs an edge-manifold mesh and at least a few triangles)")
    U, G, b, m = best
    return Baseline("qslim", U, G, b, {"faces": int(len(G)), "vertices": int(len(U)),
                                       "target_faces": int(m), "lossless": False})


def grid_bytes(shape, storage: str) -> int:
    """Stored size of an SDF grid of ``shape`` points in ``storage``."""
    if storage not in GRID_VALUE_BYTES:
        raise InputError(f"storage must be one of {', '.join(GRID_VALUE_BYTES)}, got {storage!r}")
    return GRID_HEADER_BYTES + GRID_VALUE_BYTES[storage] * int(np.prod(shape))


def _grid_shape(lo, hi, h):
    """Points per axis of a grid of spacing h covering [lo, hi] plus one cell on each side."""
    return tuple(int(np.ceil((b - a) / h)) + 3 for a, b in zip(lo, hi))


def encode_grid(values: np.ndarray, spacing: float, storage: str) -> np.ndarray:
    """Grid values after a round trip through ``storage`` (what a reader of that grid meshes)."""
    if storage == "float32":
        return values.astype(np.float32).astype(np.float64)
    if storage == "float16":
        return values.astype(np.float16).astype(np.float64)
    if storage == "int8":
        trunc = TSDF_CELLS * spacing
        q = np.rint(127.0 * np.clip(values / trunc, -1.0, 1.0)).astype(np.int8)
        return q.astype(np.float64) * (trunc / 127.0)
    raise InputError(f"storage must be one of {', '.join(GRID_VALUE_BYTES)}, got {storage!r}")


def sdf_grid_to_bytes(mesh: Mesh, budget_bytes: int, storage: str = "int8",
                      sd: SignedDistance | None = None) -> Baseline:
    """A uniform signed-distance grid of at most ``budget_bytes``, meshed with marching cubes.

    The grid covers the bounding box of ``mesh`` plus one cell on every side (so the level set is
    closed inside it) with the smallest spacing that fits. ``sd`` may pass a prebuilt
    :class:`SignedDistance` of the mesh (mesh frame). Raises InputError when even a 4^3 grid does not
    fit, or when the grid resolves no surface (a shape thinner than the spacing).
    """
    budget = _check_budget(budget_bytes)
    if storage not in GRID_VALUE_BYTES:
        raise InputError(f"storage must be one of {', '.join(GRID_VALUE_BYTES)}, got {storage!r}")
    lo, hi = mesh.V.min(axis=0), mesh.V.max(axis=0)
    extent = float((hi - lo).max())
    if grid_bytes((4, 4, 4), storage) > budget:
        raise InputError(f"an SDF grid needs more than {budget} bytes")
    # bisection on the spacing: bytes fall as the spacing grows
    h_lo, h_hi = extent / 2048.0, extent
    for _ in range(60):
        h = 0.5 * (h_lo + h_hi)
        if grid_bytes(_grid_shape(lo, hi, h), storage) <= budget:
            h_hi = h
        else:
            h_lo = h
    h = h_hi
    shape = _grid_shape(lo, hi, h)
    # centre the grid on the bounding box
    origin = 0.5 * (lo + hi) - 0.5 * h * (np.array(shape) - 1)
    axes = [origin[i] + h * np.arange(shape[i]) for i in range(3)]
    Q = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    if sd is None:
        sd = SignedDistance(mesh.V, mesh.F)
    values = encode_grid(sd.signed(Q).reshape(shape), h, storage)
    V, F = marching_cubes(values, origin=origin, spacing=h)
    return Baseline("sdf-grid", V, F, grid_bytes(shape, storage),
                    {"shape": list(shape), "spacing": h, "storage": storage,
                     "values": int(np.prod(shape))})


# ----------------------------------------------------------------------------- measuring
#: Marching-cubes resolution (cells per axis over the network's bounding cube) of the mesh a user
#: gets from an implicit by default (``core remesh``); comparisons use the same.
COMPARE_RESOLUTION = 256

#: Held-out loss: importance samples at the paper's beta (30), drawn with their own seed.
HELDOUT_BETA = 30.0
HELDOUT_SAMPLES = 100_000
HELDOUT_POOL = 1_000_000
HELDOUT_SEED = 2_147_483_647


def measure_mesh(reference: Mesh, V: np.ndarray, F: np.ndarray) -> dict:
    """Chamfer L1/L2, Hausdorff and p99 (unit-sphere frame) of a surface (V, F) in the mesh frame of
    ``reference`` (:func:`core.geometry.metrics.surface_distances`), as a flat dict."""
    from .metrics import surface_distances

    d = surface_distances(reference, V, F).to_dict()
    return {"chamfer": d["chamfer_l1"], "chamfer_l2": d["chamfer_l2"], "hausdorff": d["hausdorff"],
            "p99": d["p99"], "vertices": int(len(V)), "faces": int(len(F))}


def heldout_set(mesh: Mesh, sd_net: SignedDistance | None = None):
    """A fixed held-out set for ``mesh``: importance samples at beta 30 in the network frame.

    Returns (points (n, 3) float32, sdf (n,) float32), the same for the same mesh on every call."""
    from ..samples.sampling import importance_sample

    if sd_net is None:
        m = mesh.transformed(mesh.normalization())
        sd_net = SignedDistance(m.V, m.F)
    s = importance_sample(sd_net, beta=HELDOUT_BETA, pool=HELDOUT_POOL, samples=HELDOUT_SAMPLES,
                          rng=np.random.default_rng(HELDOUT_SEED))
    return s.points, s.sdf


def measure_implicit(implicit, mesh: Mesh, resolution: int = COMPARE_RESOLUTION,
                     heldout=None, remeshed=None) -> dict:
    """Everything we judge an implicit by, against its source ``mesh``.

    * ``chamfer``, ``chamfer_l2``, ``hausdorff``, ``p99``: of the marching-cubes mesh at
      ``resolution`` (the mesh the user gets), unit-sphere frame;
    * ``surface_error``: the paper's mean |f| on the source surface (unit-sphere frame);
    * ``heldout_loss``: mean |f - sdf| on :func:`heldout_set` (network units, like the training loss);
    * ``grad_median``: median |grad f| at surface points (1 for an exact distance; a field flattened
      at the surface has a small slope and a badly placed zero set under perturbation);
    * ``weight_bytes``.
    ``heldout`` may pass a precomputed :func:`heldout_set`; ``remeshed`` a precomputed
    :class:`core.geometry.remesh.RemeshResult`.
    """
    from ..samples.sampling import sample_surface
    from .metrics import surface_error
    from .remesh import remesh

    r = remeshed if remeshed is not None else remesh(implicit, resolution=resolution)
    out = measure_mesh(mesh, r.V, r.F)
    out["surface_error"] = surface_error(implicit, mesh)
    P, S = heldout if heldout is not None else heldout_set(mesh)
    out["heldout_loss"] = float(np.abs(implicit.evaluate(P).astype(np.float64) - S).mean())
    Ps, _ = sample_surface(mesh.V, mesh.F, 20_000, np.random.default_rng(1))
    g = implicit.gradient(implicit.to_network(Ps))
    out["grad_median"] = float(np.median(np.linalg.norm(g, axis=1)))
    out["weight_bytes"] = int(implicit.weight_bytes)
    out["resolution"] = int(resolution)
    return out
