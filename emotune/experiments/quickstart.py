"""`emotune quickstart`: the main job on the built-in synthetic corpus, end to end, in minutes on a CPU.

corpus (espeak-ng, cached) → prepare → features → speaker-independent CV of a baseline and of the
emotion LM → report. It ends by printing where the report is and the command that opens the demo.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from emotune.experiments.executor import ExecutorOptions
from emotune.experiments.run import log

RECIPE = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"


def quickstart(out: str = "runs/quickstart", lm_epochs: int | None = None, jobs: int = 1) -> Path:
    from emotune.data.synth.build import build_corpus
    from emotune.evaluate.report import report
    from emotune.experiments.cv import cv, format_summary

    t0 = time.time()
    recipe = str(RECIPE) if RECIPE.exists() else "configs/quickstart.yaml"
    log("1/5 building the synthetic corpus (espeak-ng; cached after the first time)")
    corpus = build_corpus(log=log)
    base = [f"data.root={corpus.root}", f"data.manifest={out}/manifest.jsonl", f"run_dir={out}/${{name}}"]
    if lm_epochs is not None:
        base.append(f"train.epochs={lm_epochs}")

    opts = ExecutorOptions(jobs=jobs)
    baseline_overrides = [*base, "name=baseline_lr", "model.kind=baseline_lr", "model.inputs=[egemaps,whisper_seq,minilm]"]
    lm_overrides = [*base, "name=emotion_lm"]
    for overrides in (baseline_overrides, lm_overrides):
        set_aside_if_changed(recipe, overrides)
    log("2/5 prepare + features, then 3/5 baseline CV (logistic regression on the same features)")
    baseline = cv(recipe, baseline_overrides, opts)
    log("4/5 emotion LM CV (projectors + LoRA on SmolLM2-135M-Instruct, every fold from the same start)")
    lm = cv(recipe, lm_overrides, opts)

    log("5/5 reports")
    md_b, _ = report(Path(out) / "baseline_lr")
    md_lm, html_lm = report(Path(out) / "emotion_lm")
    first_fold = sorted(p.parent for p in (Path(out) / "emotion_lm").glob("*/DONE"))[0]
    summary = {"baseline_lr": format_summary(baseline), "emotion_lm": format_summary(lm),
               "report": str(html_lm), "baseline_report": str(md_b.with_suffix(".html")),
               "demo_run": str(first_fold), "minutes": round((time.time() - t0) / 60, 1)}
    (Path(out) / "quickstart.json").write_text(json.dumps(summary, indent=1))
    print()
    print("emotune quickstart finished in {:.1f} min (synthetic corpus: exercises the pipeline, not a benchmark)".format(summary["minutes"]))
    print(f"  baseline (LR):  {summary['baseline_lr']}")
    print(f"  emotion LM:     {summary['emotion_lm']}")
    print(f"  report:         {html_lm}  (Markdown: {md_lm})")
    print(f"  open the demo:  .venv/bin/emotune demo {first_fold}")
    return html_lm


def set_aside_if_changed(recipe: str, overrides: list[str]) -> None:
    """quickstart owns its run folders: one made under an earlier recipe or corpus (emotune was updated since) is
    renamed aside and kept, and a new run starts, where `emotune cv` would stop and ask."""
    from emotune.config import load_config
    from emotune.errors import EmotuneError
    from emotune.identity import check_or_claim, make_identity

    cfg = load_config(recipe, overrides)
    out_dir = Path(cfg.resolved_run_dir())
    if not out_dir.exists():
        return
    try:
        check_or_claim(out_dir, make_identity(cfg, drop=("data.fold",)), write=False)
    except EmotuneError as exc:
        aside = out_dir.with_name(f"{out_dir.name}.before-{time.strftime('%Y%m%d-%H%M%S')}")
        out_dir.rename(aside)
        what = str(exc).partition("different config: ")[2].partition(". To start")[0] or str(exc)
        log(f"{out_dir} was made under an earlier recipe or corpus ({what}); kept as {aside}, a new run starts")
