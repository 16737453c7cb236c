"""Evaluate a trained run at every stored resolution: `python evaluate.py ckpt=<path> [data=<name>]`.

Prints a table and writes JSON: relative L2 and H1 errors (mean, median, worst) per resolution.
"""

import hydra
from omegaconf import DictConfig

from pdeop.errors import report_user_errors
from pdeop.evaluation.run import evaluate


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@report_user_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
