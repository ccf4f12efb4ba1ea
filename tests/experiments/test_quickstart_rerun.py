"""`emotune quickstart` after an update: a run folder made under the earlier recipe is kept aside, not refused."""

from pathlib import Path

from emotune.config import load_config
from emotune.experiments.quickstart import RECIPE, set_aside_if_changed
from emotune.identity import check_or_claim, make_identity


def claim(overrides: list[str]) -> Path:
    cfg = load_config(str(RECIPE), overrides)
    run = Path(cfg.resolved_run_dir())
    check_or_claim(run, make_identity(cfg, drop=("data.fold",)))
    return run


def test_a_run_of_an_earlier_recipe_is_renamed_aside_and_a_current_one_stays(tmp_path, capsys):
    base = [f"data.manifest={tmp_path}/manifest.jsonl", f"run_dir={tmp_path}/${{name}}", "name=emotion_lm"]
    run = claim([*base, "train.epochs=9"])  # an earlier recipe: another epoch count
    (run / "results.txt").write_text("computed before the update")
    set_aside_if_changed(str(RECIPE), base)
    kept = list(tmp_path.glob("emotion_lm.before-*"))
    assert not run.exists() and len(kept) == 1
    assert (kept[0] / "results.txt").read_text() == "computed before the update"
    err = capsys.readouterr().err
    assert "made under an earlier recipe" in err and "train.epochs 9 →" in err  # what changed
    # A folder of the current recipe stays where it is.
    run = claim(base)
    set_aside_if_changed(str(RECIPE), base)
    assert run.exists() and len(list(tmp_path.glob("emotion_lm.before-*"))) == 1
