"""Face path on the real MER2023 example clips: frames -> Haar face -> FER2013 CNN -> pooled, peak crop kept."""

import csv
import shutil

import numpy as np
import pytest

from emotune.data.sample import Sample
from emotune.features.face import FACE_DIM, FER_LABELS
from emotune.features.store import ensure_features, load_face_crops, load_features

from .conftest import make_manifest


@pytest.mark.slow
def test_mer_examples_faces_fer_and_audio(mer_root, media_dir, tmp_path):
    import cv2

    with open(mer_root / "metadata.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["label_from_docs"]]
    assert len(rows) == 4
    root = tmp_path / "data"
    root.mkdir()
    for r in rows:
        (root / r["file"]).symlink_to(mer_root / r["file"])
    shutil.copy(media_dir / "truncated.mp4", root / "broken.mp4")
    samples = [Sample(id=r["file"][:-4], dataset="mer2023", label=r["label_from_docs"], video=r["file"],
                      text=r["english_subtitle_from_app_py"]) for r in rows]
    samples.append(Sample(id="broken", dataset="mer2023", video="broken.mp4"))
    m = make_manifest(tmp_path / "m.jsonl", root, samples, dataset="mer2023")
    cache = tmp_path / "cache"

    summary = ensure_features(m, ["fer", "egemaps"], cache, progress=False)
    broken = {"unreadable media (Invalid data found when processing input)": 1}
    failed = [{"path": str(root / "broken.mp4"), "reason": next(iter(broken))}]
    assert summary["fer"] == {"done": 4, "cached": 0, "missing": broken, "modality": "face", "failed": failed}
    assert summary["egemaps"] == {"done": 4, "cached": 0, "missing": broken, "modality": "audio", "failed": failed}

    feats = load_features(m, ["fer", "egemaps"], cache)
    assert sorted(feats["fer"]) == sorted(feats["egemaps"]) == sorted(s.id for s in samples[:4])
    for v in feats["fer"].values():
        assert v.shape == (3 * FACE_DIM,)
        mean_p, peak_p = v[:7], v[2 * FACE_DIM: 2 * FACE_DIM + 7]
        assert abs(mean_p.sum() - 1) < 1e-3 and abs(peak_p.sum() - 1) < 1e-3
        assert np.all(v[FACE_DIM: FACE_DIM + 7] >= mean_p - 1e-6)  # max pooling bounds the mean
    # The sad clip's face reads as sad on average (a check that channels, scaling and label order are right).
    assert FER_LABELS[int(feats["fer"]["sample_00000338"][:7].argmax())] == "sad"

    crops = load_face_crops(m, cache)
    assert sorted(crops) == sorted(feats["fer"])
    for path in crops.values():
        img = cv2.imread(str(path))
        assert img is not None and img.shape[0] >= 40 and abs(img.shape[0] - img.shape[1]) <= 2
