"""`model.lm.probe_init`: the projectors start as the first layer of a head fitted on the training side."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotune.errors import EmotuneError
from tests.model.test_emotion_lm import RAVDESS, make
from tests.model.tiny import make_tiny_lm, random_examples

SHAPES = {"egemaps": (88,), "whisper": (12,)}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _data(shapes, scale=True):
    train, val = random_examples(48, RAVDESS, shapes, seed=0), random_examples(16, RAVDESS, shapes, seed=1)
    if scale:  # raw features far from standardised (eGeMAPS mixes values near 1 with values near 100)
        for ex in (train, val):
            for name in shapes:
                ex.features[name] = [x * 7.0 + 30.0 for x in ex.features[name]]
    return train, val


def _start(model, train, val):
    for name, proj in model.net.projectors.items():
        proj.set_stats(train.features[name])
    return model._probe_init(train, val)


def _first_layer(model, name, ex):
    proj = model.net.projectors[name]
    x = torch.as_tensor(np.stack(ex.features[name]))
    with torch.no_grad():
        return proj.net[0]((x - proj.mean) / proj.std).double().numpy()


def test_a_lowrank_projector_starts_as_the_logistic_regressions_logits(tiny_dir):
    model = make(tiny_dir, shapes=SHAPES, lora=False, projector="lowrank", projector_rank=len(RAVDESS), probe_init="lr")
    train, val = _data(SHAPES)
    info = _start(model, train, val)
    assert info["kind"] == "lr" and "C" in info
    from emotune.model.baseline_config import BaselineConfig
    from emotune.model.baseline_lr import LogisticBaseline

    # The same head fitted on its own (deterministic): its logits on the test side are the sum of the two
    # projectors' first layers (each input's part of the weights, the bias split between them).
    head = LogisticBaseline(RAVDESS, list(SHAPES), BaselineConfig(refit=False), "single", "none", 0)
    head.fit(train, val)
    test = random_examples(10, RAVDESS, SHAPES, seed=3)
    test.features = {n: [x * 7.0 + 30.0 for x in col] for n, col in test.features.items()}
    logits = head.encoder.transform(test) @ head.W.T + head.b
    parts = sum(_first_layer(model, n, test) for n in SHAPES)
    np.testing.assert_allclose(parts, logits, rtol=1e-4, atol=1e-4)
    assert (parts.argmax(1) == logits.argmax(1)).all()


def test_a_linear_projector_starts_as_a_map_of_the_probes_logits(tiny_dir):
    model = make(tiny_dir, shapes=SHAPES, lora=False, projector="linear", probe_init="lr")
    plain = make(tiny_dir, shapes=SHAPES, lora=False, projector="linear")
    train, val = _data(SHAPES)
    _start(model, train, val)
    for name, (d,) in SHAPES.items():
        w = model.net.projectors[name].net.weight.detach().double()
        full = min(d, w.shape[0])  # what a random map has
        # Through the 8 class logits (rank 7: a softmax's weights sum to 0 over classes) where a random map has
        # full rank (fp32 weights: a relative tolerance
        # well above fp32 rounding, 1e-7, and far below a random matrix's smallest singular values).
        rank = lambda m: torch.linalg.matrix_rank(m, rtol=1e-4).item()  # noqa: E731
        assert 1 < rank(w) <= len(RAVDESS) < full
        assert rank(plain.net.projectors[name].net.weight.detach().double()) == full


def test_an_mlp_projector_starts_as_the_mlp_heads_hidden_layer(tiny_dir):
    shapes = {"egemaps": (88,)}
    model = make(tiny_dir, shapes=shapes, lora=False, projector="mlp", projector_hidden=32, probe_init="mlp")
    assert isinstance(model.net.projectors["egemaps"].net[1], torch.nn.ReLU)  # the head's activation
    train, val = _data(shapes)
    info = _start(model, train, val)
    assert info["kind"] == "mlp" and info["best_epoch"] >= 1
    from emotune.model.baseline_config import BaselineConfig
    from emotune.model.baseline_mlp import MLPBaseline

    head = MLPBaseline(RAVDESS, list(shapes), BaselineConfig(hidden=32), "single", "none", 0)
    head.fit(train, val)
    test = random_examples(10, RAVDESS, shapes, seed=3)
    test.features = {n: [x * 7.0 + 30.0 for x in col] for n, col in test.features.items()}
    with torch.no_grad():
        hidden = head.nets[0][0](torch.from_numpy(head.encoder.transform(test))).double().numpy()
    np.testing.assert_allclose(_first_layer(model, "egemaps", test), hidden, rtol=1e-4, atol=1e-4)


def test_probe_init_trains_and_records_the_head(tiny_dir, tmp_path):
    model = make(tiny_dir, shapes=SHAPES, lora=False, projector="linear", probe_init="lr")
    train, val = _data(SHAPES)
    history = model.fit(train, val, tmp_path)
    assert history["probe_init"]["kind"] == "lr" and np.isfinite(history["history"][-1]["train_loss"])


def test_probe_init_refuses_what_it_cannot_start(tiny_dir, tmp_path):
    with pytest.raises(EmotuneError, match="vector inputs"):
        make(tiny_dir, shapes={"whisper_seq": (5, 16)}, lora=False, projector="linear", probe_init="lr")
    with pytest.raises(EmotuneError, match="linear or lowrank"):
        make(tiny_dir, shapes=SHAPES, lora=False, projector="mlp", probe_init="lr")
    with pytest.raises(EmotuneError, match="projector_rank"):
        make(tiny_dir, shapes=SHAPES, lora=False, projector="lowrank", projector_rank=4, probe_init="lr")
    with pytest.raises(EmotuneError, match="one input"):
        make(tiny_dir, shapes=SHAPES, lora=False, projector="mlp", probe_init="mlp")
    with pytest.raises(EmotuneError, match="probe_init"):
        make(tiny_dir, shapes=SHAPES, probe_init="svm")
    model = make(tiny_dir, shapes={"egemaps": (88,)}, lora=False, projector="mlp", probe_init="mlp")
    train, _ = _data({"egemaps": (88,)})
    with pytest.raises(EmotuneError, match="validation side"):
        model.fit(train, train.subset([]), tmp_path)


def test_a_refit_with_an_mlp_probe_is_refused_when_the_config_loads():
    from emotune.config import load_config

    with pytest.raises(EmotuneError, match="probe_init=mlp"):
        load_config("configs/fer2013_lm.yaml", ["train.refit=true", "model.lm.probe_init=mlp", "model.lm.projector=mlp"])
    assert load_config("configs/fer2013_lm.yaml", ["train.refit=true", "model.lm.probe_init=lr"]).model.lm.probe_init == "lr"


def test_probe_freeze_keeps_the_heads_hidden_layer_and_trains_the_rest(tiny_dir, tmp_path):
    from emotune.model.baseline_config import BaselineConfig
    from emotune.model.baseline_mlp import MLPBaseline
    from emotune.model.emotion_lm import EmotionLM

    shapes = {"egemaps": (88,)}
    train, val = _data(shapes)
    test = random_examples(10, RAVDESS, shapes, seed=3)
    test.features = {n: [x * 7.0 + 30.0 for x in col] for n, col in test.features.items()}
    head = MLPBaseline(RAVDESS, list(shapes), BaselineConfig(hidden=32), "single", "none", 0)
    head.fit(train, val)  # deterministic: the head each run fits inside
    with torch.no_grad():
        hidden = head.nets[0][0](torch.from_numpy(head.encoder.transform(test))).double().numpy()
    runs = {}
    for freeze in (True, False):
        model = make(tiny_dir, shapes=shapes, lora=False, projector="mlp", projector_hidden=32, probe_init="mlp",
                     probe_freeze=freeze, train={"epochs": 2})
        last = model.net.projectors["egemaps"].net[-1].weight.detach().clone()  # the probe leaves it as built
        model.fit(train, val, tmp_path / f"run_{freeze}")
        assert not torch.equal(model.net.projectors["egemaps"].net[-1].weight, last)  # the rest trained
        runs[freeze] = model
    np.testing.assert_allclose(_first_layer(runs[True], "egemaps", test), hidden, rtol=1e-4, atol=1e-4)
    assert np.abs(_first_layer(runs[False], "egemaps", test) - hidden).max() > 1e-3  # unfrozen, it moves
    # The frozen layer is part of the saved model: a model rebuilt from its config starts it at random.
    runs[True].save(tmp_path / "saved")
    loaded = EmotionLM.load(tmp_path / "saved")
    np.testing.assert_allclose(_first_layer(loaded, "egemaps", test), hidden, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(loaded.predict_proba(test), runs[True].predict_proba(test), rtol=1e-5, atol=1e-6)


def test_probe_freeze_needs_the_mlp_probe_and_keeps_older_runs(tmp_path):
    from emotune.config import load_config
    from emotune.identity import check_or_claim, make_identity
    from tests.experiments.test_run_identity import folder_made_before

    with pytest.raises(EmotuneError, match="probe_freeze"):
        load_config("configs/fer2013_lm.yaml", ["model.lm.probe_freeze=true"])
    base = [f"data.manifest={tmp_path}/m.jsonl"]
    off = make_identity(load_config("configs/fer2013_lm_full.yaml", base))
    run = folder_made_before(tmp_path / "run", off, "model.lm.probe_freeze")
    assert check_or_claim(run, off, write=False)  # a run made before the key is this run
    on = make_identity(load_config("configs/fer2013_lm_full.yaml", [*base, "model.lm.probe_freeze=true"]))
    with pytest.raises(EmotuneError, match="probe_freeze"):
        check_or_claim(run, on, write=False)
