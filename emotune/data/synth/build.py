"""Generate the built-in corpus: plan the clips, synthesise them in a small pool, publish atomically.

Layout written (like a published speech-emotion set, one folder per speaker):

    <out_dir>/README.txt
    <out_dir>/metadata.csv              one row per clip: file, speaker, emotion, text, prosody used, ...
    <out_dir>/spk01/spk01_happy_hp03.wav  16 kHz mono 16-bit PCM
    <out_dir>/corpus.json               cache record: settings hash + size and sha256 of every file

The cache: when <out_dir>/corpus.json names the same settings hash and every file it lists is there with
its size, nothing is regenerated. The settings hash covers the sentences, voices and prosody tables,
the chosen speakers/emotions, the sample rate, this generator's version and the espeak-ng version.
A generation writes into a sibling temp folder and renames it into place, so a killed run leaves no
half corpus; its leftover temp folder is removed by the next run.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import yaml

from emotune.paths import cache_home
from emotune.data.synth.speak import Prosody, espeak_version, plain_text, synthesize
from emotune.errors import EmotuneError
from emotune.process import pid_alive

HERE = Path(__file__).parent
GENERATOR_VERSION = 1  # bump when the code changes what it writes, so caches regenerate
SAMPLE_RATE = 16000
NOISE_STD = 3e-4  # a faint noise floor (about -70 dBFS) so no frame is digital silence, as in recordings
RECORD = "corpus.json"
METADATA = "metadata.csv"
COLUMNS = ["file", "speaker", "gender", "accent", "emotion", "sentence_id", "wording", "text", "duration_s",
           "voice", "pitch", "range", "rate", "volume", "stress", "pause_ms"]


def default_corpus_dir() -> Path:
    """Where `emotune quickstart` keeps the generated corpus (under the user cache, `EMOTUNE_CACHE`)."""
    return cache_home() / "quickstart_corpus"


@dataclasses.dataclass(frozen=True)
class Clip:
    id: str
    speaker: str
    gender: str
    accent: str
    emotion: str
    sentence_id: str
    wording: str  # emotional | ambiguous
    marked: str  # the sentence with its *emphasis* marks
    prosody: Prosody

    @property
    def file(self) -> str:
        return f"{self.speaker}/{self.id}.wav"


@dataclasses.dataclass
class BuildResult:
    root: Path
    clips: int
    generated: bool  # False when the cached corpus was reused
    seconds: float


def load_tables() -> tuple[dict, dict]:
    sentences = yaml.safe_load((HERE / "sentences.yaml").read_text(encoding="utf-8"))
    voices = yaml.safe_load((HERE / "voices.yaml").read_text(encoding="utf-8"))
    return sentences, voices


def _unit(key: str, n: int) -> list[float]:
    """n numbers in [-1, 1) drawn from a hash of `key`: the same on every machine and Python version."""
    digest = hashlib.sha256(key.encode()).digest()
    return [int.from_bytes(digest[4 * i:4 * i + 4], "little") / 2**31 - 1.0 for i in range(n)]


def _stress(spec: Optional[dict]) -> Optional[tuple[float, float, float]]:
    return None if not spec else (float(spec["pitch"]), float(spec["volume"]), float(spec["rate"]))


def plan(speakers: Optional[int | Sequence[str]] = None, emotions: Optional[Sequence[str]] = None) -> list[Clip]:
    """Every clip of the corpus, in a fixed order. `speakers`: a count (the first n) or names; default all."""
    sentences, voices = load_tables()
    all_speakers = list(voices["speakers"])
    if speakers is None:
        chosen = all_speakers
    elif isinstance(speakers, int):
        if not 1 <= speakers <= len(all_speakers):
            raise EmotuneError(f"speakers must be 1..{len(all_speakers)}, got {speakers}")
        chosen = all_speakers[:speakers]
    else:
        chosen = list(speakers)
    unknown = [s for s in chosen if s not in voices["speakers"]]
    if unknown:
        raise EmotuneError(f"unknown speaker(s) {', '.join(unknown)}; known: {', '.join(all_speakers)}")
    wanted = list(emotions) if emotions is not None else list(voices["emotions"])
    unknown = [e for e in wanted if e not in voices["emotions"] or e not in sentences["emotions"]]
    if unknown:
        raise EmotuneError(f"unknown emotion(s) {', '.join(unknown)}; known: {', '.join(voices['emotions'])}")
    jit = voices["jitter"]
    clips = []
    for spk in chosen:
        sp = voices["speakers"][spk]
        for emo in wanted:
            style = voices["emotions"][emo]
            lines = [(sid, text, "emotional") for sid, text in sentences["emotions"][emo].items()]
            lines += [(sid, text, "ambiguous") for sid, text in sentences["shared"].items()]
            for sid, marked, wording in lines:
                cid = f"{spk}_{emo}_{sid}"
                dp, dr, ds, dv = _unit(cid, 4)
                prosody = Prosody(
                    voice=sp["voice"], base_pitch=sp["pitch"], speed=sp["speed"],
                    # whole percents: what the SSML says is exactly what metadata.csv records
                    pitch=round(style["pitch"] + jit["pitch"] * dp),
                    range=round(style["range"] + jit["range"] * dr),
                    rate=round(style["rate"] + jit["rate"] * ds),
                    volume=round((style["volume"] + jit["volume"] * dv) * sp["volume"] / 100),
                    stress=_stress(style["stress"]), pause_ms=style["pause_ms"])
                clips.append(Clip(cid, spk, sp["gender"], sp["accent"], emo, sid, wording, marked, prosody))
    return clips


def settings_hash(clips: list[Clip]) -> str:
    """Everything that decides the bytes written: change any of it and the corpus is regenerated."""
    spec = {"generator": GENERATOR_VERSION, "sample_rate": SAMPLE_RATE, "noise": NOISE_STD,
            "espeak_ng": espeak_version(), "clips": [dataclasses.asdict(c) for c in clips]}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def _render(clip: Clip) -> np.ndarray:
    audio = synthesize(clip.marked, clip.prosody, SAMPLE_RATE, where=clip.id)
    seed = int.from_bytes(hashlib.sha256(("noise:" + clip.id).encode()).digest()[:8], "little")
    audio = audio + np.random.default_rng(seed).normal(0.0, NOISE_STD, size=audio.shape)
    return np.clip(audio, -1.0, 1.0)


def _write_clip(root: Path, clip: Clip) -> dict:
    import soundfile as sf

    audio = _render(clip)
    path = root / clip.file
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    p = clip.prosody
    return {"file": clip.file, "speaker": clip.speaker, "gender": clip.gender, "accent": clip.accent,
            "emotion": clip.emotion, "sentence_id": clip.sentence_id, "wording": clip.wording,
            "text": plain_text(clip.marked), "duration_s": f"{len(audio) / SAMPLE_RATE:.3f}", "voice": p.voice,
            "pitch": f"{p.pitch:+d}", "range": p.range, "rate": p.rate, "volume": p.volume, "stress": "yes" if p.stress else "no", "pause_ms": p.pause_ms}


def _file_record(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != RECORD):
        data = path.read_bytes()
        out[path.relative_to(root).as_posix()] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


def is_current(root: Path, digest: str) -> bool:
    """True when `root` holds a finished corpus made with these settings, all files present and whole."""
    try:
        record = json.loads((root / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if record.get("settings_hash") != digest or not isinstance(record.get("files"), dict):
        return False
    for rel, info in record["files"].items():
        try:
            if (root / rel).stat().st_size != info["size"]:
                return False
        except (OSError, KeyError, TypeError):
            return False
    return True


def _remove_leftovers(out_dir: Path) -> None:
    """Temp folders of generations that were killed (their process is gone)."""
    for p in out_dir.parent.glob(f".{out_dir.name}.*-*"):
        try:
            pid = int(p.name.rsplit("-", 2)[-2])
        except ValueError:
            continue
        if p.is_dir() and not pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


README = """Synthetic speech-emotion corpus generated by emotune (`emotune quickstart`).

Every clip was synthesised with espeak-ng; the emotion is set by prosody rules (pitch, pitch range,
rate, loudness, emphasis, pauses), not acted by people. It exists to exercise emotune's pipeline end
to end without downloading data; scores on it say nothing about real emotional speech.

metadata.csv: one row per clip (speaker folder/file, emotion, transcript, the prosody used).
wording = ambiguous marks sentences spoken in every emotion: only the voice tells them apart.
"""


def build_corpus(out_dir: Optional[Path] = None, speakers: Optional[int | Sequence[str]] = None,
                 emotions: Optional[Sequence[str]] = None, workers: int = 2,
                 log: Callable[[str], None] = print) -> BuildResult:
    """Generate the corpus into `out_dir` (default `default_corpus_dir()`), or reuse it when current."""
    start = time.perf_counter()
    out_dir = Path(out_dir) if out_dir is not None else default_corpus_dir()
    clips = plan(speakers, emotions)
    digest = settings_hash(clips)
    if is_current(out_dir, digest):
        return BuildResult(out_dir, len(clips), False, time.perf_counter() - start)
    if out_dir.exists() and not (out_dir / RECORD).exists() and any(out_dir.iterdir()):
        raise EmotuneError(f"{out_dir} exists and is not a generated corpus (no {RECORD}); "
                           "choose another folder or empty it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    try:
        log(f"synthesising {len(clips)} clips with espeak-ng into {out_dir} ...")
        # Threads suffice: each clip is an espeak-ng process plus a short resample, so the work runs outside the GIL.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            rows = list(pool.map(lambda c: _write_clip(tmp, c), clips))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        (tmp / METADATA).write_text(buf.getvalue(), encoding="utf-8")
        (tmp / "README.txt").write_text(README, encoding="utf-8")
        record = {"settings_hash": digest, "generator": GENERATOR_VERSION, "espeak_ng": espeak_version(),
                  "clips": len(clips), "files": _file_record(tmp)}
        (tmp / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True), encoding="utf-8")
        _publish(tmp, out_dir, digest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    seconds = time.perf_counter() - start
    log(f"wrote {len(clips)} clips to {out_dir} in {seconds:.1f} s")
    return BuildResult(out_dir, len(clips), True, seconds)


def _publish(tmp: Path, out_dir: Path, digest: str) -> None:
    """Swap the finished temp folder into place; an old corpus is moved aside first, then deleted."""
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-{os.getpid()}-", dir=out_dir.parent))
        os.replace(out_dir, old / "corpus")
    try:
        os.rename(tmp, out_dir)
    except OSError:
        # Another process published first; keep its corpus if it is the one we wanted.
        if not is_current(out_dir, digest):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
