import subprocess
import sys

import pytest

from emotune.config import ConfigError, load_config, save_config
from emotune.errors import EmotuneError


def write(tmp_path, text):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_load_and_override(tmp_path):
    p = write(tmp_path, "name: x\ntrain:\n  epochs: 3\ndata:\n  dataset: meld\n")
    cfg = load_config(p, ["train.lr=0.01", "data.folds=4", "name=2024"])
    assert cfg.train.epochs == 3 and cfg.train.lr == 0.01 and cfg.data.folds == 4
    assert cfg.data.dataset == "meld" and cfg.name == "2024"


def test_unknown_key_names_key_and_file(tmp_path):
    p = write(tmp_path, "train:\n  epochz: 3\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert "train.epochz" in str(e.value) and str(p) in str(e.value)


def test_wrong_type(tmp_path):
    p = write(tmp_path, "train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match=r"train.epochs: expected int.*c.yaml"):
        load_config(p)
    with pytest.raises(ConfigError, match=r"train.lr: expected float.*command line"):
        load_config(write(tmp_path, "{}"), ["train.lr=fast"])
    with pytest.raises(ConfigError, match="data.target: must be one of"):
        load_config(write(tmp_path, "data: {target: both}"))


def test_malformed_yaml(tmp_path):
    p = write(tmp_path, "train:\n  epochs: [1,\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_config(p)


def test_roundtrip(tmp_path):
    cfg = load_config(None, ["train.epochs=7"])
    save_config(cfg, tmp_path / "out.yaml")
    again = load_config(tmp_path / "out.yaml")
    assert again.train.epochs == 7


def check_accelerate_config(path):
    """configs/accelerate/ holds `accelerate launch --config_file` files, not emotune recipes."""
    import yaml

    raw = yaml.safe_load(path.read_text())
    assert raw["distributed_type"] in {"MULTI_GPU", "MULTI_CPU", "FSDP", "DEEPSPEED"}, path
    assert raw["num_processes"] == 8 * raw["num_machines"], path  # the examples are 8 GPUs per node


def test_every_recipe_loads():
    from pathlib import Path

    from emotune.experiments.ablate import load_grid
    from emotune.experiments.cross_corpus import load_grid_spec
    from emotune.instruct.config import load_instruct_config

    recipes = sorted(Path("configs").rglob("*.yaml"))
    assert len(recipes) > 10
    for r in recipes:
        if r.parent.name == "ablations" and "sources:" in r.read_text():
            load_grid_spec(r)  # a cross-corpus grid: its recipes load, its pairs name known sources and targets
        elif r.parent.name == "ablations":
            load_grid(r)  # also checks every setting against the recipe schema
        elif r.parent.name == "accelerate":
            check_accelerate_config(r)
        elif r.stem.startswith("instruct"):
            load_instruct_config(r)
        else:
            load_config(r)


def test_cli_error_is_one_line(tmp_path):
    p = write(tmp_path, "bogus: 1\n")
    out = subprocess.run([sys.executable, "-m", "emotune.cli", "splits", str(tmp_path / "none.jsonl"), "--protocol", "official"],
                         capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "manifest not found" in out.stderr and "Traceback" not in out.stderr


def test_a_directory_given_as_config_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "emotune.cli", "train", str(tmp_path)], capture_output=True, text=True)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith(f"{tmp_path}: is a directory, not a YAML recipe "
                                                        "(recipes are files such as configs/ravdess.yaml)")


def test_a_moved_key_points_to_its_one_home(tmp_path):
    with pytest.raises(ConfigError, match=r"'model\.baseline\.epochs' is now 'train\.epochs' .* \(command line\)"):
        load_config(None, ["model.kind=baseline_mlp", "model.baseline.epochs=5"])


def test_train_settings_reach_the_mlp_and_its_own_defaults_fill_the_rest():
    mlp = load_config(None, ["model.kind=baseline_mlp", "train.epochs=5"])
    assert mlp.train.epochs == 5 and mlp.train.batch_size == 64 and mlp.train.patience == 15  # MLP defaults
    lm = load_config(None, ["model.kind=emotion_lm"])
    assert lm.train.epochs == 10 and lm.train.batch_size == 16


@pytest.mark.parametrize("overrides", [["model.kind=baseline_lr"], ["model.kind=baseline_mlp"],
                                       ["model.kind=emotion_lm", "data.target=reasoning"]])
def test_refit_is_refused_where_no_epoch_is_chosen_for_a_label_target(overrides):
    with pytest.raises(EmotuneError, match=r"train\.refit .*model.kind"):
        load_config(None, [*overrides, "train.refit=true"])
    assert load_config(None, ["model.kind=emotion_lm", "train.refit=true"]).train.refit


@pytest.mark.parametrize("overrides", [["model.kind=baseline_lr"], ["model.kind=baseline_mlp"],
                                       ["model.kind=emotion_lm", "data.target=reasoning"],
                                       ["model.kind=emotion_lm", "data.target=multi"]])
def test_inner_folds_are_refused_where_no_epoch_is_chosen_for_a_class_target(overrides):
    with pytest.raises(EmotuneError, match=r"train\.inner_folds .*model.kind"):
        load_config(None, [*overrides, "train.inner_folds=3"])
    assert load_config(None, ["model.kind=emotion_lm", "train.inner_folds=3"]).train.inner_folds == 3


def test_inner_folds_take_two_parts_or_more_and_not_refit_besides():
    with pytest.raises(EmotuneError, match="at least 2"):
        load_config(None, ["model.kind=emotion_lm", "train.inner_folds=1"])
    with pytest.raises(EmotuneError, match="set one"):
        load_config(None, ["model.kind=emotion_lm", "train.inner_folds=3", "train.refit=true"])
    with pytest.raises(EmotuneError, match="distill=mlp"):
        load_config(None, ["model.kind=emotion_lm", "train.inner_folds=3", "model.lm.distill=mlp"])


def test_train_epochs_changes_an_mlp_run():
    import numpy as np

    from emotune.experiments.run import build_model
    from tests.model.test_baseline import NAMES, make

    train, val = make(200, 1, seq=False), make(60, 2, seq=False)
    runs = {}
    for epochs in (2, 40):
        cfg = load_config(None, ["model.kind=baseline_mlp", "model.inputs=[a]", f"train.epochs={epochs}",
                                 "train.patience=0"])
        model = build_model(cfg, NAMES, {})
        runs[epochs] = model.fit(train, val, None)
    assert runs[2]["epochs_run"] == 2 and runs[40]["epochs_run"] == 40
    assert not np.isclose(runs[2]["curve"][-1]["loss"], runs[40]["curve"][-1]["loss"])


def test_weight_averaging_is_refused_where_the_trainer_does_not_run():
    with pytest.raises(EmotuneError, match=r"train\.ema .*baseline_mlp"):
        load_config(None, ["model.kind=baseline_mlp", "train.ema=0.99"])
    assert load_config(None, ["model.kind=emotion_lm", "train.ema=0.99"]).train.ema == 0.99
