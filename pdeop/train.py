"""Train a neural operator: `pdeop-train model=fno data=darcy [key=value ...]` (in a checkout also
`python train.py`)."""

import hydra
from omegaconf import DictConfig

from pdeop.conf import CONFIG_PATH
from pdeop.errors import report_user_errors
from pdeop.training.run import train


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
@report_user_errors
def main(cfg: DictConfig) -> None:
    """Train the run that ``cfg`` composes (Hydra's job name: ``train``)."""
    train(cfg)


if __name__ == "__main__":
    main()
