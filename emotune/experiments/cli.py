"""CLI verbs of training and experiments: train, eval, cv, ablate."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("train", help="train one fold of a recipe (data.fold) and evaluate it",
                       description="Train a model on one fold of a recipe and evaluate it on the fold's test side.")
    p.add_argument("config", help="YAML recipe (configs/...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=3")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="re-evaluate a trained run (closed-set scoring or generation)",
                       description="Evaluate a trained run directory on a split of its fold.")
    p.add_argument("run_dir")
    p.add_argument("--split", default="test", choices=["test", "val", "train"])
    p.add_argument("--mode", default="score", choices=["score", "generate"],
                   help="score: probability of every label (no invalid answers); generate: free text + honest parser")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="evaluation-time overrides, e.g. eval.drop_inputs=[whisper]")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("cv", help="cross-validate a recipe: every fold from the same start, resumable",
                       description="Run every fold of the recipe's protocol (each from the same initial weights) and summarise.")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    p.add_argument("--jobs", type=int, default=1, help="folds trained in parallel")
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("ablate", help="run an ablation grid (settings x folds) into one table and figure",
                       description="Run a grid of config overrides over folds; skips what is done.")
    p.add_argument("grid", help="grid YAML (configs/ablations/...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every setting (e.g. train.epochs=1)")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default="runs/ablations", help="parent folder of the grid's outputs")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("quickstart", help="the main job on the built-in synthetic corpus, end to end",
                       description="Generate the synthetic corpus, extract features, cross-validate a baseline and the "
                                   "emotion LM speaker-independently, and write a report.")
    p.add_argument("--out", default="runs/quickstart")
    p.add_argument("--epochs", type=int, default=None, help="emotion LM epochs (default: the recipe's)")
    p.add_argument("--jobs", type=int, default=1, help="folds in parallel")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("report", help="Markdown + self-contained HTML report of a run, CV or grid directory",
                       description="Write report.md and report.html (tables, confusion matrices, per-class charts, commands, configs).")
    p.add_argument("dir", help="a run, CV or ablation-grid directory")
    p.set_defaults(func=cmd_report)


def cmd_train(args: argparse.Namespace) -> int:
    from emotune.experiments.run import train

    train(args.config, args.overrides)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from emotune.experiments.run import eval_run

    metrics = eval_run(args.run_dir, args.split, args.mode, args.overrides)
    keys = ("wa", "ua", "macro_f1", "weighted_f1", "invalid", "micro_f1")
    print(json.dumps({k: metrics[k] for k in keys if k in metrics}))
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from emotune.experiments.cv import cv

    cv(args.config, args.overrides, jobs=args.jobs)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from emotune.experiments.ablate import ablate

    ablate(args.grid, jobs=args.jobs, root=args.out, extra=args.overrides)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from emotune.evaluate.report import report

    md, page = report(args.dir)
    print(f"wrote {md} and {page}")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from emotune.experiments.quickstart import quickstart

    quickstart(args.out, args.epochs, args.jobs)
    return 0
