"""IEMOCAP (Busso et al. 2008), read from the official release tree (or, on request, the Emotion-LLaMA pickle).

The release tree (root = the folder holding Session1 … Session5):

    SessionN/dialog/EmoEvaluation/<dialog>.txt    one block per turn, blocks separated by blank lines:
        [6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]
        C-E2:<TAB>Neutral;<TAB>()                  categorical evaluator E2; may name several: "Anger; Frustration;"
        C-F1:<TAB>Neutral;<TAB>(curious)           the actor's own rating (F1/M1): kept in meta, not a vote
        A-E3:<TAB>val 3; act 2; dom  2;<TAB>()     dimensional evaluator (the summary line holds the means)
    SessionN/dialog/transcriptions/<dialog>.txt   Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.
    SessionN/sentences/wav/<dialog>/<turn>.wav    one file per turn
    SessionN/dialog/avi/DivX/<dialog>.avi         the whole dialogue; meta start/end give the turn's span

Labels of a turn:
    label   the summary line's majority code; `xxx` (evaluators did not agree) → None, its votes are kept
    soft    the categorical evaluators' (C-E*) votes: each evaluator has one vote, split evenly over the
            categories it named, then normalised over evaluators
    labels  every category named by at least `multi_min_votes` C-E evaluators (default 2): an emotion that
            more than one person heard. With 1, any single evaluator's category counts.
Valence / activation / dominance of the summary line go to meta; group = session (leave-one-session-out
keeps both actors of a session on one side).

The Emotion-LLaMA IEMOCAP fork ships a pickle instead: a list of dicts with `id`, `emotion` (3-letter code),
`emo_evo` (per-evaluator categories), `transcription` and .npy feature paths. Unpickling can run code, so it
is read only with `--trust-pickle` (options["trust_pickle"]), and even then only plain containers, strings,
numbers and numpy arrays are accepted.
"""

from __future__ import annotations

import io
import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

from emotune.data.labels import LabelSet, load_label_set
from emotune.data.sample import Problem, Sample
from emotune.data.sources import Row
from emotune.data.splits import natural_key
from emotune.errors import EmotuneError

LABEL_SET = "iemocap"
OPTIONS = (  # anything else is a typo, reported (trust_pickle is the CLI flag, set for every dataset)
    "label_set", "multi_min_votes", "pickle", "trust_pickle")
# The majority label is the annotation of record: `--subset iemocap4` keeps a turn only when it is in the subset.
SUBSET_BY_LABEL = True
NO_AGREEMENT = "xxx"
PICKLE_EXT = (".pkl", ".pickle")

SUMMARY = re.compile(r"^\[\s*(?P<start>\d+(?:\.\d+)?)\s*-\s*(?P<end>\d+(?:\.\d+)?)\s*\]\s+(?P<turn>\S+)\s+(?P<code>\S+)\s+"
                     r"\[\s*(?P<v>\d+(?:\.\d+)?)\s*,\s*(?P<a>\d+(?:\.\d+)?)\s*,\s*(?P<d>\d+(?:\.\d+)?)\s*\]\s*$")
EVALUATOR = re.compile(r"^(?P<kind>[CA])-(?P<who>[A-Za-z]+\d*):(?P<rest>.*)$")
TRANSCRIPT = re.compile(r"^(?P<turn>\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
SELF_RATER = re.compile(r"^[FM]\d*$")  # C-F1 / C-M1: the actors rating themselves
# Spellings of the evaluator lines that are not 3-letter codes or label-set aliases.
EXTRA_SPELLINGS = {"neutral state": "neutral", "excitement": "excited"}


def read(root: Path, options: dict) -> Iterator[Row | Problem]:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise EmotuneError(f"unknown iemocap option(s) {', '.join(unknown)}; known: {', '.join(OPTIONS)}")
    labels = load_label_set(LABEL_SET)
    min_votes = options.get("multi_min_votes", 2)
    if not isinstance(min_votes, int) or isinstance(min_votes, bool) or min_votes < 1:
        raise EmotuneError(f"option multi_min_votes must be a whole number >= 1, got {min_votes!r}")
    pickle_name = options.get("pickle")
    if root.is_file() and root.suffix.lower() in PICKLE_EXT:
        yield from read_pickle(root, labels, bool(options.get("trust_pickle")), min_votes)
        return
    files = sorted((p for p in root.glob("Session*/dialog/EmoEvaluation/*.txt") if not p.name.startswith("._")),
                   key=lambda p: natural_key(p.relative_to(root).as_posix()))
    if pickle_name is None and not files:
        found = sorted(p.name for p in root.iterdir() if p.suffix.lower() in PICKLE_EXT) if root.is_dir() else []
        if len(found) == 1:
            pickle_name = found[0]
    if pickle_name is not None:
        yield from read_pickle(root / str(pickle_name), labels, bool(options.get("trust_pickle")), min_votes)
        return
    if not files:
        yield Problem(str(root), None, "no IEMOCAP files found (expected SessionN/dialog/EmoEvaluation/*.txt, "
                                       "or one .pkl of the Emotion-LLaMA layout with --trust-pickle)")
        return
    for path in files:
        yield from read_evaluation(root, path, labels, min_votes)


def read_evaluation(root: Path, path: Path, labels: LabelSet, min_votes: int) -> Iterator[Row | Problem]:
    """The turns of one EmoEvaluation file, each with its votes, transcript and media paths."""
    session_dir = path.parents[2]
    session, dialog = session_dir.name, path.stem
    texts = read_transcript(session_dir / "dialog" / "transcriptions" / f"{dialog}.txt")
    avi = f"{session}/dialog/avi/DivX/{dialog}.avi"
    video = avi if (root / avi).exists() else None
    turns: list[dict] = []
    current: Optional[dict] = None
    in_bad_block = False  # after a malformed summary line, its evaluator lines belong to no turn
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError as exc:
        yield Problem(str(path), None, f"not UTF-8 text ({exc.reason} at byte {exc.start})")
        return
    for line_no, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("%"):  # the release opens each file with a "% [START_TIME - ..." legend
            continue
        if line.startswith("["):
            m = SUMMARY.match(line)
            if not m:
                yield Problem(str(path), line_no, "malformed summary line: expected "
                                                  "'[start - end]<TAB>turn<TAB>code<TAB>[V, A, D]'")
                current, in_bad_block = None, True
                continue
            code = m["code"].lower()
            label = None if code == NO_AGREEMENT else labels.canonical(code)
            if code != NO_AGREEMENT and label is None:
                yield Problem(str(path), line_no, f"turn {m['turn']}: unknown emotion code '{m['code']}'")
                current, in_bad_block = None, True
                continue
            current = {"line": line_no, "turn": m["turn"], "code": code, "label": label, "start": float(m["start"]),
                       "end": float(m["end"]), "vad": (float(m["v"]), float(m["a"]), float(m["d"])),
                       "votes": {}, "self": {}, "bad": False}
            turns.append(current)
            in_bad_block = False
            continue
        m = EVALUATOR.match(line)
        if not m:
            yield Problem(str(path), line_no, f"unrecognised line '{line[:40]}' (expected a summary, C- or A- line)")
            if current is not None:
                current["bad"] = True
            continue
        if current is None:
            if not in_bad_block:
                yield Problem(str(path), line_no, f"evaluator line {m['kind']}-{m['who']} before any summary line")
            continue
        if m["kind"] == "A":  # dimensional ratings: their means are already on the summary line
            continue
        try:
            cats = parse_categories(m["rest"], labels)
        except ValueError as exc:
            yield Problem(str(path), line_no, f"turn {current['turn']}: {exc}")
            current["bad"] = True
            continue
        if cats:
            (current["self"] if SELF_RATER.match(m["who"]) else current["votes"])[m["who"]] = cats
    # Dialogue order by start time, so context-aware prompts can rebuild the conversation.
    order = {t["turn"]: i for i, t in enumerate(sorted(turns, key=lambda t: (t["start"], t["turn"])))}
    for t in turns:
        if t["bad"]:
            continue
        soft, multi = vote_targets(t["votes"], labels, min_votes)
        turn = t["turn"]
        speaker = turn.rsplit("_", 1)[-1][:1].upper()
        meta = {"dialogue": dialog, "turn": order[turn], "speaker": f"{turn[:5]}{speaker}",
                "gender": {"F": "female", "M": "male"}.get(speaker), "start": t["start"], "end": t["end"],
                "valence": t["vad"][0], "activation": t["vad"][1], "dominance": t["vad"][2],
                "code": t["code"], "votes": t["votes"], "improvised": "_impro" in dialog}
        if t["self"]:
            meta["self_evaluation"] = next(iter(t["self"].values()))
        sample = Sample(id=turn, dataset="iemocap", label=t["label"], labels=multi, soft=soft, text=texts.get(turn, ""),
                        audio=f"{session}/sentences/wav/{dialog}/{turn}.wav", video=video, group=session, meta=meta)
        yield Row(sample, str(path), t["line"])


def parse_categories(rest: str, labels: LabelSet) -> list[str]:
    """'\\tFrustration; Anger;\\t(comment)' → ['frustrated', 'angry'] (canonical, in the order named)."""
    text = re.sub(r"\([^)]*\)\s*$", "", rest.strip()).strip()  # drop the trailing free-text comment
    out: list[str] = []
    for item in (c.strip() for c in text.split(";")):
        if not item:
            continue
        name = canonical_category(item, labels)
        if name is None:
            raise ValueError(f"unknown category '{item}'")
        if name not in out:
            out.append(name)
    return out


def canonical_category(item: str, labels: LabelSet) -> Optional[str]:
    # "Other" may carry the evaluator's own word ("Other:nervous"): the category is still other.
    if re.match(r"^other\b", item, re.IGNORECASE):
        return "other"
    return labels.canonical(item) or EXTRA_SPELLINGS.get(item.lower())


def vote_targets(votes: dict[str, list[str]], labels: LabelSet, min_votes: int) -> tuple[Optional[dict], list[str]]:
    """Soft distribution (one vote per evaluator, split over its categories) and the multi-label list."""
    if not votes:
        return None, []
    weight: Counter = Counter()
    named_by: Counter = Counter()
    for cats in votes.values():
        for c in cats:
            weight[c] += 1.0 / len(cats)
            named_by[c] += 1
    total = sum(weight.values())
    order = [n for n in labels.full if n in weight]
    soft = {n: weight[n] / total for n in order}
    multi = [n for n in order if named_by[n] >= min_votes]
    return soft, multi


def read_transcript(path: Path) -> dict[str, str]:
    """turn → text; lines of another shape (none in the release, but copies vary) are ignored."""
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        m = TRANSCRIPT.match(line.strip())
        if m:
            out[m["turn"]] = m["text"].strip()
    return out


class _PlainUnpickler(pickle.Unpickler):
    """Rebuilds only containers, strings, numbers and numpy arrays; any other class is refused by name."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it needs {module}.{name}, which emotune does not unpickle "
                                         "(only lists, dicts, strings, numbers and numpy arrays)")
        return super().find_class(module, name)


def read_pickle(path: Path, labels: LabelSet, trusted: bool, min_votes: int) -> Iterator[Row | Problem]:
    if not path.is_file():
        yield Problem(str(path), None, "pickle file not found")
        return
    if not trusted:
        raise EmotuneError(f"{path}: refusing to read a pickle: unpickling can run arbitrary code. Pass "
                           "--trust-pickle (options trust_pickle=true) only if you trust where this file came from")
    try:
        entries = _PlainUnpickler(io.BytesIO(path.read_bytes())).load()
    except Exception as exc:  # a corrupt or hostile pickle can raise anything; report it as bad input
        raise EmotuneError(f"{path}: cannot read pickle: {exc}") from None
    if isinstance(entries, dict) and all(isinstance(v, dict) for v in entries.values()):
        entries = [{"id": k, **v} for k, v in entries.items()]
    if not isinstance(entries, list):
        raise EmotuneError(f"{path}: expected a list of dicts (id, emotion, emo_evo, transcription, ...), "
                           f"got {type(entries).__name__}")
    for n, entry in enumerate(entries, 1):
        # Entries have no line numbers: the entry's position stands in for one.
        where = f"entry {n}"
        if not isinstance(entry, dict):
            yield Problem(str(path), n, f"{where}: expected a dict, got {type(entry).__name__}")
            continue
        sid = str(entry.get("id") or entry.get("name") or "")
        session = re.match(r"^Ses0?(\d+)", sid)
        if not session:
            yield Problem(str(path), n, f"{where}: id '{sid}' is not an IEMOCAP turn name (SesNN...)")
            continue
        code = str(entry.get("emotion", "")).strip().lower()
        label = None if code == NO_AGREEMENT else labels.canonical(code)
        if code != NO_AGREEMENT and label is None:
            yield Problem(str(path), n, f"{where}: unknown emotion code '{entry.get('emotion')}'")
            continue
        votes: dict[str, list[str]] = {}
        try:
            for i, v in enumerate(entry.get("emo_evo") or [], 1):
                who, text = _vote(v)
                cats = parse_categories(text, labels)
                if cats and not SELF_RATER.match(who or ""):
                    votes[who or f"E{i}"] = cats
        except ValueError as exc:
            yield Problem(str(path), n, f"{where}: emo_evo: {exc}")
            continue
        soft, multi = vote_targets(votes, labels, min_votes)
        features = {k: v for k, v in entry.items() if isinstance(v, str) and v.lower().endswith(".npy")}
        dialog = sid.rsplit("_", 1)[0]
        meta = {"dialogue": dialog, "code": code, "votes": votes, "features": features}
        text = str(entry.get("transcription") or entry.get("text") or "").strip()
        sample = Sample(id=sid, dataset="iemocap", label=label, labels=multi, soft=soft, text=text,
                        group=f"Session{int(session[1])}", meta=meta)
        yield Row(sample, str(path), n)


def _vote(v) -> tuple[Optional[str], str]:
    """One evaluator's vote as stored in emo_evo: a list of categories, or the text of a C- line."""
    if isinstance(v, (list, tuple)):
        return None, ";".join(str(c) for c in v)
    m = EVALUATOR.match(str(v).strip())
    return (m["who"], m["rest"]) if m else (None, str(v))
