"""Bad settings fail at start-up with one line naming the key, or warn where they are legal but suspect."""

from __future__ import annotations

import logging

import pytest

from pdeop.config import check_config
from pdeop.errors import ConfigError
from tests.conftest import TINY_DATA, run_entry
from tests.faults.conftest import pdeop_error_line

pytestmark = pytest.mark.slow

ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1.0e-3, "weight_decay": 1.0e-4}


@pytest.mark.fault("train.py {override}", "exit 2, one line naming {key}")
@pytest.mark.parametrize("override, key, fragment", [
    ("optim.lr=abc", "optim.lr", "optim.lr: expected float, got 'abc'"),
    ("optim.lr=-1", "optim.lr", "optim.lr: expected a positive learning rate, got -1"),
    ("optim.weight_decay=-0.1", "optim", "optim: torch.optim.Adam refuses these settings (Invalid weight_decay"),
    ("trainer.max_epochs=-5", "trainer.max_epochs", "trainer.max_epochs: expected a number of epochs"),
])
def test_bad_setting_is_one_line(override, key, fragment, data_dir, tmp_path, observed):
    result = run_entry(["train.py"], [*TINY_DATA, override], tmp_path / "run", data_dir, check=False)
    line = pdeop_error_line(result.stderr)
    observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 2 and fragment in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.fault("model=fno (modes [24, 22]) on a 17x17 training grid", "exit 2 before training, naming "
                   "model.n_modes and what the grid holds")
def test_fno_modes_beyond_the_grid_are_refused(data_dir, tmp_path, observed):
    # in its own process: the interpreter's exit status and the whole of stderr, as a user sees them
    result = run_entry(["train.py"], [*TINY_DATA, "model.n_modes=[24,22]", "model.hidden_channels=8"],
                       tmp_path / "run", data_dir, check=False, own_process=True)
    line = pdeop_error_line(result.stderr)
    observed(f"exit {result.returncode}: {line}")
    assert result.returncode == 2
    assert ("model.n_modes: [24, 22] Fourier modes do not fit the 17x17 training grid "
            "(21x21 with domain padding)") in line
    assert "at most [21, 21]" in line
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.fault("optim.lr=0; trainer.max_epochs=-1 without max_steps or max_time", "a warning each, no error")
def test_legal_but_suspect_settings_warn(caplog, observed):
    with caplog.at_level(logging.WARNING, logger="pdeop.config"):
        check_config({"optim": {**ADAM, "lr": 0.0}, "trainer": {"max_epochs": -1, "max_steps": -1, "max_time": None}})
    warnings = [r.getMessage() for r in caplog.records]
    observed("; ".join(warnings))
    assert any(w.startswith("optim.lr=0: the weights will not change") for w in warnings)
    assert any(w.startswith("trainer.max_epochs=-1 with no max_steps or max_time") for w in warnings)
    caplog.clear()
    check_config({"optim": ADAM, "trainer": {"max_epochs": -1, "max_steps": -1, "max_time": "00:00:10:00"}})
    assert not caplog.records


def test_a_tensor_hint_takes_only_numbers():
    with pytest.raises(ConfigError, match=r"optim.lr: expected float, got 'abc' \(str\)"):
        check_config({"optim": {**ADAM, "lr": "abc"}})
    check_config({"optim": {**ADAM, "lr": 3}})


def test_none_is_accepted_where_the_constructor_defaults_to_none():
    fno = {"_target_": "neuralop.models.FNO", "n_modes": [4, 4], "in_channels": 1, "out_channels": 1,
           "hidden_channels": 4, "domain_padding": None}
    check_config({"model": fno}, "")
    with pytest.raises(ConfigError, match=r"model.n_layers: expected int, got None"):
        check_config({"model": {**fno, "n_layers": None}})
