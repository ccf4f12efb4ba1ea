"""`model.lm.probe_init`: start the emotion LM's projectors from a head fitted on the same training side.

Linear-probe-then-finetune (Kumar et al. 2022). A head is fitted first (logistic regression, or the MLP
head, with the head's own model selection: C by inner CV, the MLP's epoch on validation), and each
projector's first layer is set so that, at the start, it computes what the head's first layer computes on
that input. Training then moves everything as usual. Only the training side and the validation side the LM
itself uses are read, so the protocol's rule (no choice on test) holds.

The head standardises its input with its own statistics and the projector with its own (each fitted on the
training side, in its own code), so the weights are carried across in raw-feature space, exact whatever the
two statistics are: W_raw = W / s_head, then W_proj = W_raw * s_proj, with the biases moved to match.
Missing-indicator columns of the head are dropped (a present feature's indicator is 0). A run resumed from a
checkpoint fits the head again and then loads the checkpoint's weights over it.
"""

from __future__ import annotations

import numpy as np
import torch

from emotune.data.examples import Examples
from emotune.errors import EmotuneError


def check(cfg, inputs: list[str], shapes: dict[str, tuple], n_classes: int) -> None:
    """Refuse settings a probe cannot start (at model build, before any fitting)."""
    kind = cfg.probe_init
    if kind == "none":
        return
    seqs = [n for n in inputs if len(shapes[n]) != 1]
    if seqs:
        raise EmotuneError(f"model.lm.probe_init={kind} needs vector inputs (a head pools a sequence, the LM "
                           f"reads its rows); sequence inputs: {seqs}")
    if kind == "lr" and cfg.projector not in ("linear", "lowrank"):
        raise EmotuneError(f"model.lm.probe_init=lr starts a linear or lowrank projector, not {cfg.projector!r}")
    if kind == "lr" and cfg.projector == "lowrank" and cfg.projector_rank != n_classes:
        raise EmotuneError(f"model.lm.probe_init=lr with a lowrank projector needs projector_rank = the number of "
                           f"classes ({n_classes}), got {cfg.projector_rank}")
    if kind == "mlp" and (cfg.projector != "mlp" or len(inputs) != 1):
        raise EmotuneError("model.lm.probe_init=mlp starts an mlp projector from the MLP head's hidden layer; it "
                           f"needs model.lm.projector=mlp and one input (got {cfg.projector!r}, inputs {inputs})")


def fit_head(kind: str, label_names: list[str], inputs: list[str], target: str, imbalance: str, seed: int,
             hidden: int, train: Examples, val: Examples):
    """The head whose first layer the projectors start from, fitted as that head is fitted on its own."""
    from emotune.model.baseline_config import BaselineConfig

    head_target = "single" if target == "reasoning" else target
    if kind == "lr":
        from emotune.model.baseline_lr import LogisticBaseline

        # No refit: the LM selects on the validation side, so the head must not have trained on it.
        head = LogisticBaseline(label_names, inputs, BaselineConfig(refit=False), head_target,
                                imbalance if imbalance in ("class_weights", "balanced_sampler") else "none", seed)
    else:
        from emotune.model.baseline_mlp import MLPBaseline

        if len(val) == 0:
            raise EmotuneError("model.lm.probe_init=mlp needs a validation side (the MLP head's early stopping)")
        head = MLPBaseline(label_names, inputs, BaselineConfig(hidden=hidden), head_target, imbalance, seed)
    history = head.fit(train, val)
    return head, history


def first_layer(kind: str, head) -> tuple[np.ndarray, np.ndarray]:
    """(W [H, D], b [H]) of the head's first layer on its standardised input (indicator columns included)."""
    if kind == "lr":
        W, b = np.asarray(head.W, dtype=np.float64), np.asarray(head.b, dtype=np.float64)
        return W, np.where(np.isfinite(b), b, 0.0)  # a class absent from training: logit −inf → 0
    layer = head.nets[0][0]
    return layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()


def load(projectors: dict, inputs: list[str], kind: str, head) -> None:
    """Set each projector's first layer from the head's (see the module docstring for the algebra)."""
    W, b = first_layer(kind, head)
    enc = head.encoder
    start = 0
    for name, d in zip(inputs, enc.dims):
        sl = slice(start, start + d)
        start += d
        w_raw = W[:, sl] / enc.std[sl]
        b_raw = b / len(inputs) - w_raw @ enc.mean[sl]  # the bias split evenly: the inputs' parts sum to the head's
        proj = projectors[name]
        m_p, s_p = proj.mean.double().numpy(), proj.std.double().numpy()
        w_p, b_p = w_raw * s_p, b_raw + w_raw @ m_p
        net = proj.net
        with torch.no_grad():
            if isinstance(net, torch.nn.Linear):
                # A linear projector starts as a random map of the head's output (the lowrank form's two layers
                # multiplied out), so that training can leave the head's subspace.
                up = torch.nn.Linear(w_p.shape[0], net.out_features)
                u = up.weight.double()
                net.weight.copy_((u @ torch.from_numpy(w_p)).float())
                net.bias.copy_((u @ torch.from_numpy(b_p) + up.bias.double()).float())
            else:
                first = net[0]
                if tuple(first.weight.shape) != w_p.shape:
                    raise EmotuneError(f"projector '{name}': first layer {tuple(first.weight.shape)} cannot take the "
                                       f"head's {w_p.shape}")
                first.weight.copy_(torch.from_numpy(w_p).float())
                first.bias.copy_(torch.from_numpy(b_p).float())


def freeze_first_layers(projectors: dict) -> None:
    """`model.lm.probe_freeze`: the head's hidden layer stays as it was fitted; the rest of each projector trains.
    The weights stay in the model's saved state (EmotionLMNet.trainable_state keeps every projector weight)."""
    for proj in projectors.values():
        for p in proj.net[0].parameters():
            p.requires_grad_(False)
