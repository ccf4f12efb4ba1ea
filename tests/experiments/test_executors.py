"""The Ray executor: a 2-fold x 2-setting grid gives the same table as local processes; failed runs are
retried, and a run that keeps failing is reported without stopping the others."""

import json
import sys

import pytest

from emotune.errors import EmotuneError
from emotune.experiments.ablate import ablate
from emotune.experiments.executor import ExecutorOptions, Job, run_jobs



@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -r requirements-ray.txt")
    # A local cluster of 2 CPUs shared by the tests of this module (run_jobs leaves a running one alone).
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from emotune.data.synth import build_corpus

    return build_corpus(tmp_path_factory.mktemp("corpus") / "c", speakers=3, log=lambda *_: None).root


def write_grid(tmp, corpus):
    grid = tmp / "grid.yaml"
    grid.write_text(f"""
base: configs/quickstart.yaml
name: pooling
overrides: [data.root={corpus}, data.manifest={tmp}/manifest.jsonl, data.protocol=logo, model.kind=baseline_lr,
            "model.inputs=[logmel]", "features.extractors=[logmel]", features.cache_dir={tmp}/cache]
folds: [0, 1]
settings:
  mean: [model.baseline.pool=mean]
  mean_std: [model.baseline.pool=mean_std]
metrics: [ua, wa, macro_f1]
""")
    return grid


@pytest.mark.slow
def test_ray_grid_equals_local_grid(tmp_path, corpus, ray_cluster):
    grid = write_grid(tmp_path, corpus)
    local = ablate(str(grid), ExecutorOptions(kind="local", jobs=2), root=str(tmp_path / "local"))
    on_ray = ablate(str(grid), ExecutorOptions(kind="ray", cpus_per_run=1), root=str(tmp_path / "ray"))
    runs = sorted(p.relative_to(on_ray) for p in on_ray.glob("*/*/DONE"))
    assert [str(p.parent) for p in runs] == ["mean/fold0_spk01", "mean/fold1_spk02", "mean_std/fold0_spk01", "mean_std/fold1_spk02"]
    table = (on_ray / "table.csv").read_text()
    assert table == (local / "table.csv").read_text()
    assert len(table.strip().splitlines()) == 3  # header + one row per setting
    assert (on_ray / "figure.png").stat().st_size > 0
    # A second call finds everything done and submits nothing.
    again = ablate(str(grid), ExecutorOptions(kind="ray"), root=str(tmp_path / "ray"))
    assert (again / "table.csv").read_text() == table


@pytest.mark.slow
def test_ray_retries_then_reports_what_kept_failing(tmp_path, ray_cluster):
    flaky = tmp_path / "flaky"
    # Fails on its first attempt only (a node lost mid-run looks the same to the driver).
    first_fails = Job("flaky", [sys.executable, "-c", f"import pathlib, sys; p = pathlib.Path({str(flaky / 'tried')!r}); "
                                                       "seen = p.exists(); p.touch(); sys.exit(0 if seen else 3)"], flaky)
    broken = Job("broken", [sys.executable, "-c", "import sys; sys.exit(5)"], tmp_path / "broken")
    fine = Job("fine", [sys.executable, "-c", "print('ok')"], tmp_path / "fine")
    lines = []
    with pytest.raises(EmotuneError) as err:
        run_jobs([first_fails, broken, fine], ExecutorOptions(kind="ray", retries=1), log=lines.append)
    assert "1 of 3 run(s) failed" in str(err.value) and "broken" in str(err.value) and "exit 5" in str(err.value)
    assert (flaky / "train.log").read_text().count("=== attempt at") == 2
    assert (tmp_path / "broken" / "train.log").read_text().count("=== attempt at") == 2  # 1 try + 1 retry
    assert "ok" in (tmp_path / "fine" / "train.log").read_text()
    assert any("flaky finished" in line and "after 2 attempts" in line for line in lines)


def test_only_trains_the_named_settings_and_the_table_keeps_every_finished_one(tmp_path, corpus, capsys):
    """A row added to a grid runs alone (`--only`); rows already run in the folder stay in the table."""
    from emotune.errors import ConfigError

    grid = write_grid(tmp_path, corpus)
    grid.write_text(grid.read_text().replace("folds: [0, 1]", "folds: [0]"))
    out = ablate(str(grid), ExecutorOptions(kind="local"), root=str(tmp_path / "g"), only=["mean_std"])
    assert [p.parent.parent.name for p in out.glob("*/*/DONE")] == ["mean_std"]
    assert "--only mean_std" in (out / "command.txt").read_text()
    ablate(str(grid), ExecutorOptions(kind="local"), root=str(tmp_path / "g"), only=["mean"])
    rows = (out / "table.csv").read_text().strip().splitlines()[1:]
    assert [r.split(",")[0] for r in rows] == ["mean", "mean_std"]
    # --blind: the same grid (nothing left to train) prints each setting's validation figure and no test column.
    capsys.readouterr()
    ablate(str(grid), ExecutorOptions(kind="local"), root=str(tmp_path / "g"), blind=True)
    shown = capsys.readouterr().out
    table = (out / "table.md").read_text()
    assert table.splitlines()[0] not in shown and "| setting | folds | validation |" in shown
    for row in json.loads((out / "rows.json").read_text()):
        assert f"| {row['setting']} | 1 | ua {row['val_ua_cell']} |" in shown
    assert all(line.count("|") == 4 for line in shown.splitlines() if line.startswith("|"))  # three columns
    with pytest.raises(ConfigError, match="no setting named meen"):
        ablate(str(grid), ExecutorOptions(kind="local"), root=str(tmp_path / "g"), only=["meen"])


def test_local_executor_reports_failures_after_running_the_rest(tmp_path):
    broken = Job("broken", [sys.executable, "-c", "import sys; sys.exit(5)"], tmp_path / "broken")
    fine = Job("fine", [sys.executable, "-c", "print('ok')"], tmp_path / "fine")
    with pytest.raises(EmotuneError, match="broken: exit 5"):
        run_jobs([broken, fine], ExecutorOptions(kind="local", jobs=1), log=lambda _: None)
    assert "ok" in (tmp_path / "fine" / "train.log").read_text()
