"""Generate a dataset without training: `pdeop-generate data=darcy [data.n_train=...] [solvers=...]` (or
`python -m pdeop.generate`).

``solvers`` (pdeop/conf/solvers/) says where the solvers run: this machine (local), a running Dask scheduler
(address) or SLURM jobs (slurm).
"""

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from pdeop.conf import CONFIG_PATH
from pdeop.config import check_config
from pdeop.errors import report_user_errors


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
@report_user_errors
def main(cfg: DictConfig) -> None:
    """Generate (or find) the dataset ``cfg.data`` describes and print its path."""
    check_config(OmegaConf.to_container(cfg.data, resolve=True), "data")
    check_config(OmegaConf.to_container(cfg.solvers, resolve=True), "solvers")
    datamodule = instantiate(cfg.data, generate=True)
    datamodule.solvers = instantiate(cfg.solvers)
    datamodule.prepare_data()
    print(datamodule.path)


if __name__ == "__main__":
    main()
