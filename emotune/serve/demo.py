"""`emotune demo RUN_DIR`: a Gradio app around `predict` — upload or record, see the emotion and why.

Uploads are checked before any model sees them (size, emptiness, ffprobe for audio/video, PIL for
images, duration from the header); every failure reaches the user as a message, never as a crashed
worker. A queue bounds how many requests run at once and how many may wait; a long recording is
extracted in its own low-priority process, one at a time, so it never holds up short clips. The page
shows only what the run's model reads: a face or transcript it does not read is not shown, and inputs
given but not read are labelled "not used by this model". The server listens on 127.0.0.1 unless told
otherwise; its uploads live in a temporary folder removed when it stops.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import os
import signal
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any, Optional

from emotune.errors import EmotuneError
from emotune.media.kinds import accepted_for
from emotune.serve.duration import DEFAULT_LONG_CLIP_S, DEFAULT_MAX_DURATION_S, TooLong

log = logging.getLogger("emotune.demo")

EXAMPLES_DIR = "mer2023_examples"  # under $EMOTUNE_DATA
FFPROBE_TIMEOUT_S = 15


class UploadError(EmotuneError):
    """An upload the demo refuses; the message is shown to the user as is."""


# -- upload checks --------------------------------------------------------------------------------------

def check_upload(path: str | Path, kind: str, max_bytes: int) -> Path:
    """The path of an acceptable `kind` ('video' | 'audio' | 'image') file, or UploadError saying why not."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise UploadError(f"{kind} '{name}': the upload did not arrive (no file)")
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"{kind} '{name}' is empty (0 bytes)")
    if size > max_bytes:
        raise UploadError(f"{kind} '{name}' is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    allowed = accepted_for(kind)
    if path.suffix.lower() not in allowed:
        raise UploadError(f"{kind} '{name}': type '{path.suffix or '(none)'}' is not accepted "
                          f"(accepted: {', '.join(sorted(allowed))})")
    if kind == "image":
        _check_image(path)
    else:
        _check_media(path, kind)
    return path


def _check_image(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()  # reads the whole file; catches truncation and non-images under an image name
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadError(f"image '{path.name}' is not a readable image ({_short(exc, path)})") from None
    except Image.DecompressionBombError:
        raise UploadError(f"image '{path.name}' is too large in pixels") from None


def _check_media(path: Path, kind: str) -> None:
    """ffprobe must parse the container and find the stream this input needs."""
    try:
        proc = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type", "-of", "json", str(path)],
            capture_output=True, text=True, timeout=FFPROBE_TIMEOUT_S)
    except FileNotFoundError:
        raise UploadError("ffprobe is not installed on the server (it is part of ffmpeg)") from None
    except subprocess.TimeoutExpired:
        raise UploadError(f"{kind} '{path.name}': ffprobe could not read it within {FFPROBE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise UploadError(f"{kind} '{path.name}' is not a readable {kind} file "
                          f"(ffprobe: {_short(lines[-1] if lines else 'failed', path)})")
    try:
        types = {s.get("codec_type") for s in json.loads(proc.stdout or "{}").get("streams", [])}
    except json.JSONDecodeError:
        types = set()
    need = "video" if kind == "video" else "audio"
    if need not in types:
        raise UploadError(f"{kind} '{path.name}' has no {need} stream")


def _short(exc: Any, path: Optional[Path] = None) -> str:
    """First line of a message, without the server-side path of the upload (the user knows the name)."""
    text = str(exc)
    if path is not None:
        text = text.replace(str(path), path.name)
        text = text.removeprefix(path.name).lstrip(" :'")
    lines = text.strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


# -- examples -----------------------------------------------------------------------------------------

def find_examples(folder: Optional[Path]) -> tuple[list[list], list[str]]:
    """[video, audio, image, transcript] rows for the labelled clips listed in the folder's metadata.csv,
    and a caption per row naming the clip's annotated emotion."""
    rows, captions = [], []
    if folder is None or not (folder / "metadata.csv").is_file():
        return rows, captions
    with open(folder / "metadata.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            clip = folder / (row.get("file") or "")
            if row.get("label_from_docs") and clip.is_file():
                rows.append([str(clip), None, None, row.get("english_subtitle_from_app_py") or ""])
                captions.append(f"{clip.stem} (annotated: {row['label_from_docs']})")
    return rows, captions


def default_examples_dir() -> Optional[Path]:
    home = os.environ.get("EMOTUNE_DATA")
    return Path(home) / EXAMPLES_DIR if home else None


# -- the app --------------------------------------------------------------------------------------------

def _file_path(payload) -> Optional[str]:
    """The server-side path inside a component's raw payload (events run with preprocess=False)."""
    if not payload:
        return None
    if isinstance(payload, dict) and "video" in payload:  # gr.Video sends {"video": FileData, "subtitles": ...}
        payload = payload["video"]
    if isinstance(payload, dict):
        return payload.get("path")
    return str(payload)


def _read_image(path: Optional[str]):
    """The face crop as an RGB array (read before its temporary folder goes; Gradio keeps its own copy)."""
    if not path:
        return None
    import cv2

    image = cv2.imread(path)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def used_markdown(result: dict) -> str:
    """What the model read for this prediction, and what was given but is not read by this model."""
    def line(u: dict) -> str:
        read_by = u["features"] + (["the LM's prompt"] if u.get("in_prompt") else [])
        return f"{u['input']} from {u['from']} (read by {', '.join(read_by)})"

    lines = ["**Used by the model:** " + ("; ".join(line(u) for u in result["used"]) or "nothing")]
    for name, reason in result["not_used"].items():
        lines.append(f"**{html.escape(name)}:** {html.escape(reason)}")
    return "  \n".join(lines)


def _input_labels(info: dict) -> dict[str, str]:
    face, audio, text = info["reads_face"], info["reads_audio"], info["reads_text"]
    video = ("Video (frames and sound are used)" if face and audio else
             "Video (only its frames are used)" if face else
             "Video (only its sound is used: this model reads no faces)" if audio or text else
             "Video — not used by this model")
    return {
        "video": video,
        "audio": "Audio" if audio or text else "Audio — not used by this model (it reads no audio)",
        "image": "Image (face)" if face else "Image — not used by this model (it reads no faces)",
        "text": ("Transcript (optional; Whisper transcribes English speech when empty)" if text else
                 "Text — not used by this model (it reads no text)"),
    }


def build_app(run_dir: str | Path, max_upload_mb: float = 50, examples_dir: Optional[Path] = None,
              max_duration_s: float = DEFAULT_MAX_DURATION_S, long_clip_s: float = DEFAULT_LONG_CLIP_S):
    import gradio as gr
    import pandas as pd

    from emotune.serve.predict import load_predictor

    predictor = load_predictor(run_dir)
    # One long recording at a time: a second would wait holding one of the queue's few slots.
    predictor.serve_limits(max_duration_s, long_clip_s, long_pending=1)
    info = predictor.describe()
    max_bytes = int(max_upload_mb * 2**20)
    examples, captions = find_examples(examples_dir if examples_dir is not None else default_examples_dir())
    labels_for = _input_labels(info)

    def analyse(video, audio, image, text, explain):
        try:
            paths = {}
            for kind, payload in (("video", video), ("audio", audio), ("image", image)):
                p = _file_path(payload)
                if p:
                    paths[kind] = str(check_upload(p, kind, max_bytes))
            if not paths and not (text or "").strip():
                raise UploadError("Upload or record a video, an audio clip or an image, or type a transcript.")
            # The face crop is written to a folder of this request only, read back, and removed with it.
            with tempfile.TemporaryDirectory(prefix="emotune_demo_") as tmp:
                result = predictor.predict(**paths, text=text, explain=bool(explain), face_dir=tmp)
                face = _read_image(result["face"])
        except TooLong as exc:
            raise gr.Error(html.escape(str(exc), quote=False), title="Recording too long", print_exception=False) from None
        except EmotuneError as exc:
            raise gr.Error(html.escape(str(exc), quote=False), title="Cannot analyse this input", print_exception=False) from None
        except Exception as exc:  # a bug or a decoder crash: the user gets a message, the server keeps serving
            log.exception("prediction failed")
            raise gr.Error(html.escape(f"prediction failed: {type(exc).__name__}: {_short(exc)}", quote=False)) from None
        for name, reason in result["missing"].items():
            gr.Warning(html.escape(f"{name}: {reason}", quote=False))
        return _render(result, face)

    def _render(result: dict, face):
        probs = result["probabilities"]
        labels = predictor.label_names
        chart = pd.DataFrame({"emotion": labels, "probability": [probs[n] for n in labels]})
        rows = [[m, ", ".join(c["features"] + (["transcript"] if c.get("transcript") else [])), c["label"],
                 round(c["probabilities"][result["label"]], 3), round(c["drop"], 3)]
                for m, c in result["contributions"].items()]
        contrib = pd.DataFrame(rows, columns=["left out", "features", "prediction", f"p({result['label']})", "drop"])
        explanation = result.get("explanation") or ("" if info["explains"] else
                                                     predictor.why_no_explanation[0].upper() + predictor.why_no_explanation[1:] + ".")
        if result.get("explanation_unsupported"):
            explanation += "\n(Not in the model's inputs: " + "; ".join(c["text"] for c in result["explanation_unsupported"]) + ")"
        transcript = ""
        if result["transcript"]:
            transcript = result["transcript"] + (" (Whisper ASR)" if result["transcript_source"] == "asr" else "")
        # The run is named, not located on the server's disk; the crop is shown as an image.
        raw = {**{k: v for k, v in result.items() if k != "face"}, "face": face is not None,
               "run": {k: v for k, v in result["run"].items() if k != "dir"}}
        return (probs, chart, face, transcript, explanation, contrib, used_markdown(result), raw)

    title = f"emotune demo — {info['name']} ({info['kind']} on {', '.join(info['inputs'])})"
    # Uploads and outputs in Gradio's cache are deleted an hour after they were made.
    with gr.Blocks(title="emotune demo", analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown(f"## {html.escape(title)}\n{html.escape(info['summary'])} Classes: {', '.join(info['labels'])}. "
                    f"Uploads up to {max_upload_mb:g} MB and {max_duration_s:g} s; video and audio are checked with "
                    f"ffprobe, images with PIL.", elem_id="model-reads")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label=labels_for["video"], sources=["upload", "webcam"], elem_id="in-video")
                audio = gr.Audio(label=labels_for["audio"], sources=["upload", "microphone"], type="filepath",
                                 elem_id="in-audio")
                image = gr.Image(label=labels_for["image"], sources=["upload", "webcam"], type="filepath", elem_id="in-image")
                text = gr.Textbox(label=labels_for["text"], lines=2, elem_id="in-text", interactive=info["reads_text"])
                explain = gr.Checkbox(label="Explain (emotion-LM runs trained on reasoning)", value=info["explains"],
                                      interactive=info["explains"])
                button = gr.Button("Analyse", variant="primary", elem_id="analyse")
            with gr.Column():
                label = gr.Label(label="Predicted emotion", num_top_classes=3, elem_id="out-label")
                # No empty DataFrame as the initial value: Vega keeps the empty domain and draws no bars.
                chart = gr.BarPlot(None, x="emotion", y="probability", y_lim=[0, 1], sort=list(info["labels"]),
                                   label="Probability per class", elem_id="out-chart")
                used = gr.Markdown(elem_id="out-used")
                # A face or transcript the model does not read is not shown at all.
                face = gr.Image(label="Face the model read (a video's peak frame, or the image)", interactive=False, elem_id="out-face",
                                visible=info["reads_face"])
                transcript = gr.Textbox(label="Transcript the model read", interactive=False, elem_id="out-transcript",
                                        visible=info["reads_text"])
                explanation = gr.Textbox(label="Explanation", interactive=False, lines=2, elem_id="out-explanation")
                contrib = gr.Dataframe(label="Contribution of each input (prediction with it left out)",
                                       interactive=False, elem_id="out-contrib")
                with gr.Accordion("Raw output (JSON)", open=False):
                    raw = gr.JSON(label="Raw output", elem_id="out-json")
        button.click(analyse, [video, audio, image, text, explain],
                     [label, chart, face, transcript, explanation, contrib, used, raw],
                     api_name="analyse", preprocess=False)
        if examples:
            gr.Examples(examples, [video, audio, image, text], example_labels=captions,
                        label="MER2023 clips (Chinese speech; the English subtitle is the transcript)")
    return app


def launch(run_dir: str | Path, host: str = "127.0.0.1", port: int = 7860, max_upload_mb: float = 50,
           concurrency: int = 2, queue_size: int = 64, examples_dir: Optional[Path] = None,
           max_duration_s: float = DEFAULT_MAX_DURATION_S, long_clip_s: float = DEFAULT_LONG_CLIP_S) -> None:
    from emotune.serve.cli import bind_port

    bind_port(host, port, "demo").close()  # a taken port is one clear line, before the model loads
    # Gradio's upload cache goes into a folder of this process, removed when it stops (Ctrl-C or SIGTERM);
    # a folder the user named with GRADIO_TEMP_DIR is theirs and stays. Set before gradio is imported:
    # some of its modules read the variable at import time.
    own = None if os.environ.get("GRADIO_TEMP_DIR") else tempfile.TemporaryDirectory(prefix="emotune_demo_")
    if own is not None:
        os.environ["GRADIO_TEMP_DIR"] = own.name
    restore = _stop_on_sigterm()
    predictor = None
    try:
        from emotune.serve.predict import load_predictor

        predictor = load_predictor(run_dir)
        app = build_app(run_dir, max_upload_mb, examples_dir, max_duration_s, long_clip_s)
        # The queue: `concurrency` predictions run at once (a 2-core machine gains nothing from more);
        # up to `queue_size` wait, and further requests are told the queue is full.
        app.queue(default_concurrency_limit=concurrency, max_size=queue_size)
        try:
            app.launch(server_name=host, server_port=port, max_file_size=int(max_upload_mb * 2**20),
                       share=False, ssr_mode=False, show_error=True, quiet=False)
        except OSError as exc:
            if "empty port" in str(exc):  # taken between our check and Gradio's own bind
                raise EmotuneError(f"port {port} on {host} is already in use (another emotune demo or another "
                                   f"program): stop it, or choose a free port with --port N") from None
            raise
    finally:
        restore()
        if predictor is not None and predictor.lane is not None:
            predictor.lane.close()
        if own is not None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
            own.cleanup()


def _stop_on_sigterm():
    """SIGTERM stops the demo like Ctrl-C (Gradio closes its server, `launch` cleans up), instead of
    killing the process with its temporary folder left behind. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)
