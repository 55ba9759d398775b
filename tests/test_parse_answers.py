"""The answer parser's fast path (ASCII digits) decides exactly as the plain rule does."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.environments import create_environment
from workers.environments.base import InvalidAction, parse_ints


def rule(text: str, names: tuple[str, ...]) -> dict[str, int]:
    """The rule as first written: last non-empty line, comma-separated, regex per value."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidAction("empty")
    parts = [part.strip() for part in lines[-1].split(",")]
    if len(parts) != len(names):
        raise InvalidAction("count")
    action = {}
    for name, part in zip(names, parts, strict=True):
        if not re.fullmatch(r"[+-]?\d+", part) or int(part) < 0:
            raise InvalidAction("value")
        action[name] = int(part)
    return action


def outcome(parse, text: str, names: tuple[str, ...]) -> object:
    try:
        return parse(text, names)
    except InvalidAction:
        return "invalid"


PIECES = [
    "0",
    "7",
    "10",
    "007",
    "-1",
    "-0",
    "+3",
    " ",
    ",",
    "\n",
    "\r\n",
    "\u2028",
    "x",
    "1.5",
    "\u0663",
    "\u00b2",
    "\t",
    "",
    "9999999999999999999999",
]


@settings(max_examples=400, deadline=None)
@given(
    text=st.lists(st.sampled_from(PIECES), max_size=12).map("".join) | st.text(max_size=30),
    width=st.integers(1, 3),
)
def test_fast_parser_matches_the_rule(text: str, width: int) -> None:
    names = ("A", "B", "C")[:width]
    assert outcome(parse_ints, text, names) == outcome(rule, text, names)


def test_parse_action_still_checks_the_limits() -> None:
    """parse_action skips the type checks parse_ints already made, not the limits."""
    env = create_environment("balancing-unbounded-objectives")
    assert env.parse_action("4, 6") == {"A": 4, "B": 6}
    with pytest.raises(InvalidAction, match="at most 10"):
        env.parse_action("6, 5")
