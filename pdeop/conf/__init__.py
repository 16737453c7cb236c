"""pdeop's Hydra configs, shipped in the package and found as ``pkg://pdeop.conf``.

A folder of your own adds groups and files beside these (a model yaml, a data yaml, an experiment):
``hydra.searchpath=[file:///abs/path]`` or ``--config-dir /abs/path`` on any entry point's command line.
"""

from pathlib import Path

CONFIG_PATH = "pkg://pdeop.conf"  # what the entry points' @hydra.main searches
CONF = Path(__file__).resolve().parent  # the same folder, for code that lists its files
