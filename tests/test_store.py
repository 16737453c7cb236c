"""HDF5 storage: round trip, cache reuse by parameter hash, atomic writes, clear errors."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import pdeop
from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.store import DatasetFile
from pdeop.errors import ConfigError, DataFileError
from pdeop.problems import Darcy


def tiny_spec(**changes) -> DatasetSpec:
    settings = dict(problem=Darcy(resolution=33), n_train=6, n_val=2, n_test=3, subsample=4,
                    test_subsamples=(2, 1), seed=5)
    settings.update(changes)
    return DatasetSpec(**settings)


def test_round_trip_records_data_and_provenance(tmp_path):
    spec = tiny_spec()
    path = generate(spec, tmp_path, progress=False)
    stored = DatasetFile(path)
    assert stored.attrs.problem == "darcy"
    assert stored.attrs.seed == 5
    assert stored.attrs.pdeop_version == pdeop.__version__
    assert stored.attrs.params == spec.params()
    assert stored.attrs.params["problem"]["tau"] == 3.0
    assert stored.resolutions("train") == [9]
    assert stored.resolutions("test") == [9, 17, 33]
    train = stored.read("train")
    assert train.inputs.shape == (6, 1, 9, 9) and train.outputs.shape == (6, 1, 9, 9)
    assert train.inputs.dtype == np.float32
    np.testing.assert_allclose(train.coords["x"], np.linspace(0, 1, 9))
    # The stored data is what the problem produces from the same seed.
    rng = np.random.default_rng(5)
    a = spec.problem.sample_inputs(6, rng)
    np.testing.assert_array_equal(train.inputs, a[:, :, ::4, ::4].astype(np.float32))
    np.testing.assert_allclose(train.outputs[0], spec.problem.solve(a[:1])[0, :, ::4, ::4], rtol=1e-6, atol=1e-9)
    # Every test resolution holds the same samples: the coarse grid is the fine grid subsampled.
    fine, coarse = stored.read("test", 33), stored.read("test", 9)
    np.testing.assert_array_equal(fine.outputs[:, :, ::4, ::4], coarse.outputs)
    assert fine.subsample == 1 and coarse.subsample == 4


def test_unchanged_parameters_reuse_the_file_and_changed_ones_regenerate(tmp_path):
    first = generate(tiny_spec(), tmp_path, progress=False)
    stamp = first.stat().st_mtime_ns
    time.sleep(0.01)
    assert generate(tiny_spec(), tmp_path, progress=False) == first
    assert first.stat().st_mtime_ns == stamp
    changed = generate(tiny_spec(problem=Darcy(resolution=33, tau=4.0)), tmp_path, progress=False)
    assert changed != first and changed.is_file()
    assert generate(tiny_spec(seed=6), tmp_path, progress=False) not in (first, changed)


def test_exception_during_generation_leaves_no_file_but_the_solved_chunks(tmp_path, monkeypatch):
    calls = []
    solve = Darcy.solve

    def failing_solve(self, inputs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("solver died")
        return solve(self, inputs)

    monkeypatch.setattr(Darcy, "solve", failing_solve)
    with pytest.raises(RuntimeError, match="solver died"):
        generate(tiny_spec(), tmp_path, progress=False)
    (kept,) = tmp_path.iterdir()  # no dataset, no temporary: the first chunk's shard, for a rerun
    assert kept.name == f".{tiny_spec().path(tmp_path).name}.chunks" and len(list(kept.iterdir())) == 1


def test_killed_generation_is_not_mistaken_for_complete(tmp_path):
    # A separate process generates a larger set and is killed mid-way with SIGKILL (no cleanup runs).
    script = textwrap.dedent(f"""
        from pdeop.data.generation import DatasetSpec, generate
        from pdeop.problems import Darcy
        spec = DatasetSpec(Darcy(resolution=129), n_train=400, n_val=1, n_test=1, subsample=4, seed=0)
        print(spec.path({str(tmp_path)!r}), flush=True)
        generate(spec, {str(tmp_path)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    target = proc.stdout.readline().strip()
    deadline = time.time() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not os.path.exists(target)
    with pytest.raises(DataFileError, match="does not exist"):
        DatasetFile(target)


def test_missing_and_corrupt_files_name_the_file_and_the_fix(tmp_path):
    missing = tmp_path / "darcy_000000000000.h5"
    with pytest.raises(DataFileError, match="darcy_000000000000.h5.*python -m pdeop.generate"):
        DatasetFile(missing)
    corrupt = tmp_path / "darcy_corrupt.h5"
    corrupt.write_bytes(b"not an hdf5 file")
    with pytest.raises(DataFileError, match="darcy_corrupt.h5.*not a readable pdeop dataset"):
        DatasetFile(corrupt)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataFileError, match="foreign.h5") as refused:
        DatasetFile(foreign)
    # a user's own file: not told to delete it unconditionally, but where files of other layouts are read
    assert "if pdeop generated it (damaged since), delete" in str(refused.value)
    assert "data=from_file data.path=<it>" in str(refused.value)
    (tmp_path / "folder.h5").mkdir()
    with pytest.raises(DataFileError, match="folder.h5' is a directory; data.path names a pdeop dataset file"):
        DatasetFile(tmp_path / "folder.h5")


def test_a_folder_where_the_dataset_goes_is_refused_before_solving(tmp_path, monkeypatch):
    """It was found at the rename into place, after the whole dataset was solved."""
    from pdeop.data import generation
    from pdeop.io import UnwritablePathError

    spec = tiny_spec()
    spec.path(tmp_path).mkdir()
    monkeypatch.setattr(generation, "solve_into", lambda *args: pytest.fail("solved before the refusal"))
    with pytest.raises(UnwritablePathError, match=r"where this dataset goes, is taken by something that is not a "
                                                  r"dataset file \(a folder or a broken link\); move it away"):
        generate(spec, tmp_path, progress=False)


def test_subsample_must_keep_the_boundary():
    with pytest.raises(ConfigError, match="subsample factor 3.*resolution - 1 = 32"):
        tiny_spec(subsample=3)
    with pytest.raises(ConfigError, match="data.n_train"):
        tiny_spec(n_train=0)


def test_train_subset_takes_the_first_stored_samples_and_keeps_val_and_test(tmp_path):
    from pdeop.data import OperatorDataModule
    from pdeop.errors import ConfigError

    def module(**kwargs):
        dm = OperatorDataModule(Darcy(resolution=17), 12, 4, 4, subsample=2, data_dir=str(tmp_path),
                                generate_workers=1, **kwargs)
        dm.prepare_data()
        dm.setup("fit")
        return dm

    full, subset = module(), module(train_subset=5)
    np.testing.assert_array_equal(subset.splits["train"].inputs, full.splits["train"].inputs[:5])
    np.testing.assert_array_equal(subset.splits["val"].outputs, full.splits["val"].outputs)
    assert len(list(subset.train_dataloader())) == 1  # 5 samples, batch 20
    with pytest.raises(ConfigError, match="data.train_subset"):
        module(train_subset=13)
