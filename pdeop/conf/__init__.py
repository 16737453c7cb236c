"""pdeop's Hydra configs, shipped in the package and found as ``pkg://pdeop.conf``.

A folder of your own adds groups and files beside these (a model yaml, a data yaml, an experiment):
``hydra.searchpath=[file:///abs/path]`` or ``--config-dir /abs/path`` on any entry point's command line.
"""

from pathlib import Path

CONFIG_PATH = "pkg://pdeop.conf"  # what the entry points' @hydra.main searches
CONF = Path(__file__).resolve().parent  # the same folder, for code that lists its files


def options(group: str) -> list[str]:
    """The names ``<group>=<name>`` takes from the shipped configs, sorted."""
    return sorted(path.stem for path in (CONF / group).glob("*.yaml"))


def target(group: str, name: str) -> str | None:
    """The ``_target_`` that ``<group>=<name>`` builds (its own node's, or the file it extends in the same group)."""
    import yaml

    node = yaml.safe_load((CONF / group / f"{name}.yaml").read_text()) or {}
    own = (node.get(group) or {}) if isinstance(node.get(group), dict) else node
    if "_target_" in own:
        return own["_target_"]
    parents = [entry for entry in node.get("defaults", []) if isinstance(entry, str) and entry != "_self_"]
    return target(group, parents[0]) if parents else None
