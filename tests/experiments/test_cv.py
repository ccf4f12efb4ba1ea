"""Cross-validation on the built-in corpus: fold independence, resumability after a kill, the summary and report."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emotune.data.splits import Fold
from emotune.errors import EmotuneError
from emotune.experiments.cv import cv

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from emotune.data.synth import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", speakers=3, log=lambda *_: None).root


def recipe(tmp: Path, corpus: Path) -> tuple[str, list[str]]:
    overrides = [f"data.root={corpus}", f"data.manifest={tmp}/manifest.jsonl", f"run_dir={tmp}/cv",
                 "data.protocol=logo", "model.kind=baseline_mlp", "model.inputs=[logmel]",
                 "features.extractors=[logmel]", f"features.cache_dir={tmp}/cache", "train.epochs=5"]
    return "configs/quickstart.yaml", overrides


def lm_recipe(tmp: Path, corpus: Path, *extra: str) -> tuple[str, list[str]]:
    """The same folds with a tiny emotion LM (projectors only, 3 epochs of batches of 16)."""
    from tests.model.tiny import make_tiny_lm

    lm = make_tiny_lm(tmp / "lm")
    config, overrides = recipe(tmp, corpus)
    return config, [o for o in overrides if not o.startswith(("model.kind", "train.epochs"))] + [
        "model.kind=emotion_lm", f"model.lm.backbone={lm}", "model.lm.dtype=fp32", "model.lm.lora.enabled=false",
        "model.lm.tokens=1", "model.lm.projector=linear", "train.epochs=3", "train.bf16=false",
        "train.batch_size=16", "train.progress=false", *extra]


def lm_cv(tmp: Path, corpus: Path, *extra: str):
    """The tiny LM's CV over the 3 folds: (config, overrides, summary, [(fold dir, Fold, history)])."""
    config, overrides = lm_recipe(tmp, corpus, *extra)
    summary = cv(config, overrides)
    folds = sorted(p.parent for p in (tmp / "cv").glob("*/DONE"))
    assert len(folds) == 3
    return config, overrides, summary, [(f, Fold.load(f / "fold.json"), json.loads((f / "history.json").read_text()))
                                        for f in folds]


def test_folds_independent_and_leak_free(tmp_path, corpus, capsys):
    config, overrides = recipe(tmp_path, corpus)
    summary = cv(config, overrides)
    run = tmp_path / "cv"
    folds = sorted(p.parent for p in run.glob("*/DONE"))
    assert len(folds) == 3 and len(summary["ua"]["per_fold"]) == 3
    # Every fold starts from the same initial weights (the fork chained them): identical hashes.
    hashes = {(f / "init_hash.txt").read_text().strip() for f in folds}
    assert len(hashes) == 1 and "n/a" not in hashes
    seen_test = set()
    for f in folds:
        fold = Fold.load(f / "fold.json")
        trained_on = set(fold.train) | set(fold.val)
        assert not trained_on & set(fold.test)
        # the predictions are exactly the test ids
        preds = [json.loads(l)["id"] for l in (f / "eval_test" / "predictions.jsonl").read_text().splitlines()]
        assert set(preds) == set(fold.test)
        # ... and the validation figures (what settings are compared on) are the validation ids
        val_preds = [json.loads(l)["id"] for l in (f / "eval_val" / "predictions.jsonl").read_text().splitlines()]
        assert set(val_preds) == set(fold.val) and fold.val
        seen_test |= set(fold.test)
    assert len(summary["validation"]["ua"]["per_fold"]) == 3
    assert len(seen_test) == 195  # every sample tested exactly once over the folds
    assert (run / "confusion_sum.csv").exists() and (run / "confusion_sum.png").exists()
    cm = json.loads((run / "summary.json").read_text())["confusion"]
    assert sum(map(sum, cm)) == 195

    # --blind: run again (every fold done) and only the validation figure is printed; the test side is on disk.
    capsys.readouterr()
    again = cv(config, overrides, blind=True)
    printed = capsys.readouterr().err
    assert again["ua"] == summary["ua"]
    assert f"validation UA {summary['validation']['ua']['mean']:.4f}" in printed and "summary.json" in printed
    assert f"{summary['ua']['mean']:.3f}" not in printed.replace(f"{summary['validation']['ua']['mean']:.4f}", "")

    from emotune.evaluate.report import report

    md, page = report(run)
    assert "confusion" in md.read_text() and page.read_text().count("data:image/png;base64") >= 2


def test_lr_refit_on_validation_writes_no_in_sample_validation_figures(tmp_path, corpus):
    """The LR refits on training + validation once C is chosen: no eval_val (it would be in-sample); the
    summary's validation figure is each fold's selection UA at the chosen C."""
    config, overrides = recipe(tmp_path, corpus)
    summary = cv(config, [o for o in overrides if not o.startswith("model.kind")] + ["model.kind=baseline_lr"])
    folds = sorted(p.parent for p in (tmp_path / "cv").glob("*/DONE"))
    histories = [json.loads((f / "history.json").read_text()) for f in folds]
    assert all(h["refit_on_validation"] for h in histories)
    assert not any((f / "eval_val").exists() for f in folds)
    assert summary["validation"]["ua"]["per_fold"] == [h["inner_ua"][str(h["C"])] for h in histories]


def test_lm_refit_trains_the_chosen_epochs_on_training_and_validation(tmp_path, corpus):
    """train.refit: the epoch is chosen on the validation speaker by an early-stopped model, whose validation
    scores are the fold's validation figure; the kept model is then trained from the same start on training +
    validation for that many epochs, and it is the one tested."""
    config, overrides, summary, folds = lm_cv(tmp_path, corpus, "train.patience=0", "train.refit=true")
    for f, fold, h in folds:
        assert h["refit_on_validation"] and h["refit_epochs"] == h["best_epoch"]
        # the refit took the chosen epochs over training + validation samples, with no validation pass
        n = len(fold.train) + len(fold.val)
        assert h["refit"]["steps"] == h["best_epoch"] * -(-n // 16) and h["refit"]["best_epoch"] is None
        val_ids = [json.loads(l)["id"] for l in (f / "eval_val" / "predictions.jsonl").read_text().splitlines()]
        assert set(val_ids) == set(fold.val)
        assert json.loads((f / "eval_val" / "metrics.json").read_text())["ua"] == pytest.approx(h["best_val_ua"])
        # the tested weights are the refit's, not the selected model's
        from emotune.train.checkpoint import load_tensors

        kept, chosen = load_tensors(f / "model" / "emotion_lm.safetensors"), load_tensors(f / "selection" / "best.safetensors")
        assert any(not np.array_equal(kept[k].numpy(), chosen[k].numpy()) for k in kept)
    assert summary["validation"]["ua"]["per_fold"] == pytest.approx([h["best_val_ua"] for _, _, h in folds])
    assert summary["lm_precision"] == ["fp32"]  # model.lm.dtype=fp32: what the folds' models record

    with pytest.raises(EmotuneError, match="train.refit"):
        cv(config, [o for o in overrides if not o.startswith(("model.kind", "run_dir"))]
           + ["model.kind=baseline_mlp", f"run_dir={tmp_path}/mlp"])


def test_lm_inner_folds_choose_the_epoch_on_every_training_speaker_then_refit(tmp_path, corpus):
    """train.inner_folds: each part of the training side (whole speakers) is validated by a model trained on the
    others for every epoch; the best mean epoch is trained on all training speakers, and that model is tested.
    The fold's validation figure is the best epoch's UA over every part's held-out speaker, kept per sample."""
    from emotune.data.sample import read_manifest
    from emotune.train.checkpoint import load_tensors

    config, overrides, summary, folds = lm_cv(tmp_path, corpus, "train.patience=1", "train.inner_folds=2")
    group = {s.id: s.group for s in read_manifest(tmp_path / "manifest.jsonl").samples}
    for f, fold, h in folds:
        side = set(fold.train) | set(fold.val)
        # two parts of whole speakers, together the training side; none of them is a test speaker
        speakers = [set(g) for g in h["inner_groups"]]
        assert len(speakers) == 2 and not speakers[0] & speakers[1]
        assert speakers[0] | speakers[1] == {group[i] for i in side}
        assert not (speakers[0] | speakers[1]) & {group[i] for i in fold.test}
        # every part trained all 3 epochs (no early stopping inside); the pooled out-of-part UA chose the epoch
        assert [len(c) for c in h["inner_curves"]] == [3, 3] and len(h["inner_pooled"]) == 3
        assert h["best_epoch"] == int(np.argmax(h["inner_pooled"])) + 1 and h["best_val_ua"] == max(h["inner_pooled"])
        # ... and its per-sample predictions are kept: every training-side sample, scored by the part model that
        # did not see it, recomputing the fold's validation figure
        rows = [json.loads(l) for l in (f / "eval_val" / "predictions.jsonl").read_text().splitlines()]
        assert sorted(r["id"] for r in rows) == sorted(side)
        assert json.loads((f / "eval_val" / "metrics.json").read_text())["ua"] == pytest.approx(h["best_val_ua"])
        assert all((f / "inner" / str(p) / "checkpoints").is_dir() for p in (1, 2))  # a killed run resumes there
        # the kept model took the chosen epochs over the whole training side, without validation
        assert h["refit"]["steps"] == h["best_epoch"] * -(-len(side) // 16) and h["refit"]["best_epoch"] is None
        kept, part = load_tensors(f / "model" / "emotion_lm.safetensors"), load_tensors(f / "inner" / "1" / "best.safetensors")
        assert any(not np.array_equal(kept[k].numpy(), part[k].numpy()) for k in kept)
    assert summary["validation"]["ua"]["per_fold"] == pytest.approx([h["best_val_ua"] for _, _, h in folds])
    # Every fold's kept model started from the same weights, hashed before its first step.
    hashes = {(f / "init_hash.txt").read_text().strip() for f, _, _ in folds}
    assert len(hashes) == 1 and "deterministic" not in next(iter(hashes))

    with pytest.raises(EmotuneError, match="train.inner_folds"):
        cv(config, [o for o in overrides if not o.startswith("run_dir")] + ["train.refit=true", f"run_dir={tmp_path}/x"])


def test_lm_fixed_schedule_trains_every_training_side_sample_for_the_set_epochs(tmp_path, corpus):
    """train.fixed_schedule: nothing is chosen on validation; the model trains on training + validation for
    train.epochs, keeps its last weights, is tested, and has no validation figure (it trained on those samples)."""
    config, overrides, summary, folds = lm_cv(tmp_path, corpus, "train.fixed_schedule=true")
    for f, fold, h in folds:
        assert h["fixed_schedule"] and h["refit_on_validation"] and h["refit_epochs"] == 3
        assert h["steps"] == 3 * -(-(len(fold.train) + len(fold.val)) // 16) and h["best_epoch"] is None
        assert not (f / "eval_val").exists() and not (f / "selection").exists()
        assert (f / "eval_test" / "predictions.jsonl").exists()
    assert "validation" not in summary
    assert len({(f / "init_hash.txt").read_text() for f, _, _ in folds}) == 1

    base = [o for o in overrides if not o.startswith("run_dir")]
    with pytest.raises(EmotuneError, match="train.fixed_schedule chooses nothing"):
        cv(config, base + ["train.refit=true", f"run_dir={tmp_path}/x"])
    with pytest.raises(EmotuneError, match="cannot be the evaluated"):
        cv(config, base + ["eval.split=val", f"run_dir={tmp_path}/y"])


@pytest.mark.faults
def test_cv_resumes_after_kill(tmp_path, corpus):
    config, overrides = recipe(tmp_path, corpus)
    cmd = [sys.executable, "-m", "emotune.cli", "cv", config, *overrides]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run = tmp_path / "cv"
    deadline = time.time() + 240
    while time.time() < deadline and not list(run.glob("*/DONE")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.parent.name: p.stat().st_mtime for p in run.glob("*/DONE")}
    assert 1 <= len(done_before) < 3, "the kill should land between folds"
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "already done: skipped" in out.stderr
    for name, mtime in done_before.items():
        assert (run / name / "DONE").stat().st_mtime == mtime  # finished folds were not redone
    resumed = json.loads((run / "summary.json").read_text())

    # Equal to an uninterrupted run with the same seed.
    clean = tmp_path / "clean"
    fresh = cv(config, [o if not o.startswith("run_dir=") else f"run_dir={clean}" for o in overrides])
    assert resumed["ua"]["per_fold"] == pytest.approx(fresh["ua"]["per_fold"])
