"""Late fusion of trained runs (`model.kind: late_fusion`, made by `emotune combine`): a face model and an
audio model trained on different corpora, read together.

Each member run scores a sample with its own inputs and its own model. Its class probabilities are summed
into the fused classes its classes map to; a class that maps to none is dropped and the member's row
renormalised over the mapped ones. The fused row is the weighted mean over the members that have at least
one of their inputs for that sample: a video with no face found is the audio member alone, never the
face member guessing from nothing. (A sample none of the members can read gets every member, each handling
missing inputs its own way, as a single run would.)

Nothing is trained here, so nothing here can leak; the members keep their own configs and weights, and
`model/late_fusion.json` only names them (paths relative to the fusion run's folder, so a runs/ tree moves
as a whole) with their weights and class maps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.data.examples import Examples
from emotune.errors import EmotuneError

FILE = "late_fusion.json"


@dataclasses.dataclass
class Member:
    run_dir: str  # relative to the fusion run's folder (or absolute)
    weight: float
    classes: dict[str, str]  # member class -> fused class; member classes not listed are dropped
    labels: list[str]  # the member model's classes when combined (a retrained member is refused at load)


class LateFusion:
    init_hash: Optional[str] = None

    def __init__(self, label_names: list[str], members: list[Member], base: Path):
        self.label_names = list(label_names)
        self.members = members
        self.base = Path(base)  # the fusion run's folder: member paths are relative to it
        for m in members:
            if not m.weight > 0:
                raise EmotuneError(f"late fusion: member {m.run_dir} has weight {m.weight}; weights must be > 0")
            if not m.classes:
                raise EmotuneError(f"late fusion: no class of {m.run_dir} ({', '.join(m.labels)}) maps to a fused "
                                   f"class ({', '.join(self.label_names)})")
        produced = {c for m in members for c in m.classes.values()}
        orphans = [c for c in self.label_names if c not in produced]
        if orphans:
            raise EmotuneError(f"late fusion: no member produces the fused class(es) {', '.join(orphans)} "
                               f"(map a member class onto each, or use a label set without them)")
        self._runs: Optional[list] = None  # (cfg, model, inputs read) per member, loaded on first use

    def member_path(self, m: Member) -> Path:
        return self.base / m.run_dir

    def _loaded(self) -> list:
        if self._runs is None:
            from emotune.config import load_config
            from emotune.experiments.run import load_model

            self._runs = []
            for m in self.members:
                path = self.member_path(m)
                if not (path / "config.yaml").is_file():
                    raise EmotuneError(f"late fusion: member run {path} not found (paths are relative to {self.base})")
                cfg = load_config(path / "config.yaml")
                model = load_model(cfg, path)
                if list(model.label_names) != m.labels:
                    raise EmotuneError(f"late fusion: member {path} now predicts {', '.join(model.label_names)}, not "
                                       f"the {', '.join(m.labels)} it was combined with; run `emotune combine` again")
                self._runs.append((cfg, model, member_inputs(cfg)))
        return self._runs

    # -- EmotionModel -----------------------------------------------------------------------------------
    def fit(self, train: Examples, val: Examples, out_dir: Path, run_hash: str = "") -> dict:
        raise EmotuneError("a late fusion is not trained: `emotune combine` builds it from trained runs")

    def predict_proba(self, ex: Examples) -> np.ndarray:
        from emotune.experiments.run import apply_eval_time

        n, F = len(ex), len(self.label_names)
        total, weight = np.zeros((n, F)), np.zeros(n)
        rows = []
        for m, (cfg, model, inputs) in zip(self.members, self._loaded()):
            C = len(m.labels)
            # The member sees its own columns only (its dropped inputs stay missing: apply_eval_time).
            feats = {k: list(ex.features.get(k, [None] * n)) for k in cfg.model.inputs}
            sub = dataclasses.replace(ex, label_names=list(m.labels), features=feats, y=np.full(n, -1, np.int64),
                                      y_multi=np.zeros((n, C), np.float32), y_soft=np.zeros((n, C), np.float32))
            sub = apply_eval_time(cfg, model, sub)
            probs = np.asarray(model.predict_proba(sub), dtype=np.float64)
            onto = np.zeros((C, F))
            for src, dst in m.classes.items():
                onto[m.labels.index(src), self.label_names.index(dst)] = 1.0
            mapped = probs @ onto
            mapped /= np.clip(mapped.sum(axis=1, keepdims=True), 1e-12, None)
            present = np.array([any(sub.features[k][i] is not None for k in inputs) for i in range(n)])
            rows.append((m.weight, mapped))
            total += m.weight * present[:, None] * mapped
            weight += m.weight * present
        none = weight == 0
        if none.any():  # no member has any of its inputs: every member, as each would answer alone
            total[none] = sum(w * p[none] for w, p in rows)
            weight[none] = sum(w for w, _ in rows)
        return total / weight[:, None]

    def save(self, out_dir: Path) -> None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        doc = {"label_names": self.label_names, "members": [dataclasses.asdict(m) for m in self.members]}
        (out_dir / FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, out_dir: Path) -> "LateFusion":
        path = Path(out_dir) / FILE
        if not path.is_file():
            raise EmotuneError(f"{path} not found (a late-fusion run is made by `emotune combine`)")
        doc = json.loads(path.read_text(encoding="utf-8"))
        return cls(doc["label_names"], [Member(**m) for m in doc["members"]], Path(out_dir).parent)

    def state_hash(self) -> Optional[str]:
        return None  # no weights of its own

    def configure_eval(self, cfg) -> None:
        pass  # each member applies its own run's evaluation settings

    def generate(self, ex: Examples) -> list[str]:
        raise EmotuneError("a late fusion of classifiers gives probabilities, not free text")


def member_inputs(cfg) -> list[str]:
    """The inputs a member run reads: its model's inputs less those its evaluation drops."""
    return [n for n in cfg.model.inputs if n not in cfg.eval.drop_inputs]


def relative_to(path: Path, base: Path) -> str:
    """`path` as stored in late_fusion.json: relative to the fusion run's folder."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
