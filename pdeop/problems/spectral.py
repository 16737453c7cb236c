"""Pieces the pseudo-spectral solvers share: the device they run on, wavenumbers, the 2/3 de-aliasing mask.

Fields live on periodic grids of ``s`` nodes per axis at ``x = i / s`` on the unit interval;
transforms are ``torch.fft`` with the last axis real (``rfft``), batched over leading axes.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields
from typing import Iterator

import numpy as np
import torch

from pdeop.errors import ConfigError


def solver_device(device: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; otherwise the named device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"data.problem.device: expected auto, cpu or cuda[:i], got {device!r}") from exc


def solver_dtype(precision: str) -> torch.dtype:
    dtypes = {"single": torch.float32, "double": torch.float64}
    if precision not in dtypes:
        raise ConfigError(f"data.problem.precision: expected single or double, got {precision!r}")
    return dtypes[precision]


@contextmanager
def subnormals_flushed() -> Iterator[None]:
    """Within the block, this thread's CPU arithmetic flushes subnormal floats to zero (``torch.set_flush_denormal``).

    A viscous spectral solve damps its highest modes towards zero, where subnormal numbers (float32: below
    1.2e-38) make every operation on them many times slower on x86: Navier-Stokes on 32x32 at nu = 1e-3 in
    float32 ran about 4x slower once its small scales had decayed (``benchmarks/subnormals.py``). Numbers that
    small lie far below the rounding of the O(1) state, so the recorded trajectories stay the same bit for bit
    (``tests/test_time_dependent_solvers.py``). The flag belongs to the calling thread and is cleared again on
    leaving (torch cannot read it back), so nothing else in the process, training included, runs with it.
    """
    if not torch.set_flush_denormal(True):  # a CPU without the flag: nothing to undo
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def wavenumbers(s: int, dims: int, dtype: torch.dtype, device: torch.device) -> list[torch.Tensor]:
    """Integer wavenumbers of an ``s``-point grid per axis, shaped to broadcast over an rfft of ``dims`` axes.

    Every axis but the last has the full ``fftfreq`` range; the last has ``s // 2 + 1`` (rfft).
    """
    full = torch.fft.fftfreq(s, 1.0 / s, dtype=dtype, device=device)
    half = torch.fft.rfftfreq(s, 1.0 / s, dtype=dtype, device=device)
    axes = []
    for axis in range(dims):
        k = half if axis == dims - 1 else full
        shape = [1] * dims
        shape[axis] = -1
        axes.append(k.reshape(shape))
    return axes


def dealias_mask(ks: list[torch.Tensor], s: int) -> torch.Tensor:
    """Keep modes with every ``|k| <= (2/3) (s // 2)`` (Orszag's 2/3 rule), as a 0/1 array."""
    limit = (2.0 / 3.0) * (s // 2)
    mask = torch.ones((), dtype=ks[0].dtype, device=ks[0].device)
    for k in ks:
        mask = mask * (k.abs() <= limit)
    return mask


class RecordedTimeStepping:
    """What the time-dependent spectral problems share (frozen dataclasses with ``resolution``,
    ``viscosity``, ``final_time``, ``record_every``, ``dt``, ``tau``, ``precision``, ``device``):
    the checks of those settings, the recorded times and the recorded parameters."""

    def check_settings(self) -> None:
        if self.resolution < 8 or self.resolution % 2:
            raise ConfigError(f"data.problem.resolution: expected an even number of nodes >= 8, got {self.resolution}")
        for key in ("viscosity", "final_time", "record_every", "dt", "tau"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"data.problem.{key}: expected a positive number, got {getattr(self, key)}")
        for key, base, multiple in (("record_every", "dt", self.dt), ("final_time", "record_every", self.record_every)):
            ratio = getattr(self, key) / multiple
            if abs(ratio - round(ratio)) > 1e-9 * ratio:
                raise ConfigError(f"data.problem.{key}: expected a whole multiple of {base} = {multiple}, "
                                  f"got {getattr(self, key)}")
        solver_dtype(self.precision)
        solver_device(self.device)

    @property
    def steps_per_record(self) -> int:
        return round(self.record_every / self.dt)

    @property
    def records(self) -> int:
        return round(self.final_time / self.record_every)

    def times(self) -> np.ndarray:
        """The recorded times ``record_every, 2 record_every, ..., final_time`` (the initial state is the input)."""
        return self.record_every * np.arange(1, self.records + 1)

    def params(self) -> dict:
        """Every parameter that determines the data; the device changes only rounding and is not recorded."""
        return {"name": self.name, **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "device"}}
