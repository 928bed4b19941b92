"""The hand-written step (core.training.backprop) against autograd: same loss, same gradients, same
Adam."""

import numpy as np
import pytest
import torch

from core.representation.implicit import Architecture
from core.training.backprop import FlatStack, StackAdam, l1
from core.training.model import StackedMLP
from core.training.refine import quantizer


def _autograd(model, X, Y, q=None):
    """Loss and gradients of the model by autograd; ``q`` rounds weights straight-through."""
    model.zero_grad(set_to_none=True)
    if q is None:
        pred = model(X)
    else:
        saved = [p.detach().clone() for p in model.parameters()]
        ws = [W + (q(W.detach(), False) - W.detach()) for W in model.weights]
        bs = [b + (q(b.detach(), True) - b.detach()) for b in model.biases]
        h = model.encode(X).transpose(1, 2)
        for i, (W, b) in enumerate(zip(ws, bs)):
            z = torch.baddbmm(b, W, h)
            if i == len(ws) - 1:
                pred = torch.tanh(z)[:, 0, :]
            else:
                h = torch.sin(model.omega * z) if model.arch.activation == "sine" else torch.relu(z)
        assert all(torch.equal(a, p) for a, p in zip(saved, model.parameters()))
    loss = (pred - Y).abs().mean(dim=1)
    loss.sum().backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("arch,storage", [
    (Architecture(3, 16, "relu", 0), None), (Architecture(2, 13, "relu", 3), None),
    (Architecture(3, 12, "sine", 0), None), (Architecture(2, 8, "sine", 2), None),
    (Architecture(3, 16, "relu", 0), "int8"), (Architecture(2, 10, "sine", 1), "float16")])
def test_gradients_match_autograd(arch, storage):
    gen = torch.Generator().manual_seed(1)
    model = StackedMLP(arch, 3, gen)
    X = torch.rand(3, 300, 3, generator=gen) * 2 - 1
    Y = X.norm(dim=-1) - 0.5
    q = quantizer(storage) if storage else None
    ref_loss, ref_grads = _autograd(model, X, Y, q)
    stack = FlatStack(model)
    stack.quantize = q
    loss = stack.step(X, Y, l1)
    assert torch.allclose(loss, ref_loss, atol=1e-6)
    mine = [g for pair in zip(stack.gW, stack.gb) for g in pair]
    ordered = [g for pair in zip(ref_grads[:len(mine) // 2], ref_grads[len(mine) // 2:]) for g in pair]
    for a, b in zip(mine, ordered):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4), (a - b).abs().max()


def test_model_sees_the_weights_being_trained():
    model = StackedMLP(Architecture(2, 8), 2, torch.Generator().manual_seed(0))
    X = torch.rand(2, 50, 3)
    before = model(X).detach()
    stack = FlatStack(model)
    assert torch.equal(model(X).detach(), before)
    stack.theta.add_(0.01)
    assert not torch.allclose(model(X).detach(), before)
    assert np.allclose(model.to_implicit(1).weights[0], stack.W[0][1].numpy(), atol=1e-7)


def test_stack_adam_is_torch_adam():
    """Network 0 under StackAdam follows torch.optim.Adam step for step with a changing lr, while
    network 1 of the stack, same start and gradients but its own lr, goes elsewhere."""
    a = StackedMLP(Architecture(3, 16), 1, torch.Generator().manual_seed(1))
    b = StackedMLP.from_implicits([a.to_implicit(), a.to_implicit()])
    ref = torch.optim.Adam(a.parameters(), lr=1e-2)
    stack = FlatStack(b)
    mine = StackAdam(stack)
    X, Y = torch.rand(1, 512, 3) * 2 - 1, torch.rand(1, 512)
    for step in range(1, 31):
        lr = 1e-2 * (0.5 + 0.5 * np.cos(step / 10))
        for g in ref.param_groups:
            g["lr"] = lr
        _autograd(a, X, Y)
        ref.step()
        stack.step(torch.cat([X, X]), torch.cat([Y, Y]), l1)
        mine.step([lr, 2 * lr], [step, step])
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p[0], q[0], rtol=1e-5, atol=1e-6)
        assert not torch.allclose(p[0], q[1], atol=1e-4)
