"""Solver in the loop: worker processes draw inputs, solve them and stream samples into a buffer.

Every sample's inputs come from their own random generator seeded by (run seed, rank, worker,
counter), so no two workers or ranks produce the same sample, and a resumed run that starts
the workers at their saved counters continues the stream instead of replaying it. Workers
solve ``samples_per_solve`` samples per call (so SKR can order and recycle within the call),
subsample them to the training grid and send them through a bounded queue; a thread in the
training process moves them into the buffer. A worker that fails sends its traceback; a worker
that dies silently is noticed by its exit code; either way ``SolverStream.get`` raises.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass
from multiprocessing import get_context

import numpy as np

from pdeop.data.blas import exit_with_parent, single_blas_thread
from pdeop.data.generation import subsample_grid
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

    ``buffer`` is the policy (fifo, firo, reservoir); ``capacity`` and ``watermark`` are in
    samples; ``steps_per_epoch`` is the epoch-equivalent that schedulers, validation and
    checkpoints count in; ``normaliser_samples`` are solved once at start-up to fit the
    normalisers; ``stall_timeout_s`` bounds the wait for a sample while workers live.
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


def _work(problem: Problem, subsample: int, seed: int, rank: int, worker: int, start: int, per_solve: int,
          out, stop, parent: int) -> None:
    """Worker process loop: solve, send ``("samples", worker, first counter, inputs, outputs)``, repeat.

    It ends with the training process ``parent``, even one killed with SIGKILL (``exit_with_parent``).
    """
    exit_with_parent(parent)
    counter = start
    try:
        while not stop.is_set():
            x, y = draw_and_solve(problem, subsample, seed, rank, worker, range(counter, counter + per_solve))
            while not stop.is_set():
                try:
                    out.put(("samples", worker, counter, x, y), timeout=0.5)
                    break
                except queue.Full:
                    continue
            counter += per_solve
    except BaseException:  # noqa: BLE001 -- the training process reports it
        out.put(("error", worker, counter, traceback.format_exc(), None))


class SolverStream:
    """Runs the workers and the buffer; ``get`` hands training one sample at a time."""

    def __init__(self, problem: Problem, subsample: int, settings: StreamSettings, seed: int, rank: int = 0,
                 start_counters: list[int] | None = None):
        self.problem, self.subsample, self.settings = problem, subsample, settings
        self.seed, self.rank = seed, rank
        self.buffer: Buffer = make_buffer(settings.buffer, settings.capacity, settings.watermark, seed=seed + 7919 * rank)
        self.next_counters = list(start_counters or [0] * settings.workers)
        if len(self.next_counters) != settings.workers:
            raise ConfigError(f"data.stream.workers: the checkpoint's stream has {len(self.next_counters)} workers, "
                              f"the config {settings.workers}; resume with the same number")
        self.throughput = Throughput()
        self.error: str | None = None
        self.processes: list = []
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        context = get_context("spawn")
        self.stop_event = context.Event()
        self.queue = context.Queue(maxsize=2 * self.settings.workers)
        with single_blas_thread():
            for worker, start in enumerate(self.next_counters):
                process = context.Process(
                    target=_work, daemon=True, name=f"pdeop-stream-{self.rank}-{worker}",
                    args=(self.problem, self.subsample, self.seed, self.rank, worker, start,
                          self.settings.samples_per_solve, self.queue, self.stop_event,
                          os.getpid()))
                process.start()
                self.processes.append(process)
        self.thread = threading.Thread(target=self._drain, daemon=True, name="pdeop-stream-drain")
        self.thread.start()

    def _drain(self) -> None:
        """Move samples from the workers' queue into the buffer; note a worker's error or death."""
        while not self.stop_event.is_set():
            try:
                kind, worker, counter, x, y = self.queue.get(timeout=0.5)
            except queue.Empty:
                kind = None
            # a worker that raised exits with 0 after sending its traceback; any other exit is a death
            dead = [p for p in self.processes if p.exitcode not in (None, 0)]
            if dead and not self.stop_event.is_set():
                self._fail(f"generator worker {dead[0].name} died with exit code {dead[0].exitcode}")
            if kind is None:
                continue
            if kind == "error":
                self._fail(f"generator worker {worker} failed at sample {counter}:\n{x}")
                continue
            for i in range(len(x)):
                while not self.buffer.put((x[i], y[i]), timeout=0.5):
                    if self.stop_event.is_set() or self.buffer.closed:
                        return
            self.next_counters[worker] = counter + len(x)

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
        }

    def stop(self) -> None:
        if not self.processes:
            return
        self.stop_event.set()
        self.buffer.close()
        for process in self.processes:
            process.join(timeout=2.0)
            if process.is_alive():
                process.terminate()
                process.join()
        if self.thread is not None:
            self.thread.join(timeout=2.0)
        self.queue.cancel_join_thread()
        self.processes = []

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
