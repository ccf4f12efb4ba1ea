"""The FER2013 face model on the MER2023 example clips: `emotune predict --video` for each clip, its
FER2013 label mapped to MER2023's six classes by the explicit table below, beside the official label.

    emotune train configs/fer2013.yaml run_dir=runs/fer2013_lr      # the face model (LR on fer_image)
    python results/mer2023_examples/predict_faces.py runs/fer2013_lr   (EMOTUNE_DATA set)

Face only: the model reads the peak face of 16 sampled frames (Haar detection, the `fer` CNN) and
nothing else. 13 clips carry an official MER2023 label: an integration check, not a benchmark.
"""

import csv
import os
import sys
from pathlib import Path

from emotune.serve.predict import load_predictor

# FER2013 → MER2023. Each choice: fear → worried (MER2023's fear-like class); disgust → angry (MER2023 has
# no disgust; both are negative, high-arousal rejections); the five shared names map to themselves.
TO_MER = {"angry": "angry", "disgust": "angry", "fear": "worried", "happy": "happy", "neutral": "neutral",
          "sad": "sad", "surprise": "surprise"}

run = sys.argv[1] if len(sys.argv) > 1 else "runs/fer2013_lr"
root = Path(os.environ["EMOTUNE_DATA"]) / "mer2023_examples"
predictor = load_predictor(run)
print("| clip | official label | FER2013 prediction (p) | mapped | right | inputs read |")
print("|---|---|---|---|---|---|")
right = labelled = 0
for row in csv.DictReader(open(root / "metadata.csv", encoding="utf-8")):
    out = predictor.predict(video=str(root / row["file"]))
    mapped, gold = TO_MER[out["label"]], row["mer2023_label"]
    ok = "" if not gold else ("yes" if mapped == gold else "no")
    labelled += bool(gold)
    right += ok == "yes"
    used = ", ".join(f"{u['input']} ({', '.join(u['features'])})" for u in out["used"])
    print(f"| {row['file']} | {gold or '—'} | {out['label']} ({out['probabilities'][out['label']]:.2f}) | {mapped} | {ok or '—'} | {used} |")
print(f"\n{right} of {labelled} labelled clips right")
