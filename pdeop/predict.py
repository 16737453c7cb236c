"""Predictions of a trained run as an xarray-readable NetCDF file plus PNGs: `pdeop-predict ckpt=<path> [data=<name>]
[out=pred.nc]` (in a checkout also `python predict.py`)."""

import hydra
from omegaconf import DictConfig

from pdeop.conf import CONFIG_PATH
from pdeop.errors import report_composition_errors, report_user_errors
from pdeop.evaluation.run import predict
from pdeop.io import stops_cleanly


@report_composition_errors
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="predict")
@report_user_errors
@stops_cleanly
def main(cfg: DictConfig) -> None:
    """Write the predictions of the model ``cfg.ckpt`` names (Hydra's job name: ``predict``)."""
    predict(cfg)


if __name__ == "__main__":
    main()
