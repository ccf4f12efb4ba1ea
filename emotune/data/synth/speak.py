"""One clip: a sentence + a speaker + a prosody → SSML → espeak-ng → 16 kHz mono float samples."""

from __future__ import annotations

import dataclasses
import functools
import re
import shutil
import subprocess
from xml.sax.saxutils import escape

import numpy as np

from emotune.errors import EmotuneError

MARK = re.compile(r"\*([^*]+)\*")


@dataclasses.dataclass(frozen=True)
class Prosody:
    """What a clip is spoken with: the speaker's baseline plus the emotion's (jittered) SSML settings."""

    voice: str  # espeak-ng voice+variant
    base_pitch: int  # espeak-ng -p
    speed: int  # espeak-ng -s, words per minute
    pitch: int  # SSML percent change of pitch
    range: int  # SSML pitch range, percent of normal
    rate: int  # SSML percent of the speaker's speed
    volume: int  # SSML percent of normal loudness
    stress: tuple[float, float, float] | None  # (pitch %, volume %, rate %) of the marked word, or unstressed
    pause_ms: int


def plain_text(marked: str) -> str:
    """The transcript: a sentence without its emphasis marks."""
    return MARK.sub(r"\1", marked)


def to_ssml(marked: str, p: Prosody) -> str:
    words = escape(marked)
    if p.pause_ms:  # before the stress tags go in, so a pause never lands inside a tag
        pause = f'<break time="{p.pause_ms}ms"/>'
        words = words.replace(",", "," + pause)
        first, _, rest = words.partition(" ")
        words = f"{first} {pause}{rest}" if rest else first
    if p.stress:
        pitch, volume, rate = p.stress
        words = MARK.sub(lambda m: f'<prosody pitch="{pitch:+.0f}%" volume="{volume:+.0f}%" rate="{rate:.0f}%">'
                                   f'{m.group(1)}</prosody>', words)
    else:
        words = plain_text(words)
    return (f'<speak><prosody pitch="{p.pitch:+d}%" range="{p.range:d}%" rate="{p.rate:d}%" '
            f'volume="{p.volume:d}%">{words}</prosody></speak>')


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise EmotuneError("espeak-ng not found: the built-in corpus needs it (Debian/Ubuntu: apt-get install "
                           "espeak-ng; `make setup` installs it)")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("Data at")[0].strip()


def _parse_wav(data: bytes, where: str) -> tuple[np.ndarray, int]:
    """16-bit mono PCM from espeak-ng's --stdout; its header holds placeholder sizes, so read to the end."""
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise EmotuneError(f"espeak-ng gave no WAV audio for {where}")
    pos = 12
    rate = channels = bits = None
    while pos + 8 <= len(data):
        chunk, size = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if chunk == b"fmt ":
            channels = int.from_bytes(data[pos + 10:pos + 12], "little")
            rate = int.from_bytes(data[pos + 12:pos + 16], "little")
            bits = int.from_bytes(data[pos + 22:pos + 24], "little")
        elif chunk == b"data":
            if (channels, bits) != (1, 16) or rate is None:
                raise EmotuneError(f"espeak-ng gave {channels}-channel {bits}-bit audio for {where}; expected mono 16-bit")
            pcm = data[pos + 8:]
            pcm = pcm[: len(pcm) // 2 * 2]
            return np.frombuffer(pcm, dtype="<i2").astype(np.float64) / 32768.0, rate
        pos += 8 + size
    raise EmotuneError(f"espeak-ng gave a WAV without a data chunk for {where}")


def synthesize(marked: str, p: Prosody, sample_rate: int, where: str) -> np.ndarray:
    """Speak one sentence; return float samples in [-1, 1] at `sample_rate` (espeak-ng itself runs at 22.05 kHz)."""
    from math import gcd

    from scipy.signal import resample_poly

    espeak_version()  # fails with a clear message when espeak-ng is missing
    cmd = ["espeak-ng", "-m", "--stdout", "-v", p.voice, "-p", str(p.base_pitch), "-s", str(p.speed), to_ssml(marked, p)]
    run = subprocess.run(cmd, capture_output=True)
    if run.returncode != 0:
        raise EmotuneError(f"espeak-ng failed for {where}: {run.stderr.decode(errors='replace').strip()}")
    audio, rate = _parse_wav(run.stdout, where)
    if rate != sample_rate:
        g = gcd(rate, sample_rate)
        audio = resample_poly(audio, sample_rate // g, rate // g)
    return np.clip(audio, -1.0, 1.0)
