"""Pure, incremental scoring of one episode: components, Runaway Index, flags, hazard.

No I/O and no clock: the same :class:`EpisodeScorer` runs offline (replay, evaluate) and
inside the streaming detector. See docs/detectors.md for every definition.

``scorer.py`` may also exist compiled by mypyc (``pip install -e .`` builds it when it
can, see setup.py). The compiled module is used only while the stamp written by its build
matches the current sources; otherwise (no build, a stale build after an edit, an import
error, or ``RUNAWAY_MONITOR_PURE_SCORER=1``) ``scorer.py`` itself is loaded under the same
name. :data:`IMPLEMENTATION` says which one runs and :data:`IMPLEMENTATION_NOTE` why.
"""

import importlib.machinery
import importlib.util
import os
import sys
from types import ModuleType

from detectors.scoring._build_stamp import STAMP, source_digest

_HERE = os.path.dirname(os.path.abspath(__file__))
_NAME = __name__ + ".scorer"
PURE_ENV = "RUNAWAY_MONITOR_PURE_SCORER"


def compiled_path() -> str | None:
    """The compiled scorer's file next to ``scorer.py`` (for this interpreter), if any."""
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(_HERE, "scorer" + suffix)
        if os.path.exists(path):
            return path
    return None


def _stale_reason() -> str | None:
    """Why the compiled scorer next to the sources must not be used (None: it may)."""
    try:
        with open(os.path.join(_HERE, STAMP)) as fh:
            built = fh.read().strip()
    except OSError:
        return "it has no build stamp (not built by setup.py)"
    if built != source_digest(_HERE):
        return "the sources changed since it was built (re-run pip install -e .)"
    return None


def load_pure(name: str = __name__ + "._pure_scorer") -> ModuleType:
    """``scorer.py`` executed as module ``name`` (for comparisons with the compiled one)."""
    if name in sys.modules:
        return sys.modules[name]
    path = os.path.join(_HERE, "scorer.py")
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _choose() -> tuple[str, str]:
    path = compiled_path()
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        why = f"{PURE_ENV} is set"
    elif path is None:
        why = "no compiled scorer (pip install -e . builds one when mypyc and a C compiler work)"
    else:
        why = _stale_reason() or ""
        if why:
            why = f"{os.path.basename(path)} not used: {why}"
        else:
            try:
                importlib.import_module(_NAME)
                return "compiled", os.path.basename(path)
            except Exception as e:  # e.g. built against another mypyc runtime
                sys.modules.pop(_NAME, None)
                why = f"{os.path.basename(path)} failed to import: {e!r}"
    load_pure(_NAME)  # scorer.py under its own name, whatever lies next to it
    return "pure", why


IMPLEMENTATION, IMPLEMENTATION_NOTE = _choose()
scorer = sys.modules[_NAME]

from detectors.scoring.scorer import EpisodeScorer  # noqa: E402
from detectors.scoring.types import Detection, StepScore  # noqa: E402

__all__ = [
    "IMPLEMENTATION",
    "IMPLEMENTATION_NOTE",
    "Detection",
    "EpisodeScorer",
    "StepScore",
    "compiled_path",
    "load_pure",
]
