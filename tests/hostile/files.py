"""Hostile .h5 files for the two file readers, crafted with h5py (issue 14).

``cases(tmpdir)`` writes every file into ``tmpdir`` and returns a list of :class:`Case`:

* ``name``: short id, unique;
* ``class_name``: the class of problem the file belongs to:
  ``memory`` (a small file that declares huge arrays or attributes),
  ``outside`` (a file that refers to other files: links, virtual datasets, external storage, or a
  path that is no regular file), ``traceback`` (corrupt or mistyped structure that used to escape
  as another exception than FileFormatError), ``hang`` (corrupt structure that makes HDF5 itself
  loop forever), ``spec`` (gaps of the format: version, transform, checksum coverage) or ``valid``
  (files that must load);
* ``path``: the crafted file;
* ``expected``: ``"error"`` (the reader must raise FileFormatError) or ``"ok"`` (it must load);
* ``reader``: ``"load"`` (core.representation.fileformat.load) or ``"paper"``
  (core.representation.paper_import.load_paper_weights);
* ``needle``: a word the error message must contain (lowercase), or "" for none.

Every ``error`` case must fail with one FileFormatError line, fast, without opening another file and
with bounded memory. Cases pointing at a FIFO (``fifo`` in their name) would block a reader that
follows them; run those in a subprocess with a timeout. Nothing here imports torch.
"""

from __future__ import annotations

import json
import os

import h5py
import numpy as np

from core.representation.fileformat import checksum, legacy_checksum, save
from core.representation.implicit import Architecture, Implicit

from . import Case


SMALL = Architecture(2, 8)


def tiny_implicit(arch: Architecture = SMALL, seed: int = 0, storage: str = "float32") -> Implicit:
    """A random network of ``arch`` (numpy only) with a scale-2 transform."""
    rng = np.random.default_rng(seed)
    shapes = arch.layer_shapes()
    T = np.diag([2.0, 2.0, 2.0, 1.0])
    T[:3, 3] = [0.1, -0.2, 0.3]
    return Implicit(arch, [rng.normal(0, 0.5, s) for s in shapes], [rng.normal(0, 0.1, s[0]) for s in shapes],
                    T, {"source": "hostile"}, storage)


def reseal(f) -> None:
    """Recompute the checksum of an open file from what it holds, so a case tests only its class."""
    groups = [f["layers"]] + ([f["members"][k] for k in sorted(f["members"])]
                              if "members" in f else [])
    layers = [{k: g[str(i)][k][()] for k in g[str(i)]} for g in groups for i in range(len(g))]
    f.attrs["checksum"] = checksum(f.attrs["architecture"], f.attrs["storage"], f["transform"][()], layers)


def _base(tmpdir, name: str, **kw) -> str:
    path = os.path.join(tmpdir, name + ".h5")
    save(tiny_implicit(**kw), path)
    return path


def _edit(tmpdir, name: str, edit, sealed: bool = False, **kw) -> str:
    """A valid file changed by ``edit(f)``; resealed when ``sealed``."""
    path = _base(tmpdir, name, **kw)
    with h5py.File(path, "r+") as f:
        edit(f)
        if sealed:
            reseal(f)
    return path


def _replace(f, where: str, **create) -> None:
    del f[where]
    f.create_dataset(where, **create)


def _set(where: str, value):
    return lambda f: f.attrs.__setitem__(where, value)


def _shell(tmpdir, name: str, arch: dict, layers: int, make) -> str:
    """A file with valid attributes for ``arch`` whose datasets are made by ``make(f)``."""
    path = os.path.join(tmpdir, name + ".h5")
    with h5py.File(path, "w") as f:
        f.attrs.update({"format": "neural-implicit", "format_version": 1, "architecture": json.dumps(arch),
                        "storage": "float32", "metadata": "{}", "checksum": "0" * 64})
        make(f, layers)
    return path


def _unwritten(f, layers, shapes):
    f.create_dataset("transform", shape=(4, 4), dtype="<f8")
    for i in range(layers + 1):
        o, n = shapes[i]
        f.create_dataset(f"layers/{i}/W", shape=(o, n), dtype="<f4")
        f.create_dataset(f"layers/{i}/b", shape=(o,), dtype="<f4")


def _transform(tmpdir, name, A):
    def edit(f):
        T = np.eye(4)
        T[:3, :3] = A
        f["transform"][...] = T
    return _edit(tmpdir, name, edit, sealed=True)


# ============================================================================ classes

def memory_cases(tmpdir) -> list[Case]:
    """Small files that declare gigabytes: unwritten or compressed datasets, oversized networks."""
    big = {"layers": 64, "hidden": 4096, "activation": "relu", "encoding_frequencies": 0}
    out = [Case("largest_old_architecture_unwritten", "memory",
                _shell(tmpdir, "largest_old", big, 64, lambda f, n: _unwritten(f, n, _shapes(64, 4096))),
                "error", needle="parameters")]
    mid = {"layers": 2, "hidden": 900, "activation": "relu", "encoding_frequencies": 0}
    out.append(Case("legal_architecture_unwritten", "memory",
                    _shell(tmpdir, "legal_unwritten", mid, 2,
                           lambda f, n: _unwritten(f, n, _shapes(2, 900))),
                    "error", needle="stores 0 bytes"))
    out.append(Case("declared_huge_weight", "memory", _edit(
        tmpdir, "declared_huge_weight",
        lambda f: _replace(f, "layers/0/W", shape=(1 << 16, 1 << 15), dtype="<f4")), "error", needle="shape"))
    out.append(Case("declared_huge_transform", "memory", _edit(
        tmpdir, "declared_huge_transform",
        lambda f: _replace(f, "transform", shape=(1 << 28, 4), dtype="<f8")), "error", needle="shape"))

    def compressed(f):
        del f["layers/1/W"]
        ds = f.create_dataset("layers/1/W", shape=(1 << 15, 1 << 15), dtype="<f4", chunks=(1024, 1024),
                              compression="gzip")
        ds[:1024, :1024] = 0.0
    out.append(Case("compressed_huge_weight", "memory", _edit(tmpdir, "compressed_huge", compressed),
                    "error", needle="chunked"))
    out.append(Case("chunked_right_shape", "memory", _edit(
        tmpdir, "chunked_right_shape",
        lambda f: _replace(f, "layers/0/W", data=np.zeros((8, 3), "<f4"), chunks=(8, 3),
                           compression="gzip")), "error", needle="chunked"))
    out.append(Case("metadata_too_large", "memory", _edit(
        tmpdir, "metadata_too_large", _set("metadata", json.dumps({"x": "a" * 100_000}))), "error",
        needle="metadata"))
    out.append(Case("architecture_array_attribute", "memory", _edit(
        tmpdir, "architecture_array", _set("architecture", np.zeros(100_000))), "error",
        needle="architecture"))

    def many_groups(f):
        for i in range(400):
            f.create_group(f"extra/{i}")
    out.append(Case("many_entries", "memory", _edit(tmpdir, "many_entries", many_groups), "error",
                    needle="entries"))
    return out


def _shapes(layers: int, hidden: int) -> list[tuple[int, int]]:
    """(out, in) of each layer as Architecture.layer_shapes, also for networks over the cap."""
    return [(hidden, 3)] + [(hidden, hidden)] * (layers - 1) + [(1, hidden)]


def _fifo(tmpdir, name: str) -> str | None:
    path = os.path.join(tmpdir, name)
    if not hasattr(os, "mkfifo"):
        return None
    if not os.path.exists(path):
        os.mkfifo(path)
    return path


def outside_cases(tmpdir) -> list[Case]:
    """Files that refer outside themselves, and paths that are no regular file."""
    other = _base(tmpdir, "other", seed=7)            # a valid file whose bytes must not be read
    fifo = _fifo(tmpdir, "fifo")
    out = []

    def elink_layers(f):
        del f["layers"]
        f["layers"] = h5py.ExternalLink(other, "/layers")
    out.append(Case("external_link_to_other_file", "outside", _edit(tmpdir, "elink_other", elink_layers),
                    "error", needle="external link"))

    def soft(f):
        del f["layers/0/b"]
        f["layers/0/b"] = h5py.SoftLink("/layers/1/b")
    out.append(Case("soft_link", "outside", _edit(tmpdir, "soft_link", soft), "error", needle="soft link"))

    def soft_cycle(f):
        f["loop_a"] = h5py.SoftLink("/loop_b")
        f["loop_b"] = h5py.SoftLink("/loop_a")
    out.append(Case("soft_link_cycle", "outside", _edit(tmpdir, "soft_cycle", soft_cycle), "error",
                    needle="soft link"))

    def hard_cycle(f):
        f["layers/0/up"] = f["/"]
    out.append(Case("hard_link_cycle", "outside", _edit(tmpdir, "hard_cycle", hard_cycle), "error",
                    needle="nested"))

    def vds_other(f):
        layout = h5py.VirtualLayout(shape=(8, 3), dtype="<f4")
        layout[:] = h5py.VirtualSource(other, "layers/0/W", shape=(8, 3))
        del f["layers/0/W"]
        f["layers"]["0"].create_virtual_dataset("W", layout)
    out.append(Case("virtual_dataset_other_file", "outside", _edit(tmpdir, "vds_other", vds_other), "error",
                    needle="virtual"))

    def external_raw(target):
        def edit(f):
            _replace(f, "transform", shape=(4, 4), dtype="<f8", external=[(target, 0, h5py.h5f.UNLIMITED)])
        return edit
    out.append(Case("external_storage_other_file", "outside",
                    _edit(tmpdir, "efile_other", external_raw(other)), "error", needle="external file"))
    if fifo:
        def elink_fifo(f):
            del f["transform"]
            f["transform"] = h5py.ExternalLink(fifo, "/transform")
        out.append(Case("external_link_fifo", "outside", _edit(tmpdir, "elink_fifo", elink_fifo), "error",
                        needle="external link"))

        def vds_fifo(f):
            layout = h5py.VirtualLayout(shape=(4, 4), dtype="<f8")
            layout[:] = h5py.VirtualSource(fifo, "transform", shape=(4, 4))
            del f["transform"]
            f.create_virtual_dataset("transform", layout)
        out.append(Case("virtual_dataset_fifo", "outside", _edit(tmpdir, "vds_fifo", vds_fifo), "error",
                        needle="virtual"))
        out.append(Case("external_storage_fifo", "outside", _edit(tmpdir, "efile_fifo", external_raw(fifo)),
                        "error", needle="external file"))
        out.append(Case("path_is_fifo", "outside", fifo, "error", needle="regular file"))
        out.append(Case("paper_path_is_fifo", "outside", fifo, "error", reader="paper", needle="regular file"))
    out.append(Case("path_is_directory", "outside", str(tmpdir), "error", needle="directory"))
    out.append(Case("path_missing", "outside", os.path.join(tmpdir, "missing.h5"), "error",
                    needle="no such file"))
    return out


def traceback_cases(tmpdir) -> list[Case]:
    """Corrupt or mistyped structure: every one must end as one FileFormatError line."""
    out = []
    for i, (start, length) in enumerate([(512, 256), (1024, 2048), (2000, 64)]):
        path = _base(tmpdir, f"zeroed_{i}")
        data = bytearray(open(path, "rb").read())
        data[start:start + length] = bytes(min(length, max(0, len(data) - start)))
        open(path, "wb").write(bytes(data))
        out.append(Case(f"zeroed_bytes_{start}_{length}", "traceback", path, "error"))
    path = _base(tmpdir, "garbage_tail")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 3:] = np.random.default_rng(1).integers(0, 256, len(data) - len(data) // 3,
                                                             dtype=np.uint8).tobytes()
    open(path, "wb").write(bytes(data))
    out.append(Case("random_tail", "traceback", path, "error"))

    def group_for(where):
        def edit(f):
            del f[where]
            f.create_group(where)
        return edit
    for where in ("transform", "layers/0/W", "layers/1"):
        out.append(Case(f"group_as_{where.replace('/', '_')}", "traceback",
                        _edit(tmpdir, f"group_{where.replace('/', '_')}", group_for(where)), "error"))

    def dataset_for_layers(f):
        del f["layers"]
        f["layers"] = np.zeros(3)
    out.append(Case("dataset_as_layers", "traceback", _edit(tmpdir, "dataset_layers", dataset_for_layers),
                    "error", needle="layers"))
    attrs = {
        "metadata_list": ("metadata", "[1, 2]", "json object"),
        "metadata_string": ("metadata", '"text"', "json object"),
        "metadata_deep": ("metadata", "[" * 8000 + "]" * 8000, "metadata"),
        "metadata_nested_40": ("metadata", '{"a":' * 40 + "1" + "}" * 40, "nested"),
        "metadata_long_number": ("metadata", '{"a": ' + "9" * 5000 + "}", "metadata"),
        "metadata_not_utf8": ("metadata", np.bytes_(b'{"a": "\xff\xfe"}'), "utf-8"),
        "architecture_list": ("architecture", "[]", "json object"),
        "architecture_number": ("architecture", "3", "json object"),
        "architecture_bool": ("architecture", json.dumps({"layers": True, "hidden": 8, "activation": "relu",
                                                           "encoding_frequencies": 0}), "layers"),
        "architecture_float": ("architecture", json.dumps({"layers": 2.0, "hidden": 8, "activation": "relu",
                                                            "encoding_frequencies": 0}), "layers"),
        "architecture_activation_list": ("architecture", json.dumps(
            {"layers": 2, "hidden": 8, "activation": ["relu"], "encoding_frequencies": 0}), "architecture"),
        "checksum_integer": ("checksum", 5, "checksum"),
        "storage_array": ("storage", np.array([b"float32", b"int8"]), "storage"),
        "format_integer": ("format", 7, "not a neural implicit"),
    }
    for name, (key, value, needle) in attrs.items():
        out.append(Case(name, "traceback", _edit(tmpdir, name, _set(key, value)), "error", needle=needle))
    return out


def hang_cases(tmpdir) -> list[Case]:
    """Global heap collections whose object walk never ends in HDF5 (a size-0 free-space object)."""
    out = []
    for name, at in (("global_heap_zero_object", "second"), ("global_heap_zero_first", "first")):
        path = _base(tmpdir, name)
        data = bytearray(open(path, "rb").read())
        p = data.find(b"GCOL") + 16                    # the first object header (8-byte lengths)
        if at == "second":
            p += 16 + (int.from_bytes(data[p + 8:p + 16], "little") + 7) // 8 * 8
        data[p:p + 16] = bytes(16)
        open(path, "wb").write(bytes(data))
        out.append(Case(name, "hang", path, "error", needle="global heap"))
    return out


def spec_cases(tmpdir) -> list[Case]:
    """Gaps of the format: exact version, similarity transforms, checksum over the architecture."""
    out = []
    for name, value, needle in [("version_float", 1.9, "format_version"),
                                ("version_string", "1", "format_version"),
                                ("version_bool", True, "format_version"),
                                ("version_array", np.array([1]), "format_version"),
                                ("version_zero", 0, "version"), ("version_newer", 3, "newer")]:
        out.append(Case(name, "spec", _edit(tmpdir, name, _set("format_version", value)), "error",
                        needle=needle))
    for name, A, needle in [("mirrored_transform", np.diag([-2.0, 2.0, 2.0]), "mirror"),
                            ("sheared_transform", np.array([[2.0, 0.5, 0], [0, 2, 0], [0, 0, 2]]),
                             "similarity"),
                            ("nonuniform_transform", np.diag([1.0, 2.0, 3.0]), "similarity"),
                            ("zero_transform", np.zeros((3, 3)), "scale"),
                            ("overflowing_transform", np.eye(3) * 1e200, "scale")]:
        out.append(Case(name, "spec", _transform(tmpdir, name, A), "error", needle=needle))

    def last_row(f):
        T = f["transform"][()]
        T[3] = [0.5, 0, 0, 1]
        f["transform"][...] = T
    out.append(Case("projective_transform", "spec", _edit(tmpdir, "projective", last_row, sealed=True),
                    "error", needle="affine"))

    def swap_activation(f):
        arch = json.loads(f.attrs["architecture"])
        arch["activation"] = "sine"
        f.attrs["architecture"] = json.dumps(arch, sort_keys=True)
    out.append(Case("activation_swapped", "spec", _edit(tmpdir, "activation_swapped", swap_activation),
                    "error", needle="checksum"))

    def nan_weight(f):
        W = f["layers/1/W"][()]
        W[0, 0] = np.nan
        f["layers/1/W"][...] = W
    out.append(Case("nan_weight_sealed", "spec", _edit(tmpdir, "nan_weight", nan_weight, sealed=True),
                    "error", needle="nan"))
    out.append(Case("extra_root_dataset", "spec", _edit(
        tmpdir, "extra_root", lambda f: f.create_dataset("extra", data=np.zeros(2))), "error",
        needle="extra"))
    return out


def valid_cases(tmpdir) -> list[Case]:
    """Files that must keep loading: every storage, the legacy checksum, a rotation, big-endian arrays."""
    out = [Case(f"valid_{s}", "valid", _base(tmpdir, f"valid_{s}", storage=s), "ok") for s in ("float32",)]
    from core.representation.quantize import with_storage
    for s in ("float16", "int8"):
        path = os.path.join(tmpdir, f"valid_{s}.h5")
        save(with_storage(tiny_implicit(), s), path)
        out.append(Case(f"valid_{s}", "valid", path, "ok"))

    def legacy(f):
        layers = [{k: f["layers"][str(i)][k][()] for k in f["layers"][str(i)]}
                  for i in range(len(f["layers"]))]
        f.attrs["checksum"] = legacy_checksum(f["transform"][()], layers)
    out.append(Case("legacy_checksum", "valid", _edit(tmpdir, "legacy", legacy), "ok"))
    c, s = np.cos(0.7), np.sin(0.7)
    out.append(Case("rotated_transform", "valid",
                    _transform(tmpdir, "rotated", 3.0 * np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])), "ok"))

    def big_endian(f):
        for i in range(len(f["layers"])):
            for k in ("W", "b"):
                a = f[f"layers/{i}/{k}"][()]
                _replace(f, f"layers/{i}/{k}", data=a.astype(">f4"))
    out.append(Case("big_endian_arrays", "valid", _edit(tmpdir, "big_endian", big_endian, sealed=True), "ok"))
    out.append(Case("version_unsigned", "valid",
                    _edit(tmpdir, "version_u8", _set("format_version", np.uint8(1))), "ok"))
    out += member_cases(tmpdir)
    return out


def _members(count: int, version: int = 2, names=None, edit=None):
    """An edit adding ``count`` copies of the first network under /members (format version 2)."""
    def apply(f):
        for k in range(count):
            f.copy(f["layers"], f"members/{names[k] if names else k}")
        f.attrs["format_version"] = version
        if edit is not None:
            edit(f)
    return apply


def member_cases(tmpdir) -> list[Case]:
    """Version 2's /members: a valid union loads; a version 1 file with members, too many networks,
    misnamed members and members of the wrong shape are refused in one line."""
    return [
        Case("members_valid", "valid", _edit(tmpdir, "members_valid", _members(2), sealed=True), "ok"),
        Case("members_in_version_1", "spec",
             _edit(tmpdir, "members_v1", _members(1, version=1), sealed=True), "error",
             needle="version 2"),
        Case("members_too_many", "spec", _edit(tmpdir, "members_many", _members(16), sealed=True),
             "error", needle="networks"),
        Case("members_misnamed", "spec",
             _edit(tmpdir, "members_names", _members(1, names=["x"]), sealed=True), "error",
             needle="members"),
        Case("members_wrong_shape", "spec", _edit(
            tmpdir, "members_shape",
            _members(1, edit=lambda f: _replace(f, "members/0/0/W", shape=(3, 5), dtype="<f4")),
            sealed=True), "error", needle="shape"),
        Case("members_unsealed", "spec", _edit(tmpdir, "members_unsealed", _members(1)), "error",
             needle="checksum"),
    ]


# ============================================================================ the paper's Keras files

def keras_file(path: str, kernels: list, biases: list | None = None, names: list | None = None,
               edit=None) -> str:
    """A Keras ``save_weights`` file like the paper's release (kernels in x out)."""
    names = names or ["dense"] + [f"dense_{i}" for i in range(1, len(kernels))]
    biases = biases if biases is not None else [np.zeros(k.shape[1], "<f4") for k in kernels]
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "2.2.4-tf"
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for n, k, b in zip(names, kernels, biases):
            g = f.create_group(f"{n}/{n}")
            g.create_dataset("kernel:0", data=k)
            g.create_dataset("bias:0", data=b)
        if edit:
            edit(f)
    return path


def _kernels(widths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(0, 0.5, (a, b)).astype("<f4") for a, b in zip(widths[:-1], widths[1:])]


def paper_cases(tmpdir) -> list[Case]:
    """Keras weight files for core.representation.paper_import: two valid, the others hostile."""
    def p(name):
        return os.path.join(tmpdir, f"keras_{name}.h5")
    k = _kernels([3, 8, 8, 1])
    out = [Case("keras_valid", "valid", keras_file(p("valid"), k), "ok", reader="paper"),
           Case("keras_constant", "valid", keras_file(p("constant"), [np.zeros_like(a) for a in k]), "ok",
                reader="paper")]

    def L(name, cls, needle, **kw):
        out.append(Case(f"keras_{name}", cls, keras_file(p(name), **{"kernels": k, **kw}), "error",
                        reader="paper", needle=needle))

    def replace(where, **create):
        return lambda f: _replace(f, where, **create)
    L("declared_huge_kernel", "memory", "stores 0 bytes",
      edit=replace("dense_1/dense_1/kernel:0", shape=(8, 8), dtype="<f4"))
    L("huge_kernel_shape", "memory", "expected",
      edit=replace("dense_1/dense_1/kernel:0", shape=(8, 1 << 28), dtype="<f4"))
    L("compressed_kernel", "memory", "chunked",
      edit=replace("dense/dense/kernel:0", data=np.zeros((3, 8), "<f4"), compression="gzip"))
    L("too_many_layer_names", "memory", "layers",
      edit=_set("layer_names", np.array([b"d%d" % i for i in range(5_000)])))
    L("layer_name_slash", "traceback", "layer name",
      edit=_set("layer_names", np.array([b"../dense", b"dense_1"])))
    L("layer_names_integers", "traceback", "layer_names", edit=_set("layer_names", np.arange(3)))
    L("kernel_is_group", "traceback", "nested",
      edit=lambda f: (f.__delitem__("dense_1/dense_1/kernel:0"), f.create_group("dense_1/dense_1/kernel:0")))
    L("missing_layer", "traceback", "lacks", edit=lambda f: f.__delitem__("dense_2"))
    L("integer_kernel", "spec", "must be", kernels=[a.astype("<i4") for a in k])
    L("broken_chain", "spec", "expected", kernels=_kernels([3, 8, 9, 1]))
    out.append(Case("keras_unequal_widths", "spec", keras_file(p("unequal"), [k[0], _kernels([8, 16])[0],
                                                                               _kernels([16, 1])[0]]),
                    "error", reader="paper", needle="equal"))
    nan = [a.copy() for a in k]
    nan[1][0, 0] = np.nan
    L("nan_kernel", "spec", "nan", kernels=nan)
    other = keras_file(p("other"), k)

    def elink(f):
        del f["dense_1"]
        f["dense_1"] = h5py.ExternalLink(other, "/dense_1")
    L("external_link", "outside", "external link", edit=elink)

    def vds(f):
        layout = h5py.VirtualLayout(shape=(8, 8), dtype="<f4")
        layout[:] = h5py.VirtualSource(other, "dense_1/dense_1/kernel:0", shape=(8, 8))
        del f["dense_1/dense_1/kernel:0"]
        f["dense_1/dense_1"].create_virtual_dataset("kernel:0", layout)
    L("virtual_kernel", "outside", "virtual", edit=vds)
    fifo = _fifo(tmpdir, "fifo")
    if fifo:
        L("external_bias_fifo", "outside", "external file",
          edit=replace("dense/dense/bias:0", shape=(8,), dtype="<f4",
                       external=[(fifo, 0, h5py.h5f.UNLIMITED)]))
    L("soft_link_layer", "outside", "soft link",
      edit=lambda f: (f.__delitem__("dense_1"), f.__setitem__("dense_1", h5py.SoftLink("/dense"))))
    return out


def cases(tmpdir) -> list[Case]:
    """Every crafted case, written into ``tmpdir`` (a fresh directory)."""
    tmpdir = os.fspath(tmpdir)
    return (memory_cases(tmpdir) + outside_cases(tmpdir) + traceback_cases(tmpdir) + hang_cases(tmpdir)
            + spec_cases(tmpdir) + valid_cases(tmpdir) + paper_cases(tmpdir))
