"""Images as a modality: the class-per-folder adapter, FER2013's official split, bad image files."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from emotune.data.prepare import PrepareError, prepare
from emotune.data.sample import Sample, read_manifest
from emotune.data.splits import make_folds
from emotune.errors import EmotuneError
from emotune.media.errors import MediaError
from emotune.media.video import load_image


def _jpeg(path, value=128, size=48):
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.random.default_rng(value).integers(0, 255, (size, size, 3), dtype=np.uint8)
    cv2.imwrite(str(path), img)
    return path


def test_image_folder_with_split_folders(tmp_path):
    root = tmp_path / "faces"
    _jpeg(root / "train" / "happy" / "a.jpg")
    _jpeg(root / "train" / "Sadness" / "a.jpg", 3)  # an alias; the same file name in another class folder
    _jpeg(root / "val" / "angry" / "b.png")
    _jpeg(root / "test" / "neutral" / "c.jpg")
    out = tmp_path / "m.jsonl"
    prepare("image_folder", root, out, {"label_set": "fer2013"}, log=lambda *_: None)
    m = read_manifest(out)
    got = {(s.label, s.split) for s in m.samples}
    assert got == {("happy", "train"), ("sad", "train"), ("angry", "dev"), ("neutral", "test")}
    assert len({s.id for s in m.samples}) == 4 and all(s.image for s in m.samples)
    (fold,) = make_folds(m.samples, "official")
    assert len(fold.test) == 1


def test_image_folder_refuses_an_unknown_class_folder_and_needs_a_label_set(tmp_path):
    root = tmp_path / "faces"
    _jpeg(root / "happy" / "a.jpg")
    _jpeg(root / "bored" / "b.jpg")
    with pytest.raises(PrepareError, match="folder 'bored' is not a label of label set fer2013"):
        prepare("image_folder", root, tmp_path / "m.jsonl", {"label_set": "fer2013"}, log=lambda *_: None)
    with pytest.raises(EmotuneError, match="label_set"):
        prepare("image_folder", root, tmp_path / "m.jsonl", {}, log=lambda *_: None)


def test_fer2013_split_comes_from_the_file_name_prefix(tmp_path):
    root = tmp_path / "fer2013"
    _jpeg(root / "train" / "happy" / "Training_1.jpg")
    _jpeg(root / "train" / "sad" / "Training_1.jpg", 5)  # the release has such pairs: two images, two ids
    _jpeg(root / "test" / "fear" / "PublicTest_2.jpg")
    _jpeg(root / "test" / "surprise" / "PrivateTest_3.jpg")
    _jpeg(root / "test" / "angry" / "Mystery_4.jpg")
    out = tmp_path / "m.jsonl"
    with pytest.raises(PrepareError, match="Mystery_4.jpg: cannot tell this image's split"):
        prepare("fer2013", root, out, log=lambda *_: None)
    (root / "test" / "angry" / "Mystery_4.jpg").unlink()
    prepare("fer2013", root, out, log=lambda *_: None)
    m = read_manifest(out)
    assert sorted((s.label, s.split) for s in m.samples) == [
        ("fear", "dev"), ("happy", "train"), ("sad", "train"), ("surprise", "test")]
    assert len({s.id for s in m.samples}) == 4


def test_fer2013_real_release(tmp_path):
    from tests.conftest import data_dir

    root = data_dir("fer2013")
    out = tmp_path / "fer.jsonl"
    prepare("fer2013", root, out, log=lambda *_: None)
    m = read_manifest(out)
    assert len(m.samples) == 35887
    assert Counter(s.split for s in m.samples) == {"train": 28709, "dev": 3589, "test": 3589}
    train = Counter(s.label for s in m.samples if s.split == "train")
    assert train == {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
                     "surprise": 3171}


def test_bad_image_files_get_a_reason(tmp_path):
    good = _jpeg(tmp_path / "good.jpg")
    assert load_image(good).shape == (48, 48, 3)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("hello")
    for path, reason in ((cut, "truncated image"), (empty, "empty file"), (text, "not an image")):
        with pytest.raises(MediaError, match=reason) as info:
            load_image(path)
        assert str(path) in str(info.value)


def test_fer_image_extractor_reads_whole_images_and_reports_bad_ones(tmp_path):
    pytest.importorskip("keras")
    from emotune.features.base import Missing, Output, Source, get_extractor
    from emotune.features.face import FACE_DIM

    good = _jpeg(tmp_path / "good.jpg")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[:100])
    out = get_extractor("fer_image").compute_batch([Source.of_file(good), Source.of_file(cut)])
    assert isinstance(out[0], Output) and out[0].value.shape == (FACE_DIM,)
    assert np.isclose(out[0].value[:7].sum(), 1.0, atol=1e-4)  # the 7 class probabilities
    assert isinstance(out[1], Missing) and "truncated" in out[1].reason


def test_fer_image_mirror_mean_averages_a_face_and_its_mirror(tmp_path):
    """mirror=mean: the CNN's reading of a face and of its mirror image, averaged — so a face and its mirror
    get the same features, which the plain extractor does not give them (the FER2013 image is asymmetric)."""
    pytest.importorskip("keras")
    import cv2

    from tests.conftest import data_dir
    from emotune.features.base import Source, get_extractor

    face = next((data_dir("fer2013") / "test" / "happy").glob("*.jpg"))
    mirrored = tmp_path / "mirrored.png"  # lossless, so the mirror holds the same pixels
    cv2.imwrite(str(mirrored), cv2.imread(str(face))[:, ::-1])
    plain, tta = get_extractor("fer_image"), get_extractor("fer_image(mirror=mean)")
    assert plain.key == "fer_image-v1-66dd7ff4dfe9"  # features cached before the setting existed stay valid
    assert tta.key != plain.key
    a, b = (x.value for x in plain.compute_batch([Source.of_file(face), Source.of_file(mirrored)]))
    ta, tb = (x.value for x in tta.compute_batch([Source.of_file(face), Source.of_file(mirrored)]))
    assert np.abs(a - b).max() > 1e-3
    # fp32 CNN outputs of the same pixels in other batches: equal up to kernel rounding on any CPU
    np.testing.assert_allclose(ta, (a + b) / 2, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ta, tb, rtol=1e-4, atol=1e-4)
    with pytest.raises(EmotuneError, match="mirror must be none or mean"):
        get_extractor("fer_image(mirror=flip)")


def test_fer_image_on_a_video_reads_the_peak_face(tmp_path):
    """A head trained on face crops (FER2013) reads a video through the same 135 values: its peak face."""
    pytest.importorskip("keras")
    from tests.conftest import data_dir
    from emotune.features.base import Missing, Output, Source, get_extractor
    from emotune.features.face import FACE_DIM

    clip = data_dir("mer2023_examples") / "sample_00001073.mp4"
    out = get_extractor("fer_image").compute_batch([Source.of_file(clip)])[0]
    assert isinstance(out, Output) and out.value.shape == (FACE_DIM,) and out.crops["peak"].ndim == 3
    assert np.isclose(out.value[:7].sum(), 1.0, atol=1e-4)
    # a video without a face: missing, with the reason
    import cv2

    path = tmp_path / "blank.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(10):
        w.write(np.full((48, 64, 3), 90, np.uint8))
    w.release()
    blank = get_extractor("fer_image").compute_batch([Source.of_file(path)])[0]
    assert isinstance(blank, Missing) and blank.reason == "no face found"
