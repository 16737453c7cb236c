"""auto_resume: a run restarted in its own directory continues only the setting it was trained with."""

import pytest
import torch

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


def test_a_schedule_sized_by_the_run_refuses_a_longer_run(tmp_path):
    optimiser = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    first = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1.0, total_steps=10)
    longer = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=1.0, total_steps=50)
    longer.load_state_dict(first.state_dict())
    assert longer.total_steps == 10  # what a resumed run gets back from its checkpoint, whatever max_epochs says

    onecycle = {"_target_": "torch.optim.lr_scheduler.OneCycleLR", "_partial_": True, "total_steps": None}
    config = {"seed": 0, "trainer": {"max_epochs": 20, "max_steps": -1}, "scheduler": {"interval": "step",
                                                                                       "fn": onecycle}}
    write_yaml(config, tmp_path / "config_resolved.yaml")
    check_resumable(config, tmp_path)  # the same length: an interrupted run continues
    with pytest.raises(ConfigError, match=r"trainer.max_epochs changed \(20 -> 100\), but OneCycleLR spans the "
                                          r"first run's length \(scheduler.fn.total_steps"):
        check_resumable({**config, "trainer": {"max_epochs": 100, "max_steps": -1}}, tmp_path)

    fixed = {**config, "scheduler": {"interval": "step", "fn": {**onecycle, "total_steps": 5000}}}
    write_yaml(fixed, tmp_path / "config_resolved.yaml")
    check_resumable({**fixed, "trainer": {"max_epochs": 100, "max_steps": -1}}, tmp_path)
