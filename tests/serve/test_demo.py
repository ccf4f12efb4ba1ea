"""`emotune demo` as a live server: concurrent requests through gradio_client, bad uploads, upload checks."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from emotune.serve.demo import UploadError, check_upload, find_examples
from tests.serve.conftest import MAX_UPLOAD_MB, mer_examples, ravdess_clips

MB = 2**20


def client(server):
    from gradio_client import Client

    return Client(server["url"], verbose=False)


def analyse(c, video=None, audio=None, image=None, text="", explain=False):
    from gradio_client import handle_file

    f = lambda p: handle_file(str(p)) if p else None
    return c.predict(f(video), f(audio), f(image), text, explain, api_name="/analyse")


def check_output(out, labels: list[str]) -> dict:
    label, chart, face, transcript, explanation, contrib, raw = out
    assert label["label"] == raw["label"] and raw["label"] in labels
    rows = {r[0]: r[1] for r in chart["data"]}
    assert list(rows) == labels
    assert sum(rows.values()) == pytest.approx(1.0, abs=1e-6)
    assert "baseline classifier" in explanation  # the test run is a baseline: it says it cannot explain
    assert {r[0] for r in contrib["data"]} == set(raw["contributions"])
    return raw


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
    # Whisper fills the transcript exactly where none was given: 8 RAVDESS clips + MER clips without a subtitle.
    assert sum(r["transcript_source"] == "asr" for r in raws) == sum(not kw.get("text") for kw in requests)
    faces = [o[2] for o in outs[16:]]
    assert sum(bool(f) for f in faces) >= 3  # the detected face comes back as an image for the videos
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
    assert ok[6]["label"] in ok[6]["probabilities"]


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
