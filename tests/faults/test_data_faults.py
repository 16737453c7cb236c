"""Data under faults: a full or read-only data directory, killed and concurrent generations, orphaned workers,
and dataset files whose shapes disagree or hold NaN. Every refusal is one ``pdeop error:`` line naming the place.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest
import torch
from conftest import TINY_DATA, TINY_FNO, run_command, run_entry

from pdeop.data.generation import DatasetSpec, estimate_bytes, generate
from pdeop.data.store import DatasetFile
from pdeop.errors import DataFileError
from pdeop.problems import Darcy

from .conftest import ROOT, entry_command, entry_env, pdeop_error_line, read_only, small_disk, start

GENERATE = ["-m", "pdeop.generate"]
DATA_DIR_HINT = "PDEOP_DATA_DIR (or paths.data_dir="
# Slow enough that solver workers are mid-chunk for seconds: Darcy on a 129 grid, 50 samples a chunk.
SLOW_DATA = ["data.problem.resolution=129", "data.n_train=400", "data.n_val=1", "data.n_test=1", "data.subsample=4",
             "data.test_subsamples=[]", "data.generate_workers=2"]


def temps(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))


def wait_for(ready: Callable[[], bool], process: subprocess.Popen | None = None, timeout: float = 120) -> None:
    """Poll ``ready`` until it holds; fail if ``process`` ends first or the time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended ({process.returncode}) early:\n{process.stderr.read()[-3000:]}")
        assert time.monotonic() < deadline, "the fault point was not reached"
        time.sleep(0.01)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        if int(ppid.split()[1]) == pid:
            found.append(int(status.parent.name))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, waiting for a reaper, has ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def survivors_of_sigkill(process: subprocess.Popen, workers: list[int], grace: float = 5.0) -> list[int]:
    """SIGKILL ``process`` alone (not its group) and return the ``workers`` still running after ``grace`` s."""
    os.kill(process.pid, signal.SIGKILL)
    process.communicate()
    deadline = time.monotonic() + grace
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for worker in left:  # clean up after a failure
        os.kill(worker, signal.SIGKILL)
    return left


def collected(stream) -> Callable[[], str]:
    """Read ``stream`` in a thread; the returned function gives what has arrived so far."""
    parts: list[str] = []
    threading.Thread(target=lambda: parts.extend(iter(lambda: stream.read(64), "")), daemon=True).start()
    return lambda: "".join(parts)


def assert_children_die_with(process: subprocess.Popen, observed) -> None:
    """SIGKILL ``process`` alone, then assert that its (at least two) worker children do not outlive it by 5 s."""
    try:
        workers = children(process.pid)
        left = survivors_of_sigkill(process, workers)
    finally:
        kill_group(process)
    observed(f"{len(workers)} children before the kill, {len(left)} alive 5 s after")
    assert len(workers) >= 2 and left == []


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of ``process``'s group after a test (nothing when it passed)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stored_arrays(path: Path) -> dict[str, bytes]:
    """Every array of a dataset file, by its name, as bytes (the file's creation time aside)."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, item: arrays.update({name: item[()].tobytes()}) if isinstance(item, h5py.Dataset)
                     else None)
    return arrays


def generation(data_dir: Path, run_dir: Path, *overrides: str) -> subprocess.Popen:
    return start(entry_command(GENERATE, [*TINY_DATA, *overrides], run_dir), entry_env(data_dir))


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    """The dataset train.py makes from TINY_DATA, generated once by the entry point (in this process)."""
    data_dir = tmp_path_factory.mktemp("tiny")
    result = run_entry(GENERATE, TINY_DATA, data_dir / "run", data_dir)
    return Path(result.stdout.strip().splitlines()[-1])


def copy_of(tiny_file: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(tiny_file, folder / tiny_file.name))


@pytest.mark.fault("generate on a disk too small for the estimated file", "exit 2 before solving, one line naming "
                   "the directory and the space needed; nothing left")
def test_full_disk_is_refused_before_generating(tmp_path, observed):
    with small_disk(tmp_path / "disk", "256k") as disk:
        result = generation(disk, tmp_path / "run")
        _, err = result.communicate(timeout=300)
        line = pdeop_error_line(err)
        observed(f"exit {result.returncode}: {line}; left {os.listdir(disk)}")
        assert result.returncode == 2
        assert str(disk) in line and "MiB free" in line and "needs about" in line and DATA_DIR_HINT in line
        assert os.listdir(disk) == []


@pytest.mark.fault("disk filled by another process while the file is written", "exit 2, one line naming the "
                   "directory; no segmentation fault, no .tmp left")
def test_disk_filled_during_generation(tmp_path, observed):
    with small_disk(tmp_path / "disk", "4m") as disk:
        process = generation(disk, tmp_path / "run", "data.n_train=400")
        wait_for(lambda: any(p.stat().st_size > 0 for p in temps(disk)), process)
        process.send_signal(signal.SIGSTOP)  # hold it mid-write while the disk fills up
        with open(disk / "ballast", "wb", buffering=0) as ballast:
            while True:
                try:
                    ballast.write(bytes(64 * 1024))
                except OSError:
                    break
        free_left = shutil.disk_usage(disk).free
        process.send_signal(signal.SIGCONT)
        _, err = process.communicate(timeout=300)
        line = pdeop_error_line(err)
        observed(f"exit {process.returncode}: {line}; {free_left} B free after the ballast; left "
                 f"{sorted(os.listdir(disk))}")
        assert process.returncode == 2, err[-3000:]
        assert "ran out of space" in line and str(disk) in line and DATA_DIR_HINT in line
        assert "Exception ignored" not in err
        assert os.listdir(disk) == ["ballast"]


@pytest.mark.fault("a generation killed with SIGKILL, then the same generation again", "the second removes the "
                   "stale .tmp and writes the file")
def test_stale_temp_of_a_killed_generation_is_removed(tmp_path, observed):
    data_dir = tmp_path / "data"
    killed = generation(data_dir, tmp_path / "run1")
    wait_for(lambda: data_dir.is_dir() and bool(temps(data_dir)), killed)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    stale = temps(data_dir)
    again = generation(data_dir, tmp_path / "run2")
    out, err = again.communicate(timeout=300)
    observed(f"left by the kill: {[p.name for p in stale]}; second run exit {again.returncode}, now "
             f"{sorted(p.name for p in data_dir.iterdir())}")
    assert len(stale) == 1 and again.returncode == 0, err[-3000:]
    assert temps(data_dir) == [] and [p.name for p in data_dir.iterdir()] == [Path(out.split()[-1]).name]


@pytest.mark.fault("SIGTERM to pdeop.generate once its first chunks are solved, then the same generation again",
                   "exit 143 and one line saying the solved chunks are kept (no traceback, no .tmp, no worker "
                   "left); the rerun finishes the file bit for bit as an uninterrupted generation")
def test_sigterm_mid_generation_keeps_the_solved_chunks(tmp_path, tiny_file, observed):
    data_dir = tmp_path / "data"
    stopped = generation(data_dir, tmp_path / "run1", "data.generate_workers=1")
    chunks = data_dir / f".{tiny_file.name}.chunks"
    wait_for(lambda: chunks.is_dir() and any(chunks.glob("*.npz")), stopped)
    os.kill(stopped.pid, signal.SIGTERM)
    _, err = stopped.communicate(timeout=120)
    kept = sorted(p.name for p in chunks.glob("*.npz"))
    assert stopped.returncode == 143 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1] == ("pdeop: stopped by SIGTERM; the chunks solved so far are kept beside the "
                                            "file, and the same generation goes on from them"), err[-3000:]
    assert kept and temps(data_dir) == [] and children(stopped.pid) == []
    again = generation(data_dir, tmp_path / "run2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err[-3000:]
    assert stored_arrays(data_dir / tiny_file.name) == stored_arrays(tiny_file)
    observed(f"exit 143, one line; {len(kept)} chunk file(s) kept; the rerun wrote a file identical to an "
             f"uninterrupted generation's")


@pytest.mark.fault("pdeop.generate where the dataset file is there but cut short (a copy cut off)",
                   "one line naming the file and how to regenerate it (it printed the path and exited 0)")
def test_generate_checks_a_file_already_there(tmp_path, tiny_file, observed):
    data_dir = tmp_path / "data"
    cut = copy_of(tiny_file, data_dir)
    cut.write_bytes(tiny_file.read_bytes()[:tiny_file.stat().st_size * 2 // 5])
    result = run_command(entry_command(GENERATE, TINY_DATA, tmp_path / "run"), 300, env=entry_env(data_dir))
    line = pdeop_error_line(result.stderr)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"dataset file '{cut}' is not a readable pdeop dataset" in line and str(cut) not in result.stdout
    observed(f"exit 2: {line[:200]}")


@pytest.mark.fault("two generations of one dataset at once (the first held mid-write)", "the second keeps the "
                   "first's locked .tmp; both finish; one file, no .tmp")
def test_concurrent_generation_keeps_the_live_temp(tmp_path, observed):
    data_dir = tmp_path / "data"
    first = generation(data_dir, tmp_path / "run1")
    try:
        wait_for(lambda: data_dir.is_dir() and bool(temps(data_dir)), first)
        first.send_signal(signal.SIGSTOP)
        live = temps(data_dir)
        second = generation(data_dir, tmp_path / "run2")
        _, err = second.communicate(timeout=300)
        kept = all(p.exists() for p in live)
    finally:
        first.send_signal(signal.SIGCONT)
    _, first_err = first.communicate(timeout=300)
    observed(f"second exit {second.returncode}, first's .tmp kept: {kept}; first exit {first.returncode}; now "
             f"{sorted(p.name for p in data_dir.iterdir())}")
    assert second.returncode == 0 and first.returncode == 0, err[-2000:] + first_err[-2000:]
    assert kept and temps(data_dir) == [] and len(list(data_dir.glob("*.h5"))) == 1
    DatasetFile(next(data_dir.glob("*.h5")))


@pytest.mark.fault("SIGKILL to the parent of generate_workers=2 mid-generation", "no pool worker survives 5 s")
def test_pool_workers_die_with_the_parent(tmp_path, observed):
    process = start(entry_command(GENERATE, SLOW_DATA, tmp_path / "run"), entry_env(tmp_path / "data"))
    try:
        progress = collected(process.stderr)
        wait_for(lambda: re.search(r"[1-9][0-9]*/402", progress()) is not None, process)  # mid-way through chunks
    except BaseException:
        kill_group(process)
        raise
    assert_children_die_with(process, observed)


@pytest.mark.fault("SIGKILL to a process running the online stream's solver workers", "no stream worker survives 5 s")
def test_stream_workers_die_with_the_parent(observed):
    script = textwrap.dedent("""
        from pdeop.data.stream import SolverStream, StreamSettings
        from pdeop.problems import Darcy
        stream = SolverStream(Darcy(resolution=33), 2, StreamSettings(capacity=8, watermark=1, workers=2,
                              samples_per_solve=2), seed=0)
        stream.start()
        stream.get()
        print("streaming", flush=True)
        stream.get()
        import time; time.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout.readline().strip() == "streaming", process.stderr.read()[-3000:]
    except BaseException:
        kill_group(process)
        raise
    assert_children_die_with(process, observed)


def solver_workers(pid: int) -> list[int]:
    """The Dask worker processes a LocalCluster's nannies in process ``pid`` spawned."""
    def spawned(child: int) -> bool:
        try:
            return b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            return False
    return [child for child in children(pid) if spawned(child)]


@pytest.mark.fault("SIGKILL to one of the online stream's two Dask solver workers after epoch 0",
                   "training goes on: exit 0, every epoch trained, the worker replaced")
def test_online_training_survives_a_killed_solver_worker(tmp_path, observed):
    run_dir = tmp_path / "run"
    overrides = [*TINY_DATA, *TINY_FNO, "data.online=true", "data.stream.watermark=16", "data.stream.capacity=16",
                 "data.stream.steps_per_epoch=4", "data.stream.normaliser_samples=16", "data.stream.workers=2",
                 "trainer.max_epochs=4", "test_after_fit=false"]
    process = start(entry_command(["train.py"], overrides, run_dir), entry_env(tmp_path / "data"))
    try:
        wait_for(lambda: (run_dir / "checkpoints" / "last.ckpt").is_file(), process, timeout=600)
        before = solver_workers(process.pid)
        os.kill(before[0], signal.SIGKILL)
        seen = set(before)
        while process.poll() is None:
            seen.update(solver_workers(process.pid))
            time.sleep(0.05)
        _, err = process.communicate()
    finally:
        kill_group(process)
    epochs = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["epoch"]
    observed(f"exit {process.returncode}, {len(before)} workers before the kill, {len(seen - set(before))} started "
             f"after it, last checkpoint at epoch {epochs}")
    assert process.returncode == 0, err[-3000:]
    assert len(before) == 2 and len(seen - set(before)) >= 1 and epochs == 3


@pytest.mark.fault("PDEOP_DATA_DIR read-only and the dataset missing", "exit 2, one line naming the directory and "
                   "PDEOP_DATA_DIR (or paths.data_dir=...)")
def test_read_only_data_dir_without_the_dataset(tmp_path, observed):
    with read_only(tmp_path / "data") as data_dir:
        result = generation(data_dir, tmp_path / "run")
        _, err = result.communicate(timeout=300)
    line = pdeop_error_line(err)
    observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 2 and str(data_dir) in line and DATA_DIR_HINT in line


@pytest.mark.fault("PDEOP_DATA_DIR read-only holding the dataset", "train.py reads it and trains (exit 0)")
def test_read_only_data_dir_with_the_dataset(tmp_path, tiny_file, observed):
    copy_of(tiny_file, tmp_path / "data")
    with read_only(tmp_path / "data") as data_dir:
        command = entry_command(["train.py"], [*TINY_DATA, *TINY_FNO, "trainer.max_epochs=1",
                                               "+trainer.limit_train_batches=1", "test_after_fit=false"],
                                tmp_path / "run")
        result = run_command(command, 300, env=entry_env(data_dir))
    observed(f"exit {result.returncode}")
    assert result.returncode == 0, result.stderr[-3000:]


def tiny_spec() -> DatasetSpec:
    return DatasetSpec(Darcy(resolution=17), n_train=4, n_val=2, n_test=2, subsample=2, test_subsamples=(1,))


def replace(group: h5py.Group, name: str, data: np.ndarray) -> None:
    del group[name]
    group[name] = data


MISMATCHES = {
    "outputs on another grid": ("train/9", "outputs", lambda d: np.zeros((4, 1, 8, 8), "f4")),
    "channels differ between splits": ("val/9", "inputs", lambda d: np.zeros((2, 2, 9, 9), "f4")),
    "fewer outputs than inputs": ("test/17", "outputs", lambda d: d[:1]),
    "coordinates shorter than the grid": ("test/17", "y", lambda d: d[:-1]),
}


@pytest.mark.fault("a pdeop file whose {case}", "DataFileError at open naming file, split and field")
@pytest.mark.parametrize("case", list(MISMATCHES))
def test_disagreeing_shapes_are_refused_at_open(tmp_path, case, observed):
    path = generate(tiny_spec(), tmp_path, progress=False)
    where, field, change = MISMATCHES[case]
    with h5py.File(path, "r+") as f:
        replace(f[where], field, change(f[where][field][()]))
    with pytest.raises(DataFileError) as caught:
        DatasetFile(path)
    observed(str(caught.value))
    assert str(path) in str(caught.value) and f"split '{where}' field '{field}'" in str(caught.value)



def edit_attr(name: str, value) -> Callable[[h5py.File, Path], None]:
    def edit(f: h5py.File, folder: Path) -> None:
        f.attrs[name] = value
    return edit


def external_inputs(f: h5py.File, folder: Path) -> None:
    del f["train/9/inputs"]
    f["train/9/inputs"] = h5py.ExternalLink(str(folder / "elsewhere.h5"), "inputs")


WRONG_KINDS = {
    "seed attribute is an array": edit_attr("seed", np.arange(3)),
    "params attribute is a number": edit_attr("params", 7),
    "input_names attribute is a number": edit_attr("input_names", 3),
    "split is a dataset": lambda f, folder: (f.__delitem__("val"), f.create_dataset("val", data=np.zeros(3))),
    "train/9 inputs is a group": lambda f, folder: (f["train/9"].__delitem__("inputs"),
                                                    f["train/9"].create_group("inputs")),
    "train/9 inputs are strings": lambda f, folder: replace(f["train/9"], "inputs",
                                                            np.full((4, 1, 9, 9), b"a", dtype="S1")),
    "train/9 inputs an external link to a missing file": external_inputs,
    "train/9 subsample attribute is the string 'three'": lambda f, folder: f["train/9"].attrs.__setitem__(
        "subsample", "three"),
}


@pytest.mark.fault("a pdeop file whose {case}", "DataFileError naming the file, no traceback (an attribute or object "
                   "of another kind was a TypeError, AttributeError or RuntimeError)")
@pytest.mark.parametrize("case", list(WRONG_KINDS))
def test_objects_of_the_wrong_kind_are_one_error(tmp_path, case, observed):
    path = generate(tiny_spec(), tmp_path, progress=False)
    with h5py.File(path, "r+") as f:
        WRONG_KINDS[case](f, tmp_path)
    with pytest.raises(DataFileError) as caught:
        DatasetFile(path).read("train", 9)
    observed(str(caught.value))
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)

@pytest.mark.fault("{value} in {split}/{field} sample 5 of the stored file", "train.py exits 2 before training, "
                   "one line naming file, split, field and sample")
@pytest.mark.parametrize(("split", "field", "value"), [("test", "outputs", "nan"), ("train", "inputs", "inf")])
def test_non_finite_data_stops_train_before_training(tmp_path, tiny_file, split, field, value, observed):
    path = copy_of(tiny_file, tmp_path / "data")
    with h5py.File(path, "r+") as f:
        group = f[split][sorted(f[split].keys(), key=int)[-1]]
        group[field][5, 0, 3, 3] = float(value)
    command = entry_command(["train.py"], [*TINY_DATA, *TINY_FNO], tmp_path / "run")
    result = run_command(command, 300, env=entry_env(path.parent))
    line = pdeop_error_line(result.stderr)
    observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 2 and str(path) in line
    assert f"split '{split}/" in line and f"field '{field}'" in line and "sample 5" in line
    assert not (tmp_path / "run" / "test_metrics.json").exists()


@pytest.mark.fault("estimate of a file's size before generating", "at least the written size, at most 1.5 times it")
def test_estimate_covers_the_written_file(tmp_path, observed):
    spec = tiny_spec()
    size = generate(spec, tmp_path, progress=False).stat().st_size
    observed(f"{size} B written, {estimate_bytes(spec)} B estimated")
    assert size <= estimate_bytes(spec) <= 1.5 * size


@pytest.mark.fault("data=from_file with a test_path file of fewer input channels", "DataFileError naming the file, "
                   "split and field")
def test_split_files_with_other_channel_counts_are_refused(tmp_path, observed):
    from pdeop.data import FileDataModule

    axes = {"inputs": ["sample", "channel", "x", "y"]}
    for name, channels in (("train.npz", 2), ("test.npz", 1)):
        np.savez(tmp_path / name, a=np.zeros((6, channels, 5, 5), "f4"), u=np.zeros((6, 5, 5), "f4"))
    module = FileDataModule(str(tmp_path / "train.npz"), test_path=str(tmp_path / "test.npz"), axes=axes,
                            n_val=1, n_test=2, in_channels=2)
    with pytest.raises(DataFileError) as caught:
        module.setup("fit")
    observed(str(caught.value))
    assert "test.npz" in str(caught.value) and "split 'test' field 'inputs'" in str(caught.value)


class Touch:
    """Pickles as a call of ``os.system`` that creates the marker: what unpickling code means."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def pdebench_with(path: Path, build: Callable[[h5py.File], None]) -> None:
    """A 1D PDEBench file (``tensor`` [2 samples, 3 times, 8 cells] and its coordinates) whose ``tensor`` ``build``
    writes."""
    with h5py.File(path, "w") as f:
        f["x-coordinate"] = (np.arange(8) + 0.5) / 8
        f["t-coordinate"] = np.arange(4) * 0.1
        build(f)


COMMUNITY_FILES = {
    ".pt whose keys are numbers": ("x.pt", lambda p, m: torch.save({1: torch.ones(2, 8, 8), 2: torch.ones(2, 8, 8)}, p),
                                   "named by strings"),
    ".pt holding a sparse tensor": ("x.pt", lambda p, m: torch.save({"x": torch.eye(8).to_sparse(),
                                                                     "y": torch.ones(8, 8)}, p), "dense tensors"),
    ".pt of complex tensors": ("x.pt", lambda p, m: torch.save({"x": torch.ones(2, 8, 8, dtype=torch.cfloat),
                                                                "y": torch.ones(2, 8, 8)}, p), "complex values"),
    "legacy (pickle) .pt holding code": ("x.pt", lambda p, m: torch.save(Touch(m), p,
                                                                         _use_new_zipfile_serialization=False),
                                         "holds Python objects"),
    ".npz of complex arrays": ("x.npz", lambda p, m: np.savez(p, x=np.ones((2, 8, 8), "c8"), y=np.ones((2, 8, 8))),
                               "complex values"),
    "PDEBench file whose tensor holds no samples": ("x.h5", lambda p, m: pdebench_with(
        p, lambda f: f.create_dataset("tensor", shape=(0, 3, 8), dtype="f4")), "holds no samples (tensor has 0)"),
    "PDEBench file whose tensor is a group": ("x.h5", lambda p, m: pdebench_with(
        p, lambda f: f.create_group("tensor")), "could not be read"),
    "PDEBench file whose tensor is a link to itself": ("x.h5", lambda p, m: pdebench_with(
        p, lambda f: f.__setitem__("tensor", h5py.SoftLink("/tensor"))), "could not be read"),
    "PDEBench file whose tensor holds strings": ("x.h5", lambda p, m: pdebench_with(
        p, lambda f: f.create_dataset("tensor", data=np.full((2, 3, 8), b"a", "S1"))), "not numbers"),
    "PDEBench file whose tensor is a virtual dataset of a missing file": ("x.h5", lambda p, m: pdebench_with(
        p, lambda f: f.create_virtual_dataset("tensor", virtual_layout(p.parent / "gone.h5"))),
        "source file"),
}


def virtual_layout(source: Path) -> h5py.VirtualLayout:
    layout = h5py.VirtualLayout(shape=(2, 3, 8), dtype="f4")
    layout[:] = h5py.VirtualSource(str(source), "tensor", shape=(2, 3, 8))
    return layout


@pytest.mark.fault("python -m pdeop.data.formats <a {case}>", "exit 2, one pdeop error line naming the file; no "
                   "traceback, nothing unpickled, no imaginary part dropped or zeros read in silence")
@pytest.mark.parametrize("case", list(COMMUNITY_FILES))
def test_a_strange_community_file_is_one_line(tmp_path, case, observed):
    name, build, reason = COMMUNITY_FILES[case]
    path, marker = tmp_path / name, tmp_path / "MARKER"
    build(path, marker)
    result = run_command([sys.executable, "-m", "pdeop.data.formats", str(path)], 120)
    line = pdeop_error_line(result.stderr)
    assert result.returncode == 2 and str(path) in line and reason in line, line
    assert not marker.exists()
    observed(f"exit 2: {line}")


@pytest.mark.fault("4 KiB of zeros written over a training sample inside a pdeop file (a bad sector, a copy cut "
                   "short)", "DataFileError naming the file when the damaged split is read (Fletcher-32 checksum per "
                   "chunk), never training on the damaged values")
def test_damage_inside_a_chunk_is_found_by_its_checksum(tmp_path, observed):
    path = generate(DatasetSpec(Darcy(resolution=65), n_train=4, n_val=2, n_test=2, subsample=1,
                                test_subsamples=()), tmp_path, progress=False)
    with h5py.File(path, "r") as f:
        chunk = f["train/65/inputs"].id.get_chunk_info(1)
    with open(path, "r+b") as raw:
        raw.seek(chunk.byte_offset + chunk.size // 2 - 2048)
        raw.write(bytes(4096))
    stored = DatasetFile(path)  # the layout and attributes are intact: the damage is in the data
    with pytest.raises(DataFileError) as caught:
        stored.read("train", 65)
    assert str(path) in str(caught.value) and "'train/65'" in str(caught.value)
    observed(str(caught.value))
