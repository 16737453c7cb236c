"""auto_resume: a run restarted in its own directory continues only the setting it was trained with."""

import pytest

from pdeop.errors import ConfigError
from pdeop.training.run import check_resumable, write_yaml


def test_auto_resume_continues_further_but_refuses_another_setting(tmp_path):
    config = {"seed": 0, "optim": {"lr": 1.0e-3}, "trainer": {"max_epochs": 20}, "paths": {"output_dir": "a"},
              "data": {"data_dir": "a", "n_train": 200}}
    write_yaml(config, tmp_path / "config_resolved.yaml")
    check_resumable({**config, "trainer": {"max_epochs": 100}, "paths": {"output_dir": "b"},
                     "data": {"data_dir": "b", "n_train": 200}}, tmp_path)  # further, from another place
    with pytest.raises(ConfigError, match=r"data.n_train \(200 -> 1000\)"):
        check_resumable({**config, "data": {"data_dir": "a", "n_train": 1000}}, tmp_path)
    with pytest.raises(ConfigError, match=r"holds a run of another setting \(optim.lr \(0.001 -> 0.0005\)\); "
                                          r"use a new hydra.run.dir, or auto_resume=false"):
        check_resumable({**config, "optim": {"lr": 5.0e-4}}, tmp_path)
    with pytest.raises(ConfigError, match=r"seed \(0 -> None\)"):
        check_resumable({k: v for k, v in config.items() if k != "seed"}, tmp_path)
