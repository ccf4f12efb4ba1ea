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
                       description="Evaluate a trained run directory on a split of its fold, or (--manifest) on "
                                   "another corpus: cross-corpus, scored on the classes the two label sets share.")
    p.add_argument("run_dir", help="a run directory made by `emotune train` (with --manifest also a CV directory: "
                                   "every fold's model)")
    p.add_argument("--split", default="test", choices=["test", "val", "train"], help="which side of the run's fold")
    p.add_argument("--mode", default="score", choices=["score", "generate"],
                   help="score: probability of every label (no invalid answers); generate: free text + honest parser")
    p.add_argument("--fold", help="score the test side of another fold of the protocol that has the same training "
                                  "and validation sides (e.g. official_test2 of a run trained on official_test1)")
    p.add_argument("--reuse", action="store_true",
                   help="generate mode: judge the texts an earlier generation saved in the same eval folder again "
                        "(new metrics, no new generation)")
    p.add_argument("--manifest", help="cross-corpus: score on every labelled sample of this other corpus's manifest "
                                      "(classes matched through the label sets' names and aliases)")
    p.add_argument("--map", action="append", default=[], metavar="OTHER=MODEL",
                   help="cross-corpus: map a class of the other corpus to a class of the model (repeatable)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="evaluation-time overrides, e.g. eval.drop_inputs=[whisper]")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("cross-corpus", help="score models of one corpus on others: a grid of (source, target) pairs",
                       description="Cross-validate (or reuse) each source, score every fold's model on each target "
                                   "corpus on the classes they share, and write one table.")
    p.add_argument("grid", help="grid YAML (configs/ablations/cross_corpus.yaml)")
    p.set_defaults(func=cmd_cross_corpus)

    p = sub.add_parser("cv", help="cross-validate a recipe: every fold from the same start, resumable",
                       description="Run every fold of the recipe's protocol (each from the same initial weights) and summarise.")
    p.add_argument("config", help="YAML recipe (configs/...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=3")
    add_executor_args(p)
    add_blind_arg(p)
    p.set_defaults(func=cmd_cv)

    p = sub.add_parser("ablate", help="run an ablation grid (settings x folds) into one table and figure",
                       description="Run a grid of config overrides over folds; skips what is done.")
    p.add_argument("grid", help="grid YAML (configs/ablations/...)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every setting (e.g. train.epochs=1)")
    add_executor_args(p)
    p.add_argument("--out", default="runs/ablations", help="parent folder of the grid's outputs")
    p.add_argument("--only", help="comma-separated settings to run (default: all of the grid's)")
    add_blind_arg(p)
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("fuse", help="late fusion of two CV runs (the `fusion` model), weights chosen on validation",
                       description="Pool two cross-validated models' class probabilities per fold, with the weight "
                                   "chosen on each fold's validation side; writes a CV folder (summary, predictions).")
    p.add_argument("cv_a", help="a CV directory made by `emotune cv` (e.g. the emotion LM)")
    p.add_argument("cv_b", help="another CV directory over the same folds (e.g. a head)")
    p.add_argument("-o", "--out", required=True, help="output CV folder of the fusion model")
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("ensemble", help="seed averaging: runs of one recipe (other seeds) read as one model",
                       description="Average the class probabilities of runs trained on the same split (e.g. seed=0, 1, 2 "
                                   "of one recipe), on the validation and test sides alike: nothing is chosen, so the "
                                   "validation figure can decide between the ensemble and its members.")
    p.add_argument("runs", nargs="+", help="run directories (`emotune train`) or CV directories (`emotune cv`)")
    p.add_argument("-o", "--out", required=True, help="output run (or CV) folder of the ensemble")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser("quickstart", help="the main job on the built-in synthetic corpus, end to end",
                       description="Generate the synthetic corpus, extract features, cross-validate a baseline and the "
                                   "emotion LM speaker-independently, and write a report.")
    p.add_argument("--out", default="runs/quickstart", help="folder of the corpus, features, runs and report")
    p.add_argument("--epochs", type=int, default=None, help="emotion LM epochs (default: the recipe's)")
    p.add_argument("--jobs", type=int, default=1, help="folds in parallel")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("report", help="Markdown + self-contained HTML report of a run, CV or grid directory",
                       description="Write report.md and report.html (tables, confusion matrices, per-class charts, commands, configs).")
    p.add_argument("dir", help="a run, CV or ablation-grid directory")
    p.set_defaults(func=cmd_report)


def add_blind_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--blind", action="store_true",
                   help="print validation figures only, so a rule comparing settings on validation is applied before "
                        "any test figure is seen (the test figures are still written: summary.json, table.md)")


def add_executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where the runs execute")
    g.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: processes on this machine; ray: one Ray task per run (needs requirements-ray.txt)")
    g.add_argument("--jobs", type=int, default=1, help="local: runs trained in parallel")
    g.add_argument("--address", default=None,
                   help="ray: cluster address (e.g. auto or ray://head:10001); unset: a local cluster for this command")
    g.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs each run requests")
    g.add_argument("--gpus-per-run", type=float, default=0.0, help="ray: GPUs each run requests")
    g.add_argument("--retries", type=int, default=1, help="ray: how often a failed run is tried again")


def executor_options(args: argparse.Namespace):
    from emotune.experiments.executor import ExecutorOptions

    return ExecutorOptions(kind=args.executor, jobs=args.jobs, address=args.address, cpus_per_run=args.cpus_per_run,
                           gpus_per_run=args.gpus_per_run, retries=args.retries)


def cmd_train(args: argparse.Namespace) -> int:
    from emotune.experiments.run import train

    train(args.config, args.overrides)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import json

    from emotune.experiments.run import eval_run

    if args.manifest:
        from emotune.errors import EmotuneError
        from emotune.experiments.cross_corpus import eval_cross, parse_maps

        if args.mode != "score" or args.split != "test":
            raise EmotuneError("--manifest scores the whole other corpus: --split and --mode do not apply")
        result = eval_cross(args.run_dir, args.manifest, parse_maps(args.map), args.overrides)
        print(json.dumps({k: (v["mean"] if isinstance(v, dict) and "mean" in v else v) for k, v in result.items()
                          if k in ("wa", "ua", "macro_f1", "weighted_f1", "n_scored", "models")}))
        return 0
    metrics = eval_run(args.run_dir, args.split, args.mode, args.overrides, fold_name=args.fold, reuse=args.reuse)
    keys = ("wa", "ua", "macro_f1", "weighted_f1", "invalid", "micro_f1")
    shown = {k: metrics[k] for k in keys if k in metrics}  # strict: an invalid generated answer counts as wrong
    if "lenient" in metrics:
        shown["lenient"] = {k: metrics["lenient"][k] for k in keys if k in metrics["lenient"]}
    if "reasoning" in metrics:
        shown["reasoning"] = {k: v for k, v in metrics["reasoning"].items() if not isinstance(v, (dict, list))}
    print(json.dumps(shown))
    return 0


def cmd_cross_corpus(args: argparse.Namespace) -> int:
    from emotune.experiments.cross_corpus import grid

    print(grid(args.grid))
    return 0


def cmd_cv(args: argparse.Namespace) -> int:
    from emotune.experiments.cv import cv

    cv(args.config, args.overrides, executor_options(args), blind=args.blind)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from emotune.experiments.ablate import ablate

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    ablate(args.grid, executor_options(args), root=args.out, extra=args.overrides, only=only, blind=args.blind)
    return 0


def cmd_ensemble(args: argparse.Namespace) -> int:
    from emotune.experiments.ensemble import ensemble

    ensemble(args.runs, args.out)
    return 0


def cmd_fuse(args: argparse.Namespace) -> int:
    from emotune.experiments.fuse import fuse

    fuse(args.cv_a, args.cv_b, args.out)
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
