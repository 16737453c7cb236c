"""Leaderboard: every experiment config composes and trains a step; records; the report from hand-written records."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest
import torch
from omegaconf import OmegaConf
from conftest import ROOT, SMALL_EXPERIMENT, run_entry

from pdeop.errors import ConfigError
from pdeop.leaderboard.cells import (
    CONF,
    TIERS,
    Cell,
    compose_experiment,
    load_cells,
    tables,
)
from pdeop.leaderboard.record import (
    config_hash,
    deviations,
    epoch_seconds,
    make_benchmark_record,
    make_record,
    parameter_count,
    write_record,
)
from pdeop.leaderboard.report import csv_text, markdown, write_report
from pdeop.leaderboard.run import benchmark, run_slurm

EXPERIMENTS = sorted(f"{p.parent.name}/{p.stem}" for p in (CONF / "experiment").glob("*/*.yaml"))
FEW_SAMPLES = ["data.subsample=1", "data.test_subsamples=[]", "data.n_train=4", "data.n_val=2", "data.n_test=2",
               "data.batch_size=2", "data.generate_workers=1", "trainer.max_epochs=1", "+trainer.limit_train_batches=1"]
ONE_STEP = ["data.n_interior=64", "data.n_boundary=16", "data.steps_per_epoch=1", "trainer.max_steps=1"]
SMALL = {  # per table: the experiment at a size that trains one step in seconds
    "darcy85": SMALL_EXPERIMENT,
    "burgers": ["data.problem.resolution=256", *FEW_SAMPLES],
    "ns1e-5": ["data.problem.resolution=32", "data.problem.dt=0.004", *FEW_SAMPLES],
    "ns1e-3": ["data.problem.resolution=48", "data.problem.dt=0.02", *FEW_SAMPLES],  # FNO-2D's [48, 46] modes fit
    "helmholtz2d": [*ONE_STEP, "data.problem.test_points=20"],
    "poisson1d": [*ONE_STEP, "data.grid_points=50"],
    "skr_darcy": ["--systems=3", "--resolution=18"],  # the benchmark's own options
}


def test_every_cell_has_both_tiers_and_a_paper_node():
    assert sorted(SMALL) == tables()
    for table in tables():
        paper, cpu = load_cells(table, "paper"), load_cells(table, "cpu")
        assert paper and [c.name for c in paper] == [c.name for c in cpu]
        for p, c in zip(paper, cpu):
            assert (p.model, p.paper_value) == (c.model, c.paper_value)
            assert c.metric.startswith("test/") or c.metric == p.metric  # the CPU tier's grid may be coarser
            assert c.scaled and not p.scaled and p.paper_source


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_config_trains_one_step(experiment, tmp_path, monkeypatch):
    table = experiment.split("/")[0]
    small = SMALL[table]
    cell = next(c for tier in TIERS for c in load_cells(table, tier) if c.experiment == experiment)
    if cell.benchmark:  # measured by a script, not trained: it runs and writes the cell's metric
        monkeypatch.chdir(ROOT)  # the script is a file of the checkout, found from its root
        benchmark(cell, tmp_path / "benchmark.json", small)
        rec = make_benchmark_record(cell, tmp_path / "benchmark.json", wall_s=1.0)
        assert rec["measured"] > 0 and rec["command"].startswith("python benchmarks/")
        return
    run_entry(["train.py"], [f"+experiment={experiment}", *small, "test_after_fit=false"], tmp_path / "run", tmp_path)
    assert list((tmp_path / "run" / "checkpoints").glob("last.ckpt"))


def test_every_cells_fourier_modes_fit_its_own_training_grid():
    # train.py refuses neuralop modes that its training grid cannot hold (training/preflight.py). The one-step test
    # above trains on a small grid of its own, where a cell's modes may fit while its real grid holds fewer: the
    # ns1e-3 CPU tier kept the paper's [48, 46] on its 32x32 grid, and its rerun failed at start-up.
    from pdeop.config import subsampled_size
    from pdeop.training.preflight import most_modes

    checked, too_many = [], []
    for experiment in EXPERIMENTS:
        cfg = compose_experiment(experiment)
        n_modes, problem = cfg.model.get("n_modes"), cfg.data.get("problem")
        if n_modes is None or problem is None:
            continue
        grid = most_modes(tuple([subsampled_size(problem.resolution, cfg.data.subsample)] * len(n_modes)))
        checked.append(experiment)
        if any(k > h for k, h in zip(n_modes, grid)):
            too_many.append(f"{experiment}: n_modes {list(n_modes)}, the grid holds {grid}")
    assert not too_many
    assert {"ns1e-3/fno", "ns1e-3/fno_cpu", "darcy85/fno", "darcy85/fno_cpu"} <= set(checked)


def record(model: str, tier: str, measured: float | None, paper: float | None, **extra) -> dict:
    return {"table": "darcy85", "cell": model.lower(), "model": model, "tier": tier,
            "experiment": f"darcy85/{model.lower()}{'_cpu' if tier == 'cpu' else ''}",
            "command": f"python train.py +experiment=darcy85/{model.lower()}{'_cpu' if tier == 'cpu' else ''}",
            "scaled": "200 samples, 20 epochs" if tier == "cpu" else "", "metric": "test/rel_l2_85",
            "measured": measured, "paper": paper, "paper_source": "LSM Table 1" if paper else "",
            "parameters": 1000, "seconds_per_epoch": 2.5, "hardware": "CPU x86_64, 2 cores", "date": "2026-11-23",
            "git_commit": "0123456789abcdef", **extra}


def test_report_from_hand_written_records(tmp_path):
    records = [record("FNO", "cpu", 0.0432, 0.0108), record("LSM", "cpu", 0.0130, 0.0065),
               record("FNO", "paper", 0.0116, 0.0108), record("T1", "cpu", 0.05, None)]
    text = markdown(records)
    assert text.index("## darcy85, tier paper") < text.index("## darcy85, tier cpu")  # tiers in tables of their own
    paper_table = text[text.index("## darcy85, tier paper"):text.index("## darcy85, tier cpu")]
    assert "| FNO | `test/rel_l2_85` | 0.0116 | 0.0108 | 1.07 | -- | 1000 | 2.5 | CPU x86_64, 2 cores | 2026-11-23 " \
           "| 0123456789 | -- |" in paper_table
    assert "Provenance:" not in text
    assert "| LSM |" not in paper_table
    cpu_table = text[text.index("## darcy85, tier cpu"):]
    assert "| FNO | `test/rel_l2_85` | 0.0432 | 0.0108 | 4 |" in cpu_table
    assert "| LSM | `test/rel_l2_85` | 0.013 | 0.0065 | 2 |" in cpu_table
    assert "| T1 | `test/rel_l2_85` | 0.05 | -- | -- | -- |" in cpu_table
    assert "- FNO: `python train.py +experiment=darcy85/fno_cpu`; paper: LSM Table 1; scaled: 200 samples, " \
           "20 epochs" in cpu_table
    rows = list(csv.DictReader(io.StringIO(csv_text(records))))
    assert [(r["tier"], r["model"], r["ratio"]) for r in rows] == [
        ("cpu", "FNO", "4.0"), ("cpu", "LSM", "2.0"), ("cpu", "T1", ""), ("paper", "FNO", str(0.0116 / 0.0108))]
    for r in records:
        write_record(r, tmp_path / "records")
    (tmp_path / "findings").mkdir()
    (tmp_path / "findings" / "darcy85.md").write_text("T1 does not train at 85x85.\n")
    readme, table = write_report(tmp_path / "records", tmp_path)
    text = readme.read_text()
    assert text == markdown(sorted(records, key=lambda r: (r["cell"], r["tier"])),
                            {"darcy85": "T1 does not train at 85x85."})
    assert text.index("### darcy85: findings") > text.index("## darcy85, tier cpu")  # once, after the table's tiers
    assert text.count("T1 does not train") == 1
    assert table.read_text().count("\n") == 5



def test_report_writes_beside_its_records_and_refuses_foreign_files_and_bad_records(tmp_path):
    """``--records <folder>`` wrote the report over the checkout's experiments/leaderboard/ (the default --out); a
    README.md there of someone else's, or a record cut short, was replaced or a traceback."""
    records = tmp_path / "mine" / "records"
    for r in (record("FNO", "cpu", 0.0432, 0.0108), record("LSM", "cpu", 0.0130, 0.0065)):
        write_record(r, records)
    committed = (ROOT / "experiments" / "leaderboard" / "README.md").read_bytes()

    def report(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pdeop.leaderboard", "report", "--records", str(records), *args],
                              cwd=ROOT, capture_output=True, text=True)

    assert report().returncode == 0
    assert "| FNO |" in (tmp_path / "mine" / "README.md").read_text() and (tmp_path / "mine" / "results.csv").is_file()
    assert (ROOT / "experiments" / "leaderboard" / "README.md").read_bytes() == committed
    assert report().returncode == 0  # its own earlier report is replaced
    csv_file = tmp_path / "mine" / "results.csv"
    csv_file.write_text("table,tier,model,metric,measured,paper\n")  # one of a version with fewer columns
    assert report().returncode == 0 and csv_file.read_text().startswith("table,tier,model,metric,measured,paper,")
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README.md").write_text("# Leaderboard\n\nOur lab's own table.\n")  # same title
    refused = report("--out", str(tmp_path / "project"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "README.md' exists and is not an earlier leaderboard report" in refused.stderr
    assert (tmp_path / "project" / "README.md").read_text() == "# Leaderboard\n\nOur lab's own table.\n"
    for text, problem in (('{"table": "darcy85", "cell"', "cannot be read"), ("[1, 2]", "holds a JSON list"),
                          ("{}", "is not a leaderboard record (table, cell, tier, metric missing")):
        (records / "darcy85" / "fno.cpu.json").write_text(text)
        refused = report()
        assert refused.returncode != 0 and "Traceback" not in refused.stderr, refused.stderr[-3000:]
        assert f"fno.cpu.json' {problem}" in refused.stderr, refused.stderr[-3000:]


def test_report_flags_dirty_resumed_and_shortened_records_and_says_how_a_cell_departs():
    dirty = record("FNO", "cpu", 0.03, 0.0108, git_commit="0123456789abcdef-dirty")
    resumed = record("LSM", "cpu", 0.05, 0.0065, resumed_from_epoch=20)
    both = record("T1", "cpu", 0.07, None, git_commit="0123456789abcdef-dirty", resumed_from_epoch=5,
                  departs="another grid")
    text = markdown([dirty, resumed, both, record("U-Net", "cpu", 0.02, 0.008)])
    assert "| 2026-11-23 | 0123456789 | uncommitted changes |" in text
    assert "| 2026-11-23 | 0123456789 | resumed after epoch 20 |" in text
    assert "| 0123456789 | uncommitted changes; resumed after epoch 5 |" in text
    assert "| U-Net | `test/rel_l2_85` | 0.02 | 0.008 | 2.5 | -- | 1000 | 2.5 | CPU x86_64, 2 cores | 2026-11-23 " \
           "| 0123456789 | -- |" in text
    assert "Provenance: a record made from a tree with uncommitted changes" in text
    assert "- T1: `python train.py +experiment=darcy85/t1_cpu`; paper: no published figure; not the paper's setting: " \
           "another grid; scaled: " in text
    shortened = record("MgNO", "cpu", 0.09, 0.0059, options=["trainer.max_epochs=2"])
    assert "| 0123456789 | run with trainer.max_epochs=2 beyond its command |" in markdown([shortened])
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(csv_text([dirty, resumed, both])))}
    assert rows["FNO"]["provenance"] == "uncommitted changes" and rows["LSM"]["provenance"] == "resumed after epoch 20"
    assert rows["T1"]["departs"] == "another grid" and rows["FNO"]["departs"] == ""


def test_cells_that_are_not_the_papers_setting_say_so():
    departing = {c.experiment for t in tables() for tier in TIERS for c in load_cells(t, tier) if c.departs}
    assert {"ns1e-5/mgno", "ns1e-5/mgno_cpu", "helmholtz2d/pinn", "darcy85/mgno", "skr_darcy/none_1e-5"} <= departing
    pinn = next(c for c in load_cells("helmholtz2d", "paper") if c.name == "pinn")
    assert pinn.paper_value is None and "0.402" in pinn.paper_source  # PIG's quoted PINN weighs its terms equally


def test_darcy85_mgno_paper_cell_has_the_reference_darcy_smooth_model():
    # MgNO_DC_smooth, 5 x 24, counted by instantiating the reference: 678,093 (tests/test_models.py), in both
    # tiers; pdeop's default 4x4 kernels everywhere would give 738,573.
    from omegaconf import OmegaConf

    from pdeop.training.finetune import build_model

    counts = {}
    for experiment in ("darcy85/mgno", "darcy85/mgno_cpu"):
        config = OmegaConf.to_container(compose_experiment(experiment).model, resolve=True)
        counts[experiment] = sum(p.numel() for p in build_model(config).parameters())
    assert counts == {"darcy85/mgno": 678_093, "darcy85/mgno_cpu": 678_093}


def ns_record(metrics: dict, metric: str) -> dict:
    return {"table": "ns1e-5", "cell": "fno", "model": "FNO-2D", "tier": "cpu", "experiment": "ns1e-5/fno_cpu",
            "command": "python train.py +experiment=ns1e-5/fno_cpu", "metric": metric, "paper": 0.1556,
            "measured": metrics.get(metric), "metrics": metrics, "hardware": "CPU", "date": "2026-11-24"}


def test_report_compares_a_rollout_with_the_papers_kind_of_figure_and_says_what_a_record_lacks():
    cell = Cell(table="ns1e-5", name="fno", tier="cpu", experiment="ns1e-5/fno_cpu", model="FNO-2D",
                metric="test/rel_l2_full_32", paper_value=0.1556, paper_source="FNO Table 1",
                also=("test/rel_l2_step_32",), paper_metric="whole-rollout relative L2 (test_l2_full)")
    cells = {cell.experiment: cell}
    legacy = ns_record({"test/rel_l2_32": 0.2406, "test/rel_l2_32_lead1": 0.1183}, "test/rel_l2_32")
    text = markdown([legacy], cells=cells)
    # the committed record's figure is a per-step mean: shown as such, never compared with the whole-rollout figure
    assert "| FNO-2D | `test/rel_l2_full_32` | not recorded | 0.1556 | -- | `test/rel_l2_step_32` 0.2406 |" in text
    assert "rerun the cell to measure it" in text and "(whole-rollout relative L2 (test_l2_full))" in text
    both = ns_record({"test/rel_l2_step_32": 0.2, "test/rel_l2_full_32": 0.25, "test/rel_l2_32_lead1": 0.1},
                     "test/rel_l2_full_32")
    text = markdown([both], cells=cells)
    assert "| FNO-2D | `test/rel_l2_full_32` | 0.25 | 0.1556 | 1.61 | `test/rel_l2_step_32` 0.2 |" in text
    assert "not recorded" not in text
    row = next(csv.DictReader(io.StringIO(csv_text([both], cells))))
    assert row["also"] == "test/rel_l2_step_32=0.2" and row["paper_metric"].startswith("whole-rollout")


def test_the_navier_stokes_rollout_cells_compare_the_whole_trajectory_error():
    for tier, grid in (("paper", 64), ("cpu", 32)):
        for cell in load_cells("ns1e-5", tier):
            assert cell.metric == f"test/rel_l2_full_{grid}" and cell.also == (f"test/rel_l2_step_{grid}",)
            assert "test_l2_full" in cell.paper_metric

def test_record_of_a_trained_run(trained, tmp_path):
    cell = Cell(table="tiny", name="fno", tier="cpu", experiment="tiny/fno_cpu", model="FNO",
                metric="test/rel_l2_17", paper_value=0.01, paper_source="made up", scaled="tiny")
    with pytest.raises(ConfigError, match=r"is not a run of tiny/fno_cpu: its config is of leaderboard "
                                          r"None/None/None, not tiny/fno/cpu"):
        make_record(cell, trained)  # a folder of another run (another model's, say) copied where the cell's goes
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    config = OmegaConf.load(run / "config_resolved.yaml")
    config.leaderboard = {"table": "tiny", "cell": "fno", "tier": "cpu"}
    OmegaConf.save(config, run / "config_resolved.yaml")
    rec = make_record(cell, run, wall_s=12.0)
    assert rec["peak_host_mib"] > 50  # measured by the training process itself
    metrics = json.loads((run / "test_metrics.json").read_text())
    assert rec["measured"] == metrics["test/rel_l2_17"] and set(rec["metrics"]) == {"test/rel_l2_17", "test/rel_l2_33"}
    checkpoint = next((run / "checkpoints").glob("best-*.ckpt"))
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    assert rec["parameters"] == metrics["parameters"] == parameter_count(run) == sum(
        v.numel() for k, v in state.items() if k.startswith("model.") and (v.is_floating_point() or v.is_complex()))
    assert rec["git_commit"] == metrics["git_commit"] and len(rec["git_commit"]) >= 40
    assert rec["hardware"] == metrics["hardware"] and "cores" in rec["hardware"]
    assert torch.cuda.is_available() or torch.backends.cpu.get_cpu_capability() in rec["hardware"]  # the kernels' ISA
    assert rec["seconds_per_epoch"] > 0 and rec["versions"]["torch"] == torch.__version__
    assert "resumed_from_epoch" not in rec and len(epoch_seconds(run)) == 2  # what `run` counts before training
    assert make_record(cell, run, resumed_from_epoch=1)["resumed_from_epoch"] == 1
    assert "options" not in rec and make_record(cell, run, options=["x=1"])["options"] == ["x=1"]
    flagged = make_record(cell, run, options=["x=1"])
    assert make_record(cell, run, previous=flagged)["options"] == ["x=1"]  # recorded again: still flagged
    assert "options" not in make_record(cell, run, previous=flagged, options=[])  # a clean rerun: not
    assert deviations(["hydra.launcher.partition=gpu", "+hydra.x=1", "trainer.max_epochs=2"]) == [
        "trainer.max_epochs=2"]
    assert epoch_seconds(tmp_path) == []  # a folder without a run: nothing to resume
    copy = tmp_path / "elsewhere"
    copy.mkdir()
    text = (run / "config_resolved.yaml").read_text().replace(str(run), str(copy))
    (copy / "config_resolved.yaml").write_text(text)
    assert config_hash(copy) == rec["config_hash"]  # the same setting run elsewhere hashes the same
    (copy / "config_resolved.yaml").write_text(text.replace("max_epochs: 2", "max_epochs: 3"))
    assert config_hash(copy) != rec["config_hash"]


@pytest.mark.slow
def test_run_records_each_cell_and_report_lists_them(tmp_path, data_dir):
    import os

    env = {**os.environ, "PDEOP_DATA_DIR": str(data_dir), "WANDB_SILENT": "true"}
    records = tmp_path / "records"
    command = [sys.executable, "-m", "pdeop.leaderboard", "run", "darcy85", "--cells", "fno", "t1", "--tier", "cpu",
               "--runs", str(tmp_path / "runs"), "--records", str(records), *SMALL_EXPERIMENT]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    written = sorted(p.name for p in (records / "darcy85").iterdir())
    assert written == ["fno.cpu.json", "t1.cpu.json"]
    fno = json.loads((records / "darcy85" / "fno.cpu.json").read_text())
    assert fno["measured"] == fno["metrics"]["test/rel_l2_85"] and fno["paper"] == 0.0108
    assert fno["command"] == "python train.py +experiment=darcy85/fno_cpu" and fno["peak_host_mib"] > 0
    assert fno["parameters"] > 0 and len(fno["git_commit"]) >= 40 and fno["wall_s"] > 0
    report = subprocess.run([sys.executable, "-m", "pdeop.leaderboard", "report", "--records", str(records),
                             "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "README.md" in report.stdout
    text = (tmp_path / "README.md").read_text()
    assert "## darcy85, tier cpu" in text and "| FNO |" in text and "| T1 |" in text
    bad = subprocess.run([sys.executable, "-m", "pdeop.leaderboard", "run", "darcy85", "--cells", "resnet"], cwd=ROOT,
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "cells ['resnet'] are not in darcy85" in bad.stderr
    misspelt = subprocess.run([sys.executable, "-m", "pdeop.leaderboard", "run", "darcy85", "--cells", "fno",
                               "optim.lrr=1", "--runs", str(tmp_path / "runs2"), "--records", str(tmp_path / "r2")],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert misspelt.returncode != 0 and "optim.lrr" in misspelt.stderr and "not in darcy85" not in misspelt.stderr


def test_benchmark_table_runs_reports_and_refuses_slurm(tmp_path):
    import subprocess
    import sys

    records = tmp_path / "records"
    command = [sys.executable, "-m", "pdeop.leaderboard", "run", "skr_darcy", "--cells", "none_1e-5", "--tier", "paper",
               "--runs", str(tmp_path / "runs"), "--records", str(records), *SMALL["skr_darcy"]]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rec = json.loads((records / "skr_darcy" / "none_1e-5.paper.json").read_text())
    result_file = json.loads((tmp_path / "runs" / "skr_darcy" / "none_1e-5.paper" / "benchmark.json").read_text())
    assert result_file["systems"] == 3 and result_file["unknowns"] == 16 ** 2  # the options given won over the cell's
    assert rec["measured"] == result_file["rows"][0]["gmres_over_skr"]["time"] and rec["paper"] == 2.92
    assert (rec["metrics"]["gmres_over_skr_iterations/none/1e-05"]
            == result_file["rows"][0]["gmres_over_skr"]["iterations"])
    assert rec["command"] == "python benchmarks/skr_darcy.py --systems 100 --tols 1e-5 --preconditioners none"
    assert rec["options"] == SMALL["skr_darcy"] and rec["parameters"] is None and len(rec["git_commit"]) >= 40
    cell = next(c for c in load_cells("skr_darcy", "paper") if c.name == "none_1e-5")
    result_path = tmp_path / "runs" / "skr_darcy" / "none_1e-5.paper" / "benchmark.json"
    assert make_benchmark_record(cell, result_path)["config_hash"] != rec["config_hash"]  # the options count
    with pytest.raises(ConfigError, match="wrote no metric 'gmres_over_skr_time/ilu/1e-05'"):
        make_benchmark_record(next(c for c in load_cells("skr_darcy", "paper") if c.name == "ilu_1e-5"), result_path)
    text = markdown([rec])
    assert "## skr_darcy, tier paper" in text and "| SKR / GMRES(40), no preconditioner, tol 1e-5 | " in text
    assert "| None |" not in text
    with pytest.raises(ConfigError, match="skr_darcy.*--launcher local"):
        run_slurm(load_cells("skr_darcy", "cpu")[:1], tmp_path / "runs", records)


def test_the_leaderboards_own_outputs_do_not_make_the_tree_dirty(tmp_path, monkeypatch):
    """A table run writes each cell's record before training the next: the next record must name the commit
    as clean, while any other change to a tracked file still marks it ``-dirty``."""
    import subprocess

    from pdeop import provenance

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    record = tmp_path / "experiments" / "leaderboard" / "records" / "darcy85" / "fno.cpu.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setattr(provenance, "ROOT", tmp_path)
    assert not provenance.git_commit().endswith("-dirty")
    record.write_text('{"measured": 0.03}')
    (tmp_path / "experiments" / "leaderboard" / "results.csv").write_text("new, untracked\n")
    assert not provenance.git_commit().endswith("-dirty")
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_commit().endswith("-dirty") and len(provenance.git_commit()) == 46


def test_a_copy_without_git_names_its_commit_from_the_source_manifest(tmp_path, monkeypatch):
    """A checkout copied without .git (what a lent GPU machine or an rsync to a cluster receives) names the
    manifest's commit while its files match it, ``-dirty`` once one differs or is gone, ``unknown`` without one."""
    import shutil
    import subprocess

    from pdeop import provenance

    checkout, copy = tmp_path / "checkout", tmp_path / "copy"
    record = checkout / "experiments" / "leaderboard" / "records" / "darcy85" / "fno.paper.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    (checkout / "code.py").write_text("x = 1\n")
    (checkout / "link.py").symlink_to("code.py")

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=checkout, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "start")
    monkeypatch.setattr(provenance, "ROOT", checkout)
    provenance.write_manifest(checkout / provenance.MANIFEST)
    assert provenance.blob_hash(checkout / "code.py") == git("hash-object", "code.py")
    shutil.copytree(checkout, copy, symlinks=True, ignore=shutil.ignore_patterns(".git"))
    monkeypatch.setattr(provenance, "ROOT", copy)
    head = git("rev-parse", "HEAD")
    assert provenance.git_commit() == head
    (copy / record.relative_to(checkout)).write_text('{"measured": 0.0109}')  # the run's own output
    assert provenance.git_commit() == head
    (copy / "code.py").write_text("x = 2\n")
    assert provenance.git_commit() == head + "-dirty"
    (copy / "code.py").unlink()
    assert provenance.git_commit() == head + "-dirty"
    (copy / provenance.MANIFEST).unlink()
    assert provenance.git_commit() == "unknown"


def test_a_source_tree_reports_the_version_its_pyproject_names(tmp_path):
    """Records from a copy that was never installed (a lent GPU machine's) carry the code's version, not a
    placeholder; a pyproject of another project, an unreadable one or none leaves the installed version."""
    import tomllib

    import pdeop

    assert pdeop.__version__ == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    package = tmp_path / "pdeop"
    package.mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "pdeop"\nversion = "9.8.7"\n')
    assert pdeop.source_version(package) == "9.8.7"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "1.0"\n')
    assert pdeop.source_version(package) is None
    (tmp_path / "pyproject.toml").write_text('[project\nname = "pdeop"\n')
    assert pdeop.source_version(package) is None
    (tmp_path / "pyproject.toml").unlink()
    assert pdeop.source_version(package) is None


def test_training_a_benchmark_cell_says_how_it_is_measured(data_dir, tmp_path):
    """``train.py +experiment=skr_darcy/...`` trained the default FNO on the default data in silence."""
    result = run_entry(["train.py"], ["+experiment=skr_darcy/none_1e-5_cpu"], tmp_path / "run", data_dir, check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert ("pdeop error: experiment skr_darcy/none_1e-5: this leaderboard cell is measured by "
            "benchmarks/skr_darcy.py, not by training; run python -m pdeop.leaderboard run skr_darcy") in result.stderr
