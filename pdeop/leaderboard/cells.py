"""Table cells: the experiment configs under ``conf/experiment/<table>/`` and what their ``leaderboard`` node says.

A cell is one model on one table at one tier: ``<table>/<cell>.yaml`` is the paper's exact
setting (``tier: paper``), ``<table>/<cell>_cpu.yaml`` the same recipe scaled to finish in about
30 minutes on a 2-core CPU (``tier: cpu``, with a ``scaled`` note saying how). The node names
the table, the model, the metric and the paper's figure with its source.

A cell whose node has ``benchmark`` (a script and its options, e.g. the SKR solver comparison)
is measured by that script instead of ``train.py``: it writes a JSON file whose ``metrics``
hold the cell's metric.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pdeop.errors import ConfigError

CONF = Path(__file__).resolve().parents[2] / "conf"
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

    @property
    def command(self) -> str:
        if self.benchmark:
            return f"python {' '.join(self.benchmark)}"
        return f"python train.py +experiment={self.experiment}"


def compose_experiment(experiment: str, overrides: list[str] = ()):
    """The full run config of ``+experiment=<experiment>`` (with ``overrides``)."""
    with initialize_config_dir(str(CONF), version_base=None):
        return compose("config", overrides=[f"+experiment={experiment}", *overrides])


def tables() -> list[str]:
    return sorted(p.name for p in (CONF / "experiment").iterdir() if p.is_dir())


def load_cells(table: str, tier: str) -> list[Cell]:
    """The cells of ``table`` at ``tier``, in file order."""
    if table not in tables():
        raise ConfigError(f"leaderboard table '{table}' is unknown; tables: {tables()}")
    if tier not in TIERS:
        raise ConfigError(f"leaderboard tier '{tier}' is unknown; tiers: {list(TIERS)}")
    cells = []
    for path in sorted((CONF / "experiment" / table).glob("*.yaml")):
        experiment = f"{table}/{path.stem}"
        node = compose_experiment(experiment).get("leaderboard")
        if node is None:
            raise ConfigError(f"conf/experiment/{experiment}.yaml has no leaderboard node (table, cell, model, "
                              f"tier, metric, paper)")
        if node.tier != tier:
            continue
        paper = OmegaConf.to_container(node.paper)
        cells.append(Cell(table=node.table, name=node.cell, tier=node.tier, experiment=experiment,
                          model=node.model, metric=node.metric, paper_value=paper.get("value"),
                          paper_source=paper.get("source", ""), scaled=node.get("scaled", ""),
                          benchmark=tuple(str(word) for word in node.get("benchmark", ()))))
    return cells
