"""What an installed pdeop offers: the console scripts, configs found in the package, a user's own config
folder beside them, and one-line refusals of settings whose optional dependency is missing.
(.ci/wheel_check.sh runs the scripts from a built wheel.)"""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT
from entry import run_in_process
from hydra import compose, initialize_config_module

from pdeop.errors import ConfigError
from pdeop.training import loggers

MY_MODEL = """\
# a user's FNO variant, in a folder of their own
_target_: neuralop.models.FNO
n_modes: [6, 6]
hidden_channels: 4
in_channels: ${data.in_channels}
out_channels: ${data.out_channels}
n_layers: 2
"""


def my_config_folder(tmp_path: Path) -> Path:
    (tmp_path / "model").mkdir(parents=True)
    (tmp_path / "model" / "my_fno.yaml").write_text(MY_MODEL)
    return tmp_path


def test_every_console_script_is_a_main_inside_the_package():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert sorted(scripts) == ["pdeop-evaluate", "pdeop-export", "pdeop-generate", "pdeop-leaderboard",
                               "pdeop-predict", "pdeop-train"]
    for target in scripts.values():
        module, function = target.split(":")
        assert module.startswith("pdeop.") and callable(getattr(importlib.import_module(module), function))


def test_a_users_config_folder_adds_a_model_through_the_search_path(tmp_path):
    folder = my_config_folder(tmp_path)
    with initialize_config_module("pdeop.conf", version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra.searchpath=[file://{folder}]", "model=my_fno", "data=darcy"])
    assert cfg.model.hidden_channels == 4 and list(cfg.model.n_modes) == [6, 6]
    assert cfg.model.in_channels == cfg.data.in_channels and cfg.optim.lr == 1e-3  # pdeop's groups still there


def test_config_dir_on_the_command_line_adds_the_same_folder(tmp_path):
    folder = my_config_folder(tmp_path / "conf")
    result = run_in_process(["train.py"], ["--config-dir", str(folder), "model=my_fno", "--cfg", "job"], {})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "hidden_channels: 4" in result.stdout and "n_layers: 2" in result.stdout


@pytest.mark.parametrize("logger, extra", [(loggers.TensorBoardHistoryLogger, "tensorboard"),
                                           (loggers.WandbHistoryLogger, "wandb")])
def test_a_logger_whose_extra_is_missing_is_one_line(logger, extra, tmp_path, monkeypatch):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name: None if name in ("tensorboard", "tensorboardX", "wandb") else find_spec(name))
    with pytest.raises(ConfigError, match=rf"logger={extra} needs the {extra} package: pip install 'pdeop\[{extra}\]'"):
        logger(save_dir=str(tmp_path))
