"""A run killed with SIGKILL half way resumes without recomputing what it finished, and ends identical."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from emotune.data.sample import Sample
from emotune.features.base import get_extractor
from emotune.features.cache import FeatureCache, read_shard
from emotune.features.store import ensure_features, load_features

from .conftest import make_manifest

NAMES = ["egemaps", "logmel"]


def _shard_entries(cache: Path, name: str) -> dict[Path, set[str]]:
    key = get_extractor(name).key
    files = [p for p in FeatureCache(cache).shard_files(key) if p.suffix == ".safetensors" and not p.name.startswith(".tmp-")]
    return {p: {e.sample for e in read_shard(p, cache / key)} for p in files}


@pytest.mark.slow
@pytest.mark.faults
def test_sigkill_then_resume(ravdess_root, tmp_path):
    # Two actors, 20 clips each: ~4 s of eGeMAPS + log-mel work, saved every 5 samples.
    samples = [Sample(id=p.stem, dataset="ravdess", audio=p.relative_to(ravdess_root).as_posix())
               for actor in ("Actor_01", "Actor_02") for p in sorted((ravdess_root / actor).glob("*.flac"))[:20]]
    m = make_manifest(tmp_path / "m.jsonl", ravdess_root, samples, dataset="ravdess")
    cache = tmp_path / "cache"
    cmd = [sys.executable, "-m", "emotune.cli", "features", "--manifest", str(m.path), "--extractors", ",".join(NAMES),
           "--cache-dir", str(cache), "--flush-every", "5", "--quiet"]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(_shard_entries(cache, "egemaps")) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.communicate()[1].decode()[-500:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    before = {n: _shard_entries(cache, n) for n in NAMES}
    finished = {n: set().union(*before[n].values()) for n in NAMES}
    assert 0 < len(finished["egemaps"]) < len(samples)
    stamps = {p: (p.stat().st_mtime_ns, p.read_bytes()) for n in NAMES for p in before[n]}

    # Bit-exact means a run compared with itself: the resumed part and the reference run on one BLAS
    # thread like the killed process (2 threads sum the mel filterbank in another order).
    single = threadpool_limits(limits=1)
    summary = ensure_features(m, NAMES, cache, progress=False)
    for n in NAMES:
        assert summary[n]["cached"] == len(finished[n]), n
        assert summary[n]["done"] == len(samples) - len(finished[n]), n
        after = _shard_entries(cache, n)
        new = {p: ids for p, ids in after.items() if p not in before[n]}
        assert not set().union(*new.values()) & finished[n], f"{n}: a finished sample was computed again"
    assert all((p.stat().st_mtime_ns, p.read_bytes()) == v for p, v in stamps.items()), "old shards were rewritten"

    resumed = load_features(m, NAMES, cache)
    ref_cache = tmp_path / "ref"
    ensure_features(m, NAMES, ref_cache, progress=False)
    reference = load_features(m, NAMES, ref_cache)
    single.unregister()
    for n in NAMES:
        assert sorted(resumed[n]) == sorted(reference[n]) == sorted(s.id for s in samples)
        assert all(np.array_equal(resumed[n][i], reference[n][i]) for i in reference[n]), n
    assert ensure_features(m, NAMES, cache, progress=False)["egemaps"]["done"] == 0
