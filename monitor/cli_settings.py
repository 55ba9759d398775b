"""Settings for a command: the environment plus the command line's flags, validated.

Why not ``Settings().model_copy(update=...)``: that skips validation, so
``worker --concurrency -5`` started a worker with "up to -5 episodes". Here the flags go
through the settings model like the environment does, and a bad value of either is a
:class:`SettingsError` naming the flag (or the variable); ``runaway-monitor`` prints it
and exits 2.
"""

import argparse
from typing import Any

from pydantic import ValidationError

from schemas.settings import Settings


class SettingsError(ValueError):
    """A flag or environment variable the settings model refused."""


def settings_from(args: argparse.Namespace | None = None, **flags: str) -> Settings:
    """``Settings`` from the environment, overridden by the given flags of ``args``.

    ``flags`` maps a settings field to the flag that sets it (``concurrency="--concurrency"``);
    a flag left unset (None) keeps the environment's value.
    """
    given: dict[str, Any] = {}
    for field, _flag in flags.items():
        value = getattr(args, field, None) if args is not None else None
        if value is not None:
            given[field] = value
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, given, flags)) from None


def _describe(exc: ValidationError, given: dict[str, Any], flags: dict[str, str]) -> str:
    """One line per refused value, naming the flag or variable; never a secret's value."""
    lines = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if not field:  # a check across fields
            lines.append(f"settings: {error['msg']}")
        elif field in given:
            lines.append(f"{flags[field]} {given[field]!r}: {error['msg']}")
        else:  # from the environment: the value may be a secret, so it is not echoed
            lines.append(f"RUNAWAY_{field.upper()}: {error['msg']}")
    return "; ".join(lines)
