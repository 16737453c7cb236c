"""Datasets: storage (HDF5), generation from the problems' solvers, normalisation, data modules, collocation points."""

from pdeop.data.collocation import CollocationDataModule
from pdeop.data.datamodule import OperatorDataModule
from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.store import DatasetFile

__all__ = ["CollocationDataModule", "DatasetFile", "DatasetSpec", "OperatorDataModule", "generate"]
