"""Safe by default: no file a user is handed can run code when emotune reads it (the library never calls
a loader that unpickles or executes; the one pickle reader, for the IEMOCAP fork's files behind
--trust-pickle, rebuilds plain containers only: tests/data/test_iemocap.py::test_trusted_pickle_still_rebuilds_no_callables),
and the servers listen on loopback unless told otherwise."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "emotune"

FORBIDDEN = {
    r"\bpickle\.loads?\(": "pickle.load: use safetensors / JSON, or the restricted unpickler",
    r"\bpickle\.Unpickler\(": "an unrestricted Unpickler",
    r"\b(?:joblib|dill|cloudpickle)\.load": "a pickle-based loader",
    r"allow_pickle\s*=\s*True": "numpy with allow_pickle=True",
    r"\byaml\.(?:unsafe_load|full_load|load)\(": "yaml.load without SafeLoader: use yaml.safe_load",
    r"trust_remote_code\s*=\s*True": "running a model repository's own code",
    r"shell\s*=\s*True": "a shell command line built from data",
    r"(?<![\w.])(?:eval|exec)\(": "eval/exec",
}


def _calls(source: str, name: str) -> list[str]:
    """The argument text of every `name(` call (to the matching parenthesis)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", source):
        depth, i = 1, m.end()
        while depth and i < len(source):
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        out.append(source[m.end(): i - 1])
    return out


def test_no_loader_that_can_run_code():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    found = []
    for path in files:
        source = path.read_text(encoding="utf-8")
        for pattern, why in FORBIDDEN.items():
            for m in re.finditer(pattern, source):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{source.count(chr(10), 0, m.start()) + 1}: {why}")
        for args in _calls(source, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", args):
                found.append(f"{path.relative_to(PACKAGE.parent)}: torch.load without weights_only=True")
    assert not found, "\n".join(found)


def test_the_scan_catches_what_it_is_for():
    assert _calls("x = torch.load(f, map_location=dict(a=1))\n", "torch.load") == ["f, map_location=dict(a=1)"]
    hits = lambda text: [why for pattern, why in FORBIDDEN.items() if re.search(pattern, text)]
    assert len(hits("pickle.loads(b); yaml.load(t); np.load(p, allow_pickle=True); eval(s)")) == 4
    assert hits("model.eval(); yaml.safe_load(t); np.load(p); self.exec_count(3)") == []


def test_servers_listen_on_loopback_unless_told_otherwise():
    from emotune.cli import build_parser
    from emotune.serve.cli import _is_loopback

    parser = build_parser()
    assert parser.parse_args(["serve"]).host == "127.0.0.1"
    assert parser.parse_args(["demo", "runs/x"]).host == "127.0.0.1"
    assert parser.parse_args(["serve"]).api_key is None  # then $EMOTUNE_API_KEY, else open: fine on loopback only
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.5")  # these warn when served without a key
