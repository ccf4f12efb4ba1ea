"""Ablation grids: settings (config overrides) × folds, plus test-time variants, into one table and figure.

A grid is a YAML file (see configs/ablations/):

    base: configs/meld.yaml            # the recipe being varied
    name: imbalance_meld               # output folder under runs/ablations/
    overrides: [train.epochs=2]        # applied to every setting
    folds: [0]                         # fold indices (omit for all folds)
    settings:                          # one trained run per setting and fold
      none: [train.imbalance=none]
      focal: [train.imbalance=focal]
    eval_variants:                     # optional: test-time changes applied to every trained run
      without_audio: [eval.drop_inputs=[whisper_seq]]
    metrics: [ua, wa, macro_f1, weighted_f1]

Every (setting, fold) is an independent `emotune train` run with DONE markers, so a rerun skips what is done;
all of a grid's runs go to the executor together (`--jobs N` local processes, or one Ray task each).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
import time
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.config import load_config
from emotune.errors import ConfigError, EmotuneError
from emotune.evaluate.writer import headline_metrics
from emotune.experiments.cv import fold_jobs, validation_metrics
from emotune.experiments.executor import ExecutorOptions, run_jobs
from emotune.experiments.run import eval_run, log
from emotune.recipe import build_dataclass, read_yaml


@dataclasses.dataclass
class Grid:
    base: str
    settings: dict[str, list[str]]
    name: str = ""
    overrides: list[str] = dataclasses.field(default_factory=list)
    folds: Optional[list[int]] = None
    eval_variants: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    metrics: list[str] = dataclasses.field(default_factory=lambda: ["ua", "wa", "macro_f1", "weighted_f1"])
    per_class: bool = False  # add per-class recall columns (the imbalance question)


def load_grid(path: str | Path) -> Grid:
    raw = read_yaml(Path(path))
    if "settings" not in raw or "base" not in raw:
        raise ConfigError(f"{path}: a grid needs 'base' (a recipe) and 'settings'")
    grid = build_dataclass(Grid, raw, "", str(path))
    if not grid.name:
        grid.name = Path(path).stem
    if not grid.settings:
        raise ConfigError(f"{path}: 'settings' is empty")
    # Check every setting against the recipe schema before anything runs.
    for name, ov in grid.settings.items():
        load_config(grid.base, [*grid.overrides, *ov])
    return grid


def _cell(vals: list[float]) -> str:
    return f"{np.mean(vals):.3f} ± {np.std(vals):.3f}" if len(vals) > 1 else f"{vals[0]:.3f}"


def collect(grid: Grid, out: Path) -> list[dict]:
    """One row per (setting, eval variant): metrics mean ± std over folds."""
    rows = []
    variants = {"": None, **{k: k for k in grid.eval_variants}}
    for setting in grid.settings:
        fold_dirs = sorted(p.parent for p in (out / setting).glob("*/DONE"))
        val = validation_metrics(fold_dirs)
        for variant, tag in variants.items():
            name = "eval_test" if tag is None else f"eval_test_{tag}"
            metrics = [headline_metrics(json.loads((d / name / "metrics.json").read_text()))  # strict figures
                       for d in fold_dirs if (d / name / "metrics.json").exists()]
            if not metrics:
                continue
            row = {"setting": setting, "variant": variant or "-", "folds": len(metrics)}
            # Validation figures (training-side groups) of the trained runs: settings are compared on
            # these; the test columns are read once for the report.
            first = grid.metrics[0]
            if tag is None and val and all(first in m for m in val):
                vals = [m[first] for m in val]
                row[f"val_{first}"], row[f"val_{first}_cell"] = float(np.mean(vals)), _cell(vals)
            for key in grid.metrics:
                vals = [m[key] for m in metrics if key in m]
                if vals:
                    row[key] = float(np.mean(vals))
                    row[f"{key}_std"] = float(np.std(vals))
                    row[f"{key}_cell"] = _cell(vals)
            if grid.per_class:
                labels = metrics[0].get("labels", [])
                for n in labels:
                    vals = [m["per_class"][n]["recall"] for m in metrics if n in m.get("per_class", {})]
                    if vals:
                        row[f"recall_{n}"] = float(np.mean(vals))
            rows.append(row)
    return rows


def write_table(grid: Grid, rows: list[dict], out: Path) -> None:
    has_variants = any(r["variant"] != "-" for r in rows)
    val_col = [f"val_{grid.metrics[0]}"] if any(f"val_{grid.metrics[0]}" in r for r in rows) else []
    cols = ["setting"] + (["variant"] if has_variants else []) + ["folds"] + val_col + grid.metrics
    recall_cols = sorted({k for r in rows for k in r if k.startswith("recall_")}, key=lambda k: k)
    header = cols + recall_cols
    md = ["| " + " | ".join(h.replace("recall_", "R:") for h in header) + " |", "|" + "---|" * len(header)]
    csv = [",".join(cols + [f"{m}_std" for m in grid.metrics] + recall_cols)]
    for r in rows:
        cells = [str(r.get(c if c in ("setting", "variant", "folds") else f"{c}_cell", "")) for c in cols]
        cells += [f"{r[c]:.3f}" if c in r else "" for c in recall_cols]
        md.append("| " + " | ".join(cells) + " |")
        vals = [str(r.get(c, "")) if c in ("setting", "variant", "folds") else (f"{r[c]:.4f}" if c in r else "") for c in cols]
        vals += [f"{r[f'{m}_std']:.4f}" if f"{m}_std" in r else "" for m in grid.metrics]
        vals += [f"{r[c]:.4f}" if c in r else "" for c in recall_cols]
        csv.append(",".join(vals))
    (out / "table.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    (out / "table.csv").write_text("\n".join(csv) + "\n", encoding="utf-8")


def write_figure(grid: Grid, rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = grid.metrics[0]
    rows = [r for r in rows if key in r]
    labels = [r["setting"] + ("" if r["variant"] == "-" else f"\n{r['variant']}") for r in rows]
    fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(rows) + 2), 4))
    ax.bar(range(len(rows)), [r[key] for r in rows], yerr=[r[f"{key}_std"] for r in rows], capsize=4, color="#4C72B0")
    ax.set_xticks(range(len(rows)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(key.upper() if key in ("ua", "wa") else key)
    ax.set_ylim(0, 1)
    ax.set_title(f"{grid.name}: {key} (mean ± std over folds)")
    fig.tight_layout()
    fig.savefig(out / "figure.png", dpi=120)
    plt.close(fig)


def done_variant(eval_dir: Path, overrides: list[str]) -> None:
    """Evaluate one test-time variant of a trained run, unless done with these same overrides."""
    record = eval_dir / "overrides.json"
    if (eval_dir / "metrics.json").exists():
        if not record.exists():  # evaluated before variants were recorded: adopt it
            record.write_text(json.dumps(list(overrides)))
            return
        before = json.loads(record.read_text())
        if before == list(overrides):
            return
        raise EmotuneError(f"{eval_dir} was evaluated with {before} but the grid now says {list(overrides)}; "
                           f"rename the variant or delete {eval_dir}")
    eval_run(str(eval_dir.parent), "test", "score", overrides, out_name=eval_dir.name)
    record.write_text(json.dumps(list(overrides)))


def ablate(grid_path: str, opts: ExecutorOptions = ExecutorOptions(), root: str = "runs/ablations",
           extra: list[str] = (), only: Optional[list[str]] = None, blind: bool = False) -> Path:
    """`emotune ablate GRID.yaml`: train every setting on every fold (skipping done ones), then tabulate.

    `only` names the settings to train (a row added to a grid whose other rows ran elsewhere); the table
    then holds the settings with finished runs in this output folder. blind: print each setting's validation
    UA only (the full table, test columns included, is written to table.md unread).
    """
    grid = full = load_grid(grid_path)
    if only:
        unknown = sorted(set(only) - set(grid.settings))
        if unknown:
            raise ConfigError(f"{grid_path}: no setting named {', '.join(unknown)} (settings: {', '.join(grid.settings)})")
        grid = dataclasses.replace(grid, settings={k: v for k, v in grid.settings.items() if k in only})
    out = Path(root) / grid.name
    t0 = time.time()
    # Every (setting, fold) of the grid is one independent job: all of them go to the executor at once.
    runs, jobs = {}, []
    for i, (setting, ov) in enumerate(grid.settings.items(), 1):
        overrides = [*grid.overrides, *ov, *extra]
        cfg = load_config(grid.base, overrides)
        log(f"setting {i}/{len(grid.settings)} '{setting}': {' '.join(ov) or '(base)'}")
        dirs, todo = fold_jobs(grid.base, overrides, cfg, out / setting, grid.folds, label=f"{setting}/")
        runs[setting] = (overrides, dirs)
        jobs += todo
    # Written only now that every existing run of the grid has been checked against its setting.
    out.mkdir(parents=True, exist_ok=True)
    (out / "grid.yaml").write_text(Path(grid_path).read_text(encoding="utf-8"), encoding="utf-8")
    only_args = ["--only", ",".join(only)] if only else []
    (out / "command.txt").write_text(shlex.join(["emotune", "ablate", str(grid_path), *only_args, *extra]) + "\n")
    run_jobs(jobs, opts, log=log)
    for setting, (overrides, fold_dirs) in runs.items():
        for variant, vov in grid.eval_variants.items():
            vcfg = load_config(grid.base, [*overrides, *vov])
            absent = set(vcfg.eval.drop_inputs) - set(vcfg.model.inputs)
            if absent:  # e.g. "text missing at test time" for a run trained without text
                log(f"  variant '{variant}' does not apply to '{setting}' (no input {', '.join(sorted(absent))}): skipped")
                continue
            for d in fold_dirs:
                done_variant(d / f"eval_test_{variant}", vov)
    rows = collect(full, out)
    write_table(full, rows, out)
    write_figure(full, rows, out)
    (out / "rows.json").write_text(json.dumps(rows, indent=1))
    log(f"grid '{full.name}' done in {time.time() - t0:.0f} s: {out / 'table.md'}")
    if blind:
        print(blind_table(rows, out / "table.md"))
    else:
        print((out / "table.md").read_text())
    return out


def blind_table(rows: list[dict], where: Path) -> str:
    """Each setting's validation figure and fold count: nothing read from a test side (test-time variants,
    which exist only on the test side, are left out)."""
    lines = ["| setting | folds | validation |", "|---|---|---|"]
    for r in rows:
        if r["variant"] != "-":
            continue
        val = next((f"{k[4:-5]} {v}" for k, v in r.items() if k.startswith("val_") and k.endswith("_cell")), "—")
        lines.append(f"| {r['setting']} | {r['folds']} | {val} |")
    return "\n".join(lines) + f"\n(test columns not shown: {where})"
