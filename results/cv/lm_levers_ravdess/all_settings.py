"""Every emotion-LM setting measured on RAVDESS's 6 speaker-independent folds, in one table, read from the result
folders' summary.json (so no figure is copied by hand): validation UA (what choices were made on), test UA, macro-F1,
the machine and the LM's precision, and what the rules of the time made of each. Writes all_settings.md beside it,
and prints how well the one-actor validation ranks the settings: the Spearman rank correlation of validation UA with
test UA over the AMD EPYC bf16 LM rows, single-seed runs and averages apart (inner-CV and fusion rows left out).

    python results/cv/lm_levers_ravdess/all_settings.py
"""

from __future__ import annotations

import json
from pathlib import Path

CV = Path(__file__).resolve().parents[1]
ZEN3, XEON, EPYC = "AMD EPYC Zen 3, fp32", "Intel Xeon, fp32", "AMD EPYC (AVX512-BF16), bf16"

# (result folder under results/cv, setting, machine and precision, outcome under the rules of its time)
ROWS = [
    ("ravdess_lm_proj_cv5", "segment sequence + eGeMAPS, MLP projectors, 5 epochs (before the leak-free protocol)", ZEN3, "superseded"),
    ("ravdess_lm_pooled", "`lines_4ep`: pooled Whisper + eGeMAPS, one token each, linear projectors", ZEN3, "the first leak-free recipe"),
    ("ravdess_lm_grouped", "`grouped_6ep`: both tokens at the end of one line, ≤ 6 epochs", ZEN3, "not chosen"),
    ("ravdess_lm_noise", "`noise`: + Gaussian feature noise 0.5", ZEN3, "chosen, then superseded"),
    ("ravdess_lm_assistant", "`assistant`: tokens opening the assistant's turn", ZEN3, "not chosen"),
    ("ravdess_lm_lowrank", "`lowrank`: rank-8 projectors", ZEN3, "not chosen"),
    ("ravdess_lm_mixup", "`mixup`: `noise` + mixup 0.4", ZEN3, "chosen, then superseded"),
    ("ravdess_lm_mixup_intel", "`mixup`, rerun", XEON, "reference on this CPU"),
    ("ravdess_lm_mixup_balanced", "`mixup` + class weights", XEON, "not chosen"),
    ("ravdess_lm_mixup_2seeds", "`mixup`, seeds 0 + 1 averaged", XEON, "chosen, then superseded"),
    ("ravdess_lm_mixup_speed", "`mixup` + speed-perturbed copies", XEON, "not chosen"),
    ("ravdess_lm_mixup_smooth", "`mixup` + label smoothing 0.1", XEON, "not chosen (tie)"),
    ("ravdess_lm_mixup_3members", "the `mixup` pair + `mixup_speed`, averaged", XEON, "not chosen"),
    ("ravdess_lm_assistant_mixup", "`assistant_mixup`: `mixup` in the assistant layout", XEON, "not chosen"),
    ("ravdess_lm_mixup_refit", "`mixup` + refit on all training actors", XEON, "measurement only"),
    ("ravdess_lm_mixup_lora", "`mixup_lora`: `mixup` + LoRA r=8 (q, v)", XEON, "chosen, then superseded"),
    ("ravdess_lm_mixup_ema", "`mixup` + weight EMA 0.99", XEON, "not chosen"),
    ("ravdess_lm_mixup_lora_seed1", "`mixup_lora`, seed 1", XEON, "member"),
    ("ravdess_lm_mixup_lora_2seeds", "`mixup_lora`, seeds 0 + 1 averaged", XEON, "chosen, then superseded"),
    ("ravdess_lm_mixup_probe", "`mixup` + projectors started from a fitted LR", XEON, "not chosen"),
    ("ravdess_lm_assistant_mixup_lora", "`assistant_mixup_lora`: `assistant_mixup` + LoRA (the recipe)", XEON, "chosen, then superseded"),
    ("ravdess_lm_assistant_mixup_lora_seed1", "the recipe, seed 1", XEON, "member"),
    ("ravdess_lm_assistant_mixup_lora_2seeds", "the recipe, seeds 0 + 1 averaged", XEON, "chosen, then superseded"),
    ("ravdess_lm_assistant_mixup_lora_all", "the recipe + LoRA on every linear layer", XEON, "not chosen (tie)"),
    ("ravdess_lm_assistant_mixup_lora_8ep", "the recipe, ≤ 8 epochs", XEON, "the single-model choice"),
    ("ravdess_lm_assistant_mixup_lora_distill", "the recipe + distillation from the LR", XEON, "not chosen"),
    ("ravdess_lm_epyc/6ep_s0", "the recipe, seed 0", EPYC, "member"),
    ("ravdess_lm_epyc/6ep_s0_fp32", "the recipe, seed 0, in fp32", "AMD EPYC (AVX512-BF16), fp32", "measurement only"),
    ("ravdess_lm_epyc/6ep_s1", "the recipe, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/6ep_2seeds", "the recipe, seeds 0 + 1 averaged", EPYC, "reference on this CPU"),
    ("ravdess_lm_epyc/8ep_s0", "≤ 8 epochs, seed 0", EPYC, "member"),
    ("ravdess_lm_epyc/8ep_s1", "≤ 8 epochs, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/8ep_2seeds", "≤ 8 epochs, seeds 0 + 1 averaged", EPYC, "not chosen"),
    ("ravdess_lm_epyc/6ep_s2", "the recipe, seed 2", EPYC, "member"),
    ("ravdess_lm_epyc/6ep_3seeds", "the recipe, seeds 0–2 averaged", EPYC, "the headline LM, then superseded"),
    ("ravdess_lm_epyc/6ep_s3", "the recipe, seed 3", EPYC, "member"),
    ("ravdess_lm_epyc/6ep_s4", "the recipe, seed 4", EPYC, "member"),
    ("ravdess_lm_epyc/6ep_5seeds", "the recipe, seeds 0–4 averaged", EPYC, "chosen on validation, refused: scores 56.5 samples/s (< 60)"),
    ("ravdess_lm_epyc/seq8_s0", "the recipe + `whisper_seq(k=8)`: 8 segment tokens beside the pooled ones, seed 0", EPYC, "not chosen"),
    ("ravdess_lm_epyc/balanced_s0", "the recipe + class weights, seed 0", EPYC, "chosen for two more seeds"),
    ("ravdess_lm_epyc/balanced_s1", "the recipe + class weights, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/balanced_s2", "the recipe + class weights, seed 2", EPYC, "member"),
    ("ravdess_lm_epyc/balanced_3seeds", "the recipe + class weights, seeds 0–2 averaged", EPYC, "not chosen (validation below the headline's)"),
    ("ravdess_lm_epyc/inner4_s0", "the recipe, epochs from 4-part inner CV over all 20 training actors, then a refit on them, seed 0 (val UA: the inner mean)", EPYC, "measurement only"),
    ("ravdess_lm_epyc/wl2_s0", "the recipe + `whisper(layer=2)`: a third token, Whisper after 2 of 4 blocks, seed 0", EPYC, "member"),
    ("ravdess_lm_epyc/wl2_s1", "the recipe + `whisper(layer=2)`, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/wl2_s2", "the recipe + `whisper(layer=2)`, seed 2", EPYC, "member"),
    ("ravdess_lm_epyc/wl2_3seeds", "the recipe + `whisper(layer=2)`, seeds 0–2 averaged", EPYC, "the headline LM, then superseded"),
    ("ravdess_lm_epyc/wl2_inner4_s0", "the recipe + `whisper(layer=2)`, epochs from 4-part inner CV, then a refit on all 20 training actors, seed 0 (val UA: inner CV)", EPYC, "measurement only"),
    ("ravdess_lm_epyc/wl2_s3", "the recipe + `whisper(layer=2)`, seed 3", EPYC, "member"),
    ("ravdess_lm_epyc/wl2_4seeds", "the recipe + `whisper(layer=2)`, seeds 0–3 averaged", EPYC, "not chosen (validation tied with three seeds)"),
    ("ravdess_lm_epyc/wl123_s0", "the recipe + `whisper(layer=1)`, `whisper(layer=2)`, `whisper(layer=3)`: five tokens, seed 0", EPYC, "member"),
    ("ravdess_lm_epyc/wl123_s1", "the recipe + layers 1, 2, 3, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/wl123_s2", "the recipe + layers 1, 2, 3, seed 2", EPYC, "member"),
    ("ravdess_lm_epyc/wl123_3seeds", "the recipe + layers 1, 2, 3, seeds 0–2 averaged", EPYC, "the headline LM, then superseded"),
    ("ravdess_lm_epyc/wl123fx_s0", "the recipe + layers 1, 2, 3 on a fixed schedule: all 20 training actors, the 6 epochs inner CV chose (no validation actor), seed 0", EPYC, "member"),
    ("ravdess_lm_epyc/wl123fx_s1", "the recipe + layers 1, 2, 3 on the fixed schedule, seed 1", EPYC, "member"),
    ("ravdess_lm_epyc/wl123fx_s2", "the recipe + layers 1, 2, 3 on the fixed schedule, seed 2", EPYC, "member"),
    ("ravdess_lm_epyc/wl123_inner4_s0", "the recipe + layers 1, 2, 3, epochs from 4-part inner CV (6 of 6 on every fold), then a refit on all 20 training actors, seed 0 (val UA: inner CV; the same weights as the fixed schedule's seed 0)", EPYC, "measurement only"),
    ("ravdess_lm_epyc/wl123fx_3seeds", "**the recipe + layers 1, 2, 3 on the fixed schedule, seeds 0–2 averaged**", EPYC, "**the headline LM**"),
    ("ravdess_fusion", "`fusion`: the first leak-free LM + the LR, weight chosen per fold (its own model, not the LM)", ZEN3, "not better than the LR"),
    ("ravdess_lm_epyc/fusion_3seeds_lr", "`fusion`: the recipe's three seeds (the headline before `whisper(layer=2)`) + the LR, weight chosen per fold (its own model, not the LM)", EPYC, "not better than the LR"),
    ("ravdess_lm_epyc/lm_lr_average", "the recipe's three seeds and the LR averaged half and half (its own model, not the LM)", EPYC, "not better than the LR"),
    ("ravdess_lr_egemaps_whisper", "logistic regression, eGeMAPS + Whisper (the bar)", ZEN3, "reference"),
    ("ravdess_whisper_layers/C2", "logistic regression, eGeMAPS + Whisper + `whisper(layer=2)`, refit (the previous headline LM's inputs; val UA: inner CV)", "AMD EPYC (AVX512-BF16)", "reference"),
    ("ravdess_whisper_multilayer/D123", "logistic regression, eGeMAPS + Whisper + layers 1, 2, 3, refit (the headline LM's inputs; val UA: inner CV)", "AMD EPYC (AVX512-BF16)", "reference"),
]


def cell(summary: dict, key: str) -> str:
    m = summary.get(key)
    return f"{m['mean']:.3f} ± {m['std']:.3f}" if m else "—"


def val_cell(val: dict | None) -> str:
    return f"{val['mean']:.3f}" if val else "—"


def main() -> None:
    lines = ["| setting | machine, LM precision | val UA | test UA | test macro-F1 | outcome | folder |", "|---|---|---|---|---|---|---|"]
    for folder, setting, machine, outcome in ROWS:
        s = json.loads((CV / folder / "summary.json").read_text())
        val = s.get("validation", {}).get("ua")
        lines.append(f"| {setting} | {machine} | {val_cell(val)} | "
                     f"{cell(s, 'ua')} | {cell(s, 'macro_f1')} | {outcome} | `results/cv/{folder}/` |")
    out = Path(__file__).with_name("all_settings.md")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(out.read_text())
    rank_agreement()


def rank_agreement() -> None:
    from scipy.stats import spearmanr

    groups: dict[str, list[tuple[float, float]]] = {"single-seed runs": [], "averages": []}
    for folder, setting, machine, _ in ROWS:
        s = json.loads((CV / folder / "summary.json").read_text())
        val = s.get("validation", {}).get("ua")
        if machine != EPYC or not val or "inner CV" in setting or "fusion" in setting or "LR" in setting:
            continue
        groups["averages" if "averaged" in setting else "single-seed runs"].append((val["mean"], s["ua"]["mean"]))
    for name, pairs in groups.items():
        rho, p = spearmanr([v for v, _ in pairs], [t for _, t in pairs])
        print(f"validation vs test UA, {name} ({EPYC}): Spearman {rho:.2f} over {len(pairs)} (p = {p:.3f})")


if __name__ == "__main__":
    main()
