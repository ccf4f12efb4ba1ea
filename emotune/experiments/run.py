"""One training run = one fold of one config: manifest → cached features → Examples → model → evaluation.

A run directory holds everything needed to re-evaluate or serve it, and nothing that needs pickle:

    <run_dir>/config.yaml     the resolved config (with the command-line overrides it came from)
    <run_dir>/command.txt     the exact command
    <run_dir>/fold.json       the ids of train / val / test (checked for leaks)
    <run_dir>/init_hash.txt   hash of the model's initial weights (every fold starts from the same ones)
    <run_dir>/model/          trained weights (safetensors / JSON)
    <run_dir>/eval_<split>/   predictions.jsonl, metrics.json, confusion.csv, confusion.png
    <run_dir>/eval_val/       the same on the validation split (closed-set scores), when the test split is
                              the evaluated one: what settings are compared on
    <run_dir>/DONE            written last: a run with DONE is never redone by cv/ablate
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

from emotune.config import Config, load_config, save_config
from emotune.data.augment import copies_of, read_copies
from emotune.data.examples import Examples, build_examples
from emotune.data.labels import load_label_set
from emotune.data.sample import Manifest, read_manifest
from emotune.data.splits import Fold, check_fold, leak_groups, make_folds
from emotune.errors import EmotuneError
from emotune.identity import check_or_claim, make_identity, recorded_hash
from emotune.io import read_jsonl
from emotune.process import is_main_process


def log(msg: str, result: bool = False) -> None:
    """Progress on stderr; under --quiet only results (`result=True`) are printed."""
    if result or not os.environ.get("EMOTUNE_QUIET"):
        print(f"[emotune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ensure_manifest(cfg: Config) -> Manifest:
    """Read the recipe's manifest, preparing it from the dataset root first if it does not exist yet."""
    path = Path(cfg.data.manifest_path())
    if not path.exists():
        from emotune.data.prepare import prepare

        log(f"manifest {path} not found: preparing {cfg.data.dataset} from {cfg.data.root}")
        options = dict(cfg.data.options)
        if cfg.data.label_set:
            options["label_set"] = cfg.data.label_set
        prepare(cfg.data.dataset, cfg.data.root, path, options, log=log)  # recorded as given (survives a move)
    return read_manifest(path)


def refuse_late_fusion(cfg: Config) -> None:
    """train / cv / eval: a late fusion has no data of its own and nothing to train."""
    if cfg.model.kind == "late_fusion":
        raise EmotuneError("a late_fusion run has no data of its own to train or evaluate on: `emotune combine` "
                           "makes it from trained runs, and predict / demo / serve read it")


def label_set_for(cfg: Config, manifest: Manifest):
    return load_label_set(cfg.data.label_set or manifest.label_set, cfg.data.subset)


def split_seed(cfg: Config) -> int:
    """The seed of the data draws (validation carving, subsamples): data.split_seed, else the run's seed."""
    return cfg.seed if cfg.data.split_seed is None else cfg.data.split_seed


def folds_for(cfg: Config, manifest: Manifest) -> list[Fold]:
    return make_folds(manifest.samples, cfg.data.protocol, cfg.data.folds, cfg.data.val_groups,
                      cfg.data.val_fraction, split_seed(cfg), cfg.data.fold_file, manifest.dataset, log)


def asr_spec(cfg: Config) -> str:
    """The ASR extractor as the recipe lists it (settings such as the language included), else plain asr."""
    from emotune.features.base import parse_spec

    return next((spec for spec in cfg.features.extractors if parse_spec(spec)[0] == "asr"), "asr")


def feature_names(cfg: Config) -> list[str]:
    """The extractors a run loads: the model's inputs, and ASR only when the model reads the transcript
    (a prompt showing it, or a text encoder falling back to it) — never merely because
    features.extractors lists asr for other runs."""
    from emotune.features.text_use import wants_asr

    names = list(cfg.model.inputs)
    if wants_asr(cfg) and asr_spec(cfg) not in names:
        names.append(asr_spec(cfg))
    return names


def load_inputs(cfg: Config, manifest: Manifest) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, str]]:
    """Cached features for the model's inputs (extracting whatever is not cached yet) and ASR transcripts."""
    names = feature_names(cfg)
    if not names:
        return {}, {}
    from emotune.features.store import ensure_features, load_features, load_transcripts

    cache_dir = Path(cfg.features.cache_dir) if cfg.features.cache_dir else None
    asr = asr_spec(cfg)
    vectors = [n for n in names if n != asr]
    feats: dict[str, dict[str, np.ndarray]] = {n: {} for n in vectors}
    transcripts: dict[str, str] = {}
    # The training copies of data.augment are features like any clip's; they join only training sides (fold_data).
    for m in (manifest, *([read_copies(cfg.data.augment, manifest)] if cfg.data.augment else [])):
        ensure_features(m, names, cache_dir, workers=cfg.features.workers)
        for n, values in (load_features(m, vectors, cache_dir) if vectors else {}).items():
            feats[n].update(values)
        if asr in names:
            transcripts.update(load_transcripts(m, cache_dir, asr))
    return feats, transcripts


def keep_labelled(cfg: Config, manifest: Manifest, labels) -> tuple[list, int]:
    """Samples that have a target under this config's label subset and target kind; the rest are counted."""
    kept, dropped = [], 0
    for s in manifest.samples:
        if cfg.data.target in ("single", "reasoning"):
            ok = labels.to_subset(s.label) is not None
        else:
            ok = bool(labels.map_many(s.labels or ([s.label] if s.label else [])))
        if ok:
            kept.append(s)
        else:
            dropped += 1
    return kept, dropped


def subsample(ids: list[str], n: int, label_of: dict, seed: int) -> list[str]:
    """n ids drawn per label in proportion (seeded), in their original order."""
    if n >= len(ids):
        return ids
    rng = np.random.default_rng(seed)
    by_label: dict = {}
    for i in ids:
        by_label.setdefault(label_of.get(i), []).append(i)
    chosen = set()
    for members in by_label.values():
        k = max(1, int(round(n * len(members) / len(ids))))
        chosen.update(rng.choice(members, size=min(k, len(members)), replace=False).tolist())
    return [i for i in ids if i in chosen]


@dataclasses.dataclass
class FoldData:
    fold: Fold
    train: Examples
    val: Examples
    test: Examples


def fold_sides(cfg: Config, fold: Fold, samples: list) -> list[list[str]]:
    """The ids of train / val / test among `samples`, drawn down to data.max_train / max_val / max_eval."""
    keep = {s.id for s in samples}
    sides = [[i for i in ids if i in keep] for ids in (fold.train, fold.val, fold.test)]
    label_of = {s.id: s.label or (s.labels[0] if s.labels else None) for s in samples}
    limits = (cfg.data.max_train, cfg.data.max_val or cfg.data.max_eval, cfg.data.max_eval)
    return [subsample(ids, n, label_of, split_seed(cfg)) if n else ids for ids, n in zip(sides, limits)]


def fold_manifest(cfg: Config, manifest: Manifest, fold: Fold) -> Manifest:
    """The manifest cut to the samples this fold's drawn sides use, so a subsampled run extracts the
    features of those alone (2,000 of 28,709 images, not all). Unchanged without a draw, and with
    dialogue context or training copies, which read other samples than the sides' own."""
    if not (cfg.data.max_train or cfg.data.max_val or cfg.data.max_eval) or cfg.data.context_turns or cfg.data.augment:
        return manifest
    samples, _ = keep_labelled(cfg, manifest, label_set_for(cfg, manifest))
    used = {i for side in fold_sides(cfg, fold, samples) for i in side}
    return dataclasses.replace(manifest, samples=[s for s in manifest.samples if s.id in used])


def fold_data(cfg: Config, manifest: Manifest, fold: Fold, feats, transcripts) -> FoldData:
    labels = label_set_for(cfg, manifest)
    samples, dropped = keep_labelled(cfg, manifest, labels)
    if dropped:
        log(f"{dropped} sample(s) have no {cfg.data.target} target in label set {labels.name}/{labels.subset}: left out")
    if transcripts:
        for s in samples:
            if not s.text and transcripts.get(s.id):
                s.text = transcripts[s.id]
    sides = fold_sides(cfg, fold, samples)
    reasoning = None
    if cfg.data.target == "reasoning":
        reasoning = read_reasoning(cfg, samples)
        # Training needs a reasoning text; validation/test are scored on their labels.
        sides[0] = [i for i in sides[0] if reasoning.get(i)]
        if not sides[0]:
            raise EmotuneError(f"{cfg.data.instructions or cfg.data.dataset}: no reasoning text matches a training sample of this fold")
    if cfg.data.augment:
        if cfg.data.context_turns:
            raise EmotuneError("data.augment adds copies of single clips; it cannot be combined with data.context_turns")
        copies = read_copies(cfg.data.augment, manifest)
        extra = copies_of(sides[0], copies)
        log(f"{fold.name}: {len(extra)} perturbed copies of the {len(sides[0])} training samples join the training side "
            f"({cfg.data.augment}); validation and test stay original")
        wanted = set(extra)
        samples = samples + [c for c in copies.samples if c.id in wanted]
        sides[0] = sides[0] + extra
    built = [build_examples(samples, ids, labels, feats, cfg.data.context_turns, reasoning) for ids in sides]
    return FoldData(fold, *built)


def read_reasoning(cfg: Config, samples: list) -> dict[str, str]:
    """sample id → its reasoning text: the last assistant turn `emotune instruct` wrote (data.instructions),
    else the reference reasoning a dataset ships with its samples (meta `reasoning`, e.g. MERR)."""
    if not cfg.data.instructions:
        found = {s.id: str(s.meta["reasoning"]) for s in samples if str(s.meta.get("reasoning") or "").strip()}
        if not found:
            raise EmotuneError("data.target=reasoning needs data.instructions (a JSONL written by `emotune instruct`) "
                               "or a dataset whose samples carry reference reasoning (e.g. merr)")
        return found
    path = Path(cfg.data.instructions)
    if not path.exists():
        raise EmotuneError(f"instruction file not found: {path}")
    out: dict[str, str] = {}
    for _, rec in read_jsonl(path):
        if not isinstance(rec, dict) or rec.get("kind") != "reasoning":
            continue
        answers = [t.get("value", "") for t in rec.get("conversations", []) if t.get("from") == "gpt"]
        if answers and rec.get("sample_id"):
            out[rec["sample_id"]] = answers[-1]
    return out


def feature_shapes(feats: dict[str, dict[str, np.ndarray]]) -> dict[str, tuple]:
    shapes = {}
    for name, col in feats.items():
        first = next(iter(col.values()), None)
        if first is None:
            raise EmotuneError(f"feature '{name}' is missing for every sample (see `emotune features --check`)")
        shapes[name] = tuple(np.asarray(first).shape)
    return shapes


def build_model(cfg: Config, label_names: list[str], shapes: dict[str, tuple]):
    from emotune.model.registry import model_class

    cls = model_class(cfg.model.kind)
    if cfg.model.kind == "emotion_lm":
        return cls(label_names, list(cfg.model.inputs), shapes, cfg.model.lm, cfg.train, target=cfg.data.target, seed=cfg.seed)
    return cls(label_names, list(cfg.model.inputs), cfg.model.baseline, target=cfg.data.target,
               imbalance=cfg.train.imbalance, seed=cfg.seed, focal_gamma=cfg.train.focal_gamma, train=cfg.train)


def load_model(cfg: Config, run_dir: Path):
    from emotune.model.registry import model_class

    return model_class(cfg.model.kind).load(run_dir / "model")


def saved_generations(out_dir: Path, ids: list[str]) -> list[str]:
    """The generated texts an earlier `--mode generate` wrote to out_dir/predictions.jsonl, in `ids` order."""
    path = Path(out_dir) / "predictions.jsonl"
    if not path.exists():
        raise EmotuneError(f"{path}: no saved generations to reuse (run `emotune eval --mode generate` once without --reuse)")
    raw = {rec.get("id"): rec.get("raw") for _, rec in read_jsonl(path) if isinstance(rec, dict)}
    missing = [i for i in ids if not isinstance(raw.get(i), str)]
    if missing:
        raise EmotuneError(f"{path}: no generated text for {len(missing)} of {len(ids)} samples (first: {missing[0]}); "
                           f"generate again without --reuse")
    return [raw[i] for i in ids]


def evaluate(cfg: Config, model, ex: Examples, out_dir: Path, mode: str = "score", labels=None,
             thresholds=None, reuse: bool = False) -> dict:
    from emotune.evaluate.writer import write_evaluation

    multi = cfg.data.target == "multi"
    gold = ex.y_multi if multi else ex.y
    if mode == "generate":
        from emotune.evaluate.decode import parse_label, parse_labels

        texts = saved_generations(out_dir, ex.ids) if reuse else model.generate(ex)
        parse = parse_labels if multi else parse_label
        split = getattr(model, "answer_and_reasoning", lambda text: (text, ""))
        preds = [parse(split(t)[0], labels) for t in texts]
        # Generation gives no class scores: the writer scores the parsed answers, invalid ones counted.
        metrics = write_evaluation(out_dir, ex.ids, ex.label_names, None, gold=gold, raw_text=texts, preds=preds,
                                   multi=multi, ece_bins=cfg.eval.ece_bins)
        if cfg.data.target == "reasoning" and ex.reasoning and any(ex.reasoning):
            from emotune.evaluate.reasoning import judge_reasoning

            gold_names = [ex.label_names[y] if y >= 0 else None for y in ex.y]
            metrics["reasoning"] = judge_reasoning(out_dir, ex.ids, [split(t)[1] for t in texts],
                                                   ex.reasoning, ex.clues or [""] * len(ex), gold_names)
            (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
        return metrics
    probs = model.predict_proba(ex)
    return write_evaluation(out_dir, ex.ids, ex.label_names, probs, gold=gold, multi=multi, thresholds=thresholds,
                            ece_bins=cfg.eval.ece_bins)


def multi_label_thresholds(cfg: Config, model, val: Examples, run_dir: Path):
    """Multi-label decision thresholds, chosen on the validation side only and kept with the run."""
    path = run_dir / "thresholds.json"
    if cfg.data.target != "multi":
        return None
    if not path.exists():
        from emotune.evaluate.metrics import choose_thresholds

        thr = choose_thresholds(val.y_multi, model.predict_proba(val), policy=cfg.eval.threshold_policy,
                                default=cfg.eval.threshold)
        path.write_text(json.dumps(np.asarray(thr, dtype=float).tolist()))
    return np.asarray(json.loads(path.read_text()), dtype=float)


def run_fold(cfg: Config, fold: Fold, run_dir: Path, manifest: Optional[Manifest] = None, inputs=None,
             command: Optional[str] = None) -> dict:
    """Train on fold.train (select on fold.val), evaluate on fold.test; skip if the run is already DONE."""
    run_dir = Path(run_dir)
    done = run_dir / "DONE"
    manifest = manifest or ensure_manifest(cfg)
    identity = make_identity(cfg, fold.to_json())
    main = is_main_process()
    # A folder made with another config or data is refused before anything is read or written; one
    # made with this config either skips (DONE) or resumes its checkpoint.
    claimed = check_or_claim(run_dir, identity, write=main)
    if done.exists():
        log(f"{run_dir}: already done with this config and data; nothing to do "
            f"(delete it or give another run_dir=... to train again)")
        return json.loads((run_dir / f"eval_{cfg.eval.split}" / "metrics.json").read_text())
    feats, transcripts = inputs if inputs is not None else load_inputs(cfg, fold_manifest(cfg, manifest, fold))
    check_fold(fold, leak_groups(manifest.samples, cfg.data.protocol))
    data = fold_data(cfg, manifest, fold, feats, transcripts)
    if main and not claimed:
        # Written once, when the folder is claimed: it always describes the weights inside.
        save_config(cfg, run_dir / "config.yaml")
        (run_dir / "command.txt").write_text((command or shlex.join(["emotune", *sys.argv[1:]])) + "\n")
        (run_dir / "fold.json").write_text(fold.to_json())
    check_refit(cfg, data, fold.name)
    shapes = feature_shapes(feats) if feats else {}
    # Inner CV builds its own models (the parts', then the refit's, which records its starting weights).
    model = None if cfg.train.inner_folds else build_model(cfg, data.train.label_names, shapes)
    log(f"{fold.name}: train {len(data.train)}, val {len(data.val)}, test {len(data.test)} — {cfg.model.kind}")
    # Models whose weights exist before fit hash them now; those built inside fit (the MLP head, whose
    # input width is known only then) set `init_hash` themselves.
    before = model.state_hash() if model is not None else None
    t0 = time.time()
    run_hash = recorded_hash(run_dir, identity)
    if cfg.train.inner_folds:
        from emotune.experiments.inner_cv import choose_by_inner_cv

        model, history = choose_by_inner_cv(cfg, data.train.concat(data.val), shapes, run_dir, run_hash)
    elif cfg.train.fixed_schedule:
        # Nothing to choose: every training-side sample trains, for train.epochs; no validation pass.
        both = data.train.concat(data.val)
        log(f"{fold.name}: fixed schedule, {cfg.train.epochs} epoch(s) on training + validation ({len(both)} samples)")
        history = model.fit(both, data.val.subset([]), run_dir / "model", run_hash=run_hash)
        history = {**history, "refit_on_validation": True, "fixed_schedule": True, "refit_epochs": cfg.train.epochs}
    else:
        history = model.fit(data.train, data.val, run_dir / ("selection" if cfg.train.refit else "model"), run_hash=run_hash)
    if cfg.train.refit:
        model, history = refit(cfg, model, history, data, shapes, run_dir, run_hash, label_set_for(cfg, manifest))
    if not main:  # under accelerate launch / torchrun: rank 0 saves and evaluates
        return {}
    model.save(run_dir / "model")
    train_s = time.time() - t0
    # The models record a hash of their trainable weights as initialised, before the first step: equal
    # hashes across folds prove that no fold started from another fold's weights.
    init = model.init_hash or before or "deterministic (no initial weights)"
    (run_dir / "init_hash.txt").write_text(init + "\n")
    thresholds = multi_label_thresholds(cfg, model, data.val, run_dir)
    metrics = evaluate(cfg, model, data.test if cfg.eval.split == "test" else data.val,
                       run_dir / f"eval_{cfg.eval.split}", cfg.eval.mode, label_set_for(cfg, manifest), thresholds)
    metrics["train_seconds"] = round(train_s, 1)
    if cfg.eval.split == "test" and len(data.val) and not history.get("refit_on_validation"):
        # The kept model on the validation groups as well (closed-set scores): the figures settings are
        # compared on (CV summaries, ablation tables), so that no test fold decides a recipe. A model refit
        # on the validation groups would score in-sample there: its selection score stands in (cv.py).
        val_metrics = evaluate(cfg, model, data.val, run_dir / "eval_val", "score", label_set_for(cfg, manifest), thresholds)
        (run_dir / "eval_val" / "metrics.json").write_text(json.dumps(val_metrics, indent=1, default=float))
    (run_dir / "history.json").write_text(json.dumps(history, indent=1, default=float))
    (run_dir / f"eval_{cfg.eval.split}" / "metrics.json").write_text(json.dumps(metrics, indent=1, default=float))
    done.write_text(time.strftime("%Y-%m-%d %H:%M:%S") + "\n")
    log(f"{fold.name}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in ("wa", "ua", "macro_f1", "weighted_f1") if k in metrics),
        result=True)
    return metrics


def check_refit(cfg: Config, data: FoldData, fold_name: str) -> None:
    """`train.refit` needs validation samples to choose the epoch on: refused before training (the model kind
    is checked when the config loads)."""
    if cfg.train.inner_folds and cfg.data.augment:
        raise EmotuneError(f"train.inner_folds validates on parts of the training side, where data.augment's perturbed "
                           f"copies sit beside their originals; use one or the other ({fold_name})")
    if cfg.train.refit and not len(data.val):
        raise EmotuneError(f"train.refit needs validation samples to choose the epoch on, and {fold_name} has none "
                           f"(data.val_groups / data.val_fraction)")


def refit(cfg: Config, selected, history: dict, data: FoldData, shapes: dict, run_dir: Path, run_hash: str, label_set):
    """`train.refit`: choose, then refit. `selected` was early-stopped on the validation side (run_dir/selection);
    a model from the same start is trained on training + validation samples for the epoch count it kept
    (run_dir/model). What validation decided is fixed first, with the selected model: its scores on the
    validation side (eval_val/, the figures settings are compared on) and multi-label thresholds."""
    epoch = history.get("best_epoch")
    if not epoch:
        raise EmotuneError(f"{run_dir}: train.refit found no epoch chosen on validation (no validation score was recorded)")
    if is_main_process():  # (rank 0 writes files; every process trains)
        thresholds = multi_label_thresholds(cfg, selected, data.val, run_dir)
        if cfg.eval.split == "test":
            val_metrics = evaluate(cfg, selected, data.val, run_dir / "eval_val", "score", label_set, thresholds)
            (run_dir / "eval_val" / "metrics.json").write_text(json.dumps(val_metrics, indent=1, default=float))
    refit_cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epoch, patience=0))
    model = build_model(refit_cfg, data.train.label_names, shapes)
    both = data.train.concat(data.val)
    log(f"{run_dir.name}: refit for the {epoch} epoch(s) chosen on validation, on training + validation ({len(both)} samples)")
    refit_history = model.fit(both, data.val.subset([]), run_dir / "model", run_hash=run_hash + ":refit")
    return model, {**history, "refit_on_validation": True, "refit_epochs": epoch, "refit": refit_history}


def train(config: str, overrides: list[str]) -> Path:
    """`emotune train CONFIG`: one fold (data.fold) into run_dir."""
    cfg = load_config(config, overrides)
    refuse_late_fusion(cfg)
    manifest = ensure_manifest(cfg)
    folds = folds_for(cfg, manifest)
    try:
        fold = folds[cfg.data.fold]
    except IndexError:
        raise EmotuneError(f"data.fold={cfg.data.fold}: the {cfg.data.protocol} protocol has {len(folds)} fold(s)") from None
    run_dir = cfg.resolved_run_dir()
    already = (run_dir / "DONE").exists()
    run_fold(cfg, fold, run_dir, manifest)  # refuses a folder made with another config
    if not already:
        log(f"run written to {run_dir}")
    return run_dir


def same_sides_fold(cfg: Config, manifest: Manifest, fold: Fold, name: str) -> Fold:
    """Fold `name` of the run's protocol, refused unless its training and validation sides are the run's."""
    folds = {f.name: f for f in folds_for(cfg, manifest)}
    if name not in folds:
        raise EmotuneError(f"--fold {name}: the {cfg.data.protocol} protocol's folds are {', '.join(folds)}")
    other = folds[name]
    if set(other.train) != set(fold.train) or set(other.val) != set(fold.val):
        raise EmotuneError(f"--fold {name}: its training or validation side differs from this run's ({fold.name}), "
                           f"so its test side may hold samples the run trained on; train that fold instead")
    return other


def apply_eval_time(cfg: Config, model, ex: Examples) -> Examples:
    """Test-time variations of a trained run: inputs removed at test time, another prompt pool."""
    drop = cfg.eval.drop_inputs
    if drop:
        unknown = [n for n in drop if n not in ex.features]
        if unknown:
            raise EmotuneError(f"eval.drop_inputs: {unknown} are not inputs of this run ({sorted(ex.features)})")
        feats = {k: ([None] * len(ex) if k in drop else v) for k, v in ex.features.items()}
        ex = dataclasses.replace(ex, features=feats)
    model.configure_eval(cfg)
    return ex


def eval_run(run_dir: str, split: str = "test", mode: str = "score", overrides: list[str] = (),
             out_name: Optional[str] = None, fold_name: Optional[str] = None, reuse: bool = False) -> dict:
    """`emotune eval RUN_DIR`: re-evaluate a trained run on its fold's split, by scoring or by generation.

    `overrides` change only evaluation-time settings (eval.*, the LM's eval prompt pool); the trained
    weights are whatever the run saved. `fold_name`: the test side of another fold of the protocol whose
    training and validation sides are the run's own (MER2023's three official test sets: train once).
    `reuse` (generate mode): judge the texts generated before into the same folder instead of generating again.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").exists():
        raise EmotuneError(f"{run_dir}: not a run directory (no config.yaml)")
    cfg = load_config(run_dir / "config.yaml", list(overrides))
    refuse_late_fusion(cfg)
    fold = Fold.load(run_dir / "fold.json")
    manifest = ensure_manifest(cfg)
    if fold_name and fold_name != fold.name:
        fold = same_sides_fold(cfg, manifest, fold, fold_name)
        out_name = out_name or f"eval_{split}_{fold_name}" + ("" if mode == "score" else f"_{mode}")
    feats, transcripts = load_inputs(cfg, manifest)
    data = fold_data(cfg, manifest, fold, feats, transcripts)
    ex = {"test": data.test, "val": data.val, "train": data.train}[split]
    model = load_model(cfg, run_dir)
    ex = apply_eval_time(cfg, model, ex)
    out = run_dir / (out_name or (f"eval_{split}" if mode == "score" else f"eval_{split}_{mode}"))
    if reuse and mode != "generate":
        raise EmotuneError("--reuse judges saved generations again: it needs --mode generate")
    metrics = evaluate(cfg, model, ex, out, mode, label_set_for(cfg, manifest),
                       multi_label_thresholds(cfg, model, data.val, run_dir), reuse=reuse)
    log(f"wrote {out}")
    return metrics
