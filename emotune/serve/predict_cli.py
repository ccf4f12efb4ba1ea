"""CLI verbs `predict` (one input → JSON on stdout) and `demo` (the Gradio app)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict the emotion of one video / audio / image / text with a trained run",
                       description="Run a trained run on one raw input and print JSON: label, probability per class, "
                                   "the inputs the model used (and those it does not read), the transcript it "
                                   "read, the face crop it read, and each used input's contribution.")
    p.add_argument("run_dir", help="a run directory made by `emotune train`")
    p.add_argument("--video", help="video file (its audio track is used too)")
    p.add_argument("--audio", help="audio file")
    p.add_argument("--image", help="still image (face)")
    p.add_argument("--text", help="transcript or sentence (default: Whisper ASR of the audio, only when the run reads text)")
    p.add_argument("--explain", action="store_true", help="add the reasoning the model writes (emotion-LM runs trained with data.target=reasoning)")
    p.add_argument("--face-dir", help="folder for the face crop the model read (runs that read faces; default: not saved)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("demo", help="web demo of a trained run (Gradio)",
                       description="Serve a Gradio app: upload or record a video, audio or image, see the emotion, its "
                                   "probabilities, the inputs the model used (the face and transcript only when "
                                   "the model reads them) and each input's contribution.")
    p.add_argument("run_dir", help="a run directory made by `emotune train` (the model the demo serves)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback; 0.0.0.0 exposes it)")
    p.add_argument("--port", type=int, default=7860, help="port of the web page")
    p.add_argument("--max-upload-mb", type=float, default=50, help="largest accepted upload")
    p.add_argument("--max-duration-s", type=float, default=300.0,
                   help="longest audio or video in seconds, read from its header (longer ones get a message)")
    p.add_argument("--long-clip-s", type=float, default=30.0,
                   help="clips longer than this are extracted in a separate low-priority process, one at a time, "
                        "so short clips never wait behind them (0: every clip in the server process)")
    p.add_argument("--concurrency", type=int, default=2, help="predictions running at once")
    p.add_argument("--queue-size", type=int, default=64, help="requests that may wait; more are refused")
    p.add_argument("--examples", help="folder of example clips with metadata.csv (default $EMOTUNE_DATA/mer2023_examples)")
    p.set_defaults(func=cmd_demo)


def cmd_predict(args: argparse.Namespace) -> int:
    import json

    from emotune.serve.predict import predict

    result = predict(args.run_dir, video=args.video, audio=args.audio, image=args.image, text=args.text,
                     explain=args.explain, face_dir=args.face_dir)
    print(json.dumps(result, indent=1, ensure_ascii=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from emotune.errors import EmotuneError
    from emotune.serve.demo import launch

    if args.max_upload_mb <= 0 or args.concurrency < 1 or args.queue_size < 1:
        raise EmotuneError("--max-upload-mb, --concurrency and --queue-size must be positive")
    if not args.max_duration_s > 0 or not args.long_clip_s >= 0:
        raise EmotuneError("--max-duration-s must be positive and --long-clip-s at least 0")
    launch(args.run_dir, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
           concurrency=args.concurrency, queue_size=args.queue_size,
           examples_dir=Path(args.examples) if args.examples else None,
           max_duration_s=args.max_duration_s, long_clip_s=args.long_clip_s)
    return 0
