"""Build hook: compile the detector's scoring core with mypyc when possible (optional).

Everything else is declared in pyproject.toml. ``detectors/scoring/scorer.py`` is compiled
with mypyc (mypy's compiler) into a C extension that runs the same code about three times
faster. The compilation is an optional accelerator: when mypy/mypyc is not installed, a
C compiler is missing, mypy rejects the module or the C build fails, a warning is printed
and the package installs as pure Python (``detectors.scoring`` then uses ``scorer.py``).
``RUNAWAY_MONITOR_NO_MYPYC=1`` skips the compilation on purpose.

After a successful build a stamp (``detectors/scoring/scorer.compiled-sha256``: the hash
of the sources the extension was compiled from) is written next to the extension;
``detectors/scoring/__init__.py`` uses the extension only while that hash matches the
sources, so a developer's later edit of ``scorer.py`` is never shadowed by a stale build
(see "Scorer speed" in docs/detectors.md).
"""

import os
import sys
import traceback

from setuptools import setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "detectors", "scoring"))
# the stamp helpers, loaded from the file itself: importing the package would import pydantic
from _build_stamp import STAMP, source_digest  # noqa: E402

sys.path.pop(0)

COMPILED = os.path.join("detectors", "scoring", "scorer.py")


def _say(msg: str) -> None:
    print(f"runaway-monitor: {msg}", file=sys.stderr)


def _mypyc_extensions() -> list:
    """The mypyc extensions of the scorer, or [] (with a warning) when they cannot be made."""
    if os.environ.get("RUNAWAY_MONITOR_NO_MYPYC"):
        _say("RUNAWAY_MONITOR_NO_MYPYC is set: installing the pure-Python scorer")
        return []
    try:
        from mypyc.build import mypycify
    except Exception as e:  # mypy not installed (e.g. --no-build-isolation without it)
        _say(f"mypyc is not available ({e}); installing the pure-Python scorer")
        return []
    try:
        # mypy's settings are in pyproject.toml ([tool.mypy])
        return list(mypycify([COMPILED], opt_level="3", debug_level="0"))
    except BaseException as e:  # mypy reports type errors with SystemExit
        if isinstance(e, KeyboardInterrupt):
            raise
        _say(f"mypyc rejected {COMPILED} ({e!r}); installing the pure-Python scorer")
        return []


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: on any error, no extension and no stamp."""

    def run(self) -> None:
        if not self.extensions:
            return
        stamp_dir = os.path.dirname(self.get_ext_fullpath("detectors.scoring.scorer"))
        stamp = os.path.join(stamp_dir, STAMP)
        if os.path.exists(stamp):  # an older build's stamp must not vouch for this one
            os.remove(stamp)
        try:
            super().run()
            outputs = [self.get_ext_fullpath(ext.name) for ext in self.extensions]
            missing = [p for p in outputs if not os.path.exists(p)]
            if missing:
                raise RuntimeError(f"missing after the build: {missing}")
        except Exception:
            _say("compiling the scorer with mypyc failed; installing the pure-Python scorer:")
            traceback.print_exc()
            for ext in self.extensions:
                path = self.get_ext_fullpath(ext.name)
                if os.path.exists(path):
                    os.remove(path)
            return
        os.makedirs(stamp_dir, exist_ok=True)
        with open(stamp, "w") as fh:
            fh.write(source_digest(os.path.join(HERE, "detectors", "scoring")) + "\n")

    def get_outputs(self) -> list[str]:
        outputs = [p for p in super().get_outputs() if os.path.exists(p)]
        stamp = os.path.join(
            os.path.dirname(self.get_ext_fullpath("detectors.scoring.scorer")), STAMP
        )
        if os.path.exists(stamp):
            outputs.append(stamp)
        return outputs


setup(ext_modules=_mypyc_extensions(), cmdclass={"build_ext": OptionalBuildExt})
