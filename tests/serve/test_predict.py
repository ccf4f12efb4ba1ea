"""`emotune predict`: raw MER2023 videos and RAVDESS audio → valid JSON through the training feature code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotune.cli import main
from emotune.serve.predict import load_predictor, predict
from tests.serve.conftest import mer_examples, ravdess_clips

pytestmark = pytest.mark.slow


def run_cli(*args) -> subprocess.Popen:
    """The installed `emotune` command (the console script beside this interpreter)."""
    exe = Path(sys.executable).parent / "emotune"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "emotune.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*cmd, "predict", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def check_result(result: dict, run_dir: Path) -> None:
    labels = load_predictor(run_dir).label_names
    probs = result["probabilities"]
    assert list(probs) == labels
    assert all(0.0 <= p <= 1.0 for p in probs.values())
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
    assert result["label"] == max(probs, key=probs.get)
    for c in result["contributions"].values():
        assert sum(c["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
        assert c["drop"] == pytest.approx(probs[result["label"]] - c["probabilities"][result["label"]])


def test_cli_on_the_labelled_mer2023_clips(serve_run, tmp_path, capsys):
    """Video with Chinese speech: audio features from the video's own track, the English subtitle as text.
    The run reads no faces, so no face is shown and the frames are listed as not used.

    Through the CLI's entry point in this process (the extractors load once for the 4 clips); the test
    below runs the installed command in a subprocess.
    """
    clips = mer_examples()
    assert len(clips) == 4
    for clip in clips:
        args = ["predict", str(serve_run), "--video", str(clip["path"]), "--face-dir", str(tmp_path / clip["path"].stem)]
        if clip["subtitle"]:
            args += ["--text", clip["subtitle"]]
        code = main(args)
        out, err = capsys.readouterr()
        assert code == 0, err[-2000:]
        result = json.loads(out)
        check_result(result, serve_run)
        assert result["inputs"][0] == "video"
        assert result["used"][0] == {"input": "audio", "from": "the video's audio track", "features": ["egemaps"]}
        assert result["features"][0] == "egemaps"
        if clip["subtitle"]:
            assert result["transcript"] == clip["subtitle"] and result["transcript_source"] == "given"
            assert set(result["contributions"]) == set(result["modalities"]) == {"audio", "text"}
        else:  # no subtitle: Whisper (English-only) declines the Chinese speech, so the model reads no text
            assert result["transcript"] is None and "English" in result["missing"]["asr"]
            assert set(result["contributions"]) == set(result["modalities"]) == {"audio"}
        assert result["face"] is None and not (tmp_path / clip["path"].stem).exists()
        assert result["not_used"] == {"video frames": "not used by this model (it reads no faces; only the video's "
                                                      "sound is used)"}


def test_cli_on_a_ravdess_clip_transcribes_it(serve_run):
    """No --text: the run reads text (MiniLM), so Whisper transcribes the clip first."""
    clip = ravdess_clips(actor=3, count=1)[0]
    proc = run_cli(serve_run, "--audio", clip)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out)
    check_result(result, serve_run)
    statement = "kids are talking by the door" if clip.stem.split("-")[4] == "01" else "dogs are sitting by the door"
    assert result["transcript_source"] == "asr"
    assert "door" in result["transcript"].lower(), result["transcript"]
    assert statement.split()[0] in result["transcript"].lower()
    assert result["modalities"] == ["audio", "text"]
    assert result["used"][1] == {"input": "text", "from": "Whisper's transcript of the speech", "features": ["minilm"],
                                 "in_prompt": False}
    assert result["face"] is None and result["not_used"] == {}


def test_a_contribution_is_the_prediction_without_that_modality(serve_run):
    clip = ravdess_clips(actor=3, count=2)[1]
    text = "I can't believe you did that to me!"
    both = predict(serve_run, audio=clip, text=text)
    text_only = predict(serve_run, text=text)
    assert text_only["modalities"] == ["text"] and text_only["missing"]["egemaps"] == "no audio or video given"
    without_audio = both["contributions"]["audio"]["probabilities"]
    assert np.allclose(list(without_audio.values()), list(text_only["probabilities"].values()), atol=1e-9)
    assert set(text_only["contributions"]) == {"text"}
    # The two modalities disagree somewhere: removing one changes the distribution.
    assert not np.allclose(list(both["probabilities"].values()), list(without_audio.values()), atol=1e-4)


def test_explain_on_a_baseline_gives_no_explanation(serve_run):
    result = predict(serve_run, text="What a lovely surprise!", explain=True)
    assert result["explanation"] is None and "baseline classifier" in result["explanation_note"]
    assert "explanation" not in predict(serve_run, text="What a lovely surprise!")


@pytest.mark.parametrize("args, message", [
    ([], "nothing to predict from"),
    (["--audio", "no_such_file.wav"], "file not found"),
    (["--image", "PLACEHOLDER_IMAGE"], "image: not used by this model (it reads no faces)"),
    (["--video", "PLACEHOLDER_TEXT_AS_MP4"], "unreadable media"),
])
def test_bad_input_is_one_line_and_exit_2(serve_run, tmp_path, capsys, args, message):
    from PIL import Image

    image = tmp_path / "face.png"
    Image.new("RGB", (64, 64), (120, 90, 60)).save(image)
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a text file, not a video\n")
    args = [str(image) if a == "PLACEHOLDER_IMAGE" else str(fake) if a == "PLACEHOLDER_TEXT_AS_MP4" else a for a in args]
    code = main(["predict", str(serve_run), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_not_a_run_directory(tmp_path, capsys):
    assert main(["predict", str(tmp_path), "--text", "hello"]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_explain_with_an_emotion_lm_run(lm_run):
    clip = ravdess_clips(actor=3, count=1)[0]
    result = predict(lm_run, audio=clip, text="Kids are talking by the door.", explain=True)
    assert result["run"]["kind"] == "emotion_lm"
    assert sum(result["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    # A label-only LM has no reasons: no generated "Emotion: <label>" that could contradict the scored label.
    assert result["explanation"] is None and "label only" in result["explanation_note"]
    assert set(result["contributions"]) == {"audio", "text"}
    # The LM reads the transcript in its prompt only (no text encoder), so leaving the text out blanks it there.
    assert result["used"][1] == {"input": "text", "from": "the given text", "features": [], "in_prompt": True}
    assert result["contributions"]["text"]["probabilities"] != result["probabilities"]
