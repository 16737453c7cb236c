"""Generation's progress bar: it moves per sample while chunks are solved, in this process and from solver
processes, and reporting progress leaves the stored values bit for bit as they were."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pdeop.data import generation
from pdeop.data.generation import DatasetSpec, chunk_size, generate
from pdeop.data.store import DatasetFile
from pdeop.problems import Burgers1D, NavierStokes2D

TINY_NS = NavierStokes2D(resolution=16, final_time=0.2, record_every=0.05, dt=1e-2, device="cpu")  # 20 steps


@dataclass(frozen=True)
class SlowProblem:
    """Takes ``seconds`` a sample and reports each sample as it is done (a stand-in for a slow solver)."""

    seconds: float = 0.25
    name = "slow"
    boundary = "periodic"
    input_names = ("a",)
    output_names = ("u",)

    def params(self) -> dict:
        return {"name": self.name, "resolution": 8, "seconds": self.seconds}

    def coordinates(self) -> dict[str, np.ndarray]:
        return {"x": np.arange(8) / 8}

    def sample_inputs(self, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        return rng.standard_normal((n_samples, 1, 8))

    def solve(self, inputs: np.ndarray, progress=None) -> np.ndarray:
        for _ in inputs:
            time.sleep(self.seconds)
            progress(1.0)
        return 2 * inputs


@pytest.fixture
def bar_counts(monkeypatch) -> list[int]:
    """The bar's count after each of its updates, through generation's own tqdm."""
    counts = []

    class Recorded(generation.tqdm):
        def update(self, n=1):
            result = super().update(n)
            counts.append(self.n)
            return result

    monkeypatch.setattr(generation, "tqdm", Recorded)
    return counts


@pytest.fixture
def one_thread():
    """Torch on one thread, as in the solver processes: two threads on a busy 2-core machine crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_bar_moves_one_sample_at_a_time_within_a_chunk(tmp_path, bar_counts, one_thread):
    spec = DatasetSpec(TINY_NS, 24, 4, 4, subsample=1, seed=5)
    assert chunk_size(24, 1) == 6  # without reports the bar would jump 6 samples at a time
    generate(spec, tmp_path, workers=1)
    assert bar_counts == list(range(1, 33))


def test_solver_processes_report_through_the_shared_counter(tmp_path, bar_counts):
    spec = DatasetSpec(SlowProblem(), 24, 2, 2, subsample=1, seed=0)
    assert chunk_size(24, 2) == 3
    generate(spec, tmp_path, workers=2)
    assert bar_counts[-1] == 28
    assert any(count % 3 for count in bar_counts if count <= 24)  # seen while a chunk was in flight


@pytest.mark.parametrize("problem", [TINY_NS, Burgers1D(resolution=32, final_time=0.1, record_every=0.05, dt=1e-3,
                                                         device="cpu")], ids=["navier_stokes", "burgers"])
def test_reporting_progress_leaves_the_values_bit_identical(tmp_path, problem, one_thread):
    spec = DatasetSpec(problem, 7, 3, 4, subsample=1, seed=3)
    stored = DatasetFile(generate(spec, tmp_path, workers=1))
    rng = np.random.default_rng(spec.seed)
    for split, n in spec.split_sizes().items():
        inputs = problem.sample_inputs(n, rng)
        # generation's own chunks (cut as for CHUNKED_FOR workers, whatever the cluster): on some CPUs (this AMD EPYC)
        # an FFT's last bits depend on how many transforms it batches, so other chunks differ by an ulp
        size = chunk_size(n)
        expected = np.concatenate([problem.solve(chunk) for chunk in np.array_split(inputs, range(size, n, size))])
        fields = stored.read(split)
        np.testing.assert_array_equal(fields.inputs, inputs.astype(np.float32))
        np.testing.assert_array_equal(fields.outputs, expected)
