"""A small trained run and a live demo server, shared by the predict, demo and browser tests.

The run is a logistic-regression baseline on eGeMAPS (audio) + MiniLM (text), trained on the first
repetition of two RAVDESS actors (60 clips), so it takes seconds: what these tests check is the path from
raw media to a prediction, not accuracy. Its features land in the session's EMOTUNE_CACHE (reused across
sessions when the caller sets one).
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


@pytest.fixture(scope="session")
def demo_server(serve_run, tmp_path_factory):
    """`emotune demo` as a real subprocess on a free loopback port; yields its URL, stops it after the session."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("demo_server") / "server.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    examples = os.environ.get("EMOTUNE_DATA", "")
    cmd = [sys.executable, "-m", "emotune.cli", "demo", str(serve_run), "--port", str(port),
           "--max-upload-mb", str(MAX_UPLOAD_MB), "--concurrency", "2", "--queue-size", "32"]
    if examples:
        cmd += ["--examples", str(Path(examples) / "mer2023_examples")]
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
    yield {"url": url, "proc": proc, "log": log_path}
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
