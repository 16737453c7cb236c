"""Generate a dataset without training: `pdeop-generate data=darcy [data.n_train=...] [solvers=...]` (or
`python -m pdeop.generate`).

``solvers`` (pdeop/conf/solvers/) says where the solvers run: this machine (local), a running Dask scheduler
(address) or SLURM jobs (slurm). The config is the training one (pdeop/conf/generate.yaml extends config.yaml), with
the log under ``outputs/generate/<data>/<time>/``.
"""

import logging

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.conf import CONFIG_PATH
from pdeop.config import check_config
from pdeop.errors import ConfigError, report_composition_errors, report_user_errors
from pdeop.io import stops_cleanly

log = logging.getLogger(__name__)


@report_composition_errors
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="generate")
@report_user_errors
@stops_cleanly(left="the chunks solved so far are kept beside the file, and the same generation goes on from them")
def main(cfg: DictConfig) -> None:
    """Generate (or find) the dataset ``cfg.data`` describes and print its path."""
    data = OmegaConf.to_container(cfg.data, resolve=True)
    check_config(data, "data")
    check_config(OmegaConf.to_container(cfg.solvers, resolve=True), "solvers")
    if "generate" not in data or "problem" not in data:
        raise ConfigError(f"data: {str(data.get('_target_', '?')).rsplit('.', 1)[-1]} generates no dataset (a "
                          f"physics-informed problem instance, or a file read as it is); generate operator data: "
                          f"darcy, darcy_fno, navier_stokes, burgers, ...")
    datamodule = instantiate(cfg.data, generate=True)
    datamodule.solvers = instantiate(cfg.solvers)
    datamodule.prepare_data()
    datamodule.open_store()  # a file found in place is checked as training checks it: damaged, it is named here
    log.info("dataset %s (%d training, %d validation, %d test samples)", datamodule.path, datamodule.spec.n_train,
             datamodule.spec.n_val, datamodule.spec.n_test)
    print(datamodule.path)


if __name__ == "__main__":
    main()
