"""pdeop: train and compare neural PDE operators on data from the project's own solvers."""

import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def source_version(package_dir: Path) -> str | None:
    """The version in the ``pyproject.toml`` beside ``package_dir`` when that names pdeop, else None.

    A source tree's own file comes first: a copy that was never installed (the checkout on a lent GPU machine)
    or one imported past another tree's installation reports the version of the code that runs.
    """
    try:
        project = tomllib.loads((package_dir.parent / "pyproject.toml").read_text())["project"]
    except (OSError, ValueError, KeyError, UnicodeDecodeError):
        return None
    return str(project["version"]) if project.get("name") == "pdeop" and "version" in project else None


def installed_version() -> str:
    """The installed distribution's version, or ``0.0.0+unknown`` where none is installed."""
    try:
        return version("pdeop")
    except PackageNotFoundError:
        return "0.0.0+unknown"


__version__ = source_version(Path(__file__).resolve().parent) or installed_version()


def __getattr__(name: str):
    """``pdeop.load_pretrained`` without importing torch and Lightning on ``import pdeop``."""
    if name == "load_pretrained":
        from pdeop.pretrained import load_pretrained

        return load_pretrained
    raise AttributeError(f"module 'pdeop' has no attribute {name!r}")
