"""The numpy reference sphere tracer (core/geometry/trace.py) against analytic spheres and
ellipsoids.

An analytic signed distance (duck-typed like an Implicit) checks the camera model and the stepping
rule exactly; a small network trained on a sphere checks the tracer on a real, approximate SDF.
"""

import os
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest

from core.common.errors import InputError
from core.geometry.trace import (SELECTED_SRGB, TraceItem, TraceSettings, item_frames, look_at, orthographic,
                                 perspective, pixel_ndc, save_png, trace)

import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOV = np.radians(40.0)


class AnalyticSphere:
    """Exact SDF |x - c| - r in the network frame, with an optional mesh -> network transform."""

    def __init__(self, radius, center=(0.0, 0.0, 0.0), transform=None):
        self.radius = radius
        self.center = np.asarray(center, dtype=np.float64)
        self.transform = np.eye(4) if transform is None else np.asarray(transform, dtype=np.float64)

    def evaluate(self, Q, chunk=0):
        return (np.linalg.norm(np.asarray(Q, dtype=np.float64) - self.center, axis=1)
                - self.radius).astype(np.float32)


def sphere_mask_perspective(eye, center, radius, width, height, fov=FOV):
    """Pixels whose ray from ``eye`` (camera looking at ``center``) meets the sphere, from angles."""
    dist = np.linalg.norm(np.subtract(center, eye))
    ndc = pixel_ndc(width, height)
    tan = np.tan(fov / 2)
    dirs = np.stack([ndc[..., 0] * tan * width / height, ndc[..., 1] * tan,
                     -np.ones((height, width))], -1)
    cos = -dirs[..., 2] / np.linalg.norm(dirs, axis=-1)
    angle = np.arccos(np.clip(cos, -1, 1))
    return angle, np.arcsin(radius / dist)


@pytest.fixture(scope="module")
def trained_sphere():
    """A 3 x 32 ReLU network fitted to |x| - 0.5 in a few seconds (mean surface error ~0.003)."""
    pytest.importorskip("torch")
    return helpers.trained_ball(10_000)


def test_analytic_sphere_matches_projection_and_depth():
    eye, r = np.array([0.0, -3.0, 0.0]), 0.5
    V, P = look_at(eye, (0, 0, 0)), perspective(FOV, 1.0, 0.1, 100.0)
    res = trace([(AnalyticSphere(r), np.eye(4))], V, P, 64, 64)
    angle, limit = sphere_mask_perspective(eye, (0, 0, 0), r, 64, 64)
    expected = angle < limit
    # rays within 0.05 px of the silhouette may go either way (epsilon, float rounding)
    near_edge = np.abs(angle - limit) < 0.05 * np.tan(FOV / 2) * 2 / 64
    assert expected.sum() > 500
    assert np.all((res.hit == expected) | near_edge)
    # depth at a pixel: distance along the ray to the sphere, through the projection
    assert np.all(res.depth[~res.hit] == 1.0)
    Pw = res.position[res.hit]
    assert np.allclose(np.linalg.norm(Pw, axis=1), r, atol=2e-3)
    assert np.allclose(res.normal[res.hit], Pw / np.linalg.norm(Pw, axis=1, keepdims=True),
                       atol=1e-2)
    clip = np.column_stack([Pw, np.ones(len(Pw))]) @ (P @ V).T
    assert np.allclose(res.depth[res.hit], 0.5 * clip[:, 2] / clip[:, 3] + 0.5, atol=1e-6)
    # the nearest point: eye distance 3, radius 0.5 -> view z = -2.5
    z = -2.5
    nearest = 0.5 * ((P[2, 2] * z + P[2, 3]) / -z) + 0.5
    assert abs(res.depth.min() - nearest) < 2e-4
    assert res.rgba[res.hit, 3].min() == 1.0 and res.rgba[~res.coverage, 3].max() == 0.0


def test_non_uniform_scale_and_orthographic_camera():
    """An ellipsoid (sphere under diag(2, 1, 0.5)) seen orthographically along -y is an exact
    ellipse: tracing in the network frame handles non-uniform scale without over-stepping."""
    r = 0.6
    M = np.diag([2.0, 1.0, 0.5, 1.0])
    M[:3, 3] = (0.3, 0.0, -0.1)
    V = look_at((0.3, -5.0, -0.1), (0.3, 0.0, -0.1))
    P = orthographic(1.0, 2.0, 0.1, 20.0)     # 4 x 2 world units on 96 x 48 pixels
    res = trace([TraceItem(AnalyticSphere(r), M)], V, P, 96, 48, TraceSettings(max_steps=128))
    ndc = pixel_ndc(96, 48)
    x, z = ndc[..., 0] * 2.0, ndc[..., 1] * 1.0          # world offsets from the centre
    inside = (x / (2 * r)) ** 2 + (z / (0.5 * r)) ** 2
    expected = inside < 1
    assert expected.sum() > 200
    assert np.all((res.hit == expected) | (np.abs(inside - 1) < 0.02))
    # the hit point lies on the ellipsoid in world space
    Pw = res.position[res.hit] - M[:3, 3]
    assert np.allclose(((Pw / np.diag(M)[:3]) ** 2).sum(1), r * r, atol=5e-3)


def test_camera_inside_the_ball_and_behind_the_near_plane():
    """Rays start at the near plane when the camera is inside the bounding ball."""
    V, P = look_at((0.0, -0.8, 0.0), (0, 0, 0)), perspective(FOV, 1.0, 0.05, 10.0)
    res = trace([(AnalyticSphere(0.2), np.eye(4))], V, P, 32, 32)
    assert res.hit[16, 16] and res.hit.sum() > 50
    V_back = look_at((0.0, -0.8, 0.0), (0, -2, 0))          # looking away: nothing
    assert not trace([(AnalyticSphere(0.2), np.eye(4))], V_back, P, 32, 32).hit.any()


def test_trained_sphere_network(trained_sphere):
    eye = np.array([1.0, -2.5, 0.8])
    V, P = look_at(eye, (0, 0, 0)), perspective(FOV, 1.0, 0.1, 100.0)
    res = trace([(trained_sphere, np.eye(4))], V, P, 64, 64)
    angle, limit = sphere_mask_perspective(eye, (0, 0, 0), 0.5, 64, 64)
    expected = angle < limit
    iou = (res.hit & expected).sum() / (res.hit | expected).sum()
    assert iou >= 0.98, iou
    pixel = np.tan(FOV / 2) * 2 / 64
    assert np.all((res.hit == expected) | (np.abs(angle - limit) < 1.5 * pixel))
    assert 1 < res.mean_steps < 40
    assert (res.steps == 0).any() and (res.steps[res.hit] > 0).all()   # rays missing the ball: 0


def test_two_items_occlude_by_depth_and_transforms_apply():
    V, P = look_at((0.0, -4.0, 0.0), (0, 0, 0)), perspective(FOV, 1.0, 0.1, 100.0)
    sphere = AnalyticSphere(0.5)
    front = np.eye(4)
    front[:3, 3] = (0.25, -1.0, 0.0)                       # nearer the camera, shifted right
    back = np.diag([1.5, 1.5, 1.5, 1.0])
    back[:3, 3] = (-0.4, 1.0, 0.0)
    res = trace([(sphere, back, (0, 0, 1, 1)), (sphere, front, (1, 0, 0, 1))], V, P, 64, 64)
    assert set(np.unique(res.item)) == {-1, 0, 1}
    # where both project, the front item (index 1) wins
    only_back = trace([(sphere, back)], V, P, 64, 64).hit
    only_front = trace([(sphere, front)], V, P, 64, 64).hit
    both = only_back & only_front
    assert both.any() and np.all(res.item[both] == 1)
    assert np.array_equal(res.hit, only_back | only_front)
    # the back item is 1.5 times larger in the world
    assert np.allclose(np.linalg.norm(res.position[res.item == 0] - back[:3, 3], axis=1), 0.75,
                       atol=3e-3)


def test_selection_outline_surrounds_the_silhouette():
    V, P = look_at((0.0, -3.0, 0.0), (0, 0, 0)), perspective(FOV, 1.0, 0.1, 100.0)
    plain = trace([(AnalyticSphere(0.5), np.eye(4))], V, P, 64, 64)
    sel = trace([(AnalyticSphere(0.5), np.eye(4), (0.8, 0.8, 0.8, 1), True)], V, P, 64, 64)
    assert np.array_equal(plain.coverage, plain.hit)
    assert np.array_equal(sel.hit, plain.hit)
    ring = sel.coverage & ~sel.hit
    assert ring.sum() > 50
    assert np.allclose(sel.rgba[ring, :3], SELECTED_SRGB, atol=2e-3)
    assert np.all(sel.depth[ring] < 1)
    # one or two pixels wide: every ring pixel touches the surface's 2-pixel neighbourhood
    grown = plain.hit.copy()
    for _ in range(2):
        g = grown.copy()
        g[1:] |= grown[:-1]; g[:-1] |= grown[1:]; g[:, 1:] |= grown[:, :-1]; g[:, :-1] |= grown[:, 1:]
        grown = g
    assert np.all(grown[ring])


def test_item_frames_world_step_scale_is_min_singular_value():
    M = np.diag([3.0, 1.0, 0.25, 1.0])
    fr = item_frames((AnalyticSphere(0.5, transform=np.diag([2.0, 2.0, 2.0, 1.0])), M),
                     np.eye(4), perspective(FOV, 1.0, 0.1, 10.0), 64)
    # network -> world is M @ inv(T): singular values 1.5, 0.5, 0.125
    assert fr.world_step_scale == pytest.approx(0.125)
    assert not fr.mirrored
    fr = item_frames((AnalyticSphere(0.5), np.diag([-1.0, 1.0, 1.0, 1.0])), np.eye(4),
                     perspective(FOV, 1.0, 0.1, 10.0), 64)
    assert fr.mirrored


def test_camera_helpers_follow_blender_conventions():
    V = look_at((1.0, 2.0, 3.0), (1.0, 2.0, 0.0), up=(0.0, 1.0, 0.0))
    assert np.allclose(np.linalg.inv(V)[:3, 3], (1, 2, 3))
    assert np.allclose(V @ [1.0, 2.0, 0.0, 1.0], (0, 0, -3, 1))        # looks down -z
    P = perspective(FOV, 2.0, 0.1, 10.0)
    for z, depth in ((-0.1, 0.0), (-10.0, 1.0)):
        c = P @ [0.0, 0.0, z, 1.0]
        assert 0.5 * c[2] / c[3] + 0.5 == pytest.approx(depth, abs=1e-9)
    ndc = pixel_ndc(4, 2)
    assert ndc.shape == (2, 4, 2)
    assert np.allclose(ndc[0, 0], (-0.75, 0.5)) and np.allclose(ndc[1, 3], (0.75, -0.5))


def test_bad_arguments_raise_input_error():
    V, P = np.eye(4), perspective(FOV, 1.0, 0.1, 10.0)
    item = (AnalyticSphere(0.5), np.eye(4))
    with pytest.raises(InputError, match="max_steps"):
        trace([item], V, P, 8, 8, TraceSettings(max_steps=0))
    with pytest.raises(InputError, match="step_factor"):
        trace([item], V, P, 8, 8, TraceSettings(step_factor=1.5))
    with pytest.raises(InputError, match="width and height"):
        trace([item], V, P, 0, 8)
    with pytest.raises(InputError, match="matrix_world"):
        trace([(AnalyticSphere(0.5), np.eye(3))], V, P, 8, 8)
    with pytest.raises(InputError, match="trace item"):
        trace([object()], V, P, 8, 8)
    assert not trace([], V, P, 8, 8).coverage.any()


def _read_png(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        n, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        assert struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0] == zlib.crc32(tag + body)
        if tag == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif tag == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, ctype = ihdr[:4]
    c = 4 if ctype == 6 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * c)
    assert np.all(raw[:, 0] == 0)
    return raw[:, 1:].reshape(h, w, c)


def test_save_png_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    img = rng.random((5, 7, 4)).astype(np.float32)
    size = save_png(img, tmp_path / "a.png")
    assert size == os.path.getsize(tmp_path / "a.png")
    assert np.array_equal(_read_png(tmp_path / "a.png"), np.round(img * 255).astype(np.uint8))
    rgb = rng.integers(0, 256, (3, 2, 3), dtype=np.uint8)
    save_png(rgb, tmp_path / "b.png")
    assert np.array_equal(_read_png(tmp_path / "b.png"), rgb)
    with pytest.raises(InputError, match="shape"):
        save_png(np.zeros((4, 4)), tmp_path / "c.png")


def test_trace_runs_without_torch(tmp_path):
    """Tracing and previews need numpy alone (torch is blocked in a fresh interpreter)."""
    code = f"""
import sys
sys.modules['torch'] = None
sys.path.insert(0, {ROOT!r})
import numpy as np
from core.representation.implicit import Architecture, Implicit
from core.geometry.trace import trace, look_at, perspective, save_png
rng = np.random.default_rng(0)
arch = Architecture(layers=2, hidden=8)
W = [rng.normal(0, 0.5, s) for s in arch.layer_shapes()]
b = [np.zeros(s[0]) for s in arch.layer_shapes()]
b[-1][0] = -0.3
imp = Implicit(arch, W, b)
res = trace([(imp, np.eye(4))], look_at((0, -3, 0), (0, 0, 0)), perspective(0.7, 1, 0.1, 10), 16, 16)
save_png(res.rgba, {str(tmp_path / 'p.png')!r})
assert 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]
print(res.hit.sum())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "p.png").exists()
