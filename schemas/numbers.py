"""Strict numbers and bounded free-form JSON: the types every boundary validates with.

Why: the scorer's arithmetic must stay finite, and a value the API accepts must be one the
detector can read back from the stream. So numbers are strict (a JSON number; ``true``
and ``"1"`` are refused, as are ``"NaN"`` and ``"Infinity"``), finite, and at most
:data:`MAX_MAGNITUDE` in size: the scorer sums squares of observations and actions over
an episode, and ``1e12`` squared over 10**7 steps is still far below the float range
(``1e308`` poisoned it after one step). Free-form values (``env_options``, agent
options) are bounded in depth and size, so they round-trip through a stream entry
(pydantic's JSON parser stops at a nesting depth of about 200).

New fields of any wire model (``tool_calls``, ``state``, ...) use the same types.
"""

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

MAX_MAGNITUDE = 1e12
MAX_JSON_DEPTH = 8
MAX_JSON_NODES = 1_000

Number = Annotated[
    float, Field(strict=True, allow_inf_nan=False, ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)
]
"""A finite JSON number of size at most MAX_MAGNITUDE (ints accepted, booleans not)."""

Integer = Annotated[int, Field(strict=True)]
"""A JSON integer; ``true`` and ``"3"`` are refused."""

Values = dict[str, Number]


def check_json(value: Any, max_depth: int = MAX_JSON_DEPTH, max_nodes: int = MAX_JSON_NODES) -> Any:
    """``value`` if it is plain JSON within the bounds, else ValueError saying which.

    Walks iteratively, so a hostile nesting depth cannot exhaust the stack here.
    """
    nodes = 0
    todo: list[tuple[Any, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if nodes > max_nodes:
            raise ValueError(f"more than {max_nodes} values")
        if isinstance(item, Mapping) or isinstance(item, list | tuple):
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels")
            if isinstance(item, Mapping):
                if not all(isinstance(k, str) for k in item):
                    raise ValueError("object keys must be strings")
                todo.extend((v, depth + 1) for v in item.values())
            else:
                todo.extend((v, depth + 1) for v in item)
        elif isinstance(item, float):
            if not math.isfinite(item) or abs(item) > MAX_MAGNITUDE:
                raise ValueError(f"numbers must be finite and at most {MAX_MAGNITUDE:g} in size")
        elif isinstance(item, str):
            if len(item) > 10_000:
                raise ValueError("strings must be at most 10000 characters")
        elif not (item is None or isinstance(item, bool | int)):
            raise ValueError(f"{type(item).__name__} is not a JSON value")
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**63:
            raise ValueError("integers must fit in 64 bits")
    return value


def _checked(value: Any) -> Any:
    return check_json(value)


FreeJSON = Annotated[dict[str, Any], BeforeValidator(_checked)]
"""A JSON object of at most MAX_JSON_DEPTH levels and MAX_JSON_NODES values, finite numbers."""
