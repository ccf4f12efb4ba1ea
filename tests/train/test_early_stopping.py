"""Early stopping in the trainer keeps the best validation epoch's weights, not the last epoch's.

The validation figures are scripted (the trainer's decision is what is under test), the network and the
optimisation are real; the weights after `fit` must be exactly those the best epoch ended with.
"""

from __future__ import annotations

import numpy as np
import torch

from emotune.train.config import TrainConfig
from emotune.train.trainer import fit


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.lin(x), y)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(state)


class ScriptedTask:
    """Real batches; validation answers the scripted UA per epoch and records the weights it saw."""

    monitor = "ua"
    lengths = None

    def __init__(self, net: Net, script: list[float]):
        g = np.random.default_rng(0)
        self.x = torch.as_tensor(g.normal(size=(32, 4)), dtype=torch.float32)
        self.y = torch.as_tensor(g.integers(0, 3, 32))
        self.targets = self.y.numpy()
        self.n_train = 32
        self.net, self.script, self.seen = net, list(script), []

    def make_batch(self, index, generator):
        return self.x[index], self.y[index]

    def validate(self) -> dict:
        self.seen.append(self.net.lin.weight.detach().clone())
        return {"ua": self.script[len(self.seen) - 1]}


def run(tmp_path, script, patience):
    net = Net()
    task = ScriptedTask(net, script)
    cfg = TrainConfig(epochs=len(script), batch_size=8, lr=0.1, patience=patience, bf16=False, progress=False)
    out = fit(net, task, cfg, tmp_path / "run")
    return net, task, out


def test_early_stopping_restores_the_best_epoch(tmp_path):
    net, task, out = run(tmp_path, [0.5, 0.9, 0.4, 0.3, 0.95], patience=2)
    assert out["stopped_early"] and out["best_epoch"] == 2 and len(out["history"]) == 4
    assert not torch.equal(task.seen[1], task.seen[3])  # training moved the weights after the best epoch
    assert torch.equal(net.lin.weight, task.seen[1])


def test_without_early_stopping_the_best_epoch_is_still_kept(tmp_path):
    net, task, out = run(tmp_path, [0.2, 0.7, 0.6], patience=0)
    assert not out["stopped_early"] and out["best_epoch"] == 2 and len(out["history"]) == 3
    assert torch.equal(net.lin.weight, task.seen[1]) and not torch.equal(net.lin.weight, task.seen[2])
