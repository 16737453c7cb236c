"""Table cells: the experiment configs under ``pdeop/conf/experiment/<table>/`` and what their ``leaderboard``
node says.

A cell is one model on one table at one tier: ``<table>/<cell>.yaml`` is the paper's exact
setting (``tier: paper``), ``<table>/<cell>_cpu.yaml`` the same recipe scaled to finish in about
30 minutes on a 2-core CPU (``tier: cpu``, with a ``scaled`` note saying how). The node names
the table, the model, the metric compared with the paper's figure (``metric``; ``paper.metric``
says in words what the paper's figure measures), metrics shown beside it (``also``, e.g. a
rollout's per-step mean beside its whole-trajectory error) and the paper's figure with its source.
A paper-tier cell that cannot be the paper's exact setting (another task, grid or system) says how it
departs (``departs``), so that the report never presents it as the paper's.

A cell whose node has ``benchmark`` (a script and its options, e.g. the SKR solver comparison)
is measured by that script instead of training: it writes a JSON file whose ``metrics``
hold the cell's metric.
"""

from __future__ import annotations

from dataclasses import dataclass

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pdeop.conf import CONF
from pdeop.errors import ConfigError

TIERS = ("paper", "cpu")


@dataclass(frozen=True)
class Cell:
    """One table cell at one tier, as its experiment config describes it."""

    table: str
    name: str
    tier: str
    experiment: str           # the config name: +experiment=<experiment>
    model: str
    metric: str               # the test metric compared with the paper's figure
    paper_value: float | None
    paper_source: str
    scaled: str = ""          # how the CPU tier departs from the paper's setting
    benchmark: tuple[str, ...] = ()  # a script and its options, for cells measured without training
    also: tuple[str, ...] = ()  # test metrics reported beside the compared one
    paper_metric: str = ""    # what the paper's figure measures, in words
    departs: str = ""         # how the cell's setting departs from the paper's; empty: the paper's own

    @property
    def command(self) -> str:
        """How to rerun the cell from a checkout's root (installed, ``pdeop-train`` takes the same overrides)."""
        if self.benchmark:
            return f"python {' '.join(self.benchmark)}"
        return f"python train.py +experiment={self.experiment}"


def compose_experiment(experiment: str, overrides: list[str] = ()):
    """The full run config of ``+experiment=<experiment>`` (with ``overrides``)."""
    with initialize_config_dir(str(CONF), version_base=None):
        return compose("config", overrides=[f"+experiment={experiment}", *overrides])


def tables() -> list[str]:
    return sorted(p.name for p in (CONF / "experiment").iterdir() if p.is_dir())


def experiments(table: str) -> list[str]:
    """The experiment names of ``table``'s configs, in file order."""
    return [f"{table}/{path.stem}" for path in sorted((CONF / "experiment" / table).glob("*.yaml"))]


def read_cell(experiment: str) -> Cell:
    """The cell that ``pdeop/conf/experiment/<experiment>.yaml``'s leaderboard node describes."""
    node = compose_experiment(experiment).get("leaderboard")
    if node is None:
        raise ConfigError(f"pdeop/conf/experiment/{experiment}.yaml has no leaderboard node (table, cell, model, "
                          f"tier, metric, paper)")
    paper = OmegaConf.to_container(node.paper)
    return Cell(table=node.table, name=node.cell, tier=node.tier, experiment=experiment,
                model=node.model, metric=node.metric, paper_value=paper.get("value"),
                paper_source=paper.get("source", ""), scaled=node.get("scaled", ""),
                benchmark=tuple(str(word) for word in node.get("benchmark", ())),
                also=tuple(str(name) for name in node.get("also", ())), paper_metric=paper.get("metric", ""),
                departs=node.get("departs", ""))


def load_cells(table: str, tier: str) -> list[Cell]:
    """The cells of ``table`` at ``tier``, in file order."""
    if table not in tables():
        raise ConfigError(f"leaderboard table '{table}' is unknown; tables: {tables()}")
    if tier not in TIERS:
        raise ConfigError(f"leaderboard tier '{tier}' is unknown; tiers: {list(TIERS)}")
    return [cell for cell in map(read_cell, experiments(table)) if cell.tier == tier]


def current_cells() -> dict[str, Cell]:
    """Every table's cells, by experiment name: what the report compares each record against."""
    return {experiment: read_cell(experiment) for table in tables() for experiment in experiments(table)}
