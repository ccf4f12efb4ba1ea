"""`emotune data stats`: counts per label / split / group and modality coverage, as text tables."""

from __future__ import annotations

from collections import Counter

from emotune.data.labels import label_set_name
from emotune.data.sample import MEDIA_FIELDS, Manifest


def table(title: str, counts: Counter, total: int) -> str:
    width = max([len(str(k)) for k in counts] + [len(title)])
    lines = [f"{title:<{width}}  {'count':>7}  {'share':>6}", f"{'-' * width}  {'-' * 7}  {'-' * 6}"]
    for k, v in counts.most_common():
        lines.append(f"{str(k):<{width}}  {v:>7}  {v / max(total, 1):>6.1%}")
    return "\n".join(lines)


def manifest_stats(m: Manifest) -> dict:
    n = len(m.samples)
    labels = Counter(s.label if s.label is not None else ("(multi: " + ",".join(s.labels) + ")" if s.labels else "(none)")
                     for s in m.samples)
    multi = Counter(l for s in m.samples for l in s.labels)
    splits = Counter(s.split or "(none)" for s in m.samples)
    groups = Counter(s.group or "(none)" for s in m.samples)
    coverage = Counter()
    for s in m.samples:
        for f in MEDIA_FIELDS:
            if getattr(s, f):
                coverage[f] += 1
        if s.text:
            coverage["text"] += 1
    return {"samples": n, "label": labels, "labels_multi": multi, "split": splits, "group": groups, "modality": coverage,
            "multi_label_samples": sum(1 for s in m.samples if len(s.labels) > 1)}


def render(m: Manifest) -> str:
    st = manifest_stats(m)
    n = st["samples"]
    parts = [f"manifest {m.path}: dataset {m.dataset}, {n} samples, label set {label_set_name(m.label_set)}/{m.subset}, "
             f"{len(st['group'])} groups, {st['multi_label_samples']} multi-label samples",
             table("label", st["label"], n)]
    if st["multi_label_samples"]:
        parts.append(table("label (multi-label, any position)", st["labels_multi"], n))
    parts += [table("split", st["split"], n), table("modality", st["modality"], n)]
    groups = st["group"]
    if len(groups) <= 40:
        parts.append(table("group", groups, n))
    else:
        sizes = sorted(groups.values())
        parts.append(f"groups: {len(groups)} (sizes {sizes[0]}..{sizes[-1]}, median {sizes[len(sizes) // 2]})")
    return "\n\n".join(parts)
