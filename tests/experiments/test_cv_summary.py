"""The CV summary of generate-mode folds is strict: an invalid answer is wrong in the means and the pooled figures."""

import json

import pytest

from emotune.evaluate.writer import write_evaluation
from emotune.experiments.cv import summarise

NAMES = ["happy", "sad"]


def test_pooled_and_mean_figures_count_invalid_answers_as_wrong(tmp_path):
    folds = []
    # fold a: 4 answers, one unparseable; fold b: all 4 right.
    for name, preds in (("a", ["happy", None, "sad", "sad"]), ("b", ["happy", "happy", "sad", "sad"])):
        d = tmp_path / name
        write_evaluation(d / "eval_test", [f"{name}{i}" for i in range(4)], NAMES, None,
                         gold=["happy", "happy", "sad", "sad"], raw_text=[str(p) for p in preds], preds=preds)
        folds.append(d)
    summary = summarise(folds, tmp_path / "cv")
    assert summary["wa"]["per_fold"] == [pytest.approx(0.75), pytest.approx(1.0)]
    assert summary["pooled"]["wa"] == pytest.approx(7 / 8)  # not 7/7: the invalid answer stays in
    assert summary["per_class_recall"]["happy"]["mean"] == pytest.approx(0.75)
    assert json.loads((tmp_path / "cv" / "summary.json").read_text())["pooled"]["ua"] == pytest.approx((3 / 4 + 1) / 2)



def test_validation_figures_are_summarised_beside_the_test_and_shown_in_ablation_tables(tmp_path):
    """Settings are compared on the folds' validation groups: the CV summary and the grid table carry them."""
    from emotune.experiments.ablate import Grid, collect, write_table

    gold = ["happy", "happy", "sad", "sad"]
    for setting, val_preds in (("a", [["happy", "sad", "sad", "sad"], gold]), ("b", [gold, gold])):
        for k, vp in enumerate(val_preds):
            d = tmp_path / setting / f"fold{k}"
            write_evaluation(d / "eval_test", [f"t{i}" for i in range(4)], NAMES, None, gold=gold, preds=gold)
            write_evaluation(d / "eval_val", [f"v{i}" for i in range(4)], NAMES, None, gold=gold, preds=vp)
            (d / "DONE").write_text("")
    summary = summarise(sorted((tmp_path / "a").glob("fold*")), tmp_path / "cv")
    assert summary["validation"]["wa"]["per_fold"] == [pytest.approx(0.75), pytest.approx(1.0)]
    assert summary["wa"]["mean"] == pytest.approx(1.0)  # the test side is its own figure
    grid = Grid(base="configs/quickstart.yaml", settings={"a": [], "b": []}, metrics=["wa"])
    rows = collect(grid, tmp_path)
    assert [r["val_wa"] for r in rows] == [pytest.approx(0.875), pytest.approx(1.0)]
    write_table(grid, rows, tmp_path)
    assert (tmp_path / "table.md").read_text().splitlines()[0] == "| setting | folds | val_wa | wa |"
    missing = tmp_path / "b" / "fold0" / "eval_val" / "metrics.json"
    missing.unlink()
    assert "val_wa" not in collect(grid, tmp_path)[1]  # only when every fold has one
    assert "validation" not in summarise(sorted((tmp_path / "b").glob("fold*")), tmp_path / "cv2")

def test_max_val_limits_the_validation_side_only(tmp_path):
    """data.max_val: a stratified part of a large dev set for per-epoch validation; the test side stays whole."""
    from emotune.config import load_config
    from emotune.data.sample import Sample, read_manifest, write_manifest
    from emotune.experiments.run import fold_data, folds_for

    labels = ["happy", "sad"]
    samples = [Sample(id=f"{sp}{i}", dataset="table", label=labels[i % 2], text="x", split=sp)
               for sp, n in (("train", 40), ("dev", 40), ("test", 40)) for i in range(n)]
    write_manifest(tmp_path / "m.jsonl", "table", tmp_path, "ravdess", "all", samples)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ndata: {{dataset: table, root: {tmp_path}, manifest: {tmp_path}/m.jsonl, protocol: official}}\n"
                      "model: {kind: baseline_lr, inputs: []}\n")
    manifest = read_manifest(tmp_path / "m.jsonl")
    for overrides, sizes in (([], (40, 40, 40)), (["data.max_val=10"], (40, 10, 40)),
                             (["data.max_eval=20"], (40, 20, 20)), (["data.max_eval=20", "data.max_val=6"], (40, 6, 20))):
        cfg = load_config(recipe, overrides)
        data = fold_data(cfg, manifest, folds_for(cfg, manifest)[0], {}, {})
        assert (len(data.train), len(data.val), len(data.test)) == sizes, overrides
        if "data.max_val=10" in overrides:
            assert sorted(data.val.hard_labels().tolist()) == [2] * 5 + [3] * 5  # stratified: 5 happy, 5 sad
    # The draws follow the run's seed, or data.split_seed when set (other seeds of a model, same samples).
    drawn = {}
    for overrides in (["seed=0"], ["seed=1"], ["seed=1", "data.split_seed=0"]):
        cfg = load_config(recipe, ["data.max_train=10", "data.max_val=10", *overrides])
        data = fold_data(cfg, manifest, folds_for(cfg, manifest)[0], {}, {})
        drawn[" ".join(overrides)] = (list(data.train.ids), list(data.val.ids))
    assert drawn["seed=1"] != drawn["seed=0"] and drawn["seed=1 data.split_seed=0"] == drawn["seed=0"]
    # Validation groups carved from a fold's training side follow it alike.
    grouped = [Sample(id=f"g{g}_{i}", dataset="table", label=labels[i % 2], text="x", group=f"spk{g}")
               for g in range(8) for i in range(4)]
    write_manifest(tmp_path / "g.jsonl", "table", tmp_path, "ravdess", "all", grouped)
    gm = read_manifest(tmp_path / "g.jsonl")
    val = {}
    for overrides in (["seed=0"], ["seed=1"], ["seed=1", "data.split_seed=0"]):
        cfg = load_config(recipe, [f"data.manifest={tmp_path}/g.jsonl", "data.protocol=group_kfold", "data.folds=4", *overrides])
        val[" ".join(overrides)] = [f.val for f in folds_for(cfg, gm)]
    assert val["seed=1"] != val["seed=0"] and val["seed=1 data.split_seed=0"] == val["seed=0"]


def test_a_model_refit_on_validation_is_compared_on_its_selection_score(tmp_path):
    """The LR refits on training + validation once C is chosen: its scores on the validation groups are
    in-sample (here a perfect 1.0), so the figure carried into summaries and tables is the selection score
    the choice was made on."""
    gold = ["happy", "happy", "sad", "sad"]
    folds = []
    for k, selection in enumerate((0.6, 0.7)):
        d = tmp_path / f"fold{k}"
        write_evaluation(d / "eval_test", [f"t{i}" for i in range(4)], NAMES, None, gold=gold, preds=gold)
        write_evaluation(d / "eval_val", [f"v{i}" for i in range(4)], NAMES, None, gold=gold, preds=gold)
        (d / "history.json").write_text(json.dumps({"C": 0.1, "metric": "ua", "refit_on_validation": True,
                                                    "inner_ua": {"0.1": selection, "1.0": 0.5}}))
        folds.append(d)
    summary = summarise(folds, tmp_path / "cv")
    assert summary["validation"] == {"ua": {"mean": pytest.approx(0.65), "std": pytest.approx(0.05),
                                            "per_fold": [0.6, 0.7]}}
