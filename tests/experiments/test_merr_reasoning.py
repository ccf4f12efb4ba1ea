"""MERR reasoning end to end on the real annotations (a tiny random backbone: plumbing, not quality): the
reference reasoning is the target and the clues are in the prompt; a generate-mode evaluation judges
closeness and faithfulness, and `--reuse` judges saved texts again without generating; `predict --explain`
on real clips ends in the returned label."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emotune.errors import EmotuneError
from tests.conftest import data_dir

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def merr_run(tmp_path_factory) -> Path:
    from emotune.experiments.run import train
    from tests.model.tiny import make_tiny_lm

    root = data_dir("mer_annotations")
    tmp = tmp_path_factory.mktemp("merr")
    backbone = make_tiny_lm(tmp / "tiny_lm")
    return train(str(REPO / "configs/merr_reasoning.yaml"), [
        f"data.root={root}", f"data.manifest={tmp / 'merr.jsonl'}", f"model.lm.backbone={backbone}",
        "model.lm.dtype=fp32", "train.bf16=false", "train.progress=false", "train.epochs=1", "data.max_train=24",
        "data.max_val=9", "data.max_eval=9", "model.lm.max_new_tokens=12", f"run_dir={tmp / 'run'}"])


def test_the_prompt_shows_the_clues_and_the_target_is_the_reference(merr_run):
    from emotune.config import load_config
    from emotune.data.splits import Fold
    from emotune.experiments.run import ensure_manifest, fold_data
    from emotune.model.prompt import load_templates
    from emotune.model.registry import model_class

    cfg = load_config(merr_run / "config.yaml")
    manifest = ensure_manifest(cfg)
    data = fold_data(cfg, manifest, Fold.load(merr_run / "fold.json"), {}, {})
    by_id = {s.id: s for s in manifest.samples}
    first = data.train.ids[0]
    assert data.train.reasoning[0] == by_id[first].meta["reasoning"] and data.train.clues[0] == by_id[first].meta["clues"]
    model = model_class("emotion_lm").load(merr_run / "model")
    text = model.batcher.renderer.text(load_templates(["clues"])[0], {}, data.train.texts[0], (), clues=data.train.clues[0])
    assert f"Observed cues: {by_id[first].meta['clues']}" in text and "The person says" not in text


def test_generate_judges_reasoning_and_reuse_does_not_generate(merr_run, monkeypatch):
    from emotune.experiments.run import eval_run
    from emotune.model.emotion_lm import EmotionLM

    first = eval_run(str(merr_run), mode="generate")
    judged = first["reasoning"]
    assert judged["n"] == first["n"] and {"rouge_l", "minilm_cosine", "hallucination_rate", "floor"} <= set(judged)
    assert judged["floor"]["rouge_l"] > 0  # the clues restated share words with the references
    lines = (merr_run / "eval_test_generate" / "reasoning.jsonl").read_text().splitlines()
    assert len(lines) == judged["n"] and {"id", "rouge_l", "unsupported", "generated"} <= set(json.loads(lines[0]))
    assert (merr_run / "eval_test_generate" / "hallucinations.jsonl").exists()

    def no_generation(*_a, **_k):
        raise AssertionError("--reuse must not generate")

    monkeypatch.setattr(EmotionLM, "generate", no_generation)
    again = eval_run(str(merr_run), mode="generate", reuse=True)
    assert again["wa"] == first["wa"] and again["reasoning"]["rouge_l"] == judged["rouge_l"]
    with pytest.raises(EmotuneError, match="no saved generations"):
        eval_run(str(merr_run), split="val", mode="generate", reuse=True)
    with pytest.raises(EmotuneError, match="needs --mode generate"):
        eval_run(str(merr_run), reuse=True)


def test_explain_on_real_clips_ends_in_the_returned_label(merr_run):
    from emotune.serve.predict import predict
    from tests.serve.conftest import mer_examples, ravdess_clips

    clips = [{"video": m["path"], "text": m["subtitle"]} for m in mer_examples() if m["subtitle"]]
    assert clips
    for kwargs in [*clips, {"audio": ravdess_clips(actor=3, count=1)[0]}]:  # the RAVDESS words come from Whisper
        result = predict(merr_run, explain=True, **kwargs)
        assert result["explanation"].splitlines()[-1] == f"Emotion: {result['label']}"
        assert isinstance(result["explanation_unsupported"], list)
        text = next(u for u in result["used"] if u["input"] == "text")
        assert text["in_prompt"] and result["transcript"]  # the words reach the model as its clue


def test_reasoning_after_the_label(merr_run, tmp_path):
    """after_label: the label is scored straight after the prompt (as label-only), the reasoning follows it
    in training, and an explanation is written for the label given."""
    import dataclasses

    from emotune.config import load_config
    from emotune.data.splits import Fold
    from emotune.experiments.run import ensure_manifest, fold_data, train
    from emotune.model.prompt import load_templates

    cfg = load_config(merr_run / "config.yaml")
    run = train(str(merr_run / "config.yaml"), ["model.lm.reasoning_position=after_label", f"run_dir={tmp_path / 'after'}"])
    from emotune.model.registry import model_class

    model = model_class("emotion_lm").load(run / "model")
    data = fold_data(cfg, ensure_manifest(cfg), Fold.load(merr_run / "fold.json"), {}, {})
    t = load_templates(["clues"])[0]
    tok = model.tokenizer
    scored = model.batcher.row(data.train, 0, t)
    assert tok.decode(scored.ids).endswith(t.answer_prefix)  # nothing is generated before the label is scored
    label = data.train.label_names[data.train.y[0]]
    trained = model.batcher.row(data.train, 0, t, lead=data.train.reasoning[0], answer=label)
    assert tok.decode(trained.ids[trained.answer_start:]).startswith(f" {label}\n{data.train.reasoning[0][:20]}")
    assert model.answer_and_reasoning("Emotion: sad\nHe sounds low. The emotion is angry.") == (
        "Emotion: sad", "He sounds low. The emotion is angry.")
    one = data.test.subset([0])
    for given in ("happy", "angry"):
        assert model.explain(one, [given])[0].splitlines()[-1] == f"Emotion: {given}"
    assert dataclasses.asdict(model.cfg)["reasoning_position"] == "after_label"
