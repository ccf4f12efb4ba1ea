"""Backbone loading: any local causal LM folder as-is; the built-in GGUF converted once and cached."""

from __future__ import annotations

import os

import pytest
import torch

from emotune.errors import EmotuneError
from emotune.model import backbone
from emotune.model.backbone import converted_dir, load_backbone
from tests.model.tiny import make_tiny_lm


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_lm(tmp_path_factory.mktemp("tiny_lm"))


def test_local_folder_loads_as_is_in_both_dtypes(tiny_dir):
    model, tok = load_backbone(str(tiny_dir), dtype="fp32")
    assert model.dtype == torch.float32 and not model.training
    assert tok.pad_token is not None and tok.chat_template
    model16, _ = load_backbone(str(tiny_dir), dtype="bf16")
    assert model16.dtype == torch.bfloat16
    ids = tok("angry", return_tensors="pt").input_ids
    assert model(ids).logits.shape[-1] == model.config.vocab_size


def test_bad_dtype_and_missing_backbone_are_user_errors(tiny_dir, tmp_path):
    with pytest.raises(EmotuneError, match="dtype"):
        load_backbone(str(tiny_dir), dtype="fp16")
    with pytest.raises(EmotuneError, match="cannot load backbone"):
        load_backbone(str(tmp_path / "no_such_model"))


@pytest.mark.slow
def test_builtin_gguf_converts_once_then_reloads_from_cache(emotune_cache):
    target = converted_dir("smollm2-135m-instruct")
    # A conversion killed half-way leaves only a temp folder named after a dead process: it is ignored
    # (the target appears only by an atomic rename) and removed by the next conversion.
    target.parent.mkdir(parents=True, exist_ok=True)
    stale = target.parent / ".smollm2-135m-instruct-999999999-abc"
    if not (target / "config.json").exists():
        stale.mkdir(exist_ok=True)
        (stale / "model.safetensors").write_bytes(b"partial")
    model, tok = load_backbone()
    assert (target / "config.json").exists() and (target / "model.safetensors").exists()
    assert not stale.exists()
    assert not list(target.parent.glob(".smollm2-135m-instruct-*"))
    stamp = os.stat(target / "model.safetensors").st_mtime_ns
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    again, tok2 = load_backbone("smollm2-135m-instruct", dtype="bf16")
    assert os.stat(target / "model.safetensors").st_mtime_ns == stamp  # read, not re-converted
    assert again.dtype == torch.bfloat16
    ids = tok2("I am so happy", return_tensors="pt").input_ids
    with torch.no_grad():
        a = model(ids).logits[0, -1]
        b = again(ids).logits[0, -1].float()
    assert a.argmax() == b.argmax()  # same weights, only the precision differs
