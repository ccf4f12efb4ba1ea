"""Tolerances for float results that two code paths, or two CPUs, compute in a different order.

Why not a constant like `atol=1e-6`: floating-point addition is not associative, and every sum, dot
product and matrix product is accumulated in an order the kernel chooses. AVX2 and AVX-512 keep 8 or 16
fp32 partial sums per register, AMX multiplies 16x32 tiles, oneDNN and ATen block a GEMM differently,
1 and 2 OpenMP threads each sum their own chunk, and a batch of 8 runs different GEMM shapes (and
padding) than two batches of 4. Each order rounds correctly step by step, none is "the" answer, and
they differ in the last bits: a constant tuned on one machine fails on the next. The tolerances here
come from the arithmetic instead, so they hold on any x86-64 CPU and stay far below a real bug:

* Worst case (`bound="worst"`). For a sum of n terms in ANY order, |computed - exact| <= gamma(n-1) *
  sum|x_i| with gamma(k) = k*u / (1 - k*u) and u = eps/2 the unit roundoff (Higham, Accuracy and
  Stability of Numerical Algorithms, 2nd ed., Section 4.2); a dot product (one output of a matrix
  product) has the same bound with gamma(n) and sum|x_i*y_i|. Two orders differ by at most twice that.
  Rigorous, but pessimistic by about sqrt(n), and it needs sum|x_i| as `scale`.
* Random walk (`bound="random"`, the default). The rounding errors of the n additions behave like
  independent values in [-u, u] with random sign, so the error grows like sqrt(n) * u * S, S the size
  of the partial sums (the result's magnitude when terms have mixed signs). A safety factor
  (SAFETY = 10, about 25 standard deviations of the difference of two orders) covers the
  maximum over many compared elements and intermediate values somewhat above the result's size.

A chain of reductions (a network: layer after layer, forward then backward) adds the first-order
errors of its steps: pass n = the sum of the reduction lengths along the path (`network_chain`,
`transformer_chain`). `scale` is the magnitude of the compared values (e.g. the largest |value| of the
reference): elements that cancel to nearly 0 keep the absolute error of their neighbours, so
assert_close gets atol = rtol * scale. `dtype` is the one the results are rounded to (bf16 for bf16
autocast outputs, although their matmuls accumulate in fp32). A step that amplifies small differences
(Adam's g / (|g| + eps) near g = 0, an argmax near a tie) needs the tolerance carried through it by hand.

Bit-exact claims (a run against itself on one machine: kill/resume, seeded reruns) do not use this.
"""

from __future__ import annotations

import math

import numpy as np

SAFETY = 10.0


def eps(dtype) -> float:
    """Machine epsilon (distance from 1 to the next float) of a torch or numpy dtype, or its name."""
    if isinstance(dtype, str):
        dtype = {"fp32": "float32", "fp64": "float64", "bf16": "bfloat16", "fp16": "float16"}.get(dtype, dtype)
    try:
        return float(np.finfo(dtype).eps)
    except (TypeError, ValueError):  # torch dtypes (bfloat16 has no numpy counterpart)
        import torch

        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        return float(torch.finfo(dtype).eps)


def rtol(dtype, n: int, *, bound: str = "random", safety: float | None = None) -> float:
    """Relative difference two summation orders of an n-term reduction in `dtype` may show."""
    n = max(int(n), 1)
    safety = SAFETY if safety is None else safety
    e = eps(dtype)
    if bound == "random":
        return safety * e * math.sqrt(n)
    if bound == "worst":
        k_u = max(n - 1, 1) * e / 2
        if k_u >= 1:
            raise ValueError(f"{n} terms exceed what {dtype} can bound (n * eps / 2 >= 1)")
        return 2 * k_u / (1 - k_u)
    raise ValueError(f"bound must be 'random' or 'worst', not {bound!r}")


def tol(dtype, n: int, scale: float = 1.0, *, bound: str = "random", safety: float | None = None) -> dict:
    """{"rtol", "atol"} for torch.testing.assert_close / np.testing.assert_allclose / np.allclose:
    |a - b| <= rtol * (scale + |b|), rtol from `rtol(dtype, n)`."""
    r = rtol(dtype, n, bound=bound, safety=safety)
    return {"rtol": r, "atol": r * float(scale)}


def approx_abs(dtype, n: int, scale: float = 1.0, *, bound: str = "random", safety: float | None = None) -> float:
    """The absolute tolerance alone (for pytest.approx(abs=...)): rtol * scale."""
    return rtol(dtype, n, bound=bound, safety=safety) * float(scale)


def network_chain(module, seq: int = 0, vocab: int = 0, backward: bool = False) -> int:
    """n for values computed through a torch network (use with `tol`): every nn.Linear adds its
    in_features (one dot product per output), and with `backward` also its out_features (the input
    gradient W^T dy); every attention module adds 2 * seq (softmax normaliser, weights x values) and
    its head width; `vocab` adds a final (log-)softmax over that many logits. Parallel branches (q, k, v;
    several projectors) are counted as if chained: an overestimate, which only enters as sqrt(n). A
    weight gradient also sums over the batch's tokens: add them."""
    import torch

    n = vocab
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            n += m.in_features + (m.out_features if backward else 0)
        elif type(m).__name__.endswith("Attention"):
            n += (2 if backward else 1) * (2 * seq + int(getattr(m, "head_dim", 0)))
    return n


def transformer_chain(hidden: int, ffn: int, layers: int, seq: int, head_dim: int, front: int = 0) -> int:
    """n for a transformer encoder that is not a torch module (CTranslate2): per layer two norms, the
    q/k/v/output projections (hidden each), attention scores (head_dim) and softmax + weights x values
    (2 * seq), the feed-forward (hidden, then ffn); `front` adds the input layers (e.g. convolutions)."""
    return front + layers * (6 * hidden + head_dim + 2 * seq + hidden + ffn) + hidden
