"""The floor for MERR reasoning: the clue restatement (the input clues said back, then the true
pseudo-label) scored against the reference reasoning of the held-out part, by ROUGE-L and MiniLM cosine.

    emotune prepare merr mer_annotations -o runs/manifests/merr.jsonl
    python results/merr/clue_baseline.py runs/manifests/merr.jsonl     # writes results/merr/clue_baseline.json

A reasoning model's generated text on the same held-out clips must beat these figures to show it says
more than its inputs. (The baseline is even given the true label, which a model has to find.)
"""

import json
import sys
from pathlib import Path

from emotune.data.sample import read_manifest
from emotune.evaluate.reasoning import closeness, clue_restatement

manifest = read_manifest(sys.argv[1] if len(sys.argv) > 1 else "runs/manifests/merr.jsonl")
held = [s for s in manifest.samples if s.split == "test"]
cands = [clue_restatement(s.meta["clues"], s.label) for s in held]
refs = [s.meta["reasoning"] for s in held]
out = closeness(cands, refs)
result = {"what": "clue restatement vs MERR reference reasoning, held-out split (seeded 10%)", "n": out["n"],
          "rouge_l": round(out["rouge_l"], 4), "minilm_cosine": round(out["minilm_cosine"], 4),
          "per_sample": [{"id": s.id, "rouge_l": r, "minilm_cosine": c}
                         for s, r, c in zip(held, out["per_sample"]["rouge_l"], out["per_sample"]["minilm_cosine"])]}
path = Path(__file__).with_name("clue_baseline.json")
path.write_text(json.dumps(result, indent=1))
print(json.dumps({k: v for k, v in result.items() if k != "per_sample"}))
