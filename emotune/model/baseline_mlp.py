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
    (mAP for multi-label), the best epoch's weights kept. With `model.baseline.seeds` > 1, that many nets
    from consecutive seeds, their class probabilities averaged."""

    kind = "baseline_mlp"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.nets: list = []

    def _loss(self, T: np.ndarray):
        from emotune.train.losses import class_weights, make_loss

        weights = class_weights(T, len(self.label_names)) if self.imbalance == "class_weights" else None
        return make_loss("focal" if self.imbalance == "focal" else "ce", weights, self.focal_gamma, self.target,
                         self.train_cfg.label_smoothing)

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
            members = [self._train(X, Tt, Xv, val_gold, has_val, loss_fn, T, self.seed + k) for k in range(self.cfg.seeds)]
        finally:
            torch.set_num_threads(threads)
        self.nets = [net.eval() for net, _ in members]
        history = members[0][1]
        if len(members) > 1:
            metric = history["metric"]
            score = selection_score(self.target, val_gold, self.predict_proba(val), self.label_names) if has_val else None
            history = {"metric": metric, f"best_val_{metric}": score, "early_stopping": bool(has_val),
                       "seeds": [self.seed + k for k in range(len(members))], "members": [h for _, h in members]}
        self.history = history
        return history

    def _train(self, X, Tt, Xv, val_gold, has_val: bool, loss_fn, T: np.ndarray, seed: int):
        import torch

        from emotune.train.sampling import balanced_sampler

        cfg, tc = self.cfg, self.train_cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = _mlp(X.shape[1], cfg.hidden, cfg.dropout, len(self.label_names))
            if seed == self.seed:  # same seed → same start on every fold (checked by cv tests)
                self.init_hash = state_hash(trainable(net))
            opt = torch.optim.AdamW(net.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
            gen = torch.Generator().manual_seed(seed)
            sampler = balanced_sampler(T, seed=seed) if self.imbalance == "balanced_sampler" else None
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

        if not self.nets:
            raise EmotuneError("baseline_mlp: predict before fit/load")
        X = torch.from_numpy(self.encoder.transform(ex))
        return np.mean([self._forward(net, X) for net in self.nets], axis=0).astype(np.float32)

    def save(self, out_dir: Path) -> None:
        # The first net keeps the "mlp." keys of single-net models, so those still load.
        state = {f"{_prefix(k)}{name}": v.detach().cpu().numpy()
                 for k, net in enumerate(self.nets) for name, v in net.state_dict().items()}
        self._write(out_dir, state, {})

    @classmethod
    def load(cls, out_dir: Path) -> "MLPBaseline":
        import torch

        model, meta, arrays = cls._read(out_dir)
        for k in range(model.cfg.seeds):
            net = _mlp(model.encoder.width, model.cfg.hidden, model.cfg.dropout, len(model.label_names))
            p = _prefix(k)
            net.load_state_dict({n[len(p):]: torch.from_numpy(v) for n, v in arrays.items() if n.startswith(p)})
            model.nets.append(net.eval())
        return model


def _prefix(k: int) -> str:
    return "mlp." if k == 0 else f"mlp{k}."
