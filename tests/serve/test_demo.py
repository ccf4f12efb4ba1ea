"""`emotune demo` as a live server: concurrent requests through gradio_client, bad uploads, upload checks,
only the inputs the model reads shown, the duration limit, a busy port, no temporary folders left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from emotune.serve.demo import UploadError, check_upload, find_examples
from tests.serve.conftest import MAX_UPLOAD_MB, mer_examples, ravdess_clips, speech_clip, start_demo, stop

MB = 2**20


def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def analyse(c, video=None, audio=None, image=None, text="", explain=False):
    from gradio_client import handle_file

    f = lambda p: handle_file(str(p)) if p else None
    return c.predict(f(video), f(audio), f(image), text, explain, api_name="/analyse")


def check_output(out, labels: list[str]) -> dict:
    label, chart, face, transcript, explanation, contrib, used, raw = out
    assert label["label"] == raw["label"] and raw["label"] in labels
    rows = {r[0]: r[1] for r in chart["data"]}
    assert list(rows) == labels
    assert sum(rows.values()) == pytest.approx(1.0, abs=1e-6)
    assert "baseline classifier" in explanation  # the test run is a baseline: it says it cannot explain
    # Every input the model used has its contribution, and is named in the "used" line.
    assert {r[0] for r in contrib["data"]} == set(raw["contributions"]) == set(raw["modalities"])
    assert all(f"{u['input']} from {u['from']}" in used for u in raw["used"])
    assert face is None and raw["face"] is False  # the test runs read no faces: none is shown
    return raw


def component(server, elem_id: str) -> dict:
    with urllib.request.urlopen(server["url"] + "config", timeout=10) as r:
        config = json.load(r)
    return next(c for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id)["props"]


@pytest.mark.slow
def test_twenty_concurrent_requests_all_succeed(demo_server, serve_run):
    """16 RAVDESS clips (8 transcribed by Whisper, 8 with the statement given) and the 4 MER2023 videos at once."""
    from emotune.serve.predict import load_predictor

    labels = load_predictor(serve_run).label_names
    c = client(demo_server)
    requests = [dict(audio=p, text="" if i % 2 else "Kids are talking by the door.")
                for i, p in enumerate(ravdess_clips(actor=3, count=16))]
    requests += [dict(video=m["path"], text=m["subtitle"]) for m in mer_examples()]
    assert len(requests) == 20
    with ThreadPoolExecutor(max_workers=20) as pool:  # 20 clients in flight, the queue runs 2 at a time
        outs = list(pool.map(lambda kw: analyse(c, **kw), requests))
    raws = [check_output(o, labels) for o in outs]
    assert all("audio" in r["modalities"] for r in raws)
    # Whisper fills the transcript exactly where none was given to the English RAVDESS clips; it declines the
    # Chinese speech of a MER clip without a subtitle, and then no transcript is shown or read.
    assert [r["transcript_source"] == "asr" for r in raws[:16]] == [not kw["text"] for kw in requests[:16]]
    for kw, r in zip(requests[16:], raws[16:]):
        assert r["transcript_source"] == ("given" if kw["text"] else None)
        assert kw["text"] or ("English" in r["missing"]["asr"] and r["modalities"] == ["audio"])
    assert all(set(r["not_used"]) == {"video frames"} for r in raws[16:])  # the MER videos' frames are not read
    assert demo_server["proc"].poll() is None


@pytest.mark.slow
def test_bad_uploads_get_clear_messages_and_the_server_stays_up(demo_server, tmp_path):
    import httpx
    from gradio_client.exceptions import AppError

    c = client(demo_server)
    fake = tmp_path / "holiday.mp4"
    fake.write_text("not a video at all, just some text\n" * 10)
    empty = tmp_path / "silence.wav"
    empty.write_bytes(b"")
    not_image = tmp_path / "face.png"
    not_image.write_text("plain text named .png")
    big = tmp_path / "long_take.mp4"
    big.write_bytes(np.random.default_rng(0).bytes((MAX_UPLOAD_MB + 1) * MB))

    cases = [(dict(video=fake), "is not a readable video file"), (dict(audio=empty), "is empty (0 bytes)"),
             (dict(image=not_image), "is not a readable image"), (dict(), "Upload or record")]
    for kwargs, message in cases:
        with pytest.raises(AppError) as err:
            analyse(c, **kwargs)
        assert message in str(err.value.message), err.value.message

    # Over the limit: the client refuses before sending, and the server refuses a direct upload too.
    with pytest.raises(ValueError, match="exceeds the maximum file size"):
        analyse(c, video=big)
    with open(big, "rb") as f:
        r = httpx.post(demo_server["url"] + "gradio_api/upload", files={"files": ("long_take.mp4", f, "video/mp4")})
    assert r.status_code == 413 and "maximum allowed size" in r.text

    assert demo_server["proc"].poll() is None
    ok = analyse(c, audio=ravdess_clips(actor=3, count=1)[0], text="Kids are talking by the door.")
    assert ok[7]["label"] in ok[7]["probabilities"]


def test_page_lists_the_labelled_mer2023_examples(demo_server):
    with urllib.request.urlopen(demo_server["url"] + "config", timeout=10) as r:
        config = json.load(r)
    datasets = [comp for comp in config["components"] if comp.get("type") == "dataset"]
    assert len(datasets) == 1
    props = datasets[0]["props"]
    assert len(props["samples"]) == 4
    assert sorted(label.split(" ")[-1].rstrip(")") for label in props["sample_labels"]) == ["angry", "happy", "sad", "surprise"]


def test_demo_binds_to_loopback_by_default():
    from emotune.cli import build_parser

    args = build_parser().parse_args(["demo", "runs/x"])
    assert args.host == "127.0.0.1"


# -- upload checks, without a server -------------------------------------------------------------------

def make_media(tmp_path: Path) -> dict[str, Path]:
    """Real small files made with ffmpeg and PIL: a video with and without sound, a wav, a png."""
    from PIL import Image

    out = {"av": tmp_path / "av.mp4", "mute": tmp_path / "mute.mp4", "wav": tmp_path / "tone.wav",
           "png": tmp_path / "grey.png"}
    lavfi = ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1"]
    subprocess.run([*lavfi, "-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-shortest", str(out["av"])], check=True)
    subprocess.run([*lavfi, "-an", str(out["mute"])], check=True)
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:duration=1", str(out["wav"])],
                   check=True)
    Image.new("RGB", (32, 32), (128, 128, 128)).save(out["png"])
    return out


def test_check_upload_accepts_real_media_and_names_what_is_wrong(tmp_path):
    m = make_media(tmp_path)
    limit = 5 * MB
    assert check_upload(m["av"], "video", limit) == m["av"]
    assert check_upload(m["av"], "audio", limit) == m["av"]  # a video's sound track is audio
    assert check_upload(m["wav"], "audio", limit) == m["wav"]
    assert check_upload(m["png"], "image", limit) == m["png"]

    truncated = tmp_path / "cut.png"
    truncated.write_bytes(m["png"].read_bytes()[:40])
    renamed = tmp_path / "tone.png"
    renamed.write_bytes(m["wav"].read_bytes())
    cases = [
        (m["mute"], "audio", limit, "has no audio stream"),
        (m["wav"], "video", limit, "type '.wav' is not accepted"),
        (m["av"], "video", 100, "the limit is"),
        (tmp_path / "gone.mp4", "video", limit, "no file"),
        (truncated, "image", limit, "is not a readable image"),
        (renamed, "image", limit, "is not a readable image"),
    ]
    for path, kind, max_bytes, message in cases:
        with pytest.raises(UploadError, match=message):
            check_upload(path, kind, max_bytes)
    with pytest.raises(UploadError) as err:
        check_upload(truncated, "image", limit)
    assert str(tmp_path) not in str(err.value)  # messages name the upload, never a server path


def test_find_examples_reads_metadata(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "b.mp4").write_bytes(b"x")
    (tmp_path / "metadata.csv").write_text("file,label_from_docs,english_subtitle_from_app_py\n"
                                           "a.mp4,happy,Hello there\nb.mp4,,\nmissing.mp4,sad,\n")
    rows, captions = find_examples(tmp_path)
    assert rows == [[str(tmp_path / "a.mp4"), None, None, "Hello there"]]
    assert captions == ["a (annotated: happy)"]
    assert find_examples(tmp_path / "nowhere") == ([], [])


# -- what the page shows: only what the model reads ---------------------------------------------------

@pytest.mark.slow
def test_text_reading_run_shows_transcript_but_no_face(demo_server, serve_run):
    from emotune.serve.predict import load_predictor

    clip = next(m for m in mer_examples() if m["subtitle"])
    out = analyse(client(demo_server), video=clip["path"], text=clip["subtitle"])
    raw = check_output(out, load_predictor(serve_run).label_names)
    assert [u["input"] for u in raw["used"]] == ["audio", "text"] and out[3] == clip["subtitle"]
    assert raw["not_used"] == {"video frames": "not used by this model (it reads no faces; only the video's sound is used)"}
    assert "video frames" in out[6] and "not used by this model" in out[6]
    assert component(demo_server, "out-face")["visible"] is False  # no face panel for a model that reads none
    assert component(demo_server, "out-transcript")["visible"] is True


@pytest.fixture(scope="module")
def audio_demo(audio_run, tmp_path_factory):
    """The demo of a model that reads audio only, with a short duration limit."""
    server = start_demo(audio_run, tmp_path_factory.mktemp("audio_demo") / "server.log", "--max-duration-s", "8")
    yield server
    stop(server["proc"])


@pytest.mark.slow
def test_audio_only_run_shows_no_transcript_and_labels_the_text_not_used(audio_demo, audio_run):
    from emotune.serve.predict import load_predictor

    clip = next(m for m in mer_examples() if m["subtitle"])
    out = analyse(client(audio_demo), video=clip["path"], text=clip["subtitle"])
    raw = check_output(out, load_predictor(audio_run).label_names)
    assert raw["used"] == [{"input": "audio", "from": "the video's audio track", "features": ["egemaps"]}]
    assert raw["transcript"] is None and out[3] == ""  # the subtitle is not shown as a transcript it read
    assert raw["not_used"]["text"] == "not used by this model (it reads no text)"
    assert "**text:** not used by this model" in out[6]
    assert component(audio_demo, "out-transcript")["visible"] is False
    assert "not used by this model" in component(audio_demo, "in-text")["label"]


@pytest.mark.slow
def test_over_long_recording_gets_a_clear_message(audio_demo, tmp_path):
    from gradio_client.exceptions import AppError

    long = speech_clip(tmp_path / "long_take.wav", 12.0)
    t0 = time.perf_counter()
    with pytest.raises(AppError) as err:
        analyse(client(audio_demo), audio=long)
    assert "the audio is 12 s long; this server analyses at most 8 s" in err.value.message
    assert time.perf_counter() - t0 < 30
    assert audio_demo["proc"].poll() is None


@pytest.mark.slow
def test_busy_port_is_one_line_and_a_nonzero_exit(demo_server, serve_run):
    port = demo_server["port"]
    cmd = [sys.executable, "-m", "emotune.cli", "demo", str(serve_run), "--port", str(port)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0] and "--port" in lines[0]
    assert time.perf_counter() - t0 < 60  # before the model and Gradio load
    assert demo_server["proc"].poll() is None


@pytest.mark.slow
def test_a_demo_request_leaves_no_temporary_folders(audio_run, tmp_path):
    """Per request nothing stays in the temp dir (TMPDIR, private to this server); Gradio's upload cache is
    one folder of the server's own, removed when the server stops (SIGTERM)."""
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {"TMPDIR": str(tmpdir), "GRADIO_TEMP_DIR": ""}
    server = start_demo(audio_run, tmp_path / "server.log", env=env)
    try:
        before = sorted(os.listdir(tmpdir))
        assert len(before) == 1 and before[0].startswith("emotune_demo_")  # Gradio's cache, made at start
        c = client(server)
        analyse(c, video=mer_examples()[0]["path"])
        fake = tmp_path / "notes.mp4"
        fake.write_text("not a video\n" * 10)
        from gradio_client.exceptions import AppError

        with pytest.raises(AppError):
            analyse(c, video=fake)
        assert sorted(os.listdir(tmpdir)) == before  # no face or upload folder left by either request
    finally:
        stop(server["proc"])
    assert server["proc"].returncode == 0
    assert os.listdir(tmpdir) == []
