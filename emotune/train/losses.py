"""Losses shared by the baseline MLP and the emotion LM, with the imbalance options of the ablations.

One factory, `make_loss(kind, class_weights, gamma, target, smoothing)`, for every (loss, target) pair:

| target | targets tensor                 | "ce"                       | "focal"                               |
|--------|--------------------------------|----------------------------|---------------------------------------|
| single | [N] class index (-1 = ignore)  | softmax cross-entropy      | (1 - p_y)^gamma · CE                  |
| multi  | [N, C] 0/1                     | one-vs-rest sigmoid BCE    | sigmoid focal (p_t per label)         |
| soft   | [N, C] rows sum to 1           | soft cross-entropy         | Σ_c t_c (1 - p_c)^gamma · (-log p_c)  |

Class weights multiply each term by the weight of its class; the mean is taken over the weights
(as torch's weighted cross-entropy does), so a one-hot soft target gives exactly the single-label loss
and focal with gamma = 0 gives exactly the cross-entropy.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emotune import vocab

KINDS = ("ce", "focal")
TARGETS = tuple(t for t in vocab.TARGETS if t != "reasoning")  # reasoning is trained on its label: single


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Inverse-frequency weights [C], normalised so the average weight per training sample is 1.

    `y` is [N] class indices (-1 = no label, ignored) or [N, C] multi-hot / soft targets (column sums
    are the class counts). A class absent from `y` gets weight 0: no sample of it carries a loss term.
    """
    y = np.asarray(y)
    if y.ndim == 1:
        counts = np.bincount(y[y >= 0].astype(int), minlength=n_classes)[:n_classes].astype(float)
    else:
        counts = np.asarray(y, dtype=float).sum(axis=0)
    present = counts > 0
    weights = np.zeros(n_classes)
    if present.any():
        weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def _weighted_mean(terms: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    total = weights.sum()
    return (terms * weights).sum() / total.clamp_min(1e-12)


def check_smoothing(smoothing: float, model_kind: str, imbalance: str, target: str) -> None:
    """Refuse train.label_smoothing where it means nothing, when the model is built (before any training)."""
    from emotune.errors import EmotuneError

    if not smoothing:
        return
    if model_kind == "baseline_lr":
        raise EmotuneError("train.label_smoothing needs a gradient-trained model (baseline_mlp or emotion_lm); "
                           "logistic regression fits hard labels")
    if imbalance == "focal" or target == "multi":
        raise EmotuneError("train.label_smoothing smooths the cross-entropy of single or soft targets; it cannot be "
                           f"combined with {'train.imbalance=focal' if imbalance == 'focal' else 'data.target=multi'}")


def make_loss(kind: str = "ce", class_weights: Optional[Sequence[float]] = None, gamma: float = 2.0,
              target: str = "single", smoothing: float = 0.0) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """A callable (logits [N, C], targets) -> scalar loss; see the module docstring for the shapes.

    `smoothing` ε (label smoothing, single and soft targets, cross-entropy only): the target becomes
    (1 - ε) · target + ε / C, so the model is never pushed towards a certainty the labels cannot back."""
    if kind not in KINDS:
        raise ValueError(f"loss kind must be one of {KINDS}, got {kind!r}")
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if not 0 <= smoothing < 1:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    focal = kind == "focal"
    if smoothing and (focal or target == "multi"):
        raise ValueError("label smoothing applies to the cross-entropy of single or soft targets, "
                         f"not to {'the focal loss' if focal else 'multi-label targets'}")
    cw = None if class_weights is None else torch.as_tensor(np.asarray(class_weights), dtype=torch.float32)

    def weight_row(logits: torch.Tensor) -> torch.Tensor:
        if cw is None:
            return torch.ones(logits.shape[-1], dtype=logits.dtype, device=logits.device)
        return cw.to(dtype=logits.dtype, device=logits.device)

    def single(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        keep = targets >= 0
        logits, targets = logits[keep], targets[keep].long()
        log_probs = F.log_softmax(logits, dim=-1)
        logp = log_probs.gather(1, targets[:, None]).squeeze(1)
        terms = -logp
        if focal:
            terms = (1 - logp.exp()).pow(gamma) * terms
        if smoothing:  # weighted by the gold class, as the plain term is
            terms = (1 - smoothing) * terms - smoothing * log_probs.mean(dim=-1)
        return _weighted_mean(terms, weight_row(logits)[targets])

    def multi(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        terms = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        if focal:
            p = torch.sigmoid(logits)
            p_t = p * targets + (1 - p) * (1 - targets)
            terms = (1 - p_t).pow(gamma) * terms
        return _weighted_mean(terms, weight_row(logits).expand_as(terms))

    def soft(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits, targets = logits.float(), targets.float()
        if smoothing:
            targets = (1 - smoothing) * targets + smoothing / targets.shape[-1]
        logp = F.log_softmax(logits, dim=-1)
        terms = -logp
        if focal:
            terms = (1 - logp.exp()).pow(gamma) * terms
        mass = targets * weight_row(logits)  # [N, C]: how much each (sample, class) term counts
        return (mass * terms).sum() / mass.sum().clamp_min(1e-12)

    return {"single": single, "multi": multi, "soft": soft}[target]
