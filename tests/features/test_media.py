"""Decoding: audio from wav/flac/mp4, frames from video and images, and the reasons broken files give."""

import numpy as np
import pytest

from emotune.media import MediaError
from emotune.media.audio import load_audio
from emotune.media.video import sample_frames


def test_audio_formats_resample_to_16k(media_dir):
    wav = load_audio(media_dir / "tone.wav")
    flac = load_audio(media_dir / "tone44k.flac")  # 32 kHz on disk
    mp4 = load_audio(media_dir / "clip.mp4")  # the AAC track of a video
    assert wav.dtype == np.float32 and wav.shape == (32000,)
    assert abs(len(flac) - 32000) <= 1
    assert abs(len(mp4) / 16000 - 3.0) < 0.1 and np.abs(mp4).max() > 0.05


@pytest.mark.parametrize("name, reason", [
    ("empty.wav", "empty file (0 bytes)"),
    ("nothing_here.wav", "file not found"),
    ("truncated.mp4", "unreadable media (Invalid data found when processing input)"),
    ("truncated_faststart.mp4", "truncated file (ends before its declared duration)"),
])
def test_broken_files_give_a_reason(media_dir, name, reason):
    for read in (load_audio, sample_frames):
        with pytest.raises(MediaError) as e:
            read(media_dir / name)
        assert e.value.reason == reason and name in str(e.value)


def test_garbage_wav_reason_names_no_path(media_dir):
    with pytest.raises(MediaError) as e:
        load_audio(media_dir / "garbage.wav")
    assert e.value.reason.startswith("unreadable audio") and str(media_dir) not in e.value.reason


def test_frames_spread_over_the_video(media_dir):
    frames = sample_frames(media_dir / "clip.mp4", count=6)
    times = [t for t, _ in frames]
    assert len(frames) == 6 and frames[0][1].shape == (240, 320, 3)
    assert times == sorted(times) and times[0] < 0.5 and times[-1] > 2.4


def test_still_image_is_one_frame(media_dir, tmp_path):
    import cv2

    cv2.imwrite(str(tmp_path / "x.png"), np.full((40, 50, 3), 128, np.uint8))
    frames = sample_frames(tmp_path / "x.png")
    assert len(frames) == 1 and frames[0][1].shape == (40, 50, 3)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(MediaError, match="not an image OpenCV can decode"):
        sample_frames(tmp_path / "bad.jpg")
