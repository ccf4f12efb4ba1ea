"""A face run (FER2013) and an audio run (RAVDESS) combined into MER2023's classes: fused rows are the mean
of the members' mapped rows over the members that have an input, a missing face leaves the audio member
alone, predict on a video reads both, and mapping mistakes are one-line refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotune.data.examples import Examples
from emotune.errors import EmotuneError
from tests.serve.conftest import fer_test_image, mer_examples, ravdess_clips

pytestmark = [pytest.mark.slow, pytest.mark.data]

# The stated mapping into `mer`: fear/fearful → worried (no fear class; worried is the nearest), calm →
# neutral; surprised → surprise and the shared names by their label sets; disgust has no counterpart.
MAPS = ["serve_audio_only:calm=neutral", "serve_audio_only:fearful=worried", "serve_image_test:fear=worried"]
AUDIO_TO_MER = {"neutral": "neutral", "calm": "neutral", "happy": "happy", "sad": "sad", "angry": "angry",
                "fearful": "worried", "surprised": "surprise"}
FACE_TO_MER = {"angry": "angry", "fear": "worried", "happy": "happy", "neutral": "neutral", "sad": "sad",
               "surprise": "surprise"}
MER = ["neutral", "angry", "happy", "sad", "worried", "surprise"]


@pytest.fixture(scope="module")
def fusion(audio_run, image_run, tmp_path_factory) -> Path:
    from emotune.experiments.combine import combine

    return combine([str(audio_run), str(image_run)], str(tmp_path_factory.mktemp("fusion") / "face_audio"), "mer",
                   maps=MAPS)


def by_hand(probs: dict[str, float], mapping: dict[str, str]) -> np.ndarray:
    """A member's probabilities summed into the MER classes, unmapped classes dropped, renormalised."""
    row = np.zeros(len(MER))
    for name, p in probs.items():
        if name in mapping:
            row[MER.index(mapping[name])] += p
    return row / row.sum()


def member_row(run: Path, mapping: dict[str, str], **media) -> np.ndarray:
    from emotune.serve.predict import predict

    return by_hand(predict(run, **media)["probabilities"], mapping)


def test_predict_on_a_video_reads_face_and_audio_and_each_alone_is_its_member(fusion, audio_run, image_run):
    from emotune.serve.predict import predict

    clip = mer_examples()[0]["path"]
    result = predict(fusion, video=clip, face_dir=fusion / "faces")
    assert [u["input"] for u in result["used"]] == ["audio", "face"]
    assert set(result["contributions"]) == {"audio", "face"} and result["not_used"] == {}
    assert result["face"] and Path(result["face"]).is_file()  # the peak-frame crop the face member read
    fused = np.array([result["probabilities"][c] for c in MER])
    audio = member_row(audio_run, AUDIO_TO_MER, video=clip)
    face = member_row(image_run, FACE_TO_MER, video=clip)
    assert np.allclose(fused, (audio + face) / 2, atol=1e-6)  # equal weights
    # Leaving an input out leaves the other member alone.
    without_face = result["contributions"]["face"]["probabilities"]
    without_audio = result["contributions"]["audio"]["probabilities"]
    assert np.allclose([without_face[c] for c in MER], audio, atol=1e-6)
    assert np.allclose([without_audio[c] for c in MER], face, atol=1e-6)


def test_rows_sum_to_one_and_a_sample_without_a_face_is_the_audio_member_alone(fusion, audio_run, image_run):
    from emotune.config import load_config
    from emotune.data.sample import Sample
    from emotune.experiments.run import load_model
    from emotune.features.store import extract_one
    from emotune.model.late_fusion import LateFusion

    clip = ravdess_clips(actor=3, count=1)[0]
    audio = extract_one("egemaps", Sample(id="a", dataset="ravdess", audio=clip.name), clip.parent)
    image = fer_test_image(image_run, "happy")
    face = extract_one("fer_image", Sample(id="f", dataset="fer2013", image=image.name), image.parent)
    model = LateFusion.load(fusion / "model")
    rows = model.predict_proba(examples({"egemaps": [audio, audio, None], "fer_image": [face, None, face]}))
    assert rows.shape == (3, len(MER)) and model.label_names == MER
    assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-9)
    member = load_model(load_config(audio_run / "config.yaml"), audio_run)
    alone = member.predict_proba(examples({"egemaps": [audio]}, list(member.label_names)))[0]
    expected = by_hand(dict(zip(member.label_names, alone)), AUDIO_TO_MER)
    assert np.allclose(rows[1], expected, atol=1e-9)  # no face: the audio member alone
    assert not np.allclose(rows[0], expected, atol=1e-3)  # with a face, the face member counts


def examples(feats: dict[str, list], names: list[str] = MER) -> Examples:
    n, C = len(next(iter(feats.values()))), len(names)
    return Examples(ids=[str(i) for i in range(n)], label_names=names, features=feats, texts=[""] * n,
                    context=[[] for _ in range(n)], y=np.full(n, -1, np.int64), y_multi=np.zeros((n, C), np.float32),
                    y_soft=np.zeros((n, C), np.float32), groups=[None] * n)


def test_mapping_mistakes_are_one_line_refusals(audio_run, image_run, tmp_path):
    from emotune.experiments.combine import combine

    runs = [str(audio_run), str(image_run)]
    with pytest.raises(EmotuneError, match="'feared' is not a class of run") as e:
        combine(runs, str(tmp_path / "a"), "mer", maps=["serve_image_test:feared=worried"])
    assert "\n" not in str(e.value)
    with pytest.raises(EmotuneError, match="'scared' is not a class of the label set mer"):
        combine(runs, str(tmp_path / "b"), "mer", maps=["serve_image_test:fear=scared"])
    with pytest.raises(EmotuneError, match="'nobody' is none of the runs combined"):
        combine(runs, str(tmp_path / "c"), "mer", maps=["nobody:fear=worried"])
    # MERR's worried (without the fear map), doubt and contempt: no member produces them.
    with pytest.raises(EmotuneError, match="no member produces the fused class\\(es\\) worried, doubt, contempt") as e:
        combine(runs, str(tmp_path / "d"), "merr")
    assert "\n" not in str(e.value) and not (tmp_path / "d" / "config.yaml").exists()


def test_the_combine_verb_writes_a_run_directory(audio_run, image_run, tmp_path):
    from emotune.cli import main
    from emotune.config import load_config
    from emotune.serve.predict import Predictor

    out = tmp_path / "fused"
    argv = ["combine", str(audio_run), str(image_run), "-o", str(out), "--labels", "mer",
            "--weight", f"{image_run}=2", *[a for m in MAPS for a in ("--map", m)]]
    assert main(argv) == 0
    assert sorted(p.name for p in (out / "model").iterdir()) == ["late_fusion.json"]  # JSON only, no pickle
    cfg = load_config(out / "config.yaml")
    assert cfg.model.kind == "late_fusion" and cfg.model.inputs == ["egemaps", "fer_image"]
    assert (out / "command.txt").read_text().startswith("emotune combine ")
    predictor = Predictor(out)
    assert predictor.modalities() == {"audio": ["egemaps"], "face": ["fer_image"]}
    assert [m.weight for m in predictor.model.members] == [1.0, 2.0]
    assert main(["combine", str(audio_run), "-o", str(tmp_path / "bad"), "--labels", "mer", "--map", "x=y"]) == 2


def test_a_fusion_recipe_is_not_trained(fusion, tmp_path):
    from emotune.experiments.cv import cv
    from emotune.experiments.run import eval_run, train

    for attempt in (lambda: train(str(fusion / "config.yaml"), [f"run_dir={tmp_path / 'x'}"]),
                    lambda: cv(str(fusion / "config.yaml"), [f"run_dir={tmp_path / 'y'}"]),
                    lambda: eval_run(str(fusion))):
        with pytest.raises(EmotuneError, match="emotune combine"):
            attempt()


@pytest.fixture(scope="module")
def lm_seeds(serve_run, tmp_path_factory) -> list[Path]:
    """Two seeds of an emotion LM on eGeMAPS whose prompt shows no transcript (a tiny random backbone)."""
    from emotune.experiments.run import train
    from tests.model.tiny import make_tiny_lm

    tmp = tmp_path_factory.mktemp("lm_seeds")
    backbone = make_tiny_lm(tmp / "tiny_lm")
    return [train(str(serve_run.parent / "recipe.yaml"), [
        "model.kind=emotion_lm", "model.inputs=[egemaps]", f"model.lm.backbone={backbone}", "model.lm.dtype=fp32",
        "model.lm.projector=linear", "model.lm.prompts=[no_transcript]", "train.epochs=1", "train.bf16=false",
        "train.progress=false", f"seed={seed}", "data.split_seed=0", f"name=serve_lm_s{seed}", f"run_dir={tmp / f's{seed}'}"])
        for seed in (0, 1)]


def test_seeds_of_an_lm_without_transcript_combine_into_their_average(lm_seeds, lm_run, tmp_path):
    """The way to serve a seed average (the headline RAVDESS LM is one): `emotune combine` of the seeds' runs
    predicts the mean of their probabilities, and runs no ASR; an LM whose prompt shows the transcript is
    refused, since a fused run computes no transcript for it."""
    from emotune.experiments.combine import combine
    from emotune.serve.predict import predict

    fused = combine([str(r) for r in lm_seeds], str(tmp_path / "avg"), "ravdess")
    clip = ravdess_clips(actor=3, count=1)[0]
    result = predict(fused, audio=clip)
    members = [predict(r, audio=clip)["probabilities"] for r in lm_seeds]
    names = list(members[0])
    assert not np.allclose([members[0][c] for c in names], [members[1][c] for c in names], atol=1e-4)  # two models
    assert np.allclose([result["probabilities"][c] for c in names],
                       [(members[0][c] + members[1][c]) / 2 for c in names], atol=1e-6)
    assert result["transcript"] is None and [u["input"] for u in result["used"]] == ["audio"]
    with pytest.raises(EmotuneError, match="whose prompt shows the transcript") as e:
        combine([str(lm_seeds[0]), str(lm_run)], str(tmp_path / "bad"), "ravdess")
    assert "\n" not in str(e.value) and not (tmp_path / "bad" / "config.yaml").exists()
