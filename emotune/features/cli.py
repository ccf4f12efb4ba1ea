"""`emotune features`: extract (or check) the cached features of a manifest."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub) -> None:
    p = sub.add_parser(
        "features", help="extract features of a manifest into the cache (or --check coverage)",
        description="Run feature extractors over a manifest; only what the cache lacks is computed.\n"
                    "Give a recipe (CONFIG [key=value ...]: reads data.manifest and features.*)\n"
                    "or --manifest and --extractors. Extractor specs take settings inline:\n"
                    "  egemaps, logmel, whisper, whisper(pool=mean), whisper(layer=2), whisper_seq(k=8), asr(language=auto), minilm, fer(frames=16), hf:<model id or path>\n"
                    "Audio extractors take trim=silence|speech (cut quiet or non-speech ends first; cached apart).\n"
                    "Unreadable media are recorded as missing with a reason and the run goes on; the exit\n"
                    "status is then 1, and the count and the first files are printed (also with --check).\n"
                    "asr (Whisper) runs only when listed: text extractors otherwise embed the samples' own text.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  emotune features configs/ravdess.yaml\n"
               "  emotune features --manifest runs/manifests/ravdess.jsonl --extractors egemaps,whisper --workers 2\n"
               "  emotune features configs/ravdess.yaml --check\n"
               "  emotune features --list")
    p.add_argument("config", nargs="?", help="recipe YAML")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the recipe, e.g. features.workers=2")
    p.add_argument("--manifest", help="manifest JSONL (instead of, or overriding, the recipe's data.manifest)")
    p.add_argument("--extractors", help="comma-separated extractor specs (overrides features.extractors)")
    p.add_argument("--cache-dir", help="feature cache folder (default: $EMOTUNE_CACHE/features)")
    p.add_argument("--workers", type=int, help="worker processes (default: features.workers, 1)")
    p.add_argument("--flush-every", type=int, help="samples per saved shard (default: features.flush_every, 32)")
    p.add_argument("--check", action="store_true", help="report coverage per extractor and modality; compute nothing")
    p.add_argument("--list", action="store_true", help="list the extractors, their settings and output shapes")
    p.add_argument("--json", action="store_true", help="print the summary / coverage as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_features)


def _settings(args: argparse.Namespace):
    """(manifest path, extractor specs, cache dir, workers, flush_every, augmentation manifest or None) from
    the recipe and the flags."""
    from emotune.config import load_config
    from emotune.errors import EmotuneError
    from emotune.features.base import split_list

    if args.config:
        cfg = load_config(args.config, args.overrides)
        manifest, feats, augment = cfg.data.manifest_path(), cfg.features, cfg.data.augment
        names, cache_dir, workers, flush = feats.extractors, feats.cache_dir, feats.workers, feats.flush_every
    else:
        if args.overrides:
            raise EmotuneError("key=value overrides need a recipe (CONFIG) before them")
        manifest, names, cache_dir, workers, flush, augment = None, ["egemaps"], None, 1, 32, None
    if args.manifest:  # another manifest than the recipe's: its training copies are not this one's
        manifest, augment = args.manifest, None
    if not manifest:
        raise EmotuneError("no manifest: give a recipe (CONFIG) or --manifest M")
    if args.extractors:
        names = split_list(args.extractors)
    if not names:
        raise EmotuneError("no extractors: set features.extractors or --extractors a,b")
    workers = args.workers if args.workers is not None else workers
    if workers < 1:
        raise EmotuneError(f"--workers must be at least 1, got {workers}")
    return (manifest, names, args.cache_dir or cache_dir, workers,
            args.flush_every if args.flush_every is not None else flush, augment)


def cmd_features(args: argparse.Namespace) -> int:
    if args.list:
        return _list()
    from emotune.data.augment import read_copies
    from emotune.data.sample import read_manifest
    from emotune.features.store import coverage, default_cache_dir, ensure_features

    manifest_path, names, cache_dir, workers, flush, augment = _settings(args)
    manifest = read_manifest(manifest_path)
    cache = default_cache_dir(cache_dir)
    # A recipe with data.augment trains on copies too: they are extracted (or checked) after the originals.
    todo = [(manifest_path, manifest)] + ([(augment, read_copies(augment, manifest))] if augment else [])
    status = 0
    for path, m in todo:
        if args.check:
            report = coverage(m, names, cache)
            print(json.dumps(report, indent=1) if args.json else render_coverage(report, path, cache))
            # Exit 1 when something was never extracted or cannot be (media gone, unreadable), so scripts and
            # CI can test `emotune features --check`; samples that simply lack a modality do not count.
            failed = report_failures(report, path)
            status |= 1 if failed or any(r["not_extracted"] for r in report.values()) else 0
            continue
        summary = ensure_features(m, names, cache, workers=workers, progress=not args.quiet, flush_every=flush)
        print(json.dumps(summary, indent=1) if args.json else render_summary(summary, cache))
        status |= 1 if report_failures(summary, path) else 0
    return status


SHOWN_FAILURES = 5


def report_failures(results: dict, manifest_path) -> int:
    """Print (stderr) how many samples failed and the first few files; return that count (0: nothing to say)."""
    first: dict[str, str] = {}  # path -> reason, in order; one sample failing two extractors counts once
    for r in results.values():
        for f in r.get("failed", []):
            first.setdefault(f["path"], f["reason"])
    if first:
        shown = "; ".join(f"{p} ({why})" for p, why in list(first.items())[:SHOWN_FAILURES])
        more = f"; and {len(first) - SHOWN_FAILURES} more" if len(first) > SHOWN_FAILURES else ""
        print(f"error: {len(first)} sample(s) of {manifest_path} have missing or unreadable media or failed "
              f"extraction: {shown}{more}", file=sys.stderr)
    return len(first)


def _missing_text(missing: dict) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in sorted(missing.items(), key=lambda kv: -kv[1])) or "-"


def render_summary(summary: dict, cache) -> str:
    lines = [f"{'extractor':<24} {'modality':<8} {'done':>6} {'cached':>7} {'missing':>8}  reasons"]
    for name, s in summary.items():
        lines.append(f"{name:<24} {s['modality']:<8} {s['done']:>6} {s['cached']:>7} "
                     f"{sum(s['missing'].values()):>8}  {_missing_text(s['missing'])}")
    lines.append(f"cache: {cache}")
    return "\n".join(lines)


def render_coverage(report: dict, manifest_path, cache) -> str:
    lines = [f"coverage of {manifest_path} in {cache}",
             f"{'extractor':<24} {'modality':<8} {'present':>8} {'total':>6} {'not run':>8}  missing"]
    for name, r in report.items():
        lines.append(f"{name:<24} {r['modality']:<8} {r['present']:>8} {r['total']:>6} {r['not_extracted']:>8}  "
                     f"{_missing_text(r['missing'])}")
    # Per modality, over the samples that carry it: the least covered extractor of that modality.
    by_mod: dict[str, list] = {}
    for r in report.values():
        applicable = r["total"] - r["not_applicable"]
        if applicable:
            by_mod.setdefault(r["modality"], []).append((r["present"], applicable))
    worst = {m: min(v, key=lambda pa: pa[0] / pa[1]) for m, v in sorted(by_mod.items())}
    lines.append("per modality (samples that carry it): "
                 + (", ".join(f"{m} {p}/{a} ({p / a:.0%})" for m, (p, a) in worst.items()) or "none"))
    return "\n".join(lines)


def _list() -> int:
    from emotune.features.base import REGISTRY, get_extractor

    for name in REGISTRY:
        if name == "hf":
            print(f"{'hf:<id or path>':<14} any Hugging Face audio/vision/text encoder (local weights); "
                  f"settings: {', '.join(_hf_settings())}")
            continue
        try:
            info = get_extractor(name).info()
        except Exception as exc:  # a broken optional dependency must not hide the others
            print(f"{name:<14} unavailable: {exc}", file=sys.stderr)
            continue
        settings = ", ".join(f"{k}={v if v != '' else '(bundled)'}" for k, v in info["settings"].items()) or "no settings"
        shape = str(tuple(info["shape"])) if info["shape"] else "text"
        print(f"{name:<14} {info['modality']:<6} shape {shape:<10} v{info['version']}  {settings}")
    return 0


def _hf_settings() -> list[str]:
    from emotune.features.base import REGISTRY
    import importlib

    module, cls = REGISTRY["hf"].split(":")
    return [f"{k}={v}" for k, v in getattr(importlib.import_module(module), cls).defaults.items() if k != "model"]
