"""Would int8 weights make the emotion LM score faster on a CPU without bf16 units, at no cost in answers?

    python benchmarks/int8.py            # writes benchmarks/results/int8.json

PyTorch's dynamic int8 quantisation (torch.ao `quantize_dynamic`, int8 weights per output channel,
activations quantised per call) is applied to SmolLM2-135M-Instruct's decoder linear layers: all of them,
the attention projections only, or the MLPs only. Each variant is compared with the fp32 model on the
next-token distributions of a few prompts in the emotion LM's style (KL divergence from fp32, share of
positions with the same top-1 token) and timed on one packed scoring-sized forward pass (16 rows of 12
tokens after a shared prefix, the grouped layout's shape). emotune ships no int8 option: see BENCHMARKS.md.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from machine import describe  # noqa: E402

PROMPTS = [
    "<|im_start|>system\nYou are an expert in emotion recognition.<|im_end|>\n<|im_start|>user\nThe speaker says: "
    "'I can't believe you did this to me.' Which emotion is expressed?<|im_end|>\n<|im_start|>assistant\nEmotion:",
    "<|im_start|>user\nWhat emotion is in: 'We won the lottery!!'<|im_end|>\n<|im_start|>assistant\nEmotion:",
    "The actor's voice trembled as she said the line; the emotion she expressed was",
]
VARIANTS = {"all linear layers": (), "attention projections only": ("mlp",), "MLPs only": ("self_attn",)}


def quantised(lm, skip: tuple[str, ...]):
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    m = copy.deepcopy(lm)
    dec = m.get_decoder()
    names = {n for n, mod in dec.named_modules() if isinstance(mod, torch.nn.Linear) and not any(s in n for s in skip)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager quantisation is marked deprecated
        quantize_dynamic(dec, {n: per_channel_dynamic_qconfig for n in names}, dtype=torch.qint8, inplace=True)
    return m, len(names)


def timed_forward(lm, reps: int = 5) -> float:
    """Seconds per forward of 16 x 12 tokens packed into one sequence (what scoring one batch costs)."""
    ids = torch.randint(100, 20000, (1, 16 * 12))
    with torch.no_grad():
        lm.get_decoder()(input_ids=ids)
        t0 = time.perf_counter()
        for _ in range(reps):
            lm.get_decoder()(input_ids=ids)
    return (time.perf_counter() - t0) / reps


def main() -> None:
    from emotune.model.backbone import load_backbone

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    lm, tok = load_backbone("smollm2-135m-instruct", "fp32")
    lm.eval()
    ids = [tok(p, return_tensors="pt").input_ids for p in PROMPTS]
    load0 = os.getloadavg()[0]
    with torch.no_grad():
        ref = [torch.log_softmax(lm(i).logits[0], -1) for i in ids]
    fp32_s = timed_forward(lm)
    rows = {}
    for name, skip in VARIANTS.items():
        q, n = quantised(lm, skip)
        with torch.no_grad():
            out = [torch.log_softmax(q(i).logits[0], -1) for i in ids]
        kl = sum(float((r.exp() * (r - o)).sum(-1).mean()) for r, o in zip(ref, out)) / len(ids)
        top1 = sum(float((r.argmax(-1) == o.argmax(-1)).float().mean()) for r, o in zip(ref, out)) / len(ids)
        rows[name] = {"layers": n, "kl_from_fp32_nats": round(kl, 4), "top1_agreement": round(top1, 3),
                      "speedup_vs_fp32": round(fp32_s / timed_forward(q), 2)}
        print(name, rows[name], flush=True)
    result = {"date": date.today().isoformat(), "model": "SmolLM2-135M-Instruct", "prompts": len(PROMPTS),
              "fp32_forward_s": round(fp32_s, 4), "variants": rows, "torch_threads": torch.get_num_threads(),
              "machine": {**describe(), "load_average_before": round(load0, 2), "load_average_after": round(os.getloadavg()[0], 2)}}
    out = ROOT / "benchmarks" / "results" / "int8.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
