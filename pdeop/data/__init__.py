"""Datasets: storage (HDF5), generation from the problems' solvers, community formats, normalisation, data modules,
collocation points.

The names below are imported on first use (PEP 562), so that importing a submodule (``pdeop.data.tasks``,
``pdeop.data.normalise``: what a trained operator needs) does not import Lightning with the data modules.
``from pdeop.data import OperatorDataModule`` works as before.
"""

from __future__ import annotations

import importlib

# Each public name -> the module that defines it (checked by tests/test_pretrained.py; read by the trust gate,
# pdeop/pretrained/trusted.py, which resolves a stored config's data module without importing Lightning).
LAZY_EXPORTS = {
    "CollocationDataModule": "pdeop.data.collocation",
    "DatasetFile": "pdeop.data.store",
    "DatasetSpec": "pdeop.data.generation",
    "FileDataModule": "pdeop.data.from_file",
    "LoaderSettings": "pdeop.data.datamodule",
    "OnlineDataModule": "pdeop.data.datamodule",
    "OperatorDataModule": "pdeop.data.datamodule",
    "PairsDataModule": "pdeop.data.datamodule",
    "generate": "pdeop.data.generation",
    "to_xarray": "pdeop.data.labelled",
}

__all__ = sorted(LAZY_EXPORTS)


def __getattr__(name: str):
    if name in LAZY_EXPORTS:
        value = getattr(importlib.import_module(LAZY_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pdeop.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(LAZY_EXPORTS))
