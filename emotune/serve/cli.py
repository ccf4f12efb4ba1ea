"""The `emotune serve` verb: the HTTP API (OpenAI-compatible chat, and emotion prediction for a run)."""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import socket
import sys

DEFAULT_PORT = 8000


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="HTTP API: OpenAI-compatible chat with the LM, and /v1/emotion for a trained run",
        description="Serve the language model through an OpenAI-compatible API (/v1/chat/completions, /v1/models) "
                    "and, given a trained RUN_DIR, emotion prediction from uploaded media (/v1/emotion). "
                    "Binds to 127.0.0.1 unless told otherwise.")
    p.add_argument("run_dir", nargs="?", help="a trained run directory (enables /v1/emotion)")
    p.add_argument("--model", default=None,
                   help="chat LM: built-in name, Hugging Face id or local folder (default: the built-in SmolLM2-135M-Instruct)")
    p.add_argument("--model-id", default=None, help="the name clients use for the chat model (default: --model)")
    p.add_argument("--no-chat", action="store_true", help="serve /v1/emotion only (no LM loaded)")
    p.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16"],
                   help="LM weights; auto = bf16 only where bf16 matmuls are fast (GPUs, CPUs with AVX512-BF16/AMX)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (0 = any free port; the chosen one is printed)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' (default: $EMOTUNE_API_KEY; none if unset)")
    p.add_argument("--max-request-kb", type=int, default=1024, help="largest JSON request body (413 above)")
    p.add_argument("--max-upload-mb", type=int, default=50, help="largest /v1/emotion upload (413 above)")
    p.add_argument("--max-duration-s", type=float, default=300.0,
                   help="longest /v1/emotion audio or video in seconds, read from its header (413 above)")
    p.add_argument("--long-clip-s", type=float, default=30.0,
                   help="clips longer than this are extracted in a separate low-priority process, so short clips "
                        "never wait behind them (0: every clip in the server process)")
    p.add_argument("--queue-size", type=int, default=64, help="requests waiting or running at once (503 above)")
    p.add_argument("--max-batch", type=int, default=16, help="chat requests generated together in one batch")
    p.add_argument("--max-tokens-limit", type=int, default=1024, help="largest max_tokens a request may ask for")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for generation (default: half the cores, at most 8; more threads than free "
                        "cores slow generation down many times over)")
    p.add_argument("--faults", default=None, metavar="SPEC",
                   help="TESTING ONLY: make some chat replies fail, e.g. 'error=0.1,empty=0.1,malformed=0.1,slow=0.1' "
                        "or a cycle 'error,ok,empty' (default: $EMOTUNE_SERVE_FAULTS; off)")
    p.add_argument("--fault-seed", type=int, default=0, help="seed of the injected faults (with the fault options above)")
    p.add_argument("--slow-s", type=float, default=30.0, help="delay of a 'slow' fault in seconds")
    p.set_defaults(func=cmd_serve)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind_port(host: str, port: int, verb: str = "serve") -> socket.socket:
    """Bound before the model loads: the port (even a free one picked by --port 0) is ours at once, and
    clients that connect early wait in the backlog until the server accepts. A port that is taken is
    one line naming it and what to do, before seconds of model loading."""
    from emotune.errors import EmotuneError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise EmotuneError(f"port {port} on {host} is already in use (another emotune {verb} or another program): "
                               f"stop it, or choose a free port with --port N") from None
        if exc.errno == errno.EACCES:
            raise EmotuneError(f"not allowed to listen on port {port} on {host} (ports below 1024 need root): "
                               f"choose another with --port N") from None
        raise EmotuneError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (check --host and --port)") from None
    except (OverflowError, socket.gaierror) as exc:
        sock.close()
        raise EmotuneError(f"cannot listen on {host}:{port}: {exc} (check --host and --port)") from None
    sock.listen(128)
    return sock


def cmd_serve(args: argparse.Namespace) -> int:
    from emotune.errors import EmotuneError
    from emotune.serve.api import Limits, ServeState, create_app
    from emotune.serve.faults import FaultPlan

    api_key = args.api_key or os.environ.get("EMOTUNE_API_KEY") or None
    if not _is_loopback(args.host) and not api_key:
        print(f"warning: serving on {args.host} without an API key: anyone who can reach this address can use it",
              file=sys.stderr)
    if args.no_chat and not args.run_dir:
        raise EmotuneError("--no-chat leaves nothing to serve without a RUN_DIR")
    for name in ("max_request_kb", "max_upload_mb", "queue_size", "max_batch", "max_tokens_limit"):
        if getattr(args, name) < 1:
            raise EmotuneError(f"--{name.replace('_', '-')} must be at least 1")
    if not args.max_duration_s > 0 or not args.long_clip_s >= 0:
        raise EmotuneError("--max-duration-s must be positive and --long-clip-s at least 0")
    faults = FaultPlan(args.faults if args.faults is not None else os.environ.get("EMOTUNE_SERVE_FAULTS", ""),
                       seed=args.fault_seed, slow_s=args.slow_s)
    limits = Limits(max_request_bytes=args.max_request_kb * 1024, max_upload_bytes=args.max_upload_mb << 20,
                    max_duration_s=args.max_duration_s, long_clip_s=args.long_clip_s, queue_size=args.queue_size,
                    max_tokens=args.max_tokens_limit, default_max_tokens=min(256, args.max_tokens_limit))
    sock = bind_port(args.host, args.port)

    state = ServeState(model_id=None, limits=limits, faults=faults, api_key=api_key)
    if not args.no_chat:
        from emotune.model.backbone import DEFAULT_BACKBONE, load_backbone
        from emotune.model.precision import resolve
        from emotune.serve.generation import Generator

        name = args.model or DEFAULT_BACKBONE
        model, tokenizer = load_backbone(name, resolve(args.dtype))
        threads = args.threads or max(1, min(8, (os.cpu_count() or 2) // 2))
        state.generator = Generator(model, tokenizer, max_batch=args.max_batch, threads=threads)
        state.model_id = args.model_id or name
    if args.run_dir:
        from emotune.serve.predict import load_predictor

        state.predictor = load_predictor(args.run_dir)

    import uvicorn

    app = create_app(state)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    what = [f"chat model '{state.model_id}'"] if state.model_id else []
    if state.predictor is not None:
        what.append(f"emotion run {args.run_dir}")
    if faults.active:
        print(f"warning: fault injection is ON ({faults.spec}): some replies fail on purpose", file=sys.stderr)
    print(f"emotune serve: listening on http://{shown}:{port}/v1 ({', '.join(what)})", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
