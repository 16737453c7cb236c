"""Datasets: storage (HDF5), generation from the problems' solvers, community formats, normalisation, data modules,
collocation points."""

from pdeop.data.collocation import CollocationDataModule
from pdeop.data.datamodule import LoaderSettings, OnlineDataModule, OperatorDataModule, PairsDataModule
from pdeop.data.from_file import FileDataModule
from pdeop.data.generation import DatasetSpec, generate
from pdeop.data.labelled import to_xarray
from pdeop.data.store import DatasetFile

__all__ = ["CollocationDataModule", "DatasetFile", "DatasetSpec", "FileDataModule", "LoaderSettings",
           "OnlineDataModule", "OperatorDataModule", "PairsDataModule", "generate", "to_xarray"]
