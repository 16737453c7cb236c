"""pdeop: train and compare neural PDE operators on data from the project's own solvers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pdeop")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"


def __getattr__(name: str):
    """``pdeop.load_pretrained`` without importing torch and Lightning on ``import pdeop``."""
    if name == "load_pretrained":
        from pdeop.pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'pdeop' has no attribute {name!r}")
