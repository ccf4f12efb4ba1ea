"""Whisper's inner encoder layers, computed in torch from the CTranslate2 model's own weights.

CTranslate2 returns only the encoder's output. Layer-wise probes of speech encoders often find
paralinguistic cues (pitch, energy, voice quality) strongest below the last layers, which an ASR objective
tunes towards the words; `whisper(layer=k)` reads the residual stream after k blocks instead. The weights are read straight
from `model.bin` (no second copy of the model and no download), and the same Whisper encoder is rebuilt in
plain torch: conv stem, sinusoidal positions, pre-norm blocks. `encoder_output` (all blocks and the final
norm) matches CTranslate2's `encode` within float error, which the tests check on an audio window.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError

# CTranslate2's DataType numbering in model.bin; int8/int16 weights come with scales and are not read here.
_FLOAT_TYPES = {0: "float32", 4: "float16", 5: "bfloat16"}
_INT_TYPES = {1: np.int8, 2: np.int16, 3: np.int32}


def read_encoder_weights(model_bin: Path) -> dict[str, np.ndarray]:
    """The `encoder/...` variables of a CTranslate2 model.bin as float32 arrays, keyed without the prefix."""
    try:
        return _read(Path(model_bin))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:  # cut short or not a model.bin at all
        raise EmotuneError(f"{model_bin}: not a readable CTranslate2 model.bin ({exc})") from exc


def _read(model_bin: Path) -> dict[str, np.ndarray]:
    import torch

    out: dict[str, np.ndarray] = {}
    with open(model_bin, "rb") as f:
        def u(fmt: str):
            return struct.unpack("<" + fmt, f.read(struct.calcsize("<" + fmt)))[0]

        def s() -> str:
            return f.read(u("H")).decode().rstrip("\0")

        version = u("I")
        if version < 5:
            raise EmotuneError(f"{model_bin}: CTranslate2 model format {version} is too old to read layers from "
                               "(re-convert it with a current ct2-transformers-converter)")
        s(), u("I")  # spec name, revision
        for _ in range(u("I")):
            name, rank = s(), u("B")
            dims = [u("I") for _ in range(rank)]
            dtype, nbytes = u("B"), u("I")
            if not name.startswith("encoder/"):
                f.seek(nbytes, 1)
                continue
            raw = f.read(nbytes)
            key = name[len("encoder/"):]
            if dtype in _INT_TYPES and key == "num_heads":
                out[key] = np.frombuffer(raw, _INT_TYPES[dtype]).reshape(dims)
            elif dtype not in _FLOAT_TYPES:
                raise EmotuneError(f"{model_bin}: encoder weight {key} is quantized (CTranslate2 type {dtype}); "
                                   "whisper(layer=...) needs float weights (convert with --quantization float16)")
            elif _FLOAT_TYPES[dtype] == "bfloat16":
                out[key] = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).float().reshape(dims).numpy()
            else:
                out[key] = np.frombuffer(raw, _FLOAT_TYPES[dtype]).astype(np.float32).reshape(dims)
    for need in ("conv1/weight", "conv2/weight", "position_encodings/encodings", "layer_norm/gamma"):
        if need not in out:
            raise EmotuneError(f"{model_bin}: no encoder/{need}: not a Whisper model in CTranslate2 format")
    return out


class TorchWhisperEncoder:
    """Whisper's encoder in plain torch (float32, inference only), on weights read from a model.bin."""

    def __init__(self, model_dir: Path | str):
        import torch

        w = read_encoder_weights(Path(model_dir) / "model.bin")
        self.w = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in w.items()}
        self.n_layers = sum(1 for k in w if k.endswith("self_attention/linear_0/weight"))
        self.dim = int(w["layer_norm/gamma"].shape[0])
        # Whisper's heads are 64 wide; the spec stores the count where the converter wrote it.
        self.heads = int(np.asarray(w["num_heads"]).reshape(-1)[0]) if "num_heads" in w else self.dim // 64

    def check_layer(self, layer: int) -> None:
        if not 0 <= layer < self.n_layers:
            raise EmotuneError(f"whisper layer={layer}: this encoder has blocks 0..{self.n_layers - 1} to stop after "
                               f"(layer=k reads the residual stream after k blocks; leave layer unset for the output)")

    def _stem(self, mel):
        import torch.nn.functional as F

        w = self.w
        x = F.gelu(F.conv1d(mel, w["conv1/weight"], w["conv1/bias"], padding=1))
        x = F.gelu(F.conv1d(x, w["conv2/weight"], w["conv2/bias"], stride=2, padding=1))
        return x.transpose(1, 2) + w["position_encodings/encodings"][: x.shape[-1]]

    def _block(self, x, i: int):
        import torch.nn.functional as F

        w, p = self.w, f"layer_{i}/"
        b, t, d = x.shape
        h = F.layer_norm(x, (d,), w[p + "self_attention/layer_norm/gamma"], w[p + "self_attention/layer_norm/beta"])
        qkv = F.linear(h, w[p + "self_attention/linear_0/weight"], w[p + "self_attention/linear_0/bias"])
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in qkv.split(d, -1))
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + F.linear(a, w[p + "self_attention/linear_1/weight"], w[p + "self_attention/linear_1/bias"])
        h = F.layer_norm(x, (d,), w[p + "ffn/layer_norm/gamma"], w[p + "ffn/layer_norm/beta"])
        h = F.gelu(F.linear(h, w[p + "ffn/linear_0/weight"], w[p + "ffn/linear_0/bias"]))
        return x + F.linear(h, w[p + "ffn/linear_1/weight"], w[p + "ffn/linear_1/bias"])

    def states(self, windows: np.ndarray, layer: int) -> np.ndarray:
        """(B, 80, 3000) log-mel windows -> (B, 1500, d): the residual stream after `layer` blocks."""
        import torch

        self.check_layer(layer)
        with torch.inference_mode():
            x = self._stem(torch.from_numpy(np.asarray(windows, np.float32)))
            for i in range(layer):  # only the blocks below the layer asked for are run
                x = self._block(x, i)
        return x.numpy()

    def encoder_output(self, windows: np.ndarray) -> np.ndarray:
        """All blocks and the final norm: what CTranslate2's `encode` returns (the parity check)."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            x = self._stem(torch.from_numpy(np.asarray(windows, np.float32)))
            for i in range(self.n_layers):
                x = self._block(x, i)
            x = F.layer_norm(x, (self.dim,), self.w["layer_norm/gamma"], self.w["layer_norm/beta"])
        return x.numpy()
