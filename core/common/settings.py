"""Conversion settings: one typed dataclass from which CLI flags, add-on properties and file metadata
are derived, so every default lives here once.

Each field's ``metadata`` carries the help text and the valid range or choices; ``validate()`` checks
them and raises InputError naming the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from ..representation.implicit import ACTIVATIONS, Architecture
from ..representation.quantize import STORAGES
from .errors import InputError


#: Initialisations of ReLU networks (core/training/model.py): "sphere" (geometric) or "uniform"
#: (PyTorch's).
INITS = ("sphere", "uniform")

#: Default share of far-field samples. Why not 0: with the sphere initialisation they erase the
#: start's surface where importance samples never go (a thin plate kept a 0.17 Hausdorff ghost
#: without them), at no measurable cost near the surface (docs/results.md, sections 5 and 7).
FAR_FRACTION_DEFAULT = 0.02


def described(default, help, **limits):
    """A dataclass field with its help text and valid range or choices: the one description from
    which command-line flags, Blender properties and :func:`check_fields` are derived."""
    return field(default=default, metadata={"help": help, **limits})


_f = described


def check_fields(obj):
    """Check every described field of the dataclass ``obj`` against its type, range and choices
    (an int is taken for a float, numpy integers for ints); raises InputError naming the field."""
    for f in fields(obj):
        v, m = getattr(obj, f.name), f.metadata
        if "help" not in m:
            continue
        typ = type(f.default)
        if typ is float and isinstance(v, (int, np.integer, np.floating)) and not isinstance(v, bool):
            v = float(v)
            object.__setattr__(obj, f.name, v)
        elif typ is int and isinstance(v, np.integer):
            v = int(v)
            object.__setattr__(obj, f.name, v)
        if not isinstance(v, typ) or isinstance(v, bool):
            raise InputError(f"{f.name} must be {typ.__name__}, got {v!r}")
        if "choices" in m and v not in m["choices"]:
            raise InputError(f"{f.name} must be one of {', '.join(m['choices'])}, got {v!r}")
        if "min" in m and not (m["min"] <= v <= m["max"]):
            raise InputError(f"{f.name} must be in {m['min']}..{m['max']}, got {v!r}")
    return obj


@dataclass
class ConversionSettings:
    """Everything that decides how a mesh becomes a network (see docs/algorithms.md)."""

    # architecture
    layers: int = _f(8, "hidden layers of the MLP (the paper's N)", min=1, max=64)
    hidden: int = _f(32, "width of each hidden layer (the paper's H)", min=1, max=4096)
    activation: str = _f("relu", "hidden activation: relu (paper default) or sine (SIREN)",
                         choices=ACTIVATIONS)
    encoding_frequencies: int = _f(0, "positional encoding frequencies L (0 = none)", min=0, max=16)
    # sampling
    beta: float = _f(30.0, "importance weight exp(-beta |sdf|), sdf in the network frame; 0 = uniform",
                     min=0.0, max=1000.0)
    pool: int = _f(2_000_000, "uniform pool size in the bounding sphere", min=1000, max=200_000_000)
    samples: int = _f(300_000, "training set size resampled from the pool", min=1000, max=100_000_000)
    surface_fraction: float = _f(0.25, "share of the training set drawn near the surface instead "
                                      "(surface points moved by a Gaussian of surface_sigma)",
                                 min=0.0, max=0.9)
    far_fraction: float = _f(FAR_FRACTION_DEFAULT, "share of the training set replaced by points drawn "
                                                   "uniformly in the bounding sphere: keeps the sign right "
                                                   "far from the surface, where importance samples are rare",
                             min=0.0, max=0.5)
    surface_sigma: float = _f(0.01, "standard deviation of the near-surface samples, network units",
                              min=0.0, max=0.5)
    gap_factor: float = _f(2.0, "when separate parts lie closer than 5.5 percent of the size, samples, "
                                "pool and epochs times this (1 = off; a stack of several shapes "
                                "keeps its own recipe)", min=1.0, max=4.0)
    part_networks: str = _f("auto", "separate parts closer than 5.5 percent of the size: auto (one "
                                    "network per group of parts far apart, the shape their union, "
                                    "so they cannot merge; up to 8 networks) or one (a single "
                                    "network, trained longer by gap_factor)", choices=("auto", "one"))
    gap_fraction: float = _f(0.0, "share of the training set drawn in narrow gaps between separate "
                                  "parts (0 = off; core/samples/gaps.py)", min=0.0, max=0.5)
    importance_strength: float = _f(10.0, "how much painted vertex weights raise sampling density "
                                         "(w *= 1 + strength * weight)", min=0.0, max=1000.0)
    # open input (core/samples/shell.py, docs/open-geometry.md)
    surface: str = _f("auto", "what the network describes: closed (the signed distance of the mesh's "
                              "inside), shell (a thin closed shell around the surface, for sheets, "
                              "leaves and open meshes) or auto (shell when the mesh is open and its "
                              "inside ambiguous, else closed)", choices=("auto", "closed", "shell"))
    shell_thickness: float = _f(0.01, "half thickness of the shell in shell mode, as a fraction of "
                                      "the shape's radius (the shell's surface lies this far from the "
                                      "sheet on both sides)", min=0.005, max=0.25)
    # training
    init: str = _f("sphere", "initial network (ReLU): sphere (starts as the distance to a sphere, "
                             "geometric initialisation; converges in fewer steps) or uniform "
                             "(PyTorch's default, the paper's)", choices=INITS)
    epochs: int = _f(16, "maximum passes over the training set", min=1, max=10_000)
    lr: float = _f(0.005, "peak Adam learning rate", min=1e-7, max=1.0)
    batch_size: int = _f(1024, "points per gradient step", min=16, max=1_000_000)
    schedule: str = _f("onecycle", "learning-rate schedule", choices=("onecycle", "cosine", "constant"))
    patience: int = _f(0, "stop after this many epochs without improvement (0 = never early-stop)",
                       min=0, max=10_000)
    device: str = _f("auto", "auto (CUDA, else Apple's MPS, else CPU), cpu, cuda or mps (falls back to "
                               "the CPU with a message where MPS fails)",
                     choices=("auto", "cpu", "cuda", "mps"))
    threads: int = _f(0, "CPU threads for torch (0 = all cores but one)", min=0, max=1024)
    seed: int = _f(0, "random seed: same seed, same samples and weights on one machine", min=0,
                   max=2 ** 32 - 1)
    # storage
    dtype: str = _f("float32", "storage precision of the weights in the file", choices=STORAGES)

    def validate(self) -> "ConversionSettings":
        check_fields(self)
        self.architecture           # the network as a whole must be legal (the parameter cap)
        return self

    @property
    def architecture(self) -> Architecture:
        return Architecture(self.layers, self.hidden, self.activation, self.encoding_frequencies)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ConversionSettings":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown settings: {', '.join(sorted(unknown))}")
        return cls(**d).validate()

    def replace(self, **changes) -> "ConversionSettings":
        d = self.to_dict()
        d.update(changes)
        return ConversionSettings.from_dict(d)
