"""Sampling beside torch's import (core.training.prefetch): the forked sampler returns what sampling
here returns, forwards progress, passes errors on, survives a dead child and obeys cancel."""

import os
import subprocess
import sys

import numpy as np
import pytest

from core.common.errors import Cancelled, InputError
from core.common.progress import CancelToken
from core.common.settings import ConversionSettings
from core.meshes.mesh import load_mesh
from core.training import prefetch
from core.training.convert import training_set
from helpers import ROOT, mesh_path

forks = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the forked path is Linux's")
SETTINGS = ConversionSettings(pool=100_000, samples=20_000).validate()


def _spot_set(progress=None, cancel=None):
    mesh = load_mesh(mesh_path("spot.obj"))
    net = mesh.transformed(mesh.normalization())
    return training_set(net, SETTINGS, np.random.default_rng(SETTINGS.seed), progress, cancel)


@forks
def test_forked_sampler_returns_the_same_set_and_forwards_progress():
    records = []
    forked = prefetch._forked(_spot_set, records.append, None)
    here = _spot_set()
    assert np.array_equal(forked.points, here.points) and np.array_equal(forked.sdf, here.sdf)
    assert {**forked.stats, "seconds": 0} == {**here.stats, "seconds": 0}
    assert records and all(r.stage == "sampling" for r in records)


def _fails(progress, cancel):
    raise InputError("the mesh has no faces")


def _dies(progress, cancel):
    if os.getpid() != PARENT:
        os._exit(3)
    return "sampled here"


def _slow(progress, cancel):
    import time
    time.sleep(30)


PARENT = os.getpid()


@forks
def test_forked_sampler_errors_and_deaths():
    with pytest.raises(InputError, match="no faces"):
        prefetch._forked(_fails, None, None)
    assert prefetch._forked(_dies, None, None) == "sampled here"   # a dead child: sampled here


@forks
def test_forked_sampler_cancels_at_once():
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        prefetch._forked(_slow, None, token)


def test_a_conversion_without_torch_loaded_overlaps_and_imports_it():
    """The real path: a fresh interpreter, torch not yet imported when sampling starts."""
    code = ("import sys, numpy as np\n"
            "from core.training.prefetch import sample_beside_torch\n"
            "assert 'torch' not in sys.modules\n"
            "r = sample_beside_torch(lambda p, c: np.arange(5), None, None)\n"
            "assert 'torch' in sys.modules and list(r) == [0, 1, 2, 3, 4]\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
