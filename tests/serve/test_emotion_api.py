"""`/v1/emotion`: `emotune serve RUN_DIR` predicts from uploaded media with the run's own extractors, lists
the inputs the model used, caps media duration (413), sends long clips to its worker process, and answers
every error (405, bad JSON, busy port aside) in OpenAI's shape."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest

from tests.serve.conftest import ravdess_clips, speech_clip, start_serve, stop

pytestmark = [pytest.mark.slow, pytest.mark.data]

UPLOAD_MB = 4  # above the 70-s WAV below: that one must be refused for its duration, not its size
MAX_DURATION_S = 60  # small, so an over-long clip is cheap to make and refuse
LONG_CLIP_S = 5  # clips above this go to the long-clip worker process


@pytest.fixture(scope="module")
def emotion_server(serve_run, tmp_path_factory):
    log = tmp_path_factory.mktemp("emotion_server") / "server.log"
    proc, url = start_serve(serve_run, log, "--max-upload-mb", str(UPLOAD_MB), "--max-duration-s", str(MAX_DURATION_S),
                            "--long-clip-s", str(LONG_CLIP_S))
    yield {"url": url, "proc": proc, "log": log}
    stop(proc)


def is_openai_error(r: httpx.Response, status: int, code=None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert set(error) >= {"message", "type", "code"} and isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def test_upload_gives_label_probabilities_and_the_inputs_used(emotion_server, serve_run, tmp_path):
    url = emotion_server["url"]
    clip = ravdess_clips(actor=3, count=1)[0]
    with open(clip, "rb") as f:
        # A hostile file name is never used as a path on the server: only its extension counts.
        r = httpx.post(f"{url}/v1/emotion", files={"file": ("../../../../tmp/evil.flac", f, "audio/flac")},
                       data={"text": "Kids are talking by the door."}, timeout=120)
    assert r.status_code == 200, r.text
    body = r.json()
    probs = body["probabilities"]
    assert set(probs) == {"neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"}
    assert abs(sum(probs.values()) - 1) < 1e-6 and body["label"] == max(probs, key=probs.get)
    assert body["inputs"] == ["audio", "text"] and body["transcript"] == "Kids are talking by the door."
    assert [u["input"] for u in body["used"]] == ["audio", "text"] and body["not_used"] == {}
    assert set(body["contributions"]) == {"audio", "text"} and body["face"] is False
    assert str(serve_run) not in r.text and "emotune_serve_" not in r.text  # no server paths in the reply
    assert not os.path.exists("/tmp/evil.flac")


def test_audio_only_run_shows_no_transcript(audio_run, tmp_path):
    proc, url = start_serve(audio_run, tmp_path / "server.log")
    try:
        with open(ravdess_clips(actor=3, count=1)[0], "rb") as f:
            r = httpx.post(f"{url}/v1/emotion", files={"file": ("clip.flac", f)}, data={"text": "Kids are talking."},
                           timeout=120)
    finally:
        stop(proc)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["used"] == [{"input": "audio", "from": "the audio file", "features": ["egemaps"]}]
    assert body["not_used"] == {"text": "not used by this model (it reads no text)"}
    assert body["transcript"] is None and set(body["contributions"]) == {"audio"}


def test_long_clip_is_extracted_in_the_worker_with_the_same_result(emotion_server, serve_run, tmp_path):
    import psutil

    from emotune.serve.predict import predict

    clip = speech_clip(tmp_path / "six_seconds.wav", 6.0)  # above --long-clip-s, under --max-duration-s
    with open(clip, "rb") as f:
        r = httpx.post(f"{emotion_server['url']}/v1/emotion", files={"file": ("six.wav", f)}, timeout=300)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["duration_s"] == pytest.approx(6.0, abs=0.01)
    workers = [p for p in psutil.Process(emotion_server["proc"].pid).children() if "spawn" in " ".join(p.cmdline())]
    assert len(workers) == 1 and workers[0].nice() > psutil.Process(emotion_server["proc"].pid).nice()
    here = predict(serve_run, audio=clip)  # in this process, no worker: the same features, the same answer
    assert body["transcript"] == here["transcript"]
    assert np.allclose(list(body["probabilities"].values()), list(here["probabilities"].values()), atol=1e-6)


def test_a_short_clip_does_not_wait_for_a_long_one(emotion_server, tmp_path):
    """Both need Whisper (no text sent). The long clip is transcribed in the worker process, so the short one
    is answered while the long one is still running (in one process, the short one waited for the long
    transcription to finish, so it came back after it). Only the order is asserted: a latency ratio depends
    on the CPU and failed on a fast one with a 45 s clip, so the long clip is near the limit and the short one
    goes out as soon as the long one is seen running."""
    import threading

    url = emotion_server["url"]
    long = speech_clip(tmp_path / "long.wav", MAX_DURATION_S - 2)
    short = ravdess_clips(actor=3, count=1)[0]
    box = {}

    def send(name, path):
        t0 = time.perf_counter()
        with open(path, "rb") as f:
            r = httpx.post(f"{url}/v1/emotion", files={"file": (path.name, f)}, timeout=600)
        box[name] = (r.status_code, time.perf_counter() - t0, time.perf_counter())

    # Both lanes warm first: the worker process is spawned (imports, model loads) by its first long clip,
    # and that start-up, not the order of service, is what a cold race would measure.
    send("warm_long", speech_clip(tmp_path / "warm.wav", LONG_CLIP_S + 1))
    send("warm_short", short)
    assert box["warm_long"][0] == 200 and box["warm_short"][0] == 200, box
    thread = threading.Thread(target=send, args=("long", long))
    thread.start()
    while httpx.get(f"{url}/health").json()["pending"] < 1:
        assert thread.is_alive(), box  # answered before it was seen running: refused
        time.sleep(0.05)
    send("short", short)
    long_still_running = thread.is_alive()
    thread.join(600)
    assert box["short"][0] == 200 and box["long"][0] == 200
    assert long_still_running and box["short"][2] < box["long"][2], box  # answered first, though sent later


def test_over_long_media_get_413_before_any_extraction(emotion_server, tmp_path):
    url = emotion_server["url"]
    for name in ("seventy_seconds.wav", "seventy_seconds.m4a"):  # header via soundfile, then via ffprobe
        clip = speech_clip(tmp_path / name, 70.0)
        t0 = time.perf_counter()
        with open(clip, "rb") as f:
            r = httpx.post(f"{url}/v1/emotion", files={"file": (name, f)}, timeout=60)
        elapsed = time.perf_counter() - t0
        error = is_openai_error(r, 413, "media_too_long")
        assert "70 s long" in error["message"] and f"at most {MAX_DURATION_S} s" in error["message"]
        assert elapsed < 10  # refused from the header: Whisper on 70 s of speech takes a minute here
    assert httpx.get(f"{url}/health").json()["emotion"] is True


def test_bad_uploads_get_clear_errors_and_the_server_stays_up(emotion_server, tmp_path):
    url = emotion_server["url"]
    post = lambda **kw: httpx.post(f"{url}/v1/emotion", timeout=60, **kw)
    r = post(files={"file": ("notes.txt", b"hello", "text/plain")})
    assert is_openai_error(r, 415) and ".wav" in r.json()["error"]["message"]
    r = post(files={"file": ("empty.wav", b"", "audio/wav")})
    assert "empty" in is_openai_error(r, 400)["message"]
    r = post(files={"file": ("fake.wav", b"RIFF this is not audio" * 50, "audio/wav")})
    assert is_openai_error(r, 400) and "emotune_serve_" not in r.text, r.text  # says what is wrong, not where
    r = post(files={"file": ("big.wav", b"\0" * (UPLOAD_MB * 1024 * 1024 + 1), "audio/wav")})
    is_openai_error(r, 413, "request_too_large")
    is_openai_error(post(data={}), 400)
    # no chat model in this server
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "x", "messages": [{"role": "user", "content": "hi"}]})
    is_openai_error(r, 404, "model_not_found")
    assert httpx.get(f"{url}/health").json()["emotion"] is True


def test_wrong_method_and_malformed_json_answer_in_openai_shape(emotion_server):
    url = emotion_server["url"]
    r = httpx.get(f"{url}/v1/emotion")
    error = is_openai_error(r, 405, "method_not_allowed")
    assert "GET" in error["message"] and "POST" in error["message"] and r.headers["allow"] == "POST"
    is_openai_error(httpx.delete(f"{url}/health"), 405, "method_not_allowed")
    is_openai_error(httpx.put(f"{url}/v1/chat/completions", json={}), 405, "method_not_allowed")
    headers = {"content-type": "application/json"}
    r = httpx.post(f"{url}/v1/chat/completions", content=b'{"model": "x", "messages": [', headers=headers)
    assert "not valid JSON" in is_openai_error(r, 400, "invalid_json")["message"]
    r = httpx.post(f"{url}/v1/chat/completions", content=b"[1, 2]", headers=headers)
    is_openai_error(r, 400)
    is_openai_error(httpx.get(f"{url}/v1/nothing"), 404, "not_found")


def test_busy_port_is_one_line_and_a_nonzero_exit(emotion_server, serve_run):
    port = int(emotion_server["url"].rsplit(":", 1)[1])
    cmd = [sys.executable, "-m", "emotune.cli", "serve", str(serve_run), "--no-chat", "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0] and "--port" in lines[0]
    assert time.perf_counter() - t0 < 60  # refused before any model loads
    assert emotion_server["proc"].poll() is None  # the first server is untouched
