"""Bad input gets one readable message naming what was wrong, never just a traceback."""

from pathlib import Path

import entry
import pytest
import torch
from conftest import TINY_DATA, TINY_FNO, run_entry
from omegaconf import OmegaConf

from pdeop.errors import ConfigError
from pdeop.inference import taking_inputs
from pdeop.io import HYDRA_FILES, hydra_only_files
from pdeop.models import LSM, T1, MgNO, ScOT, UNet

pytestmark = pytest.mark.slow


def assert_clean_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in:\n{result.stderr}"


def test_unknown_model_lists_the_choices(train):
    # in its own process: the interpreter's exit status, 2 as for every user error (Hydra's own report exited 1)
    result, _ = train("model=nosuchmodel", check=False, own_process=True)
    assert result.returncode == 2
    assert_clean_error(result, "pdeop error: model=nosuchmodel: no such option (model's options: fno, fno_1d, gp_hm,")
    result, _ = train("model=fnoo", check=False)
    assert result.stderr.strip().splitlines() == [
        "pdeop error: model=fnoo: no such option; did you mean model=fno or model=fno_1d? (model's options: fno, "
        "fno_1d, gp_hm, lsm, mgno, pig, pinn, pinn_rff, scot, scot_b, scot_l, t1, unet)"]


def test_unknown_dataset_lists_the_choices(train):
    result, _ = train("data=nosuchdata", check=False)
    assert_clean_error(result, "nosuchdata", "darcy_fno")


@pytest.mark.parametrize("script, overrides, message", [
    (["train.py"], ["optim.lrr=1e-3"],
     "pdeop error: optim.lrr: no such key; did you mean optim.lr? (+optim.lrr=<value> adds it as a new key)"),
    (["train.py"], ["data.problem.resolutio=33"], "pdeop error: data.problem.resolutio: no such key; did you mean "
                                                  "data.problem.resolution?"),
    (["train.py"], ["optim.zzz=1"], "pdeop error: optim.zzz: no such key; optim has _target_, _partial_, lr, "
                                    "weight_decay (+optim.zzz=<value> adds it as a new key)"),
    (["evaluate.py"], ["ckpt=fno-darcy", "splitt=val"], "pdeop error: splitt: no such key; did you mean split?"),
    # the checkpoint's own data: '+data.n_test' led to another confusing error
    (["predict.py"], ["ckpt=fno-darcy", "data.n_test=2"], "pdeop error: data.n_test: without data=<name> the "
                                                         "checkpoint's own data config is used"),
    (["-m", "pdeop.export"], ["ckpt=fno-darcy", "out=b", "namee=x"], "pdeop error: namee: no such key; did you mean "
                                                                     "name?"),
    (["-m", "pdeop.generate"], ["data=darcyy"], "pdeop error: data=darcyy: no such option; did you mean data=darcy or "
                                                "data=darcy_fno? (data's options: advection1d,"),

    # a nested group, for which Hydra lists no options
    (["train.py"], ["+experiment=darcy85/fnoo"], "pdeop error: experiment=darcy85/fnoo: no such option; did you mean "
                                                 "experiment=darcy85/fno? (experiment/darcy85's options: fno,"),
    # a key under a value: '+' would replace the value with a node, so no such advice
    (["train.py"], ["optim.lr.x=1"], "pdeop error: optim.lr.x: no such key (optim.lr has no keys)"),
])
def test_a_mistyped_key_or_option_names_the_closest(script, overrides, message, data_dir, tmp_path):
    """Hydra's report of a key its node lacks ("Key 'lrr' is not in struct", several lines) or an option its group
    lacks (one option a line, then the search path) is one line naming the closest valid names, before any run
    folder is made."""
    result = run_entry(script, overrides, tmp_path / "run", data_dir, check=False)
    assert result.returncode == 2
    assert_clean_error(result, message)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "run").exists()


def test_wrong_type_names_the_key(train):
    result, _ = train("data.n_train=abc", check=False)
    assert_clean_error(result, "data.n_train: expected int, got 'abc'")
    result, _ = train("model.hidden_channels=1.5", check=False)
    assert_clean_error(result, "model.hidden_channels: expected int, got 1.5")
    result, _ = train("seed=x", check=False)
    assert_clean_error(result, "seed: expected int")


def test_bad_value_names_the_key(train):
    result, _ = train("data.subsample=3", check=False)
    assert_clean_error(result, "subsample factor 3")


def test_missing_data_file_says_how_to_make_it(train, tmp_path):
    result, _ = train("data.generate=false", "data.seed=12345", check=False)
    assert_clean_error(result, "does not exist", "python -m pdeop.generate")
    result, _ = train(f"data.path={tmp_path / 'gone.h5'}", check=False)
    assert_clean_error(result, "gone.h5", "does not exist")


def test_corrupt_data_file_says_which_file(train, tmp_path):
    bad = tmp_path / "broken.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    result, _ = train(f"data.path={bad}", check=False)
    assert_clean_error(result, "broken.h5", "not a readable pdeop dataset")


def test_missing_checkpoint_to_resume(train, tmp_path):
    result, _ = train(f"ckpt_path={tmp_path / 'nope.ckpt'}", check=False)
    assert_clean_error(result, "ckpt_path", "nope.ckpt", "does not exist")


def test_a_run_stopped_by_a_user_error_leaves_no_empty_run_folder(train, data_dir, tmp_path, monkeypatch):
    """A run stopped before it wrote anything takes away the folders Hydra made for it (.hydra/ and an empty log);
    a folder that was there before, one the run wrote to, a multirun's job folder and one of srun's tasks' stay."""
    result, _ = train("ckpt_path=nope.ckpt", run_name="outputs/fno-darcy/now", check=False)
    assert_clean_error(result, "pdeop error: ckpt_path")
    assert not (tmp_path / "outputs").exists()
    result = run_entry(["evaluate.py"], [], tmp_path / "evaluated", data_dir, check=False)
    assert_clean_error(result, "pdeop error: ckpt: required")
    assert not (tmp_path / "evaluated").exists()
    (tmp_path / "mine").mkdir()
    train("ckpt_path=nope.ckpt", run_name="mine", check=False)
    assert sorted(path.name for path in (tmp_path / "mine").iterdir()) == [".hydra", "train.log"]
    result, run = train("data.generate=false", "data.seed=12345", run_name="refused_data", check=False)
    assert_clean_error(result, "does not exist")  # found after the config was checked, before anything was written
    assert not run.exists()
    result, run = train("optim.lr=0", "data.generate=false", "data.seed=12345", run_name="written", check=False)
    assert_clean_error(result, "does not exist")
    assert "optim.lr=0" in (run / "train.log").read_text()  # its log tells something: the folder stays
    sweep = ["hydra.mode=MULTIRUN", f"hydra.sweep.dir={tmp_path / 'sweep'}", "ckpt_path=nope.ckpt"]
    result = run_entry(["train.py"], sweep, tmp_path / "unused", data_dir, check=False)
    assert_clean_error(result, "pdeop error: job 0 (", "): ckpt_path: checkpoint file 'nope.ckpt' does not exist")
    assert (tmp_path / "sweep" / "0" / ".hydra" / "config.yaml").exists()
    monkeypatch.setenv("SLURM_NTASKS", "2")
    train("ckpt_path=nope.ckpt", run_name="task", check=False)
    assert (tmp_path / "task" / ".hydra" / "config.yaml").exists()


def test_only_hydras_own_files_make_a_run_folder_removable(tmp_path):
    hydra = OmegaConf.create({"job": {"name": "train"}, "output_subdir": ".hydra", "overrides": {"task": ["seed=1"]}})
    (tmp_path / ".hydra").mkdir()
    for name in HYDRA_FILES:
        (tmp_path / ".hydra" / name).write_text("hydra: {}\n")
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=0\n")  # another run's, started in the same second
    (tmp_path / "train.log").touch()
    assert hydra_only_files(tmp_path, hydra) is None
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- seed=1\n")
    expected = sorted([tmp_path / "train.log", *(tmp_path / ".hydra" / name for name in HYDRA_FILES)])
    assert sorted(hydra_only_files(tmp_path, hydra)) == expected
    (tmp_path / "train.log").write_text("[INFO] logged\n")  # the run logged something: kept
    assert hydra_only_files(tmp_path, hydra) is None
    (tmp_path / "train.log").unlink()
    (tmp_path / "train.log").symlink_to(tmp_path / "elsewhere.log")  # a link, even to an empty file: kept
    assert hydra_only_files(tmp_path, hydra) is None
    (tmp_path / "train.log").unlink()
    (tmp_path / ".hydra" / "notes.txt").symlink_to(tmp_path / ".hydra" / "config.yaml")
    assert hydra_only_files(tmp_path, hydra) is None
    (tmp_path / ".hydra" / "notes.txt").unlink()
    (tmp_path / "checkpoints").mkdir()
    assert hydra_only_files(tmp_path, hydra) is None


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(train):
    # Epoch 0 trains normally; from epoch 1 the learning rate is multiplied by 1e12 and the loss diverges.
    result, run = train("scheduler.fn.step_size=1", "scheduler.fn.gamma=1e12", "trainer.max_epochs=6",
                        "model.hidden_channels=8", check=False)
    assert_clean_error(result, "training loss became NaN or infinite", "Last good checkpoint", "last.ckpt")
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert all(torch.isfinite(t).all() for t in state["state_dict"].values())


def test_generate_entry_point_writes_the_file_train_then_uses(data_dir, tmp_path):
    result = run_entry(["-m", "pdeop.generate"], [*TINY_DATA, "data.seed=77"], tmp_path / "gen", data_dir)
    path = result.stdout.strip().splitlines()[-1]
    assert path.endswith(".h5") and "darcy_" in path
    again = run_entry(["-m", "pdeop.generate"], [*TINY_DATA, "data.seed=77"], tmp_path / "gen2", data_dir)
    assert again.stdout.strip().splitlines()[-1] == path


def test_generate_names_its_run_folder_after_what_it_does(data_dir, tmp_path, monkeypatch):
    """generate trains no model: its log goes to outputs/generate/<data>/<time>/ (as evaluate's to
    outputs/evaluate/<time>/), not to the training config's outputs/<default model>-<data>/<time>/."""
    monkeypatch.setattr(entry, "ROOT", tmp_path)  # the folder the command runs in, with no hydra.run.dir given
    result = entry.run_in_process(["-m", "pdeop.generate"], [*TINY_DATA, "data.seed=78"],
                                  {"PDEOP_DATA_DIR": str(data_dir)})
    assert result.returncode == 0, result.stderr
    logs = list((tmp_path / "outputs").glob("**/generate.log"))
    assert len(logs) == 1 and logs[0].parent.parent == tmp_path / "outputs" / "generate" / "darcy", logs


def test_grid_too_small_for_the_model_fails_before_training(train):
    result, run = train("model=mgno", "model.channels=4", "trainer.max_epochs=1", check=False)
    assert_clean_error(result, "model.smoothing: 6 multigrid levels coarsen a 17-node grid")
    assert not (run / "checkpoints").exists()
    # a model that fits the training grid but not a finer test grid is caught before training too
    result, run = train("model=t1", "model.modes=[20,20]", "data.subsample=1", "data.test_subsamples=[2]", check=False)
    assert_clean_error(result, "model.modes: modes [20, 20] do not fit a 17x17 grid")
    assert not (run / "checkpoints").exists()


def test_transformed_space_loss_with_a_model_that_has_none(train):
    result, _ = train("model=t1", "+recipe=t1", "model.modes=[6,6]", "model.transform=dft", "model.activation=tanh",
                      check=False)
    assert_clean_error(result, "loss:", "model.transform=dct", "loss=rel_l2")
    result, _ = train("loss=rel_l2_transformed", check=False)
    assert_clean_error(result, "loss:", "FNO predicts on the grid")


@pytest.mark.parametrize("script, overrides, message", [
    (["evaluate.py"], [], "pdeop error: ckpt: required and not given; pass ckpt=<value> on the command line"),
    (["predict.py"], [], "pdeop error: ckpt: required and not given; pass ckpt=<value> on the command line"),
    (["-m", "pdeop.export"], ["ckpt=fno-darcy"], "pdeop error: out: required and not given; pass out=<value>"),
    (["train.py"], ["data=from_file"], "pdeop error: data.path: required and not given; pass data.path=<value>"),
    (["evaluate.py"], ["ckpt=fno-darcy", "out=${oc.env:PDEOP_TEST_UNSET}"],
     "pdeop error: out: its interpolation does not resolve (KeyError raised while resolving interpolation: "
     "\"Environment variable 'PDEOP_TEST_UNSET' not found\")"),
])
def test_a_value_left_unset_or_unresolvable_is_one_line(script, overrides, message, data_dir, tmp_path):
    result = run_entry(script, overrides, tmp_path / "run", data_dir, check=False)
    assert_clean_error(result, message)


@pytest.mark.parametrize("script", ["evaluate.py", "predict.py"])
def test_an_out_that_cannot_be_written_is_refused_before_the_work(script, data_dir, tmp_path):
    """A folder in the way, or a name whose temporary (14 bytes longer) the file system would refuse: both were a
    traceback after the whole evaluation had run."""
    (tmp_path / "folder").mkdir()
    result = run_entry([script], ["ckpt=fno-darcy", f"out={tmp_path / 'folder'}"], tmp_path / "run", data_dir,
                       check=False)
    assert_clean_error(result, f"pdeop error: out: '{tmp_path / 'folder'}' is a directory; give the file to write")
    name = "x" * 245
    result = run_entry([script], ["ckpt=fno-darcy", f"out={tmp_path / name}"], tmp_path / "run", data_dir,
                       check=False)
    assert_clean_error(result, "pdeop error: out: the file name 'xxxx", "is 245 bytes; at most 241 fit in")
    result = run_entry([script], ["ckpt=fno-darcy", f"out={tmp_path / 'e.json'}"], tmp_path / ("y" * 300) / "run",
                       data_dir, check=False)
    assert_clean_error(result, "is 300 bytes, more than the 255 a name may have there; set hydra.run.dir")


def test_a_model_of_another_dimension_than_the_data_is_one_line(train, data_dir, tmp_path):
    """A 1-D FNO on 2-D Darcy: the pre-flight pass names the model and the inputs' shape (neuralop's assertion
    was a traceback); evaluate.py on a physics-informed problem names what it evaluates instead."""
    result, _ = train("model=fno_1d", check=False)
    assert_clean_error(result, "pdeop error: model: FNO takes 1-D fields and the inputs of the data are 2-D, shaped "
                               "[2, 1, 17, 17] (batch, 1 channels, grid 17x17); choose a model for 2-D fields")
    result = run_entry(["evaluate.py"], ["ckpt=fno-darcy", "data=helmholtz2d"], tmp_path / "eval", data_dir,
                       check=False)
    assert_clean_error(result, "pdeop error: data: CollocationDataModule is one problem instance for a "
                               "physics-informed solver")


@pytest.mark.parametrize("model", [
    MgNO(2, 2, channels=4, num_layers=1, smoothing=[[1, 0]]), UNet(2, 2, width=4, head_width=8),
    LSM(2, 2, width=8, head_width=8, num_basis=2), T1(2, 2, modes=[4, 4], width=4, signal_resolution=[16, 16]),
    ScOT(2, 2, image_size=16, patch_size=2, embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 2, 2, 4],
         skip_connections=[1, 0, 0, 0], window_size=2)])
def test_a_2d_model_given_1d_fields_is_refused_before_it_runs(model):
    """A batch of two 1-D fields of two channels ([2, 2, 64]) is one unbatched 2x64 image to a 2-D convolution: MgNO
    took it without an error in the pre-flight pass, then failed in validation or trained across the wrong axes."""
    with pytest.raises(ConfigError, match=r"model: \w+ takes 2-D fields and the inputs of the data are 1-D, shaped "
                                          r"\[2, 2, 64\] \(batch, 2 channels, grid 64\); choose a model for 1-D"):
        with taking_inputs(model, (2, 2, 64)):
            model(torch.zeros(2, 2, 64))


def test_a_sweep_job_stopped_by_a_user_error_leaves_the_other_jobs_running(data_dir, tmp_path, monkeypatch):
    """One learning rate of a sweep refused (or diverging: NonFiniteLossError is a user error too) exited the
    process and the jobs after it never ran; now each failed job prints its line, the others train, and the sweep
    ends with status 2 naming the first failure. A job that fails as a bug would prints its traceback as it fails
    (Hydra re-raises only the first failure) and makes the status 1."""
    sweep = tmp_path / "sweep"
    common = [*TINY_DATA, *TINY_FNO, "trainer.max_epochs=1", "test_after_fit=false"]
    result = run_entry(["train.py", "--multirun"], [*common, "optim.lr=-1,1e-3", f"hydra.sweep.dir={sweep}"],
                       tmp_path / "run", data_dir, check=False, own_process=True)
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("pdeop error:")]
    assert errors[0].startswith("pdeop error: job 0 (") and " optim.lr=-1)" in errors[0]
    assert errors[0].endswith("): optim.lr: expected a positive learning rate, got -1")
    assert errors[-1].startswith("pdeop error: the sweep's jobs ran, and job 0 (") and len(errors) == 2
    assert (sweep / "1" / "checkpoints" / "last.ckpt").is_file()  # the job after the failed one trained
    assert "Traceback" not in result.stderr

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # tests/stop_at.py
    crash = ["+callbacks.crash._target_=stop_at.CrashAt", "+callbacks.crash.epoch=0", "+callbacks.crash.batch=0",
             f"+callbacks.crash.marker={tmp_path / 'crashed'}"]  # once: job 1
    sweep = tmp_path / "crashing"
    result = run_entry(["train.py", "--multirun"], [*common, *crash, "optim.lr=-1,1e-3,2e-3",
                                                    f"hydra.sweep.dir={sweep}"],
                       tmp_path / "run", data_dir, check=False, own_process=True)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "RuntimeError: CrashAt: a failure of pdeop's or a library's" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("pdeop error: the sweep's jobs ran, and job 0 (") and "; job 1 (" in last
    assert last.endswith("failed with the traceback printed above")
    assert (sweep / "2" / "checkpoints" / "last.ckpt").is_file()


def test_generating_data_that_is_not_generated_is_one_line(data_dir, tmp_path):
    result = run_entry(["-m", "pdeop.generate"], ["data=helmholtz2d"], tmp_path / "run", data_dir, check=False)
    assert_clean_error(result, "pdeop error: data: CollocationDataModule generates no dataset")


@pytest.mark.parametrize("override, message", [
    ("data.batch_size=0", "pdeop error: data.batch_size: expected at least 1 sample a batch, got 0"),
    ("model.hidden_channels=0", "pdeop error: model: FNO cannot be built from these settings (ZeroDivisionError"),
    ("trainer.accelerator=gpu", "pdeop error: trainer.accelerator: 'gpu' asked for, but torch"),
])
def test_values_the_libraries_refuse_with_a_traceback_are_one_line(train, override, message):
    if override.startswith("trainer.accelerator") and torch.cuda.is_available():
        pytest.skip("a GPU is here")
    result, _ = train(override, check=False)
    assert_clean_error(result, message)
