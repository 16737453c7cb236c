"""Datasets: storage (HDF5), generation from the problems' solvers, normalisation, data modules."""

from pdeop.data.datamodule import OperatorDataModule
from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.store import DatasetFile

__all__ = ["DatasetFile", "DatasetSpec", "OperatorDataModule", "generate"]
