"""`auto` precision: bf16 only where the hardware multiplies bf16 fast, recorded with the model."""

from __future__ import annotations

import json

import pytest

from emotune.config import load_config
from emotune.errors import ConfigError
from emotune.model.emotion_lm import EmotionLM
from emotune.model.lm_config import LMConfig, LoRAConfig
from emotune.model.precision import cpu_has_fast_bf16, resolve
from emotune.train.config import TrainConfig
from tests.model.tiny import make_tiny_lm

ZEN3 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2 bmi2 sha_ni vaes\n"  # AVX2 only: slow bf16
SAPPHIRE = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"


def test_cpu_bf16_detection_reads_the_flags():
    assert not cpu_has_fast_bf16(ZEN3)
    assert cpu_has_fast_bf16(SAPPHIRE) and cpu_has_fast_bf16(ZEN4)
    assert not cpu_has_fast_bf16("")  # nothing listed: fp32, never the slow choice


def test_resolve_explicit_and_auto():
    assert resolve("fp32") == "fp32" and resolve("bf16") == "bf16"
    assert resolve(True) == "bf16" and resolve(False) == "fp32"
    assert resolve("auto", "cpu") == ("bf16" if cpu_has_fast_bf16() else "fp32")
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve("fp16")


def test_defaults_are_auto_and_config_accepts_each_value(tmp_path):
    assert LMConfig().dtype == "auto" and TrainConfig().bf16 == "auto"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndata: {dataset: quickstart, root: x}\nmodel: {kind: emotion_lm, inputs: [egemaps]}\n")
    cfg = load_config(recipe, ["train.bf16=true", "model.lm.dtype=fp32"])
    assert cfg.train.bf16 is True and cfg.model.lm.dtype == "fp32"
    assert load_config(recipe, ["train.bf16=auto"]).train.bf16 == "auto"
    with pytest.raises(ConfigError, match="train.bf16"):
        load_config(recipe, ["train.bf16=maybe"])


def test_the_saved_model_records_what_auto_chose(tmp_path):
    tiny = make_tiny_lm(tmp_path / "tiny")
    cfg = LMConfig(backbone=str(tiny), tokens=1, lora=LoRAConfig(enabled=False))
    model = EmotionLM(["happy", "sad"], ["egemaps"], {"egemaps": (4,)}, cfg, TrainConfig(progress=False))
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "emotion_lm.json").read_text())
    want = resolve("auto")
    assert meta["precision"] == {"weights": want, "autocast": want}
    assert meta["lm"]["dtype"] == "auto"  # the config as given; the choice beside it
    assert next(model.net.base.parameters()).dtype.__repr__().endswith("bfloat16" if want == "bf16" else "float32")
