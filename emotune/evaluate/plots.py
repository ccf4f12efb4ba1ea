"""Figures of an evaluation: an annotated confusion heatmap and a per-class bar chart (PNG).

Drawn on matplotlib's Agg canvas directly (no pyplot state, no global backend switch), so plotting is
safe inside a server thread and never opens a window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


def confusion_heatmap(counts: np.ndarray, row_names: Sequence[str], col_names: Sequence[str], path: Path,
                      title: str = "", row_totals: Optional[Sequence[float]] = None) -> Path:
    """Colour = count / row total (share of each gold class); each cell reads "rate\\n(count)".

    Row totals default to the row sums; multi-label passes the gold count of each label instead.
    """
    counts = np.asarray(counts, dtype=float)
    rows = counts.sum(axis=1) if row_totals is None else np.asarray(row_totals, dtype=float)
    rows = rows[:, None]
    rates = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    n_r, n_c = counts.shape
    size = max(4.0, 0.75 * max(n_r, n_c) + 2)
    fig = Figure(figsize=(size + 1, size))
    ax = fig.add_subplot()
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of gold class")
    ax.set_xticks(range(n_c), labels=list(col_names), rotation=45, ha="right")
    ax.set_yticks(range(n_r), labels=list(row_names))
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    font = 9 if max(n_r, n_c) <= 10 else 6
    for i in range(n_r):
        for j in range(n_c):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{rates[i, j]:.2f}\n({int(counts[i, j])})", ha="center", va="center",
                    fontsize=font, color=colour)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def per_class_bars(per_class: dict, path: Path, title: str = "") -> Path:
    """Grouped bars of precision, recall and F1 per class; the gold support is written under each name."""
    names = list(per_class)
    x = np.arange(len(names))
    fig = Figure(figsize=(max(5.0, 0.6 * len(names) + 2), 4))
    ax = fig.add_subplot()
    width = 0.27
    for k, metric in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (k - 1) * width, [per_class[n][metric] for n in names], width, label=metric)
    ax.set_xticks(x, labels=[f"{n}\n(n={per_class[n]['support']})" for n in names],
                  rotation=45 if len(names) > 8 else 0, ha="right" if len(names) > 8 else "center", fontsize=8)
    ax.set_ylim(0, 1.15)  # headroom so the legend never covers a bar at 1.0
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.set_ylabel("score")
    ax.legend(loc="upper center", ncol=3, fontsize=8, frameon=False)
    if title:
        ax.set_title(title)
    return _save(fig, path)
