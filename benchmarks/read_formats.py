"""Lazy reading of a community file against loading it whole, as FNO's MatReader does.

Writes a MATLAB v7.3 file in the layout of FNO's ``ns_V1e-3_N5000_T50.mat`` (``u`` [N, 64, 64, 50],
doubles, column-major), then reads FNO-2D's training inputs from it both ways -- the first
``--train`` trajectories at every ``--r``-th node -- and prints wall time and peak NumPy memory
(tracemalloc) of each, their ratios, and checks that both give the same numbers.

    python benchmarks/read_formats.py [--samples 1000] [--train 200] [--r 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from format_files import write_mat_v73  # noqa: E402 (the tests' writer of MATLAB's v7.3 layout)

from pdeop.data.formats import open_dataset  # noqa: E402


def write_file(path: Path, samples: int, grid: int = 64, times: int = 50) -> None:
    """A v7.3 file of ``samples`` trajectories, written in blocks so the writer itself stays small."""
    write_mat_v73(path, {"a": np.zeros((1, grid, grid)), "t": np.arange(1.0, times + 1)[None]})
    with h5py.File(path, "r+") as f:
        del f["a"]
        a = f.create_dataset("a", (grid, grid, samples), "f8", chunks=(grid, grid, 1))
        u = f.create_dataset("u", (times, grid, grid, samples), "f8", chunks=(times, grid, grid, 1))
        rng = np.random.default_rng(0)
        for start in range(0, samples, 100):
            stop = min(start + 100, samples)
            a[..., start:stop] = rng.standard_normal((grid, grid, stop - start))
            u[..., start:stop] = rng.standard_normal((times, grid, grid, stop - start))


def measure(read) -> tuple[float, float, np.ndarray]:
    tracemalloc.start()
    start = time.perf_counter()
    out = read()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak, out


def whole_file(path: Path, n: int, r: int) -> np.ndarray:
    """FNO's MatReader: read the variable, reverse its axes, cast to float32, then slice."""
    with h5py.File(path, "r") as f:
        u = f["u"][()]
    u = np.transpose(u, range(u.ndim - 1, -1, -1)).astype(np.float32)
    return np.ascontiguousarray(u[:n, ::r, ::r])


def lazy(path: Path, n: int, r: int) -> np.ndarray:
    dataset = open_dataset(path, periodic=True)  # also reads the inputs `a` (FNO's NS grid is periodic)
    fields = dataset.read(slice(0, n), subsample=r)
    dataset.close()
    return np.moveaxis(fields.outputs[:, 0], 1, -1)  # [n, s, s, T], as FNO indexes it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--r", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ns_V1e-3_N1000_T50.mat"
        write_file(path, args.samples)
        size = path.stat().st_size / 2**20
        t_lazy, m_lazy, x_lazy = measure(lambda: lazy(path, args.train, args.r))
        t_whole, m_whole, x_whole = measure(lambda: whole_file(path, args.train, args.r))
        np.testing.assert_array_equal(x_lazy, x_whole)
    result = {"file_MiB": round(size), "samples": args.samples, "read": args.train, "r": args.r,
              "lazy_s": round(t_lazy, 3), "whole_s": round(t_whole, 3), "lazy_peak_MiB": round(m_lazy, 1),
              "whole_peak_MiB": round(m_whole, 1), "time_ratio_whole_over_lazy": round(t_whole / t_lazy, 2),
              "memory_ratio_whole_over_lazy": round(m_whole / m_lazy, 1), "machine": platform.processor() or
              platform.machine(), "h5py": h5py.__version__}
    print(f"v7.3 file {size:.0f} MiB, {args.samples} trajectories of 64x64x50; "
          f"reading the first {args.train} at r = {args.r}")
    print(f"  lazy (pdeop):          {t_lazy:7.3f} s, peak {m_lazy:8.1f} MiB")
    print(f"  whole file (MatReader): {t_whole:7.3f} s, peak {m_whole:8.1f} MiB")
    print(f"  whole / lazy: time x{t_whole / t_lazy:.2f}, memory x{m_whole / m_lazy:.1f}; same values: yes")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
