"""Evaluate a trained run at every stored resolution: `pdeop-evaluate ckpt=<path> [data=<name>]` (in a checkout also
`python evaluate.py`).

Prints a table and writes JSON: relative L2 and H1 errors (mean, median, worst) per resolution.
"""

import hydra
from omegaconf import DictConfig

from pdeop.conf import CONFIG_PATH
from pdeop.errors import report_composition_errors, report_user_errors
from pdeop.evaluation.run import evaluate
from pdeop.io import stops_cleanly


@report_composition_errors
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="evaluate")
@report_user_errors
@stops_cleanly
def main(cfg: DictConfig) -> None:
    """Evaluate the model ``cfg.ckpt`` names (Hydra's job name: ``evaluate``)."""
    evaluate(cfg)


if __name__ == "__main__":
    main()
