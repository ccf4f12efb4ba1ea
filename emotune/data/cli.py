"""CLI verbs of the data stage: prepare, augment, splits, data stats."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def adapter_options_help() -> str:
    """Every adapter's --option keys (read from the adapters themselves, so the list cannot go stale)."""
    import importlib

    from emotune.data.sources import SOURCES

    lines = ["--option keys per adapter (each adapter's docstring says what they mean):"]
    for name in sorted(SOURCES):
        mod = importlib.import_module(SOURCES[name])
        keys = [*getattr(mod, "COLUMN_OPTIONS", ()), *getattr(mod, "OTHER_OPTIONS", ()), *getattr(mod, "OPTIONS", ())]
        keys = [k for k in dict.fromkeys(keys) if k != "trust_pickle"]  # --trust-pickle is its own flag
        lines.append(f"  {name:<13} {', '.join(keys) if keys else '(none)'}")
    lines.append("  (table: id ... split name columns of the file; label_set, required for table and image_folder, is a "
                 "built-in name or your own YAML file)")
    return "\n".join(lines)


def register(sub) -> None:
    from emotune.data.sources import SOURCES
    from emotune.vocab import PROTOCOLS

    p = sub.add_parser("prepare", help="turn a published dataset into a validated manifest (JSONL)",
                       description="Read a dataset as its authors publish it and write one validated manifest.",
                       epilog=adapter_options_help(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", choices=sorted(SOURCES), help="adapter name")
    p.add_argument("root", help="the dataset folder as published: absolute, or relative to $EMOTUNE_DATA "
                                "(recorded that way, so the manifest can be moved)")
    p.add_argument("-o", "--output", required=True, help="manifest to write (JSONL)")
    p.add_argument("--subset", default="all", help="named label subset, e.g. iemocap4 (default: all)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option, e.g. label_field=Sentiment (MELD) or text=utterance (table)")
    p.add_argument("--skip-invalid", action="store_true", help="write the valid rows and a report of the invalid ones")
    p.add_argument("--trust-pickle", action="store_true",
                   help="allow reading pickle files (they can run code: only for files you trust)")
    p.add_argument("--no-media-check", action="store_true", help="do not check that media files exist")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("augment", help="write speed-perturbed copies of a manifest's audio, for training (data.augment)",
                       description="Resample every audio clip by each factor (0.9: slower and lower; 1.1: faster and\n"
                                   "higher) into audio files beside a new manifest of copies. A run given it as\n"
                                   "data.augment adds the copies of its training ids to the training side only.",
                       epilog="example:\n  emotune augment runs/manifests/ravdess.jsonl --speed 0.9 1.1 "
                              "-o runs/manifests/ravdess_speed.jsonl",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="manifest written by `emotune prepare`")
    p.add_argument("--speed", type=float, nargs="+", required=True, help="speed factors, e.g. 0.9 1.1")
    p.add_argument("-o", "--output", required=True, help="manifest of the copies to write (JSONL)")
    p.add_argument("--audio-dir", help="folder for the copies' audio (default: <output stem>_audio beside it)")
    p.set_defaults(func=cmd_augment)

    p = sub.add_parser("splits", help="write leakage-free folds (lists of ids) for a manifest",
                       description="Make the folds of a split protocol and check that no id or group leaks.")
    p.add_argument("manifest", help="manifest written by `emotune prepare`")
    p.add_argument("--protocol", required=True, choices=PROTOCOLS,
                   help="logo: one group out; group_kfold: k folds of whole groups; official: the dataset's "
                        "own train/dev/test; stratified_kfold: k folds balanced by label (no groups); fold_file: "
                        "the folds of --fold-file; emobox: the EmoBox benchmark's partition (shipped for ravdess, iemocap)")
    p.add_argument("--fold-file", help="protocol fold_file: a CSV with columns id,fold (fold = the test fold of the "
                                       "id), or an EmoBox data/<dataset> folder (fold_<k>/<dataset>_*_fold_<k>.jsonl)")
    p.add_argument("--folds", type=int, default=6, help="number of folds (group_kfold, stratified_kfold)")
    p.add_argument("--val-groups", type=int, default=1, help="training groups held out for validation")
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="fraction of the training side held out for validation when there are no groups")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles (stratified folds, validation draw)")
    p.add_argument("-o", "--output", help="folder for the fold files (default: <manifest>.splits/<protocol>)")
    p.set_defaults(func=cmd_splits)

    p = sub.add_parser("data", help="inspect a manifest", description="Inspect a manifest.")
    dsub = p.add_subparsers(dest="data_cmd", required=True, metavar="COMMAND", help="what to do with the manifest")
    s = dsub.add_parser("stats", help="counts per label / split / group and modality coverage")
    s.add_argument("manifest", help="manifest written by `emotune prepare`")
    s.add_argument("--json", action="store_true", help="print JSON instead of tables")
    s.set_defaults(func=cmd_stats)


def _options(items: list[str]) -> dict:
    from emotune.recipe import parse_override

    return dict(parse_override(i) for i in items)


def cmd_prepare(args: argparse.Namespace) -> int:
    from emotune.data.prepare import prepare

    options = _options(args.option)
    if args.trust_pickle:
        options["trust_pickle"] = True
    # The root goes in as typed: prepare records it relative to EMOTUNE_DATA when it was found there.
    prepare(args.dataset, args.root, Path(args.output), options, args.skip_invalid,
            args.subset, check_media=not args.no_media_check)
    return 0


def cmd_augment(args: argparse.Namespace) -> int:
    from emotune.data.augment import augment_manifest
    from emotune.data.sample import read_manifest

    n = augment_manifest(read_manifest(args.manifest), args.speed, Path(args.output),
                         Path(args.audio_dir) if args.audio_dir else None)
    print(f"wrote {n} copies to {args.output}")
    return 0


def cmd_splits(args: argparse.Namespace) -> int:
    from emotune.data.sample import read_manifest
    from emotune.data.splits import make_folds, write_folds

    m = read_manifest(args.manifest)
    folds = make_folds(m.samples, args.protocol, args.folds, args.val_groups, args.val_fraction, args.seed,
                       args.fold_file, m.dataset)
    out = Path(args.output) if args.output else Path(str(args.manifest) + ".splits") / args.protocol
    write_folds(folds, out)
    for f in folds:
        groups = f" test groups {','.join(f.test_groups)}" if f.test_groups else ""
        print(f"{f.name}: train {len(f.train)}, val {len(f.val)}, test {len(f.test)}{groups}")
    print(f"wrote {len(folds)} fold file(s) to {out} (checked: no id or group on two sides)")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from emotune.data.sample import read_manifest
    from emotune.data.stats import manifest_stats, render

    m = read_manifest(args.manifest)
    if args.json:
        print(json.dumps({k: (dict(v) if hasattr(v, "items") else v) for k, v in manifest_stats(m).items()}, indent=1))
    else:
        print(render(m))
    return 0
