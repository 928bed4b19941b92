"""Training loop: it learns, reports progress, stops early, and cancels promptly."""

import threading
import numpy as np
import pytest
import torch

from core.common.errors import Cancelled
from core.common.progress import CancelToken
from core.representation.implicit import Architecture
from core.training.model import StackedMLP
from core.training.train import CANCEL_EVERY_STEPS, TrainConfig, _lr_factor, l1_loss, train


def _sphere_data(n=20000, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(1, n, 3, generator=g) * 2 - 1
    return X, X.norm(dim=-1) - 0.5


def test_learns_a_sphere_and_reports_progress():
    X, Y = _sphere_data()
    model = StackedMLP(Architecture(3, 16), 1, torch.Generator().manual_seed(0))
    seen = []
    r = train(model, X, Y, TrainConfig(epochs=15, lr=1e-2, batch_size=512), progress=seen.append)
    assert r.final_loss[0] < 0.02 and r.history[0][0] > r.final_loss[0]
    assert [p.epoch for p in seen] == list(range(1, 16))
    assert seen[-1].eta == 0 and all(p.loss is not None and p.elapsed > 0 for p in seen)


def test_early_stopping():
    X, Y = _sphere_data(4000)
    model = StackedMLP(Architecture(2, 8), 1)
    r = train(model, X, Y, TrainConfig(epochs=500, lr=1e-3, batch_size=4000, schedule="constant",
                                       patience=3, min_improvement=0.5))
    assert r.stopped_early and r.epochs_run < 500


def test_cancel_stops_within_a_few_steps():
    """Cancel from inside step 40: the loop must stop before CANCEL_EVERY_STEPS more steps."""
    X, Y = _sphere_data(200_000)
    model = StackedMLP(Architecture(), 1)
    token = CancelToken()
    calls = []

    def loss(pred, target):
        calls.append(1)
        if len(calls) == 40:
            token.cancel()
        return l1_loss(pred, target)
    with pytest.raises(Cancelled):
        train(model, X, Y, TrainConfig(epochs=100, batch_size=1024), loss_fn=loss, cancel=token)
    assert len(calls) <= 40 + CANCEL_EVERY_STEPS


def test_cancel_from_another_thread():
    X, Y = _sphere_data(50_000)
    token = CancelToken()
    threading.Timer(0.2, token.cancel).start()
    with pytest.raises(Cancelled):
        train(StackedMLP(Architecture(), 1), X, Y, TrainConfig(epochs=10_000, batch_size=1024),
              cancel=token)


def test_stacked_networks_train_independently():
    """Network 1 of a stack learns its own target; network 0's result equals training it alone."""
    X, Y = _sphere_data(4000)
    Y2 = 0.5 - X.norm(dim=-1)                          # the inverted sphere
    cfg = TrainConfig(epochs=20, lr=1e-2, batch_size=250)
    alone = StackedMLP(Architecture(2, 8), 1, torch.Generator().manual_seed(5))
    pair = StackedMLP.from_implicits([alone.to_implicit(), alone.to_implicit()])
    train(alone, X, Y, cfg, seed=1)
    train(pair, torch.cat([X, X]), torch.cat([Y, Y2]), cfg, seed=1)
    Q = np.random.default_rng(0).uniform(-1, 1, (100, 3))
    assert np.allclose(pair.to_implicit(0).evaluate(Q), alone.to_implicit().evaluate(Q), atol=1e-4)
    target2 = 0.5 - np.linalg.norm(Q, axis=1)
    assert np.abs(pair.to_implicit(1).evaluate(Q) - target2).mean() < 0.1


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "constant"])
def test_schedules_are_bounded(schedule):
    f = [_lr_factor(schedule, s, 1000) for s in range(1000)]
    assert max(f) <= 1.0 + 1e-12 and min(f) >= 0
