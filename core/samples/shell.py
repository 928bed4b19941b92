"""Shell mode: open and thin geometry trained as a thin closed shell around the sheet.

Why: a plane, a leaf or a triangle soup encloses no volume, so its winding-number sign is arbitrary
and a network trained on it learns something the source is not (docs/open-geometry.md). The
unsigned distance is well defined for any mesh; offsetting it by a half thickness ``t`` gives the
signed distance of a closed shell,

    d_shell(x) = |d(x)| - t        (negative within t of the sheet, the usual sign convention),

a closed volume whose surface lies at distance t on both sides of the sheet (and rounds its
boundary). The network trained on it is an ordinary implicit: stored, traced, remeshed and combined
like any other. The cost is the offset: the shell's surface is t from the sheet everywhere, so its
Chamfer distance to the sheet is about t (core/conversion/verify.py allows for it).

``ConversionSettings.surface`` chooses: ``closed`` (the signed distance, as always), ``shell``, or
``auto`` (shell when core.samples.openness finds the inside ambiguous, so closed meshes are
unchanged). ``shell_thickness`` is t as a fraction of the shape's radius (unit-sphere frame); in the
network frame, where the farthest vertex lies at MESH_RADIUS, it is ``shell_thickness *
MESH_RADIUS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..common.constants import MESH_RADIUS
from .openness import Openness, detect
from .sampling import SignedDistance


class ShellDistance(SignedDistance):
    """The training target of shell mode: ``|d| - t`` with t = ``half_thickness`` (network units).

    The sampling path asks its distance object for the target (:meth:`target`, :meth:`signed`) and
    weighs points by ``exp(-beta |d - offset|)``: here the offset is t, so the importance samples
    crowd around the shell's surface, where ``d_shell = 0``, as they crowd around a closed mesh's.
    """

    def __init__(self, V: np.ndarray, F: np.ndarray, half_thickness: float,
                 vertex_weights: np.ndarray | None = None):
        super().__init__(V, F, vertex_weights)
        self.offset = float(half_thickness)

    def target(self, d: np.ndarray, inside: np.ndarray) -> np.ndarray:
        return d - self.offset

    def inside(self, Q: np.ndarray) -> np.ndarray:
        return self.unsigned(Q) < self.offset

    def signed(self, Q: np.ndarray) -> np.ndarray:
        return self.unsigned(Q) - self.offset


@dataclass
class Surface:
    """What a conversion trains: ``mode`` "closed" or "shell" (``requested`` may be "auto"),
    ``thickness`` the half thickness as a fraction of the shape's radius (shell mode, else None),
    ``openness`` the detection (None when ``surface="closed"`` skipped it)."""

    mode: str
    requested: str
    thickness: float | None
    openness: Openness | None

    @property
    def half_thickness_net(self) -> float:
        """t in the network frame (0 in closed mode)."""
        return 0.0 if self.thickness is None else self.thickness * MESH_RADIUS

    def to_dict(self) -> dict:
        """``metadata["surface"]`` of the file (docs/file-format.md)."""
        return {"mode": self.mode, "requested": self.requested, "thickness": self.thickness,
                "openness": None if self.openness is None else self.openness.to_dict()}

    def summary(self) -> str | None:
        """The line the command line prints when the source is open (None when it is not)."""
        return describe(self.to_dict())


def describe(surface: dict | None) -> str | None:
    """One line about an open source and the surface chosen for it, from ``Surface.to_dict()``
    (a file's ``metadata["surface"]``); None for a closed source or when nothing was detected."""
    o = (surface or {}).get("openness")
    if not o or not o.get("boundary_edges"):
        return None
    line = (f"open input: {o['boundary_edges']:,} boundary edges, {100 * o['ambiguous_share']:.0f}% "
            f"of points near it neither inside nor outside")
    if surface.get("mode") == "shell":
        return (f"{line}: using shell mode (half thickness {100 * surface['thickness']:.2g}% of "
                "the size)")
    return f"{line}: inside clear enough, closed mode"


def resolve(V_net: np.ndarray, F: np.ndarray, settings) -> Surface:
    """The surface a conversion with ``settings`` trains for the mesh (V_net, F) (network frame)."""
    requested = settings.surface
    openness = None if requested == "closed" else detect(V_net, F)
    shell = requested == "shell" or (requested == "auto" and openness.ambiguous)
    return Surface("shell" if shell else "closed", requested,
                   settings.shell_thickness if shell else None, openness)


def distance_for(mesh_net, settings, surface: Surface | None = None) -> tuple[SignedDistance, Surface]:
    """The distance object whose targets a conversion trains on, and the surface it chose.

    mesh_net : core.meshes.mesh.Mesh already in the network frame.
    surface : :func:`resolve` of it with these settings, when the caller has it already.
    """
    surface = resolve(mesh_net.V, mesh_net.F, settings) if surface is None else surface
    if surface.mode == "shell":
        return (ShellDistance(mesh_net.V, mesh_net.F, surface.half_thickness_net,
                              mesh_net.vertex_weights), surface)
    return SignedDistance(mesh_net.V, mesh_net.F, mesh_net.vertex_weights), surface


def trained_thickness(implicit) -> float | None:
    """The half thickness (fraction of the radius) a network was trained as a shell with, from its
    metadata; None for networks trained on the signed distance (or with no metadata)."""
    s = (implicit.metadata or {}).get("surface") if isinstance(implicit.metadata, dict) else None
    if isinstance(s, dict) and s.get("mode") == "shell" and isinstance(s.get("thickness"), (int, float)):
        return float(s["thickness"])
    return None


#: Newton steps that move a shell's vertices onto its sheet (:func:`sheet_of`); a step after the
#: first is kept only where it brings the value at least this much closer to -t. Measured (one run
#: each, docs/open-geometry.md): the budget-mode teapot's sheet from Hausdorff 0.0234 to 0.0180,
#: the default plane's 0.0124 to 0.0116, lilium's unchanged (0.0144) with a lower Chamfer distance;
#: two plain steps raised lilium's to 0.0175.
SHEET_STEPS = 2
SHEET_ACCEPT = 0.5


def sheet_of(implicit, V: np.ndarray, F: np.ndarray, steps: int = SHEET_STEPS):
    """The sheet a shell network was trained around, from a mesh of its shell (mesh frame): each
    vertex moved along the network's gradient to where the network is -t, i.e. onto the sheet.

    Why: a shell's surface lies t from its sheet on both sides, so as a stand-in for an open source
    it is off by t everywhere (its Chamfer distance to the source is about t). Where the source is
    a sheet (a leaf, a plane, cloth), collapsing the shell gives the sheet itself, a two-sided
    surface (both layers of the shell land on it), within the network's own error of the source.
    The rim around the sheet's boundary lands on the boundary. Returns (V, F) with F unchanged;
    raises InputError for a network not trained as a shell.
    """
    from ..common.errors import InputError

    thickness = trained_thickness(implicit)
    if thickness is None:
        raise InputError("only a network trained as a shell (surface mode shell) has a sheet to "
                         "collapse onto; this one was trained on the signed distance")
    t = thickness * MESH_RADIUS                       # the half thickness in the network frame
    X = implicit.to_network(np.asarray(V, np.float64)).astype(np.float64)
    f = implicit.evaluate(X).astype(np.float64)
    for step in range(steps):
        g = implicit.gradient(X).astype(np.float64)
        g2 = np.maximum((g * g).sum(1), 0.25)         # |grad| ~ 1; no huge steps where it fades
        move = ((f + t) / g2)[:, None] * g
        length = np.linalg.norm(move, axis=1, keepdims=True)
        moved = X - move * np.minimum(1.0, 1.5 * t / np.maximum(length, 1e-300))  # <= 1.5 t a step
        f_moved = implicit.evaluate(moved).astype(np.float64)
        # the first step always; a later one only where it halves the distance to -t (elsewhere,
        # near the rims, it slid the vertex along the sheet: Hausdorff up on lilium and the plane)
        take = np.ones(len(X), bool) if step == 0 else np.abs(f_moved + t) < SHEET_ACCEPT * np.abs(f + t)
        X = np.where(take[:, None], moved, X)
        f = np.where(take, f_moved, f)
    return implicit.to_mesh(X), F
