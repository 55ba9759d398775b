"""The stamp that ties a compiled scorer to the sources it was compiled from.

Used by setup.py (which loads this file by path: it must import nothing of the project)
and by :mod:`detectors.scoring` when it chooses between the compiled and the pure scorer.
"""

import hashlib
import os

# The sources the mypyc build of scorer.py depends on: scorer.py itself and the modules
# whose Final constants and types mypyc compiles into it.
SOURCES = (
    "scorer.py",
    "types.py",
    "signals.py",
    "patterns.py",
    "index.py",
    "reference.py",
    "over_exploitation.py",
    "loops.py",
    "pointers.py",
)
STAMP = "scorer.compiled-sha256"


def source_digest(directory: str) -> str:
    """sha256 over the names and bytes of :data:`SOURCES` in ``directory``."""
    h = hashlib.sha256()
    for name in SOURCES:
        with open(os.path.join(directory, name), "rb") as fh:
            data = fh.read()
        h.update(f"{name}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()
