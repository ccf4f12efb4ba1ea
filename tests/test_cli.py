"""The `emotune` command line: overrides may follow flags, and every argument is documented with its default."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emotune.cli import build_parser, mentions_default, shown_default

ROOT = Path(__file__).resolve().parents[1]


def _walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(verb path, parser) for the parser and every sub-parser below it, each once."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, sub in action.choices.items():
                if id(sub) not in seen:  # aliases map to the same parser
                    seen.add(id(sub))
                    yield from _walk(sub, (*path, name))


PARSERS = {" ".join(path) or "emotune": p for path, p in _walk(build_parser())}


def _expanded_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    return parser._get_formatter()._expand_help(action)


@pytest.mark.parametrize("verb", sorted(PARSERS))
def test_every_argument_has_help_that_shows_its_default(verb):
    parser = PARSERS[verb]
    page = re.sub(r"\s+", "", parser.format_help())
    problems = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        name = "/".join(action.option_strings) or action.metavar or action.dest
        if not (action.help or "").strip() or action.help is argparse.SUPPRESS:
            problems.append(f"{name}: no help text")
            continue
        text = _expanded_help(parser, action)
        assert re.sub(r"\s+", "", text) in page  # what is checked below is what --help prints
        default = shown_default(action)
        if default is not None and not mentions_default(text, default):
            problems.append(f"{name}: default {default!r} not shown in {text!r}")
        if default is not None and text.count(f"(default: {default})") > 1:
            problems.append(f"{name}: default shown twice in {text!r}")
    assert not problems, f"emotune {verb}: " + "; ".join(problems)


def test_defaults_are_shown_once_and_not_for_flags_without_a_value():
    text = " ".join(PARSERS["eval"].format_help().split())
    assert "(default: score)" in text and "(default: test)" in text
    ablate = " ".join(PARSERS["ablate"].format_help().split())
    assert ablate.count("(default: runs/ablations)") == 1 and "(default: 1.0)" in ablate
    assert "default: None" not in ablate and "default: False" not in " ".join(PARSERS["instruct"].format_help().split())


@pytest.mark.parametrize("argv,expected", [
    (["instruct", "CFG", "a=1", "--no-progress", "b=2"], ["a=1", "b=2"]),
    (["instruct", "--no-progress", "CFG", "a=1", "b=2"], ["a=1", "b=2"]),
    (["instruct", "CFG", "--no-progress", "a=1"], ["a=1"]),
    (["train", "CFG", "a=1", "b=2"], ["a=1", "b=2"]),
    (["eval", "RUN", "a=1", "--mode", "generate", "b=2", "--split", "val", "c=3"], ["a=1", "b=2", "c=3"]),
    (["cv", "CFG", "a=1", "--jobs", "2", "b=2", "--executor", "local"], ["a=1", "b=2"]),
    (["ablate", "GRID", "--out", "o", "a=1", "--jobs", "2", "b=2"], ["a=1", "b=2"]),
    (["features", "CFG", "a=1", "--check", "b=2", "--workers", "2", "c=3"], ["a=1", "b=2", "c=3"]),
])
def test_overrides_may_come_before_between_and_after_flags(argv, expected):
    args = build_parser().parse_args(argv)
    assert args.overrides == expected  # in the order given: a later override of the same key wins
    first_positional = {"eval": "run_dir", "ablate": "grid"}.get(argv[0], "config")
    assert getattr(args, first_positional) in ("CFG", "RUN", "GRID")
    if argv[0] == "eval":
        assert args.mode == "generate" and args.split == "val"
    if argv[0] == "cv":
        assert args.jobs == 2 and args.executor == "local"


def test_a_stray_word_or_unknown_flag_is_still_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["cv", "CFG", "a=1", "--no-such-flag", "b=2"])
    assert exit_.value.code == 2 and "unrecognized arguments: --no-such-flag" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["report", "DIR", "extra"])
    assert "unrecognized arguments: extra" in capsys.readouterr().err


def _eval_run_dir(tmp_path: Path) -> str:
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(ROOT / "configs" / "quickstart.yaml", run / "config.yaml")
    return str(run)


@pytest.mark.parametrize("verb", ["train", "eval", "cv", "ablate", "features", "instruct"])
def test_an_override_after_a_flag_reaches_the_recipe_through_the_real_cli(verb, tmp_path):
    """The last override names a key no recipe has: the one-line error naming it proves the override after the
    flag was read as an override (argparse would have refused it as an unrecognised argument)."""
    cmds = {
        "train": ["train", "configs/quickstart.yaml", "train.epochs=1", "nope.after=1"],
        "eval": ["eval", _eval_run_dir(tmp_path) if verb == "eval" else "", "--mode", "score", "nope.after=1"],
        "cv": ["cv", "configs/quickstart.yaml", "train.epochs=1", "--jobs", "1", "nope.after=1"],
        "ablate": ["ablate", "configs/ablations/modalities.yaml", "train.epochs=1", "--out", str(tmp_path / "abl"),
                   "nope.after=1"],
        "features": ["features", "configs/quickstart.yaml", "features.workers=1", "--check", "nope.after=1"],
        "instruct": ["instruct", "configs/instruct_ravdess.yaml", "instruct.limit=1", "--no-progress",
                     "instruct.nope=1"],
    }
    done = subprocess.run([sys.executable, "-m", "emotune.cli", *cmds[verb]], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "unrecognized arguments" not in done.stderr and "Traceback" not in done.stderr
    wanted = "unknown key 'instruct.nope'" if verb == "instruct" else "unknown key 'nope'"
    assert done.stderr.strip().splitlines()[-1].startswith("error: ") and wanted in done.stderr
    assert not (tmp_path / "abl").exists()


def test_a_closed_pipe_is_not_a_traceback(tmp_path):
    """`emotune data stats M | head`: the reader leaves early; emotune exits quietly (141, like SIGPIPE)."""
    import subprocess
    import sys

    from emotune.data.sample import Sample, write_manifest

    samples = [Sample(id=f"s{i}", dataset="table", label="happy", text=f"text {i}", split="train") for i in range(50)]
    manifest = tmp_path / "m.jsonl"
    write_manifest(manifest, "table", tmp_path, "ravdess", "all", samples)
    proc = subprocess.Popen([sys.executable, "-m", "emotune.cli", "data", "stats", str(manifest)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


def test_quiet_silences_progress_but_not_results(tmp_path):
    """`emotune --quiet cv ...`: no progress lines or bars from the CV or its fold processes; the result prints."""
    import subprocess
    import sys

    from emotune.data.sample import Sample, write_manifest

    rng = __import__("numpy").random.default_rng(0)
    words = {"happy": "wonderful great joy", "sad": "terrible loss tears"}
    samples = [Sample(id=f"s{i}", dataset="table", label=lab, text=" ".join(rng.permutation(words[lab].split())),
                      group=f"g{i % 3}") for i, lab in enumerate(["happy", "sad"] * 15)]
    write_manifest(tmp_path / "m.jsonl", "table", tmp_path, "ravdess", "all", samples)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: q\nrun_dir: {tmp_path}/run\ndata: {{dataset: table, root: {tmp_path}, manifest: {tmp_path}/m.jsonl, "
                      "protocol: group_kfold, folds: 3}\nfeatures: {extractors: [minilm]}\nmodel: {kind: baseline_lr, inputs: [minilm]}\n")
    out = subprocess.run([sys.executable, "-m", "emotune.cli", "--quiet", "cv", str(recipe)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 folds: WA" in out.stderr, out.stderr  # the result
    assert "train " not in out.stderr and "summary written" not in out.stderr and "%|" not in out.stderr, out.stderr


def test_prepare_help_lists_every_adapters_options(capsys):
    import pytest as _pytest

    from emotune.cli import main

    with _pytest.raises(SystemExit):
        main(["prepare", "--help"])
    out = capsys.readouterr().out
    assert "media_dir" in out and "unlabelled" in out and "label_field" in out and "holdout" in out


def test_quiet_does_not_outlive_the_call(tmp_path):
    """An in-process `main(["--quiet", ...])` (or a verb's own --quiet) leaves no later call quiet."""
    import os

    from emotune.cli import main
    from emotune.data.sample import Sample, write_manifest

    write_manifest(tmp_path / "m.jsonl", "table", tmp_path, "ravdess", "all",
                   [Sample(id="a", dataset="table", label="happy", text="x")])
    assert main(["--quiet", "data", "stats", str(tmp_path / "m.jsonl")]) == 0
    assert "EMOTUNE_QUIET" not in os.environ and "TQDM_DISABLE" not in os.environ
    main(["features", "--manifest", str(tmp_path / "m.jsonl"), "--extractors", "minilm", "--quiet",
          "--cache-dir", str(tmp_path / "cache")])
    assert "EMOTUNE_QUIET" not in os.environ
