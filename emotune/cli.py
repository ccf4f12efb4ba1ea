"""The `emotune` command: one verb per stage of the data flow. Thin: parse, then call the library.

Each stage registers its own verbs (`emotune/<stage>/cli.py: register(subparsers)`) and imports heavy
libraries only inside the command, so `emotune --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from emotune import __version__
from emotune.errors import EmotuneError

VERB_MODULES = (
    "emotune.data.cli",
    "emotune.features.cli",
    "emotune.experiments.cli",
    "emotune.serve.predict_cli",
    "emotune.serve.cli",
    "emotune.instruct.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emotune", description="Multimodal emotion recognition and reasoning with LLMs.")
    parser.add_argument("--version", action="version", version=f"emotune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EmotuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
