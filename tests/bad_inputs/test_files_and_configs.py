"""Bad text, labels, paths and configs through the `emotune` command: one line saying which file (and
line) and what is wrong, exit status 2, no traceback; with --skip-invalid the valid rows are kept and a
report lists the rest.

Covered elsewhere and not repeated here: unknown labels and malformed rows in MER/IEMOCAP annotation
files (tests/data/test_bad_inputs.py), pickles without --trust-pickle (tests/data/test_bad_inputs.py,
tests/data/test_iemocap.py), config errors in the library (tests/test_config.py).
"""

from __future__ import annotations

import pytest

from emotune.cli import main
from emotune.data.labels import load_label_set
from emotune.data.sample import Sample, read_manifest, validate, write_manifest
from emotune.errors import EmotuneError
from tests.data.test_mer import write_mer_tree

LATIN1 = "Caf\xe9 au lait, s'il vous pla\xeet.".encode("latin-1")  # what a spreadsheet saves as "CSV" on some systems
HEADER = '{"emotune_manifest": 1, "dataset": "x", "root": ".", "label_set": "ravdess", "subset": "all"}\n'


def run(capsys, *args) -> tuple[int, list[str]]:
    """The real command in this process: exit status and the lines it printed on stderr."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.strip().splitlines()


def one_error(capsys, *args) -> str:
    code, lines = run(capsys, *args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def _meld_tree(root):
    root.mkdir()
    head = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
    for split in ("train", "dev", "test"):
        (root / f"{split}_sent_emo.csv").write_text(head + "1,Hello there.,Ross,neutral,neutral,0,0\n", encoding="utf-8")
    return root


def test_non_utf8_text_files_name_the_file(tmp_path, capsys):
    # A table (the generic adapter)
    table = tmp_path / "table"
    table.mkdir()
    (table / "t.csv").write_bytes(b"id,label,text\na,happy," + LATIN1 + b"\n")
    line = one_error(capsys, "prepare", "table", table, "-o", tmp_path / "t.jsonl", "--option", "label_set=ravdess",
                     "--option", "label=label", "--option", "text=text")
    assert "t.csv: not UTF-8 text" in line

    # MER2023's transcript: stops the whole prepare even with --skip-invalid (every sample would lose its text)
    mer = write_mer_tree(tmp_path / "mer")
    csv = mer / "transcription.csv"
    csv.write_bytes(csv.read_bytes() + b"sample_00000009," + LATIN1 + b"\n")
    for extra in ([], ["--skip-invalid"]):
        line = one_error(capsys, "prepare", "mer", mer, "-o", tmp_path / "mer.jsonl", *extra)
        assert "transcription.csv: not UTF-8 text" in line
    assert not (tmp_path / "mer.jsonl").exists()

    # MELD: a split file re-saved in a legacy encoding is refused whole, not read up to the bad byte
    meld = _meld_tree(tmp_path / "meld")
    with open(meld / "dev_sent_emo.csv", "ab") as f:
        f.write(b"2," + LATIN1 + b",Ross,joy,positive,0,1\n")
    for extra in ([], ["--skip-invalid"]):
        line = one_error(capsys, "prepare", "meld", meld, "-o", tmp_path / "meld.jsonl", *extra)
        assert "dev_sent_emo.csv: not UTF-8 text" in line

    # A manifest edited by hand
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(HEADER.encode() + b'{"id": "a", "dataset": "x", "text": "' + LATIN1 + b'"}\n')
    line = one_error(capsys, "data", "stats", manifest)
    assert f"{manifest}:2: not UTF-8 text" in line

    # A recipe
    recipe = tmp_path / "r.yaml"
    recipe.write_bytes(b"name: " + LATIN1 + b"\n")
    assert "r.yaml: not UTF-8 text" in one_error(capsys, "features", recipe)


def test_empty_transcripts_and_labels_outside_the_set(tmp_path, capsys):
    root = tmp_path / "table"
    root.mkdir()
    (root / "t.csv").write_text("id,label,text\n"
                                "a,happy,What a lovely surprise.\n"
                                "b,sad,\n"  # an empty transcript and no media: nothing to learn from
                                "c,joyful,I won!\n"  # not a RAVDESS label
                                "d,angry,   \n"  # whitespace only: as empty
                                "e,Angry,Get out.\n", encoding="utf-8")  # case is forgiven
    out = tmp_path / "m.jsonl"
    args = ["prepare", "table", root, "-o", out, "--option", "label_set=ravdess", "--option", "label=label",
            "--option", "text=text"]
    line = one_error(capsys, *args)
    assert "t.csv:4: unknown label 'joyful' (label set ravdess:" in line and "(and 2 more;" in line
    assert not out.exists()

    code, _ = run(capsys, *args, "--skip-invalid")
    assert code == 0
    assert [(s.id, s.label) for s in read_manifest(out).samples] == [("a", "happy"), ("e", "angry")]
    report = (tmp_path / "m.jsonl.invalid.txt").read_text().splitlines()
    assert sorted(report) == sorted([f"{root / 't.csv'}:4: unknown label 'joyful' (label set ravdess: "
                                     "neutral, calm, happy, sad, angry, fearful, disgust, surprised)",
                                     f"{root / 't.csv'}:3: sample 'b': no media and no text",
                                     f"{root / 't.csv'}:5: sample 'd': no media and no text"])


def test_empty_text_is_reported_missing_for_text_features(tmp_path):
    from emotune.features.store import ensure_features

    path = tmp_path / "m.jsonl"
    write_manifest(path, "x", tmp_path, "ravdess", "all", [Sample(id=i, dataset="x", text="") for i in "ab"])
    summary = ensure_features(read_manifest(path), ["minilm"], tmp_path / "cache", progress=False)["minilm"]
    assert summary["done"] == 0 and summary["missing"] == {"no text in sample": 2}


@pytest.mark.parametrize("rel", ["../../etc/passwd", "clips/../../outside.wav"])
def test_media_paths_cannot_leave_the_dataset_root(tmp_path, capsys, rel):
    root = tmp_path / "data"
    (root / "clips").mkdir(parents=True)
    # Reading: a manifest naming the path is refused before any file is opened.
    path = tmp_path / "m.jsonl"
    write_manifest(path, "x", root, "ravdess", "all", [Sample(id="a", dataset="x", label="happy", audio=rel)])
    m = read_manifest(path)
    with pytest.raises(EmotuneError, match="escapes the dataset root"):
        m.media_path(m.samples[0], "audio")
    problems = validate(m.samples, m.root, load_label_set("ravdess"))
    assert len(problems) == 1 and f"media path '{rel}' escapes the dataset root" in str(problems[0])

    # Preparing: a table row pointing outside its root is one line, or a line of the report.
    (root / "t.csv").write_text(f"id,label,audio\nok,happy,clips/fine.wav\nbad,sad,{rel}\n", encoding="utf-8")
    (root / "clips" / "fine.wav").write_bytes(b"RIFF")
    args = ["prepare", "table", root, "-o", tmp_path / "p.jsonl", "--option", "label_set=ravdess", "--option", "label=label",
            "--option", "audio=audio", "--option", "file=t.csv"]
    assert "t.csv:3: sample 'bad': media path" in one_error(capsys, *args)
    code, _ = run(capsys, *args, "--skip-invalid")
    assert code == 0 and [s.id for s in read_manifest(tmp_path / "p.jsonl").samples] == ["ok"]


@pytest.mark.parametrize("text, overrides, message", [
    ("features:\n  extractors: [egemaps,\n", [], "r.yaml:line 3 malformed YAML"),
    ("- just\n- a list\n", [], "r.yaml: expected a YAML mapping at the top level"),
    ("features:\n  extractorz: [egemaps]\n", [], "unknown key 'features.extractorz' ("),
    ("{}\n", ["features.workerz=2"], "unknown key 'features.workerz' (command line); known keys here:"),
    ("features:\n  workers: two\n", [], "features.workers: expected int"),
])
def test_recipe_mistakes_through_the_cli(tmp_path, capsys, text, overrides, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text, encoding="utf-8")
    line = one_error(capsys, "features", recipe, *overrides)
    assert message in line, line
