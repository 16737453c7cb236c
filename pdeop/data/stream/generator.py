"""Solver in the loop: solver tasks on a Dask cluster draw inputs, solve them and stream samples into a buffer.

Every sample's inputs come from their own random generator seeded by (run seed, rank, stream slot,
counter), so no two slots or ranks produce the same sample, and a resumed run that starts the slots
at their saved counters continues the stream instead of replaying it. Each of ``data.stream.workers``
slots has one task of ``samples_per_solve`` samples in flight (so SKR can order and recycle within
it); its next task is submitted only once training's buffer has taken the last one's samples, so
nothing is solved that the buffer could not take (back-pressure). The tasks run where ``solvers``
says (``pdeop.data.solvers``: a ``LocalCluster`` by default, an existing scheduler, SLURM jobs). A
task whose worker dies is solved again by Dask with the same seeds, so a lost worker neither skips
nor repeats a sample; a task that raises, or whose workers keep dying, stops training with its
traceback, and a stream that sends nothing for ``stall_timeout_s`` stops it too.
"""

from __future__ import annotations

import threading
import time
import traceback
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
from distributed import Future, KilledWorker, wait

from pdeop.data.generation import subsample_grid
from pdeop.data.solvers import LocalSolvers, Solvers, check_timeout, dashboard_link, quiet_dask, workers_alive
from pdeop.data.stream.buffers import Buffer, make_buffer
from pdeop.errors import ConfigError, PdeopError
from pdeop.problems import Problem

STREAM_TAG = 0x5EED  # keeps stream seeds apart from the stored splits' seeds
NORMALISER_RANK = -1  # the seed space of the samples the normalisers are fitted on


class GeneratorError(PdeopError):
    """The online generator stopped: a worker raised, died, or produced nothing for too long."""


@dataclass(frozen=True)
class StreamSettings:
    """``data.stream``: how the online generator runs.

    ``buffer`` is the policy (fifo, firo, reservoir, uniform_history); ``capacity`` and ``watermark``
    are in samples; ``workers`` is the number of seed streams (slots) per rank, each with one solver
    task in flight, so it is the most solver workers one rank keeps busy; ``steps_per_epoch`` is the
    epoch-equivalent that schedulers, validation and checkpoints count in; ``normaliser_samples`` are
    solved once at start-up to fit the normalisers; ``stall_timeout_s`` bounds the wait for a sample
    while workers live.
    """

    buffer: str = "reservoir"
    capacity: int = 1000
    watermark: int = 100
    workers: int = 2
    samples_per_solve: int = 4
    steps_per_epoch: int = 20
    normaliser_samples: int = 64
    stall_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        for key in ("capacity", "watermark", "workers", "samples_per_solve", "steps_per_epoch", "normaliser_samples"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.stream.{key}: expected a positive integer, got {getattr(self, key)}")
        check_timeout(self.stall_timeout_s, "data.stream.stall_timeout_s")
        make_buffer(self.buffer, self.capacity, self.watermark)  # validates policy, capacity and watermark


class Throughput:
    """Rates since the last reading, for per-epoch logging."""

    def __init__(self):
        self.last_time = time.monotonic()
        self.last_counts: dict[str, int] = {}

    def rates(self, counts: dict[str, int]) -> dict[str, float]:
        now = time.monotonic()
        elapsed = max(now - self.last_time, 1e-9)
        rates = {k: (v - self.last_counts.get(k, 0)) / elapsed for k, v in counts.items()}
        self.last_time, self.last_counts = now, dict(counts)
        return rates


def sample_seed(seed: int, rank: int, worker: int, counter: int) -> np.random.SeedSequence:
    """The seed of one streamed sample: distinct for every (run seed, rank, worker, counter)."""
    return np.random.SeedSequence([STREAM_TAG, seed, rank + 1, worker, counter])


def draw_and_solve(problem: Problem, subsample: int, seed: int, rank: int, worker: int,
                   counters: range) -> tuple[np.ndarray, np.ndarray]:
    """Inputs drawn from each counter's own generator, solved as one batch, subsampled to the training grid."""
    inputs = np.concatenate([problem.sample_inputs(1, np.random.default_rng(sample_seed(seed, rank, worker, c)))
                             for c in counters])
    outputs = problem.solve(inputs)
    return (subsample_grid(inputs, subsample).astype(np.float32),
            subsample_grid(outputs, subsample).astype(np.float32))


def finished(futures: list[Future], timeout: float = 0.5) -> set[Future]:
    """The futures done within ``timeout`` seconds (waiting for the first), empty if none is."""
    try:
        return wait(futures, timeout=timeout, return_when="FIRST_COMPLETED").done
    except TimeoutError:
        return set()


class SolverStream:
    """Runs the solver tasks and the buffer; ``get`` hands training one sample at a time."""

    def __init__(self, problem: Problem, subsample: int, settings: StreamSettings, seed: int, rank: int = 0,
                 start_counters: list[int] | None = None, solvers: Solvers | None = None):
        self.problem, self.subsample, self.settings = problem, subsample, settings
        self.seed, self.rank = seed, rank
        self.solvers = solvers or LocalSolvers()
        self.buffer: Buffer = make_buffer(settings.buffer, settings.capacity, settings.watermark,
                                          seed=seed + 7919 * rank)
        self.next_counters = list(start_counters or [0] * settings.workers)
        if len(self.next_counters) != settings.workers:
            raise ConfigError(f"data.stream.workers: the checkpoint's stream has {len(self.next_counters)} workers, "
                              f"the config {settings.workers}; resume with the same number")
        self.throughput = Throughput()
        self.error: str | None = None
        self.stop_event = threading.Event()
        self.cluster = ExitStack()
        self.client = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        """Connect to the solvers' cluster, submit one task per slot and start moving results into the buffer."""
        self.cluster.enter_context(quiet_dask())
        self.client = self.cluster.enter_context(self.solvers.connect(self.settings.workers, in_process=False))
        link = dashboard_link(self.client)
        if link and self.rank == 0:
            print(f"online stream: {workers_alive(self.client)} solver workers, Dask dashboard: {link}", flush=True)
        self.thread = threading.Thread(target=self._drain, daemon=True, name="pdeop-stream-drain")
        self.thread.start()

    def _submit(self, slot: int) -> Future:
        counters = range(self.next_counters[slot], self.next_counters[slot] + self.settings.samples_per_solve)
        return self.client.submit(draw_and_solve, self.problem, self.subsample, self.seed, self.rank, slot, counters,
                                  pure=False)

    def _drain(self) -> None:
        """Move each finished task's samples into the buffer (waiting while it is full), then submit the slot's
        next task; a task's error, its workers' deaths or a lost scheduler end the stream with a message."""
        pending: dict[Future, int] = {}
        try:
            pending = {self._submit(slot): slot for slot in range(self.settings.workers)}
            while pending and not self.stop_event.is_set():
                for future in finished(list(pending)):
                    slot = pending.pop(future)
                    samples = self._result(future, slot)
                    if samples is None or not self._put(*samples):
                        return
                    self.next_counters[slot] += len(samples[0])
                    pending[self._submit(slot)] = slot
        except Exception as exc:  # noqa: BLE001 -- training reports it as GeneratorError
            self._fail(f"the online stream lost its Dask cluster: {type(exc).__name__}: {exc}")
        finally:
            if pending and self.client is not None and self.client.status == "running":
                self.client.cancel(list(pending))

    def _result(self, future: Future, slot: int) -> tuple[np.ndarray, np.ndarray] | None:
        """A task's samples, or None once its failure has ended the stream."""
        try:
            return future.result()
        except KilledWorker as exc:
            self._fail(f"generator workers died on every try of slot {slot}'s solve ({exc}); give them more "
                       f"memory or fewer workers a machine")
        except Exception as exc:  # noqa: BLE001 -- the solver's own error, with its traceback
            self._fail(f"generator worker {slot} failed at sample {self.next_counters[slot]}:\n"
                       f"{''.join(traceback.format_exception(exc))}")
        return None

    def _put(self, inputs: np.ndarray, outputs: np.ndarray) -> bool:
        """Offer the samples one by one, waiting while the buffer is full; False once the stream is stopping."""
        for x, y in zip(inputs, outputs):
            while not self.buffer.put((x, y), timeout=0.5):
                if self.stop_event.is_set() or self.buffer.closed:
                    return False
        return True

    def _fail(self, message: str) -> None:
        self.error = self.error or message
        self.buffer.close()

    def get(self) -> tuple[np.ndarray, np.ndarray]:
        """The next training sample; raises ``GeneratorError`` rather than waiting forever."""
        waited = 0.0
        while True:
            if self.error:
                raise GeneratorError(self.error)
            sample = self.buffer.get(timeout=1.0)
            if sample is not None:
                return sample
            if self.error:
                raise GeneratorError(self.error)
            waited += 1.0
            if waited >= self.settings.stall_timeout_s:
                raise GeneratorError(f"no sample from the generator for {waited:.0f} s "
                                     f"(data.stream.stall_timeout_s); the buffer holds {len(self.buffer)}")

    def stats(self) -> dict[str, float]:
        """Rates since the last call, buffer fill and mean uses per distinct served sample."""
        buffer = self.buffer
        rates = self.throughput.rates({"generated": buffer.arrived, "consumed": buffer.served})
        return {
            "stream/generated_per_s": rates["generated"],
            "stream/consumed_per_s": rates["consumed"],
            "stream/buffer_fill": len(buffer) / buffer.capacity,
            "stream/uses_per_sample": buffer.served / max(buffer.distinct_served, 1),
            "stream/generated_total": float(buffer.arrived),
            "stream/solver_workers": float(workers_alive(self.client)) if self.client is not None else 0.0,
        }

    def stop(self) -> None:
        """Stop submitting, wake the drain thread and close the connection (and a cluster started for the stream)."""
        self.stop_event.set()
        self.buffer.close()
        if self.thread is not None:
            self.thread.join(timeout=5.0)
            self.thread = None
        self.cluster.close()
        self.client = None

    def wait_for_watermark(self) -> None:
        """Block until training may start (the watermark), failing fast if the generator breaks."""
        start = time.monotonic()
        while not self.buffer.wait_until_started(timeout=1.0):
            if self.error:
                raise GeneratorError(self.error)
            if time.monotonic() - start > self.settings.stall_timeout_s:
                raise GeneratorError(f"the buffer did not reach its watermark of {self.settings.watermark} "
                                     f"samples in {self.settings.stall_timeout_s:.0f} s")
        if self.error:
            raise GeneratorError(self.error)
