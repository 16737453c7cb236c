"""Predictions of a trained run as an xarray-readable NetCDF file plus PNGs: `python predict.py ckpt=<path> [data=<name>] [out=pred.nc]`."""

import hydra
from omegaconf import DictConfig

from pdeop.errors import report_user_errors
from pdeop.evaluation.run import predict


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@report_user_errors
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
