"""Config checks against constructor signatures, before anything is built."""

import pytest

from pdeop.config import check_config, matches
from pdeop.errors import ConfigError


@pytest.mark.parametrize(
    "value, annotation, ok",
    [
        (3, int, True), (True, int, False), ("3", int, False), (3, float, True), ("a", str, True),
        (None, int | None, True), ([1, 2], list[int], True), ([1, "a"], list[int], False),
        ((1, 2), tuple[int, ...], True), ("x", list[int], False),
    ],
)
def test_matches(value, annotation, ok):
    assert matches(value, annotation) is ok


def darcy_node(**changes):
    node = {"_target_": "pdeop.problems.Darcy", "resolution": 65, "tau": 3.0}
    node.update(changes)
    return {"data": {"problem": node}}


def test_wrong_type_names_key_and_expected_type():
    with pytest.raises(ConfigError, match=r"data.problem.resolution: expected int, got 'abc'"):
        check_config(darcy_node(resolution="abc"))


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"data.problem.resolutoin: not a parameter of .*"
                                          r"valid keys: resolution, alpha"):
        check_config(darcy_node(resolutoin=3))


def test_missing_required_key_and_bad_target():
    with pytest.raises(ConfigError, match=r"model.n_modes: required by neuralop.models.FNO"):
        check_config({"model": {"_target_": "neuralop.models.FNO", "in_channels": 1, "out_channels": 1,
                                "hidden_channels": 8}})
    with pytest.raises(ConfigError, match=r"model._target_: cannot import 'pdeop.models.nope'"):
        check_config({"model": {"_target_": "pdeop.models.nope"}})


def test_valid_config_passes():
    check_config(darcy_node())


@pytest.mark.parametrize("target", ["pdeop.data.OperatorDataModule", "pdeop.data.FileDataModule"])
def test_data_modules_take_every_loader_setting_as_a_flat_key(target):
    """A data config writes LoaderSettings' fields flat (data.batch_size=8): each pairs data module's constructor
    takes them by name, with the dataclass's default and type, so the signature checks judge them as before."""
    import dataclasses
    import inspect
    import typing

    from hydra.utils import get_object

    from pdeop.data import LoaderSettings

    module = get_object(target)
    params, hints = inspect.signature(module).parameters, typing.get_type_hints(module.__init__)
    settings = typing.get_type_hints(LoaderSettings)
    for field in dataclasses.fields(LoaderSettings):
        assert params[field.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[field.name].default == field.default
        assert hints[field.name] == settings[field.name]
    with pytest.raises(ConfigError, match=r"data.batch_size: expected int, got '8'"):
        check_config({"data": {"_target_": target, "_partial_": True, "batch_size": "8"}})


@pytest.mark.parametrize("factor", [0, -2])
def test_a_subsample_factor_below_one_names_data_subsample(factor):
    """It was a ZeroDivisionError 'while resolving' data.grid_size, which names neither the key nor the fix."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from pdeop.conf import CONF
    from pdeop.errors import user_error_of

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=[f"data.subsample={factor}"])
    with pytest.raises(Exception) as failed:
        OmegaConf.to_container(cfg, resolve=True)
    assert str(user_error_of(failed.value)) == (f"data.grid_size: taken from data.subsample, which is {factor}: "
                                                f"expected a positive subsample factor")


@pytest.mark.parametrize("seed", [-1, 2 ** 32])
def test_a_seed_numpy_cannot_take_is_named(seed):
    """Lightning's seed_everything raised a ValueError traceback for these (and physics-informed runs overflowed
    torch's seed from 9.2e6 on, which a seed below 2**32 now never does)."""
    from pdeop.training.run import check_run_settings

    settings = {"seed": seed, "ckpt_path": None, "auto_resume": True, "test_after_fit": True}
    with pytest.raises(ConfigError, match=rf"seed: expected an integer from 0 to 4294967295 \(NumPy's seeds\), got "
                                          rf"{seed}"):
        check_run_settings(settings)
    check_run_settings({**settings, "seed": 2 ** 32 - 1})
