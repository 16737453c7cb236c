"""Online generation: buffer policies, seeds, failing workers, and online training through train.py."""

import json
import os
import signal
import threading
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.store import DatasetFile
from pdeop.data.stream import GeneratorError, SolverStream, StreamSettings, draw_and_solve, make_buffer, sample_seed
from pdeop.linalg import LinearSolver
from pdeop.problems import Darcy


def test_fifo_serves_in_arrival_order_after_the_watermark():
    buffer = make_buffer("fifo", capacity=5, watermark=3)
    for i in range(2):
        buffer.put(i)
    assert buffer.get(timeout=0) is None  # below the watermark
    buffer.put(2)
    assert [buffer.get(timeout=0) for _ in range(3)] == [0, 1, 2]
    for i in range(3, 8):
        assert buffer.put(i, timeout=0)
    assert not buffer.put(99, timeout=0)  # full: the producer waits
    assert [buffer.get(timeout=0) for _ in range(5)] == [3, 4, 5, 6, 7]


def test_firo_serves_each_sample_once_in_random_order_above_the_watermark():
    buffer = make_buffer("firo", capacity=50, watermark=10, seed=1)
    for i in range(30):
        buffer.put(i)
    served = [buffer.get(timeout=0) for _ in range(21)]
    assert buffer.get(timeout=0) is None  # 9 left, below the watermark
    buffer.close()
    served += [buffer.get(timeout=0) for _ in range(9)]  # a closed stream drains
    assert sorted(served) == list(range(30))
    assert served[:21] != sorted(served[:21])
    assert buffer.get(timeout=0) is None


def test_uniform_history_keeps_a_uniform_sample_of_the_stream():
    stream_length, capacity, bins = 4000, 50, 8
    counts = np.zeros(bins)
    for seed in range(40):
        buffer = make_buffer("uniform_history", capacity=capacity, watermark=1, seed=seed)
        for i in range(stream_length):
            assert buffer.put(i, timeout=0)
            buffer.get(timeout=0)  # training keeps pace, so the producer never waits
        counts += np.bincount(np.array([item[0] for item in buffer.items]) * bins // stream_length, minlength=bins)
    expected = counts.sum() / bins
    assert np.abs(counts - expected).max() < 0.2 * expected, counts
    assert buffer.served == stream_length and buffer.served / buffer.distinct_served > 1  # samples are reused


def test_reservoir_stores_every_arrival_over_a_uniformly_random_victim():
    capacity, trials = 10, 3000
    evicted = np.zeros(capacity)
    for seed in range(trials):
        buffer = make_buffer("reservoir", capacity=capacity, watermark=1, seed=seed)
        for i in range(capacity + 1):
            assert buffer.put(i, timeout=0)
            buffer.get(timeout=0)  # serving removes nothing; it lets the producer lead by at most the capacity
        stored = [item[0] for item in buffer.items]
        assert capacity in stored and len(stored) == capacity  # the new arrival is in, one old sample out
        evicted[min(set(range(capacity)) - set(stored))] += 1
    assert np.abs(evicted - trials / capacity).max() < 0.2 * trials / capacity, evicted
    buffer = make_buffer("reservoir", capacity=50, watermark=1, seed=0)
    for i in range(4000):  # a long stream: the buffer holds recent samples, unlike uniform_history
        buffer.put(i, timeout=0)
        buffer.get(timeout=0)
    assert np.median([item[0] for item in buffer.items]) > 3900


@pytest.mark.parametrize("policy", ["reservoir", "uniform_history"])
def test_replay_buffers_wait_only_when_they_lead_training_by_their_capacity(policy):
    buffer = make_buffer(policy, capacity=4, watermark=2)
    assert buffer.get(timeout=0) is None
    assert all(buffer.put(i, timeout=0) for i in range(4))
    assert not buffer.put(4, timeout=0)
    assert buffer.get(timeout=0) in range(4)
    assert buffer.put(4, timeout=0)


@pytest.mark.parametrize("policy", ["fifo", "firo", "reservoir", "uniform_history"])
def test_a_producer_thread_and_the_training_loop_share_a_buffer_safely(policy):
    buffer, count = make_buffer(policy, capacity=32, watermark=8, seed=0), 3000
    produced = threading.Thread(target=lambda: [buffer.put(i, timeout=10) for i in range(count)])
    produced.start()
    served = [buffer.get(timeout=10) for _ in range(count - 8)]  # firo keeps its watermark back until closed
    produced.join(timeout=30)
    assert not produced.is_alive() and buffer.arrived == count and buffer.served == count - 8
    assert all(sample in range(count) for sample in served) and len(buffer) <= 32


def test_sample_seeds_never_collide_across_ranks_workers_and_counters():
    states = {tuple(sample_seed(0, rank, worker, counter).generate_state(4))
              for rank in range(-1, 4) for worker in range(4) for counter in range(50)}
    assert len(states) == 5 * 4 * 50
    problem = Darcy(resolution=9)
    a, _ = draw_and_solve(problem, 1, 0, 0, 0, range(3))
    b, _ = draw_and_solve(problem, 1, 0, 1, 0, range(3))
    c, _ = draw_and_solve(problem, 1, 0, 0, 0, range(1, 4))
    assert not any(np.array_equal(x, y) for x in a for y in b)
    np.testing.assert_array_equal(a[1:], c[:2])  # a sample depends on its counter alone


def wait_for_error(stream, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stream.get()
    raise AssertionError("no error")


@dataclass(frozen=True)
class SlowDarcy(Darcy):
    """Darcy taking ``seconds`` a sample, so that a worker is killed while it solves."""

    seconds: float = 0.2

    def solve(self, inputs: np.ndarray) -> np.ndarray:
        time.sleep(self.seconds * len(inputs))
        return super().solve(inputs)


def stream_counter(problem, slots: int, counters: int) -> dict[bytes, tuple[int, int]]:
    """(slot, counter) of every sample the first ``counters`` of each slot's seeds draw, by its input's bytes."""
    return {draw_and_solve(problem, 2, 0, 0, slot, range(c, c + 1))[0][0].tobytes(): (slot, c)
            for slot in range(slots) for c in range(counters)}


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_no_seed_is_skipped_or_repeated():
    problem = SlowDarcy(resolution=17)
    settings = StreamSettings(buffer="fifo", capacity=8, watermark=4, workers=2, samples_per_solve=2)
    stream = SolverStream(problem, 2, settings, seed=0)
    stream.start()
    try:
        stream.wait_for_watermark()
        pids = stream.client.run(os.getpid)
        os.kill(next(iter(pids.values())), signal.SIGKILL)  # mid-solve: every worker has a task in flight
        served = [stream.get()[0] for _ in range(24)]
        assert len(stream.client.run(os.getpid)) == 2  # the nanny started a new worker
    finally:
        stream.stop()
    which = stream_counter(Darcy(resolution=17), 2, 40)
    drawn = [which[x.tobytes()] for x in served + [item[0][0] for item in stream.buffer.items]]
    assert len(set(drawn)) == len(drawn)  # nothing repeated
    for slot in range(2):  # nothing skipped: each slot's samples are its first counters, in order
        assert [c for s, c in drawn if s == slot] == list(range(sum(s == slot for s, _ in drawn)))


@pytest.mark.slow
def test_a_failing_solver_reports_its_error_instead_of_hanging():
    problem = Darcy(resolution=17, linear_solver=LinearSolver(method="gmres", max_iterations=2))
    stream = SolverStream(problem, 2, StreamSettings(workers=1, watermark=4, capacity=8), seed=0)
    stream.start()
    try:
        with pytest.raises(GeneratorError, match="SolverError.*after 2 iterations"):
            stream.wait_for_watermark()
    finally:
        stream.stop()


def test_online_files_hold_the_offline_validation_and_test_samples_and_no_training_set(tmp_path):
    offline = DatasetSpec(Darcy(resolution=17), 12, 4, 4, subsample=2, test_subsamples=(1,), seed=3)
    online = DatasetSpec(Darcy(resolution=17), 12, 4, 4, subsample=2, test_subsamples=(1,), seed=3, store_train=False)
    assert offline.path(tmp_path) != online.path(tmp_path)
    stored = {spec: DatasetFile(generate(spec, tmp_path, progress=False)) for spec in (offline, online)}
    for split, resolution in (("val", None), ("test", 9), ("test", 17)):
        a, b = (stored[spec].read(split, resolution) for spec in (offline, online))
        np.testing.assert_array_equal(a.inputs, b.inputs)
        np.testing.assert_array_equal(a.outputs, b.outputs)
    with pytest.raises(Exception, match="train"):
        stored[online].read("train")


def test_online_true_builds_the_online_data_module_from_the_same_config(tmp_path):
    from pdeop.data import OnlineDataModule, OperatorDataModule
    from pdeop.data.tasks import FinalState
    from pdeop.errors import ConfigError

    args = (Darcy(resolution=17), 12, 4, 4, 2)
    offline, online = OperatorDataModule(*args), OperatorDataModule(*args, online=True, batch_size=3)
    assert type(offline) is OperatorDataModule and not hasattr(offline, "stream")
    assert type(online) is OnlineDataModule and isinstance(online, OperatorDataModule)
    assert offline.stores_train and offline.spec.store_train and offline.state_dict() == {}
    assert not online.stores_train and not online.spec.store_train and online.settings.batch_size == 3
    assert online.state_dict() == {}  # no stream yet, nothing restored
    online.load_state_dict({"stream_counters": [[5, 7]]})
    assert online.stream_counters == [5, 7] and online.state_dict() == {"stream_counters": [[5, 7]]}
    with pytest.raises(ConfigError, match="data.online: the online stream serves single input-output pairs"):
        OperatorDataModule(*args, online=True, task=FinalState())


def test_checkpoints_of_online_runs_before_the_online_data_module_resume_their_stream(tmp_path):
    """Lightning files a data module's state under its class name: older online checkpoints used OperatorDataModule."""
    from pdeop.training.checkpoint_io import AtomicCheckpointIO

    torch.save({"state_dict": {}, "OperatorDataModule": {"stream_counters": [[40, 36]]}}, tmp_path / "old.ckpt")
    checkpoint = AtomicCheckpointIO().load_checkpoint(tmp_path / "old.ckpt")
    assert checkpoint["OnlineDataModule"] == {"stream_counters": [[40, 36]]} and "OperatorDataModule" not in checkpoint


@pytest.mark.slow
def test_online_training_logs_the_stream_and_resumes_it(train):
    stream = ["data.online=true", "data.stream.watermark=16", "data.stream.capacity=16",
              "data.stream.steps_per_epoch=4", "data.stream.normaliser_samples=16", "data.stream.workers=1"]
    _, run = train(*stream, "trainer.max_epochs=2")
    with open(run / "csv" / "metrics.csv") as f:
        header = f.readline()
    for key in ("stream/generated_per_s", "stream/consumed_per_s", "stream/buffer_fill", "stream/uses_per_sample"):
        assert key in header
    assert {"test/rel_l2_17", "test/rel_l2_33"} <= set(json.loads((run / "test_metrics.json").read_text()))
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["OnlineDataModule"]["stream_counters"][0]
    assert first[0] >= 2 * 4 * 8  # at least every sample trained on was counted
    _, resumed = train(*stream, "trainer.max_epochs=3", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}")
    second = torch.load(resumed / "checkpoints" / "last.ckpt",
                        weights_only=True)["OnlineDataModule"]["stream_counters"][0]
    # restarted from zero, the workers could lead training by at most the capacity and what is in flight
    assert second[0] >= first[0] + 4 * 8  # so this holds only because they started past the saved counters
