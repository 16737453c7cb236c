"""User-facing errors: one readable message, no traceback.

Anything a user can cause by a config value, a command-line override or a file on disk
raises a subclass of :class:`PdeopError`; the entry points print its message and exit 2.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import sys
import traceback
from typing import Callable, TypeVar

from hydra._internal import utils as hydra_utils
from hydra.errors import ConfigCompositionException, InstantiationException, MissingConfigException
from omegaconf import DictConfig
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, InterpolationResolutionError, MissingMandatoryValue

from pdeop.conf import options

T = TypeVar("T")


class PdeopError(Exception):
    """An error the user can fix; its message says what was wrong and what was expected."""


class ConfigError(PdeopError):
    """A config key has a wrong type or value."""


class DataFileError(PdeopError):
    """A dataset file is missing, unreadable or does not match the config."""


class NonFiniteLossError(PdeopError):
    """Training produced a NaN or infinite loss."""


CRASHED_JOBS: list[str] = []  # jobs of this process's sweep that failed with an error that is not a user's


class SweepJobFailed(Exception):
    """A job of a ``--multirun`` sweep stopped on a user error, which it has printed: Hydra marks the job failed and
    runs the sweep's other jobs (an exit would end the sweep there), then raises the first of these."""


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (its first line that is not blank), or its type where it has none."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def config_value_error(exc: MissingMandatoryValue | InterpolationResolutionError) -> ConfigError:
    """One line for a value the composed config leaves unset (``???``) or cannot resolve (``${oc.env:UNSET}``)."""
    key = exc.full_key or "a config value"
    inner = exc.__cause__ or exc.__context__
    while inner is not None and not isinstance(inner, PdeopError):
        inner = inner.__cause__ or inner.__context__
    if inner is not None:  # a resolver refused its argument and said why
        return ConfigError(f"{key}: {inner}")
    if isinstance(exc, MissingMandatoryValue):
        return ConfigError(f"{key}: required and not given; pass {key}=<value> on the command line")
    return ConfigError(f"{key}: its interpolation does not resolve ({first_line(exc)})")


def user_error_of(exc: BaseException) -> PdeopError | None:
    """The PdeopError behind ``exc``, looking through Hydra's instantiation wrappers; an unset or unresolvable config
    value is one as well."""
    while exc is not None:
        if isinstance(exc, PdeopError):
            return exc
        if isinstance(exc, (MissingMandatoryValue, InterpolationResolutionError)):
            return config_value_error(exc)
        if not isinstance(exc, InstantiationException):
            return None
        exc = exc.__cause__ or exc.__context__
    return None


def report_user_errors(main: Callable[..., T]) -> Callable[..., T]:
    """Decorate an entry point so user errors print one message and exit with status 2, taking away the run
    directory Hydra made for the run where it holds nothing else (``pdeop.io.discard_unused_run_dir``).

    In a ``--multirun`` sweep the message names the job, which fails without ending the process
    (``SweepJobFailed``): the sweep's other jobs run, and it ends with status 2 (``report_composition_errors``)."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            user_error, job = user_error_of(exc), sweep_job()
            if user_error is None:
                if job:  # Hydra keeps it, and re-raises only the sweep's first failure: say it now
                    CRASHED_JOBS.append(job.removesuffix(": "))
                    traceback.print_exc()
                raise
            print(f"pdeop error: {job}{user_error}", file=sys.stderr)
            from pdeop.io import discard_unused_run_dir  # pdeop.io imports this module

            discard_unused_run_dir()
            if job:
                raise SweepJobFailed(f"{job}{user_error}") from None
            sys.exit(2)

    return wrapped


def sweep_job() -> str:
    """``"job 3 (optim.lr=0.1): "`` for a job of a ``--multirun`` sweep, naming its overrides; ``""`` otherwise."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return ""
    job = HydraConfig.get().job
    return f"job {job.num} ({' '.join(HydraConfig.get().overrides.task) or 'no overrides'}): "


def did_you_mean(word: str, choices: list[str], spell: Callable[[str], str] = str) -> str:
    """``"; did you mean x?"`` (or ``x or y``) for the choices closest to ``word``, each written by ``spell``;
    ``""`` where none is close."""
    close = difflib.get_close_matches(word, choices)
    return f"; did you mean {' or '.join(map(spell, close))}?" if close else ""


def unknown_key_error(override: str, exc: ConfigKeyError | ConfigAttributeError) -> ConfigError:
    """One line for the command-line ``override`` of a key its node lacks (``optim.lrr=1``), naming the closest keys."""
    key = exc.full_key
    if key == "data" and override.startswith("data."):  # evaluate, predict: the checkpoint's data unless data=<name>
        return ConfigError(f"{override}: without data=<name> the checkpoint's own data config is used, and it is not "
                           f"composed here; choose the data (data=darcy, data=from_file, ...) to change its keys")
    node, _, _ = key.rpartition(".")
    keys = [str(k) for k in exc.parent_node.keys()] if isinstance(exc.parent_node, DictConfig) else []
    if not keys:  # optim.lr.x=1 (lr a value): '+' would silently replace the value with a node
        return ConfigError(f"{key}: no such key ({node} has no keys)")
    hint = did_you_mean(str(exc.key), keys, lambda k: f"{node}.{k}" if node else k)
    if not hint:
        hint = f"; {node or 'the config'} has {', '.join(keys)}"
    return ConfigError(f"{key}: no such key{hint} (+{override}=<value> adds it as a new key)")


def unknown_option_error(exc: MissingConfigException) -> ConfigError:
    """One line for a config group option that does not exist (``model=fnoo``), naming the closest options."""
    group, _, name = exc.missing_cfg_file.rpartition("/")
    choices = exc.options or options(group)  # Hydra lists none for a nested group (experiment/darcy85)
    top, _, folder = group.partition("/")  # the command line's group and the folder inside it
    folder = f"{folder}/" if folder else ""
    hint = did_you_mean(name, choices, lambda option: f"{top}={folder}{option}")
    return ConfigError(f"{top}={folder}{name}: no such option{hint} ({group}'s options: {', '.join(choices)})")


def composition_error(exc: ConfigCompositionException) -> ConfigError | None:
    """The one-line error for a config Hydra cannot compose from a mistyped key or group option; None for others."""
    if isinstance(exc, MissingConfigException):
        group = (exc.missing_cfg_file or "").rpartition("/")[0]
        return unknown_option_error(exc) if group and (exc.options or options(group)) else None
    override = re.match(r"Could not override '([^']+)'", str(exc))
    if override and isinstance(exc.__cause__, (ConfigKeyError, ConfigAttributeError)):
        return unknown_key_error(override.group(1), exc.__cause__)
    return None


def report_composition_errors(main: Callable[..., T]) -> Callable[..., T]:
    """Decorate a ``@hydra.main`` entry point (outside it) so that a config Hydra cannot compose because of a mistyped
    key or group option is one message naming the closest valid ones, with exit status 2, like a user error.

    Hydra composes the config before the task runs and reports its errors itself (several lines, then exit 1);
    while ``main`` runs, its reporting function is wrapped so that these errors reach pdeop first.
    """

    def composing(func: Callable[[], T]) -> T:
        try:
            return func()
        except SweepJobFailed as exc:  # the sweep ran every job; the first that failed on a user error ends it here
            crashed = f"; {', '.join(CRASHED_JOBS)} failed with the traceback printed above" if CRASHED_JOBS else ""
            print(f"pdeop error: the sweep's jobs ran, and {exc} (each failed job printed its error above, or in "
                  f"its log){crashed}", file=sys.stderr)
            sys.exit(1 if CRASHED_JOBS else 2)
        except ConfigCompositionException as exc:
            error = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else composition_error(exc)
            if error is None:
                raise
            print(f"pdeop error: {error}", file=sys.stderr)
            sys.exit(2)

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        hydras = hydra_utils.run_and_report
        hydra_utils.run_and_report = lambda func: hydras(functools.partial(composing, func))
        try:
            return main(*args, **kwargs)
        finally:
            hydra_utils.run_and_report = hydras

    return wrapped
