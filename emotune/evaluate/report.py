"""`emotune report DIR`: a Markdown file and a self-contained HTML page for a run, a CV or an ablation grid.

The page embeds its figures (base64 PNG), so it can be mailed or attached to a paper's supplement, and it
ends with the exact commands and resolved configs that produced the numbers.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from emotune.errors import EmotuneError

METRICS = ("wa", "ua", "macro_f1", "weighted_f1")


def kind_of(d: Path) -> str:
    if (d / "grid.yaml").exists():
        return "grid"
    if (d / "summary.json").exists():
        return "cv"
    if (d / "config.yaml").exists() and any(d.glob("eval_*/metrics.json")):
        return "run"
    raise EmotuneError(f"{d}: not a run, CV or grid directory (no config.yaml with eval_*/metrics.json, summary.json or grid.yaml)")


class Page:
    """Collects sections once and renders them as Markdown (figures as relative links) and HTML (inline)."""

    def __init__(self, title: str, base: Path):
        self.title, self.base = title, base
        self.md: list[str] = [f"# {title}\n"]
        self.html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def text(self, text: str) -> None:
        self.md.append(text + "\n")
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md.append("| " + " | ".join(header) + " |\n|" + "---|" * len(header) + "\n" +
                       "".join("| " + " | ".join(r) + " |\n" for r in rows))
        cells = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
        self.html.append(f"<table><thead><tr>{cells}</tr></thead><tbody>{body}</tbody></table>")

    def image(self, path: Path, caption: str) -> None:
        if not path.exists():
            return
        rel = path.relative_to(self.base).as_posix() if self.base in path.parents else path.as_posix()
        self.md.append(f"![{caption}]({rel})\n")
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(caption)}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def code(self, text: str) -> None:
        self.md.append("```\n" + text.rstrip() + "\n```\n")
        self.html.append(f"<pre>{html.escape(text)}</pre>")

    def write(self, out_md: Path, out_html: Path) -> None:
        out_md.write_text("\n".join(self.md), encoding="utf-8")
        style = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
                 "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
                 "th{background:#f3f3f3}td:first-child{text-align:left}img{max-width:100%}"
                 "pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:12px}figure{margin:1em 0}")
        out_html.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>"
                            f"<style>{style}</style></head><body>{''.join(self.html)}</body></html>", encoding="utf-8")


def _fmt(v) -> str:
    """Scores with 3 decimals; counts (support, invalid answers) as the whole numbers they are."""
    if isinstance(v, int) and not isinstance(v, bool):
        return str(v)
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _provenance(page: Page, d: Path) -> None:
    page.heading("How this was produced")
    for name in ("command.txt",):
        if (d / name).exists():
            page.code((d / name).read_text(encoding="utf-8"))
    for name in ("config.yaml", "grid.yaml"):
        if (d / name).exists():
            page.text(name)
            page.code((d / name).read_text(encoding="utf-8"))


def _run_section(page: Page, d: Path, level: int = 2) -> None:
    from emotune.evaluate.writer import headline_metrics

    for ev in sorted(d.glob("eval_*/metrics.json")):
        m = headline_metrics(json.loads(ev.read_text()))  # strict figures at top level, whatever the file's age
        page.heading(f"{d.name}: {ev.parent.name}", level)
        page.table(["metric", "value"], [[k, _fmt(m[k])] for k in (*METRICS, "invalid", "micro_f1") if k in m])
        if "lenient" in m:
            lenient = m["lenient"]
            page.text(f"Generated answers: {m.get('invalid', 0)} invalid ({m.get('invalid_rate', 0):.1%}), counted as "
                      f"wrong in the figures above and below. On the {lenient.get('n', '?')} valid answers only: "
                      + ", ".join(f"{k} {_fmt(lenient[k])}" for k in (*METRICS, "micro_f1") if k in lenient) + ".")
        pc = m.get("per_class") or {}
        if pc:
            page.table(["class", "precision", "recall", "f1", "support"],
                       [[n, *(_fmt(pc[n].get(k)) for k in ("precision", "recall", "f1", "support"))] for n in pc])
        page.image(ev.parent / "per_class.png", "per-class precision / recall / F1")
        page.image(ev.parent / "confusion.png", "confusion matrix")


def report(d: str | Path) -> tuple[Path, Path]:
    d = Path(d)
    if not d.is_dir():
        raise EmotuneError(f"{d}: no such directory")
    kind = kind_of(d)
    page = Page(f"emotune report: {d.name} ({kind})", d)
    if kind == "run":
        _run_section(page, d)
    elif kind == "cv":
        s = json.loads((d / "summary.json").read_text())
        page.text(f"{len(s['folds'])} folds, split '{s.get('split', 'test')}'. Every fold was trained from the same initial weights.")
        page.table(["metric", "mean", "std", "per fold"],
                   [[k, _fmt(s[k]["mean"]), _fmt(s[k]["std"]), " ".join(f"{v:.3f}" for v in s[k]["per_fold"])] for k in METRICS if k in s])
        if s.get("per_class_recall"):
            names = list(s["per_class_recall"])
            page.table(["class", "recall mean", "recall std"],
                       [[n, _fmt(s["per_class_recall"][n]["mean"]), _fmt(s["per_class_recall"][n]["std"])] for n in names])
            page.image(d / "per_class_pooled.png", "per class, pooled over folds")
        page.image(d / "confusion_sum.png", "confusion matrix summed over folds")
        page.heading("Folds")
        for fold in s["folds"]:
            if (d / fold).is_dir():
                _run_section(page, d / fold, level=3)
    else:
        page.text("Each cell: mean ± std over folds.")
        if (d / "table.md").exists():
            page.md.append((d / "table.md").read_text(encoding="utf-8"))
            rows = [l.strip().strip("|").split("|") for l in (d / "table.md").read_text().splitlines() if l.startswith("|")]
            if len(rows) > 2:
                page.html.append("<table><thead><tr>" + "".join(f"<th>{html.escape(c.strip())}</th>" for c in rows[0]) +
                                 "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in r) + "</tr>"
                                                                  for r in rows[2:]) + "</tbody></table>")
        page.image(d / "figure.png", "ablation figure")
        for setting_dir in sorted(p for p in d.iterdir() if p.is_dir()):
            for run in sorted(p.parent for p in setting_dir.glob("*/DONE")):
                page.image(run / "eval_test" / "confusion.png", f"{setting_dir.name} / {run.name}: confusion")
    _provenance(page, d)
    out_md, out_html = d / "report.md", d / "report.html"
    page.write(out_md, out_html)
    return out_md, out_html
