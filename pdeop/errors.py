"""User-facing errors: one readable message, no traceback.

Anything a user can cause by a config value, a command-line override or a file on disk
raises a subclass of :class:`PdeopError`; the entry points print its message and exit 2.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable, TypeVar

from hydra.errors import InstantiationException
from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue

T = TypeVar("T")


class PdeopError(Exception):
    """An error the user can fix; its message says what was wrong and what was expected."""


class ConfigError(PdeopError):
    """A config key has a wrong type or value."""


class DataFileError(PdeopError):
    """A dataset file is missing, unreadable or does not match the config."""


class NonFiniteLossError(PdeopError):
    """Training produced a NaN or infinite loss."""


def first_line(exc: BaseException) -> str:
    """An exception's message in one line (its first line that is not blank), or its type where it has none."""
    return next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def config_value_error(exc: MissingMandatoryValue | InterpolationResolutionError) -> ConfigError:
    """One line for a value the composed config leaves unset (``???``) or cannot resolve (``${oc.env:UNSET}``)."""
    key = exc.full_key or "a config value"
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
    """Decorate an entry point so user errors print one message and exit with status 2."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            user_error = user_error_of(exc)
            if user_error is None:
                raise
            print(f"pdeop error: {user_error}", file=sys.stderr)
            sys.exit(2)

    return wrapped
