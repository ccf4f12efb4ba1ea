"""Per-modality projector: a cached feature → tokens in the LM's embedding space.

A vector feature (d,) becomes `tokens` embeddings; a sequence feature (rows, d) becomes one embedding
per row (time structure kept). Inputs are standardised with training-set statistics (eGeMAPS mixes
values near 1 with values near 100), and outputs are RMS-normalised to the scale of the LM's own word
embeddings, so projected tokens never start out as outliers the frozen LM has never seen.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _dropout(p: float) -> list[nn.Module]:
    # Only where asked: a Dropout module shifts the indices of the layers after it in the state dict, and
    # checkpoints saved without it must load as they were saved.
    return [nn.Dropout(p)] if p > 0 else []


class Projector(nn.Module):
    def __init__(self, in_dim: int, hidden_size: int, tokens: int, kind: str = "mlp", mlp_hidden: int = 1024,
                 embed_rms: float = 1.0, sequence: bool = False, noise: float = 0.0, rank: int = 8,
                 act: str = "gelu", dropout: float = 0.0):
        super().__init__()
        if dropout and kind == "linear":  # config load says this to users; here for direct library use
            raise ValueError("projector dropout acts on a hidden layer; a linear projector has none")
        self.sequence = sequence
        self.noise = noise
        self.tokens = 1 if sequence else tokens
        self.hidden_size = hidden_size
        out = self.tokens * hidden_size
        if kind == "linear":
            self.net = nn.Linear(in_dim, out)
        elif kind == "lowrank":
            # A linear map through `rank` dimensions: few parameters on the input side (in_dim x rank, as a
            # linear classifier of rank classes has), for corpora of a thousand clips.
            self.net = nn.Sequential(nn.Linear(in_dim, rank), *_dropout(dropout), nn.Linear(rank, out))
        elif kind == "mlp":
            self.net = nn.Sequential(nn.Linear(in_dim, mlp_hidden), nn.ReLU() if act == "relu" else nn.GELU(),
                                     *_dropout(dropout), nn.Linear(mlp_hidden, out))
        else:
            raise ValueError(f"projector kind must be 'linear', 'lowrank' or 'mlp', got {kind!r}")
        self.gain = nn.Parameter(torch.full((hidden_size,), float(embed_rms)))
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))

    def set_stats(self, arrays: list[np.ndarray]) -> None:
        """Standardisation statistics from the training features (every row of a sequence counts)."""
        rows = np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1, self.mean.numel()) for a in arrays])
        std = rows.std(axis=0)
        self.mean.copy_(torch.as_tensor(rows.mean(axis=0), dtype=torch.float32))
        self.std.copy_(torch.as_tensor(np.where(std > 1e-8, std, 1.0), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[n, d] → [n, tokens, hidden]: one sample's vector, or one row of a sequence, per input row."""
        x = (x.float() - self.mean) / self.std
        if self.training and self.noise > 0:
            x = x + self.noise * torch.randn_like(x)
        y = self.net(x).view(x.shape[0], self.tokens, self.hidden_size).float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)
        return y * self.gain
