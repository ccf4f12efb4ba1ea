"""Small trained runs and live servers, shared by the predict, API, demo and browser tests.

`serve_run` is a logistic-regression baseline on eGeMAPS (audio) + MiniLM (text), trained on the first
repetition of two RAVDESS actors (60 clips), so it takes seconds: what these tests check is the path from
raw media to a prediction, not accuracy. `audio_run` is the same on eGeMAPS alone (a model that reads no
text), `lm_run` an emotion LM on a tiny random backbone that reads text only through its prompt.
`image_run` is a visual run: the same baseline on `fer_image` (the FER mini-Xception on a whole face
image), trained on a small stratified part of FER2013's official split. Their features land in the
session's EMOTUNE_CACHE (reused across sessions when the caller sets one).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import data_dir

ACTORS = ("actor01", "actor02")
# image_run's FER2013 subset: the first images (by id) of each class per split; the rest of PrivateTest is unseen.
FER_PER_CLASS = {"train": 20, "dev": 3, "test": 3}
MAX_UPLOAD_MB = 2  # the MER2023 example clips are all below 1 MB


@pytest.fixture(scope="session")
def serve_run(tmp_path_factory, emotune_cache) -> Path:
    from emotune.data.prepare import prepare
    from emotune.data.sample import read_manifest, write_manifest
    from emotune.experiments.run import train

    root = data_dir("ravdess_speech")
    tmp = tmp_path_factory.mktemp("serve_run")
    prepare("ravdess", root, tmp / "all.jsonl", log=lambda *a: None)
    full = read_manifest(tmp / "all.jsonl")
    keep = [s for s in full.samples if s.group in ACTORS and s.meta["repetition"] == 1]
    write_manifest(tmp / "two_actors.jsonl", "ravdess", root, full.label_set, full.subset, keep)
    recipe = {
        "name": "serve_test",
        "run_dir": str(tmp / "run"),
        "data": {"dataset": "ravdess", "root": str(root), "manifest": str(tmp / "two_actors.jsonl"),
                 "protocol": "group_kfold", "folds": 2, "fold": 1},
        "features": {"cache_dir": str(emotune_cache / "features")},
        "model": {"kind": "baseline_lr", "inputs": ["egemaps", "minilm"]},
    }
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return train(str(tmp / "recipe.yaml"), ["model.baseline.C_grid=[0.1]"])


@pytest.fixture(scope="session")
def audio_run(serve_run, tmp_path_factory) -> Path:
    """The same data and model kind on eGeMAPS alone: a model that reads no text (and no faces)."""
    from emotune.experiments.run import train

    tmp = tmp_path_factory.mktemp("audio_run")
    return train(str(serve_run.parent / "recipe.yaml"), ["model.inputs=[egemaps]", "model.baseline.C_grid=[0.1]",
                                                         "name=serve_audio_only", f"run_dir={tmp / 'run'}"])


@pytest.fixture(scope="session")
def lm_run(serve_run, tmp_path_factory) -> Path:
    """An emotion LM on eGeMAPS and a tiny random backbone (one epoch): it reads text only through its
    prompt's transcript slot, and it explains (generates). Fast, not accurate."""
    from emotune.experiments.run import train
    from tests.model.tiny import make_tiny_lm

    tmp = tmp_path_factory.mktemp("lm_run")
    backbone = make_tiny_lm(tmp / "tiny_lm")
    return train(str(serve_run.parent / "recipe.yaml"), [
        "model.kind=emotion_lm", "model.inputs=[egemaps]", f"model.lm.backbone={backbone}", "model.lm.dtype=fp32",
        "model.lm.projector=linear", "train.epochs=1", "train.bf16=false", "train.progress=false", "name=serve_lm",
        f"run_dir={tmp / 'run'}"])


@pytest.fixture(scope="session")
def image_run(tmp_path_factory, emotune_cache) -> Path:
    """Logistic regression on `fer_image` over FER_PER_CLASS images per class and split (182 images):
    a model that reads faces (from an image or a video's frames) and nothing else."""
    from emotune.data.prepare import prepare
    from emotune.data.sample import read_manifest, write_manifest
    from emotune.experiments.run import train

    root = data_dir("fer2013")
    tmp = tmp_path_factory.mktemp("image_run")
    prepare("fer2013", root, tmp / "all.jsonl", log=lambda *a: None)
    full = read_manifest(tmp / "all.jsonl")
    keep, taken = [], {}
    for s in sorted(full.samples, key=lambda s: s.id):
        key = (s.split, s.label)
        if taken.get(key, 0) < FER_PER_CLASS[s.split]:
            taken[key] = taken.get(key, 0) + 1
            keep.append(s)
    write_manifest(tmp / "small.jsonl", "fer2013", root, full.label_set, full.subset, keep)
    recipe = {
        "name": "serve_image_test",
        "run_dir": str(tmp / "run"),
        "data": {"dataset": "fer2013", "root": str(root), "manifest": str(tmp / "small.jsonl"), "protocol": "official"},
        "features": {"cache_dir": str(emotune_cache / "features")},
        "model": {"kind": "baseline_lr", "inputs": ["fer_image"]},
    }
    (tmp / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return train(str(tmp / "recipe.yaml"), ["model.baseline.C_grid=[0.1]"])


def fer_test_image(run_dir: Path, label: str) -> Path:
    """A FER2013 PrivateTest image of `label` that the run's manifest does not hold (never trained or tested on)."""
    from emotune.data.sample import read_manifest

    used = {s.image for s in read_manifest(run_dir.parent / "small.jsonl").samples}
    root = data_dir("fer2013")
    return next(p for p in sorted((root / "test" / label).glob("PrivateTest_*.jpg"))
                if str(p.relative_to(root)) not in used)


def start_serve(run_dir: Path, log: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`emotune serve RUN_DIR --no-chat` on a free loopback port; (process, base URL) once it listens."""
    import re

    cmd = [sys.executable, "-m", "emotune.cli", "serve", str(run_dir), "--no-chat", "--port", "0", *args]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    deadline = time.time() + 120
    while not (m := re.search(r"listening on (http://127\.0\.0\.1:\d+)/v1", log.read_text(errors="replace"))):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"emotune serve RUN_DIR did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=15)


def speech_clip(path: Path, seconds: float) -> Path:
    """Real speech of `seconds` (RAVDESS clips of an actor no run saw, end to end): WAV, or any ffmpeg format."""
    import numpy as np
    import soundfile as sf

    from emotune.media.audio import load_audio

    parts, total = [], 0
    for clip in ravdess_clips(actor=4, count=60):
        parts.append(load_audio(clip))
        total += len(parts[-1])
        if total >= seconds * 16000:
            break
    audio = np.concatenate(parts)[: int(seconds * 16000)]
    wav = path.with_suffix(".wav")
    sf.write(str(wav), audio, 16000, subtype="PCM_16")
    if path.suffix != ".wav":
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), str(path)], check=True)
        wav.unlink()
    return path


def ravdess_clips(actor: int = 3, count: int = 20) -> list[Path]:
    """Clips of an actor the test run never saw."""
    folder = data_dir("ravdess_speech") / f"Actor_{actor:02d}"
    return sorted(folder.glob("*.flac"))[:count]


def mer_examples() -> list[dict]:
    """The 4 labelled MER2023 clips: {"path", "label", "subtitle"}."""
    import csv

    root = data_dir("mer2023_examples")
    with open(root / "metadata.csv", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["label_from_docs"]]
    return [{"path": root / r["file"], "label": r["label_from_docs"], "subtitle": r["english_subtitle_from_app_py"]}
            for r in rows]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_demo(run_dir: Path, log_path: Path, *args: str, env: dict | None = None, port: int | None = None) -> dict:
    """`emotune demo` as a real subprocess on a free loopback port: {"url", "proc", "log", "port"} once it answers."""
    port = port or free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1", **(env or {})}
    cmd = [sys.executable, "-m", "emotune.cli", "demo", str(run_dir), "--port", str(port), *args]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"demo server exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail(f"demo server did not answer within 120 s:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    return {"url": url, "proc": proc, "log": log_path, "port": port}


@pytest.fixture(scope="session")
def demo_server(serve_run, tmp_path_factory):
    """`emotune demo` on the text-reading run; yields {"url", "proc", "log", "port"}, stops it after the session."""
    args = ["--max-upload-mb", str(MAX_UPLOAD_MB), "--concurrency", "2", "--queue-size", "32"]
    examples = os.environ.get("EMOTUNE_DATA", "")
    if examples:
        args += ["--examples", str(Path(examples) / "mer2023_examples")]
    server = start_demo(serve_run, tmp_path_factory.mktemp("demo_server") / "server.log", *args)
    yield server
    stop(server["proc"])


@pytest.fixture(scope="session")
def image_demo(image_run, tmp_path_factory):
    """`emotune demo` on the face-reading run; yields {"url", "proc", "log", "port"}, stops it after the session."""
    server = start_demo(image_run, tmp_path_factory.mktemp("image_demo") / "server.log",
                        "--max-upload-mb", str(MAX_UPLOAD_MB), "--concurrency", "2", "--queue-size", "32")
    yield server
    stop(server["proc"])
