"""Cross-corpus evaluation: a model trained on one corpus, scored on another (`emotune eval RUN --manifest M`).

The two corpora rarely share a label set. A class of the other corpus is mapped to a class of the model
through the model's label set (its canonical names and aliases: RAVDESS `fearful` ← quickstart `fearful`,
MER2023 `surprise` → RAVDESS `surprised`), or the other way round through the other set's aliases, or by
an explicit `--map OTHER=MODEL` (a choice the user states, e.g. FER2013 fear → MER2023 worried). Only the
classes the two share are scored: the model's probabilities are restricted to them and renormalised, and
samples of the other corpus whose class has no counterpart are left out, with counts. Fewer than two
shared classes is refused: there is nothing to recognise.

The whole other corpus is the test set (it was never seen in training). Given a CV directory, every fold's
model is scored on it, and the summary holds mean ± std over those models.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.labels import LabelSet
from emotune.errors import EmotuneError
from emotune.experiments.run import log


def parse_maps(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        other, sep, model = item.partition("=")
        if not sep or not other.strip() or not model.strip():
            raise EmotuneError(f"--map {item}: expected OTHER=MODEL (a class of the other corpus = a class of the model)")
        out[other.strip()] = model.strip()
    return out


def map_classes(model: LabelSet, other: LabelSet, explicit: Optional[dict[str, str]] = None,
                sides: tuple[str, str] = ("the other corpus", "the model")) -> dict[str, str]:
    """Other corpus class → model class, for every class of `other` that has a counterpart. `sides` names
    the two in errors (`emotune combine` maps a member run's classes onto a fused label set)."""
    explicit = dict(explicit or {})
    for o, m in explicit.items():
        if o not in other.names:
            raise EmotuneError(f"--map {o}={m}: '{o}' is not a class of {sides[0]} ({', '.join(other.names)})")
        if m not in model.names:
            raise EmotuneError(f"--map {o}={m}: '{m}' is not a class of {sides[1]} ({', '.join(model.names)})")
    out = {}
    for o in other.names:
        if o in explicit:
            out[o] = explicit[o]
            continue
        m = model.to_subset(model.canonical(o))  # the model's names and aliases
        if m is None:  # the other set's aliases, read backwards: a model class it spells differently
            m = next((c for c in model.names if other.to_subset(other.canonical(c)) == o), None)
        if m is not None:
            out[o] = m
    return out


@dataclasses.dataclass
class Mapping:
    classes: dict[str, str]  # other class -> model class
    shared: list[str]  # model classes scored, in the model's order
    other_left_out: dict[str, int]  # other classes without a counterpart -> samples left out
    model_not_scored: list[str]  # classes the model was trained on that the other corpus lacks

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def plan(model: LabelSet, other: LabelSet, other_counts: dict[str, int], explicit=None) -> Mapping:
    # Only classes the other corpus has samples of: a label-set name with no sample is nothing to score.
    classes = {o: m for o, m in map_classes(model, other, explicit).items() if other_counts.get(o)}
    shared = [c for c in model.names if c in set(classes.values())]
    if len(shared) < 2:
        raise EmotuneError(
            f"cross-corpus: the model's classes ({', '.join(model.names)}) and the other corpus's "
            f"({', '.join(other.names)}) share {len(shared)} class(es) through their label sets' names and aliases; "
            f"at least 2 are needed (state a mapping with --map OTHER=MODEL)")
    left = {o: n for o, n in other_counts.items() if o not in classes and n}
    return Mapping(classes, shared, left, [c for c in model.names if c not in shared])


def eval_cross(run_or_cv: str, manifest_path: str, explicit: Optional[dict[str, str]] = None,
               overrides: list[str] = ()) -> dict:
    """Score a run (or every fold of a CV directory) on another corpus; writes eval_cross_<name>/ folders."""
    from emotune.data.sample import read_manifest

    src = Path(run_or_cv)
    other = read_manifest(manifest_path)
    name = f"eval_cross_{Path(manifest_path).stem}"
    if (src / "config.yaml").exists() and (src / "fold.json").exists():
        return _eval_run(src, other, name, explicit, overrides)
    folds = [d for d in sorted(src.iterdir()) if (d / "DONE").exists()] if src.is_dir() else []
    if not folds:
        raise EmotuneError(f"{src}: neither a run directory (config.yaml, fold.json) nor a CV directory with finished folds")
    per_fold = {d.name: _eval_run(d, other, name, explicit, overrides) for d in folds}
    first = next(iter(per_fold.values()))
    summary = {"source": str(src), "manifest": str(manifest_path), "mapping": first["mapping"], "std_ddof": 0,
               "models": len(per_fold)}
    for key in ("wa", "ua", "macro_f1", "weighted_f1"):
        vals = [m[key] for m in per_fold.values()]
        summary[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "per_fold": vals}
    out = src / name
    out.mkdir(exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"{src.name} on {Path(manifest_path).stem}: UA {summary['ua']['mean']:.3f} ± {summary['ua']['std']:.3f} "
        f"over {len(per_fold)} fold models (shared classes: {', '.join(first['mapping']['shared'])})", result=True)
    return summary


def _eval_run(run_dir: Path, other, name: str, explicit, overrides) -> dict:
    from emotune.config import load_config
    from emotune.data.examples import build_examples
    from emotune.data.labels import load_label_set
    from emotune.evaluate.writer import write_evaluation
    from emotune.experiments.run import apply_eval_time, label_set_for, load_inputs, load_model

    cfg = load_config(run_dir / "config.yaml", list(overrides))
    if cfg.data.target == "multi":
        raise EmotuneError(f"{run_dir}: cross-corpus evaluation scores single labels; this run is multi-label")
    source = _source_manifest(cfg)
    model_labels = label_set_for(cfg, source)
    trained = _trained_classes(run_dir, source, model_labels)
    other_labels = load_label_set(other.label_set, other.subset)
    counts: dict[str, int] = {}
    for s in other.samples:
        c = other_labels.to_subset(s.label)
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    # A class of the label set that the run never trained on is not a class of the model.
    scorable = dataclasses.replace(model_labels, names=tuple(c for c in model_labels.names if c in trained))
    mapping = plan(scorable, other_labels, counts, explicit)
    kept = []
    for s in other.samples:
        c = mapping.classes.get(other_labels.to_subset(s.label) or "")
        if c is not None:  # the sample now carries the model's name for its class
            kept.append(dataclasses.replace(s, label=c, labels=[c], soft=None))
    feats, transcripts = load_inputs(cfg, other)
    for s in kept:
        if not s.text and transcripts.get(s.id):
            s.text = transcripts[s.id]
    ex = build_examples(kept, [s.id for s in kept], model_labels, feats, cfg.data.context_turns)
    model = load_model(cfg, run_dir)
    ex = apply_eval_time(cfg, model, ex)
    probs = np.asarray(model.predict_proba(ex), dtype=np.float64)
    idx = [model_labels.index(c) for c in mapping.shared]
    sub = probs[:, idx]
    sub = sub / np.clip(sub.sum(axis=1, keepdims=True), 1e-12, None)
    gold = np.array([mapping.shared.index(model_labels.names[y]) for y in ex.y])
    out = run_dir / name
    _refuse_other_target(out, other)
    metrics = write_evaluation(out, ex.ids, mapping.shared, sub.astype(np.float32), gold=gold, ece_bins=cfg.eval.ece_bins)
    metrics["mapping"] = mapping.to_json()
    metrics["n_scored"] = len(kept)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    (out / "cross_corpus.json").write_text(json.dumps({"manifest": str(other.path), "dataset": other.dataset,
                                                       **mapping.to_json(), "n_scored": len(kept)}, indent=1))
    log(f"{run_dir.name} on {other.dataset}: {len(kept)} samples, classes {', '.join(mapping.shared)}: "
        f"UA {metrics['ua']:.3f}, WA {metrics['wa']:.3f}" +
        (f"; left out: {', '.join(f'{k} ({v})' for k, v in mapping.other_left_out.items())}" if mapping.other_left_out else ""))
    return metrics


def _refuse_other_target(out: Path, other) -> None:
    """eval_cross_<manifest stem> of another manifest with the same file name is not overwritten."""
    done = out / "cross_corpus.json"
    if done.exists():
        before = json.loads(done.read_text()).get("manifest")
        if before and Path(before).resolve() != Path(str(other.path)).resolve():
            raise EmotuneError(f"{out} holds the evaluation on {before}, another manifest with the same file name "
                               f"as {other.path}; give that manifest another name (the folder is named after it)")


def _source_manifest(cfg):
    """The run's own manifest: its label set, and which classes the run trained on."""
    from emotune.data.sample import read_manifest

    path = Path(cfg.data.manifest_path())
    if not path.exists():
        raise EmotuneError(f"{path}: the run's manifest is needed for its label set (prepare it again, or give data.manifest=...)")
    return read_manifest(path)


def _trained_classes(run_dir: Path, source, labels: LabelSet) -> set[str]:
    from emotune.data.splits import Fold

    train = set(Fold.load(run_dir / "fold.json").train)
    return {c for s in source.samples if s.id in train for c in [labels.to_subset(s.label)] if c is not None}


def load_grid_spec(path: Path) -> dict:
    """A cross-corpus grid file, checked before anything runs: out, sources, targets, pairs (default: all)."""
    import yaml

    if not path.exists():
        raise EmotuneError(f"grid file not found: {path}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(spec) - {"out", "sources", "targets", "pairs"})
    if unknown or not spec.get("sources") or not spec.get("targets"):
        raise EmotuneError(f"{path}: a cross-corpus grid has out, sources, targets and optional pairs"
                           + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    sources, targets = spec["sources"], spec["targets"]
    pairs = spec.get("pairs") or [[s, t] for s in sources for t in targets]
    for s, t in pairs:
        if s not in sources or t not in targets:
            raise EmotuneError(f"{path}: pair [{s}, {t}] names an unknown source or target")
    for name, src in sources.items():
        if not (src.get("cv_dir") or src.get("config")):
            raise EmotuneError(f"{path}: source {name} needs cv_dir or config")
        if src.get("config"):
            from emotune.config import load_config

            load_config(src["config"], list(src.get("overrides", [])))  # a bad recipe stops here, not mid-grid
    return {"out": spec.get("out", "runs/cross_corpus"), "sources": sources, "targets": targets, "pairs": pairs}


def grid(path: str) -> Path:
    """`emotune cross-corpus GRID.yaml`: every (source, target) pair scored, one table.

    A source is an existing CV directory (`cv_dir`) or a recipe to cross-validate first (`config`,
    `overrides`; skipped fold by fold when done); a target is a manifest. Each row sits beside the source's
    in-corpus figure, the gap that cross-corpus evaluation is about.
    """
    from emotune.experiments.cv import cv

    spec_path = Path(path)
    spec = load_grid_spec(spec_path)
    out, sources, targets, pairs = Path(spec["out"]), spec["sources"], spec["targets"], spec["pairs"]
    cv_dirs: dict[str, Path] = {}
    for name in dict.fromkeys(s for s, _ in pairs):
        src = sources[name]
        if src.get("cv_dir"):
            cv_dirs[name] = Path(src["cv_dir"])
        else:
            cv_dirs[name] = Path(src.get("run_dir") or out / name)
            cv(src["config"], [*src.get("overrides", []), f"run_dir={cv_dirs[name]}"])
    rows = []
    for s, t in pairs:
        summary = eval_cross(str(cv_dirs[s]), str(targets[t]), sources[s].get("map"))
        own = cv_dirs[s] / "summary.json"
        in_corpus = json.loads(own.read_text())["ua"]["mean"] if own.exists() else None
        m = summary["mapping"]
        rows.append({"source": s, "target": t, "models": summary["models"], "shared": m["shared"],
                     "left_out": m["other_left_out"], "in_corpus_ua": in_corpus,
                     **{k: summary[k] for k in ("ua", "wa", "macro_f1")}})
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"grid": str(spec_path), "std_ddof": 0, "rows": rows}, indent=1))
    lines = ["| source | target | shared classes | left out of target | in-corpus UA | cross-corpus UA | WA | macro-F1 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        left = ", ".join(f"{k} ({v})" for k, v in r["left_out"].items()) or "—"
        own = f"{r['in_corpus_ua']:.3f}" if r["in_corpus_ua"] is not None else "—"
        lines.append(f"| {r['source']} | {r['target']} | {', '.join(r['shared'])} | {left} | {own} | "
                     f"{r['ua']['mean']:.3f} ± {r['ua']['std']:.3f} | {r['wa']['mean']:.3f} | {r['macro_f1']['mean']:.3f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    log(f"wrote {out / 'table.md'}", result=True)
    return out / "table.md"
