"""Bad input through the real CLI: one clear line naming file and line, non-zero exit, no traceback;
with --skip-invalid the valid rows are written and the report lists the rest."""

import pickle
import subprocess
import sys

import pytest

from emotune.data.sample import read_manifest
from tests.data.test_iemocap import fork_entries, write_iemocap_tree
from tests.data.test_mer import write_mer_tree

EVAL = "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "emotune.cli", *map(str, args)], capture_output=True, text=True)


def replace_in(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def missing_audio(root):
    (root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M001.wav").unlink()
    return [], f"{EVAL}:25: sample 'Ses01F_impro01_M001': audio file not found"


def unknown_summary_code(root):
    replace_in(root / EVAL, "Ses01F_impro01_F001\texc", "Ses01F_impro01_F001\tjoy")
    return [], f"{EVAL}:18: turn Ses01F_impro01_F001: unknown emotion code 'joy'"


def unknown_evaluator_category(root):
    replace_in(root / EVAL, "C-E2:\tSadness;", "C-E2:\tSadnes;")
    return [], f"{EVAL}:27: turn Ses01F_impro01_M001: unknown category 'Sadnes'"


def malformed_summary_line(root):
    replace_in(root / EVAL, "Ses01F_impro01_M002\tfru\t[2.5000, 3.0000, 3.0000]", "Ses01F_impro01_M002\tfru")
    return [], f"{EVAL}:40: malformed summary line"


def mer_unknown_label(root):
    replace_in(root / "train_label.txt", "sample_00000002 64 angry", "sample_00000002 64 furious")
    return [], "train_label.txt:3: unknown label 'furious'"


def mer_malformed_line(root):
    replace_in(root / "test3_label.txt", "sample_00000005\t51\tsad\t-2.25", "sample_00000005\tsad")
    return [], "test3_label.txt:1: expected 'name n_frames label [valence]', got 2 field(s)"


def mer_transcript_missing_column(root):
    replace_in(root / "transcription.csv", "name,sentence", "name,english_text")
    return ["--option", "transcript=transcription.csv"], "transcription.csv:1: missing column(s): sentence"


CASES = [("iemocap", missing_audio), ("iemocap", unknown_summary_code), ("iemocap", unknown_evaluator_category),
         ("iemocap", malformed_summary_line), ("mer", mer_unknown_label), ("mer", mer_malformed_line),
         ("mer", mer_transcript_missing_column)]
# Two IEMOCAP sessions: 8 + 2 turns; the MER tree: 6 clips.
TREES = {"iemocap": (lambda root: write_iemocap_tree(root, sessions=2), 10), "mer": (write_mer_tree, 6)}


@pytest.mark.parametrize("dataset,corrupt", CASES, ids=[c.__name__ for _, c in CASES])
def test_one_clear_line_then_skip_invalid_keeps_the_rest(dataset, corrupt, tmp_path):
    write_tree, total = TREES[dataset]
    root = write_tree(tmp_path / "data")
    options, expected = corrupt(root)
    out = tmp_path / "m.jsonl"

    r = cli("prepare", dataset, root, "-o", out, *options)
    assert r.returncode != 0 and not out.exists()
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr

    r = cli("prepare", dataset, root, "-o", out, *options, "--skip-invalid")
    assert r.returncode == 0, r.stderr
    written = len(read_manifest(out).samples)
    report = (tmp_path / "m.jsonl.invalid.txt").read_text()
    assert expected in report and "skipped" in r.stdout
    if corrupt is mer_transcript_missing_column:
        assert written == total  # the clips are fine; only their text is missing
    else:
        assert written == total - 1


def test_table_missing_column_is_one_line_even_with_skip_invalid(tmp_path):
    (tmp_path / "t.csv").write_text("clip,emotion\nc1,happy\nc2,sad\n")
    args = ["prepare", "table", tmp_path, "-o", tmp_path / "m.jsonl", "--option", "file=t.csv", "--option", "id=clip",
            "--option", "label=mood", "--option", "text=clip", "--option", "label_set=mer"]
    for extra in ([], ["--skip-invalid"]):  # nothing valid to keep: still an error
        r = cli(*args, *extra)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 't.csv'}:1: missing column 'mood' (option label); "
                                                 "columns are: clip, emotion (--skip-invalid keeps the valid rows and writes a report)"]


def test_pickle_through_the_cli(tmp_path):
    (tmp_path / "fork.pkl").write_bytes(pickle.dumps(fork_entries()))
    r = cli("prepare", "iemocap", tmp_path, "-o", tmp_path / "m.jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "--trust-pickle" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = cli("prepare", "iemocap", tmp_path, "-o", tmp_path / "m.jsonl", "--trust-pickle")
    assert r.returncode == 0, r.stderr
    assert len(read_manifest(tmp_path / "m.jsonl").samples) == 2
