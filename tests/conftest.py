"""Shared fixtures: a tiny Darcy dataset and a helper that runs the entry points as a user would."""

from __future__ import annotations

import functools
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

# One torch and BLAS thread in the tests and in every process they start (a user's setting wins): on a busy
# 2-core machine, two OpenMP threads a process spun against the other processes' and slowed some tests 100x.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import pytest  # noqa: E402 -- after the thread settings, which BLAS reads when it loads
import torch  # noqa: E402
from entry import in_process_enabled, needs_own_process, run_in_process  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

ROOT = Path(__file__).resolve().parents[1]

# A Darcy set small enough to generate in about a second: fine grid 33, training grid 17, test also at 33.
TINY_DATA = [
    "data.problem.resolution=33",
    "data.n_train=64",
    "data.n_val=16",
    "data.n_test=16",
    "data.subsample=2",
    "data.test_subsamples=[1]",
    "data.batch_size=8",
    "data.generate_workers=1",
]

# FNO's default modes (a 24 x 12 block) need a 22-node grid; the tiny set's 17-node grid holds these.
TINY_FNO = ["model.n_modes=[12,12]"]

# An experiment config (pdeop/conf/experiment/) shrunk to one training step on an 85x85 Darcy set of 8 samples.
SMALL_EXPERIMENT = [
    "data.problem.resolution=85", "data.subsample=1", "data.test_subsamples=[]", "data.n_train=4", "data.n_val=2",
    "data.n_test=2", "data.batch_size=2", "data.generate_workers=1", "trainer.max_epochs=1",
    "+trainer.limit_train_batches=1",
]


# Seconds the speed probe takes on an idle core of the 2-core machine CI runs on.
PROBE_SECONDS = 0.025


@functools.cache
def slowdown() -> float:
    """How much slower than CI's idle machine this one runs now (at least 1): a busy laptop gets longer timeouts.

    The median of nine runs of a small single-threaded FFT and matmul workload, over ``PROBE_SECONDS``;
    ``PDEOP_TEST_SLOWDOWN`` overrides the measurement.
    """
    if "PDEOP_TEST_SLOWDOWN" in os.environ:
        return float(os.environ["PDEOP_TEST_SLOWDOWN"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    x = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    times = []
    for _ in range(9):
        start, y = time.perf_counter(), x
        for _ in range(40):
            y = torch.fft.fft2(y @ x).real / 256
        times.append(time.perf_counter() - start)
    torch.set_num_threads(threads)
    return max(1.0, statistics.median(times) / PROBE_SECONDS)


def run_command(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` (text, output captured, in the checkout) with ``timeout`` scaled by ``slowdown()``;
    a command that runs past it fails the test with one message saying so, not a bare ``TimeoutExpired``."""
    limit = timeout * slowdown()
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit, **kwargs)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(map(str, cmd))} ran past {limit:.0f} s ({timeout} s scaled by this machine's "
                    f"slowdown {slowdown():.1f}); on a busy machine set PDEOP_TEST_SLOWDOWN to allow more.\n"
                    f"{(exc.stderr or b'')[-3000:]!r}", pytrace=False)


def run_entry(script: list[str], overrides: list[str], run_dir: Path, data_dir: Path, check: bool = True,
              timeout: int = 300, own_process: bool = False) -> subprocess.CompletedProcess:
    """Run ``python <script> <overrides>`` with its own run and data folders: in this process (``tests/entry.py``:
    the entry point's own ``main()`` under Hydra, with a fresh process's globals) unless ``own_process``, which
    starts a subprocess -- for what only a process shows (its real exit status and stderr, kills, signals), as
    do DDP runs (``entry.needs_own_process``).
    ``PDEOP_TEST_SUBPROCESS=1`` starts a subprocess for every call. ``timeout`` bounds a subprocess only."""
    env = {"PDEOP_DATA_DIR": str(data_dir), "WANDB_SILENT": "true"}
    quiet = ["trainer.enable_progress_bar=false"] if script == ["train.py"] else []
    args = [f"hydra.run.dir={run_dir}", *quiet, *overrides]
    if own_process or not in_process_enabled() or needs_own_process(args):
        result = run_command([sys.executable, *script, *args], timeout, env={**os.environ, **env})
    else:
        result = run_in_process(script, args, env)
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, result.args))} failed ({result.returncode}):\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}") from getattr(result, "exception", None)
    return result


@pytest.fixture(autouse=True)
def neuralop_einsum():
    """A compiling run routes tensorly's einsum to torch.einsum for the rest of its process
    (``pdeop.training.acceleration.traceable_contractions``); the next test gets neuralop's opt_einsum back, as a
    fresh process has it."""
    yield
    plugins = sys.modules.get("tensorly.plugins")
    if plugins is not None and "neuralop" in sys.modules and plugins.PREVIOUS_EINSUM is None:
        plugins.use_opt_einsum("optimal")


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def train(data_dir, tmp_path):
    """Run train.py on the tiny dataset (the default FNO with modes that fit it), in this process unless
    ``own_process``; returns (result, run_dir)."""

    def _train(*overrides: str, run_name: str = "run", check: bool = True, own_process: bool = False):
        run_dir = tmp_path / run_name
        model = [] if any(o.startswith(("model=", "model.n_modes=")) for o in overrides) else TINY_FNO
        result = run_entry(["train.py"], [*TINY_DATA, *model, *overrides], run_dir, data_dir, check=check,
                           own_process=own_process)
        return result, run_dir

    return _train


@pytest.fixture(scope="session")
def trained(tmp_path_factory, data_dir) -> Path:
    """A run directory of FNO trained 2 epochs on the tiny dataset (checkpoints, test_metrics.json)."""
    run = tmp_path_factory.mktemp("trained")
    run_entry(["train.py"], [*TINY_DATA, *TINY_FNO, "trainer.max_epochs=2"], run, data_dir)
    return run


SLURM_CLUSTER = ROOT / "slurm" / "local-cluster.sh"


@pytest.fixture(scope="session")
def slurm_env(tmp_path_factory):
    """A real one-node SLURM cluster (slurm/local-cluster.sh), started once for the session's SLURM tests and
    stopped after them: the environment that points SLURM's commands at it. Skips, saying why, where it cannot run."""
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (apt-get, munged, slurmd)")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and apt-get is not available to install it")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([str(SLURM_CLUSTER), "start", str(state)], capture_output=True, text=True, timeout=900)
    if started.returncode != 0:
        pytest.skip(f"the local SLURM cluster did not start:\n{started.stderr[-2000:]}")
    env = {**os.environ, "SLURM_CONF": str(state / "slurm.conf"), "WANDB_SILENT": "true",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PDEOP_PYTHON": sys.executable}
    yield env
    subprocess.run([str(SLURM_CLUSTER), "stop", str(state)], capture_output=True, timeout=120)


def slurm_job_state(env, job_id: str) -> str:
    """A job's state as scontrol shows it (ended jobs for MinJobAge, 5 minutes), or GONE."""
    out = subprocess.run(["scontrol", "show", "job", job_id], env=env, capture_output=True, text=True).stdout
    match = re.search(r"JobState=(\w+)", out)
    return match.group(1) if match else "GONE"
