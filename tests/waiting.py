"""Waiting in tests: poll a condition until it holds, and fail (naming it) when it never does.

Why: a loop of sleeps that falls through when its condition never came true lets a test
pass by luck, or fail later with a confusing message; a bare sleep "to let it happen"
is a race. Every wait in the tests goes through :func:`wait_for`.
"""

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

Condition = Callable[[], Any | Awaitable[Any]]


async def wait_for(
    condition: Condition,
    timeout_s: float = 30.0,
    what: str = "the condition",
    interval_s: float = 0.02,
) -> Any:
    """Poll ``condition`` (plain or async) until it returns something truthy; return that.

    Raises ``AssertionError`` naming ``what`` once ``timeout_s`` seconds have passed.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)


async def stays(condition: Condition, duration: float, what: str, interval_s: float = 0.02) -> None:
    """Check that ``condition`` holds throughout ``duration`` seconds (e.g. "no duplicate
    arrives"): fails at the first poll where it does not."""
    loop = asyncio.get_running_loop()
    end = loop.time() + duration
    while loop.time() < end:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        assert result, f"{what} stopped holding"
        await asyncio.sleep(interval_s)
