"""`emotune serve` as real subprocesses on free loopback ports, shared by every test of a session.

Two servers start together (their start-up overlaps): `clean`, and `faulty`, which requires an API key
and answers chat requests through a fixed cycle of faults (500, empty reply, malformed JSON, a reply
slower than the clients' timeout, then a normal reply). Import the `llm_servers` fixture into a test
module to use them; the processes are started once per session however many modules import it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

FAULT_KEY = "test-key-123"
FAULT_CYCLE = "error,empty,malformed,slow,ok"
SLOW_S = 10.0
MAX_REQUEST_KB = 64

_RUNNING: dict[str, dict] = {}


def _start(name: str, extra: list[str], log_dir: Path) -> dict:
    log = log_dir / f"{name}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EMOTUNE_SERVE_FAULTS": ""}
    cmd = [sys.executable, "-m", "emotune.cli", "serve", "--port", "0", "--threads", "1",
           "--max-request-kb", str(MAX_REQUEST_KB), *extra]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    return {"name": name, "proc": proc, "log": log}


def _wait(server: dict, deadline: float) -> None:
    while True:
        text = server["log"].read_text(errors="replace")
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", text)
        if m:
            server["base_url"] = m.group(1)
            return
        if server["proc"].poll() is not None:
            pytest.fail(f"emotune serve ({server['name']}) exited with {server['proc'].returncode}:\n{text[-3000:]}")
        if time.time() > deadline:
            server["proc"].kill()
            pytest.fail(f"emotune serve ({server['name']}) did not start within the deadline:\n{text[-3000:]}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def llm_servers(tmp_path_factory, emotune_cache):
    if not _RUNNING:
        from emotune.model.backbone import DEFAULT_BACKBONE, resolve_backbone

        resolve_backbone(DEFAULT_BACKBONE)  # convert the GGUF once, before two servers race to do it
        log_dir = tmp_path_factory.mktemp("llm_servers")
        _RUNNING["clean"] = _start("clean", [], log_dir)
        _RUNNING["faulty"] = _start("faulty", ["--api-key", FAULT_KEY, "--faults", FAULT_CYCLE,
                                               "--slow-s", str(SLOW_S)], log_dir)
        deadline = time.time() + 180
        for server in _RUNNING.values():
            _wait(server, deadline)
    yield _RUNNING
    for server in list(_RUNNING.values()):
        server["proc"].terminate()
        try:
            server["proc"].wait(timeout=15)
        except subprocess.TimeoutExpired:
            server["proc"].kill()
    _RUNNING.clear()
