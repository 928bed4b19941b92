"""One gradient step of a stack of MLPs, forward and backward written out by hand.

Why by hand: the networks are tiny (8 x 32), so a step is some fifty small tensor operations and
autograd's bookkeeping around each of them (graph nodes, saved tensors, per-parameter gradient
buffers, an optimizer that walks 18 tensors) cost as much as the arithmetic. Written out, the step
is the matrix products the maths needs plus a few elementwise passes, on one flat parameter buffer
that Adam updates in six operations for every network of the stack at once. Measured on a 2-core
CPU (bench/time_to_accuracy.py --step-rate): about twice the samples per second of autograd with
torch.optim.Adam, same gradients to float32 rounding (tests/test_backprop.py checks them against
autograd for every activation, encoding and quantisation-aware storage).

The maths (network of implicit.py: h_0 = encode(x), z_i = W_i h_{i-1} + b_i, h_i = act(z_i),
f = tanh(z_L)), for a loss L(f) whose gradient dL/df the loss function returns:
    g_L = dL/df * (1 - f^2);   dW_i = g_i h_{i-1}^T;   db_i = sum g_i;
    g_{i-1} = (W_i^T g_i) * act'(z_{i-1})
with act' = [h > 0] for ReLU and omega_0 cos(omega_0 z) for sine.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

#: A loss: ``loss(pred, target)`` with (K, B) tensors -> (per-network loss (K,), dloss/dpred (K, B)).
#: Each network's loss is its own, so the stack's networks never exchange gradients.
Loss = Callable[[torch.Tensor, torch.Tensor], tuple]


def l1(pred: torch.Tensor, target: torch.Tensor) -> tuple:
    """The paper's loss, mean |f - sdf| per network, and its gradient."""
    diff = pred - target
    return diff.abs().mean(dim=1), torch.sign(diff).mul_(1.0 / diff.shape[1])


class FlatStack:
    """The weights of a :class:`~core.training.model.StackedMLP` as views of one (K, P) buffer.

    The model's parameters are re-pointed at the views, so the model (its ``forward``,
    ``to_implicit``) always sees the weights being trained; the gradient lives in a buffer of the
    same layout. ``quantize`` (optional) maps a weight or bias view to the values the forward pass
    uses: quantisation-aware training with straight-through gradients (core/training/refine.py).
    """

    def __init__(self, model):
        self.model = model
        params = list(zip(model.weights, model.biases))
        K = model.k
        sizes = [(W.shape[1:], b.shape[1:]) for W, b in params]
        total = sum(math.prod(ws) + math.prod(bs) for ws, bs in sizes)
        device = model.weights[0].device
        self.theta = torch.empty(K, total, device=device)
        self.grad = torch.zeros(K, total, device=device)
        self.W, self.b, self.gW, self.gb = [], [], [], []
        off = 0
        for (W, b), (ws, bs) in zip(params, sizes):
            for src, shape, out, gout in ((W, ws, self.W, self.gW), (b, bs, self.b, self.gb)):
                n = math.prod(shape)
                view = self.theta[:, off:off + n].view(K, *shape)
                view.copy_(src.detach())
                src.data = view
                out.append(view)
                gout.append(self.grad[:, off:off + n].view(K, *shape))
                off += n
        self.omega = model.omega
        self.sine = model.arch.activation == "sine"
        self.quantize: Optional[Callable[[torch.Tensor, bool], torch.Tensor]] = None

    @torch.no_grad()
    def step(self, X: torch.Tensor, Y: torch.Tensor, loss: Loss = l1) -> torch.Tensor:
        """Forward and backward for points X (K, B, 3) and targets Y (K, B): fills ``self.grad``
        and returns the per-network loss (K,)."""
        Ws, bs = self.W, self.b
        if self.quantize is not None:
            Ws = [self.quantize(W, False) for W in Ws]
            bs = [self.quantize(b, True) for b in bs]
        h = self.model.encode(X).transpose(1, 2)            # (K, features, B)
        acts, slopes = [h], []
        last = len(Ws) - 1
        for i in range(last):
            z = torch.baddbmm(bs[i], Ws[i], h)
            if self.sine:
                z.mul_(self.omega)
                slopes.append(torch.cos(z).mul_(self.omega))
                h = z.sin_()
            else:
                h = z.relu_()
            acts.append(h)
        f = torch.baddbmm(bs[last], Ws[last], h).tanh_()     # (K, 1, B)
        value, dpred = loss(f[:, 0, :], Y)
        g = dpred[:, None, :] * (1 - f * f)
        for i in range(last, -1, -1):
            torch.bmm(g, acts[i].transpose(1, 2), out=self.gW[i])
            torch.sum(g, dim=2, keepdim=True, out=self.gb[i])
            if i:
                g = torch.bmm(Ws[i].transpose(1, 2), g)
                if self.sine:
                    g.mul_(slopes[i - 1])
                else:
                    g = torch.ops.aten.threshold_backward(g, acts[i], 0)
        return value


class StackAdam:
    """Adam on a :class:`FlatStack`, each network with its own learning rate and step count.

    The arithmetic is torch.optim.Adam's (no weight decay, no amsgrad) operation for operation,
    on the whole (K, P) buffer at once; Adam is elementwise, so networks never mix and a network's
    moments can be dropped or zeroed (:meth:`select`) when the stack changes.
    """

    def __init__(self, stack: FlatStack, betas=(0.9, 0.999), eps: float = 1e-8):
        self.stack = stack
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.exp_avg = torch.zeros_like(stack.theta)
        self.exp_avg_sq = torch.zeros_like(stack.theta)

    @torch.no_grad()
    def step(self, lr: list, steps: list) -> None:
        """One update. lr : (K,) learning rates; steps : (K,) step numbers, counting this one (>= 1)."""
        theta, g = self.stack.theta, self.stack.grad
        if theta.shape[0] == 0:
            return
        neg_step = torch.tensor([-a / (1 - self.beta1 ** t) for a, t in zip(lr, steps)],
                                dtype=theta.dtype).to(theta.device)[:, None]
        bc2_sqrt = torch.tensor([math.sqrt(1 - self.beta2 ** t) for t in steps],
                                dtype=theta.dtype).to(theta.device)[:, None]
        self.exp_avg.lerp_(g, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
        denom = (self.exp_avg_sq.sqrt() / bc2_sqrt).add_(self.eps)
        theta.add_((self.exp_avg * neg_step).div_(denom))

    def select(self, stack: FlatStack, keep: torch.Tensor, added: int) -> None:
        """Follow a resized stack: keep the moments of networks ``keep`` (in that order), append
        ``added`` networks with zero moments, and update ``stack`` from now on."""
        def resize(state):
            return torch.cat([state[keep], state.new_zeros((added,) + state.shape[1:])])
        self.exp_avg = resize(self.exp_avg)
        self.exp_avg_sq = resize(self.exp_avg_sq)
        self.stack = stack
