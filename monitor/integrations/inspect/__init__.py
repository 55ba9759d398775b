"""runaway-monitor inside Inspect AI (extra ``inspect``): tasks, hooks, recovery, scorer.

Importing this package checks that inspect-ai is installed and new enough for the hooks
API used here (``Hooks.on_sample_event``); the core never imports it. Inspect finds the
tasks, hooks, scorer and approver through the ``inspect_ai`` entry point, which names
the :mod:`runaway_monitor` package (see docs/inspect.md).
"""

from importlib import metadata

MIN_INSPECT_AI = (0, 3, 189)  # the first with Hooks.on_sample_event
_INSTALL = "pip install 'runaway-monitor[inspect]'"


def _version_tuple(text: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def check_inspect_ai() -> str:
    """The installed inspect-ai version; ImportError saying what to do when it is missing
    or older than :data:`MIN_INSPECT_AI`."""
    wanted = ".".join(map(str, MIN_INSPECT_AI))
    try:
        found = metadata.version("inspect-ai")
    except metadata.PackageNotFoundError:
        raise ImportError(
            f"runaway-monitor's Inspect integration needs inspect-ai>={wanted}: {_INSTALL}"
        ) from None
    if _version_tuple(found) < MIN_INSPECT_AI:
        raise ImportError(
            f"runaway-monitor's Inspect integration needs inspect-ai>={wanted} (its hooks "
            f"API: Hooks.on_sample_event); found {found}: {_INSTALL} --upgrade"
        )
    return found


INSPECT_AI_VERSION = check_inspect_ai()
