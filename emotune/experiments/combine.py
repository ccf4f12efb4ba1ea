"""`emotune combine RUN [RUN ...] -o OUT --labels SET`: trained runs read together as one late-fusion run.

No labelled corpus here has faces and speech in quantity, so the face-and-voice model is a late fusion of a
face run and an audio run trained on different corpora (emotune/model/late_fusion.py). OUT is a run
directory like any other for `emotune predict`, `demo` and `serve`: given a video, the face member reads
the peak-frame face crop and the audio member the sound track; a video without a found face is the audio
member alone. Each member's classes are mapped onto the fused label set through the label sets' names and
aliases (emotune/experiments/cross_corpus.py: map_classes) or by an explicit `--map RUN:FROM=TO`; member
classes without a counterpart are dropped, and a fused class that no member produces is refused.

Recipe: FER2013 faces + RAVDESS speech, read in MER2023's six classes (label set `mer`):
    emotune train configs/fer2013.yaml run_dir=runs/fer2013_lr
    emotune train configs/ravdess.yaml run_dir=runs/ravdess_lr      # the last fold: actors 21-24 held out
    emotune combine runs/ravdess_lr runs/fer2013_lr -o runs/face_audio --labels mer \\
        --map ravdess:calm=neutral --map ravdess:fearful=worried --map fer2013:fear=worried
    emotune predict runs/face_audio --video clip.mp4
The mapping, stated: fear / fearful → worried (MER2023 has no fear class; worried is the nearest);
calm → neutral (MER2023 has no calm; a calm delivery is its neutral); surprised → surprise and the
shared names map by themselves; disgust has no MER2023 counterpart and is dropped (each member's
probabilities are renormalised over its mapped classes).
"""

from __future__ import annotations

import dataclasses
import json
import shlex
from pathlib import Path

from emotune.errors import EmotuneError

HELP = ("Equal weights by default: no labelled corpus here has both faces and speech to choose weights on. "
        "A member is a run directory (config.yaml + model/) of a classifier head (baseline_lr / baseline_mlp) or of an "
        "emotion LM whose prompt shows no transcript (e.g. prompts: [no_transcript]); for a CV directory name one of "
        "its fold runs. Runs of one recipe with other seeds, combined, serve their seed average.")


def register(sub) -> None:
    p = sub.add_parser("combine", help="late fusion of trained runs (e.g. a face run + an audio run) as one run",
                       description="Read trained runs together: each member scores a sample with its own inputs, its "
                                   "classes mapped onto --labels; the fused probabilities are the weighted mean over "
                                   "the members that have an input for it. " + HELP)
    p.add_argument("runs", nargs="+", metavar="RUN", help="member run directories")
    p.add_argument("-o", "--out", required=True, help="the fusion run directory to write")
    p.add_argument("--labels", required=True, help="the fused label set (a built-in name such as mer, or a YAML file)")
    p.add_argument("--weight", action="append", default=[], metavar="RUN=W",
                   help="a member's weight (default 1 for every member; repeatable)")
    p.add_argument("--map", action="append", default=[], metavar="RUN:FROM=TO",
                   help="map a member's class FROM to the fused class TO (RUN: the member's path or its config name; "
                        "repeatable). Without it classes match by the label sets' names and aliases")
    p.set_defaults(func=cmd_combine)


def cmd_combine(args) -> int:
    out = combine(args.runs, args.out, args.labels, args.weight, args.map)
    print(f"wrote {out}: try `emotune predict {out} --video CLIP`")
    return 0


def combine(runs: list[str], out: str, labels: str, weights: list[str] = (), maps: list[str] = ()) -> Path:
    from emotune.config import Config, save_config
    from emotune.data.config import DataConfig
    from emotune.data.labels import load_label_set
    from emotune.experiments.cross_corpus import map_classes
    from emotune.experiments.run import log
    from emotune.features.config import FeaturesConfig
    from emotune.model.config import ModelConfig
    from emotune.model.late_fusion import LateFusion, Member, member_inputs, relative_to

    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "model" / "late_fusion.json").exists():
        raise EmotuneError(f"{out_dir} exists and is not a late-fusion run: choose another -o")
    fused = load_label_set(labels)
    members = [_member_run(r) for r in runs]
    if len({m[0].resolve() for m in members}) < len(members):
        raise EmotuneError("combine: a run is given twice")
    weight_of = {}
    for item in weights:
        i, w = _split(item, "=", members, f"--weight {item}", "RUN=W")
        try:
            weight_of[i] = float(w)
        except ValueError:
            raise EmotuneError(f"--weight {item}: '{w}' is not a number") from None
    explicit: dict[int, dict[str, str]] = {}
    for item in maps:
        left, _, to = item.partition("=")
        i, source = _split(left, ":", members, f"--map {item}", "RUN:FROM=TO")
        if not to.strip():
            raise EmotuneError(f"--map {item}: expected RUN:FROM=TO")
        explicit.setdefault(i, {})[source.strip()] = to.strip()
    built, inputs = [], []
    for i, (path, cfg, names) in enumerate(members):
        pairs = explicit.get(i, {})
        classes = map_classes(fused, _member_labels(cfg, names), pairs, sides=(f"run {runs[i]}", f"the label set {labels}"))
        dropped = [c for c in names if c not in classes]
        log(f"{runs[i]}: " + ", ".join(f"{a}→{b}" for a, b in classes.items())
            + (f"; dropped (no counterpart in {labels}): {', '.join(dropped)}" if dropped else ""))
        built.append(Member(relative_to(path, out_dir), weight_of.get(i, 1.0), classes, names))
        inputs += [n for n in member_inputs(cfg) if n not in inputs]
    model = LateFusion(list(fused.names), built, out_dir)  # refuses a fused class no member produces
    model.save(out_dir / "model")
    run_cfg = Config(name=out_dir.name, run_dir=str(out_dir),
                 data=DataConfig(dataset="late_fusion", root="", manifest="", label_set=labels),
                 features=FeaturesConfig(extractors=list(inputs)), model=ModelConfig(kind="late_fusion", inputs=inputs))
    run_cfg.source = "emotune combine"
    save_config(run_cfg, out_dir / "config.yaml")
    command = ["emotune", "combine", *runs, "-o", out, "--labels", labels,
               *[a for w in weights for a in ("--weight", w)], *[a for m in maps for a in ("--map", m)]]
    (out_dir / "command.txt").write_text(shlex.join(command) + "\n")
    return out_dir


def _member_run(run: str):
    """(path, config, the classes its model predicts) of a member run, or a one-line refusal."""
    from emotune.config import load_config

    path = Path(run)
    if not (path / "config.yaml").is_file() or not (path / "model").is_dir():
        folds = sorted(d.name for d in path.glob("*/model")) if path.is_dir() else []
        hint = f"; it holds the fold runs {', '.join(folds)}: name one" if folds else ""
        raise EmotuneError(f"{run}: not a trained run directory (config.yaml and model/){hint}")
    cfg = load_config(path / "config.yaml")
    # A member's probabilities must depend on its feature inputs only: a fused run computes those, and no
    # transcript. An emotion LM qualifies when none of its evaluation prompts shows the transcript.
    from emotune.serve.reading import prompt_shows_transcript

    lm_without_text = cfg.model.kind == "emotion_lm" and not prompt_shows_transcript(cfg)
    if (cfg.model.kind not in ("baseline_lr", "baseline_mlp") and not lm_without_text) or cfg.data.target != "single":
        shows = " whose prompt shows the transcript" if cfg.model.kind == "emotion_lm" else ""
        raise EmotuneError(f"{run}: a {cfg.model.kind} run{shows} with target {cfg.data.target}; members must be "
                           f"single-label classifier heads (baseline_lr, baseline_mlp) or emotion LMs whose prompt "
                           f"shows no transcript (prompts: [no_transcript]), whose probabilities depend on their inputs only")
    from emotune.experiments.run import load_model

    return path, cfg, list(load_model(cfg, path).label_names)


def _member_labels(cfg, names: list[str]):
    """The member's label set (its names and aliases: RAVDESS `surprised` = MER2023 `surprise`), restricted
    to the classes its model predicts. The set is the recipe's, else the one its manifest's header names."""
    from emotune.data.labels import LabelSet, load_label_set

    label_set = cfg.data.label_set
    manifest = Path(cfg.data.manifest_path())
    if not label_set and manifest.is_file():
        with open(manifest, encoding="utf-8") as f:
            label_set = json.loads(f.readline()).get("label_set")
    if not label_set:  # the manifest is gone: the model's own class names, without aliases
        return LabelSet(name="run", full=tuple(names), names=tuple(names))
    return dataclasses.replace(load_label_set(label_set, cfg.data.subset), names=tuple(names))


def _split(text: str, sep: str, members: list, what: str, form: str) -> tuple[int, str]:
    """`RUN<sep>REST` → (the member's index, REST); RUN is a member's path or its config's name."""
    run, ok, rest = text.rpartition(sep)
    if not ok or not run or not rest.strip():
        raise EmotuneError(f"{what}: expected {form}")
    hits = [i for i, (p, _, _) in enumerate(members) if Path(run).resolve() == p.resolve()]
    hits = hits or [i for i, (_, cfg, _) in enumerate(members) if cfg.name == run]
    if len(hits) != 1:
        names = ", ".join(f"{p} ({cfg.name})" for p, cfg, _ in members)
        raise EmotuneError(f"{what}: '{run}' is {'none' if not hits else 'more than one'} of the runs combined: {names}")
    return hits[0], rest
