"""The `emotune` command: one verb per stage of the data flow. Thin: parse, then call the library.

Each stage registers its own verbs (`emotune/<stage>/cli.py: register(subparsers)`) and imports heavy
libraries only inside the command, so `emotune --help` stays fast. Every verb's parser is an
`EmotuneParser`: its help shows each option's default, and `key=value` overrides may come before,
between and after the flags (`emotune train CFG a=1 --flag b=2`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from emotune import __version__
from emotune.errors import EmotuneError
from emotune.process import scoped_env

VERB_MODULES = (
    "emotune.data.cli",
    "emotune.features.cli",
    "emotune.experiments.cli",
    "emotune.experiments.combine",
    "emotune.serve.predict_cli",
    "emotune.serve.cli",
    "emotune.instruct.cli",
)


def shown_default(action: argparse.Action):
    """The default worth printing in --help, or None (no default, False, an empty list, suppressed)."""
    d = action.default
    if d is None or d is False or d is argparse.SUPPRESS or (isinstance(d, (list, tuple)) and not d):
        return None
    return d


def mentions_default(help_text: str, default) -> bool:
    """Whether `help_text` already says 'default[:] <value>' (1.0 may be written 1)."""
    values = {str(default)}
    if isinstance(default, float) and default.is_integer():
        values.add(str(int(default)))
    return any(re.search(rf"default:?\s+{re.escape(v)}(?![\w.])", help_text) for v in values)


class ShowDefaults(argparse.HelpFormatter):
    """Appends '(default: X)' to an argument's help unless the help already states that default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = shown_default(action)
        if default is None or "%(default)" in text or mentions_default(text, default):
            return text
        return f"{text} (default: %(default)s)".strip()


class EmotuneParser(argparse.ArgumentParser):
    """An ArgumentParser whose help shows defaults and whose `key=value ...` positional may follow flags."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        if not issubclass(formatter_class, ShowDefaults):  # keep a verb's own layout (e.g. raw description)
            formatter_class = type(f"ShowDefaults{formatter_class.__name__}", (ShowDefaults, formatter_class), {})
        super().__init__(*args, formatter_class=formatter_class, **kwargs)
        self._intermixing = False

    def _intermixed(self) -> bool:
        # Plain argparse ends a `nargs="*"` positional at the first flag, so `CFG a=1 --flag b=2` left b=2
        # unrecognised. Intermixed parsing reads the flags first, then every positional string in order.
        return (self._subparsers is None and not self._intermixing
                and any(a.nargs == argparse.ZERO_OR_MORE for a in self._get_positional_actions()))

    def parse_known_args(self, args=None, namespace=None):
        if not self._intermixed():
            return super().parse_known_args(args, namespace)
        self._intermixing = True  # parse_known_intermixed_args calls parse_known_args itself
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._intermixing = False


def build_parser() -> argparse.ArgumentParser:
    parser = EmotuneParser(prog="emotune", description="Multimodal emotion recognition and reasoning with LLMs.")
    parser.add_argument("--version", action="version", version=f"emotune {__version__}")
    parser.add_argument("-q", "--quiet", dest="quiet_all", action="store_true",
                        help="no progress bars or progress lines, for every verb and the fold processes it starts "
                             "(errors and final results still print)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="VERB", parser_class=EmotuneParser,
                                help="one stage of the data flow; `emotune VERB --help` describes it")
    for name in VERB_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Environment, not a flag passed along: CV folds and feature workers are separate processes. Scoped,
    # so an in-process call (tests, notebooks) does not leave every later call quiet.
    quiet = {"EMOTUNE_QUIET": "1", "TQDM_DISABLE": "1"} if args.quiet_all else {}
    with scoped_env(quiet):
        try:
            return int(args.func(args) or 0)
        except EmotuneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # The reader went away (`emotune data stats M | head`): not an error of ours. Point stdout at
            # /dev/null so the interpreter's final flush does not raise again, and exit as `head` expects.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


if __name__ == "__main__":
    sys.exit(main())
