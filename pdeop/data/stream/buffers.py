"""Training buffers between an online generator and the optimiser, after Meyer et al. (ICML 2023).

Meyer, Ribés, Raffin et al., "Training Deep Surrogate Models with Large Scale Online
Learning", ICML 2023 (the Melissa framework). The policies, as implemented here:

- ``fifo``: served in arrival order, each sample once; the producer waits when it is full.
- ``firo`` (first-in random-out): a uniformly random stored sample is served and removed, and
  only while at least ``watermark`` samples are stored, so batches mix samples of different
  ages; the producer waits when it is full.
- ``reservoir``: Melissa's random-eviction buffer. Every arrival is stored; a full buffer
  evicts a uniformly random stored sample to make room. Samples are served uniformly with
  replacement, so training reuses samples when the solvers are slower than the optimiser, and
  every freshly solved sample enters the buffer.
- ``uniform_history``: Vitter's algorithm R. The buffer holds a uniform random sample of the
  whole stream so far (the n-th arrival is kept with probability capacity / n, over a random
  slot), served the same way. After 100k arrivals into 1000 slots it discards about 99% of
  fresh samples: useful as a baseline, the opposite of what online training is for.

Both replay policies (served with replacement) make the producer wait once arrivals lead
servings by ``capacity``: Melissa's solvers run on nodes of their own, pdeop's share the
training machine, where solving samples that would be evicted before training sees them only
takes cores from training. (The waiting changes when samples arrive, not which ones a policy keeps.)

Every policy serves nothing until ``watermark`` samples have arrived (training starts on a
varied buffer); once the stream is closed, the rest drains without the watermark. The
buffers are thread-safe: one thread puts, the training loop gets.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import numpy as np

from pdeop.errors import ConfigError

POLICIES = ("fifo", "firo", "reservoir", "uniform_history")


class Buffer:
    """Base class: storage, the watermark gate, blocking with timeouts, and usage counters."""

    def __init__(self, capacity: int, watermark: int, seed: int = 0):
        if capacity < 1 or not 1 <= watermark <= capacity:
            raise ConfigError(f"data.stream: expected 1 <= watermark <= capacity, got watermark={watermark}, "
                              f"capacity={capacity}")
        self.capacity, self.watermark = capacity, watermark
        self.rng = np.random.default_rng(seed)
        self.condition = threading.Condition()
        self.started = False
        self.closed = False
        self.arrived = 0  # samples offered by the generator
        self.served = 0  # samples handed to training (with repeats)
        self.distinct_served = 0  # samples handed to training at least once

    def __len__(self) -> int:
        raise NotImplementedError

    def _can_put(self) -> bool:
        return len(self) < self.capacity

    def _store(self, item: list) -> None:
        raise NotImplementedError

    def _take(self) -> list:
        raise NotImplementedError

    def put(self, sample: Any, timeout: float | None = None) -> bool:
        """Offer a sample; waits while a bounded policy is full. False if it timed out or the buffer closed."""
        with self.condition:
            if not self.condition.wait_for(lambda: self.closed or self._can_put(), timeout):
                return False
            if self.closed:
                return False
            self.arrived += 1
            self._store([sample, 0])  # [sample, times served]
            self.started = self.started or len(self) >= self.watermark
            self.condition.notify_all()
            return True

    def _can_get(self) -> bool:
        if self.closed:
            return len(self) > 0
        return self.started and len(self) >= self._serving_minimum()

    def _serving_minimum(self) -> int:
        return 1

    def get(self, timeout: float | None = None) -> Any | None:
        """Take a sample for training, or ``None`` after ``timeout`` seconds (or when closed and empty)."""
        with self.condition:
            if not self.condition.wait_for(self._can_get, timeout) or len(self) == 0:
                return None
            item = self._take()
            self.served += 1
            self.distinct_served += item[1] == 0
            item[1] += 1
            self.condition.notify_all()
            return item[0]

    def close(self) -> None:
        """End of the stream: wake every waiter; what is stored can still be served."""
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def wait_until_started(self, timeout: float) -> bool:
        with self.condition:
            return self.condition.wait_for(lambda: self.started or self.closed, timeout)


class FIFOBuffer(Buffer):
    def __init__(self, capacity: int, watermark: int, seed: int = 0):
        super().__init__(capacity, watermark, seed)
        self.items: deque = deque()

    def __len__(self) -> int:
        return len(self.items)

    def _store(self, item: list) -> None:
        self.items.append(item)

    def _take(self) -> list:
        return self.items.popleft()


class FIROBuffer(Buffer):
    def __init__(self, capacity: int, watermark: int, seed: int = 0):
        super().__init__(capacity, watermark, seed)
        self.items: list = []

    def __len__(self) -> int:
        return len(self.items)

    def _serving_minimum(self) -> int:
        return self.watermark

    def _store(self, item: list) -> None:
        self.items.append(item)

    def _take(self) -> list:
        index = int(self.rng.integers(len(self.items)))
        self.items[index], self.items[-1] = self.items[-1], self.items[index]
        return self.items.pop()


class ReplayBuffer(Buffer):
    """Serves stored samples uniformly with replacement; the producer waits once it leads training by ``capacity``."""

    def __init__(self, capacity: int, watermark: int, seed: int = 0):
        super().__init__(capacity, watermark, seed)
        self.items: list = []

    def __len__(self) -> int:
        return len(self.items)

    def _can_put(self) -> bool:
        return self.arrived - self.served < self.capacity

    def _store(self, item: list) -> None:
        if len(self.items) < self.capacity:
            self.items.append(item)
            return
        slot = self._slot()
        if slot is not None:
            self.items[slot] = item

    def _slot(self) -> int | None:
        """The stored sample a new arrival replaces in a full buffer, or None to drop the arrival."""
        raise NotImplementedError

    def _take(self) -> list:
        return self.items[int(self.rng.integers(len(self.items)))]


class ReservoirBuffer(ReplayBuffer):
    """Melissa's reservoir (Meyer et al., ICML 2023): every arrival is stored, over a uniformly random victim when
    full."""

    def _slot(self) -> int:
        return int(self.rng.integers(self.capacity))


class UniformHistoryBuffer(ReplayBuffer):
    """Vitter's algorithm R: a uniform sample of the whole stream, so the n-th arrival is kept with p = capacity / n."""

    def _slot(self) -> int | None:
        slot = int(self.rng.integers(self.arrived))  # arrived counts this sample
        return slot if slot < self.capacity else None


def make_buffer(policy: str, capacity: int, watermark: int, seed: int = 0) -> Buffer:
    """The buffer for ``policy`` (``data.stream.buffer``)."""
    classes = {"fifo": FIFOBuffer, "firo": FIROBuffer, "reservoir": ReservoirBuffer,
               "uniform_history": UniformHistoryBuffer}
    if policy not in classes:
        raise ConfigError(f"data.stream.buffer: expected one of {POLICIES}, got {policy!r}")
    return classes[policy](capacity, watermark, seed)
