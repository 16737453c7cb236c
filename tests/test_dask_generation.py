"""Generation on Dask's distributed scheduler: the file is the same bit for bit in this process, on a LocalCluster
of one or two workers and on a scheduler reached by address, also when a worker is killed mid-generation; a
scheduler that does not answer is one ``pdeop error:`` line naming ``solvers.address``."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, run_entry
from distributed import Client, LocalCluster
from hydra.utils import get_class
from omegaconf import OmegaConf

from pdeop.config import check_config
from pdeop.data import generation
from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.shards import ChunkShards
from pdeop.data.solvers import AddressSolvers, LocalSolvers, SolverClusterError, kept_environment
from pdeop.errors import ConfigError
from pdeop.io import file_sha256
from pdeop.linalg import LinearSolver
from pdeop.problems import Darcy

# SKR (sorted, recycled GCRO-DR) solves depend on which samples share a batch: a chunking that followed the
# workers would change the values, not only the file's layout.
SKR = Darcy(resolution=33, linear_solver=LinearSolver(method="gcrodr", preconditioner="ilu"))


@dataclass(frozen=True)
class SlowDarcy(Darcy):
    """Darcy (the same parameters, so the same file name) taking ``seconds`` a sample: long enough to kill a
    worker while it solves."""

    seconds: float = 0.05

    def params(self) -> dict:
        return {key: value for key, value in super().params().items() if key != "seconds"}

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds * len(inputs))
        return super().solve(inputs)


@pytest.fixture(scope="module", autouse=True)
def fixed_creation_time():
    """``created_utc`` fixed, so that whole files compare by SHA-256."""

    class Fixed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 1, tzinfo=timezone.utc)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(generation, "datetime", Fixed)
        yield


@pytest.fixture(autouse=True)
def environment_kept():
    """Dask's nannies set OMP_NUM_THREADS=1 and more in the process that starts a LocalCluster and leave them;
    restore the environment so later tests (and the `nproc` of the SLURM test cluster) see the machine's."""
    with kept_environment():
        yield


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> str:
    """SHA-256 of the SKR file generated in this process (no Dask)."""
    spec = DatasetSpec(SKR, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0)
    return file_sha256(generate(spec, tmp_path_factory.mktemp("in_process"), progress=False))


def local_cluster(workers: int) -> LocalCluster:
    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)


def test_one_and_two_workers_write_the_in_process_file(tmp_path, reference):
    spec = DatasetSpec(SKR, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0)
    two = generate(spec, tmp_path / "two", workers=2, progress=False)  # LocalSolvers' own LocalCluster
    with local_cluster(1) as cluster:
        one = generate(spec, tmp_path / "one", progress=False, solvers=AddressSolvers(cluster.scheduler_address))
    assert file_sha256(two) == file_sha256(one) == reference


def test_local_solver_workers_have_one_blas_thread_and_glibcs_own_memory_trimming():
    # Dask's nannies would set MALLOC_TRIM_THRESHOLD_=65536, which made the Burgers solver step 3x slower
    # (pdeop/data/worker_environment.py); the environment of this process is left as it was
    before = dict(os.environ)
    with LocalSolvers(workers=1).connect(1, in_process=False) as client:
        seen = client.run(lambda: (os.environ.get("OMP_NUM_THREADS"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
    assert set(seen.values()) == {("1", None)}
    assert dict(os.environ) == before


def test_local_solvers_workers_override_generate_workers(tmp_path, reference):
    spec = DatasetSpec(SKR, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0)
    path = generate(spec, tmp_path, workers=2, progress=False, solvers=LocalSolvers(workers=1))  # no cluster
    assert file_sha256(path) == reference


def test_a_worker_killed_mid_generation_leaves_the_file_unchanged(tmp_path):
    spec = DatasetSpec(SlowDarcy(resolution=33), 48, 8, 8, subsample=2, test_subsamples=(1,), seed=1)
    expected = file_sha256(generate(DatasetSpec(Darcy(resolution=33), 48, 8, 8, subsample=2, test_subsamples=(1,),
                                                seed=1), tmp_path / "in_process", progress=False))
    with local_cluster(2) as cluster, Client(cluster) as client:
        pids = client.run(os.getpid)
        result: dict[str, Path | BaseException] = {}

        def run() -> None:
            try:
                result["path"] = generate(spec, tmp_path / "dask", progress=False,
                                          solvers=AddressSolvers(cluster.scheduler_address))
            except BaseException as exc:  # noqa: BLE001 -- re-raised below, in the test's thread
                result["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        victim = busy_worker(client, thread)
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=120)
        replaced = set(client.run(os.getpid).values())
    assert not thread.is_alive() and "error" not in result, result.get("error")
    assert pids[victim] not in replaced  # the nanny started another worker; the lost chunk was solved again
    assert file_sha256(result["path"]) == expected


def test_a_killed_generation_run_again_solves_only_the_chunks_it_had_not_kept(tmp_path, reference, monkeypatch):
    spec = DatasetSpec(SKR, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0)
    shards = ChunkShards(spec.path(tmp_path))
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_dask_generation import SKR, SlowDarcy
        from pdeop.data.generation import DatasetSpec, generate
        slow = SlowDarcy(resolution=33, linear_solver=SKR.linear_solver, seconds=0.3)
        generate(DatasetSpec(slow, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0), {str(tmp_path)!r},
                 progress=False)
    """)
    process = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 300
        while shards.count() < 3 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait()
    kept = shards.count()
    solved = []
    solve = Darcy.solve
    monkeypatch.setattr(Darcy, "solve", lambda self, inputs: solved.append(len(inputs)) or solve(self, inputs))
    path = generate(spec, tmp_path, progress=False)
    assert 3 <= kept < 24 and len(solved) == 24 - kept  # 8 chunks a split; only those not kept were solved
    assert file_sha256(path) == reference and not shards.folder.exists()


def test_a_shard_write_interrupted_midway_leaves_no_shard_and_the_rerun_solves_its_chunk(tmp_path, reference,
                                                                                          monkeypatch):
    spec = DatasetSpec(SKR, 32, 8, 8, subsample=2, test_subsamples=(1,), seed=0)
    shards = ChunkShards(spec.path(tmp_path))
    savez, saves = np.savez, []

    def killed_on_the_third(file, **arrays) -> None:  # half of the third shard's bytes written, then "killed"
        saves.append(len(saves))
        if len(saves) < 3:
            return savez(file, **arrays)
        whole = io.BytesIO()
        savez(whole, **arrays)
        file.write(whole.getvalue()[: len(whole.getvalue()) // 2])
        raise OSError("killed mid-write")

    monkeypatch.setattr(np, "savez", killed_on_the_third)
    with pytest.raises(OSError, match="killed mid-write"):
        generate(spec, tmp_path, progress=False)
    assert sorted(p.name for p in shards.folder.iterdir()) == ["train-0000000-0000004.npz",
                                                               "train-0000004-0000008.npz"]  # no third, no temporary
    monkeypatch.setattr(np, "savez", savez)
    solved = []
    solve = Darcy.solve
    monkeypatch.setattr(Darcy, "solve", lambda self, inputs: solved.append(len(inputs)) or solve(self, inputs))
    path = generate(spec, tmp_path, progress=False)
    assert len(solved) == 24 - 2  # the interrupted chunk among them
    assert file_sha256(path) == reference and not shards.folder.exists()


@pytest.mark.parametrize("name", ["local", "address", "slurm"])
def test_every_solvers_setting_has_the_timeout_a_cluster_without_workers_ends_after(name):
    """``solvers.timeout_s`` is a field of every solvers class and a key of its config (``WorkerWatch`` reads it);
    ``local`` keeps the 600 s a generation waited before the key existed."""
    config = OmegaConf.load(ROOT / "pdeop" / "conf" / "solvers" / f"{name}.yaml")
    solvers = get_class(config._target_)
    assert "timeout_s" in {field.name for field in fields(solvers)} and "timeout_s" in config
    if name == "local":
        assert config.timeout_s == solvers().timeout_s == 600
        check_config(OmegaConf.to_container(config), "solvers")


def test_the_slurm_setting_is_found_by_its_old_dotted_path_too():
    """``SlurmSolvers`` lives in ``pdeop.data.slurm_solvers``; a config written before names it in
    ``pdeop.data.solvers``, where it is still found (imported on first use)."""
    from pdeop.data import slurm_solvers, solvers

    assert get_class("pdeop.data.solvers.SlurmSolvers") is slurm_solvers.SlurmSolvers
    assert solvers.slurm_cluster_class is slurm_solvers.slurm_cluster_class
    with pytest.raises(AttributeError, match="no attribute 'SlurmSolver'"):
        solvers.SlurmSolver  # noqa: B018 -- the attribute access is the test


def test_a_cluster_left_without_workers_is_one_error_and_keeps_the_solved_chunks(tmp_path):
    spec = DatasetSpec(SlowDarcy(resolution=33, seconds=0.2), 48, 8, 8, subsample=2, seed=1)
    with local_cluster(1) as cluster, Client(cluster) as client:
        result: dict[str, Path | BaseException] = {}

        def run() -> None:
            try:
                result["path"] = generate(spec, tmp_path, progress=False,
                                          solvers=AddressSolvers(cluster.scheduler_address, timeout_s=3))
            except BaseException as exc:  # noqa: BLE001 -- checked below, in the test's thread
                result["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        shards = ChunkShards(spec.path(tmp_path))
        deadline = time.monotonic() + 120
        while shards.count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        busy_worker(client, thread)
        cluster.scale(0)  # the only worker retired, none to replace it
        thread.join(timeout=60)
    assert not thread.is_alive() and isinstance(result.get("error"), SolverClusterError), result
    assert "no solver worker for 3 s (solvers.timeout_s)" in str(result["error"])
    assert shards.count() >= 1 and not spec.path(tmp_path).exists()


def busy_worker(client: Client, generating: threading.Thread, timeout: float = 60) -> str:
    """A worker solving a chunk while the generation has more to do."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and generating.is_alive():
        busy = [worker for worker, keys in client.processing().items() if keys]
        if busy:
            return busy[0]
        time.sleep(0.05)
    raise AssertionError("no worker was seen solving while the generation ran")


def test_a_scheduler_that_does_not_answer_is_one_line(tmp_path):
    with socket.socket() as silent:  # accepts connections in the kernel's backlog but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        result = run_entry(["-m", "pdeop.generate"], ["data.problem.resolution=33", "data.subsample=2",
                                                      "data.test_subsamples=[]", "solvers=address",
                                                      f"solvers.address={address}", "solvers.timeout_s=2"],
                           tmp_path / "run", tmp_path / "data", check=False, timeout=120,
                           own_process=True)  # generate's real exit status and stderr line
    lines = [line for line in result.stderr.splitlines() if line.startswith("pdeop error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and f"solvers.address={address}" in lines[0] and "within 2 s" in lines[0]
    assert not list((tmp_path / "data").glob("*.tmp")) and not list((tmp_path / "data").glob("*.h5"))


def test_a_scheduler_lost_mid_generation_is_one_line_and_the_chunks_are_kept(tmp_path):
    """kill -9 of the scheduler a generation reaches by address: its tasks are cancelled, which was a traceback."""
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), str(ROOT)])}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", "0",
                                  "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file",
                                   str(scheduler_file), "--nthreads", "1", "--no-nanny"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        address = OmegaConf.load(scheduler_file)["address"]
        spec = DatasetSpec(SlowDarcy(resolution=33, seconds=0.2), 48, 8, 8, subsample=2, test_subsamples=(1,), seed=3)
        result: dict[str, Path | BaseException] = {}

        def run() -> None:
            try:
                result["path"] = generate(spec, tmp_path / "data", progress=False, solvers=AddressSolvers(address))
            except BaseException as exc:  # noqa: BLE001 -- examined below, in the test's thread
                result["error"] = exc

        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
            thread = threading.Thread(target=run)
            thread.start()
            busy_worker(client, thread)
            scheduler.kill()
            thread.join(timeout=120)
    finally:
        for process in (scheduler, worker):
            if process is not None:
                process.kill()
                process.wait()
    assert not thread.is_alive()
    error = result.get("error")
    assert isinstance(error, SolverClusterError), repr(error)
    assert "the connection to the Dask scheduler was lost mid-generation" in str(error) and "\n" not in str(error)
    assert not list((tmp_path / "data").glob("*.h5"))


def test_an_address_that_is_none_or_not_a_scheduler_is_named_and_waits_must_be_positive():
    """A malformed address or an HTTP server at it were reported as 'no Dask scheduler answered within 10 s
    (ValueError / MemoryError)'; a timeout of 0 or below was taken as given."""
    from pdeop.data.solvers import connect_within
    from pdeop.data.stream.generator import StreamSettings

    with pytest.raises(SolverClusterError, match=r"solvers.address=notanaddress: not an address Dask can reach "
                                                 r"\(.*\); expected the scheduler's address, e.g. tcp://host:8786"):
        connect_within("notanaddress", 5)
    with socket.socket() as server:  # answers every request as an HTTP server would
        server.bind(("127.0.0.1", 0))
        server.listen()

        def answer() -> None:
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # closed as the test ends
                    return
                with connection:
                    connection.recv(1024)
                    connection.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n" * 4)

        threading.Thread(target=answer, daemon=True).start()
        address = f"tcp://127.0.0.1:{server.getsockname()[1]}"
        with pytest.raises(SolverClusterError, match=rf"solvers.address={address}: something answered there that "
                                                     r"is not a Dask scheduler"):
            connect_within(address, 5)
    for make, key in ((lambda: AddressSolvers("tcp://h:1", timeout_s=0), "solvers.timeout_s"),
                      (lambda: LocalSolvers(timeout_s=-1.0), "solvers.timeout_s"),
                      (lambda: StreamSettings(stall_timeout_s=0.0), "data.stream.stall_timeout_s")):
        with pytest.raises(ConfigError, match=rf"{key}: expected a positive number of seconds"):
            make()
