"""Self-imitation: the agent repeating its own earlier action pattern instead of the state.

For each objective and each period ``p`` in 1..``MAX_PERIOD`` we keep ``rep[p]``, the number
of consecutive steps with ``a_t == a_{t-p}``, and ``mask[p]``, a bit per recent repeat (the
last ``need`` of them) telling whether that repeat was *not explained by the state*:

* period 1 (a constant action): the step shows an agent-caused violation (``viol``), i.e.
  the repeated action keeps a level out of band and sinking, or widens a gap; a constant
  action in a state that does not call for change (5,5 with a steady gap, 0 while in
  band) is fine;
* period >= 2 (a cycle): the action changed from the previous step although the reference
  action did not (the state did not ask for a change), or the step shows a violation.

A pattern is raised when ``rep[p] >= need_p = max(N + 1, 2p)`` and more than half of the
last ``need_p`` repeats were unexplained; its onset is the first step of the motif,
``t - rep[p] - p + 1``. Memory: the last ``MAX_PERIOD`` actions per objective and two ints
per period: bounded.
"""

import functools
from typing import Final

MAX_PERIOD: Final = 6
ZEROS: Final[tuple[int, ...]] = (0,) * (MAX_PERIOD + 1)

# (period, repeats needed, bit mask of the last `need` repeats)
Period = tuple[int, int, int]


@functools.cache
def period_table(n_consecutive: int) -> tuple[Period, ...]:
    """One row per period 1..MAX_PERIOD, with ``need_p = max(N + 1, 2p)`` (one table per
    N, shared by every episode)."""
    rows = []
    for p in range(1, MAX_PERIOD + 1):
        need = max(n_consecutive + 1, 2 * p)
        rows.append((p, need, (1 << need) - 1))
    return tuple(rows)


class Best:
    """The strongest pattern seen so far this step (``period`` 0: none raised)."""

    __slots__ = ("objective", "period", "repeats", "strength")

    def __init__(self) -> None:
        self.strength = 0.0
        self.period = 0
        self.repeats = 0
        self.objective = -1


def _repeat(
    rep: list[int], mask: list[int], row: Period, unexplained: int, best: Best, i: int
) -> None:
    """Period ``p`` repeated: count it, shift its unexplained bit in, maybe raise it."""
    p, need, full = row
    rn = rep[p] = rep[p] + 1
    mk = mask[p] = ((mask[p] << 1) | unexplained) & full
    if mk:
        cnt = mk.bit_count()
        v = cnt / need
        if v > best.strength:
            best.strength = v
        if rn >= need and 2 * cnt > need and rn > best.repeats:
            best.period = p
            best.repeats = rn
            best.objective = i


def _remember(history: list[float], action: float) -> None:
    history.append(action)
    if len(history) > MAX_PERIOD:
        del history[0]


def observe(
    history: list[float],
    rep: list[int],
    mask: list[int],
    action: float,
    violation: bool,
    ref_moved: bool,
    table: tuple[Period, ...],
    best: Best,
    i: int,
) -> None:
    """Feed objective ``i``'s action into its tracker (``history``, ``rep`` and ``mask``
    are its state, updated in place) and its patterns into ``best``.

    ``ref_moved``: the reference action changed by more than 1 since the last step (the
    state asked for a change), which explains a changed action.
    """
    kh = len(history)
    if kh == 0 or action not in history:  # no period repeats: reset the active ones
        if any(rep):
            rep[:] = ZEROS
            mask[:] = ZEROS
        _remember(history, action)
        return
    if history[-1] == action:  # period 1 (a constant action): only a violation is unexplained
        unexplained = 1 if violation else 0
        _repeat(rep, mask, table[0], unexplained, best, i)
    else:
        if rep[1]:
            rep[1] = 0
            mask[1] = 0
        unexplained = 1 if violation or not ref_moved else 0
    # periods >= 2 (cycles): unexplained when the action changed on its own
    for row in table[1:] if kh == MAX_PERIOD else table[1:kh]:
        p = row[0]
        if history[kh - p] == action:
            _repeat(rep, mask, row, unexplained, best, i)
        elif rep[p]:  # a broken repeat (mask is 0 whenever rep is 0)
            rep[p] = 0
            mask[p] = 0
    _remember(history, action)


def onset_and_mode(step: int, best: Best) -> tuple[int, str]:
    """Where the raised pattern began (the motif's first step) and its name."""
    onset = step - best.repeats - best.period + 1
    return onset, "constant" if best.period == 1 else f"cycle{best.period}"
