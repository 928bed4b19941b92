"""Neural Implicit core: meshes to weight-encoded neural implicits and back, with no Blender inside.

One package per pipeline stage, in the order data flows:

* ``meshes``: Mesh input: read (OBJ, PLY, STL, OFF; bounded), validate, canonical order, normalise.
* ``samples``: Training samples: winding-number sign, BVH distance, importance sampling; open input
  detected and converted as a thin shell.
* ``training``: Training: the network in torch, the one training loop, one shape converted, and the
  size modes (target error, byte budget).
* ``representation``: The trained shape: the network's layout, numpy evaluation, quantisation, the
  .h5 file format, the paper's released weights, placement.
* ``geometry``: Back to geometry: marching cubes and remeshing, sphere tracing and its GLSL, CSG,
  volume grids, metrics and equal-byte baselines.
* ``conversion``: The conversion as callers run it: size mode, then every result checked against its
  source; many shapes at once; in a child process.
* ``common``: Shared by every stage: errors, constants, progress and cancellation, the conversion
  settings, units, strict JSON, output paths, bounded reads, parent death.

``dataset`` converts whole folders and ``cli`` is the command line (``python -m core``).

Torch is imported only by ``model``, ``train`` and ``convert``'s training step; loading, evaluating,
tracing and remeshing need numpy (and h5py for files) alone.
"""

__version__ = "0.1.0"
