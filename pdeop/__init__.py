"""pdeop: train and compare neural PDE operators on data from the project's own solvers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pdeop")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
