"""predict lists exactly the inputs the model read, contributions cover each, and ASR runs only for models
that read text; predict leaves no temporary folder behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from emotune.config import load_config
from emotune.errors import EmotuneError
from emotune.serve.predict import predict
from emotune.serve.reading import reads_text
from tests.serve.conftest import mer_examples, ravdess_clips

pytestmark = [pytest.mark.slow, pytest.mark.data]

STATEMENT = "Kids are talking by the door."


@pytest.fixture
def asr_calls(monkeypatch) -> list:
    """Counts real Whisper ASR runs (each call still transcribes)."""
    from emotune.features.asr import WhisperASR

    calls, real = [], WhisperASR.compute

    def counted(self, source):
        calls.append(source.path)
        return real(self, source)

    monkeypatch.setattr(WhisperASR, "compute", counted)
    return calls


def test_reads_text_is_decided_from_the_run_config(serve_run, audio_run, lm_run):
    assert reads_text(load_config(serve_run / "config.yaml"))  # a MiniLM input
    assert not reads_text(load_config(audio_run / "config.yaml"))  # eGeMAPS only
    assert reads_text(load_config(lm_run / "config.yaml"))  # the LM's default prompt shows the transcript
    assert not reads_text(load_config(lm_run / "config.yaml", ["model.lm.eval_prompts=[no_transcript]"]))
    assert not reads_text(load_config(serve_run / "config.yaml", ["eval.drop_inputs=[minilm]"]))


def test_audio_only_run_lists_only_audio_and_never_transcribes(audio_run, asr_calls):
    clip = ravdess_clips(actor=3, count=1)[0]
    result = predict(audio_run, audio=clip, text=STATEMENT)
    assert result["used"] == [{"input": "audio", "from": "the audio file", "features": ["egemaps"]}]
    assert result["not_used"] == {"text": "not used by this model (it reads no text)"}
    assert result["transcript"] is None and result["transcript_source"] is None
    assert result["modalities"] == ["audio"] and set(result["contributions"]) == {"audio"}

    video = mer_examples()[0]["path"]
    result = predict(audio_run, video=video)  # no text: a text-reading run would transcribe it
    assert result["used"] == [{"input": "audio", "from": "the video's audio track", "features": ["egemaps"]}]
    assert set(result["not_used"]) == {"video frames"} and result["face"] is None
    assert asr_calls == []

    with pytest.raises(EmotuneError, match="text: not used by this model"):
        predict(audio_run, text=STATEMENT)  # nothing it reads was given


def test_text_reading_run_transcribes_and_covers_the_transcript(serve_run, asr_calls):
    clip = ravdess_clips(actor=3, count=1)[0]
    result = predict(serve_run, audio=clip)
    assert len(asr_calls) == 1
    assert [u["input"] for u in result["used"]] == result["modalities"] == ["audio", "text"]
    assert result["used"][1]["from"] == "Whisper's transcript of the speech" and result["used"][1]["features"] == ["minilm"]
    assert "door" in result["transcript"].lower()
    assert set(result["contributions"]) == {"audio", "text"}
    text = result["contributions"]["text"]
    top = result["label"]
    assert text["transcript"] is True and text["features"] == ["minilm"]
    assert text["drop"] == pytest.approx(result["probabilities"][top] - text["probabilities"][top])
    assert text["probabilities"] != result["probabilities"]  # leaving the transcript out changes the answer


def test_lm_reads_text_only_when_its_prompt_shows_the_transcript(lm_run, tmp_path, asr_calls):
    clip = ravdess_clips(actor=3, count=1)[0]
    result = predict(lm_run, audio=clip)  # its prompt shows the transcript: Whisper fills it
    assert len(asr_calls) == 1
    assert result["used"][1] == {"input": "text", "from": "Whisper's transcript of the speech", "features": [],
                                 "in_prompt": True}
    assert set(result["contributions"]) == {"audio", "text"}

    # The same weights, evaluated with a prompt that has no transcript slot: text is not read at all.
    quiet = tmp_path / "no_transcript_run"
    shutil.copytree(lm_run, quiet)
    cfg = yaml.safe_load((quiet / "config.yaml").read_text())
    cfg["model"]["lm"]["eval_prompts"] = ["no_transcript"]
    (quiet / "config.yaml").write_text(yaml.safe_dump(cfg))
    result = predict(quiet, audio=clip, text=STATEMENT)
    assert len(asr_calls) == 1  # no second transcription
    assert result["modalities"] == ["audio"] and set(result["contributions"]) == {"audio"}
    assert result["not_used"] == {"text": "not used by this model (it reads no text)"}
    assert predict(quiet, audio=clip)["probabilities"] == result["probabilities"]  # the text had no effect


def _predict_cli(run_dir: Path, tmpdir: Path, *args) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "emotune"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "emotune.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmpdir)}
    return subprocess.run([*cmd, "predict", str(run_dir), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=300)


def test_predict_leaves_no_temporary_folders(serve_run, tmp_path):
    """The system temp dir (TMPDIR, private to this test) is empty after a prediction and after a failure."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    ok = _predict_cli(serve_run, tmpdir, "--video", mer_examples()[0]["path"], "--text", STATEMENT)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert sorted(os.listdir(tmpdir)) == []
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video\n")
    bad = _predict_cli(serve_run, tmpdir, "--video", fake)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert sorted(os.listdir(tmpdir)) == []
