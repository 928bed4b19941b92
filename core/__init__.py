"""Neural Implicit core: meshes to weight-encoded neural implicits and back, with no Blender inside.

The pipeline, in the order data flows (one module each): ``mesh_io`` / ``mesh`` (load, validate,
normalise) -> ``sampling`` (signed distances, importance sampling) -> ``train`` on ``model`` (torch)
-> ``implicit`` (the trained shape, numpy evaluation) -> ``fileformat`` (.h5) -> ``remesh``,
``trace``, ``csg``, ``metrics``. ``convert`` wires the steps and ``cli`` is the command line.

Torch is imported only by ``model``, ``train`` and ``convert``'s training step; loading, evaluating,
tracing and remeshing need numpy (and h5py for files) alone.
"""

__version__ = "0.1.0"
