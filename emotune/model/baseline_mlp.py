"""`model.kind: baseline_mlp` — standardised features → one hidden layer → classes, trained with `train.*`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from emotune.evaluate.metrics import selection_score
from emotune.model.base import state_hash, trainable
from emotune.model.baseline import Baseline


def _mlp(width: int, hidden: int, dropout: float, n_classes: int):
    import torch.nn as nn

    if hidden <= 0:
        return nn.Sequential(nn.Linear(width, n_classes))
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, n_classes))


class MLPBaseline(Baseline):
    """Standardised features → one hidden layer → classes; AdamW, early stopping on validation UA
    (mAP for multi-label), the best epoch's weights kept."""

    kind = "baseline_mlp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.net = None

    def _loss(self, T: np.ndarray):
        from emotune.train.losses import class_weights, make_loss

        weights = class_weights(T, len(self.label_names)) if self.imbalance == "class_weights" else None
        return make_loss("focal" if self.imbalance == "focal" else "ce", weights, self.focal_gamma, self.target)

    def fit(self, train: Examples, val: Examples, out_dir: Optional[Path] = None, run_hash: str = "") -> dict:
        import torch

        train, T = self._training_side(train, val)
        self.encoder.fit(train)
        X = torch.from_numpy(self.encoder.transform(train))
        Tt = torch.as_tensor(T, dtype=torch.long if self.target == "single" else torch.float32)
        val_gold = val.y_multi if self.target == "multi" else val.hard_labels()
        has_val = len(val) > 0 and (self.target == "multi" or (val_gold >= 0).any())
        Xv = torch.from_numpy(self.encoder.transform(val)) if has_val else None
        loss_fn = self._loss(T)
        threads = torch.get_num_threads()
        # A head this small trains fastest on one thread (more only add synchronisation, and on a
        # shared machine oversubscription slows fits many times over); restored afterwards.
        torch.set_num_threads(1)
        try:
            net, history = self._train(X, Tt, Xv, val_gold, has_val, loss_fn, T)
        finally:
            torch.set_num_threads(threads)
        self.net = net.eval()
        self.history = history
        return history

    def _train(self, X, Tt, Xv, val_gold, has_val: bool, loss_fn, T: np.ndarray):
        import torch

        from emotune.train.sampling import balanced_sampler

        cfg, tc = self.cfg, self.train_cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = _mlp(X.shape[1], cfg.hidden, cfg.dropout, len(self.label_names))
            self.init_hash = state_hash(trainable(net))  # same seed → same start on every fold (checked by cv tests)
            opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
            gen = torch.Generator().manual_seed(self.seed)
            sampler = balanced_sampler(T, seed=self.seed) if self.imbalance == "balanced_sampler" else None
            best, best_state, best_epoch, curve = -np.inf, None, 0, []
            for epoch in range(1, tc.epochs + 1):
                net.train()
                order = torch.tensor(list(sampler)) if sampler is not None else torch.randperm(len(X), generator=gen)
                total = 0.0
                for start in range(0, len(order), tc.batch_size):
                    idx = order[start:start + tc.batch_size]
                    loss = loss_fn(net(X[idx]), Tt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(idx)
                row = {"epoch": epoch, "loss": total / len(order)}
                if has_val:
                    row["val"] = selection_score(self.target, val_gold, self._forward(net, Xv), self.label_names)
                    if row["val"] > best:
                        best, best_epoch = row["val"], epoch
                        best_state = copy.deepcopy(net.state_dict())
                    elif tc.patience > 0 and epoch - best_epoch >= tc.patience:
                        curve.append(row)
                        break
                curve.append(row)
        if best_state is not None:
            net.load_state_dict(best_state)
        metric = "map" if self.target == "multi" else "ua"
        return net, {"metric": metric, "best_epoch": best_epoch if has_val else len(curve),
                     f"best_val_{metric}": float(best) if has_val else None, "epochs_run": len(curve),
                     "early_stopping": bool(has_val), "curve": curve}

    def _forward(self, net, X) -> np.ndarray:
        import torch

        was_training = net.training
        net.eval()
        with torch.no_grad():
            z = net(X)
            p = torch.sigmoid(z) if self.target == "multi" else torch.softmax(z, dim=-1)
        net.train(was_training)
        return p.numpy()

    def predict_proba(self, ex: Examples) -> np.ndarray:
        import torch

        if self.net is None:
            raise EmotuneError("baseline_mlp: predict before fit/load")
        return self._forward(self.net, torch.from_numpy(self.encoder.transform(ex))).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        state = {f"mlp.{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        self._write(out_dir, state, {})

    @classmethod
    def load(cls, out_dir: Path) -> "MLPBaseline":
        import torch

        model, meta, arrays = cls._read(out_dir)
        net = _mlp(model.encoder.width, model.cfg.hidden, model.cfg.dropout, len(model.label_names))
        net.load_state_dict({k[len("mlp."):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("mlp.")})
        model.net = net.eval()
        return model
