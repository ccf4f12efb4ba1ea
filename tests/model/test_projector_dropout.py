"""`model.lm.projector_dropout`: dropout on the projector's hidden layer, in training only."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emotune.errors import EmotuneError
from emotune.model.projector import Projector
from tests.model.test_emotion_lm import RAVDESS, make
from tests.model.tiny import make_tiny_lm, random_examples


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def _hand(proj: Projector, x: torch.Tensor) -> torch.Tensor:
    """The projector's function without dropout, written out: Linear, GELU, Linear, RMS norm, gain."""
    first, last = proj.net[0], proj.net[-1]
    y = last(torch.nn.functional.gelu(first((x - proj.mean) / proj.std)))
    return y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6) * proj.gain


def test_dropout_acts_in_training_only_on_the_hidden_layer():
    torch.manual_seed(0)
    proj = Projector(20, 16, tokens=1, kind="mlp", mlp_hidden=64, dropout=0.5)
    x = torch.randn(32, 20)
    proj.train()
    a, b = proj(x), proj(x)
    assert not torch.allclose(a, b)  # a new mask each pass
    with torch.no_grad():  # half the hidden units off: the hidden layer's output has zeros where the input has none
        h = proj.net[2](proj.net[1](proj.net[0](x)))
    assert 0.3 < (h == 0).float().mean().item() < 0.7
    proj.eval()
    with torch.no_grad():
        torch.testing.assert_close(proj(x)[:, 0], _hand(proj, x))


def test_no_dropout_keeps_the_layers_where_checkpoints_have_them():
    plain = Projector(20, 16, tokens=1, kind="mlp", mlp_hidden=64)
    assert {k for k in plain.state_dict() if k.startswith("net.")} == {"net.0.weight", "net.0.bias", "net.2.weight",
                                                                        "net.2.bias"}
    assert not any(isinstance(m, torch.nn.Dropout) for m in plain.modules())
    low = Projector(20, 16, tokens=1, kind="lowrank", rank=4, dropout=0.2)
    assert isinstance(low.net[1], torch.nn.Dropout)
    with pytest.raises(ValueError, match="linear projector"):
        Projector(20, 16, tokens=1, kind="linear", dropout=0.2)


def test_the_config_refuses_dropout_it_cannot_apply():
    from emotune.config import load_config

    with pytest.raises(EmotuneError, match="projector_dropout"):
        load_config("configs/fer2013_lm.yaml", ["model.lm.projector=linear", "model.lm.projector_dropout=0.3"])
    with pytest.raises(EmotuneError, match="projector_dropout"):
        load_config("configs/fer2013_lm_full.yaml", ["model.lm.projector_dropout=1.0"])
    cfg = load_config("configs/fer2013_lm_full.yaml", ["model.lm.projector_dropout=0.3"])
    assert cfg.model.lm.projector_dropout == 0.3


def test_a_probe_started_projector_with_dropout_is_the_heads_shape_and_trains(tiny_dir, tmp_path):
    shapes = {"egemaps": (88,)}
    model = make(tiny_dir, shapes=shapes, lora=False, projector="mlp", projector_hidden=32, probe_init="mlp",
                 projector_dropout=0.3)
    net = model.net.projectors["egemaps"].net
    # The MLP head's layout: Linear, ReLU, Dropout, Linear (its dropout is baseline.dropout, 0.3 by default).
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Dropout", "Linear"] and net[2].p == 0.3
    train, val = random_examples(48, RAVDESS, shapes, seed=0), random_examples(16, RAVDESS, shapes, seed=1)
    history = model.fit(train, val, tmp_path)
    assert history["probe_init"]["kind"] == "mlp" and np.isfinite(history["history"][-1]["train_loss"])
    # Scoring is deterministic: dropout is off outside training.
    test = random_examples(6, RAVDESS, shapes, seed=3)
    p1, p2 = model.predict_proba(test), model.predict_proba(test)
    np.testing.assert_array_equal(p1, p2)
    # A saved model comes back with its dropout layer in place, so its weights load where they were saved.
    from emotune.model.emotion_lm import EmotionLM

    model.save(tmp_path / "saved")
    np.testing.assert_allclose(EmotionLM.load(tmp_path / "saved").predict_proba(test), p1, rtol=1e-5, atol=1e-6)
