"""Face boxes with OpenCV's frontal-face Haar cascade (ships with opencv-python < 5) and square crops."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

# Detection runs on a copy whose longer side is at most this many pixels: Haar cost grows with the
# area, and faces worth classifying at 64x64 stay well above the cascade's 24-pixel window at this size.
DETECT_SIDE = 640


@lru_cache(maxsize=1)
def _cascade():
    import cv2

    if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
        raise RuntimeError("this OpenCV build has no Haar cascades (OpenCV 5 removed them; install opencv-python-headless<5)")
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    if cascade.empty():
        raise RuntimeError("could not load haarcascade_frontalface_default.xml from OpenCV")
    return cascade


def detect_faces(image_bgr: np.ndarray, min_size: float = 0.08, neighbors: int = 5) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in the image's own pixels, largest first.

    `min_size` is the smallest face side as a fraction of the image's shorter side: it rejects the small
    background false positives a Haar cascade finds in film frames.
    """
    import cv2

    gray = image_bgr if image_bgr.ndim == 2 else cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    scale = min(1.0, DETECT_SIDE / max(h, w))
    small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
    small = cv2.equalizeHist(small)
    side = max(24, int(min(small.shape) * min_size))
    found = _cascade().detectMultiScale(small, scaleFactor=1.1, minNeighbors=neighbors, minSize=(side, side))
    boxes = [tuple(int(round(v / scale)) for v in box) for box in (found if len(found) else [])]
    return sorted(boxes, key=lambda b: b[2] * b[3], reverse=True)


def crop_face(image_bgr: np.ndarray, box: tuple[int, int, int, int], margin: float = 0.15) -> np.ndarray:
    """A square crop around `box`, grown by `margin` of its side on each edge and clipped to the image."""
    x, y, w, h = box
    side = int(max(w, h) * (1 + 2 * margin))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(image_bgr.shape[1], cx + side / 2)), int(min(image_bgr.shape[0], cy + side / 2))
    return image_bgr[y0:y1, x0:x1].copy()


def largest_face(image_bgr: np.ndarray, min_size: float = 0.08, margin: float = 0.15) -> np.ndarray | None:
    """The crop of the largest face in the image, or None when the cascade finds none."""
    boxes = detect_faces(image_bgr, min_size)
    return crop_face(image_bgr, boxes[0], margin) if boxes else None
