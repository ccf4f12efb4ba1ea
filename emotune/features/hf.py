"""Any Hugging Face encoder as a feature extractor: `hf:<model id or folder>(pool=mean,layer=-1,...)`.

Which modality it reads is taken from the files beside the weights (`modality=auto`): a feature
extractor with a sampling rate means audio, an image processor means vision (frames of a video, or an
image; the largest face is cropped when one is found), a tokenizer means text. Models load offline: a
hub id must already be in the local Hugging Face cache, a folder is used as it is. The cache key also
covers the weight files' sizes and times, so replacing the weights in a folder makes new features.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np

from emotune.errors import EmotuneError
from emotune.features.base import Extractor, Output, Source, _fmt, offline_hub
from emotune.features.text import text_source
from emotune.media.audio import load_audio
from emotune.media.faces import crop_face, detect_faces
from emotune.media.video import sample_frames

POOLS = ("mean", "mean+std", "cls")


def resolve_model_dir(model: str) -> Path:
    """A local folder for `model`: the folder itself, or a hub id's snapshot in the local HF cache."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    offline_hub()
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:
        raise EmotuneError(f"hf:{model}: not a folder and not in the local Hugging Face cache "
                           f"(download it where there is internet: `hf download {model}`, or give a folder)") from None


def detect_modality(folder: Path) -> str:
    pre = folder / "preprocessor_config.json"
    if pre.exists():
        cfg = json.loads(pre.read_text(encoding="utf-8"))
        if "sampling_rate" in cfg:
            return "audio"
        if "image_processor_type" in cfg or "size" in cfg or "crop_size" in cfg:
            return "face"
    if any((folder / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "tokenizer.model")):
        return "text"
    raise EmotuneError(f"{folder}: cannot tell the modality (no preprocessor_config.json or tokenizer files); "
                       "set modality=audio|vision|text")


class HuggingFace(Extractor):
    name = "hf"
    version = "1"
    # layer: which hidden state (-1 = last); frames: per video for vision; max_seconds: audio cut-off.
    defaults = {"model": "", "modality": "auto", "pool": "mean", "layer": -1, "frames": 8, "face": True,
                "max_seconds": 30.0, "asr_fallback": True}
    batch_size = 8

    def __init__(self, **settings):
        super().__init__(**settings)
        if not self.settings["model"]:
            raise EmotuneError("hf extractor needs a model: hf:<model id or folder>")
        if self.settings["pool"] not in POOLS:
            raise EmotuneError(f"hf:{self.settings['model']}: pool must be one of {', '.join(POOLS)}")
        if self.settings["modality"] not in ("auto", "audio", "vision", "text"):
            raise EmotuneError(f"hf:{self.settings['model']}: modality must be auto, audio, vision or text")
        self._folder = None
        self._model = self._processor = None

    # -- identity: the spec keeps the user's spelling, the key adds the weights' fingerprint ---------------
    @property
    def spec(self) -> str:
        diff = {k: v for k, v in sorted(self.settings.items()) if k != "model" and v != self.defaults[k]}
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in diff.items())
        return f"hf:{self.settings['model']}" + (f"({inner})" if inner else "")

    @property
    def key(self) -> str:
        files = sorted((p.relative_to(self.folder()).as_posix(), p.stat().st_size, p.stat().st_mtime_ns)
                       for p in self.folder().rglob("*") if p.is_file())
        weights = hashlib.sha256(json.dumps(files).encode()).hexdigest()[:8]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(self.settings["model"]).name)[:40]
        return super().key.replace("hf-", f"hf-{stem}-", 1) + f"-{weights}"

    @property
    def modality(self) -> str:  # type: ignore[override]
        m = self.settings["modality"]
        m = detect_modality(self.folder()) if m == "auto" else m
        return "face" if m == "vision" else m

    @property
    def uses_transcripts(self) -> bool:
        return self.modality == "text" and self.settings["asr_fallback"]

    def folder(self) -> Path:
        if self._folder is None:
            self._folder = resolve_model_dir(self.settings["model"])
        return self._folder

    def shape(self):
        d = self.hidden_size()
        return (2 * d,) if self.settings["pool"] == "mean+std" else (d,)

    def hidden_size(self) -> int:
        offline_hub()
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(str(self.folder()))
        for sub in ("audio_config", "vision_config", "text_config"):
            if self.modality in sub or (self.modality == "face" and sub == "vision_config"):
                cfg = getattr(cfg, sub, None) or cfg
        for attr in ("hidden_size", "d_model", "hidden_dim"):
            if getattr(cfg, attr, None):
                return int(getattr(cfg, attr))
        raise EmotuneError(f"hf:{self.settings['model']}: cannot read the hidden size from its config")

    # -- inputs -------------------------------------------------------------------------------------
    def source(self, sample, root, transcripts):
        if self.modality == "text":
            return text_source(sample, transcripts, self.settings["asr_fallback"])
        return super().source(sample, root, transcripts)

    # -- model --------------------------------------------------------------------------------------
    def load(self):
        if self._model is None:
            offline_hub()
            import transformers as tf

            path = str(self.folder())
            model = tf.AutoModel.from_pretrained(path)
            if self.modality == "face" and hasattr(model, "vision_model"):
                model = model.vision_model  # dual encoders (CLIP-like): the image tower only
            elif self.modality == "audio" and getattr(model.config, "is_encoder_decoder", False):
                model = model.get_encoder()  # Whisper-like: the encoder only
            self._model = model.eval()
            if self.modality == "audio":
                self._processor = tf.AutoFeatureExtractor.from_pretrained(path)
            elif self.modality == "face":
                self._processor = tf.AutoImageProcessor.from_pretrained(path)
            else:
                self._processor = tf.AutoTokenizer.from_pretrained(path)
        return self._model, self._processor

    def _hidden(self, inputs) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        model, _ = self.load()
        with torch.no_grad():  # never a global switch: it would leak into training in the same process
            out = model(**inputs, output_hidden_states=True)
        states = out.hidden_states[self.settings["layer"]] if out.hidden_states is not None else out.last_hidden_state
        mask = inputs.get("attention_mask")
        return states.float().numpy(), (mask.numpy() if mask is not None and mask.shape[:2] == states.shape[:2] else None)

    def _pool(self, states: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        if self.settings["pool"] == "cls":
            return states[0]
        real = states if mask is None else states[mask.astype(bool)]
        mean = real.mean(0)
        return np.concatenate([mean, real.std(0)]) if self.settings["pool"] == "mean+std" else mean

    # -- compute ------------------------------------------------------------------------------------
    def compute_batch(self, sources: list[Source]):
        if self.modality == "text":
            _, tok = self.load()
            inputs = tok([s.text for s in sources], padding=True, truncation=True, return_tensors="pt")
            states, mask = self._hidden(inputs)
            return [Output(self._pool(states[i], None if mask is None else mask[i]).astype(np.float32)) for i in range(len(sources))]
        return super().compute_batch(sources)  # audio and vision: one sample at a time

    def compute(self, source: Source) -> Output:
        _, proc = self.load()
        if self.modality == "audio":
            sr = int(getattr(proc, "sampling_rate", 16000))
            audio = load_audio(source.path, sr)[: int(self.settings["max_seconds"] * sr)]
            states, _ = self._hidden(proc(audio, sampling_rate=sr, return_tensors="pt"))
            return Output(self._pool(states[0], None).astype(np.float32))
        images = []
        for _, frame in sample_frames(source.path, self.settings["frames"]):
            boxes = detect_faces(frame) if self.settings["face"] else []
            images.append((crop_face(frame, boxes[0]) if boxes else frame)[..., ::-1].copy())  # BGR -> RGB
        states, _ = self._hidden(proc(images=images, return_tensors="pt"))
        per_frame = np.stack([self._pool(s, None) for s in states])
        return Output(per_frame.mean(0).astype(np.float32))


