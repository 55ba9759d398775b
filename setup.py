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

from setuptools import Extension, setup
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
    """build_ext that compiles the scorer with mypyc and never fails the install.

    mypyc runs when this command runs, not when setup.py is loaded or the command is
    finalized: pip loads setup.py three times for one install (requirements, metadata,
    build), each also finalizes build_ext, and only the build needs the extension. On any
    error nothing compiled is left behind, so the pure scorer is used.
    """

    def run(self) -> None:
        # where the extension goes: the source tree (editable, --inplace) or build_lib
        target = os.path.dirname(self.get_ext_fullpath("detectors.scoring.scorer"))
        stamp = os.path.join(target, STAMP)
        self._remove_built(target)  # an older build must not outlive a failed one
        self.extensions = self.distribution.ext_modules = _mypyc_extensions()
        if not self.extensions:
            return
        try:
            self._finalize_extensions()
            super().run()
            missing = [
                p
                for ext in self.extensions
                if not os.path.exists(p := os.path.join(target, self._file_name(ext.name)))
            ]
            if missing:
                raise RuntimeError(f"missing after the build: {missing}")
        except Exception:
            _say("compiling the scorer with mypyc failed; installing the pure-Python scorer:")
            traceback.print_exc()
            self._remove_built(target)
            self._remove_built(os.path.join(self.build_lib, "detectors", "scoring"))
            self.extensions = []
            return
        with open(stamp, "w") as fh:
            fh.write(source_digest(os.path.join(HERE, "detectors", "scoring")) + "\n")

    def _finalize_extensions(self) -> None:
        """What setuptools' finalize_options does for each plain ``Extension`` (mypyc's)."""
        for ext in self.extensions:
            fullname = ext._full_name = self.get_ext_fullname(ext.name)
            self.ext_map[fullname] = self.ext_map[fullname.split(".")[-1]] = ext
            ext._links_to_dynamic = False
            ext._needs_stub = False
            ext._file_name = self.get_ext_filename(fullname)

    def _file_name(self, name: str) -> str:
        return os.path.basename(self.get_ext_filename(name))

    def _remove_built(self, directory: str) -> None:
        for name in ("detectors.scoring.scorer", "detectors.scoring.scorer__mypyc"):
            path = os.path.join(directory, self._file_name(name))
            if os.path.exists(path):
                os.remove(path)
        if os.path.exists(os.path.join(directory, STAMP)):
            os.remove(os.path.join(directory, STAMP))

    def get_outputs(self) -> list[str]:
        outputs = [p for p in super().get_outputs() if os.path.exists(p)]
        if not self.inplace and self.extensions:
            stamp = os.path.join(self.build_lib, "detectors", "scoring", STAMP)
            if os.path.exists(stamp):
                outputs.append(stamp)
        return outputs


# A placeholder: OptionalBuildExt replaces it with mypyc's extensions when it runs.
PLACEHOLDER = Extension("detectors.scoring.scorer", sources=[COMPILED], optional=True)

setup(ext_modules=[PLACEHOLDER], cmdclass={"build_ext": OptionalBuildExt})
