"""Closed-set scoring with packed rows vs the batched form, alternating in one process, same model and data.

    python benchmarks/packing.py --run runs/ablations/lm_levers_ravdess/assistant/fold5_actor21-actor24

`EmotionLMNet.hidden` packs short rows after the shared prompt prefix into one sequence (see
`_packed_hidden`); the batched form expands the prefix's keys and values over the batch. Each repetition
scores the run's test split once each way; the probabilities of the two are compared. Writes
benchmarks/results/packing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from eval import from_run  # noqa: E402
from machine import describe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a trained emotion-LM run directory")
    ap.add_argument("-n", type=int, default=240)
    ap.add_argument("--batch-sizes", default="64,32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "packing.json"))
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model, ex, _, what = from_run(args.run, "test", args.n)
    net = model.net
    batched = lambda batch, keep_cache=False: type(net).hidden(net, batch, keep_cache=True)  # keep_cache: never packs
    load0 = os.getloadavg()[0]
    model.predict_proba(ex.subset(np.arange(min(8, len(ex)))))  # warm-up

    def timed() -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        p = model.predict_proba(ex)
        return p, round(len(ex) / (time.perf_counter() - t0), 1)

    rows = {}
    for size in [int(b) for b in args.batch_sizes.split(",") if b]:
        model.batcher.eval_batch_size = size
        packed_rates, batched_rates, diff = [], [], 0.0
        for _ in range(args.repeats):
            p_packed, rate = timed()
            packed_rates.append(rate)
            net.hidden = batched
            p_batched, rate = timed()
            del net.hidden
            batched_rates.append(rate)
            diff = max(diff, float(np.abs(p_packed - p_batched).max()))
        rows[size] = {"packed_samples_per_s": packed_rates, "batched_samples_per_s": batched_rates,
                      "max_probability_difference": diff}
    result = {"date": date.today().isoformat(), "model": what, "samples": len(ex), "torch_threads": torch.get_num_threads(),
              "by_batch_size": rows, "machine": {**describe(), "load_average_before": round(load0, 2),
                                                  "load_average_after": round(os.getloadavg()[0], 2)}}
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
