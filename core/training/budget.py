"""Budget mode: the most accurate implicit whose stored numbers fit in a given number of bytes.

Why: the paper sells weight-encoded implicits as a lossy compression (§3.3, Figure 8). At a byte
budget the choices that matter are the storage precision, the network's shape and the training
recipe. They were measured on real meshes (``bench/budget_levers.py``, docs/results.md); this
module applies the winners:

* **storage int8** with per-channel scales (core/representation/quantize.py): nearly 4x the
  parameters of float32 in the same bytes, its rounding error undone by quantisation-aware
  fine-tuning (core/training/refine.py);
* **shallow and wide** (:data:`DEPTH` hidden layers, the widest that fits): at equal bytes a
  4 x 95 network beats 7 x 64 and 10 x 54 on every metric;
* positional encoding (L = 4) with far-field samples, error-driven resampling near the surface
  (with candidates on the surface itself, chosen by squared error) and quantisation-aware
  fine-tuning (:data:`RECIPE`, :data:`REFINEMENTS`), the number of epochs scaled
  with the network's size (:func:`epochs_for`).

Bytes are counted as ``Implicit.weight_bytes``: weights, biases and scales at their stored size
plus the 128-byte transform (docs/file-format.md); the HDF5 container and metadata are not counted,
just as a mesh's file header is not counted in core/geometry/baselines.py.
"""

from __future__ import annotations

import time

import numpy as np

from ..common.errors import InputError
from ..common.settings import ConversionSettings
from ..representation.implicit import Architecture
from ..representation.quantize import STORAGES, TRANSFORM_BYTES, encode_layer

#: Storage precision of budget-mode networks (see the module docstring).
STORAGE = "int8"

#: Hidden layers of budget-mode networks; the width is the largest that fits.
DEPTH = 4

#: Positional-encoding frequencies of budget-mode networks (0 = plain coordinates). With L = 4 the
#: bunny's Chamfer distance halves at equal bytes; it needs the far-field samples of RECIPE.
ENCODING_FREQUENCIES = 4

#: Narrowest network budget mode builds; below it the depth is reduced, down to one hidden layer.
MIN_WIDTH = 8

#: Training knobs of budget mode (ConversionSettings fields), applied over the caller's settings:
#: 10 epochs over 1 M samples from a 6 M pool, the sphere start and batch 1024 at peak lr 0.005
#: (with QAT_EPOCHS, 12 M sample-steps). Against the recipe before it (20 epochs, a 10 M pool,
#: PyTorch's initialisation, batch 4096, lr 0.015, 3 epochs of fine-tuning: 23 M) it measured the
#: same Chamfer distance at 30 kB on bunny.off and spot.obj in half the time; the Hausdorff distance
#: went down on the bunny and up on spot (bench/budget_recipe.py; docs/results.md, section 7).
RECIPE = {"epochs": 10, "lr": 0.005, "batch_size": 1024, "schedule": "onecycle", "far_fraction": 0.1,
          "samples": 1_000_000, "pool": 6_000_000, "init": "sphere"}

#: The ConversionSettings fields budget mode decides itself (the caller's values are not used).
DECIDES = ("layers", "hidden", "activation", "encoding_frequencies", "dtype", *RECIPE)

#: Refinements of budget mode (core.training.refine.Refinements fields): error-driven resampling of
#: half the set every 2 epochs from 30 % on, among 1M candidates within 0.05 of the surface, 80 % of
#: them drawn on the surface (sigma 0.005) and picked with probability ∝ error², then 2 epochs of
#: quantisation-aware fine-tuning. The surface candidates and the squared error aim at the
#: Hausdorff distance: on bunny.off it sits in narrow grooves at the base that the importance
#: samples hardly reach (docs/results.md, "budget levers").
REFINEMENTS = {"resample_every": 2, "resample_start": 0.3, "resample_share": 0.5,
               "resample_pool": 1_000_000, "resample_power": 2.0, "resample_band": 0.05,
               "resample_surface": 0.8, "resample_sigma": 0.005,
               "qat_epochs": 2, "qat_lr": 5e-4}

#: Epoch scaling: RECIPE["epochs"] for the network of REFERENCE_BUDGET bytes (where the recipe was
#: measured), times sqrt(reference parameters / parameters), within [MIN_EPOCHS, MAX_EPOCHS]:
#: a bigger network gets fewer epochs but more training time (x 1.4 for twice the bytes), since
#: it needs more steps to use its capacity; a smaller one more epochs.
REFERENCE_BUDGET = 30_000
MIN_EPOCHS, MAX_EPOCHS = 8, 40


def architecture_bytes(arch: Architecture, storage: str) -> int:
    """``Implicit.weight_bytes`` of a network of ``arch`` stored as ``storage``, without training it."""
    if storage not in STORAGES:
        raise InputError(f"storage must be one of {', '.join(STORAGES)}, got {storage!r}")
    total = TRANSFORM_BYTES
    for o, i in arch.layer_shapes():
        total += sum(a.nbytes for a in encode_layer(np.zeros((o, i)), np.zeros(o), storage).values())
    return total


def widest(budget_bytes: int, layers: int, storage: str = STORAGE,
           encoding_frequencies: int = ENCODING_FREQUENCIES, activation: str = "relu"):
    """The widest Architecture of ``layers`` hidden layers that fits ``budget_bytes``, or None."""
    def fits(h):
        try:
            arch = Architecture(layers, h, activation, encoding_frequencies)
        except InputError:          # over the parameter cap (core.representation.implicit.MAX_PARAMETERS)
            return False
        return architecture_bytes(arch, storage) <= budget_bytes
    if not fits(1):
        return None
    lo, hi = 1, 2
    while hi <= 4096 and fits(hi):
        lo, hi = hi, hi * 2
    hi = min(hi, 4097)
    while hi - lo > 1:                 # fits(lo), not fits(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return Architecture(layers, lo, activation, encoding_frequencies)


def plan(budget_bytes: int, storage: str = STORAGE, depth: int = DEPTH,
         encoding_frequencies: int = ENCODING_FREQUENCIES) -> Architecture:
    """The architecture budget mode trains for ``budget_bytes``: ``depth`` hidden layers as wide as
    fits; when that is narrower than MIN_WIDTH, fewer layers. Raises InputError when not even one
    hidden layer of MIN_WIDTH (or, failing that, of width 1) fits."""
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, (int, np.integer)) \
            or budget_bytes < 1:
        raise InputError(f"budget must be a positive number of bytes, got {budget_bytes!r}")
    for layers in range(depth, 0, -1):
        arch = widest(int(budget_bytes), layers, storage, encoding_frequencies)
        if arch is not None and arch.hidden >= MIN_WIDTH:
            return arch
    arch = widest(int(budget_bytes), 1, storage, encoding_frequencies)
    if arch is None:
        need = architecture_bytes(Architecture(1, 1, "relu", encoding_frequencies), storage)
        raise InputError(f"a budget of {budget_bytes} bytes is too small: the smallest network "
                         f"stored as {storage} needs {need} bytes")
    return arch


def epochs_for(arch: Architecture, base: int | None = None) -> int:
    """Epochs for a budget-mode network (see REFERENCE_BUDGET); ``base`` those of the reference
    network (default RECIPE's)."""
    base = RECIPE["epochs"] if base is None else base
    e = base * np.sqrt(plan(REFERENCE_BUDGET).parameters / max(arch.parameters, 1))
    return int(np.clip(round(e), MIN_EPOCHS, MAX_EPOCHS))


def budget_settings(budget_bytes: int, settings: ConversionSettings | None = None,
                    recipe: dict | None = None):
    """(ConversionSettings, Refinements) of budget mode for ``budget_bytes``: the architecture from
    :func:`plan`, the storage and the recipe applied over ``settings`` (whose seed, device, threads,
    beta and importance strength are kept). ``recipe``: changes to :data:`RECIPE` (a quick
    plumbing test's, e.g. bench/gpu_check.py --quick); budget mode itself uses RECIPE as is."""
    from .refine import Refinements

    settings = (settings or ConversionSettings()).validate()
    recipe = {**RECIPE, **(recipe or {})}
    arch = plan(budget_bytes)
    s = settings.replace(layers=arch.layers, hidden=arch.hidden, activation=arch.activation,
                         encoding_frequencies=arch.encoding_frequencies, dtype=STORAGE,
                         **{**recipe, "epochs": epochs_for(arch, recipe["epochs"])})
    return s, Refinements(**REFINEMENTS).validate()


def convert_to_budget(mesh, budget_bytes: int, settings: ConversionSettings | None = None,
                      progress=None, cancel=None, recipe: dict | None = None):
    """Convert ``mesh`` into the most accurate implicit whose ``weight_bytes`` fit ``budget_bytes``.

    Returns the same ConversionResult as core.training.convert.convert_mesh;
    ``implicit.metadata["budget"]`` records the budget, the architecture and storage chosen, the
    bytes used and the recipe. Raises InputError for a budget too small for any network; Cancelled
    when ``cancel`` is set.
    """
    from .convert import convert_mesh

    t0 = time.perf_counter()
    s, refinements = budget_settings(budget_bytes, settings, recipe)
    result = convert_mesh(mesh, s, progress, cancel, refinements=refinements)
    used = result.implicit.weight_bytes
    if used > budget_bytes:            # a bug, never the user's fault: fail loudly
        raise AssertionError(f"budget mode used {used} bytes of {budget_bytes}")
    result.implicit.metadata["budget"] = {
        "budget_bytes": int(budget_bytes), "weight_bytes": int(used), "storage": s.dtype,
        "layers": s.layers, "hidden": s.hidden, "encoding_frequencies": s.encoding_frequencies,
        "epochs": s.epochs, "seconds": round(time.perf_counter() - t0, 2)}
    return result
