"""Train a neural operator: `python train.py model=fno data=darcy [key=value ...]`."""

import hydra
from omegaconf import DictConfig

from pdeop.errors import report_user_errors
from pdeop.training.run import train


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
@report_user_errors
def main(cfg: DictConfig) -> None:
    train(cfg)


if __name__ == "__main__":
    main()
