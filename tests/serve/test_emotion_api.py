"""`/v1/emotion`: `emotune serve RUN_DIR` predicts from uploaded media with the run's own extractors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import httpx
import pytest

from tests.serve.conftest import ravdess_clips

pytestmark = [pytest.mark.slow, pytest.mark.data]

UPLOAD_MB = 1


@pytest.fixture(scope="module")
def emotion_server(serve_run, tmp_path_factory):
    log = tmp_path_factory.mktemp("emotion_server") / "server.log"
    cmd = [sys.executable, "-m", "emotune.cli", "serve", str(serve_run), "--no-chat", "--port", "0",
           "--max-upload-mb", str(UPLOAD_MB)]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 120
    while not (m := re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"emotune serve RUN_DIR did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield m.group(1)
    proc.terminate()
    proc.wait(timeout=15)


def test_upload_gives_label_probabilities(emotion_server, serve_run, tmp_path):
    clip = ravdess_clips(actor=3, count=1)[0]
    with open(clip, "rb") as f:
        # A hostile file name is never used as a path on the server: only its extension counts.
        r = httpx.post(f"{emotion_server}/v1/emotion", files={"file": ("../../../../tmp/evil.flac", f, "audio/flac")},
                       data={"text": "Kids are talking by the door."}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    probs = body["probabilities"]
    assert set(probs) == {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    assert abs(sum(probs.values()) - 1) < 1e-6 and body["label"] == max(probs, key=probs.get)
    assert body["inputs"] == ["audio", "text"] and body["transcript"] == "Kids are talking by the door."
    assert str(serve_run) not in r.text and "emotune_serve_" not in r.text  # no server paths in the reply
    assert not os.path.exists("/tmp/evil.flac")


def test_bad_uploads_get_clear_errors_and_the_server_stays_up(emotion_server, tmp_path):
    post = lambda **kw: httpx.post(f"{emotion_server}/v1/emotion", timeout=60, **kw)
    r = post(files={"file": ("notes.txt", b"hello", "text/plain")})
    assert r.status_code == 415 and ".wav" in r.json()["error"]["message"]
    r = post(files={"file": ("empty.wav", b"", "audio/wav")})
    assert r.status_code == 400 and "empty" in r.json()["error"]["message"]
    r = post(files={"file": ("fake.wav", b"RIFF this is not audio" * 50, "audio/wav")})
    assert r.status_code == 400 and "emotune_serve_" not in r.text, r.text  # says what is wrong, not where it lives
    r = post(files={"file": ("big.wav", b"\0" * (UPLOAD_MB * 1024 * 1024 + 1), "audio/wav")})
    assert r.status_code == 413
    r = post(data={})
    assert r.status_code == 400
    # no chat model in this server
    r = httpx.post(f"{emotion_server}/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 404
    assert httpx.get(f"{emotion_server}/health").json()["emotion"] is True
