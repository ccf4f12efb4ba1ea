"""MERR fine-grained: clues in words, the reference reasoning, a pseudo-label, a seeded stratified hold-out."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import read_manifest
from emotune.data.sources.merr import clue_text


def _entry(label="angry", reason="He frowns and sounds annoyed, so he is angry.", text="Be quiet."):
    return {"AU_list": ["AU04"], "visual_prior_list": ["Frowns furrowed"], "audio_prior_list": "and his tone sounds negative.",
            "peak_index": "20", "peak_AU_list": ["AU01", "AU04"], "pseu_emotion": label, "text": text,
            "smp_reason_caption": reason}


def test_samples_carry_clues_reasoning_and_a_stratified_holdout(tmp_path):
    data = {f"c{i:03d}": _entry(label=["angry", "sad", "neutral", "happy"][i % 4]) for i in range(40)}
    (tmp_path / "merr_fine_grained.clean.json").write_text(json.dumps(data))
    prepare("merr", tmp_path, tmp_path / "m.jsonl", log=lambda *_: None)
    m = read_manifest(tmp_path / "m.jsonl")
    held = [s for s in m.samples if s.split == "test"]
    assert len(m.samples) == 40 and Counter(s.label for s in held) == {"angry": 1, "sad": 1, "neutral": 1, "happy": 1}
    s = m.samples[0]
    assert s.meta["reasoning"].startswith("He frowns") and s.text == "Be quiet."
    assert s.meta["clues"] == ('Face: Frowns furrowed. Action units at the peak frame: AU01, AU04. '
                               'Voice: his tone sounds negative. Words: "Be quiet."')
    # the same seed gives the same hold-out; another seed another one
    prepare("merr", tmp_path, tmp_path / "m2.jsonl", log=lambda *_: None)
    assert [x.split for x in read_manifest(tmp_path / "m2.jsonl").samples] == [x.split for x in m.samples]
    prepare("merr", tmp_path, tmp_path / "m3.jsonl", {"seed": "1"}, log=lambda *_: None)
    assert [x.split for x in read_manifest(tmp_path / "m3.jsonl").samples] != [x.split for x in m.samples]


def test_missing_label_or_reasoning_names_the_clip(tmp_path):
    data = {"ok": _entry(), "nolabel": _entry(label=""), "noreason": _entry(reason="  ")}
    (tmp_path / "merr_fine_grained.clean.json").write_text(json.dumps(data))
    with pytest.raises(PrepareError) as info:
        prepare("merr", tmp_path, tmp_path / "m.jsonl", log=lambda *_: None)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "entry 2 (nolabel): missing or unknown pseu_emotion" in text
    assert "entry 3 (noreason): empty smp_reason_caption" in text


def test_clue_text_only_states_what_the_clip_has():
    assert clue_text({"text": "Hi."}) == 'Words: "Hi."'
    assert clue_text({"visual_prior_list": [], "audio_prior_list": ""}) == ""


def test_real_merr(tmp_path):
    from tests.conftest import data_dir

    prepare("merr", data_dir("mer_annotations"), tmp_path / "m.jsonl", log=lambda *_: None)
    m = read_manifest(tmp_path / "m.jsonl")
    assert Counter(s.label for s in m.samples) == {"neutral": 1352, "sad": 1091, "angry": 874, "happy": 475, "worried": 310,
                                                  "surprise": 213, "fear": 86, "doubt": 45, "contempt": 41}
    assert Counter(s.split for s in m.samples) == {"train": 4039, "test": 448}
    assert all(s.meta["reasoning"] and s.meta["clues"] for s in m.samples)
