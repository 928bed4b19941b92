"""core.training.train.pick_device: 'auto' tries CUDA, then Apple's MPS, then the CPU; a failing MPS
falls back to the CPU with a message and never raises. MPS is faked (monkeypatched availability, a
failing transfer), so these run on any machine."""

import pytest
import torch

from core.common.errors import InputError
from core.common.settings import ConversionSettings
from core.training.train import pick_device


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def mps_available(monkeypatch, available):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: available)


def test_auto_takes_cuda_first(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    mps_available(monkeypatch, True)
    assert pick_device("auto") == torch.device("cuda")


def test_auto_without_cuda_or_mps_is_the_cpu_without_a_message(no_cuda, monkeypatch):
    mps_available(monkeypatch, False)
    notes = []
    assert pick_device("auto", notes.append) == torch.device("cpu")
    assert notes == []


def test_auto_takes_mps_when_it_works(no_cuda, monkeypatch):
    """A working MPS is faked by letting tensors 'move' to mps and stay on the CPU."""
    mps_available(monkeypatch, True)
    real_to = torch.Tensor.to
    moved = []

    def fake_to(self, *args, **kwargs):
        if args and args[0] == "mps":
            moved.append(args[0])
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", fake_to)
    notes = []
    assert pick_device("auto", notes.append) == torch.device("mps")
    assert moved and notes == []


@pytest.mark.parametrize("name", ["auto", "mps"])
def test_a_failing_mps_falls_back_to_the_cpu_with_a_message(no_cuda, monkeypatch, name):
    mps_available(monkeypatch, True)
    real_to = torch.Tensor.to

    def failing_to(self, *args, **kwargs):
        if args and args[0] == "mps":
            raise RuntimeError("MPS backend out of memory (faked)")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", failing_to)
    notes = []
    assert pick_device(name, notes.append) == torch.device("cpu")
    assert len(notes) == 1 and "faked" in notes[0] and "CPU" in notes[0]


def test_a_broken_mps_backend_falls_back_too(no_cuda, monkeypatch):
    def broken():
        raise OSError("Metal framework missing (faked)")

    monkeypatch.setattr(torch.backends.mps, "is_available", broken)
    notes = []
    assert pick_device("mps", notes.append) == torch.device("cpu")
    assert "Metal framework missing" in notes[0]
    assert pick_device("auto") == torch.device("cpu")      # no notify given: no exception either


def test_mps_asked_for_without_mps_says_why(no_cuda, monkeypatch):
    mps_available(monkeypatch, False)
    notes = []
    assert pick_device("mps", notes.append) == torch.device("cpu")
    assert "no MPS device" in notes[0]


def test_cuda_asked_for_without_cuda_is_an_input_error(no_cuda):
    with pytest.raises(InputError, match="cuda"):
        pick_device("cuda")


def test_mps_is_a_device_setting():
    assert ConversionSettings(device="mps").validate().device == "mps"
    with pytest.raises(InputError, match="device"):
        ConversionSettings(device="metal").validate()


def test_mps_failing_during_training_retrains_on_the_cpu(monkeypatch):
    """MPS that passes the probe but fails mid-training (an unsupported op, out of memory): the
    conversion trains again on the CPU and says so; it never ends in the exception."""
    import core.training.convert as convert_module
    import core.training.train as train_module
    from core.meshes.mesh import icosphere, mesh_from_arrays

    monkeypatch.setattr(train_module, "pick_device", lambda name, notify=None: torch.device("mps"))
    real = convert_module._train_network
    devices = []

    def flaky(mesh_net, settings, refinements, data, device, progress, cancel):
        devices.append(device.type)
        if device.type == "mps":
            raise RuntimeError("MPS backend out of memory")
        return real(mesh_net, settings, refinements, data, device, progress, cancel)
    monkeypatch.setattr(convert_module, "_train_network", flaky)
    V, F = icosphere(2)
    r = convert_module.convert_mesh(mesh_from_arrays(V, F), ConversionSettings(
        layers=2, hidden=8, pool=20_000, samples=2_000, epochs=1, threads=1, device="mps"))
    assert devices == ["mps", "cpu"] and r.device == "cpu"
    assert "MPS failed" in r.warnings[0] and "CPU instead" in r.warnings[0]
    assert r.implicit.metadata["device_warnings"] == r.warnings
