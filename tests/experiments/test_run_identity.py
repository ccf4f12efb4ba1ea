"""A run is its config: a finished or half-done run directory refuses another config, and says which keys differ."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from emotune.config import load_config
from emotune.errors import ConfigError, EmotuneError
from emotune.experiments.cv import cv

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from emotune.data.synth import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", speakers=3, log=lambda *_: None).root


def overrides(tmp: Path, corpus: Path, run: str) -> list[str]:
    return [f"data.root={corpus}", f"data.manifest={tmp}/manifest.jsonl", f"run_dir={tmp}/{run}",
            "data.protocol=logo", "model.kind=baseline_lr", "model.inputs=[logmel]", "features.extractors=[logmel]",
            f"features.cache_dir={tmp}/cache", "model.baseline.C_grid=[0.1,1.0]", "model.baseline.inner_folds=2"]


def emotune(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emotune.cli", *args], capture_output=True, text=True, cwd=ROOT)


def test_train_rerun_same_config_skips_and_other_config_is_refused(tmp_path, corpus):
    ov = overrides(tmp_path, corpus, "run")
    first = emotune("train", "configs/quickstart.yaml", *ov)
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "run"
    identity = json.loads((run / "identity.json").read_text())
    assert identity["config"]["model.kind"] == "baseline_lr" and identity["data"]["fold"]
    config_text, done = (run / "config.yaml").read_text(), (run / "DONE").stat().st_mtime

    same = emotune("train", "configs/quickstart.yaml", *ov, "train.progress=false")  # not a result setting
    assert same.returncode == 0 and "already done with this config" in same.stderr
    assert "run written" not in same.stderr

    other = emotune("train", "configs/quickstart.yaml", *ov, "model.baseline.C_grid=[1.0]", "seed=3")
    assert other.returncode != 0
    last = other.stderr.strip().splitlines()[-1]
    assert "model.baseline.C_grid" in last and "seed 0 → 3" in last and "run_dir=" in last
    assert "Traceback" not in other.stderr
    # Nothing of the finished run was touched, and its config still describes its weights.
    assert (run / "config.yaml").read_text() == config_text and (run / "DONE").stat().st_mtime == done


def test_changed_data_is_refused(tmp_path, corpus):
    ov = overrides(tmp_path, corpus, "run")
    assert emotune("train", "configs/quickstart.yaml", *ov).returncode == 0
    manifest = tmp_path / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:-1]) + "\n")  # one sample fewer: a different dataset
    again = emotune("train", "configs/quickstart.yaml", *ov)
    assert again.returncode != 0 and "the manifest changed" in again.stderr


def test_cv_folder_refuses_another_config_before_any_fold_runs(tmp_path, corpus):
    ov = overrides(tmp_path, corpus, "cv")
    cv("configs/quickstart.yaml", ov)
    run = tmp_path / "cv"
    config_text = (run / "config.yaml").read_text()
    dones = {p: p.stat().st_mtime for p in run.glob("*/DONE")}
    assert len(dones) == 3
    with pytest.raises(EmotuneError, match=r"model\.baseline\.pool 'mean' → 'mean_std'.*run_dir="):
        cv("configs/quickstart.yaml", [*ov, "model.baseline.pool=mean_std"])
    assert (run / "config.yaml").read_text() == config_text
    assert {p: p.stat().st_mtime for p in run.glob("*/DONE")} == dones
    # A fold folder changed behind the CV folder's back (e.g. by `emotune train` into it) is caught too.
    fold = sorted(run.glob("*/identity.json"))[0]
    record = json.loads(fold.read_text())
    record["config"]["train.lr"] = 0.5
    record["config_hash"] = "changed"
    fold.write_text(json.dumps(record))
    with pytest.raises(EmotuneError, match=r"fold0_spk01 was made with a different config: train\.lr 0\.5 → "):
        cv("configs/quickstart.yaml", ov)


@pytest.mark.parametrize("override, key", [("train.epochs=0", "train.epochs"), ("train.batch_size=-2", "train.batch_size"),
                                           ("train.lr=0", "train.lr"), ("train.grad_accum=0", "train.grad_accum"),
                                           ("model.lm.lora.r=0", "model.lm.lora.r"),
                                           ("data.val_fraction=1.5", "data.val_fraction")])
def test_out_of_range_settings_are_refused_at_load_time(override, key):
    with pytest.raises(ConfigError, match=rf"^{key.replace('.', r'[.]')}: must be .* \(command line\)$"):
        load_config("configs/quickstart.yaml", [override])


def test_out_of_range_setting_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epochs: 0\n")
    with pytest.raises(ConfigError, match=rf"train.epochs: must be >= 1, got 0 \({bad}\)"):
        load_config(bad)


def folder_made_before(run, identity: dict, key: str):
    """A run folder whose identity was written before config key `key` existed."""
    from emotune.identity import digest

    older = {k: v for k, v in identity["config"].items() if k != key}
    run.mkdir()
    (run / "identity.json").write_text(json.dumps({**identity, "config": older, "config_hash": digest(older)}))
    return run


def test_a_key_added_later_with_its_old_behaviour_is_the_same_run(tmp_path):
    """A folder made before data.fold_file existed is still this config's folder; a changed value is not."""
    from emotune.identity import check_or_claim, digest, make_identity

    cfg = load_config("configs/quickstart.yaml", [f"data.manifest={tmp_path}/m.jsonl"])
    identity = make_identity(cfg)
    run = folder_made_before(tmp_path / "run", identity, "data.fold_file")
    assert check_or_claim(run, identity, write=False)
    other = make_identity(load_config("configs/quickstart.yaml", [f"data.manifest={tmp_path}/m.jsonl",
                                                                  "data.protocol=fold_file", "data.fold_file=f.csv"]))
    with pytest.raises(EmotuneError, match="data.fold_file"):
        check_or_claim(run, other, write=False)
    # The LR's refit changed its results: an LR folder made before it existed is not this config's ...
    lr = make_identity(load_config("configs/quickstart.yaml", [f"data.manifest={tmp_path}/m.jsonl", "model.kind=baseline_lr"]))
    older = {k: v for k, v in lr["config"].items() if k != "model.baseline.refit"}
    (run / "identity.json").write_text(json.dumps({**lr, "config": older, "config_hash": digest(older)}))
    with pytest.raises(EmotuneError, match="model.baseline.refit"):
        check_or_claim(run, lr, write=False)
    # ... but with refit off it is, and so is an LM folder, which never reads the LR's settings
    off = make_identity(load_config("configs/quickstart.yaml", [f"data.manifest={tmp_path}/m.jsonl", "model.kind=baseline_lr",
                                                                "model.baseline.refit=false"]))
    assert check_or_claim(run, off, write=False)


def test_reasoning_position_added_later_keeps_old_reasoning_runs(tmp_path):
    """Reasoning runs made before model.lm.reasoning_position existed wrote the reasoning first."""
    from emotune.identity import check_or_claim, make_identity

    lm = make_identity(load_config("configs/merr_reasoning.yaml", [f"data.manifest={tmp_path}/m.jsonl"]))
    run = folder_made_before(tmp_path / "run", lm, "model.lm.reasoning_position")
    assert check_or_claim(run, lm, write=False)
    after = make_identity(load_config("configs/merr_reasoning.yaml", [f"data.manifest={tmp_path}/m.jsonl",
                                                                      "model.lm.reasoning_position=after_label"]))
    with pytest.raises(EmotuneError, match="reasoning_position"):
        check_or_claim(run, after, write=False)


@pytest.mark.parametrize("key,changed,kind", [("model.lm.input_layout", "grouped", "emotion_lm"),
                                              ("model.lm.feature_noise", "0.5", "emotion_lm"),
                                              ("model.lm.mixup", "0.4", "emotion_lm"), ("data.split_seed", "0", "emotion_lm"),
                                              ("model.baseline.seeds", "3", "baseline_mlp"), ("train.refit", "true", "emotion_lm"),
                                              ("model.lm.max_text_tokens", "256", "emotion_lm"),
                                              ("train.inner_folds", "4", "emotion_lm")])
def test_settings_added_later_keep_old_runs(tmp_path, key, changed, kind):
    """Runs made before these keys existed had one line per input, no feature noise, one MLP net."""
    from emotune.identity import check_or_claim, make_identity

    base = [f"data.manifest={tmp_path}/m.jsonl", f"model.kind={kind}"]
    lm = make_identity(load_config("configs/ravdess_lm_pooled.yaml", base))
    run = folder_made_before(tmp_path / "run", lm, key)
    assert check_or_claim(run, lm, write=False)
    other = make_identity(load_config("configs/ravdess_lm_pooled.yaml", [*base, f"{key}={changed}"]))
    with pytest.raises(EmotuneError, match=key.split(".")[-1]):
        check_or_claim(run, other, write=False)


@pytest.mark.parametrize("kind,unread,read", [
    ("baseline_lr", ["model.lm.dtype=fp32", "model.lm.mixup=0.4"], "model.baseline.C_grid=[1.0]"),
    ("baseline_mlp", ["model.lm.lora.r=4"], "model.baseline.hidden=64"),
    ("emotion_lm", ["model.baseline.hidden=64", "model.baseline.seeds=3"], "model.lm.mixup=0.2"),
])
def test_settings_the_model_kind_never_reads_do_not_make_another_run(tmp_path, kind, unread, read):
    """An LR folder stays the LR's when only the LM's settings change (and the LM's when only the heads' do); a key
    the model reads still makes another run, and the error names only such keys."""
    from emotune.identity import check_or_claim, make_identity, recorded_hash

    base = [f"data.manifest={tmp_path}/m.jsonl", f"model.kind={kind}"]
    first = make_identity(load_config("configs/ravdess_lm_pooled.yaml", base))
    run = tmp_path / "run"
    assert not check_or_claim(run, first)
    changed = make_identity(load_config("configs/ravdess_lm_pooled.yaml", [*base, *unread]))
    assert changed["config_hash"] != first["config_hash"]  # recorded: the hash covers every key
    assert check_or_claim(run, changed)
    # A half-done run resumes its checkpoints: they were written under the hash the folder was claimed with.
    assert recorded_hash(run, changed) == first["config_hash"] + first["data_hash"]
    other = make_identity(load_config("configs/ravdess_lm_pooled.yaml", [*base, *unread, read]))
    with pytest.raises(EmotuneError) as err:
        check_or_claim(run, other)
    assert read.split("=")[0] in str(err.value) and unread[0].split("=")[0] not in str(err.value)
    # Another model kind in the same folder is always another run.
    lr_or_lm = "emotion_lm" if kind != "emotion_lm" else "baseline_lr"
    with pytest.raises(EmotuneError, match="model.kind"):
        check_or_claim(run, make_identity(load_config("configs/ravdess_lm_pooled.yaml", [*base, f"model.kind={lr_or_lm}"])))


def test_a_subsampled_run_extracts_the_features_of_its_drawn_samples_only(tmp_path, corpus):
    """data.max_train / max_eval draw a subset; only its samples are extracted, and the run trains on them."""
    ov = overrides(tmp_path, corpus, "run") + ["data.max_train=8", "data.max_eval=6"]
    run = emotune("train", "configs/quickstart.yaml", *ov)
    assert run.returncode == 0, run.stderr[-2000:]
    fold = json.loads((tmp_path / "run" / "fold.json").read_text())
    sizes = re.search(r"train (\d+), val (\d+), test (\d+)", run.stderr)
    drawn = sum(int(n) for n in sizes.groups())
    check = emotune("features", "--manifest", f"{tmp_path}/manifest.jsonl", "--extractors", "logmel",
                    "--cache-dir", f"{tmp_path}/cache", "--check", "--json")
    report = json.loads(check.stdout)["logmel"]
    # The cache holds the drawn samples of the three sides, not the whole corpus.
    assert report["total"] == len(fold["train"]) + len(fold["val"]) + len(fold["test"]) > 3 * drawn
    assert report["present"] == drawn and report["not_extracted"] == report["total"] - drawn
    assert sum(1 for _ in open(tmp_path / "run" / "eval_test" / "predictions.jsonl")) == int(sizes.group(3)) <= 7
